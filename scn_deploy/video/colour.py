"""YUV <-> RGB by a stream's own matrix and range, and the tags its output carries.

The decoder's frames are converted to RGB (uint8, or uint16 for streams deeper than 8 bits:
the restorer's 16-bit path) with the matrix (BT.601 / 709 / 2020 ...) and range (limited /
full) the stream declares; untagged streams get what players assume (BT.709 from 720 lines
up, BT.601 below; limited range unless the pixel format is a full-range `yuvj` one). The
restored RGB goes back to YUV with the same matrix and range, and the encoder tags the
output with the input's matrix, primaries, transfer (PQ and HLG included: nothing is tone
mapped) and range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from av import VideoFrame

# libavutil's AVColorSpace -> the name swscale's matrix is selected by (PyAV's Colorspace).
_MATRIX_NAMES: dict[int, str] = {
    1: "itu709",  # BT709
    4: "fcc",  # FCC
    5: "itu601",  # BT470BG
    6: "itu601",  # SMPTE170M
    7: "smpte240m",  # SMPTE240M
    9: "bt2020",  # BT2020_NCL
    10: "bt2020",  # BT2020_CL (swscale has the one BT.2020 matrix)
}
_MATRIX_LABELS = {"itu709": "BT.709", "itu601": "BT.601", "smpte240m": "SMPTE 240M"}
_MATRIX_LABELS |= {"bt2020": "BT.2020", "fcc": "FCC"}
UNSPECIFIED = 2  # AVCOL_SPC / AVCOL_PRI / AVCOL_TRC_UNSPECIFIED
LIMITED, FULL = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG
# What players assume for an untagged stream: BT.709 (1) from 720 lines up, else BT.601 (6).
_GUESSED_SPACE = {True: 1, False: 6}
_TRANSFER_LABELS = {16: "PQ", 18: "HLG"}


@dataclass(frozen=True)
class ColourTags:
    """A stream's colour description (libavutil enum values) and its bit depth.

    `matrix` and `range` are always resolved (an untagged stream gets the players' guess);
    `primaries` and `transfer` stay as declared (2: unspecified) and are copied to the output.
    """

    matrix: int
    range: int
    primaries: int
    transfer: int
    bit_depth: int
    guessed: bool = False

    @classmethod
    def of(cls, frame: VideoFrame, height: int) -> ColourTags:
        """The tags of a decoded frame (which carries its stream's description)."""
        guessed = frame.colorspace not in _MATRIX_NAMES
        matrix = _GUESSED_SPACE[height >= 720] if guessed else int(frame.colorspace)
        rng = int(frame.color_range)
        if rng not in (LIMITED, FULL):
            rng = FULL if frame.format.name.startswith("yuvj") else LIMITED
        depth = max(c.bits for c in frame.format.components)
        return cls(matrix, rng, int(frame.color_primaries), int(frame.color_trc), depth, guessed)

    @property
    def deep(self) -> bool:
        """More than 8 bits: converted through 16-bit RGB."""
        return self.bit_depth > 8

    @property
    def rgb_format(self) -> str:
        return "rgb48le" if self.deep else "rgb24"

    @property
    def matrix_name(self) -> str:
        return _MATRIX_NAMES[self.matrix]

    def describe(self) -> str:
        label = _MATRIX_LABELS[self.matrix_name] + (" (assumed)" if self.guessed else "")
        parts = [label, "full range" if self.range == FULL else "limited range"]
        parts.append(f"{self.bit_depth}-bit")
        if self.transfer in _TRANSFER_LABELS:
            parts.append(f"{_TRANSFER_LABELS[self.transfer]} (HDR, not tone-mapped)")
        return ", ".join(parts)


#: swscale's threads per conversion. One: its automatic slice threading (threads=0) made
#: the same frame convert differently now and then (a resumed run's frames differed from an
#: uninterrupted run's in 5 of 6 runs under pytest, up to 35 levels after x264; 0 of 10 on
#: one thread). The decode and encode stages already run in threads of their own.
SCALER_THREADS = 1


def _scaler_flags(*, to_rgb: bool) -> int:
    """swscale flags with accurate rounding and full chroma resolution: bicubic chroma
    upsampling to RGB, area-averaged chroma to 4:2:0. swscale's default fast path shifted flat
    full-range colours by 2 levels (grey 128 -> 126, measured); these stay within 1, at about
    5-8 ms per 720p frame. (Bilinear with full chroma interpolation turned 10-bit BT.2020
    red into magenta: not used.)"""
    from av.video.reformatter import Interpolation as Flag

    if to_rgb:
        return int(Flag.BICUBIC | Flag.ACCURATE_RND | Flag.FULL_CHR_H_INT | Flag.FULL_CHR_H_INP)
    return int(Flag.AREA | Flag.ACCURATE_RND | Flag.FULL_CHR_H_INP)


def frame_to_rgb(frame: VideoFrame, tags: ColourTags) -> np.ndarray:
    """A decoded frame as HxWx3 RGB: uint8, or uint16 for deep streams."""
    rgb = frame.reformat(
        format=tags.rgb_format,
        src_colorspace=tags.matrix_name,
        src_color_range=tags.range,
        dst_color_range=FULL,
        interpolation=_scaler_flags(to_rgb=True),
        threads=SCALER_THREADS,
    )
    return rgb.to_ndarray()


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, tags: ColourTags) -> VideoFrame:
    """HxWx3 RGB (uint8 or uint16) as a frame of `pix_fmt`, by the input's matrix and range,
    tagged with all of the input's colour description."""
    from av import VideoFrame

    source = VideoFrame.from_ndarray(
        np.ascontiguousarray(rgb), format="rgb48le" if rgb.dtype == np.uint16 else "rgb24"
    )
    frame = source.reformat(
        format=pix_fmt,
        src_color_range=FULL,
        dst_colorspace=tags.matrix_name,
        dst_color_range=tags.range,
        interpolation=_scaler_flags(to_rgb=False),
        threads=SCALER_THREADS,
    )
    frame.colorspace = tags.matrix
    frame.color_range = tags.range
    frame.color_primaries = tags.primaries
    frame.color_trc = tags.transfer
    return frame
