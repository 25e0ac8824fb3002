"""Tests for scn_deploy.degrade: MATLAB-style imresize, modcrop, noise, JPEG."""

from __future__ import annotations

import itertools
import math
import time

import cv2
import numpy as np
import pytest

from scn_deploy.degrade import (
    add_gaussian_noise,
    add_gaussian_noise_batch,
    bicubic_degrade,
    cubic_kernel,
    imresize,
    jpeg_compress,
    modcrop,
    resize_weights,
)
from scn_deploy.metrics import psnr

# Keys cubic kernel with a = -0.5, evaluated by hand from
#   |x| <= 1:      1.5|x|^3 - 2.5|x|^2 + 1
#   1 < |x| <= 2: -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2
# k(0.25) = 0.0234375 - 0.15625 + 1           = 0.8671875  (111/128)
# k(0.75) = 0.6328125 - 1.40625 + 1           = 0.2265625  ( 29/128)
# k(1.25) = -0.9765625 + 3.90625 - 5 + 2      = -0.0703125 ( -9/128)
# k(1.75) = -2.6796875 + 7.65625 - 7 + 2      = -0.0234375 ( -3/128)
K025, K075, K125, K175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375

# x2 upscaling of a length-4 signal [a, b, c, d]. Output pixel k sits at input coordinate
# (k + 0.5) / 2 - 0.5 (0-based), i.e. -0.25, 0.25, 0.75, ..., 3.25. Taps outside the signal are
# mirrored MATLAB-style: index -1 -> 0, -2 -> 1, 4 -> 3, 5 -> 2.
#   k=0 (-0.25): taps -2,-1,0,1 at distances 1.75,0.75,0.25,1.25 -> a(K075+K025) + b(K175+K125)
#   k=1 ( 0.25): taps -1,0,1,2 at distances 1.25,0.25,0.75,1.75 -> a(K125+K025) + b K075 + c K175
#   k=2 ( 0.75): taps -1,0,1,2 at distances 1.75,0.75,0.25,1.25 -> a(K175+K075) + b K025 + c K125
#   k=3 ( 1.25): taps 0,1,2,3 at distances 1.25,0.25,0.75,1.75 -> a K125 + b K025 + c K075 + d K175
# and k = 4..7 are the mirror images of k = 3..0.
_ROWS_HALF = np.array(
    [
        [K075 + K025, K175 + K125, 0.0, 0.0],  # = [1.09375, -0.09375, 0, 0]
        [K125 + K025, K075, K175, 0.0],  # = [0.796875, 0.2265625, -0.0234375, 0]
        [K175 + K075, K025, K125, 0.0],  # = [0.203125, 0.8671875, -0.0703125, 0]
        [K125, K025, K075, K175],
    ]
)
UP2_4 = np.vstack([_ROWS_HALF, _ROWS_HALF[::-1, ::-1]])  # (8, 4)


def _dense(weights: np.ndarray, indices: np.ndarray, in_len: int) -> np.ndarray:
    mat = np.zeros((weights.shape[0], in_len))
    for k in range(weights.shape[0]):
        np.add.at(mat[k], indices[k], weights[k])
    return mat


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return modcrop(skdata.astronaut(), 12)  # 504x504x3: divisible by 2, 3 and 4


# ------------------------------------------------------------------------------------ kernel


def test_cubic_kernel_values() -> None:
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, -0.5, -1.5])
    expected = [1.0, K025, 0.5625, K075, 0.0, K125, -0.0625, K175, 0.0, 0.0, 0.5625, -0.0625]
    np.testing.assert_array_equal(cubic_kernel(x), expected)


def test_weights_upscale_x2_match_hand_derivation() -> None:
    w, idx = resize_weights(4, 8, 2.0)
    assert w.shape == idx.shape
    assert idx.min() >= 0 and idx.max() <= 3
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_array_equal(_dense(w, idx, 4), UP2_4)


def test_weights_are_cached_and_read_only() -> None:
    a = resize_weights(100, 50, 0.5)
    b = resize_weights(100, 50, 0.5)
    assert a[0] is b[0]
    with pytest.raises(ValueError):
        a[0][0, 0] = 1.0


def test_weights_downscale_antialias_width() -> None:
    # x1/4 with antialiasing: kernel stretched to width 16 -> 16 non-zero taps per pixel
    # (u is a half-integer, so the end taps at distance 8 are zero and get dropped).
    w, _ = resize_weights(64, 16, 0.25)
    assert w.shape == (16, 16)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    # without antialiasing the plain 4-tap kernel is used
    w2, _ = resize_weights(64, 16, 0.25, antialias=False)
    assert np.count_nonzero(w2[8]) == 4


# ---------------------------------------------------------------------------------- imresize


def test_upscale_1d_signal_matches_hand_weights() -> None:
    sig = np.array([10.0, 40.0, 20.0, 90.0])
    out = imresize(sig[None, :], output_shape=(1, 8))  # height scale 1 is the identity
    np.testing.assert_allclose(out[0], UP2_4 @ sig, atol=1e-12)
    # e.g. first sample: 1.09375 * 10 - 0.09375 * 40 = 7.1875
    assert out[0, 0] == pytest.approx(7.1875, abs=1e-12)


def test_upscale_4x4_matches_hand_derivation() -> None:
    x = np.array([[3, 1, 4, 1], [5, 9, 2, 6], [5, 3, 5, 8], [9, 7, 9, 3]], dtype=np.float64)
    out = imresize(x, 2)
    assert out.shape == (8, 8) and out.dtype == np.float64
    np.testing.assert_allclose(out, UP2_4 @ x @ UP2_4.T, atol=1e-12)
    # colour: each channel is resized independently
    rgb = np.stack([x, 2 * x, x + 7], axis=2)
    out_rgb = imresize(rgb, 2)
    for c, ref in enumerate((x, 2 * x, x + 7)):
        np.testing.assert_allclose(out_rgb[:, :, c], UP2_4 @ ref @ UP2_4.T, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_linear_ramp_is_exact_in_interior(scale: int) -> None:
    n = 72
    i, j = np.mgrid[0:n, 0:n].astype(np.float64)
    ramp = 10.0 + 3.0 * i + 0.5 * j
    out = imresize(ramp, 1.0 / scale)
    assert out.shape == (n // scale, n // scale)
    # Output pixel k samples input coordinate (k + 0.5) * s - 0.5; for integer s the stretched
    # kernel is symmetric about it, so a linear signal is reproduced exactly away from borders.
    k = np.arange(n // scale)
    pos = (k + 0.5) * scale - 0.5
    inner = (pos - 2 * scale >= 0) & (pos + 2 * scale <= n - 1)
    expected = 10.0 + 3.0 * pos[:, None] + 0.5 * pos[None, :]
    np.testing.assert_allclose(out[np.ix_(inner, inner)], expected[np.ix_(inner, inner)], atol=1e-9)
    # near the border the mirror reflection bends the ramp
    assert abs(out[0, 0] - expected[0, 0]) > 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": 0.5},
        {"scale": 1 / 3},
        {"scale": 0.25},
        {"scale": 2},
        {"scale": 3},
        {"scale": 4},
        {"output_shape": (10, 31)},
    ],
)
def test_constant_image_stays_constant(kwargs: dict) -> None:
    img = np.full((17, 23, 3), 77, dtype=np.uint8)
    out = imresize(img, **kwargs)
    assert out.dtype == np.uint8
    assert np.all(out == 77)
    out_f = imresize(img.astype(np.float32) / 255, **kwargs)
    np.testing.assert_allclose(out_f, 77 / 255, rtol=1e-6)


@pytest.mark.parametrize(
    ("shape", "scale", "expected"),
    [
        ((17, 23), 1 / 2, (9, 12)),  # ceil(8.5), ceil(11.5)
        ((17, 23), 1 / 3, (6, 8)),  # ceil(5.67), ceil(7.67)
        ((17, 23), 1 / 4, (5, 6)),  # ceil(4.25), ceil(5.75)
        ((24, 36), 1 / 3, (8, 12)),
        ((5, 7), 3, (15, 21)),
        ((5, 7), 1.5, (8, 11)),  # ceil(7.5), ceil(10.5)
    ],
)
def test_output_shapes(shape: tuple[int, int], scale: float, expected: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    assert imresize(img, scale).shape == expected
    assert imresize(np.dstack([img] * 3), scale).shape == (*expected, 3)


def test_output_shape_argument() -> None:
    img = np.zeros((20, 30, 3), dtype=np.uint8)
    assert imresize(img, output_shape=(7, 45)).shape == (7, 45, 3)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, 0.5, output_shape=(10, 15))
    with pytest.raises(ValueError):
        imresize(img, -2)
    with pytest.raises(ValueError):
        imresize(np.zeros((2, 3, 4, 5)), 2)


def test_uint8_is_rounded_and_clipped_float_is_not() -> None:
    step = np.zeros((8, 16), dtype=np.uint8)
    step[:, 8:] = 255
    out_f = imresize(step.astype(np.float64), 2)
    out_u = imresize(step, 2)
    assert out_u.dtype == np.uint8
    # the bicubic kernel overshoots at a step: float output keeps it, uint8 saturates
    assert out_f.min() < -5 and out_f.max() > 260
    assert out_u.min() == 0 and out_u.max() == 255

    # on a smooth image without saturation, uint8 differs from the float result by rounding only
    i, j = np.mgrid[0:48, 0:48]
    smooth = (128 + 60 * np.sin(i / 5.0) * np.cos(j / 7.0)).astype(np.uint8)
    for s in (0.5, 1 / 3, 0.25, 2.0):
        u = imresize(smooth, s).astype(np.int64)
        f = np.rint(imresize(smooth.astype(np.float64), s))
        assert np.abs(u - f).max() <= 1


def test_exact_ties_round_to_even() -> None:
    # x2 upscale, first sample: 1.09375 * 2 - 0.09375 * 18 = (70 - 54) / 32 = 0.5 exactly
    sig = np.array([[2, 18, 18, 18]], dtype=np.uint8)
    assert imresize(sig.astype(np.float64), output_shape=(1, 8))[0, 0] == 0.5
    assert imresize(sig, output_shape=(1, 8))[0, 0] == 0


def test_uint16_supported() -> None:
    img = np.full((10, 10), 40000, dtype=np.uint16)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint16 and np.all(out == 40000)


def test_large_image_is_fast() -> None:
    # Vectorised: a DIV2K-sized image (scaled to half area to keep the test short) in < 1 s.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (960, 1440, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    out = imresize(img, 0.5)
    assert time.perf_counter() - t0 < 1.0
    assert out.shape == (480, 720, 3)


def test_opencv_and_torch_bicubic_are_not_matlab(astronaut: np.ndarray) -> None:
    """Why imresize exists: common library resizers are not MATLAB's bicubic.

    * OpenCV INTER_CUBIC and torch bicubic (antialias=False) use Keys a = -0.75 and no
      antialiasing: on a x4 downscale they alias and differ from MATLAB by several grey levels
      on average.
    * torch bicubic with antialias=True uses the same a = -0.5 kernel stretched by 1/scale, so it
      is the natural reference: it equals ours in the interior, but at the borders it truncates
      and renormalises the kernel instead of MATLAB's mirror reflection, so edge pixels differ.
    """
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("torch.nn.functional")
    img = astronaut.astype(np.float64)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    for scale in (2, 4):
        ours = imresize(img, 1.0 / scale)
        h, w = ours.shape[:2]
        ocv = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        results = {}
        for aa in (False, True):
            t = functional.interpolate(
                x, size=(h, w), mode="bicubic", align_corners=False, antialias=aa
            )
            results[aa] = t[0].permute(1, 2, 0).numpy()
        t_plain, t_aa = results[False], results[True]

        assert np.abs(ocv - ours).mean() > 1.5
        assert np.abs(t_plain - ours).mean() > 1.5
        # torch antialias=True: same in the interior (away from a 2*scale border) ...
        b = 2 * scale
        np.testing.assert_allclose(t_aa[b:-b, b:-b], ours[b:-b, b:-b], atol=1e-6)
        # ... but not at the border
        assert np.abs(t_aa - ours).max() > 5
        # and overall ours is far closer to the antialiased reference than OpenCV is
        assert np.abs(t_aa - ours).mean() < 0.1 * np.abs(t_aa - ocv).mean()


# ------------------------------------------------------------------------- modcrop / degrade


def test_modcrop() -> None:
    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    out = modcrop(img, 3)
    assert out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out, img[:6, :9])
    assert modcrop(img[:, :, 0], 4).shape == (4, 8)
    assert modcrop(img, 1).shape == img.shape
    with pytest.raises(ValueError):
        modcrop(img, 0)
    with pytest.raises(ValueError):
        modcrop(img, 2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_degrade(scale: int) -> None:
    rng = np.random.default_rng(scale)
    hr = rng.integers(0, 256, (53, 47, 3), dtype=np.uint8)
    lr = bicubic_degrade(hr, scale)
    assert lr.dtype == np.uint8
    assert lr.shape == (53 // scale, 47 // scale, 3)
    np.testing.assert_array_equal(lr, imresize(modcrop(hr, scale), 1.0 / scale))


# ------------------------------------------------------------------------------------- noise


def test_noise_seeded_and_statistics() -> None:
    img = np.full((256, 256), 0.5, dtype=np.float64)
    a = add_gaussian_noise(img, 25, rng=0)
    b = add_gaussian_noise(img, 25, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, add_gaussian_noise(img, 25, rng=1))
    noise = a - img
    assert noise.std() == pytest.approx(25 / 255, rel=0.02)
    assert abs(noise.mean()) < 0.002
    assert a.dtype == np.float64
    # PSNR of the noisy input is about 20 log10(255 / sigma)
    mse = float(np.mean(noise**2))
    assert 10 * math.log10(1 / mse) == pytest.approx(20 * math.log10(255 / 25), abs=0.05)


def test_noise_not_clipped_not_quantised() -> None:
    img = np.zeros((64, 64, 3), dtype=np.float32)
    out = add_gaussian_noise(img, 50, rng=3)
    assert out.dtype == np.float32 and out.shape == img.shape
    assert out.min() < 0  # not clipped
    scaled = out.astype(np.float64) * 255
    assert np.mean(np.abs(scaled - np.rint(scaled)) > 1e-3) > 0.9  # not on the 8-bit grid
    # same noise whatever the float dtype
    out64 = add_gaussian_noise(img.astype(np.float64), 50, rng=3)
    np.testing.assert_allclose(out, out64, atol=1e-6)


def test_noise_rejects_uint8() -> None:
    with pytest.raises(ValueError):
        add_gaussian_noise(np.zeros((4, 4), dtype=np.uint8), 10, rng=0)
    with pytest.raises(ValueError):
        add_gaussian_noise(np.zeros((4, 4)), -1, rng=0)


def test_noise_batch_per_sample_sigma() -> None:
    batch = np.zeros((3, 1, 128, 128), dtype=np.float32)
    out = add_gaussian_noise_batch(batch, [0, 15, 50], rng=0)
    assert out.dtype == np.float32 and out.shape == batch.shape
    assert np.all(out[0] == 0)
    assert out[1].std() == pytest.approx(15 / 255, rel=0.03)
    assert out[2].std() == pytest.approx(50 / 255, rel=0.03)
    same = add_gaussian_noise_batch(batch, 25, rng=7)
    np.testing.assert_array_equal(same, add_gaussian_noise_batch(batch, 25, rng=7))
    with pytest.raises(ValueError):
        add_gaussian_noise_batch(batch, [1, 2], rng=0)


# -------------------------------------------------------------------------------------- JPEG


def test_jpeg_quality_monotonic(astronaut: np.ndarray) -> None:
    img = astronaut[:256, :256]
    scores = [psnr(jpeg_compress(img, q), img) for q in (10, 30, 50, 70, 90)]
    assert all(a < b for a, b in itertools.pairwise(scores))
    assert 25 < scores[0] < scores[-1] < 50


def test_jpeg_shapes_and_channel_order() -> None:
    i, j = np.mgrid[0:64, 0:48]
    gray = (100 + 50 * np.sin(i / 4) * np.cos(j / 6)).astype(np.uint8)
    out = jpeg_compress(gray, 40)
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert jpeg_compress(gray[:, :, None], 40).shape == (64, 48, 1)

    red = np.zeros((64, 48, 3), dtype=np.uint8)
    red[..., 0] = 220
    red[..., 2] = 20
    out_rgb = jpeg_compress(red, 75)
    assert out_rgb.shape == red.shape and out_rgb.dtype == np.uint8
    mean = out_rgb.reshape(-1, 3).mean(axis=0)
    assert mean[0] > 200 and mean[2] < 40  # stays red: RGB <-> BGR handled


def test_jpeg_rejects_bad_input() -> None:
    img = np.zeros((16, 16), dtype=np.uint8)
    with pytest.raises(ValueError):
        jpeg_compress(img, 0)
    with pytest.raises(ValueError):
        jpeg_compress(img, 101)
    with pytest.raises(ValueError):
        jpeg_compress(img.astype(np.float32), 50)
    with pytest.raises(ValueError):
        jpeg_compress(np.zeros((16, 16, 4), dtype=np.uint8), 50)
