"""The GPU logic that can be checked without a GPU: TensorRT profiles and cache keys, buffer
dtypes, tile limits and where the receptive field is measured (fakes, no torch needed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from scn_deploy.arch.facts import pyramid_alignment, receptive_field_bound
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.engines.base import Engine
from scn_deploy.engines.tensorrt_engine import numpy_dtype_of
from scn_deploy.errors import ConfigError
from scn_deploy.exporting.cache import export_dir
from scn_deploy.exporting.tensorrt_build import TrtProfile, cache_key, profile_for
from scn_deploy.modelfile import read_spec
from scn_deploy.restore import RestoreOptions, Restorer
from scn_deploy.zoo import zoo_path


class FakeEngine(Engine):
    """Identity-upscaling engine that records the batch shapes it is given."""

    name = "tensorrt"

    def __init__(self, spec, *, device: str = "cuda:0", max_tile: int | None = None) -> None:
        super().__init__(
            spec, num_scales=spec.arch.num_scales, device=device, precision="fp16", source="x"
        )
        self.max_tile = max_tile
        self.shapes: list[tuple[int, ...]] = []

    @classmethod
    def load(cls, file, *, device, precision, options):  # not loaded through the registry
        raise NotImplementedError

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.shapes.append(image.shape)
        s = self.spec.scale
        return image.repeat(s, axis=2).repeat(s, axis=3)


@pytest.mark.parametrize("name", ["sr-x2", "sr-x4", "deblock-gray"])
def test_tensorrt_profile_holds_every_window_and_gray_batches(name: str) -> None:
    """The profile takes the tile plus the architecture's overlap bound on each side (so any
    measured overlap fits) and 3x the batch (a gray model runs an RGB image as 3 images)."""
    spec = read_spec(zoo_path(name))
    n = spec.arch.num_scales
    profile = profile_for(spec, n, batch=2, tile=256)
    align = pyramid_alignment(spec.arch, n)
    overlap = -(-(receptive_field_bound(spec.arch, n) + 2) // align) * align
    window = 256 + 2 * overlap
    c = spec.channels
    assert profile.fits((2, c, window, window)) and profile.fits((6, c, window, 17))
    assert profile.opt == (2, c, window, window)
    assert not profile.fits((7, c, window, window))
    assert not profile.fits((1, c, 2 * window + 1, 64))


def test_tensorrt_export_and_engine_share_a_cache_key(monkeypatch) -> None:
    """`scn export --trt [--fp16]` builds what `--engine tensorrt` looks up: the fp32 ONNX
    with the same profile, hence the same cache key."""
    from scn_deploy.cli import export as export_cli
    from scn_deploy.exporting import tensorrt_build

    calls = []

    def fake_build(onnx_path, *, profile, fp16=False, cache=None, gpu=None):
        calls.append((Path(onnx_path), profile, fp16))
        return SimpleNamespace(cached=True, seconds=0.0, path=Path("e"), describe=lambda: "")

    monkeypatch.setattr(tensorrt_build, "build_engine", fake_build)
    model = zoo_path("sr-x2")
    fp32 = export_dir() / "sr-x2-s3.onnx"
    export_cli._trt(model, fp32, [None, None, None], 256, 1, True)
    onnx_path, profile, fp16 = calls[0]
    assert onnx_path == fp32 and fp16
    engine_profile = profile_for(read_spec(model), 3, batch=1, tile=256)  # what the engine builds
    assert profile == engine_profile
    data = fp32.read_bytes()
    assert cache_key(data, "10", "H100", "fp16", profile) == cache_key(
        data, "10", "H100", "fp16", engine_profile
    )


def test_tensorrt_buffers_take_the_engine_dtypes() -> None:
    trt = SimpleNamespace(DataType=SimpleNamespace(FLOAT="f32", HALF="f16", INT8="i8"))
    assert numpy_dtype_of("f32", trt) == np.float32
    assert numpy_dtype_of("f16", trt) == np.float16
    with pytest.raises(ConfigError, match="float or half"):
        numpy_dtype_of("i8", trt)


def test_tensorrt_tiles_beyond_the_profile_are_refused_before_running() -> None:
    spec = read_spec(zoo_path("sr-x2"))
    image = np.zeros((300, 200, 3), np.uint8)

    def restorer(tile) -> Restorer:
        return Restorer(FakeEngine(spec, max_tile=256), RestoreOptions(tile=tile, tile_overlap=8))

    with pytest.raises(ConfigError, match="built for tiles up to 256 px"):
        restorer(512).restore(image)
    with pytest.raises(ConfigError, match="--tile 256 or smaller"):
        restorer(0).restore(image)  # the whole 300 px image is beyond the profile
    assert restorer(0).restore(image[:200]).shape == (400, 400, 3)
    auto = restorer("auto")
    assert auto.restore(image).shape == (600, 400, 3)
    assert all(max(shape[2:]) <= 256 + 2 * 8 + 64 for shape in auto.engine.shapes)


def test_cuda_engines_measure_the_receptive_field_on_a_cpu_twin() -> None:
    """fp32 on a GPU still gets an fp32 CPU twin (TF32 rounding, profile limits)."""
    from scn_deploy.engines import registry

    spec = read_spec(zoo_path("sr-x2"))
    gpu = FakeEngine(spec, device="cuda:1")
    gpu.precision = "fp32"
    run = EngineOptions(engine="tensorrt", device="cuda:1", tile=512, batch=2)
    twinned = registry._with_twin(gpu, zoo_path("sr-x2"), run)
    assert twinned.fp32_twin is not None
    name, path, twin = twinned.fp32_twin.args
    assert (name, path, twin.device, twin.precision) == ("onnx", zoo_path("sr-x2"), "cpu", "fp32")
    cpu = FakeEngine(spec, device="cpu")
    cpu.precision = "fp32"
    cpu.name = "onnx"
    assert registry._with_twin(cpu, zoo_path("sr-x2"), EngineOptions()).fp32_twin is None


def test_tensorrt_profile_for_tile_is_the_documented_shape() -> None:
    p = TrtProfile.for_tile(1, 2, 128, margin=32)
    assert p.min == (1, 1, 16, 16) and p.opt == (2, 1, 192, 192) and p.max == (6, 1, 320, 320)


def _fake_cuda(monkeypatch, free: int, reserved: int, allocated: int) -> list[int]:
    """A stand-in `torch` whose CUDA memory queries return these numbers; records indices."""
    import sys

    asked: list[int] = []

    def mem_get_info(index: int) -> tuple[int, int]:
        asked.append(index)
        return free, 80 << 30

    cuda = SimpleNamespace(
        mem_get_info=mem_get_info,
        memory_reserved=lambda index: reserved,
        memory_allocated=lambda index: allocated,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    return asked


def test_cuda_tile_budget_counts_cached_memory_as_free(monkeypatch) -> None:
    """The second image must not get half the first one's budget because PyTorch kept the
    first one's blocks cached."""
    from scn_deploy.engines.memory import default_memory_budget

    gib = 1 << 30
    asked = _fake_cuda(monkeypatch, free=2 * gib, reserved=3 * gib, allocated=1 * gib)
    assert default_memory_budget("cuda:2") == 2 * gib  # (2 + 3 - 1) / 2
    assert asked == [2]


def test_cuda_tile_budget_is_capped_on_large_cards(monkeypatch) -> None:
    from scn_deploy.engines.memory import CUDA_MAX_BUDGET, default_memory_budget

    _fake_cuda(monkeypatch, free=76 << 30, reserved=0, allocated=0)
    assert default_memory_budget("cuda") == CUDA_MAX_BUDGET


def test_cuda_tile_budget_without_torch_falls_back(monkeypatch) -> None:
    import sys

    from scn_deploy.engines.memory import default_memory_budget

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert default_memory_budget("cuda") == 2 << 30


# -- the TensorRT engine end to end on fakes: TensorRT's runtime and the CUDA runtime ---------
class FakeCudart:
    """The CUDA runtime calls `cuda_runtime.CudaRuntime` makes, on host memory: device
    pointers index bytearrays; copies really move the bytes; every call is recorded."""

    cudaError_t = SimpleNamespace(cudaSuccess="ok")
    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice="h2d", cudaMemcpyDeviceToHost="d2h")

    def __init__(self, devices: int = 2) -> None:
        self.devices, self.current = devices, 0
        self.memory: dict[int, bytearray] = {}
        self.calls: list[tuple] = []
        self.next_pointer = 0x1000

    def cudaGetDeviceCount(self):
        return "ok", self.devices

    def cudaGetDevice(self):
        return "ok", self.current

    def cudaSetDevice(self, index):
        self.calls.append(("set_device", index))
        self.current = index
        return ("ok",)

    def cudaGetDeviceProperties(self, index):
        return "ok", SimpleNamespace(name=f"Fake GPU {index}".encode() + b"\x00\x00")

    def cudaMemGetInfo(self):
        return "ok", (10 + self.current) << 30, 80 << 30

    def cudaMalloc(self, nbytes):
        pointer, self.next_pointer = self.next_pointer, self.next_pointer + nbytes + 256
        self.memory[pointer] = bytearray(nbytes)
        self.calls.append(("malloc", self.current, nbytes))
        return "ok", pointer

    def cudaFree(self, pointer):
        del self.memory[pointer]
        self.calls.append(("free", pointer))
        return ("ok",)

    def cudaStreamCreate(self):
        return "ok", 77

    def cudaStreamDestroy(self, stream):
        self.calls.append(("destroy_stream", stream))
        return ("ok",)

    def cudaStreamSynchronize(self, stream):
        self.calls.append(("sync", stream))
        return ("ok",)

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        import ctypes

        self.calls.append(("copy", kind, count, stream))
        if kind == "h2d":
            self.memory[dst][:count] = ctypes.string_at(src, count)
        else:
            ctypes.memmove(dst, bytes(self.memory[src][:count]), count)
        return ("ok",)


def _fake_tensorrt(cudart: FakeCudart, scale: int, io_dtype: str):
    """A stand-in `tensorrt` module whose engine upscales (nearest) in device memory, with
    inputs and output declared as `io_dtype` ("f32" or "f16")."""
    dtypes = {"f32": np.float32, "f16": np.float16}
    trt = SimpleNamespace(
        DataType=SimpleNamespace(FLOAT="f32", HALF="f16"),
        TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"),
        Logger=SimpleNamespace(WARNING=2),
    )
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})

    class Context:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}
            self.addresses: dict[str, int] = {}
            self.streams: list[int] = []

        def set_input_shape(self, name, shape):
            self.shapes[name] = shape

        def set_tensor_address(self, name, pointer):
            self.addresses[name] = pointer

        def get_tensor_shape(self, name):
            b, c, h, w = self.shapes["image"]
            return (b, c, h * scale, w * scale)

        def execute_async_v3(self, stream):
            self.streams.append(stream)
            dtype = dtypes[io_dtype]
            shape = self.shapes["image"]
            count = int(np.prod(shape)) * np.dtype(dtype).itemsize
            raw = bytes(cudart.memory[self.addresses["image"]][:count])
            x = np.frombuffer(raw, dtype).reshape(shape)
            y = x.repeat(scale, axis=2).repeat(scale, axis=3)
            cudart.memory[self.addresses["output"]][: y.nbytes] = y.tobytes()
            return True

    class CudaEngine:
        num_io_tensors = 2
        names = ("image", "output")

        def __init__(self) -> None:
            self.context = Context()

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, name):
            return "in" if name == "image" else "out"

        def get_tensor_dtype(self, name):
            return io_dtype

        def create_execution_context(self):
            return self.context

    class Runtime:
        def __init__(self, logger) -> None:
            pass

        def deserialize_cuda_engine(self, data):
            trt.engine = CudaEngine()
            return trt.engine

    trt.Runtime = Runtime
    return trt


def _tensorrt_on_fakes(monkeypatch, tmp_path: Path, io_dtype: str):
    """Patch in the fakes; returns (cudart, trt, builds) where builds records build_engine's
    arguments."""
    import sys

    from scn_deploy.engines import cuda_runtime
    from scn_deploy.exporting import tensorrt_build

    cudart = FakeCudart()
    trt = _fake_tensorrt(cudart, scale=2, io_dtype=io_dtype)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(cuda_runtime, "import_cudart", lambda: cudart)
    engine_file = tmp_path / "fake.engine"
    engine_file.write_bytes(b"serialized")
    builds: list[dict] = []

    def fake_build(onnx_path, *, profile, fp16=False, cache=None, gpu=None):
        builds.append({"profile": profile, "fp16": fp16, "gpu": gpu, "device": cudart.current})
        return SimpleNamespace(path=engine_file)

    monkeypatch.setattr(tensorrt_build, "build_engine", fake_build)
    return cudart, trt, builds


def test_tensorrt_engine_runs_on_cuda_runtime_buffers_without_torch(monkeypatch, tmp_path) -> None:
    """fp16 engine on cuda:1: built and run on device 1, inputs copied in the engine's dtype
    (half), output read back as float32, our own stream everywhere, buffers reused, then
    freed; no torch involved."""
    import sys

    from scn_deploy.engines.tensorrt_engine import TensorrtEngine, TensorrtOptions

    cudart, trt, builds = _tensorrt_on_fakes(monkeypatch, tmp_path, io_dtype="f16")
    monkeypatch.setitem(sys.modules, "torch", None)  # any torch import would fail
    onnx = export_dir() / "sr-x2-s3.onnx"
    engine = TensorrtEngine(
        onnx, device="cuda:1", precision="fp16", options=TensorrtOptions(tile=128, batch=2)
    )
    assert builds == [
        {
            "profile": profile_for(read_spec(zoo_path("sr-x2")), 3, batch=2, tile=128),
            "fp16": True,
            "gpu": "Fake GPU 1",
            "device": 1,
        }
    ]
    assert engine.max_tile == 128
    x = np.random.default_rng(0).random((2, 3, 40, 24), dtype=np.float32)
    y = engine.infer(x)
    assert y.dtype == np.float32 and y.shape == (2, 3, 80, 48)
    expected = x.astype(np.float16).astype(np.float32).repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_array_equal(y, expected)
    copies = [c for c in cudart.calls if c[0] == "copy"]
    assert copies == [("copy", "h2d", x.size * 2, 77), ("copy", "d2h", y.size * 2, 77)]
    assert trt.engine.context.streams == [77]
    mallocs = [c for c in cudart.calls if c[0] == "malloc"]
    assert {c[1] for c in mallocs} == {1} and len(mallocs) == 2
    engine.infer(x[:1, :, :20, :20])  # smaller: the buffers are reused
    assert len([c for c in cudart.calls if c[0] == "malloc"]) == 2
    cudart.current = 0  # the caller moved on to another device: the engine goes back to 1
    engine.infer(x)
    assert cudart.current == 1
    engine.close()
    assert not cudart.memory and ("destroy_stream", 77) in cudart.calls


def test_the_registry_builds_tensorrt_for_the_runs_tile_and_batch(monkeypatch, tmp_path) -> None:
    """`scn upscale --engine tensorrt --tile 512 --batch 2` builds the profile (hence the
    cache entry) of `scn export --trt --tile 512 --batch 2`; --tile auto builds for 256."""
    from scn_deploy.engines import registry

    _cudart, _trt, builds = _tensorrt_on_fakes(monkeypatch, tmp_path, io_dtype="f32")
    monkeypatch.setattr(registry, "installed", lambda name: True)
    monkeypatch.setattr(registry, "cuda_present", lambda: True)
    model = zoo_path("sr-x2")
    spec = read_spec(model)
    engine = load_engine(model, EngineOptions(engine="tensorrt", device="cuda", tile=512, batch=2))
    assert engine.name == "tensorrt" and engine.max_tile == 512
    assert builds[-1]["profile"] == profile_for(spec, 3, batch=2, tile=512)
    load_engine(model, EngineOptions(engine="tensorrt", device="cuda"))
    assert builds[-1]["profile"] == profile_for(spec, 3, batch=1, tile=256)


def test_cuda_tile_budget_without_torch_asks_the_cuda_runtime(monkeypatch) -> None:
    import sys

    from scn_deploy.engines import cuda_runtime
    from scn_deploy.engines.memory import default_memory_budget

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(cuda_runtime, "import_cudart", lambda: FakeCudart())
    assert default_memory_budget("cuda:1") == 11 << 29  # half of the 11 GiB free on device 1


def test_tensorrt_is_unavailable_without_the_cuda_runtime_bindings(monkeypatch) -> None:
    import sys

    from scn_deploy.engines import cuda_runtime
    from scn_deploy.exporting.tensorrt_build import tensorrt_unavailable_reason

    monkeypatch.setitem(sys.modules, "tensorrt", SimpleNamespace())

    def missing():
        raise ConfigError("the CUDA runtime bindings are not installed: pip install x")

    monkeypatch.setattr(cuda_runtime, "import_cudart", missing)
    assert "CUDA runtime bindings" in tensorrt_unavailable_reason()
    monkeypatch.setattr(cuda_runtime, "import_cudart", lambda: FakeCudart(devices=0))
    assert "no CUDA GPU" in tensorrt_unavailable_reason()
    monkeypatch.setattr(cuda_runtime, "import_cudart", lambda: FakeCudart(devices=1))
    assert tensorrt_unavailable_reason() is None


def test_bench_on_cuda_compares_with_the_peak_of_its_own_arithmetic() -> None:
    from scn_deploy.bench import gemm_arithmetic

    assert gemm_arithmetic("cpu", "bf16") == "fp32"  # CPU rows: the fp32 peak, as documented
    assert gemm_arithmetic("cuda", "fp32") == "tf32"
    assert gemm_arithmetic("cuda:1", "fp16") == "fp16"


def test_bench_reports_gpu_memory_without_torch(monkeypatch) -> None:
    """The GPU image has no torch: memory and the GPU's name come from the CUDA runtime."""
    import sys

    from scn_deploy.bench import gpu_memory_mb, host_description
    from scn_deploy.engines import cuda_runtime

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(cuda_runtime, "import_cudart", lambda: FakeCudart())
    assert gpu_memory_mb("cpu") is None
    assert gpu_memory_mb("cuda:1") == {"used": (80 - 11) * 1024}
    assert host_description("cuda:1") == "Fake GPU 1"


def test_bench_reports_torchs_peak_beside_the_device_view(monkeypatch) -> None:
    import sys

    from scn_deploy.bench import gpu_memory_mb

    cuda = SimpleNamespace(
        mem_get_info=lambda index: (60 << 30, 80 << 30),
        max_memory_allocated=lambda index: 3 << 30,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    assert gpu_memory_mb("cuda") == {"torch_peak_allocated": 3072.0, "used": 20480.0}
