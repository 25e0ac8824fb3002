"""Tests for scn_deploy.imageio (all images are made by the tests)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from scn_deploy.errors import DataError, ImageReadError, ScnError
from scn_deploy.imageio import list_images, read_image, write_image


def _img(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
@pytest.mark.parametrize("shape", [(9, 13), (9, 13, 3)])
def test_lossless_round_trip(tmp_path: Path, ext: str, shape: tuple[int, ...]) -> None:
    if ext == ".webp" and len(shape) == 2:
        pytest.skip("WebP has no grayscale mode")
    img = _img(shape)
    path = tmp_path / f"img{ext}"
    write_image(path, img)  # OpenCV's WebP default (no quality given) is lossless
    out = read_image(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_rgba_round_trip(tmp_path: Path) -> None:
    img = _img((7, 5, 4))
    write_image(tmp_path / "a.png", img)
    out = read_image(tmp_path / "a.png")
    assert out.shape == (7, 5, 4)
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("shape", [(6, 8), (6, 8, 3)])
def test_16bit_png(tmp_path: Path, shape: tuple[int, ...]) -> None:
    img = _img(shape, dtype=np.uint16)
    write_image(tmp_path / "deep.png", img)
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img)


def test_rgb_order_on_disk(tmp_path: Path) -> None:
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    write_image(tmp_path / "red.png", red)
    bgr = cv2.imread(str(tmp_path / "red.png"), cv2.IMREAD_UNCHANGED)
    assert tuple(bgr[0, 0]) == (0, 0, 255)  # OpenCV sees red as BGR (0, 0, 255)
    assert tuple(read_image(tmp_path / "red.png")[0, 0]) == (255, 0, 0)


def test_gray_with_trailing_channel_and_jpeg(tmp_path: Path) -> None:
    img = _img((16, 16, 1))
    write_image(tmp_path / "g.png", img)
    assert read_image(tmp_path / "g.png").shape == (16, 16)
    write_image(tmp_path / "g.jpg", img)
    out = read_image(tmp_path / "g.jpg")
    assert out.shape == (16, 16) and out.dtype == np.uint8


def test_non_ascii_path(tmp_path: Path) -> None:
    folder = tmp_path / "Bilder äöü 图像"
    img = _img((5, 6, 3))
    write_image(folder / "größe_图.png", img)  # parent folder is created
    np.testing.assert_array_equal(read_image(folder / "größe_图.png"), img)
    assert list_images(folder) == [folder / "größe_图.png"]


def test_write_is_atomic_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    write_image(path, _img((4, 4), seed=1))
    second = _img((4, 4), seed=2)
    write_image(path, second)
    np.testing.assert_array_equal(read_image(path), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # no temp files left


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(ScnError):
        write_image(tmp_path / "x.gifx", _img((4, 4)))
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), dtype=np.uint8))
    assert not any(tmp_path.iterdir())


def test_missing_corrupt_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(ImageReadError) as info:
        read_image(bad)
    assert str(bad) in str(info.value)

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(empty)

    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    write_image(path, _img((64, 64, 3)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError):
        read_image(path)


def test_list_images(tmp_path: Path) -> None:
    img = _img((3, 3))
    for name in ("b.png", "a.JPG", "c.bmp", "d.tiff", "e.webp", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")  # listing goes by extension only
    (tmp_path / "notes.txt").write_text("no")
    sub = tmp_path / "sub"
    sub.mkdir()
    write_image(sub / "z.png", img)
    (tmp_path / "dir.png").mkdir()  # a folder named like an image is not listed

    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.JPG", "b.png", "c.bmp", "d.tiff", "e.webp"]
    rec = list_images(tmp_path, recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in rec] == [
        "a.JPG",
        "b.png",
        "c.bmp",
        "d.tiff",
        "e.webp",
        "sub/z.png",
    ]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError):
        list_images(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        list_images(tmp_path / "readme.txt")
