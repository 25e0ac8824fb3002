"""Restore one decoded picture with a model set: the per-image decisions and work that
`scn_deploy.pipeline.Run` does for each file and `scn serve` for each request, so a file on
disk and the same image posted to the service give the same pixels.

- `conditioning_level`: the noise sigma / JPEG quality a conditioned model is given (deblock
  without a quality: estimated from the JPEG's quantisation tables);
- `deblock_decision`: SR only, whether a JPEG input's compression is removed first, and at
  which quality (`scn_deploy.jpeg_input`);
- `restore_picture`: the network (gray companion, the JPEG stages), the optional resize to
  an `outscale`, and the alpha channel resized to match.

``source`` is where the image came from: its path, or its bytes in memory (the service
never writes a request to disk); ``label`` names it in messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2

from scn_deploy.arch.config import ModelSpec
from scn_deploy.errors import ConfigError, ScnError
from scn_deploy.imageio import Picture
from scn_deploy.jpeg_input import DeblockDecision, DeblockSetting, quality_to_apply
from scn_deploy.modelset import ModelSet
from scn_deploy.tiling import TilePlanner

__all__ = ["Source", "conditioning_level", "deblock_decision", "restore_picture"]

#: A file's path, or its bytes in memory.
Source = str | os.PathLike[str] | bytes
#: Receives what the user should hear about one image.
Note = Callable[[str], None]


def conditioning_level(
    spec: ModelSpec,
    level: float | None,
    source: Source,
    label: str,
    image_format: str,
    note: Note,
) -> float | None:
    """The conditioning level for one image: ``level`` when given (None for a model that is
    not conditioned); for a task whose level comes from the file (deblock), the JPEG quality
    estimated from its tables. Raises `ScnError` when it cannot be known."""
    if not spec.task_info.level_from_file or level is not None:
        return level if spec.conditioned else None
    estimate = None
    if image_format == "JPEG":
        from scn_deploy.jpeg_quality import JpegFormatError, estimate_jpeg_quality

        try:
            estimate = estimate_jpeg_quality(source)
        except JpegFormatError as exc:
            if spec.conditioned:
                raise ScnError(f"{label}: cannot estimate the JPEG quality ({exc})") from exc
    if estimate is not None:
        note(f"estimated JPEG {estimate.describe()}")
    if not spec.conditioned:
        return None
    if estimate is None:
        raise ScnError(f"{label}: not a JPEG, so its quality cannot be estimated; give --quality")
    check = spec.task_info.check_level(spec, float(estimate.quality), source="the model")
    if check.problem == "outside":
        note(f"the estimated {check.message}")
    return float(estimate.quality)


def deblock_decision(
    spec: ModelSpec,
    setting: DeblockSetting,
    models: ModelSet,
    source: Source,
    label: str,
    image_format: str,
    note: Note,
) -> DeblockDecision | None:
    """SR: the decision to remove a JPEG input's compression before upscaling (None: the
    image is upscaled as it is). Raises `ConfigError` for a fixed quality without a
    deblocking model."""
    if not spec.task_info.upscales or setting.mode == "off":
        return None
    decision = quality_to_apply(setting, source, image_format, label=label)
    if decision.quality is None:
        return None
    if not models.can_deblock:
        if setting.mode == "fixed":
            raise ConfigError("--deblock Q needs the zoo's deblock or deblock-gray model")
        note("a JPEG, but no deblocking model is installed: upscaled as it is")
        return None
    note(decision.describe())
    return decision


def restore_picture(
    models: ModelSet,
    picture: Picture,
    *,
    level: float | None,
    deblock: int | None = None,
    outscale: float | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    on_plan: Callable[[TilePlanner], None] | None = None,
) -> Picture:
    """Restore ``picture`` (same dtype; alpha, ICC, EXIF and format carried).

    ``deblock``: SR, the JPEG quality to remove first (None: none); ``outscale``: SR, the
    final scale (resized from the model's: bicubic, area when shrinking); ``on_tile``:
    progress (tiles done, total); ``on_plan``: told the tile plan before the network runs.
    """
    pixels_in, scale = picture.pixels, models.spec.scale
    height, width = pixels_in.shape[:2]
    restorer, source = models.for_input(pixels_in, deblock)
    plan = restorer.plan(height, width)
    if on_plan is not None:
        on_plan(plan)
    pixels = restorer.restore(source, level, dtype=pixels_in.dtype, on_tile=on_tile, plan=plan)
    del source
    size = (width * scale, height * scale)
    if outscale is not None and outscale != scale:
        size = (max(1, round(width * outscale)), max(1, round(height * outscale)))
        shrink = size[0] < pixels.shape[1]
        pixels = cv2.resize(
            pixels, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        )
    alpha = picture.alpha
    if alpha is not None and alpha.shape[::-1] != size:
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC)
    return Picture(pixels, alpha, picture.icc_profile, picture.exif, picture.format)
