"""Reading, writing and listing images (OpenCV codecs, RGB channel order in memory).

Arrays are HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA), uint8, or uint16 for 16-bit files.
OpenCV's BGR(A) order is converted at the boundary. Paths may contain non-ASCII characters
(files are read and written as bytes, then decoded/encoded in memory).

JPEG note: OpenCV's decoder (libjpeg-turbo) gives pixels identical to PIL's on the B100 JPEGs
(100/100 files checked), so no second decoder is needed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.errors import DataError, ImageReadError, ScnError

__all__ = ["IMAGE_EXTENSIONS", "list_images", "read_image", "write_image"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
)

# The process umask, so that atomically written files get normal permissions (mkstemp uses 0600).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA), uint8 or uint16.

    The file's own bit depth and channel count are kept (``cv2.IMREAD_UNCHANGED``); EXIF
    orientation is not applied. Raises :class:`ImageReadError` (naming the path and the reason)
    when the file is missing, unreadable, empty, corrupt, or of an unsupported kind (e.g. float
    or 2-channel images).
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: file not found")
    if not p.is_file():
        raise ImageReadError(f"{p}: not a regular file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read file ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise ImageReadError(f"{p}: file is empty")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageReadError(f"{p}: cannot decode image ({exc})") from exc
    if img is None:
        raise ImageReadError(f"{p}: not a decodable image (corrupt, truncated or unknown format)")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{p}: unsupported pixel type {img.dtype} (need 8- or 16-bit)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        return np.ascontiguousarray(img[:, :, ::-1])
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, [2, 1, 0, 3]])
    raise ImageReadError(f"{p}: unsupported image layout {img.shape}")


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

    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise ScnError(f"{p}: cannot create file ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)
        os.replace(tmp_name, p)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise ScnError(f"{p}: cannot write file ({exc.strerror or exc})") from exc
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def list_images(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (optionally its subfolders), sorted by path.

    Files are recognised by extension, case-insensitively: png, jpg, jpeg, bmp, webp, tif,
    tiff. Hidden files (name starting with ".") are skipped. Raises :class:`DataError` if the
    folder does not exist, is not a folder, or holds no images.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = sorted(
        f
        for f in candidates
        if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".") and f.is_file()
    )
    if not found:
        kind = "or its subfolders " if recursive else ""
        raise DataError(
            f"{root}: no images found in the folder {kind}"
            f"(looked for {', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))})"
        )
    return found
