"""Tests for scn_deploy.metrics on constructed images."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scn_deploy.metrics import psnr, psnr_float, rgb_to_y, ssim

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _textured(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 226, shape, dtype=np.uint8)


# --------------------------------------------------------------------------------------- Y


def test_y_of_pure_colours() -> None:
    px = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8
    )
    y = rgb_to_y(px)
    assert y.dtype == np.float64 and y.shape == (1, 5)
    np.testing.assert_allclose(y[0], [16 + 65.481, 16 + 128.553, 16 + 24.966, 235.0, 16.0])


def test_y_is_not_rounded_and_gray_passes_through() -> None:
    y = rgb_to_y(np.array([[[10, 20, 30]]], dtype=np.uint8))
    expected = 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255
    assert y[0, 0] == pytest.approx(expected, abs=1e-12)
    assert y[0, 0] != round(y[0, 0])
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    g = rgb_to_y(gray)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, gray)
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((2, 2, 4), dtype=np.uint8))


# -------------------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf() -> None:
    img = _textured((20, 20, 3))
    assert psnr(img, img) == math.inf
    assert psnr(img, img, y_channel=False) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_mse() -> None:
    ref = np.full((16, 16), 100, dtype=np.uint8)
    out = ref.copy()
    out[:8] += 4  # half the pixels off by 4 -> MSE = 8
    assert psnr(out, ref) == pytest.approx(10 * math.log10(255**2 / 8), abs=1e-12)


def test_psnr_constant_offset_gray_rgb_and_y() -> None:
    ref = _textured((24, 24, 3))
    out = ref + np.uint8(10)
    # all channels: MSE = 100
    assert psnr(out, ref, y_channel=False) == pytest.approx(
        10 * math.log10(255**2 / 100), abs=1e-12
    )
    # Y channel: the offset becomes 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219 / 255
    dy = 10 * 219 / 255
    assert psnr(out, ref) == pytest.approx(20 * math.log10(255 / dy), abs=1e-9)
    # gray images are used as they are
    assert psnr(out[:, :, 0], ref[:, :, 0]) == pytest.approx(
        10 * math.log10(255**2 / 100), abs=1e-12
    )


def test_psnr_float_input_is_rounded_to_uint8() -> None:
    ref = _textured((12, 12))
    assert psnr(ref.astype(np.float64) + 0.4, ref) == math.inf
    assert psnr(ref.astype(np.float64) - 0.4, ref) == math.inf
    # out-of-range floats saturate like a saved 8-bit image
    hi = np.full((12, 12), 300.0)
    assert psnr(hi, np.full((12, 12), 255, dtype=np.uint8)) == math.inf


def test_crop_border_is_honoured() -> None:
    ref = _textured((20, 20, 3), seed=1)
    out = ref.copy()
    out[:3] = 0  # damage a 3-pixel band at the top only
    assert psnr(out, ref, crop_border=3) == math.inf
    assert psnr(out, ref, crop_border=2) < 40
    assert ssim(out, ref, crop_border=3) == pytest.approx(1.0, abs=1e-12)
    assert ssim(out, ref, crop_border=0) < 0.99
    # cropping removes exactly crop_border rows/columns on each side
    ref_g = np.zeros((10, 10), dtype=np.uint8)
    out_g = ref_g.copy()
    out_g[2:8, 2:8] = 3  # 36 inner pixels off by 3; crop 1 -> 8x8 = 64 pixels
    assert psnr(out_g, ref_g, crop_border=1) == pytest.approx(
        10 * math.log10(255**2 / (36 * 9 / 64)), abs=1e-12
    )
    with pytest.raises(ValueError):
        psnr(out_g, ref_g, crop_border=5)


def test_shape_mismatch_and_bad_dtype() -> None:
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4), np.int32), np.zeros((4, 4), np.int32))


def test_psnr_float_unquantised() -> None:
    rng = np.random.default_rng(0)
    clean = rng.random((128, 128))
    noisy = clean + rng.standard_normal(clean.shape) * (25 / 255)
    assert psnr_float(noisy, clean) == pytest.approx(20 * math.log10(255 / 25), abs=0.05)
    assert psnr_float(clean, clean) == math.inf
    assert psnr_float(clean * 255 + 1, clean * 255, data_range=255) == pytest.approx(
        20 * math.log10(255), abs=1e-9
    )


# -------------------------------------------------------------------------------------- SSIM


def test_ssim_constant_images_closed_form() -> None:
    # constant images: sigma = 0, so SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1)
    a = np.full((32, 32), 100, dtype=np.uint8)
    b = np.full((32, 32), 110, dtype=np.uint8)
    expected = (2 * 100 * 110 + C1) / (100**2 + 110**2 + C1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_ssim_symmetric_and_below_one_for_noise() -> None:
    ref = _textured((48, 48), seed=2)
    rng = np.random.default_rng(5)
    noisy = np.clip(ref + rng.normal(0, 10, ref.shape), 0, 255).astype(np.uint8)
    s1, s2 = ssim(noisy, ref), ssim(ref, noisy)
    assert s1 == pytest.approx(s2, abs=1e-12)
    assert 0 < s1 < 0.99
    more = np.clip(ref + rng.normal(0, 30, ref.shape), 0, 255).astype(np.uint8)
    assert ssim(more, ref) < s1


def test_ssim_matches_skimage_gaussian_reference() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    ref = _textured((40, 50), seed=3)
    rng = np.random.default_rng(9)
    out = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    # skimage with gaussian_weights=True, sigma=1.5 (11x11 window), population covariance and
    # data_range=255 crops the padded border before averaging: the same 'valid' mean.
    expected = metrics.structural_similarity(
        out.astype(np.float64),
        ref.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(out, ref) == pytest.approx(expected, abs=1e-9)


def test_ssim_rgb_channel_average_and_y() -> None:
    ref = _textured((30, 30, 3), seed=4)
    rng = np.random.default_rng(1)
    out = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
    per_channel = [ssim(out[:, :, c], ref[:, :, c]) for c in range(3)]
    assert ssim(out, ref, y_channel=False) == pytest.approx(np.mean(per_channel), abs=1e-12)
    assert ssim(out, ref) != pytest.approx(np.mean(per_channel), abs=1e-6)


def test_ssim_too_small() -> None:
    with pytest.raises(ValueError):
        ssim(np.zeros((10, 30), np.uint8), np.zeros((10, 30), np.uint8))
