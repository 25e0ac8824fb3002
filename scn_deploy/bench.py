"""`scn bench`: inference speed of a model on an engine, against this machine's GEMM peak.

Reports output megapixels per second, latency per tile, peak memory and the network's achieved
GFLOP/s (convolution work, from the export's metadata or counted with PyTorch) next to the fp32
matrix-multiply peak measured in the same run: the best of numpy's BLAS and PyTorch's matmul,
because the BLAS PyTorch ships (MKL) is not the fastest one on every CPU (on AMD EPYC it
reaches ~75% of OpenBLAS).
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scn_deploy.cpu import cpu_description
from scn_deploy.engines.base import Engine
from scn_deploy.engines.options import EngineOptions
from scn_deploy.engines.registry import load_engine, resolve_device, torch_available
from scn_deploy.errors import ConfigError


def _best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_arithmetic(device: str, precision: str) -> str:
    """The arithmetic an engine's convolutions run in, as the GEMM peak is measured: fp32 on
    the CPU (bf16 / int8 rows are compared with the fp32 peak there); on CUDA fp16 and bf16
    as such, fp32 as TF32 (cuDNN's and TensorRT's default for fp32 convolutions)."""
    if not device.startswith("cuda"):
        return "fp32"
    return {"fp16": "fp16", "bf16": "bf16"}.get(precision, "tf32")


def gemm_peak_gflops(
    device: str = "cpu", precision: str = "fp32", n: int = 2048, repeats: int = 5
) -> dict[str, float]:
    """n x n matmul GFLOP/s by library in `gemm_arithmetic(device, precision)`
    ({"numpy": .., "torch": .., "peak": max}); {} when it cannot be measured here (CUDA
    without PyTorch: the GPU install has no GEMM library of its own to time)."""
    flop = 2.0 * n**3
    found: dict[str, float] = {}
    if device == "cpu":
        rng = np.random.default_rng(0)
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        a @ b
        found["numpy"] = flop / _best_seconds(lambda: a @ b, repeats) / 1e9
    if torch_available():
        import torch

        arithmetic = gemm_arithmetic(device, precision)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(arithmetic, torch.float32)
        ta = torch.rand(n, n, device=device).to(dtype)
        tb = torch.rand(n, n, device=device).to(dtype)
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = arithmetic == "tf32"

        def mm() -> None:
            ta @ tb
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        try:
            mm()
            found["torch"] = flop / _best_seconds(mm, repeats) / 1e9
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
    if found:
        found["peak"] = max(found.values())
    return found


def gpu_memory_mb(device: str) -> dict[str, float] | None:
    """GPU memory after a run on `device` (None on the CPU): "used" is the device's used
    memory as the driver sees it (every allocator's pool: ONNX Runtime's arena, TensorRT's
    activations, PyTorch's cache), "torch_peak_allocated" PyTorch's own peak when PyTorch
    is loaded. Host memory is `peak_rss_mb`."""
    import sys

    if not device.startswith("cuda"):
        return None
    from scn_deploy.engines.cuda_runtime import device_index
    from scn_deploy.engines.memory import cuda_memory_info

    index = device_index(device)
    found: dict[str, float] = {}
    torch = sys.modules.get("torch")
    try:
        if torch is not None:
            found["torch_peak_allocated"] = torch.cuda.max_memory_allocated(index) / 2**20
        free, total = cuda_memory_info(index)
    except Exception:  # no way to ask here
        return found or None
    found["used"] = (total - free) / 2**20
    return found


def host_description(device: str = "cpu") -> str:
    """The GPU's name, or the CPU's model, vector extensions and core count (see
    `scn_deploy.cpu.cpu_description`)."""
    if device.startswith("cuda"):
        from scn_deploy.engines.cuda_runtime import CudaRuntime, device_index

        try:
            return CudaRuntime().device_name(device_index(device))
        except ConfigError:  # no cuda-python: PyTorch's CUDA build knows it too
            import torch

            return torch.cuda.get_device_name(torch.device(device))
    return cpu_description()


def network_gflop_per_mp(engine: Engine) -> float | None:
    """Convolution GFLOP per output megapixel of the engine's network, when knowable."""
    meta = getattr(engine, "metadata", {}) or {}
    if "scn_gflop_per_output_mp" in meta:
        return float(meta["scn_gflop_per_output_mp"])
    from scn_deploy.arch.facts import flops_per_output_megapixel

    return flops_per_output_megapixel(engine.spec.arch, engine.num_scales) / 1e9


@dataclass
class BenchRequest:
    """What to benchmark.

    Attributes:
        model: model file, exported .onnx or zoo name.
        engine: the engine, device, precision and pyramid scales (as for `load_engine`); its
            tile and batch are the bench's own (`engine_options`).
        tile: input tile side in pixels (tiles of `batch` per forward pass).
        size: (H, W): also restore a whole synthetic image of this size as `scn upscale`
            does by default (tile "auto": the cheapest grid that fits the memory budget,
            overlap, stitching, uint8 output; no file I/O); None: tiles only.
        repeat: timed repetitions (the median is reported); one untimed warm-up first.
    """

    model: str
    engine: EngineOptions = field(default_factory=EngineOptions)
    tile: int = 256
    batch: int = 1
    size: tuple[int, int] | None = None
    repeat: int = 5

    @property
    def engine_options(self) -> EngineOptions:
        """`engine` for the bench's tiles: the largest tile and batch are the bench's."""
        return replace(self.engine, tile=self.tile, batch=self.batch)


@dataclass
class BenchResult:
    model: str
    engine: str
    device: str
    host: str
    precision: str
    tile: int
    batch: int
    scales: int
    mp_per_s: float
    ms_per_tile: float
    peak_rss_mb: float
    gflop_per_output_mp: float | None
    gflops: float | None
    gemm_peak_gflops: float | None
    gemm_by_library: dict[str, float]
    fraction_of_peak: float | None
    threads: int | None
    image: dict[str, Any] | None = field(default=None)
    gemm_arithmetic: str = "fp32"  # what the peak was measured in (`gemm_arithmetic`)
    gpu_memory_mb: dict[str, float] | None = None  # `gpu_memory_mb`; None on the CPU

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_seconds(fn, repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``fn`` after one warm-up call."""
    fn()  # warm-up: allocations, kernel selection, lazy initialisation
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_bench(request: BenchRequest) -> BenchResult:
    """Time the engine on tiles (and optionally on a whole image); see `BenchRequest`."""
    from scn_deploy.zoo import resolve_model

    if request.tile < 16 or request.batch < 1 or request.repeat < 1:
        raise ConfigError("bench needs --tile >= 16, --batch >= 1 and --repeat >= 1")
    path = resolve_model(request.model, task="sr")
    engine = load_engine(path, request.engine_options)
    spec = engine.spec
    rng = np.random.default_rng(0)
    shape = (request.batch, spec.channels, request.tile, request.tile)
    x = rng.random(shape, dtype=np.float32)
    level = None
    if spec.conditioned:
        level = np.full((request.batch, 1, request.tile, request.tile), 0.1, np.float32)
    seconds = median_seconds(lambda: engine.infer(x, level), request.repeat)
    out_mp = request.batch * (request.tile * spec.scale) ** 2 / 1e6
    mp_per_s = out_mp / seconds
    per_mp = network_gflop_per_mp(engine)
    gflops = per_mp * mp_per_s if per_mp is not None else None
    image = _bench_image(engine, request) if request.size else None
    gpu_memory = gpu_memory_mb(engine.device)
    gemm = gemm_peak_gflops(engine.device, engine.precision)
    peak = gemm.get("peak")
    threads = None
    if torch_available():
        import torch

        threads = torch.get_num_threads()
    return BenchResult(
        model=_shown(path),
        engine=engine.name,
        device=engine.device,
        host=host_description(engine.device),
        precision=engine.precision,
        tile=request.tile,
        batch=request.batch,
        scales=engine.num_scales,
        mp_per_s=mp_per_s,
        ms_per_tile=seconds / request.batch * 1000.0,
        peak_rss_mb=_peak_rss_mb(),
        gflop_per_output_mp=per_mp,
        gflops=gflops,
        gemm_peak_gflops=peak,
        gemm_by_library=gemm,
        fraction_of_peak=gflops / peak if gflops is not None and peak else None,
        threads=threads,
        image=image,
        gemm_arithmetic=gemm_arithmetic(engine.device, engine.precision),
        gpu_memory_mb=gpu_memory,
    )


def _bench_image(engine: Engine, request: BenchRequest) -> dict[str, Any]:
    """Whole-image restoration of a synthetic photo-like image through the tiler."""
    from scn_deploy.restorer import RestoreOptions, Restorer

    assert request.size is not None
    h, w = request.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 127 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    noise = np.random.default_rng(1).normal(0, 12, (h, w, 3))
    img = np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)
    if engine.spec.channels == 1:
        img = img[..., 0]
    restorer = Restorer(engine, RestoreOptions(tile="auto", batch=request.batch))
    level = engine.spec.task.typical_level  # the level does not change the compute
    plan = restorer.plan(h, w)  # measures the receptive field once, outside the timing
    restorer.restore(img, level, dtype=np.uint8, plan=plan)  # warm-up: compile, allocate
    start = time.perf_counter()
    restorer.restore(img, level, dtype=np.uint8, plan=plan)
    seconds = time.perf_counter() - start
    out_mp = h * w * engine.spec.scale**2 / 1e6
    return {
        "size": [h, w],
        "tiles": len(plan),
        "plan": plan.describe(),
        "seconds": seconds,
        "mp_per_s": out_mp / seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


# ---------------------------------------------------------------------------------------------
# Every engine x precision side by side
# ---------------------------------------------------------------------------------------------


def _candidates(model: str, device: str) -> list[tuple[str, str]]:
    """(engine, precision) pairs that can run `model` on `device` here."""
    from scn_deploy.cpu import native_bf16
    from scn_deploy.engines.registry import AUTO_ORDER, BACKENDS, can_run, onnx_precision
    from scn_deploy.exporting.cache import find_onnx
    from scn_deploy.zoo import resolve_model

    path = resolve_model(model, task="sr")
    cuda = device.startswith("cuda")
    pairs = []
    for name in reversed(AUTO_ORDER["cuda" if cuda else "cpu"]):  # slowest (reference) first
        if not can_run(name, device):
            continue
        for precision in BACKENDS[name].precisions:
            if precision == "fp16" and not cuda:
                continue
            if precision == "bf16" and not cuda and not native_bf16():
                continue
            if BACKENDS[name].runs_onnx and path.suffix != ".onnx":
                if find_onnx(path, None, precision=onnx_precision(name, precision)) is None:
                    continue
            elif path.suffix == ".onnx" and not BACKENDS[name].runs_onnx:
                continue
            pairs.append((name, precision))
    return pairs


def _set5_psnr(model: str, engine: EngineOptions) -> float | None:
    """Set5 PSNR-Y of an SR model on this engine, None without the data or for other tasks."""
    from scn_deploy.evaluate import EvalRequest, evaluate
    from scn_deploy.modelfile import read_spec
    from scn_deploy.paths import data_root
    from scn_deploy.zoo import resolve_model

    root = data_root()
    path = resolve_model(model, task="sr")
    if root is None or not (root / "benchmarks/sr/Set5").is_dir() or path.suffix == ".onnx":
        return None
    spec = read_spec(path)
    if not spec.task.upscales:
        return None
    request = EvalRequest(
        data=[root / "benchmarks/sr/Set5"],
        task=spec.task,
        level=spec.scale,
        model=str(path),
        engine=engine,
    )
    return evaluate(request).results[0].psnr_y


def _shown(path: Path) -> str:
    """A model path as results files record it: relative to the working directory when
    inside it (results stay valid in any checkout), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def bench_versus(request: BenchRequest, other: str) -> dict[str, Any]:
    """Bench `request.model` and then `other` the same way in one run: each one's tile
    figures and the speed ratio (first / other)."""
    rows = []
    for model in (request.model, other):
        result = run_bench(replace(request, model=model))
        rows.append(
            {
                "model": result.model,
                "engine": result.engine,
                "precision": result.precision,
                "mp_per_s": result.mp_per_s,
                "ms_per_tile": result.ms_per_tile,
                "gflop_per_output_mp": result.gflop_per_output_mp,
                "image_mp_per_s": result.image["mp_per_s"] if result.image else None,
            }
        )
    return {
        "host": host_description(resolve_device(request.engine.device)),
        "tile": request.tile,
        "batch": request.batch,
        "rows": rows,
        "speedup": rows[0]["mp_per_s"] / rows[1]["mp_per_s"],
    }


def compare_engines(request: BenchRequest, *, psnr: bool = True) -> dict[str, Any]:
    """Bench every installed engine x precision on the same tiles in one run: MP/s, ratio to
    ONNX Runtime fp32 (or the first row), fraction of the GEMM peak (fp32 on the CPU; on CUDA
    in the row's arithmetic, `gemm_arithmetic`) and, for SR models
    with the benchmark data present, the Set5 PSNR-Y change from fp32."""
    device = resolve_device(request.engine.device)
    rows: list[dict[str, Any]] = []
    for engine, precision in _candidates(request.model, device):
        options = replace(request.engine, engine=engine, device=device, precision=precision)
        single = replace(request, engine=options, size=None)
        result = run_bench(single)
        rows.append(
            {
                "engine": engine,
                "precision": precision,
                "mp_per_s": result.mp_per_s,
                "ms_per_tile": result.ms_per_tile,
                "fraction_of_peak": result.fraction_of_peak,
                "gemm_arithmetic": result.gemm_arithmetic,
                "set5_psnr_y": _set5_psnr(request.model, options) if psnr else None,
                "gemm_peak_gflops": result.gemm_peak_gflops,
            }
        )
    if not rows:
        raise ConfigError(f"no installed engine can run {request.model} on {device}")
    base = next((r for r in rows if (r["engine"], r["precision"]) == ("onnx", "fp32")), rows[0])
    for row in rows:
        row["ratio"] = row["mp_per_s"] / base["mp_per_s"]
        ref = base["set5_psnr_y"]
        got = row["set5_psnr_y"]
        row["set5_delta_db"] = got - ref if got is not None and ref is not None else None
    return {
        "model": request.model,
        "device": device,
        "host": host_description(device),
        "tile": request.tile,
        "batch": request.batch,
        "baseline": f"{base['engine']} {base['precision']}",
        "rows": rows,
    }
