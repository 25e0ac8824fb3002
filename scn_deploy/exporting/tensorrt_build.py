"""TensorRT engines built from our ONNX exports, with a timing cache and an engine cache.

TensorRT is imported only inside these functions. An engine is specific to the ONNX file,
the TensorRT version, the GPU model, the precision and the optimization profile; all five
make the cache key, so a second `scn export --trt` (or `--engine tensorrt` run) with the same
inputs loads the cached engine instead of rebuilding. Engines live in the user cache
(`cache_dir()/tensorrt`) and are never committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from scn_deploy.errors import ConfigError, ScnError

Shape = tuple[int, int, int, int]
MIN_SIDE = 16
WORKSPACE_BYTES = 4 << 30


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT can build and run here, else why not (in words)."""
    from scn_deploy.engines.cuda_runtime import CudaRuntime

    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed (pip install 'scn-deploy[gpu]')"
    try:
        cuda = CudaRuntime()
    except ConfigError as exc:
        return str(exc)
    if cuda.device_count() == 0:
        return "no CUDA GPU is visible (TensorRT engines are built on and for an NVIDIA GPU)"
    return None


def require_tensorrt() -> None:
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise ConfigError(f"cannot use TensorRT: {reason}")


@dataclass(frozen=True)
class TrtProfile:
    """One optimization profile: (batch, channels, height, width) min / opt / max."""

    min: Shape
    opt: Shape
    max: Shape

    @classmethod
    def for_tile(cls, channels: int, batch: int, tile: int, margin: int = 0) -> TrtProfile:
        """Windows of a `tile` px core plus up to `margin` px of overlap on each side.

        Optimum at the tile plus the margin, batch `batch`; the maximum allows 3x the batch
        (a gray model restores an RGB image's channels as a batch of 3) and windows up to
        twice the tile plus both margins (edge tiles and the tiler's uniform window shapes)."""
        side = max(tile, MIN_SIDE)
        most = 2 * side + 2 * margin
        return cls(
            (1, channels, MIN_SIDE, MIN_SIDE),
            (batch, channels, side + 2 * margin, side + 2 * margin),
            (3 * batch, channels, most, most),
        )

    @classmethod
    def explicit(
        cls,
        channels: int,
        batch: int,
        low: tuple[int, int],
        opt: tuple[int, int],
        high: tuple[int, int],
    ) -> TrtProfile:
        if not (low[0] <= opt[0] <= high[0] and low[1] <= opt[1] <= high[1]):
            raise ConfigError(f"profile shapes must satisfy min <= opt <= max: {low} {opt} {high}")
        return cls((1, channels, *low), (batch, channels, *opt), (batch, channels, *high))

    def fits(self, shape: tuple[int, ...]) -> bool:
        return all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True))


def profile_for(spec, num_scales: int, *, batch: int, tile: int) -> TrtProfile:
    """The profile `--engine tensorrt` and `scn export --trt` both build (one cache key):
    `tile` plus the architecture's receptive-field bound, rounded to the model's alignment."""
    from scn_deploy.arch.facts import align_up, pyramid_alignment, receptive_field_bound

    align = pyramid_alignment(spec.arch, num_scales)
    margin = align_up(receptive_field_bound(spec.arch, num_scales) + 2, align)
    return TrtProfile.for_tile(spec.channels, batch, tile, margin)


@dataclass
class BuiltEngine:
    path: Path
    cached: bool
    seconds: float
    profile: TrtProfile
    precision: str
    gpu: str
    trt_version: str

    def describe(self) -> str:
        lo, hi = self.profile.min, self.profile.max
        return (
            f"{self.precision}, TensorRT {self.trt_version} on {self.gpu}, profile "
            f"{lo[2]}x{lo[3]}..{hi[2]}x{hi[3]} batch <= {hi[0]}"
        )


def cache_key(onnx_bytes: bytes, trt_version: str, gpu: str, precision: str, profile) -> str:
    h = hashlib.sha256(onnx_bytes)
    h.update(json.dumps([trt_version, gpu, precision, asdict(profile)]).encode())
    return h.hexdigest()[:20]


def build_engine(
    onnx_path: str | os.PathLike[str],
    *,
    profile: TrtProfile,
    fp16: bool = False,
    cache: Path | None = None,
    gpu: str | None = None,
) -> BuiltEngine:
    """Build (or load from the cache) the serialized engine for an ONNX export, on the
    current CUDA device; ``gpu`` is its name (a cache key part; default: asked)."""
    require_tensorrt()
    import tensorrt as trt

    from scn_deploy.atomic import atomic_write
    from scn_deploy.engines.cuda_runtime import CudaRuntime
    from scn_deploy.exporting.onnx_export import INPUT_IMAGE, INPUT_LEVEL
    from scn_deploy.paths import cache_dir

    onnx_bytes = Path(onnx_path).read_bytes()
    if gpu is None:
        cuda = CudaRuntime()
        gpu = cuda.device_name(cuda.current_device())
    precision = "fp16" if fp16 else "fp32"
    folder = cache or cache_dir() / "tensorrt"
    key = cache_key(onnx_bytes, trt.__version__, gpu, precision, profile)
    path = folder / f"{Path(onnx_path).stem}-{key}.engine"
    done = BuiltEngine(path, True, 0.0, profile, precision, gpu, trt.__version__)
    if path.exists():
        return done
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ScnError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    timing_file = folder / f"timing-{hashlib.sha256(gpu.encode()).hexdigest()[:12]}.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    opt = builder.create_optimization_profile()
    opt.set_shape(INPUT_IMAGE, profile.min, profile.opt, profile.max)
    if network.num_inputs > 1:  # conditioned model: the level map has the image's size
        level = [(s[0], 1, s[2], s[3]) for s in (profile.min, profile.opt, profile.max)]
        opt.set_shape(INPUT_LEVEL, *level)
    config.add_optimization_profile(opt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ScnError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    atomic_write(path, bytes(serialized))
    atomic_write(timing_file, bytes(config.get_timing_cache().serialize()))
    done.cached, done.seconds = False, time.perf_counter() - start
    return done
