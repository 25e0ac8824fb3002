"""Images as users have them (scn_deploy.imageio.load_image / encode_image) and the file
plumbing of the restoration commands (scn_deploy.files)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from scn_deploy.errors import ImageReadError, ScnError
from scn_deploy.files import atomic_write, collect_sources, plan_outputs
from scn_deploy.imageio import Picture, encode_image, load_image, probe_image

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _rand(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(0, info.max, shape, dtype=dtype, endpoint=True)


def _roundtrip(pic: Picture, fmt: str, tmp_path: Path) -> tuple[Picture, list[str]]:
    data, notes = encode_image(pic, fmt)
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(data)
    return load_image(path), notes


# -- load / encode -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "tiff", "webp"])
def test_rgba_keeps_alpha(tmp_path: Path, fmt: str) -> None:
    pic = Picture(_rand((9, 7, 3)), _rand((9, 7), seed=1), SRGB)
    if fmt == "webp":  # lossless only at quality 100 with Pillow's default method: compare shape
        back, _ = _roundtrip(pic, fmt, tmp_path)
        assert back.alpha is not None and back.pixels.shape == (9, 7, 3)
        return
    back, notes = _roundtrip(pic, fmt, tmp_path)
    assert notes == []
    np.testing.assert_array_equal(back.pixels, pic.pixels)
    np.testing.assert_array_equal(back.alpha, pic.alpha)
    assert back.icc_profile == SRGB


@pytest.mark.parametrize("fmt", ["png", "tiff"])
@pytest.mark.parametrize("shape", [(6, 5), (6, 5, 3)])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_stays_16bit(tmp_path: Path, fmt: str, shape, with_alpha: bool) -> None:
    alpha = _rand(shape[:2], np.uint16, seed=2) if with_alpha else None
    pic = Picture(_rand(shape, np.uint16), alpha, SRGB if len(shape) == 3 else None)
    back, notes = _roundtrip(pic, fmt, tmp_path)
    assert back.pixels.dtype == np.uint16
    if len(shape) == 2 and with_alpha and fmt == "tiff":  # no 2-channel encoder: RGBA, noted
        assert back.pixels.shape == (6, 5, 3) and any("RGBA" in n for n in notes)
        np.testing.assert_array_equal(back.pixels[..., 1], pic.pixels)
    else:
        np.testing.assert_array_equal(back.pixels, pic.pixels)
    if with_alpha:
        np.testing.assert_array_equal(back.alpha, alpha)
    if fmt == "png" and len(shape) == 3:
        assert back.icc_profile == SRGB


def test_16bit_to_8bit_formats_is_noted(tmp_path: Path) -> None:
    pic = Picture(np.full((4, 4, 3), 65535, np.uint16), np.zeros((4, 4), np.uint16))
    back, notes = _roundtrip(pic, "jpg", tmp_path)
    assert back.pixels.dtype == np.uint8 and back.alpha is None and back.pixels.min() >= 250
    assert any("alpha dropped" in n for n in notes) and any("16-bit" in n for n in notes)


@pytest.mark.parametrize("fmt", ["png", "jpg", "tiff"])
def test_gray_stays_gray(tmp_path: Path, fmt: str) -> None:
    gray_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not gray
    pic = Picture(_rand((8, 8)), None, None)
    back, _ = _roundtrip(pic, fmt, tmp_path)
    assert back.pixels.ndim == 2
    path = tmp_path / "lab.png"
    Image.fromarray(pic.pixels).save(path, icc_profile=gray_icc)
    loaded = load_image(path)
    assert loaded.icc_profile is None and any("ICC profile dropped" in n for n in loaded.notes)


def test_gray_alpha_and_palette(tmp_path: Path) -> None:
    la = _rand((5, 6, 2))
    Image.fromarray(la).save(tmp_path / "la.png")
    pic = load_image(tmp_path / "la.png")
    np.testing.assert_array_equal(pic.pixels, la[..., 0])
    np.testing.assert_array_equal(pic.alpha, la[..., 1])

    rgb = _rand((5, 6, 3))
    pal = Image.fromarray(rgb).quantize(8)
    pal.save(tmp_path / "p.png")
    pic = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(pic.pixels, np.asarray(pal.convert("RGB")))
    assert pic.alpha is None
    pal.save(tmp_path / "pt.png", transparency=0)
    pic = load_image(tmp_path / "pt.png")
    assert pic.alpha is not None and set(np.unique(pic.alpha)) <= {0, 255}
    assert (pic.alpha == 0).any()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    im = Image.fromarray(_rand((5, 7, 3)))
    exif = im.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "scn-test-camera"  # Make: must travel to the output
    im.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    pic = load_image(tmp_path / "o.jpg")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")))
    np.testing.assert_array_equal(pic.pixels, expected)
    data, _ = encode_image(pic, "png")
    out = Image.open(io.BytesIO(data))
    assert out.getexif().get(0x0112) is None  # not rotated twice by viewers
    assert out.getexif().get(0x010F) == "scn-test-camera"


def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = b"not even zlib data"  # decoding would fail: the size check must come first
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat))


def test_max_pixels_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    _png_header_only(path, 40000, 30000)
    with pytest.raises(ImageReadError, match="above the limit"):
        load_image(path)
    with pytest.raises(ImageReadError, match="above the limit"):
        probe_image(path, max_pixels=10**6)
    with pytest.raises(ImageReadError, match="corrupt or truncated"):
        load_image(path, max_pixels=None)  # without the limit it tries, and fails to decode


def test_pillow_limit_is_ours_only_while_reading(tmp_path: Path, monkeypatch) -> None:
    """Importing or reading leaves the process's Pillow guard as it was; our own --max-pixels
    replaces it while a file is opened (a 1.2 GP header: Pillow alone would refuse it)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "big.png"
    _png_header_only(path, 40000, 30000)
    assert probe_image(path, max_pixels=None).width == 40000
    assert Image.MAX_IMAGE_PIXELS == 1000
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(small)
    assert load_image(small).pixels.shape == (64, 64)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_animated_gives_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
    pic = load_image(tmp_path / "a.png")
    assert pic.pixels[0, 0, 0] == 10
    assert any("3 frames" in n for n in pic.notes)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("hello, not an image")
    with pytest.raises(ImageReadError, match="not an image in a supported format"):
        load_image(tmp_path / "text.png")
    Image.fromarray(_rand((64, 64, 3))).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(tmp_path / "t.jpg")
    with pytest.raises(ScnError, match="unsupported output format"):
        encode_image(Picture(_rand((2, 2))), "gif")


# -- files ------------------------------------------------------------------------------------


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_collect_sources(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "sub/c.webp", "sub/deeper/d.tif", ".hidden.png", "notes.txt"):
        _touch(tmp_path / "in" / name)
    _touch(tmp_path / "in" / ".git" / "e.png")
    sources, problems = collect_sources([tmp_path / "in"])
    assert [s.relative.as_posix() for s in sources] == ["a.JPG", "b.png"]
    # a visible non-image is reported as skipped (not failed); hidden files are ignored
    assert [(p.path.name, p.skipped) for p in problems] == [("notes.txt", True)]
    sources, _ = collect_sources([tmp_path / "in"], recursive=True)
    assert [s.relative.as_posix() for s in sources] == [
        "a.JPG",
        "b.png",
        "sub/c.webp",
        "sub/deeper/d.tif",
    ]
    one = _touch(tmp_path / "loose.dat")  # a file argument counts whatever its extension
    sources, problems = collect_sources(
        [one, one, tmp_path / "missing.png", tmp_path / "in" / "sub" / "deeper" / "d.tif"]
    )
    assert [s.path for s in sources] == [one, tmp_path / "in/sub/deeper/d.tif"]
    assert [(p.path.name, p.reason) for p in problems] == [("missing.png", "file not found")]
    (tmp_path / "empty").mkdir()
    _, problems = collect_sources([tmp_path / "empty"])
    assert "no images or videos found" in problems[0].reason


def test_output_names_mirror_and_protect_inputs(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for name in ("a.png", "a.jpg", "sub/b.png", "a_x2.png"):
        _touch(root / name)
    sources, _ = collect_sources([root], recursive=True)
    out = tmp_path / "out"
    jobs, problems, dropped = plan_outputs(sources, out=out, suffix="_x2", fmt="png")
    got = {j.source.relative.as_posix(): j.output.relative_to(out).as_posix() for j in jobs}
    assert got == {
        "a.jpg": "a_x2.png",
        "a.png": "a_png_x2.png",
        "a_x2.png": "a_x2_x2.png",
        "sub/b.png": "sub/b_x2.png",
    }
    assert not problems and not dropped
    # in place, a_x2.png (a previous run's result) is a.jpg's output: not processed itself,
    # and never overwritten (a.jpg is skipped as existing, or refused with --overwrite)
    jobs, problems, dropped = plan_outputs(sources, out=None, suffix="_x2", fmt="png")
    assert [p.path.name for p in dropped] == ["a_x2.png"] and not problems
    assert sorted(j.output.name for j in jobs) == ["a_png_x2.png", "a_x2.png", "b_x2.png"]
    _, problems, _ = plan_outputs(sources, out=None, suffix="_x2", fmt="png", overwrite=True)
    assert [p.path.name for p in problems] == ["a.jpg"] and "also an input" in problems[0].reason
    # in place with an empty suffix would write over the inputs: refused, not done
    jobs, problems, _ = plan_outputs(sources, out=None, suffix="", fmt="png")
    assert {p.path.name for p in problems} >= {"a.png", "b.png"}
    assert all(j.output.resolve() not in {s.path.resolve() for s in sources} for j in jobs)
    # single file in, a file name out
    single, _ = collect_sources([root / "a.png"])
    jobs, _, _ = plan_outputs(single, out=tmp_path / "x.webp", suffix="_x2", fmt="webp")
    assert jobs[0].output == tmp_path / "x.webp"
    jobs, _, _ = plan_outputs(sources[:1], out=tmp_path / "x.webp", suffix="_x2", fmt="webp")
    assert jobs[0].output == tmp_path / "x.webp" / "a_x2.webp"  # a folder input: OUT is a folder


def test_outputs_never_leave_out_through_links(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _touch(root / "sub" / "a.png")
    out = tmp_path / "out"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out.mkdir()
    os.symlink(outside, out / "sub")  # OUT/sub points outside OUT
    sources, _ = collect_sources([root], recursive=True)
    jobs, problems, _ = plan_outputs(sources, out=out, suffix="_x2", fmt="png")
    assert not jobs and "would leave" in problems[0].reason
    # symbolic links to folders inside the inputs are not followed
    os.symlink(outside, root / "link")
    _touch(outside / "z.png")
    sources, _ = collect_sources([root], recursive=True)
    assert [s.relative.as_posix() for s in sources] == ["sub/a.png"]


def test_atomic_write_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "deep" / "a.png"
    atomic_write(target, b"12345")
    assert target.read_bytes() == b"12345"

    def boom(fd: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "deep" / "b.png", b"abc")
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]


def test_importing_the_package_leaves_the_umask_alone() -> None:
    """Outputs get the process umask's mode, read at write time: importing changes nothing."""
    import subprocess
    import sys

    code = (
        "import os; os.umask(0o027); import scn_deploy.atomic, scn_deploy.pipeline; "
        "from scn_deploy.atomic import file_mode; m = os.umask(0o027); "
        "assert m == 0o027, oct(m); assert file_mode() == 0o640, oct(file_mode())"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_training_and_restore_decode_a_rotated_jpeg_alike(tmp_path: Path) -> None:
    """One decode path: `scn eval` (load_benchmark_image), training (read_image) and the
    restore commands (load_image) see the same upright pixels."""
    from scn_deploy.evaluate import load_benchmark_image
    from scn_deploy.imageio import read_image

    im = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 40, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=90)
    restored_view = load_image(tmp_path / "r.jpg").pixels
    assert restored_view.shape == (40, 24, 3)
    np.testing.assert_array_equal(read_image(tmp_path / "r.jpg"), restored_view)
    np.testing.assert_array_equal(load_benchmark_image(tmp_path / "r.jpg"), restored_view)


def test_read_image_keeps_alpha_as_a_fourth_channel(tmp_path: Path) -> None:
    from scn_deploy.imageio import read_image

    rgba = np.random.default_rng(4).integers(0, 256, (8, 9, 4), np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba)
    la = np.random.default_rng(5).integers(0, 256, (8, 9, 2), np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    got = read_image(tmp_path / "la.png")
    assert got.shape == (8, 9, 4) and (got[..., 3] == la[..., 1]).all()
    assert (got[..., 0] == la[..., 0]).all() and (got[..., 2] == la[..., 0]).all()
