"""OpenVINO backend: runs the ONNX export on the CPU in fp32, bf16 or int8.

bf16 runs only where the CPU computes it natively (AVX512-BF16 or AMX); elsewhere OpenVINO
would emulate it, slower than fp32, so it is refused. int8 runs the QDQ export made by
`scn export --int8` (OpenVINO executes its quantized convolutions with int8 kernels).

The network is compiled for each input shape it meets (a static shape plans its memory:
measured on sr-x2 bf16 at 776x1024, 0.86 GB peak RSS against 1.96 GB with dynamic shapes,
and 0.25 s instead of 1.7 s of first-call set-up). The tiler gives every window of an image
one shape, so an image costs at most one compilation, and the last `KEEP_SHAPES` compiled
shapes stay loaded. Compiled blobs are cached on disk under a key of everything they depend
on: the ONNX file's sha256, the input shape, the precision, OpenVINO's version and the CPU
(model and extensions); the cache keeps the `DISK_BLOBS` most recently used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from scn_deploy.atomic import atomic_write
from scn_deploy.engines.base import Engine, UnsupportedModel
from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError, ModelFileError, ScnError

HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
KEEP_SHAPES = 2
DISK_BLOBS = 64
# What this engine does to the graph before compiling it (part of the cache key): bump it
# whenever `unshare_constants` changes, so blobs compiled from the old graph are not imported.
GRAPH_REWRITE = "unshared-constants-1"
INT8_FAST_PIXELS = 448 * 448
INT8_SLOWDOWN_PER_DOUBLING = 0.22


def compiled_cache_key(
    onnx_sha256: str, *, shape: str, precision: str, openvino_version: str, cpu: str
) -> str:
    """The on-disk name of a compiled model: a hash of everything the blob depends on."""
    parts = {
        "onnx_sha256": onnx_sha256,
        "shape": shape,
        "precision": precision,
        "openvino": openvino_version,
        "cpu": cpu,
        "graph": GRAPH_REWRITE,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def unshare_constants(model) -> int:
    """Give every consumer of a shared constant its own copy; returns the copies made.

    SCN applies one body to every pyramid scale, so its ONNX export feeds each convolution
    weight and bias to several Conv nodes. OpenVINO's CPU plugin does not fuse a bias, ReLU or
    residual add into a convolution whose constants are shared (checked on a two-conv model):
    each of them then runs as a separate pass over the activations, which is memory-bound.
    With private copies they fuse as post-ops. Measured on sr-x2 (2-core Xeon with AMX,
    `benchmarks/tile_rate.py`): bf16 +26% on 256x256 windows and +20% on 776x1024, fp32 +19%
    with identical outputs; int8 (QDQ) unchanged. The weights take ~3x the memory (7 MB for
    sr-x2). ONNX Runtime is not affected either way, so the export itself stays shared.
    """
    import openvino as ov

    copies = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        for target in list(op.output(0).get_target_inputs())[1:]:
            target.replace_source_output(ov.op.Constant(np.array(op.get_data())).output(0))
            copies += 1
    if copies:
        model.validate_nodes_and_infer_types()
    return copies


def int8_window_cost(pixels: int) -> float:
    """`Engine.window_cost` of OpenVINO int8 (QDQ) on the CPU: flat up to about 448x448
    input pixels, then 0.22 more per doubling of the window. Measured on sr-x2, 2-core Xeon
    with AMX (`benchmarks/tile_rate.py --precision int8`): 256x256 and 448x448 windows run at
    the same rate, 512x512 at 0.92 of it, 548x548 at 0.85, 776x1024 at 0.70; in the
    per-layer profile the convolutions stay flat while the elementwise and Interpolate
    kernels double their time per pixel. bf16 slows down too (0.72 at 776x1024 on that
    CPU), but no plan with smaller windows measured faster on a photo than the fewest-pixels
    plan, whose 2x2 windows add 6% of overlap: bf16 and fp32 stay flat."""
    return 1.0 + INT8_SLOWDOWN_PER_DOUBLING * max(0.0, math.log2(pixels / INT8_FAST_PIXELS))


def _config(precision: str, threads: int | None) -> dict[str, str]:
    config = {"INFERENCE_PRECISION_HINT": HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    if threads:  # e.g. one engine per Ray actor or `scn serve` worker, N cores each
        config["INFERENCE_NUM_THREADS"] = str(threads)
        if threads < (os.cpu_count() or 1):
            # OpenVINO pins an engine's threads to cores, the same first cores for every
            # engine: two 1-thread engines (`scn serve --workers 2`) on a 2-core EPYC both
            # ran on one core, 3.20 images/s together against 6.49 unpinned and 6.06 for one
            # 2-thread engine (512x512 x2 fast, `python benchmarks/serve_batching.py
            # --engines 2`). Engines that share the machine leave placement to the OS.
            config["ENABLE_CPU_PINNING"] = "NO"
    return config


@functools.cache
def shared_core():
    """The process's one OpenVINO `Core`, shared by every engine.

    A Core registers a signal alternate stack on the thread that compiles with it and, when
    destroyed, frees that stack and puts back the one it found. Two Cores destroyed out of
    creation order therefore leave a freed stack registered, and the next Python signal
    handler (Ctrl-C, or a SIGCHLD handler such as PyTorch's DataLoader installs) kills the
    process with SIGSEGV. One Core that lives as long as the process never frees its stack.
    """
    import openvino as ov

    return ov.Core()


class OpenvinoEngine(Engine):
    name = "openvino"

    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        num_scales: int | None = None,
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        import openvino as ov

        from scn_deploy.cpu import cpu_description, native_bf16
        from scn_deploy.digest import file_sha256
        from scn_deploy.exporting.metadata import parse_metadata
        from scn_deploy.paths import cache_dir

        path = Path(path)
        if device != "cpu":
            raise ConfigError(f"the openvino engine runs on the CPU, not {device}")
        if not path.is_file():
            raise ModelFileError(f"{path}: no such ONNX file")
        core = shared_core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises its own untyped errors
            raise ModelFileError(f"{path}: OpenVINO cannot read it: {exc}") from exc
        info = model.get_rt_info()
        framework = info["framework"] if "framework" in info else {}  # noqa: SIM401 (no .get)
        meta = {key: value.astype(str) for key, value in framework.items()}
        spec, n, meta = parse_metadata(meta, path)
        if num_scales is not None and num_scales != n:
            raise ConfigError(f"{path} was exported with {n} scales, not {num_scales}")
        if meta.get("scn_precision") == "fp16":
            raise UnsupportedModel(f"{path}: an fp16 export; openvino runs the fp32 export")
        if meta.get("scn_precision") == "int8":
            precision = "int8"
        elif precision == "int8":
            raise ConfigError(f"{path} is not an int8 export (make one with scn export --int8)")
        if precision not in HINTS:
            raise ConfigError(f"the openvino engine runs fp32, bf16 or int8, not {precision}")
        if precision == "bf16" and not native_bf16():
            raise ConfigError(
                "bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has neither "
                "and would emulate it, slower than fp32: use --precision fp32"
            )
        self._core = core
        self._model = model
        self._config = _config(precision, threads)
        self._digest = file_sha256(path)
        self._version = ov.__version__
        self._cpu = cpu_description()
        self._cache = cache_dir() / "openvino"
        # shape -> (compiled model, its inference request), most recently used last
        self._requests: OrderedDict[tuple[int, ...], tuple[object, object]] = OrderedDict()
        self.metadata = meta
        super().__init__(spec, num_scales=n, device=device, precision=precision, source=str(path))

    @property
    def half_activations(self) -> bool:
        # int8: measured below bf16 (sr-x2, a 2000x1500 photo: 0.7 GB peak RSS in 2x2 tiles)
        return self.precision in ("bf16", "int8")

    def window_cost(self, pixels: int) -> float:
        return int8_window_cost(pixels) if self.precision == "int8" else 1.0

    def cache_file(self, shape: tuple[int, ...]) -> Path:
        """Where the compiled model for one input shape is cached."""
        key = compiled_cache_key(
            self._digest,
            shape="x".join(map(str, shape)),
            precision=self.precision,
            openvino_version=self._version,
            cpu=self._cpu,
        )
        return self._cache / f"{Path(self.source).stem}-{key}.blob"

    def _request(self, shape: tuple[int, ...]):
        """An inference request compiled for `shape` (from memory, the disk cache, or
        compiled now and cached)."""
        if shape in self._requests:
            self._requests.move_to_end(shape)
            return self._requests[shape][1]
        while len(self._requests) >= KEEP_SHAPES:
            self._requests.popitem(last=False)  # frees that shape's buffers
        blob = self.cache_file(shape)
        compiled = None
        if blob.is_file():
            try:
                compiled = self._core.import_model(blob.read_bytes(), "CPU", self._config)
                os.utime(blob)
            except Exception:  # a damaged or foreign blob: compile again and replace it
                compiled = None
        if compiled is None:
            model = self._model.clone()
            unshare_constants(model)
            shapes = {0: list(shape)}
            if self.spec.conditioned:
                shapes[1] = [shape[0], 1, *shape[2:]]
            model.reshape(shapes)
            compiled = self._core.compile_model(model, "CPU", self._config)
            # A read-only or full cache only costs the next run a compilation.
            with contextlib.suppress(ScnError, OSError):
                atomic_write(blob, compiled.export_model().getvalue())
                _prune(self._cache, DISK_BLOBS)
        request = compiled.create_infer_request()
        self._requests[shape] = (compiled, request)
        return request

    @classmethod
    def load(
        cls, file: Path, *, device: str, precision: str, options: EngineOptions
    ) -> OpenvinoEngine:
        return cls(
            file,
            device=device,
            num_scales=options.num_scales,
            precision=precision,
            threads=options.threads,
        )

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.check_input(image, level)
        feeds = {0: np.ascontiguousarray(image, np.float32)}
        if self.spec.conditioned:
            feeds[1] = np.ascontiguousarray(level, np.float32)
        request = self._request(tuple(image.shape))
        request.infer(feeds, share_inputs=True)  # the arrays are read in place, not copied
        return np.array(request.get_output_tensor(0).data, np.float32)


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the `keep` most recently used blobs in `folder`."""
    blobs = sorted(folder.glob("*.blob"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in blobs[keep:]:
        old.unlink(missing_ok=True)
