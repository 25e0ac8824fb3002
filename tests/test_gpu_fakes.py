"""The GPU logic that can be checked without a GPU: TensorRT profiles and cache keys, buffer
dtypes, tile limits and where the receptive field is measured (fakes, no torch needed)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from scn_deploy.arch.facts import pyramid_alignment, receptive_field_bound
from scn_deploy.engines.base import Engine
from scn_deploy.errors import ConfigError
from scn_deploy.exporting.cache import export_dir
from scn_deploy.exporting.tensorrt_build import (
    TrtProfile,
    cache_key,
    profile_for,
    torch_dtype_of,
)
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

    def fake_build(onnx_path, *, profile, fp16=False, cache=None):
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
    torch = SimpleNamespace(float32="torch.float32", float16="torch.float16")
    assert torch_dtype_of("f32", trt, torch) == "torch.float32"
    assert torch_dtype_of("f16", trt, torch) == "torch.float16"
    with pytest.raises(ConfigError, match="float or half"):
        torch_dtype_of("i8", trt, torch)


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
    twinned = registry._with_twin(gpu, zoo_path("sr-x2"), None)
    assert twinned.fp32_twin is not None
    assert twinned.fp32_twin.args[:3] == ("onnx", zoo_path("sr-x2"), "cpu")
    cpu = FakeEngine(spec, device="cpu")
    cpu.precision = "fp32"
    cpu.name = "onnx"
    assert registry._with_twin(cpu, zoo_path("sr-x2"), None).fp32_twin is None


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
    from scn_deploy.tiling import default_memory_budget

    gib = 1 << 30
    asked = _fake_cuda(monkeypatch, free=2 * gib, reserved=3 * gib, allocated=1 * gib)
    assert default_memory_budget("cuda:2") == 2 * gib  # (2 + 3 - 1) / 2
    assert asked == [2]


def test_cuda_tile_budget_is_capped_on_large_cards(monkeypatch) -> None:
    from scn_deploy.tiling import CUDA_MAX_BUDGET, default_memory_budget

    _fake_cuda(monkeypatch, free=76 << 30, reserved=0, allocated=0)
    assert default_memory_budget("cuda") == CUDA_MAX_BUDGET


def test_cuda_tile_budget_without_torch_falls_back(monkeypatch) -> None:
    import sys

    from scn_deploy.tiling import default_memory_budget

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert default_memory_budget("cuda") == 2 << 30
