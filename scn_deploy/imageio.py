"""Reading, writing and listing images (OpenCV codecs, RGB channel order in memory).

Arrays are HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA), uint8, or uint16 for 16-bit files.
OpenCV's BGR(A) order is converted at the boundary. Paths may contain non-ASCII characters
(files are read and written as bytes, then decoded/encoded in memory).

One decode path: `load_image` (below) reads images as users have them, with alpha split off,
EXIF orientation applied, ICC/EXIF carried and headers checked against a pixel limit before
decoding; the restoration commands use it, and `read_image` (training, evaluation) is the same
decoding as one array. On every benchmark and training image here both give the pixels the
OpenCV decoder gave before (351 files checked, B100's JPEGs included).
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from scn_deploy.atomic import atomic_write
from scn_deploy.errors import DataError, ImageReadError, ImageTooLargeError, ScnError
from scn_deploy.png import write_png

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "OUTPUT_FORMATS",
    "ImageHeader",
    "Picture",
    "decode_image",
    "encode_image",
    "list_images",
    "load_image",
    "probe_image",
    "probe_image_data",
    "read_image",
    "write_image",
    "write_image_to",
]

#: The file types scn reads, file and folder inputs alike (all decoded by Pillow; animated
#: GIF/WebP/TIFF: the first frame, with a note).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".bmp",
        ".webp",
        ".tif",
        ".tiff",
        ".gif",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
    }
)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA), uint8 or uint16.

    The same decoding as the restoration commands (`load_image`: EXIF orientation applied,
    16-bit kept, no pixel limit), with alpha as a fourth channel. Raises
    :class:`ImageReadError` (naming the path and the reason) when the file is missing,
    unreadable, empty, corrupt, or of an unsupported kind.
    """
    picture = load_image(path, max_pixels=None)
    if picture.alpha is None:
        return picture.pixels
    pixels = picture.pixels
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    alpha = picture.alpha.astype(pixels.dtype, copy=False)
    return np.ascontiguousarray(np.dstack([pixels, alpha]))


def write_image(path: str | os.PathLike[str], img: np.ndarray) -> None:
    """Encode ``img`` by the file extension and write it atomically.

    ``img`` is HxW / HxWx1 (gray), HxWx3 (RGB) or HxWx4 (RGBA), uint8 or uint16 (16-bit needs a
    format that supports it, e.g. PNG or TIFF). The data go to a temporary file in the target
    folder, which then replaces ``path`` (``os.replace``), so readers never see a partial file.
    Missing parent folders are created. Raises ``ValueError`` for an unsupported array and
    :class:`ScnError` for an unsupported extension or an encoder/OS failure.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ScnError(f"{p}: unsupported image extension {p.suffix!r}")
    arr = np.asarray(img)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_image: expected uint8 or uint16, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    elif arr.ndim != 2:
        raise ValueError(f"write_image: expected HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    try:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr))
    except cv2.error as exc:
        raise ScnError(f"{p}: cannot encode image ({exc})") from exc
    if not ok:
        raise ScnError(f"{p}: OpenCV could not encode a {arr.dtype} {arr.shape} image as {ext}")

    atomic_write(p, buf.tobytes())


def _is_image_name(name: str, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in extensions


def scan_folder(
    folder: Path,
    *,
    recursive: bool = False,
    exclude: Path | None = None,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
) -> tuple[list[Path], list[Path]]:
    """(image files, other visible files) in a folder, each sorted: the one folder walker.

    Images are recognised by extension (`extensions`, default `IMAGE_EXTENSIONS`; the
    restoration commands add the video extensions), case-insensitively. Hidden files
    and folders (name starting with ".") are ignored, symbolic links to folders are not
    followed, and `exclude` (a resolved folder, e.g. the output folder) is not searched."""
    found: list[Path] = []
    others: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        if exclude is not None and here.resolve() == exclude:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        found.extend(here / f for f in filenames if _is_image_name(f, extensions))
        others.extend(
            here / f
            for f in filenames
            if not f.startswith(".") and not _is_image_name(f, extensions)
        )
    return sorted(found), sorted(others)


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (optionally its subfolders), sorted by path (`scan_folder`).

    Raises :class:`DataError` if the folder does not exist, is not a folder, or holds no
    images.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    found, _others = scan_folder(root, recursive=recursive)
    if not found:
        kind = "or its subfolders " if recursive else ""
        raise DataError(
            f"{root}: no images found in the folder {kind}"
            f"(looked for {', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))})"
        )
    return found


# --------------------------------------------------------------------------------------------
# Images as users have them: headers first, alpha, 16-bit, palette, EXIF orientation, ICC
# --------------------------------------------------------------------------------------------
#
# `probe_image` / `load_image` / `encode_image` serve the restoration commands. Pillow reads
# headers (size, mode, frames, EXIF, ICC) without decoding, so oversized images are refused
# before any pixel is decoded; Pillow decodes everything it represents faithfully, OpenCV the
# 16-bit colour files that Pillow would reduce to 8 bits. Encoding goes the same way round.

DEFAULT_MAX_PIXELS = 400_000_000
OUTPUT_FORMATS: dict[str, str] = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif"}

# Pillow refuses images above ~179 MP by itself (a decompression-bomb guard); `probe_image`
# enforces the caller's own `max_pixels` on the header instead, so Pillow's guard is lifted
# while a file is opened here (and only then: the process's own setting is left alone).
_pillow_guard_lock = threading.Lock()
_pillow_guard_users = 0
_pillow_guard_saved: int | None = None


@contextmanager
def _without_pillow_pixel_limit() -> Iterator[None]:
    global _pillow_guard_users, _pillow_guard_saved
    with _pillow_guard_lock:
        if _pillow_guard_users == 0:
            _pillow_guard_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _pillow_guard_users += 1
    try:
        yield
    finally:
        with _pillow_guard_lock:
            _pillow_guard_users -= 1
            if _pillow_guard_users == 0:
                Image.MAX_IMAGE_PIXELS = _pillow_guard_saved


_EXIF_ORIENTATION = 0x0112
_ICC_SPACES = {b"RGB ": "RGB", b"GRAY": "gray", b"CMYK": "CMYK", b"Lab ": "Lab"}


@dataclass(frozen=True)
class ImageHeader:
    """What an image file declares about itself, read without decoding the pixels."""

    path: Path
    format: str
    width: int
    height: int
    mode: str
    frames: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class Picture:
    """A decoded image, ready for restoration, and what must travel to the output file.

    Attributes:
        pixels: HxW (gray) or HxWx3 (RGB), uint8 or uint16, EXIF orientation applied.
        alpha: HxW of the same dtype, or None.
        icc_profile: the embedded ICC profile (bytes), if any.
        exif: the EXIF block with the orientation tag removed (bytes), if any.
        format: the source format ("PNG", "JPEG", ...; "" for arrays made in memory).
        notes: what was changed on the way that the user should hear about.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    format: str = ""
    notes: list[str] = field(default_factory=list)


def _icc_space(profile: bytes) -> str:
    return _ICC_SPACES.get(bytes(profile[16:20]), "unknown")


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty")
    return _open_pillow(path, path)


def _open_pillow(path: Path, source: Path | BinaryIO) -> Image.Image:
    """Pillow's lazy open of a file or of data in memory; ``path`` names it in errors."""
    try:
        with _without_pillow_pixel_limit():
            return Image.open(source)
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image in a supported format") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    except (SyntaxError, ValueError) as exc:  # Pillow's plugins report bad headers this way
        raise ImageReadError(f"{path}: corrupt image header ({exc})") from exc


def _header(path: Path, im: Image.Image) -> ImageHeader:
    return ImageHeader(
        path=path,
        format=im.format or "",
        width=im.width,
        height=im.height,
        mode=im.mode,
        frames=int(getattr(im, "n_frames", 1)),
    )


def _check_size(header: ImageHeader, max_pixels: int | None) -> None:
    if max_pixels is not None and header.pixels > max_pixels:
        raise ImageTooLargeError(
            f"{header.path}: {header.width}x{header.height} = {header.pixels / 1e6:,.1f} MP "
            f"is above the limit of {max_pixels / 1e6:,.1f} MP (--max-pixels); not decoded"
        )


def probe_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageHeader:
    """Read an image's header only (size, mode, frames). Raises `ImageReadError` for a
    missing/unrecognised file or when width x height exceeds `max_pixels`."""
    p = Path(path)
    with _open(p) as im:
        header = _header(p, im)
    _check_size(header, max_pixels)
    return header


def probe_image_data(
    data: bytes, *, name: str = "upload", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageHeader:
    """`probe_image` for an image file's bytes in memory (``name`` labels it in messages)."""
    label = Path(name)
    if not data:
        raise ImageReadError(f"{label}: file is empty")
    with _open_pillow(label, io.BytesIO(data)) as im:
        header = _header(label, im)
    _check_size(header, max_pixels)
    return header


def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0][3]
    return str(args[0] if isinstance(args, tuple) and args else args)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an HxW[xC] array, as `ImageOps.exif_transpose`."""
    if orientation in (5, 6, 7, 8):
        a = a.swapaxes(0, 1)  # transpose; the remaining flips finish each case
    flip_lr = orientation in (2, 3, 6, 7)
    flip_ud = orientation in (3, 4, 7, 8)
    if flip_lr:
        a = a[:, ::-1]
    if flip_ud:
        a = a[::-1]
    return np.ascontiguousarray(a)


def _decode_pillow(im: Image.Image, p: Path) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im).astype(np.uint16), None
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ImageReadError(f"{p}: 32-bit integer pixels outside the 16-bit range")
        return a.astype(np.uint16), None
    if mode == "F":
        raise ImageReadError(f"{p}: 32-bit float images are not supported (need 8 or 16 bit)")
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if transparent else "RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
    a = np.asarray(im)
    if im.mode in ("LA", "RGBA"):
        return np.ascontiguousarray(a[..., :-1].squeeze(-1) if im.mode == "LA" else a[..., :3]), (
            np.ascontiguousarray(a[..., -1])
        )
    return np.ascontiguousarray(a), None


def _decode_opencv16(
    p: Path, data: np.ndarray, rawmode: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit colour (and gray+alpha) files (``data``: the file's bytes), which Pillow would
    reduce to 8 bits. `rawmode` is Pillow's name for the stored layout ("LA;16B" for
    gray+alpha: Pillow calls its mode RGBA)."""
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16:
        raise ImageReadError(f"{p}: cannot decode the 16-bit image data (corrupt or truncated)")
    if img.ndim == 2:
        return img, None
    if rawmode.startswith("LA"):  # OpenCV expands gray+alpha to BGRA
        return np.ascontiguousarray(img[..., 0]), np.ascontiguousarray(img[..., 3])
    rgb = np.ascontiguousarray(img[..., 2::-1])
    return rgb, (np.ascontiguousarray(img[..., 3]) if img.shape[2] == 4 else None)


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Picture:
    """Decode an image file for restoration (PNG, JPEG, WebP, BMP, TIFF; 8 or 16 bit).

    Gray stays gray, 16-bit stays 16-bit, palette images become RGB (RGBA with
    transparency), alpha is split off, EXIF orientation is applied to the pixels (and removed
    from the carried EXIF), the ICC profile is carried. The header is checked against
    `max_pixels` before anything is decoded. Animated/multi-page files give their first
    frame (with a note). Raises `ImageReadError` naming the file and the reason.
    """
    p = Path(path)
    return _load(p, _open(p), lambda: np.fromfile(p, dtype=np.uint8), max_pixels)


def decode_image(
    data: bytes, *, name: str = "upload", max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Picture:
    """`load_image` for an image file's bytes in memory (what `scn serve` receives): the same
    decoding, checks and notes, with ``name`` in place of the path in messages. Nothing
    touches the file system."""
    label = Path(name)
    if not data:
        raise ImageReadError(f"{label}: file is empty")
    return _load(
        label,
        _open_pillow(label, io.BytesIO(data)),
        lambda: np.frombuffer(data, dtype=np.uint8),
        max_pixels,
    )


def _load(
    p: Path, opened: Image.Image, raw: Callable[[], np.ndarray], max_pixels: int | None
) -> Picture:
    """Decode an opened image (``raw``: its file's bytes, for OpenCV's 16-bit decoder)."""
    notes: list[str] = []
    with opened as im:
        header = _header(p, im)
        _check_size(header, max_pixels)
        if header.frames > 1:
            notes.append(f"{header.frames} frames/pages: the first one is used")
        try:
            rawmode = _rawmode(im)
            deep_colour = "16" in rawmode and im.mode in ("RGB", "RGBA", "LA")
            exif = im.getexif()  # may decode (PNG keeps eXIf after the data): rawmode first
            orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
            icc = im.info.get("icc_profile") or None
            if deep_colour:
                pixels, alpha = _decode_opencv16(p, raw(), rawmode)
            else:
                im.load()
                pixels, alpha = _decode_pillow(im, p)
        except ImageReadError:
            raise
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise ImageReadError(f"{p}: corrupt or truncated image data ({exc})") from exc
    exif_bytes = None
    if len(exif):
        exif.pop(_EXIF_ORIENTATION, None)
        exif_bytes = exif.tobytes()
    if orientation not in range(1, 9):
        notes.append(f"invalid EXIF orientation {orientation} ignored")
        orientation = 1
    if orientation != 1:
        pixels = _orient(pixels, orientation)
        alpha = _orient(alpha, orientation) if alpha is not None else None
        notes.append(f"EXIF orientation {orientation} applied")
    if icc is not None:
        wanted = "gray" if pixels.ndim == 2 else "RGB"
        if _icc_space(icc) != wanted:
            notes.append(f"{_icc_space(icc)} ICC profile dropped (the pixels are {wanted})")
            icc = None
    return Picture(pixels, alpha, icc, exif_bytes, header.format, notes)


def _to8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def encode_image(picture: Picture, fmt: str, *, quality: int = 95) -> tuple[bytes, list[str]]:
    """`write_image_to` into memory: returns (file bytes, notes)."""
    buf = io.BytesIO()
    notes = write_image_to(buf, picture, fmt, quality=quality)
    return buf.getvalue(), notes


def write_image_to(fh: BinaryIO, picture: Picture, fmt: str, *, quality: int = 95) -> list[str]:
    """Encode a picture as png, jpg, webp or tiff into a (seekable) binary file; returns notes.

    16-bit pictures stay 16-bit in png/tiff (reduced to 8 bits for jpg/webp, with a note);
    alpha is kept except in jpg; gray stays gray except in webp (no gray mode). The ICC
    profile goes into every format, and EXIF into png/jpg/webp (not into 16-bit tiff, whose
    OpenCV encoder has no metadata: noted). `quality` applies to jpg and webp. PNG is written
    by `scn_deploy.png` (bands of rows deflated on every core). Encoding straight into the
    output file keeps no second copy of the compressed image in memory.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ScnError(
            f"unsupported output format {fmt!r} (choose from {', '.join(OUTPUT_FORMATS)})"
        )
    notes: list[str] = []
    pixels, alpha, icc, exif = picture.pixels, picture.alpha, picture.icc_profile, picture.exif
    if fmt == "jpg" and alpha is not None:
        notes.append("alpha dropped (JPEG has no alpha channel)")
        alpha = None
    if fmt in ("jpg", "webp") and pixels.dtype == np.uint16:
        notes.append(f"16-bit reduced to 8-bit ({fmt} has no 16-bit mode)")
        pixels, alpha = _to8(pixels), (_to8(alpha) if alpha is not None else None)
    if fmt == "webp" and pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
        if icc is not None:
            icc = None
            notes.append("gray ICC profile dropped (WebP stores gray as RGB)")
    planes = pixels if alpha is None else np.dstack([pixels, alpha])
    if fmt == "png":  # 8 or 16 bits, any channel count: written on every core
        try:
            write_png(fh, planes, icc=icc, exif=exif)
        except ValueError as exc:
            raise ScnError(f"cannot encode the image as png: {exc}") from exc
        return notes
    if pixels.dtype == np.uint16:
        _write16_tiff(fh, pixels, alpha, icc, exif, notes)
        return notes
    im = Image.fromarray(np.ascontiguousarray(planes))
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if exif and fmt != "tiff":
        options["exif"] = exif
    if fmt in ("jpg", "webp"):
        options["quality"] = int(quality)
    if fmt == "tiff":
        options["compression"] = "tiff_deflate"
    try:
        im.save(fh, format={"jpg": "JPEG", "tiff": "TIFF"}.get(fmt, fmt.upper()), **options)
    except (OSError, ValueError) as exc:
        raise ScnError(f"cannot encode the image as {fmt}: {exc}") from exc
    return notes


def _write16_tiff(
    fh: BinaryIO,
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    icc: bytes | None,
    exif: bytes | None,
    notes: list[str],
) -> None:
    if pixels.ndim == 2 and alpha is not None:
        notes.append("16-bit gray+alpha written as RGBA (no 2-channel 16-bit encoder)")
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim == 3:
        planes = pixels[..., ::-1] if alpha is None else np.dstack([pixels[..., ::-1], alpha])
    else:
        planes = pixels
    ok, buf = cv2.imencode(".tif", np.ascontiguousarray(planes))
    if not ok:
        raise ScnError(f"OpenCV could not encode a 16-bit {planes.shape} image as tiff")
    data = memoryview(buf).cast("B")
    if icc or exif:
        notes.append("ICC/EXIF not written (16-bit TIFF is encoded without metadata)")
    fh.write(data)


def load_benchmark_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit benchmark image as HxW (gray) or HxWx3 (RGB) uint8; alpha is dropped
    (what `scn eval` and int8 calibration read).

    Raises `ImageReadError` (from `read_image`) naming the file when it cannot be decoded,
    and `DataError` for 16-bit files (the protocols are 8-bit).
    """
    img = read_image(path)
    if img.dtype != np.uint8:
        raise DataError(f"{path}: {img.dtype} image; the benchmark protocols need 8-bit images")
    if img.ndim == 3:
        img = np.ascontiguousarray(img[:, :, :3])
    return img
