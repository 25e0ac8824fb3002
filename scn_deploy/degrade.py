"""Degradations shared by training and evaluation: SR bicubic, Gaussian noise, JPEG.

Everything here follows the published evaluation protocols of the SR / denoising / JPEG
artefact-removal literature:

* :func:`imresize` is a numpy re-implementation of MATLAB ``imresize`` with its default bicubic
  kernel (Keys, ``a = -0.5``), antialiasing when downscaling, MATLAB's dimension order and
  MATLAB's mirror-symmetric boundary handling (``contributions()`` in ``imresize.m``).
* :func:`bicubic_degrade` is the standard "BI" SR degradation (modcrop, then ``imresize(1/s)``).
* :func:`add_gaussian_noise` is the DnCNN / KAIR AWGN protocol (no clipping, no quantisation).
* :func:`jpeg_compress` goes through OpenCV's libjpeg, as the DnCNN / FBCNN test code does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "add_gaussian_noise",
    "add_gaussian_noise_batch",
    "bicubic_degrade",
    "cubic_kernel",
    "imresize",
    "jpeg_compress",
    "modcrop",
    "resize_weights",
]


# --------------------------------------------------------------------------------------------
# modcrop
# --------------------------------------------------------------------------------------------


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width down to multiples of ``scale``, keeping the top-left corner.

    Works on HxW and HxWxC arrays; returns a view (no copy). ``scale`` must be a positive int.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"modcrop: scale must be a positive integer, got {scale!r}")
    if img.ndim not in (2, 3):
        raise ValueError(f"modcrop: expected an HxW or HxWxC image, got shape {img.shape}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


# --------------------------------------------------------------------------------------------
# MATLAB imresize (bicubic)
# --------------------------------------------------------------------------------------------


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5), support [-2, 2].

    ``f(x) = 1.5|x|^3 - 2.5|x|^2 + 1`` for ``|x| <= 1``,
    ``f(x) = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` for ``1 < |x| <= 2``, else 0.
    """
    absx = np.abs(np.asarray(x, dtype=np.float64))
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1.0)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1.0) & (absx <= 2.0))
    return near + far


@lru_cache(maxsize=256)
def _contributions(
    in_length: int, out_length: int, scale: float, antialias: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Port of MATLAB ``contributions()`` (imresize.m); returns 0-based indices."""
    kernel_width = 4.0
    if scale < 1.0 and antialias:
        # Antialiasing: stretch the kernel by 1/scale and widen its support accordingly.
        def h(t: np.ndarray) -> np.ndarray:
            return scale * cubic_kernel(scale * t)

        kernel_width = kernel_width / scale
    else:
        h = cubic_kernel

    # Output pixel x (1-based) maps to input coordinate u (1-based, pixel centres).
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    p = math.ceil(kernel_width) + 2
    ind = left[:, None] + np.arange(p, dtype=np.float64)[None, :]
    weights = h(u[:, None] - ind)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # Mirror-symmetric boundary: aux = [1:in, in:-1:1]; ind = aux(mod(ind-1, 2*in) + 1).
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    ind0 = aux[np.mod(ind.astype(np.int64) - 1, 2 * in_length)]

    # Drop kernel taps that are zero for every output pixel (MATLAB's "kill").
    keep = np.any(weights != 0.0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    ind0 = np.ascontiguousarray(ind0[:, keep])
    weights.setflags(write=False)
    ind0.setflags(write=False)
    return weights, ind0


def resize_weights(
    in_length: int, out_length: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The (weights, indices) tables MATLAB ``imresize`` uses along one axis.

    Row ``k`` gives the input taps (0-based indices, reflected at the borders) and their
    normalised weights for output pixel ``k``. Both arrays are (out_length, P) and read-only;
    results are cached per (in_length, out_length, scale, antialias).
    """
    return _contributions(int(in_length), int(out_length), float(scale), bool(antialias))


_BLOCK_BYTES = 1 << 20  # accumulator block size: keeps the running sum in cache


def _resize_axis(x: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Weighted gather along ``axis`` (0 or 1) of an HxW[xC] array; float64 out.

    ``out[k] = sum_j weights[k, j] * x[indices[k, j]]``, accumulated tap by tap in tap order
    (the summation order of MATLAB's imresizemex). Work is split into row blocks so that the
    accumulator stays in cache; ``x`` may be any real dtype (gathered, then promoted).
    """
    out_len, taps = weights.shape
    out_shape = list(x.shape)
    out_shape[axis] = out_len
    out = np.empty(out_shape, dtype=np.float64)
    rest = (1,) * (x.ndim - 2)
    if axis == 0:
        row_bytes = max(1, int(np.prod(x.shape[1:])) * 8)
        step = max(1, _BLOCK_BYTES // row_bytes)
        for start in range(0, out_len, step):
            stop = min(out_len, start + step)
            acc = out[start:stop]
            w = weights[start:stop]
            idx = indices[start:stop]
            wshape = (stop - start, 1, *rest)
            np.multiply(x[idx[:, 0]], w[:, 0].reshape(wshape), out=acc)
            for j in range(1, taps):
                term = x[idx[:, j]] * w[:, j].reshape(wshape)
                acc += term
    elif axis == 1:
        row_bytes = max(1, out_len * int(np.prod(x.shape[2:])) * 8)
        step = max(1, _BLOCK_BYTES // row_bytes)
        wshape = (1, out_len, *rest)
        for start in range(0, x.shape[0], step):
            xb = x[start : start + step]
            acc = out[start : start + step]
            np.multiply(np.take(xb, indices[:, 0], axis=1), weights[:, 0].reshape(wshape), out=acc)
            for j in range(1, taps):
                term = np.take(xb, indices[:, j], axis=1) * weights[:, j].reshape(wshape)
                acc += term
    else:  # pragma: no cover - internal use only
        raise ValueError(f"axis must be 0 or 1, got {axis}")
    return out


def _round_to_int_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert a float64 pass result back to the integer input class: round, then saturate.

    Exact ties (x.5) are rounded to even (``np.rint``). Ties are real here: for x2 and x4
    upscaling the bicubic weights are dyadic rationals (multiples of 1/128 and 1/1024), so
    integer pixels often give exact .5 results. Round-half-to-even is what the common numpy
    ports of MATLAB imresize do and it reproduces the reference table in shared/data/SOURCES.md
    (Set5 x2 33.674); round-half-away-from-zero gives 33.673 there and is otherwise the same.
    Works in place on ``x`` (a float64 scratch array owned by the caller).
    """
    info = np.iinfo(dtype)
    np.rint(x, out=x)
    np.clip(x, info.min, info.max, out=x)
    return x.astype(dtype)


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    *,
    antialias: bool = True,
) -> np.ndarray:
    """Resize like MATLAB ``imresize(img, scale)`` / ``imresize(img, [h w])``, bicubic.

    Exactly one of ``scale`` and ``output_shape`` must be given.

    * ``scale``: the same factor for both axes; the output size is ``ceil(scale * size)`` and
      the kernel is placed with ``scale`` itself (as MATLAB does), not with ``out / in``.
    * ``output_shape``: ``(out_h, out_w)``; each axis uses its own scale ``out / in``.

    Conventions (all as MATLAB): bicubic kernel with ``a = -0.5``; when downscaling with
    ``antialias=True`` (MATLAB's default) the kernel is stretched by ``1/scale``; borders are
    handled by mirror-symmetric index reflection; the axis with the smaller scale is resized
    first (height first on a tie).

    dtypes: integer input (uint8, uint16, ...) is resized in float64 and, like MATLAB (whose
    per-axis passes keep the input class), converted back to the input class after *each* axis
    pass: rounded (exact ties to even, see ``_round_to_int_dtype``) and saturated.
    Float input gives a float64 output with no rounding and no clipping.

    Works on HxW and HxWxC arrays (any C). Weight tables are cached per axis.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize: expected an HxW or HxWxC image, got shape {img.shape}")
    if img.dtype == np.bool_ or not (
        np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)
    ):
        raise ValueError(f"imresize: unsupported dtype {img.dtype}")
    in_h, in_w = img.shape[:2]
    if in_h == 0 or in_w == 0:
        raise ValueError(f"imresize: empty image of shape {img.shape}")

    if (scale is None) == (output_shape is None):
        raise ValueError("imresize: give exactly one of scale and output_shape")
    if scale is not None:
        scale = float(scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        scales = (scale, scale)
        out_shape = (math.ceil(scale * in_h), math.ceil(scale * in_w))
    else:
        assert output_shape is not None
        out_shape = (int(output_shape[0]), int(output_shape[1]))
        if out_shape[0] < 1 or out_shape[1] < 1:
            raise ValueError(f"imresize: output_shape must be positive, got {output_shape}")
        scales = (out_shape[0] / in_h, out_shape[1] / in_w)

    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    integer = np.issubdtype(img.dtype, np.integer)
    out = img
    for axis in order:
        in_len = out.shape[axis]
        weights, indices = resize_weights(in_len, out_shape[axis], scales[axis], antialias)
        resized = _resize_axis(out, axis, weights, indices)
        out = _round_to_int_dtype(resized, img.dtype) if integer else resized
    return out


def bicubic_degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """The standard "BI" SR degradation: ``imresize(modcrop(hr, scale), 1/scale)``.

    ``hr`` is the RGB (or gray) image as read; the LR is made from it directly (not from a Y
    channel). uint8 in gives uint8 out (MATLAB rounding); float in gives float64 out.
    """
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise ValueError(f"bicubic_degrade: scale must be a positive integer, got {scale!r}")
    return imresize(modcrop(hr, int(scale)), scale=1.0 / int(scale))


# --------------------------------------------------------------------------------------------
# Gaussian noise
# --------------------------------------------------------------------------------------------


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _check_float_image(img01: np.ndarray, name: str) -> np.ndarray:
    img01 = np.asarray(img01)
    if not np.issubdtype(img01.dtype, np.floating):
        raise ValueError(f"{name}: expected a float image in [0, 1], got dtype {img01.dtype}")
    return img01


def add_gaussian_noise(
    img01: np.ndarray, sigma: float, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Additive white Gaussian noise, DnCNN / KAIR evaluation protocol.

    Returns ``img01 + N(0, (sigma / 255)^2)`` where ``img01`` is a float image in [0, 1] and
    ``sigma`` is given in 0-255 units. The result is **not clipped** to [0, 1] and **not
    quantised** to 8 bits: the network sees the raw noisy float image, as in the published
    DnCNN/FFDNet/KAIR test code.

    ``rng`` is a ``np.random.Generator`` or an int seed (``np.random.default_rng(seed)``). The
    noise is drawn in float64 (so a seed gives the same noise whatever the input dtype); the
    output is float32 for float32 input and float64 otherwise.
    """
    img01 = _check_float_image(img01, "add_gaussian_noise")
    if sigma < 0:
        raise ValueError(f"add_gaussian_noise: sigma must be >= 0, got {sigma}")
    noise = _as_rng(rng).standard_normal(img01.shape) * (float(sigma) / 255.0)
    out_dtype = np.float32 if img01.dtype == np.float32 else np.float64
    return (img01.astype(np.float64) + noise).astype(out_dtype, copy=False)


def add_gaussian_noise_batch(
    batch01: np.ndarray,
    sigmas: float | np.ndarray,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Batch form of :func:`add_gaussian_noise`: one sigma per sample (axis 0) or one for all.

    ``batch01`` is (N, ...) float in [0, 1]; ``sigmas`` is a scalar or a length-N sequence in
    0-255 units (handy for blind-noise training). Not clipped, not quantised; float32 input
    gives float32 output.
    """
    batch01 = _check_float_image(batch01, "add_gaussian_noise_batch")
    if batch01.ndim < 1:
        raise ValueError("add_gaussian_noise_batch: expected an (N, ...) array")
    sig = np.asarray(sigmas, dtype=np.float64)
    if sig.ndim == 0:
        sig = np.full(batch01.shape[0], float(sig))
    if sig.shape != (batch01.shape[0],):
        raise ValueError(
            f"add_gaussian_noise_batch: need {batch01.shape[0]} sigmas, got shape {sig.shape}"
        )
    if np.any(sig < 0):
        raise ValueError("add_gaussian_noise_batch: sigmas must be >= 0")
    std = (sig / 255.0).reshape((-1,) + (1,) * (batch01.ndim - 1))
    noise = _as_rng(rng).standard_normal(batch01.shape) * std
    out_dtype = np.float32 if batch01.dtype == np.float32 else np.float64
    return (batch01.astype(np.float64) + noise).astype(out_dtype, copy=False)


# --------------------------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------------------------


def jpeg_compress(img_uint8: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode through OpenCV's libjpeg (baseline, 4:2:0 chroma for colour).

    Accepts uint8 HxW (gray, encoded as a 1-component JPEG), HxWx1 (gray, returned HxWx1) or
    HxWx3 RGB (converted to BGR for OpenCV and back). ``quality`` is the IJG quality, 1-100.
    """
    img = np.asarray(img_uint8)
    if img.dtype != np.uint8:
        raise ValueError(f"jpeg_compress: expected uint8, got {img.dtype}")
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer):
        raise ValueError(f"jpeg_compress: quality must be an int, got {quality!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg_compress: quality must be in 1..100, got {quality}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        gray = img.reshape(img.shape[:2])
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(gray), params)
        if not ok:
            raise RuntimeError("jpeg_compress: OpenCV failed to encode the image")
        dec = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        return dec.reshape(img.shape)
    if img.ndim == 3 and img.shape[2] == 3:
        sampling = getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR", None)
        if sampling is not None:
            params += [int(sampling), int(cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420)]
        bgr = np.ascontiguousarray(img[:, :, ::-1])
        ok, buf = cv2.imencode(".jpg", bgr, params)
        if not ok:
            raise RuntimeError("jpeg_compress: OpenCV failed to encode the image")
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return np.ascontiguousarray(dec[:, :, ::-1])
    raise ValueError(f"jpeg_compress: expected HxW, HxWx1 or HxWx3, got shape {img.shape}")
