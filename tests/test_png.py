"""The parallel PNG writer: valid files for every layout, whatever the bands and threads."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from scn_deploy import png
from scn_deploy.png import adler32_combine, average_filter, write_png

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _encode(pixels: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    write_png(buf, pixels, **kwargs)
    return buf.getvalue()


def _decode_opencv(data: bytes, channels: int) -> np.ndarray:
    """Back to our layout (RGB order; gray+alpha as 2 planes)."""
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if channels == 1:
        return out
    if channels == 2:  # OpenCV expands gray+alpha to BGRA
        return np.stack([out[..., 0], out[..., 3]], axis=2)
    return np.concatenate([out[..., 2::-1], out[..., 3:]], axis=2)


def test_adler32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(0)
    for first, second in [(1000, 1), (65521 * 3 + 7, 70000), (0, 5), (5, 0)]:
        a, b = rng.bytes(first), rng.bytes(second)
        joined = adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
        assert joined == zlib.adler32(a + b)


def test_average_filter_inverts() -> None:
    """Undoing the filter the way a decoder does gives the rows back (both band edges)."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, (5, 12), dtype=np.uint8)
    bpp = 3
    for previous in (None, rng.integers(0, 256, 12, dtype=np.uint8)):
        filtered = average_filter(rows, previous, bpp)
        assert (filtered[:, 0] == 3).all()
        above = np.zeros(12, np.int32) if previous is None else previous.astype(np.int32)
        for r in range(5):
            row = np.zeros(12, np.int32)
            for x in range(12):
                left = row[x - bpp] if x >= bpp else 0
                row[x] = (int(filtered[r, 1 + x]) + (left + above[x]) // 2) % 256
            np.testing.assert_array_equal(row, rows[r])
            above = row


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("threads", [1, 3])
def test_round_trip(monkeypatch, dtype, channels: int, threads: int) -> None:
    """Small bands (many IDAT segments, each primed with the one before) decode exactly."""
    monkeypatch.setattr(png, "BAND_BYTES", 200)
    rng = np.random.default_rng(channels)
    shape = (41, 23) if channels == 1 else (41, 23, channels)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    data = _encode(pixels, threads=threads)
    back = _decode_opencv(data, channels)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, pixels)


def test_smooth_image_and_many_bands(monkeypatch) -> None:
    """A compressible image over many bands: the priming dictionary carries matches across
    band boundaries, and Pillow reads the file too."""
    monkeypatch.setattr(png, "BAND_BYTES", 4096)
    y, x = np.mgrid[0:300, 0:200]
    pixels = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)
    data = _encode(pixels, threads=2)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), pixels)
    assert len(data) < pixels.nbytes / 20


def test_metadata_chunks() -> None:
    exif = b"Exif\0\0II*\0\x08\0\0\0\0\0"
    data = _encode(np.zeros((4, 4, 3), np.uint8), icc=SRGB, exif=exif)
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["icc_profile"] == SRGB
        assert im.info["exif"].removeprefix(b"Exif\0\0") == exif.removeprefix(b"Exif\0\0")
    # iCCP and eXIf come before the image data, as the PNG spec asks
    assert data.index(b"iCCP") < data.index(b"IDAT") and data.index(b"eXIf") < data.index(b"IDAT")


def test_size_close_to_pillow() -> None:
    """On a photo, files are no larger than Pillow's at the same zlib level (+2%)."""
    from skimage import data as samples

    photo = np.ascontiguousarray(samples.astronaut())
    ours = len(_encode(photo, threads=2))
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="PNG", compress_level=png.COMPRESS_LEVEL)
    assert ours <= 1.02 * len(buf.getvalue())


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4), np.float32), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4), np.uint8)],
)
def test_refuses_what_png_cannot_hold(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        _encode(pixels)
