"""One segment's encoder: restored RGB frames in, a video-only file of the segment out.

Every frame keeps its input timestamp and duration (the stream's time base is the input's),
so variable frame rates stay variable. The stream carries the input's colour description
and display matrix (rotation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scn_deploy.errors import ConfigError
from scn_deploy.video.colour import ColourTags, rgb_to_frame
from scn_deploy.video.formats import EncoderOptions, require_av
from scn_deploy.video.probe import VideoInfo


def check_encoder(options: EncoderOptions, width: int, height: int) -> None:
    """Raise `ConfigError` unless this build has the encoder and it can hold frames of this
    size in this pixel format (e.g. 4:2:0 needs even sizes)."""
    av = require_av()
    try:
        codec = av.codec.Codec(options.codec, "w")
    except (av.error.FFmpegError, ValueError):
        raise ConfigError(f"--codec {options.codec}: no such encoder in this FFmpeg") from None
    if codec.type != "video":
        raise ConfigError(f"--codec {options.codec} is not a video encoder")
    try:
        fmt = av.VideoFormat(options.pix_fmt)
    except (av.error.FFmpegError, ValueError):
        raise ConfigError(f"--pix-fmt {options.pix_fmt}: no such pixel format") from None
    formats = [f.name for f in codec.video_formats or []]
    if formats and fmt.name not in formats:
        raise ConfigError(
            f"{options.codec} cannot encode {fmt.name}; it takes {', '.join(formats)}"
        )
    sub_w, sub_h = 4 // fmt.chroma_width(4), 4 // fmt.chroma_height(4)  # chroma subsampling
    if not fmt.is_rgb and (width % sub_w or height % sub_h):
        raise ConfigError(
            f"the output is {width}x{height}, but {fmt.name} needs sizes divisible by "
            f"{sub_w}x{sub_h} (give --pix-fmt yuv444p, or a model scale that makes it even)"
        )


class SegmentWriter:
    """Encodes one segment to `path` (a file of container `fmt` with the one video stream;
    `scn_deploy.video.segments.segment_container` picks it)."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        width: int,
        height: int,
        options: EncoderOptions,
        fmt: str = "mp4",
    ) -> None:
        av = require_av()
        self.tags: ColourTags = info.colour
        self.options = options
        self.container = av.open(str(path), mode="w", format=fmt)
        try:
            stream = self.container.add_stream(
                options.codec, options=options.codec_options(width, height)
            )
            stream.width, stream.height = width, height
            stream.pix_fmt = options.pix_fmt
            stream.time_base = info.time_base
            ctx = stream.codec_context
            ctx.time_base = info.time_base
            ctx.colorspace = info.colour.matrix
            ctx.color_range = info.colour.range
            ctx.color_primaries = info.colour.primaries
            ctx.color_trc = info.colour.transfer
            if info.display_matrix is not None:
                stream.set_display_matrix(info.display_matrix)
        except BaseException:
            self.container.close()
            raise
        self.stream = stream
        self.durations: dict[int, int] = {}  # pts -> the input frame's duration

    def write(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        frame = rgb_to_frame(rgb, self.options.pix_fmt, self.tags)
        frame.pts = pts
        frame.time_base = self.stream.codec_context.time_base
        if duration:
            frame.duration = duration
            self.durations[pts] = duration
        self._mux(self.stream.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:  # each frame's own duration (VFR), not 1 / the nominal rate
            duration = self.durations.pop(packet.pts, None) if packet.pts is not None else None
            if duration:
                packet.duration = duration
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        self._mux(self.stream.encode(None))
        self.container.close()

    def abandon(self) -> None:
        self.container.close()
