"""Keyframe-aligned segments and the work folder that lets an interrupted run resume.

A video is restored in segments that start on input keyframes, each encoded by its own
encoder into its own file. A finished segment is renamed into the work folder (a hidden
folder beside the output, named after it); a rerun of the same command on the same input
finds them, says so, and starts after the last one. Since every segment is decoded from its
own keyframe, restored with the video's one tile plan and encoded by a fresh encoder, a
resumed run's frames equal an uninterrupted run's. The folder is removed once the final file
is in place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scn_deploy.atomic import atomic_write
from scn_deploy.video.probe import VideoInfo

#: Containers a segment may be written in, by preference: MP4 and QuickTime keep the input's
#: time base and negative timestamps (B-frame delays); Matroska takes the other codecs.
SEGMENT_CONTAINERS = (("mp4", ".mp4"), ("mov", ".mov"), ("matroska", ".mkv"))


def segment_container(codec: str) -> tuple[str, str]:
    """(muxer, suffix) of the segment files for an encoder."""
    from scn_deploy.video.formats import container_holds

    for name, suffix in SEGMENT_CONTAINERS:
        if container_holds(name, codec):
            return name, suffix
    return SEGMENT_CONTAINERS[-1]


@dataclass(frozen=True)
class Segment:
    """Frames with start <= pts < end (None: open) of the input's video stream."""

    index: int
    start: int | None
    end: int | None

    def holds(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and (self.end is None or pts < self.end)


def plan_segments(info: VideoInfo, seconds: float) -> list[Segment]:
    """Segments starting on keyframes at least `seconds` apart (the first holds any frames
    before the first keyframe too)."""
    starts: list[int] = []
    for pts in info.keyframes:
        if not starts or float((pts - starts[-1]) * info.time_base) >= seconds:
            starts.append(pts)
    bounds: list[int | None] = [None, *starts[1:], None]
    return [Segment(i, bounds[i], bounds[i + 1]) for i in range(len(starts))]


def work_folder_for(output: Path) -> Path:
    """The hidden folder beside `output` holding its finished segments."""
    return output.parent / f".{output.name}.scn-segments"


class WorkFolder:
    """The finished segments of one output, valid for one fingerprint (the input file and
    every setting that changes the result)."""

    def __init__(self, output: Path, fingerprint: dict[str, Any], suffix: str = ".mp4") -> None:
        self.path = work_folder_for(output)
        self.fingerprint = fingerprint
        self.suffix = suffix

    def open(self) -> int:
        """Prepare the folder; returns how many leading segments are already finished (0
        when there is no folder, or it was made for another input or other settings)."""
        manifest = self.path / "manifest.json"
        try:
            previous = json.loads(manifest.read_text())
        except (OSError, ValueError):
            previous = None
        if previous != self.fingerprint:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            atomic_write(manifest, json.dumps(self.fingerprint, sort_keys=True).encode())
            return 0
        for leftover in self.path.glob(".*"):  # a segment being written when interrupted
            leftover.unlink(missing_ok=True)
        done = 0
        while self.segment(done).exists():
            done += 1
        return done

    def segment(self, index: int) -> Path:
        return self.path / f"segment-{index:05d}{self.suffix}"

    def partial(self, index: int) -> Path:
        """Where segment `index` is written before it is complete (renamed by `finish`)."""
        return self.path / f".segment-{index:05d}.part{self.suffix}"

    def finish(self, index: int) -> None:
        self.partial(index).replace(self.segment(index))

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
