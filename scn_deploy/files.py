"""Files for the restoration commands: finding inputs, naming outputs, writing atomically.

* `collect_sources` expands the command line's INPUT arguments: files as given, folders to
  the images and videos inside (by extension; hidden files/folders and other files ignored;
  sub-folders with `recursive`, without following symbolic links to folders).
* `plan_outputs` names each output (`NAME_x4.png` style) in OUT (sub-folders mirrored) or
  beside its input, and refuses names that would write over an input, collide with another
  output, or leave OUT (through a symbolic link inside OUT).
* `atomic_write` writes to a temporary name in the target folder and renames it into place,
  so an interrupted run never leaves a partial file under an output name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scn_deploy.atomic import atomic_write
from scn_deploy.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, OUTPUT_FORMATS, scan_folder
from scn_deploy.video.formats import VIDEO_EXTENSIONS, is_video

#: What the restoration commands read from folders: images and videos.
SOURCE_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS

__all__ = [
    "FileOptions",
    "Job",
    "Problem",
    "Source",
    "atomic_write",
    "collect_sources",
    "is_inside",
    "plan_outputs",
]


@dataclass(frozen=True)
class FileOptions:
    """Which files a run reads and how it writes its outputs.

    Attributes:
        out: output folder, or file for a single input; None = beside each input.
        recursive: include sub-folders of folder inputs.
        max_pixels: refuse images whose header declares more pixels (None: no limit).
        fmt: output format (png, jpg, webp, tiff); None = png, or OUT's extension.
        suffix: output name suffix; None = the task's (`NAME_x4`, `NAME_denoised`, ...).
        jpeg_quality: quality of jpg and webp outputs.
        overwrite: replace existing outputs (default: skip them).
        dry_run: report what would be written; decode and write nothing.
    """

    out: Path | None = None
    recursive: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    fmt: str | None = None
    suffix: str | None = None
    jpeg_quality: int = 95
    overwrite: bool = False
    dry_run: bool = False


@dataclass(frozen=True)
class Source:
    """An input image: its path, the folder argument it came from (None for a file
    argument) and its path relative to that folder (the bare name for a file argument)."""

    path: Path
    root: Path | None
    relative: Path


@dataclass(frozen=True)
class Job:
    """One input and the output it will be written to."""

    source: Source
    output: Path


@dataclass(frozen=True)
class Problem:
    """A path that cannot be processed, and why (reported, never fatal for the others)."""

    path: Path
    reason: str
    skipped: bool = False  # passed over, not failed (e.g. a non-image file in a folder)


def readable_types() -> str:
    """The readable extensions, for messages: "avi, bmp, gif, jpe, ..."."""
    return ", ".join(sorted(e[1:] for e in SOURCE_EXTENSIONS))


def collect_sources(
    inputs: Sequence[Path], *, recursive: bool = False, exclude: Path | None = None
) -> tuple[list[Source], list[Problem]]:
    """Expand INPUT arguments into image and video sources (and problems: missing paths,
    empty folders).

    A file argument is taken whatever its extension (its content decides later; a video
    extension makes it a video); inside a folder, files with one of `SOURCE_EXTENSIONS`
    (images and videos) are sources and the other visible files are
    reported as skipped problems (hidden files and folders are ignored). `exclude` (the
    output folder) is never searched. The same file named twice is processed once.
    """
    sources: list[Source] = []
    problems: list[Problem] = []
    seen: set[Path] = set()
    skip = exclude.resolve() if exclude is not None else None

    def add(source: Source) -> None:
        key = source.path.resolve()
        if key not in seen:
            seen.add(key)
            sources.append(source)

    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            images, others = scan_folder(
                path, recursive=recursive, exclude=skip, extensions=SOURCE_EXTENSIONS
            )
            if not images:
                where = "in the folder or its sub-folders" if recursive else "in the folder"
                exts = readable_types()
                problems.append(
                    Problem(path, f"no images or videos found {where} (looked for {exts})")
                )
            for image in images:
                add(Source(image, path, image.relative_to(path)))
            for other in others:
                problems.append(
                    Problem(other, "not an image or video file type scn reads", skipped=True)
                )
        elif path.is_file():
            add(Source(path, None, Path(path.name)))
        elif path.is_symlink():
            problems.append(Problem(path, "broken symbolic link"))
        elif path.exists():
            problems.append(Problem(path, "not a regular file or folder"))
        else:
            problems.append(Problem(path, "file not found"))
    return sources, problems


def _real(path: Path) -> Path:
    """`path` with its folder resolved (symbolic links, "..") but not its last component:
    the directory entry that a write would replace."""
    return path.parent.resolve() / path.name


def is_inside(path: Path, root: Path) -> bool:
    """Whether the directory entry `path` lies inside `root` (links resolved)."""
    return _real(path).is_relative_to(root.resolve())


def output_is_file(out: Path | None, sources: Sequence[Source]) -> bool:
    """Whether OUT names a single output file (one file argument, OUT with an image suffix,
    or a video suffix for a video input)."""
    if out is None or len(sources) != 1 or sources[0].root is not None or out.is_dir():
        return False
    suffixes = VIDEO_EXTENSIONS if is_video(sources[0].path) else IMAGE_EXTENSIONS
    return out.suffix.lower() in suffixes


def plan_outputs(
    sources: Sequence[Source],
    *,
    out: Path | None,
    suffix: str,
    fmt: str,
    overwrite: bool = False,
) -> tuple[list[Job], list[Problem], list[Problem]]:
    """Name every output; returns (jobs, problems, dropped).

    OUT is a folder (created later), or a file name when there is exactly one file input
    and OUT ends in an image extension. Without OUT each output goes beside its input.
    Outputs are `<stem><suffix><ext>` (a video keeps its own extension: its container);
    sources found in folders keep their sub-folder below
    OUT. Two inputs that would share an output name are told apart by the input's extension
    (`a.png`, `a.jpg` -> `a_x4.png`, `a_png_x4.png`).

    An input is never written over: an output that would be one of the inputs is refused
    (a problem), and so is one that leaves OUT through a symbolic link. With a non-empty
    suffix, inputs named like another input's output (`a_x4.png` beside `a.png`: a previous
    run's result) are dropped, not processed; their original's job keeps that output name,
    so it is skipped as existing, or refused with `overwrite`.
    """
    ext = OUTPUT_FORMATS[fmt]
    single = output_is_file(out, sources)

    def candidates(source: Source) -> tuple[list[Path], Path]:
        if single:
            assert out is not None
            return [out], out.parent
        folder = (out / source.relative.parent) if out is not None else source.path.parent
        stem = source.relative.stem
        kind = source.path.suffix.lower().lstrip(".") or "noext"
        own = source.path.suffix.lower() if is_video(source.path) else ext
        names = [folder / f"{stem}{suffix}{own}", folder / f"{stem}_{kind}{suffix}{own}"]
        return names, (out if out is not None else source.path.parent)

    inputs = {_real(s.path) for s in sources}
    primary = {_real(candidates(s)[0][0]): s for s in reversed(sources)}
    previous = {_real(s.path) for s in sources if suffix and primary.get(_real(s.path), s) is not s}
    dropped = [
        Problem(s.path, f"looks like the output of {primary[_real(s.path)].path}; not processed")
        for s in sources
        if _real(s.path) in previous
    ]
    jobs: list[Job] = []
    problems: list[Problem] = []
    taken: dict[Path, Source] = {}
    for source in sources:
        if _real(source.path) in previous:
            continue
        names, root = candidates(source)
        if not is_inside(names[0], root):
            problems.append(Problem(source.path, f"output {names[0]} would leave {root}"))
            continue
        first = _real(names[0])
        if first in previous and primary[first] is source:
            if overwrite:
                problems.append(Problem(source.path, f"output {names[0]} is also an input"))
            else:
                taken[first] = source
                jobs.append(Job(source, names[0]))
            continue
        if first in inputs and first not in previous:
            why = "would overwrite an input (give --suffix, --format or -o)"
            problems.append(Problem(source.path, f"output {names[0]} {why}"))
            continue
        chosen = next((n for n in names if _real(n) not in inputs and _real(n) not in taken), None)
        if chosen is None:
            owner = taken.get(first) or primary[first]
            why = f"collides with the output of {owner.path}"
            problems.append(Problem(source.path, f"output {names[0]} {why}"))
            continue
        taken[_real(chosen)] = source
        jobs.append(Job(source, chosen))
    return jobs, problems, dropped
