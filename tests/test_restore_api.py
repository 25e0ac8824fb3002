"""The Python API under the CLI: `restore()`, `Restorer`, TTA, colour handling, quantisation.

The runtime is tested as shipped: the zoo's fast models through their ONNX exports (no torch
needed). The restored outputs are checked against references: bicubic upscaling, the clean
photo, the hand-made x8 TTA average. Only the tests that build a fresh network or run the
torch engine need torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from scn_deploy.degrade import add_gaussian_noise, bicubic_degrade, imresize, jpeg_compress
from scn_deploy.dihedral import DIHEDRAL, dihedral, dihedral_inverse
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.errors import ConfigError
from scn_deploy.metrics import psnr
from scn_deploy.restore import (
    RestoreOptions,
    Restorer,
    planes_to_image,
    restore,
    to_dtype,
    to_float,
)
from scn_deploy.zoo import zoo_path

ONNX = EngineOptions(engine="onnx", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def photo_hr() -> np.ndarray:
    """A 128x128 crop of a real photo (astronaut's face and suit) as the ground truth."""
    return data.astronaut()[64:192, 64:192]


def _gray(image: np.ndarray) -> np.ndarray:
    return image[..., 1]


def _u8(image01: np.ndarray) -> np.ndarray:
    return to_dtype(image01, np.uint8)


# -- quantisation ------------------------------------------------------------------------------


def test_to_dtype_uint8_rounds_half_to_even_and_clips() -> None:
    values = np.array([-0.3, 0.0, 0.4, 0.6, 1.5, 2.5, 127.5, 254.4, 254.6, 255.0, 300.0])
    image = (values / 255).astype(np.float32).reshape(1, -1)
    expected = [0, 0, 0, 1, 2, 2, 128, 254, 255, 255, 255]
    out = to_dtype(image, np.uint8)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out.ravel().tolist() == expected


def test_to_dtype_uint8_equals_the_numpy_reference_on_every_layout() -> None:
    """The OpenCV fast path is `clip(rint(x * 255), 0, 255)` exactly, on gray, colour and
    strided (non-contiguous) arrays, including values outside [0, 1]."""
    ramp = np.linspace(-0.1, 1.1, 64 * 48 * 3, dtype=np.float32).reshape(64, 48, 3)
    rng = np.random.default_rng(0)
    noisy = (ramp + rng.normal(0, 0.01, ramp.shape)).astype(np.float32)
    for image in (noisy, noisy[..., 0], noisy[::2, ::3], noisy[:, :, 1:]):
        reference = np.clip(np.rint(image * np.float32(255)), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(to_dtype(image, np.uint8), reference)


def test_to_dtype_uint16_and_float() -> None:
    image = np.array([[-0.2, 0.0, 0.5, 1 / 65535, 1.0, 1.3]], np.float32)
    deep = to_dtype(image, np.uint16)
    assert deep.dtype == np.uint16
    assert deep.ravel().tolist() == [0, 0, 32768, 1, 65535, 65535]  # 32767.5 -> even
    flt = to_dtype(image, np.float32)
    assert flt.dtype == np.float32
    np.testing.assert_array_equal(flt, np.clip(image, 0, 1))


def test_to_float_inverts_to_dtype() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_dtype(to_float(pixels), np.uint8), pixels)
    deep = rng.integers(0, 65536, (8, 9), dtype=np.uint16)
    np.testing.assert_array_equal(to_dtype(to_float(deep), np.uint16), deep)
    assert to_float(np.array([[255]], np.uint8)).dtype == np.float32
    halves = np.array([[0.25]], np.float16)
    assert to_float(halves).dtype == np.float32 and to_float(halves)[0, 0] == 0.25
    with pytest.raises(ConfigError, match="unsupported image dtype"):
        to_float(np.zeros((2, 2), np.int32))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_planes_to_image_is_to_dtype_of_the_interleaved_planes(dtype) -> None:
    rng = np.random.default_rng(2)
    planes = rng.uniform(-0.05, 1.05, (3, 20, 40)).astype(np.float32)[:, :, ::2]  # strided
    colour = planes_to_image(planes, dtype, gray=False)
    np.testing.assert_array_equal(colour, to_dtype(planes.transpose(1, 2, 0), dtype))
    gray = planes_to_image(planes[:1], dtype, gray=True)
    assert gray.shape == (20, 20)
    np.testing.assert_array_equal(gray, to_dtype(planes[0], dtype))


# -- Restorer and restore() through the shipped exports ----------------------------------------


def test_restorer_shapes_and_range(zoo_engine, photo_rgb: np.ndarray) -> None:
    eng = zoo_engine("sr-x3-fast")
    assert eng.name == "onnx" and eng.num_scales == 3 and eng.spec.scale == 3
    out = Restorer(eng).restore(photo_rgb[:40, :30])
    assert out.shape == (120, 90, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    gray = Restorer(eng).restore(photo_rgb[:20, :10, 0])
    assert gray.shape == (60, 30)
    deep = Restorer(eng).restore(photo_rgb[:20, :10].astype(np.uint16) * 257, dtype=np.uint16)
    assert deep.dtype == np.uint16 and deep.shape == (60, 30, 3)
    # the same picture as 8 or 16 bits restores to the same values
    eight = Restorer(eng).restore(photo_rgb[:20, :10], dtype=np.uint16)
    assert np.abs(deep.astype(int) - eight).max() <= 1


def test_sr_beats_bicubic_on_a_photo(zoo_engine, photo_hr: np.ndarray) -> None:
    """x2 SR of a bicubic-downscaled photo is closer to the original than bicubic upscaling
    (about +4 dB PSNR-Y on this crop); the one-call `restore` gives the Restorer's result."""
    lr = bicubic_degrade(photo_hr, 2)
    restorer = Restorer(zoo_engine("sr-x2-fast"))
    sr = restorer.restore(lr)
    assert sr.shape == photo_hr.shape
    np.testing.assert_array_equal(restore(lr, model="sr-x2-fast", engine=ONNX), sr)
    bicubic = np.clip(imresize(lr.astype(np.float64), scale=2), 0, 255)
    gain = psnr(_u8(sr), photo_hr, crop_border=2) - psnr(bicubic, photo_hr, crop_border=2)
    assert gain > 2.0, gain


def test_restore_default_engine_picks_the_zoo_model(photo_hr: np.ndarray) -> None:
    """`restore` with no model and no engine: the zoo's fast x2 model on the fastest
    installed engine (OpenVINO or ONNX Runtime here), still well above bicubic."""
    lr = bicubic_degrade(photo_hr, 2)
    sr = restore(lr, task="sr", scale=2, fast=True)
    bicubic = np.clip(imresize(lr.astype(np.float64), scale=2), 0, 255)
    gain = psnr(_u8(sr), photo_hr, crop_border=2) - psnr(bicubic, photo_hr, crop_border=2)
    assert gain > 2.0, gain


def test_denoise_removes_most_of_the_noise(photo_hr: np.ndarray) -> None:
    clean = _gray(photo_hr)
    noisy = _u8(add_gaussian_noise(to_float(clean), 25.0, rng=0))
    restored = restore(noisy, task="denoise", level=25, fast=True, engine=ONNX)
    assert restored.shape == clean.shape
    assert psnr(_u8(restored), clean) > psnr(noisy, clean) + 8.0
    # the level is the noise the model removes: asking for none leaves far more of it
    light = restore(noisy, task="denoise", level=5, fast=True, engine=ONNX)
    assert psnr(_u8(light), clean) < psnr(_u8(restored), clean) - 3.0


def test_deblock_and_jpeg_inputs_to_sr(photo_hr: np.ndarray) -> None:
    """The deblocking model improves a quality-20 JPEG; `restore(jpeg_quality=...)` deblocks a
    JPEG before upscaling it, which beats upscaling its blocks."""
    clean = _gray(photo_hr)
    jpeg = jpeg_compress(clean, 20)
    deblocked = restore(jpeg, task="deblock", level=20, fast=True, engine=ONNX)
    assert psnr(_u8(deblocked), clean) > psnr(jpeg, clean) + 1.0
    lr_jpeg = jpeg_compress(bicubic_degrade(photo_hr, 2), 20)
    plain = restore(lr_jpeg, model="sr-x2-fast", engine=ONNX)
    cleaned = restore(lr_jpeg, task="sr", fast=True, jpeg_quality=20, engine=ONNX)
    assert psnr(_u8(cleaned), photo_hr, crop_border=2) > (
        psnr(_u8(plain), photo_hr, crop_border=2) + 0.5
    )


def test_gray_model_restores_rgb_channel_by_channel(zoo_engine, photo_rgb) -> None:
    r = Restorer(zoo_engine("denoise-gray-fast"))
    crop = photo_rgb[:16, :16]
    rgb = r.restore(crop, level=25)
    per_channel = np.stack([r.restore(crop[..., c], level=25) for c in range(3)], -1)
    assert rgb.shape == (16, 16, 3)
    assert np.abs(rgb - per_channel).max() < 1e-5
    with pytest.raises(ConfigError, match="sigma"):
        r.restore(crop)
    with pytest.raises(ConfigError, match="outside the range"):
        r.restore(crop, level=90)


def test_tta_is_the_mean_of_the_eight_transformed_outputs(zoo_engine, photo_rgb) -> None:
    """x8 TTA = the average over the 8 flips/rotations of the model's output on the
    transformed input, transformed back; it differs from the plain output."""
    eng = zoo_engine("sr-x2-fast")
    crop = photo_rgb[100:132, 200:240]  # 32x40: a multiple of the alignment, not square
    x = to_float(crop).transpose(2, 0, 1)[None]
    outputs = [dihedral_inverse(eng.infer(dihedral(x, k, flip)), k, flip) for k, flip in DIHEDRAL]
    expected = np.clip(np.mean(outputs, axis=0)[0].transpose(1, 2, 0), 0, 1)
    tta = Restorer(eng, RestoreOptions(tta=True)).restore(crop)
    assert tta.shape == expected.shape == (64, 80, 3)
    assert np.abs(tta - expected).max() < 1e-5
    assert np.abs(tta - Restorer(eng).restore(crop)).max() > 1e-3


def test_unknown_model_engine_and_precision() -> None:
    with pytest.raises(ConfigError, match="no model file or zoo model"):
        restore(np.zeros((8, 8, 3), np.uint8), model="no-such-model")
    with pytest.raises(ConfigError, match="unknown engine"):
        load_engine(zoo_path("sr-x2-fast"), EngineOptions(engine="magic"))
    with pytest.raises(ConfigError, match="unknown precision"):
        load_engine(zoo_path("sr-x2-fast"), EngineOptions(precision="fp64"))


# -- what needs torch: the torch engine, freshly built networks --------------------------------


def test_torch_engine_matches_the_shipped_export(zoo_engine, photo_rgb) -> None:
    pytest.importorskip("torch")
    torch_engine = load_engine(zoo_path("sr-x2-fast"), EngineOptions(engine="torch"))
    assert torch_engine.name == "torch" and torch_engine.num_scales == 3
    crop = photo_rgb[:40, :30]
    ours = Restorer(torch_engine).restore(crop)
    shipped = Restorer(zoo_engine("sr-x2-fast")).restore(crop)
    assert ours.shape == shipped.shape == (80, 60, 3)
    assert np.abs(ours - shipped).max() < 1e-3


def test_tta_is_invariant_for_a_symmetric_model(tmp_path: Path, photo_rgb) -> None:
    """With dihedral-symmetric kernels the network commutes with flips/rotations, so x8 TTA
    must return exactly the plain output (up to float rounding)."""
    torch = pytest.importorskip("torch")
    from scn_deploy.arch import preset_spec
    from scn_deploy.arch.scn import build_network
    from scn_deploy.modelfile import save_model

    spec = preset_spec("tiny", task="denoise", num_scales=1, quality=None)
    torch.manual_seed(0)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
            if p.ndim == 4 and "original1" in name:
                # Make every kernel invariant to flips and transposition (dihedral symmetric).
                sym = p + p.flip(-1) + p.flip(-2) + p.flip(-1, -2)
                p.copy_(sym + sym.transpose(-1, -2))
    eng = load_engine(save_model(tmp_path / "sym.safetensors", model, spec))
    img = photo_rgb[100:132, 200:232]
    plain = Restorer(eng).restore(img)
    tta = Restorer(eng, RestoreOptions(tta=True)).restore(img)
    assert np.abs(plain - tta).max() < 1e-5
