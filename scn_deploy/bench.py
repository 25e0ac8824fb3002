"""`scn bench`: inference speed of a model on an engine, against this machine's GEMM peak.

Reports output megapixels per second, latency per tile, peak memory and the network's achieved
GFLOP/s (convolution work, from the export's metadata or counted with PyTorch) next to the fp32
matrix-multiply peak measured in the same run: the best of numpy's BLAS and PyTorch's matmul,
because the BLAS PyTorch ships (MKL) is not the fastest one on every CPU (on AMD EPYC it
reaches ~75% of OpenBLAS).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scn_deploy.engines.base import Engine, load_engine, torch_available
from scn_deploy.errors import ConfigError


def _best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak_gflops(device: str = "cpu", n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """fp32 n x n matmul GFLOP/s by library ({"numpy": .., "torch": .., "peak": max})."""
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

        ta = torch.rand(n, n, device=device)
        tb = torch.rand(n, n, device=device)

        def mm() -> None:
            ta @ tb
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        mm()
        found["torch"] = flop / _best_seconds(mm, repeats) / 1e9
    if not found:
        raise ConfigError(f"cannot measure a GEMM peak on {device} without PyTorch")
    found["peak"] = max(found.values())
    return found


def host_description(device: str = "cpu") -> str:
    """The GPU's name, or the CPU's model, vector extensions and core count: "AMD EPYC
    (AVX-512, VNNI, BF16), 2 cores". CPU figures are comparable only on the same extensions
    (the same model name covers AVX2-only and AVX-512 parts)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:  # the first CPU's "model name", then its "flags"
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = [
        name
        for name, flag in (
            ("AVX-512", "avx512f"),
            ("VNNI", "avx512_vnni"),
            ("BF16", "avx512_bf16"),
            ("AMX", "amx_tile"),
        )
        if flag in flags
    ]
    if not isa and "avx2" in flags:
        isa = ["AVX2"]
    extensions = f" ({', '.join(isa)})" if isa else ""
    return f"{model}{extensions}, {os.cpu_count()} cores"


def network_gflop_per_mp(engine: Engine) -> float | None:
    """Convolution GFLOP per output megapixel of the engine's network, when knowable."""
    meta = getattr(engine, "metadata", {}) or {}
    if "scn_gflop_per_output_mp" in meta:
        return float(meta["scn_gflop_per_output_mp"])
    if not torch_available():
        return None
    from scn_deploy.arch.scn import flops_per_output_megapixel

    return flops_per_output_megapixel(engine.spec.arch, engine.num_scales) / 1e9


@dataclass
class BenchRequest:
    """What to benchmark.

    Attributes:
        model: model file, exported .onnx or zoo name.
        engine, device, precision: as for `load_engine`.
        tile: input tile side in pixels (tiles of `batch` per forward pass).
        size: (H, W): also restore a whole synthetic image of this size through the tiler
            (end to end: planning, overlap, stitching); None: tiles only.
        repeat: timed repetitions (the median is reported); one untimed warm-up first.
        scales: pyramid scales (default: as trained).
    """

    model: str
    engine: str = "auto"
    device: str = "cpu"
    precision: str = "fp32"
    tile: int = 256
    batch: int = 1
    size: tuple[int, int] | None = None
    repeat: int = 5
    scales: int | None = None


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
    gemm_peak_gflops: float
    gemm_by_library: dict[str, float]
    fraction_of_peak: float | None
    threads: int | None
    image: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_calls(fn, repeat: int) -> float:
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
    engine = load_engine(
        path,
        engine=request.engine,
        device=request.device,
        num_scales=request.scales,
        precision=request.precision,
    )
    spec = engine.spec
    rng = np.random.default_rng(0)
    shape = (request.batch, spec.channels, request.tile, request.tile)
    x = rng.random(shape, dtype=np.float32)
    level = None
    if spec.conditioned:
        level = np.full((request.batch, 1, request.tile, request.tile), 0.1, np.float32)
    seconds = _time_calls(lambda: engine.infer(x, level), request.repeat)
    out_mp = request.batch * (request.tile * spec.scale) ** 2 / 1e6
    mp_per_s = out_mp / seconds
    per_mp = network_gflop_per_mp(engine)
    gflops = per_mp * mp_per_s if per_mp is not None else None
    image = _bench_image(engine, request) if request.size else None
    gemm = gemm_peak_gflops(request.device)
    threads = None
    if torch_available():
        import torch

        threads = torch.get_num_threads()
    return BenchResult(
        model=str(path),
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
        gemm_peak_gflops=gemm["peak"],
        gemm_by_library=gemm,
        fraction_of_peak=gflops / gemm["peak"] if gflops is not None else None,
        threads=threads,
        image=image,
    )


def _bench_image(engine: Engine, request: BenchRequest) -> dict[str, Any]:
    """Whole-image restoration of a synthetic photo-like image through the tiler."""
    from scn_deploy.restore import RestoreOptions, Restorer

    assert request.size is not None
    h, w = request.size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 127 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    noise = np.random.default_rng(1).normal(0, 12, (h, w, 3))
    img = np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)
    if engine.spec.channels == 1:
        img = img[..., 0]
    restorer = Restorer(engine, RestoreOptions(tile=request.tile, batch=request.batch))
    level = None
    if engine.spec.task != "sr":
        level = 25.0 if engine.spec.task == "denoise" else 30.0
    tiles = len(restorer.plan(h, w))
    start = time.perf_counter()
    restorer.restore(img, level)
    seconds = time.perf_counter() - start
    out_mp = h * w * engine.spec.scale**2 / 1e6
    return {
        "size": [h, w],
        "tiles": tiles,
        "seconds": seconds,
        "mp_per_s": out_mp / seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }
