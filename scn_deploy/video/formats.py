"""Which files are videos, which container an output suffix picks, and the encoder defaults.

Imports nothing from PyAV, so folder listings and dry runs work without the `video` extra;
`require_av` is the one place that says what to install.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from scn_deploy.errors import ConfigError

#: Video file extensions, with the libavformat muxer an output of that suffix is written with.
CONTAINERS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}
VIDEO_EXTENSIONS: frozenset[str] = frozenset(CONTAINERS)

INSTALL_HINT = "reading videos needs PyAV: pip install 'scn-deploy[video]'"


def is_video(path: Path) -> bool:
    """Whether a path names a video by its extension (mp4, m4v, mov, mkv, webm, avi)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def sniff_container(data: bytes) -> str | None:
    """The file suffix of the video container ``data`` starts with (".mp4", ".mov", ".mkv",
    ".webm", ".avi"), or None when it is not one of those: read from the bytes, never from
    a name (an upload has none to trust)."""
    head = data[:64]
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:12] == b"qt  " else ".mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):  # QuickTime without ftyp
        return ".mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or WebM, by the DocType
        return ".webm" if b"webm" in data[:4096] else ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    return None


def container_for(path: Path) -> str:
    """The muxer of an output path, by its suffix."""
    try:
        return CONTAINERS[path.suffix.lower()]
    except KeyError:
        kinds = ", ".join(sorted(e[1:] for e in VIDEO_EXTENSIONS))
        raise ConfigError(f"{path}: a video output must end in one of {kinds}") from None


def require_av() -> ModuleType:
    """The `av` module, or a `ConfigError` naming the extra to install."""
    try:
        import av
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    av.logging.set_level(None)  # FFmpeg's own log lines would interleave with ours
    return av


def container_holds(muxer: str, codec: str) -> bool:
    """Whether libavformat's `muxer` can hold a stream of encoder `codec`."""
    import io

    av = require_av()
    with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
        return codec in probe.supported_codecs


@dataclass(frozen=True)
class EncoderOptions:
    """How the restored video is encoded.

    Attributes:
        codec: encoder name (libx264, libx265, libvpx-vp9, libsvtav1, ffv1, ...); None: libx264
            for 8-bit input (libvpx-vp9 in webm), libx265 for 10-bit and deeper (libsvtav1 in
            webm): widely playable, and HEVC Main 10 is what 10-bit / HDR players decode.
        crf: constant rate factor (lower is better); None: the codec's default here
            (`DEFAULT_CRF`: 18 for x264, 20 for x265, 24 for VP9, 26 for SVT-AV1), visually
            close to transparent.
        preset: encoder speed preset (x264/x265: ultrafast ... veryslow; SVT-AV1: 0-13);
            None: "fast" for x264/x265, 8 for SVT-AV1, the codec's own for others.
        pix_fmt: output pixel format; None: yuv420p for 8-bit input, yuv420p10le for deeper.
    """

    codec: str | None = None
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None

    def resolved(self, container: str, bit_depth: int) -> EncoderOptions:
        """These options with every default filled for an output container and input depth."""
        deep = bit_depth > 8
        codec = self.codec
        if codec is None:
            if container == "webm":
                codec = "libsvtav1" if deep else "libvpx-vp9"
            else:
                codec = "libx265" if deep else "libx264"
        pix_fmt = self.pix_fmt or ("yuv420p10le" if deep else "yuv420p")
        crf = self.crf if self.crf is not None else DEFAULT_CRF.get(codec)
        preset = self.preset if self.preset is not None else DEFAULT_PRESET.get(codec)
        return EncoderOptions(codec, crf, preset, pix_fmt)

    def codec_options(self, width: int = 0, height: int = 0) -> dict[str, str]:
        """The resolved options as libavcodec private options, for frames of this size."""
        options: dict[str, str] = {}
        if self.crf is not None:
            options["crf"] = f"{self.crf:g}"
            if self.codec == "libvpx-vp9":
                options["b"] = "0"  # constant quality, not constrained quality
        if self.preset is not None:
            key = "cpu-used" if self.codec == "libvpx-vp9" else "preset"
            options[key] = self.preset
        if self.codec == "libx264":
            # Resumed and Ray segments must equal an uninterrupted run's, but x264's threads
            # gave 8 different encodings of the same 48 frames in 12 runs (measured; one
            # thread: 8 of 8 identical, as x265 was with its threads). The restoration keeps
            # the other cores busy.
            options["threads"] = "1"
            options["x264-params"] = "lookahead-threads=1"
            if width * height > LARGE_FRAME:
                # x264's 30-frame lookahead held 1.2 GB at 3840x2160; 10 frames held 0.7 GB
                # (measured, preset fast), keeping a 1080p -> 4K run under 1.5 GB.
                options["x264-params"] += ":rc-lookahead=10"
        if self.codec == "libx265":
            options["x265-params"] = "log-level=error"
        return options

    def describe(self) -> str:
        parts = [self.codec or "auto", self.pix_fmt or "auto"]
        if self.crf is not None:
            parts.append(f"crf {self.crf:g}")
        if self.preset is not None:
            parts.append(f"preset {self.preset}")
        return ", ".join(parts)


LARGE_FRAME = 1920 * 1088  # pixels above which x264 gets a shorter lookahead
DEFAULT_CRF: dict[str, float] = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libsvtav1": 26}
DEFAULT_PRESET: dict[str, str] = {"libx264": "fast", "libx265": "fast", "libsvtav1": "8"}


@dataclass(frozen=True)
class VideoOptions:
    """How videos are processed.

    Attributes:
        encoder: the video encoder (`EncoderOptions`).
        segment_seconds: a new segment starts at the first keyframe at least this many
            seconds after the previous segment's start (0: at every keyframe). Finished
            segments survive an interruption; a rerun continues after the last one.
        queue_frames: frames each stage may hold ahead of the next (memory: a few frames; 1
            as in the image pipeline: a 1080p -> 4K run peaked at 1.5 GB with 2).
    """

    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    segment_seconds: float = 10.0
    queue_frames: int = 1
