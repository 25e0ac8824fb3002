"""Estimate the IJG quality a JPEG was saved with, from its quantisation tables.

libjpeg (and everything built on it: OpenCV, Pillow, most cameras' desktop tools) makes its
tables by scaling the two example tables of the JPEG standard (ITU-T T.81 Annex K) with
`jpeg_quality_scaling`: scale = 5000/q for q < 50, 200 - 2q otherwise, entry =
(base * scale + 50) / 100 clamped to 1..255. `estimate_quality` reads the DQT segments
(parsed here, not by a decoder library), compares them with those tables for q = 1..100 and
returns the closest quality and how closely it fits (0 = the exact IJG tables).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["QualityEstimate", "estimate_quality", "ijg_tables", "read_quant_tables"]

# ITU-T T.81 Annex K.1 / K.2, natural (row-major) order.
STD_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).ravel()
STD_CHROMINANCE = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=np.int64,
).ravel()


def _zigzag() -> np.ndarray:
    """ZIGZAG[k] = natural index of the k-th coefficient in zig-zag (file) order."""
    order = sorted(
        ((r, c) for r in range(8) for c in range(8)),
        key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]),
    )
    return np.array([r * 8 + c for r, c in order])


ZIGZAG = _zigzag()


def _scaled(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's jpeg_quality_scaling + jpeg_add_quant_table (force_baseline)."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


@cache
def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(luminance, chrominance) tables libjpeg writes for `quality`, natural order."""
    return _scaled(STD_LUMINANCE, quality), _scaled(STD_CHROMINANCE, quality)


class JpegFormatError(ValueError):
    """The bytes are not a JPEG stream with readable quantisation tables."""


def _parse_dqt(payload: bytes, tables: dict[int, np.ndarray]) -> None:
    pos = 0
    while pos < len(payload):
        precision, table_id = payload[pos] >> 4, payload[pos] & 0x0F
        pos += 1
        size = 128 if precision else 64
        if precision > 1 or table_id > 3 or pos + size > len(payload):
            raise JpegFormatError("malformed DQT segment")
        raw = payload[pos : pos + size]
        values = np.frombuffer(raw, dtype=">u2" if precision else np.uint8).astype(np.int64)
        natural = np.empty(64, np.int64)
        natural[ZIGZAG] = values
        tables[table_id] = natural
        pos += size


def read_quant_tables(source: str | os.PathLike[str] | bytes) -> dict[int, np.ndarray]:
    """The quantisation tables (id -> 64 values, natural order) of a JPEG file (a path) or of
    JPEG data in memory (bytes: what `scn serve` received).

    Walks the marker segments from SOI up to the first SOS (where every DQT of a baseline or
    progressive file has appeared), reading only the segment headers and the DQT payloads.
    Raises `JpegFormatError` when the file is not a JPEG or its segments are malformed.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return _read_tables(io.BytesIO(source))
    with Path(source).open("rb") as fh:
        return _read_tables(fh)


def _read_tables(fh: BinaryIO) -> dict[int, np.ndarray]:
    tables: dict[int, np.ndarray] = {}
    if fh.read(2) != b"\xff\xd8":
        raise JpegFormatError("not a JPEG file (no SOI marker)")
    while True:
        byte = fh.read(1)
        if not byte:
            break
        if byte != b"\xff":
            raise JpegFormatError("malformed JPEG: expected a marker")
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            break
        code = marker[0]
        if code == 0x01 or 0xD0 <= code <= 0xD7:  # TEM, RSTn: no length
            continue
        if code in (0xDA, 0xD9):  # SOS, EOI: no more tables in front of the data
            break
        head = fh.read(2)
        if len(head) < 2:
            raise JpegFormatError("truncated JPEG segment")
        length = int.from_bytes(head, "big")
        if length < 2:
            raise JpegFormatError("malformed JPEG segment length")
        if code == 0xDB:
            payload = fh.read(length - 2)
            if len(payload) < length - 2:
                raise JpegFormatError("truncated DQT segment")
            _parse_dqt(payload, tables)
        else:
            fh.seek(length - 2, os.SEEK_CUR)
    if not tables:
        raise JpegFormatError("the JPEG has no quantisation tables")
    return tables


@dataclass(frozen=True)
class QualityEstimate:
    """The closest IJG quality and the mean absolute table difference at that quality."""

    quality: int
    mean_abs_error: float

    @property
    def exact(self) -> bool:
        return self.mean_abs_error == 0.0

    def describe(self) -> str:
        if self.exact:
            return f"quality {self.quality} (IJG tables)"
        error = self.mean_abs_error
        return f"quality ~{self.quality} (non-IJG tables, mean table error {error:.1f})"


def estimate_quality(tables: dict[int, np.ndarray]) -> QualityEstimate:
    """The IJG quality whose tables are closest to `tables` (table 0 = luminance, the
    others compared with the chrominance table)."""
    best: QualityEstimate | None = None
    for quality in range(1, 101):
        lum, chrom = ijg_tables(quality)
        errors = [np.abs(t - (lum if i == 0 else chrom)).mean() for i, t in tables.items()]
        err = float(np.mean(errors))
        if best is None or err < best.mean_abs_error:
            best = QualityEstimate(quality, err)
    assert best is not None
    return best


def estimate_jpeg_quality(source: str | os.PathLike[str] | bytes) -> QualityEstimate:
    """`estimate_quality(read_quant_tables(source))`: a JPEG file, or JPEG data in memory."""
    return estimate_quality(read_quant_tables(source))
