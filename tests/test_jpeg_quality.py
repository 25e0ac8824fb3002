"""JPEG quality estimation from the DQT segments (parsed by scn_deploy.jpeg_quality)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from scn_deploy.jpeg_quality import (
    JpegFormatError,
    estimate_jpeg_quality,
    estimate_quality,
    ijg_tables,
    read_quant_tables,
)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.coffee()[:64, :96]


@pytest.mark.parametrize("quality", range(10, 96))
def test_estimate_within_two_of_the_truth(tmp_path: Path, photo: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    (tmp_path / "a.jpg").write_bytes(buf.tobytes())
    estimate = estimate_jpeg_quality(tmp_path / "a.jpg")
    assert abs(estimate.quality - quality) <= 2
    assert estimate.exact  # libjpeg's own tables: an exact match


@pytest.mark.parametrize("quality", [12, 37, 50, 75, 93])
def test_pillow_gray_and_progressive(tmp_path: Path, photo: np.ndarray, quality: int) -> None:
    path = tmp_path / "p.jpg"
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=quality, progressive=True)
    path.write_bytes(buf.getvalue())
    assert estimate_jpeg_quality(path).quality == quality
    buf = io.BytesIO()
    Image.fromarray(photo[..., 1]).save(buf, "JPEG", quality=quality)
    path.write_bytes(buf.getvalue())
    assert set(read_quant_tables(path)) == {0}  # gray: one (luminance) table
    assert estimate_jpeg_quality(path).quality == quality


def test_tables_match_pillows_parse(tmp_path: Path, photo: np.ndarray) -> None:
    """Our DQT parse (zig-zag -> natural order) agrees with libjpeg's tables via Pillow."""
    path = tmp_path / "x.jpg"
    Image.fromarray(photo).save(path, quality=60)
    ours = read_quant_tables(path)
    lum, chrom = ijg_tables(60)
    assert np.array_equal(ours[0], lum) and np.array_equal(ours[1], chrom)
    assert lum[:3].tolist() == [13, 9, 8]  # the first row of the q=60 luminance table


def test_custom_tables_get_the_nearest_quality() -> None:
    lum, chrom = ijg_tables(40)
    estimate = estimate_quality({0: lum + 1, 1: chrom})
    assert abs(estimate.quality - 40) <= 2 and not estimate.exact
    assert "non-IJG" in estimate.describe()


def test_not_a_jpeg(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.zeros((4, 4), np.uint8))
    with pytest.raises(JpegFormatError, match="not a JPEG"):
        read_quant_tables(png)
    broken = tmp_path / "b.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xdb\x00\x43\x00" + bytes(10))
    with pytest.raises(JpegFormatError, match="truncated"):
        read_quant_tables(broken)
