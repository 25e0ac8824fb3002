"""Atomic file writes: a temporary file in the target folder, then a rename.

A crash, a full disk or Ctrl-C never leaves a partial file under the final name. Every module
that writes user-visible files (images, model files, checkpoints, JSON) goes through here.
`merge_json` adds entries to a JSON store that several processes update at once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from scn_deploy.errors import ScnError

try:
    import fcntl
except ImportError:  # not POSIX: writes stay atomic, concurrent merges may lose entries
    fcntl = None  # type: ignore[assignment]


def file_mode() -> int:
    """The mode a newly created file gets under the process umask now (e.g. 0644).

    mkstemp creates files 0600; outputs get the usual permissions instead. Read from
    /proc on Linux; elsewhere by setting and restoring the umask, at write time, not import."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path in `path`'s folder to write to; renamed to `path` on success.

    For writers that want a file name rather than a file object (e.g. `torch.onnx.export`).
    Missing parent folders are created; the file gets the usual mode (not mkstemp's 0600).
    On any error (or Ctrl-C) the temporary file is removed and `path` is untouched. Raises
    `ScnError` for OS errors.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise ScnError(f"{path}: cannot create file ({exc.strerror or exc})") from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ScnError(f"{path}: cannot write file ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | Callable[[BinaryIO], object]) -> None:
    """Write `data` to `path` via a temporary file in the same folder and a rename.

    `data` is the bytes, or a function that writes them into the (seekable) temporary file.
    Same guarantees as `atomic_target`.
    """
    with atomic_target(path) as tmp, open(tmp, "w+b") as fh:
        if callable(data):
            data(fh)
        else:
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file `path` (created if missing) for the block:
    another process that asks for it waits (`fcntl.flock`; advisory, released when the
    process dies). Raises `ScnError` when the lock file cannot be created."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
    except OSError as exc:
        raise ScnError(f"{path}: cannot create lock file ({exc.strerror or exc})") from exc
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_json_object(path: Path) -> dict[str, object]:
    """The JSON object stored in `path`; {} when the file is missing, unreadable or not an
    object (a store that is rebuilt, not an input to validate)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def merge_json(path: Path, entries: Mapping[str, object]) -> None:
    """Add `entries` to the JSON object stored in `path`, atomically, losing no other
    writer's entries: under a lock on `path` + ".lock" the file is re-read, the entries
    merged in (replacing the same keys) and the whole written through `atomic_write`.
    Readers need no lock: they see the old file or the new one. Raises `ScnError`."""
    with file_lock(path.with_name(path.name + ".lock")):
        merged = read_json_object(path)
        merged.update(entries)
        atomic_write(path, (json.dumps(merged, indent=1, sort_keys=True) + "\n").encode())
