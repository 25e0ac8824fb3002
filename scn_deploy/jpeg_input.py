"""JPEG inputs to super-resolution: remove the compression first, then upscale.

The SR models were trained on clean bicubic inputs; on a JPEG they enlarge its blocking and
ringing. `scn_deploy.modelset.ModelSet.deblock` runs the zoo's deblocking model (conditioned on
the JPEG quality) on the input at its own resolution, in float, before the SR model sees it
(`scn_deploy.zoo.zoo_deblockers` lists those models). `DeblockSetting` is what
`scn upscale --deblock auto|off|Q` asks for, and `quality_to_apply` turns it into the quality
for one file: auto estimates it from a JPEG's quantisation tables (`scn_deploy.jpeg_quality`)
and leaves lossless inputs alone; Q applies quality Q to any input (a PNG that was once a JPEG).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    setting: DeblockSetting,
    path: str | os.PathLike[str] | bytes | None,
    image_format: str | None,
    *,
    label: str | None = None,
) -> DeblockDecision:
    """The deblocking decision for one file (``image_format`` as Pillow names it). ``path``
    may be the file's bytes in memory, with ``label`` naming it in messages."""
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
        name = label if label is not None else path
        raise ConfigError(
            f"{name}: cannot estimate the JPEG quality ({exc}); give --deblock Q or --deblock off"
        ) from exc
    if estimate.quality >= LOSSLESS_QUALITY:
        return DeblockDecision(None, "quality 100")
    detail = "" if estimate.exact else estimate.describe()
    return DeblockDecision(estimate.quality, "estimated", detail)
