"""Image-quality metrics with the conventions of the SR / restoration literature (BasicSR-like).

Conventions shared by :func:`psnr` and :func:`ssim`:

* Inputs are images on the 0-255 scale: uint8, or float in [0, 255]. Float inputs are first
  rounded (``np.rint``: ties to even) and clipped to uint8, because published numbers are
  computed on saved 8-bit results. Pass already-quantised uint8 images to skip that step.
* ``y_channel=True`` evaluates on the BT.601 luma of RGB images,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in 0-255, kept as float64
  in [16, 235] (**not** rounded). Gray (HxW or HxWx1) images are used as they are.
* ``crop_border`` pixels are removed on each side before measuring (SR convention: the scale).
* The peak value is 255.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["psnr", "psnr_float", "rgb_to_y", "ssim"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (MATLAB ``rgb2ycbcr`` Y row) as float64 in [16, 235], not rounded.

    ``img`` is RGB on the 0-255 scale (uint8, or float in [0, 255]; a float image in [0, 1] must
    be multiplied by 255 first). Computes ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``.
    An HxW (gray) image is returned unchanged as float64; HxWx1 is squeezed to HxW.
    Extra channels beyond RGB (e.g. alpha) are rejected.
    """
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return arr[:, :, 0].astype(np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"rgb_to_y: expected HxW or HxWx3 RGB, got shape {arr.shape}")
    return (arr.astype(np.float64) @ _Y_WEIGHTS) / 255.0 + 16.0


def y_uint8(img: np.ndarray) -> np.ndarray:
    """Colour -> BT.601 Y rounded to uint8 (``np.rint``, as KAIR's rgb2ycbcr); gray as is."""
    if img.ndim == 2:
        return img
    return np.clip(np.rint(rgb_to_y(img[:, :, :3])), 0, 255).astype(np.uint8)


def _to_uint8(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        # Round (ties to even, as numpy/torch ``round`` in the usual test code), then saturate.
        return np.clip(np.rint(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    raise ValueError(f"{name}: expected uint8 or float in [0, 255], got dtype {arr.dtype}")


def _prepare(
    restored: np.ndarray, reference: np.ndarray, crop_border: int, y_channel: bool, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Quantise, pick the channel(s), crop; returns float64 arrays (HxW or HxWxC)."""
    a = _to_uint8(restored, name)
    b = _to_uint8(reference, name)
    if a.shape != b.shape:
        raise ValueError(f"{name}: shape mismatch {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{name}: expected HxW or HxWxC images, got shape {a.shape}")
    if crop_border < 0:
        raise ValueError(f"{name}: crop_border must be >= 0, got {crop_border}")
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[:, :, 0], b[:, :, 0]
    if y_channel and a.ndim == 3:
        a2, b2 = rgb_to_y(a), rgb_to_y(b)
    else:
        a2, b2 = a.astype(np.float64), b.astype(np.float64)
    if crop_border:
        h, w = a2.shape[:2]
        if 2 * crop_border >= h or 2 * crop_border >= w:
            raise ValueError(f"{name}: crop_border {crop_border} leaves nothing of {h}x{w}")
        a2 = a2[crop_border:-crop_border, crop_border:-crop_border, ...]
        b2 = b2[crop_border:-crop_border, crop_border:-crop_border, ...]
    return a2, b2


def psnr(
    restored: np.ndarray,
    reference: np.ndarray,
    crop_border: int = 0,
    y_channel: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB, peak 255: ``10 log10(255^2 / MSE)``.

    ``restored`` and ``reference`` are uint8 (float 0-255 input is rounded to uint8 first, see
    the module docstring). With ``y_channel`` (default) RGB images are compared on the float
    (unrounded) BT.601 Y channel; otherwise the MSE is taken over all channels. Gray images are
    used as they are. ``crop_border`` pixels are dropped at each side. Identical images give
    ``inf``.
    """
    a, b = _prepare(restored, reference, crop_border, y_channel, "psnr")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def psnr_float(
    restored: np.ndarray,
    reference: np.ndarray,
    data_range: float = 1.0,
    crop_border: int = 0,
) -> float:
    """PSNR of float images *without* quantisation: ``10 log10(data_range^2 / MSE)``.

    For measuring unclipped, unquantised signals (e.g. the noisy input of the AWGN protocol,
    whose PSNR is ``20 log10(255 / sigma)`` in expectation). All channels are used as given.
    """
    a = np.asarray(restored, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr_float: shape mismatch {a.shape} vs {b.shape}")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border, ...]
        b = b[crop_border:-crop_border, crop_border:-crop_border, ...]
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / mse)


# SSIM constants of Wang et al. (2004), MATLAB ssim_index.m
_SSIM_WIN = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two float64 HxW arrays: 11x11 Gaussian (sigma 1.5), 'valid' filtering."""
    h, w = a.shape
    if h < _SSIM_WIN or w < _SSIM_WIN:
        raise ValueError(f"ssim: image {h}x{w} is smaller than the {_SSIM_WIN}x{_SSIM_WIN} window")
    g = cv2.getGaussianKernel(_SSIM_WIN, _SSIM_SIGMA, ktype=cv2.CV_64F)
    r = _SSIM_WIN // 2

    def filt(x: np.ndarray) -> np.ndarray:
        # Separable Gaussian; keep only the 'valid' part (no border pixels involved).
        y = cv2.sepFilter2D(
            np.ascontiguousarray(x), cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT
        )
        return y[r : h - r, r : w - r]

    mu1 = filt(a)
    mu2 = filt(b)
    mu1_sq = mu1 * mu1
    mu2_sq = mu2 * mu2
    mu1_mu2 = mu1 * mu2
    sigma1_sq = filt(a * a) - mu1_sq
    sigma2_sq = filt(b * b) - mu2_sq
    sigma12 = filt(a * b) - mu1_mu2
    num = (2.0 * mu1_mu2 + _SSIM_C1) * (2.0 * sigma12 + _SSIM_C2)
    den = (mu1_sq + mu2_sq + _SSIM_C1) * (sigma1_sq + sigma2_sq + _SSIM_C2)
    return float(np.mean(num / den))


def ssim(
    restored: np.ndarray,
    reference: np.ndarray,
    crop_border: int = 0,
    y_channel: bool = True,
) -> float:
    """Structural similarity, the MATLAB ``ssim_index`` reference of Wang et al. (2004).

    11x11 Gaussian window with sigma 1.5 (normalised), K1 = 0.01, K2 = 0.03, L = 255,
    'valid' filtering (no padding, no automatic downsampling), mean of the SSIM map.
    Inputs, Y conversion and cropping follow :func:`psnr` (uint8; floats rounded to uint8 first;
    Y not rounded). For RGB with ``y_channel=False`` the per-channel SSIMs are averaged.
    """
    a, b = _prepare(restored, reference, crop_border, y_channel, "ssim")
    if a.ndim == 2:
        return _ssim_2d(a, b)
    return float(np.mean([_ssim_2d(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))
