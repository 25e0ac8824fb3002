"""JPEG inputs to super-resolution: remove the compression first, then upscale.

The SR models were trained on clean bicubic inputs; on a JPEG they enlarge its blocking and
ringing. `PreDeblocker` runs the zoo's deblocking model (conditioned on the JPEG quality) on the
input at its own resolution, in float, before the SR model sees it. `DeblockSetting` is what
`scn upscale --deblock auto|off|Q` asks for, and `quality_to_apply` turns it into the quality
for one file: auto estimates it from a JPEG's quantisation tables (`scn_deploy.jpeg_quality`)
and leaves lossless inputs alone; Q applies quality Q to any input (a PNG that was once a JPEG).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scn_deploy.errors import ConfigError

#: Estimated qualities at or above this are treated as lossless (nothing to remove).
LOSSLESS_QUALITY = 100


@dataclass(frozen=True)
class DeblockSetting:
    """`--deblock`: "auto" (JPEG inputs, quality estimated), "off", or a fixed quality."""

    mode: str = "auto"  # "auto" | "off" | "fixed"
    quality: int | None = None

    @classmethod
    def parse(cls, value: str | int | None) -> DeblockSetting:
        if value is None:
            return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = str(value).strip().lower()
        if text in ("auto", "off"):
            return cls(text)
        try:
            quality = int(text)
        except ValueError:
            raise ConfigError(
                f"--deblock must be auto, off or a JPEG quality 1-100, got {value!r}"
            ) from None
        if not 1 <= quality <= 100:
            raise ConfigError(f"--deblock quality must be in 1..100, got {quality}")
        return cls("fixed", quality)

    def __str__(self) -> str:
        return str(self.quality) if self.mode == "fixed" else self.mode


@dataclass(frozen=True)
class DeblockDecision:
    """What is done to one input: the quality deblocked at (None: nothing) and why."""

    quality: int | None
    source: str  # "estimated", "given", "off", "lossless input", "quality 100"
    detail: str = ""

    def describe(self) -> str:
        if self.quality is None:
            return f"not deblocked ({self.source})"
        how = f"{self.source} JPEG quality {self.quality}"
        return f"deblocked as {how}{f'; {self.detail}' if self.detail else ''} before upscaling"


def quality_to_apply(
    setting: DeblockSetting, path: str | os.PathLike[str] | None, image_format: str | None
) -> DeblockDecision:
    """The deblocking decision for one file (``image_format`` as Pillow names it)."""
    if setting.mode == "off":
        return DeblockDecision(None, "off")
    if setting.mode == "fixed":
        assert setting.quality is not None
        if setting.quality >= LOSSLESS_QUALITY:
            return DeblockDecision(None, "quality 100")
        return DeblockDecision(setting.quality, "given")
    if image_format != "JPEG" or path is None:
        return DeblockDecision(None, "lossless input")
    from scn_deploy.jpeg_quality import JpegFormatError, estimate_jpeg_quality

    try:
        estimate = estimate_jpeg_quality(path)
    except JpegFormatError as exc:
        raise ConfigError(
            f"{path}: cannot estimate the JPEG quality ({exc}); give --deblock Q or --deblock off"
        ) from exc
    if estimate.quality >= LOSSLESS_QUALITY:
        return DeblockDecision(None, "quality 100")
    detail = "" if estimate.exact else estimate.describe()
    return DeblockDecision(estimate.quality, "estimated", detail)


class PreDeblocker:
    """The deblocking stage before SR: one restorer per channel count, loaded on first use.

    ``load(path)`` makes a `scn_deploy.restore.Restorer` for a deblocking model file (the
    caller's engine and tiling options); ``colour`` / ``gray`` are the models for RGB and for
    gray inputs (either may be None: the other serves)."""

    def __init__(
        self,
        load: Callable[[Path], object],
        *,
        colour: Path | None,
        gray: Path | None,
    ) -> None:
        if colour is None and gray is None:
            raise ConfigError("JPEG inputs need a deblocking model (deblock or deblock-gray)")
        self._load = load
        self._paths = {3: colour or gray, 1: gray or colour}
        self._restorers: dict[Path, object] = {}
        self._lock = threading.Lock()

    def restorer(self, channels: int):
        path = self._paths[3 if channels == 3 else 1]
        assert path is not None
        with self._lock:
            if path not in self._restorers:
                self._restorers[path] = self._load(path)
            return self._restorers[path]

    def __call__(self, pixels: np.ndarray, quality: int) -> np.ndarray:
        """``pixels`` (HxW or HxWxC, any dtype) deblocked as JPEG quality ``quality``: float32
        in [0, 1], same layout (no rounding before the SR model)."""
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        restorer = self.restorer(channels)
        lo, hi = restorer.spec.level_range or (quality, quality)  # type: ignore[attr-defined]
        level = float(min(max(quality, lo), hi))  # beyond the trained range: its nearest end
        return restorer.restore(pixels, level, dtype=np.float32)  # type: ignore[attr-defined]


def zoo_pre_deblocker(load: Callable[[Path], object]) -> PreDeblocker:
    """A `PreDeblocker` over the installed zoo deblocking models (``load`` as for it)."""
    colour, gray = zoo_deblockers()
    return PreDeblocker(load, colour=colour, gray=gray)


def zoo_deblockers() -> tuple[Path | None, Path | None]:
    """The installed zoo deblocking models that clean JPEG inputs before SR: (colour, gray).

    The fast tier's (deblock-fast, deblock-gray-fast) when installed, else the default ones.
    Measured on the compressed-input protocol (Set14 x2, sr-x2 after it, `scn eval --task sr
    --jpeg Q`): +0.10 / +0.08 / +0.04 / -0.003 dB PSNR-Y at q30 / 50 / 75 / 90 over the
    default deblock model, at a quarter of its compute (docs/inference.md)."""
    from scn_deploy.zoo import DEFAULT_NAMES, FAST_NAMES, zoo_path

    found = []
    for gray in (False, True):
        key = ("deblock", 1, gray)
        paths = [zoo_path(names[key]) for names in (FAST_NAMES, DEFAULT_NAMES) if key in names]
        found.append(next((p for p in paths if p.exists()), None))
    return found[0], found[1]
