"""What a video file holds: its video stream (size, codec, colour, rotation), its keyframes
and frame count (from the packets, without decoding), and its other streams.

Every problem a file can have before any work starts is found here and raised as
`ImageReadError` naming the file: not a container FFmpeg reads, no video stream, a codec this
build cannot decode, a frame above the pixel limit, a truncated or corrupt stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from scn_deploy.errors import ImageReadError
from scn_deploy.video.colour import ColourTags
from scn_deploy.video.formats import require_av


@dataclass(frozen=True)
class OtherStream:
    """A stream other than the restored video (copied to the output)."""

    index: int
    kind: str  # audio, subtitle, data, attachment, video (e.g. a cover picture)
    codec: str

    def describe(self) -> str:
        return f"stream #{self.index} ({self.kind} {self.codec})"


@dataclass(frozen=True)
class VideoInfo:
    """The restored stream of a video file (the container's best video stream)."""

    path: Path
    index: int
    width: int
    height: int
    codec: str
    pix_fmt: str
    time_base: Fraction
    colour: ColourTags
    display_matrix: tuple[int, ...] | None
    frames: int = 0
    keyframes: tuple[int, ...] = ()  # presentation timestamps (time_base), ascending
    before: tuple[int, ...] = ()  # packets read before each keyframe (progress only)
    first_pts: int = 0
    last_pts: int = 0
    others: tuple[OtherStream, ...] = field(default_factory=tuple)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame's timestamp (for progress only)."""
        return float((self.last_pts - self.first_pts) * self.time_base)

    def frames_before(self, pts: int | None) -> int:
        """About how many frames precede the keyframe at `pts` (None: the start)."""
        if pts is None or pts not in self.keyframes:
            return 0
        return self.before[self.keyframes.index(pts)]

    def describe(self) -> str:
        return f"{self.width}x{self.height} {self.codec} {self.colour.describe()}"


def open_input(path: Path):  # -> av.container.InputContainer
    """The file opened by libavformat, or `ImageReadError` naming it."""
    av = require_av()
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise ImageReadError(f"{path}: not a video FFmpeg can read ({_reason(exc)})") from exc


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def probe_video(path: Path, *, max_pixels: int | None = None, scan: bool = True) -> VideoInfo:
    """Describe `path`'s video stream; with `scan`, also read every packet (not decoding
    them) for the keyframes and the frame count, which also finds truncated files.

    The first frame is decoded, so a codec this build cannot decode is found here too.
    """
    av = require_av()
    with open_input(path) as container:
        streams = list(container.streams)
        video = next((s for s in streams if s.type == "video" and not _is_picture(s)), None)
        if video is None:
            raise ImageReadError(f"{path}: no video stream (streams: {_kinds(streams)})")
        ctx = video.codec_context
        if ctx is None or ctx.codec is None or not ctx.codec.is_decoder:
            raise ImageReadError(f"{path}: the {video.codec.name} video codec cannot be decoded")
        width, height = ctx.width, ctx.height
        if width <= 0 or height <= 0:
            raise ImageReadError(f"{path}: the video stream declares no frame size")
        if max_pixels is not None and width * height > max_pixels:
            raise ImageReadError(
                f"{path}: {width}x{height} frames exceed the limit of {max_pixels} pixels "
                "(--max-pixels)"
            )
        try:
            first = _first_frame(container, video)
        except av.error.FFmpegError as exc:
            raise ImageReadError(f"{path}: cannot decode the video ({_reason(exc)})") from exc
        if first is None:
            raise ImageReadError(f"{path}: the video stream holds no decodable frame")
        others = tuple(
            OtherStream(s.index, s.type, s.codec_context.name if s.codec_context else "data")
            for s in streams
            if s.index != video.index
        )
        info = VideoInfo(
            path=path,
            index=video.index,
            width=first.width,
            height=first.height,
            codec=video.codec.name,
            pix_fmt=first.format.name,
            time_base=video.time_base or Fraction(1, 1000),
            colour=ColourTags.of(first, first.height),
            display_matrix=_display_matrix(first),
            others=others,
        )
        if not scan:
            return info
        container.seek(0)
        return _scan(container, video, info)


def _is_picture(stream) -> bool:
    """A cover picture: a video stream with one attached image (copied, not restored)."""
    return bool(stream.disposition & stream.disposition.attached_pic)


def _kinds(streams) -> str:
    return (
        ", ".join(
            f"{s.type} {s.codec_context.name if s.codec_context else ''}".strip() for s in streams
        )
        or "none"
    )


def _first_frame(container, video):
    for packet in container.demux(video):
        for frame in packet.decode():
            return frame
    return None


def _display_matrix(frame) -> tuple[int, ...] | None:
    """The frame's display matrix (9 int32, FFmpeg's layout), None when it has none."""
    from av.sidedata.sidedata import Type

    for data in frame.side_data:
        if data.type == Type.DISPLAYMATRIX:
            return tuple(int(v) for v in np.frombuffer(bytes(data), dtype="<i4")[:9])
    return None


def _scan(container, video, info: VideoInfo) -> VideoInfo:
    av = require_av()
    keyframes: dict[int, int] = {}
    count, first, last = 0, None, None
    try:
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:
                raise ImageReadError(f"{info.path}: video packets without timestamps")
            count += 1
            first = pts if first is None else min(first, pts)
            last = pts if last is None else max(last, pts)
            if packet.is_keyframe:
                keyframes.setdefault(pts, count - 1)
    except av.error.FFmpegError as exc:
        raise ImageReadError(f"{info.path}: corrupt or truncated ({_reason(exc)})") from exc
    declared = video.frames
    if declared and count < declared:
        raise ImageReadError(
            f"{info.path}: truncated: the header declares {declared} frames, the file holds {count}"
        )
    if not keyframes or count == 0:
        raise ImageReadError(f"{info.path}: the video stream holds no keyframe")
    from dataclasses import replace

    return replace(
        info,
        frames=count,
        keyframes=tuple(sorted(keyframes)),
        before=tuple(keyframes[k] for k in sorted(keyframes)),
        first_pts=first or 0,
        last_pts=last or 0,
    )
