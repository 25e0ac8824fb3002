"""Inputs and outputs given as URLs (s3://, gs://, hdfs://, file://) for `--cluster ray`.

Listing, reading and writing go through `pyarrow.fs` (a Ray Data dependency, so present
wherever `--cluster ray` works); credentials come from the usual environment (AWS_* variables,
instance roles, ...). Each Ray actor downloads one input into a private temporary folder,
restores it with the same code as a local run, and uploads the result; object stores make
the upload all-or-nothing, so no half-written output appears under its final name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from scn_deploy.errors import ConfigError
from scn_deploy.imageio import IMAGE_EXTENSIONS, OUTPUT_FORMATS

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/+(.*)$")


def url_of(arg: str | Path) -> str | None:
    """The URL an INPUT/-o argument names, or None for a local path.

    Command-line paths arrive as `Path`, which folds `s3://b/k` to `s3:/b/k`; this undoes it.
    """
    m = _SCHEME.match(str(arg))
    if m is None or len(m.group(1)) < 2:  # "C:/..." is a Windows drive, not a URL
        return None
    scheme, rest = m.group(1).lower(), m.group(2)
    return f"file:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


def _fs(url: str):
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(url)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise ConfigError(f"{url}: cannot open this location ({exc})") from exc


@dataclass
class RemoteItem:
    source: str  # URL of the input
    output: str  # URL (or local path) of the output
    exists: bool  # the output is already there


def plan_remote(
    inputs: list[Path], *, out: Path | None, suffix: str, fmt: str, recursive: bool
) -> tuple[list[RemoteItem], list[tuple[str, str]]]:
    """(items, problems) for URL inputs: images found, outputs named `<stem><suffix>.<ext>`
    in OUT with sub-folders mirrored. OUT is required and may be a URL or a local folder."""
    import pyarrow.fs as pafs

    if out is None:
        raise ConfigError("URL inputs need -o (a URL or a local folder) for the outputs")
    out_url = url_of(out) or f"file://{Path(out).resolve()}"
    out_fs, out_root = _fs(out_url)
    ext = OUTPUT_FORMATS[fmt]
    items: list[RemoteItem] = []
    problems: list[tuple[str, str]] = []
    for arg in inputs:
        url = url_of(arg)
        if url is None:
            problems.append((str(arg), f"{arg}: mix of URLs and local paths; give URLs only"))
            continue
        fs, root = _fs(url)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            problems.append((url, f"{url}: no such file or folder"))
            continue
        if info.type == pafs.FileType.File:
            found = [(root, PurePosixPath(root).name)]
        else:
            listing = fs.get_file_info(pafs.FileSelector(root, recursive=recursive))
            found = sorted(
                (f.path, str(PurePosixPath(f.path).relative_to(root)))
                for f in listing
                if f.type == pafs.FileType.File
            )
            found = [
                (p, rel)
                for p, rel in found
                if not any(part.startswith(".") for part in PurePosixPath(rel).parts)
                and PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS
            ]
        scheme = url.split("://", 1)[0]
        for path, rel in found:
            relp = PurePosixPath(rel)
            name = f"{relp.stem}{suffix}{ext}"
            target = str(PurePosixPath(out_root) / relp.parent / name)
            exists = out_fs.get_file_info(target).type != pafs.FileType.NotFound
            source_url = f"{scheme}://{path}" if scheme != "file" else f"file://{path}"
            output = target if url_of(out) is None else f"{out_url.split('://', 1)[0]}://{target}"
            items.append(RemoteItem(source_url, output, exists))
    return items, problems


def fetch(url: str, folder: Path) -> Path:
    """Download `url` into `folder` (keeping its file name); returns the local path."""
    fs, path = _fs(url)
    local = folder / PurePosixPath(path).name
    with fs.open_input_stream(path) as src, open(local, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    return local


def store(local: Path, target: str) -> None:
    """Upload a finished local file to `target` (a URL, or a local path: atomic rename)."""
    if url_of(target) is None or target.startswith("file://"):
        from scn_deploy.atomic import atomic_write

        atomic_write(Path(target.removeprefix("file://")), local.read_bytes())
        return
    fs, path = _fs(target)
    parent = str(PurePosixPath(path).parent)
    fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as dst, open(local, "rb") as src:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
