"""Tiny test videos made with PyAV (imported only by tests that have `av`)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# libavutil enum values
BT709, BT470BG, SMPTE170M, BT2020 = 1, 5, 6, 9
LIMITED, FULL = 1, 2
PQ = 16
# Accurate swscale conversions (bicubic chroma, accurate rounding), as a good player does.
SCALER_FLAGS = int(
    av.video.reformatter.Interpolation.BICUBIC
    | av.video.reformatter.Interpolation.ACCURATE_RND
    | av.video.reformatter.Interpolation.FULL_CHR_H_INT
    | av.video.reformatter.Interpolation.FULL_CHR_H_INP
)

#: Flat patches a restoration model leaves (nearly) alone: each one's mean is compared.
PATCH_COLOURS = np.array(
    [[200, 40, 40], [40, 180, 60], [50, 60, 200], [220, 210, 60], [128, 128, 128], [30, 30, 30]],
    np.uint8,
)


@dataclass
class Clip:
    """How a test video is made."""

    width: int = 64
    height: int = 48
    frames: int = 12
    gop: int = 4  # a keyframe every `gop` frames
    durations_ms: tuple[int, ...] = (40,)  # cycled; several values: variable frame rate
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    matrix: int | None = None  # colorspace tag and conversion (None: untagged, BT.601 math)
    range: int = LIMITED
    primaries: int | None = None
    transfer: int | None = None
    audio: bool = False
    subtitles: str | None = None  # subtitle codec: subrip, ass, mov_text
    rotation: int | None = None
    patches: bool = False  # flat colour patches instead of noise
    container: str | None = None
    tagged: bool = False  # a title, an audio language and two chapters


_SPACE_NAMES = {BT709: "itu709", BT470BG: "itu601", SMPTE170M: "itu601", BT2020: "bt2020"}


def patch_image(width: int, height: int) -> np.ndarray:
    """Six flat colour patches in a 3x2 grid (uint8 RGB)."""
    image = np.empty((height, width, 3), np.uint8)
    pw, ph = width // 3, height // 2
    for i, colour in enumerate(PATCH_COLOURS):
        y, x = divmod(i, 3)
        image[
            y * ph : (y + 1) * ph if y < 1 else height, x * pw : (x + 1) * pw if x < 2 else width
        ] = colour
    return image


def patch_means(rgb: np.ndarray) -> np.ndarray:
    """Each patch's mean colour, from its inner half (away from edges and chroma bleed)."""
    height, width = rgb.shape[:2]
    pw, ph = width // 3, height // 2
    means = []
    for i in range(len(PATCH_COLOURS)):
        y, x = divmod(i, 3)
        y0, x0 = y * ph + ph // 4, x * pw + pw // 4
        means.append(rgb[y0 : y0 + ph // 2, x0 : x0 + pw // 2].reshape(-1, 3).mean(axis=0))
    return np.array(means)


def make_clip(path: Path, clip: Clip) -> Path:
    """Write `clip` to `path`; returns it."""
    rng = np.random.default_rng(1)
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w", format=clip.container) as out:
        options = {}
        if clip.codec in ("libx264", "libx265"):
            key = "x264-params" if clip.codec == "libx264" else "x265-params"
            options[key] = f"keyint={clip.gop}:min-keyint={clip.gop}:scenecut=0"
            if clip.codec == "libx265":
                options[key] += ":log-level=error"
        else:
            options["g"] = str(clip.gop)
        video = out.add_stream(clip.codec, rate=25, options=options)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, clip.pix_fmt
        video.time_base = time_base
        ctx = video.codec_context
        ctx.time_base = time_base
        if clip.matrix is not None:
            ctx.colorspace = clip.matrix
        ctx.color_range = clip.range
        if clip.primaries is not None:
            ctx.color_primaries = clip.primaries
        if clip.transfer is not None:
            ctx.color_trc = clip.transfer
        if clip.rotation is not None:
            video.set_display_rotation(clip.rotation)
        audio = None
        if clip.audio:
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "stereo"
        subtitles = out.add_mux_stream(clip.subtitles) if clip.subtitles else None
        if clip.tagged:
            out.metadata["title"] = "test clip"
            if audio is not None:
                audio.metadata["language"] = "fra"
            half = clip.frames * clip.durations_ms[0] // 2
            out.set_chapters(
                [
                    {
                        "id": 1,
                        "start": 0,
                        "end": half,
                        "time_base": time_base,
                        "metadata": {"title": "one"},
                    },
                    {
                        "id": 2,
                        "start": half,
                        "end": 2 * half,
                        "time_base": time_base,
                        "metadata": {"title": "two"},
                    },
                ]
            )
        pts = 0
        stamps = []
        deep = "10" in clip.pix_fmt
        for i in range(clip.frames):
            if clip.patches:
                image = patch_image(clip.width, clip.height)
            else:
                image = (rng.random((clip.height, clip.width, 3)) * 255).astype(np.uint8)
            if deep:
                frame = av.VideoFrame.from_ndarray(image.astype(np.uint16) * 257, format="rgb48le")
            else:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(
                interpolation=SCALER_FLAGS,
                format=clip.pix_fmt,
                dst_colorspace=_SPACE_NAMES.get(clip.matrix or SMPTE170M, "itu601"),
                src_color_range=FULL,
                dst_color_range=clip.range,
            )
            frame.pts, frame.time_base = pts, time_base
            stamps.append(pts)
            pts += clip.durations_ms[i % len(clip.durations_ms)]
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            done, total = 0, 48 * pts
            while done < total:
                samples = np.sin(np.arange(done, done + 1024) / 20.0).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(
                    np.stack([samples, samples]), format="fltp", layout="stereo"
                )
                frame.sample_rate, frame.pts = 48000, done
                done += 1024
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
        if subtitles is not None:
            for i, start in enumerate(stamps[:: max(1, len(stamps) // 3)]):
                text = f"line {i}".encode()
                if clip.subtitles == "mov_text":
                    text = len(text).to_bytes(2, "big") + text
                elif clip.subtitles == "ass":
                    text = f"{i},0,Default,,0,0,0,,line {i}".encode()
                packet = av.Packet(text)
                packet.stream = subtitles
                packet.time_base = time_base
                packet.pts = packet.dts = start
                packet.duration = 30
                out.mux(packet)
    return path


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [frame.pts for frame in c.decode(video=0)]


def packets_of(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        stream = next(s for s in c.streams if s.type == kind)
        return [bytes(p) for p in c.demux(stream) if p.size]


def decoded_rgb(path: Path, *, deep: bool = False) -> list[np.ndarray]:
    """Every frame as RGB, converted by the stream's own tags, as a player would."""
    space = {BT709: "itu709", BT2020: "bt2020"}
    with av.open(str(path)) as c:
        frames = []
        for frame in c.decode(video=0):
            matrix = space.get(int(frame.colorspace), "itu601")
            rgb = frame.reformat(
                interpolation=SCALER_FLAGS,
                format="rgb48le" if deep else "rgb24",
                src_colorspace=matrix,
                src_color_range=int(frame.color_range) or LIMITED,
                dst_color_range=FULL,
            )
            frames.append(rgb.to_ndarray())
        return frames
