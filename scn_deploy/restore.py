"""The public restoration API: arrays in, arrays out.

`restore()` restores one image in one call; `Restorer` keeps one loaded engine for many
images and `ModelSet` a run's models (primary, gray companion, JPEG stages). Images are HxW
(gray) or HxWxC arrays, uint8 / uint16 / float in [0, 1]; results are float32 in [0, 1] with
the same layout (use `to_dtype` to quantise). Alpha and file formats are the business of
`scn_deploy.imageio` and the CLI, not of this module.
"""

from __future__ import annotations

import os

import numpy as np

from scn_deploy.engines.options import EngineOptions
from scn_deploy.modelset import ModelSet
from scn_deploy.restorer import RestoreOptions, Restorer, planes_to_image, to_dtype, to_float

__all__ = [
    "EngineOptions",
    "ModelSet",
    "RestoreOptions",
    "Restorer",
    "planes_to_image",
    "restore",
    "to_dtype",
    "to_float",
]


def restore(
    image: np.ndarray,
    *,
    model: str | os.PathLike[str] | None = None,
    task: str = "sr",
    scale: int = 2,
    level: float | None = None,
    engine: EngineOptions | None = None,
    options: RestoreOptions | None = None,
    fast: bool = False,
    jpeg_quality: int | None = None,
) -> np.ndarray:
    """One-call restoration: load a model (by file or from the zoo) and restore `image`.

    Args:
        model: a model file / ONNX file / zoo name; default: the zoo model for the task.
        task: "sr", "denoise" or "deblock" (used to pick the zoo model).
        scale: SR factor when picking the zoo model.
        level: noise sigma (0-255) for denoising, JPEG quality for deblocking.
        engine: which engine, device, precision and pyramid scales (`EngineOptions`;
            default: the fastest installed engine, CUDA when usable, bf16 where measured
            harmless).
        options: tiling and TTA (default: whole image; `RestoreOptions(tile="auto")` bounds
            memory by the tile).
        fast: use the fast tier's zoo model for the task (sr-x2-fast ..., denoise-fast,
            deblock-gray-fast ...; not with model).
        jpeg_quality: sr: the image was a JPEG of this quality (e.g. from
            `scn_deploy.jpeg_quality.estimate_jpeg_quality(path).quality`): its compression
            is removed with the zoo's deblocking model before upscaling, as `scn upscale`
            does for JPEG files (then, with the zoo's default model, the zoo's SR model for
            JPEG inputs upscales it when installed). None: upscale the image as it is.
    """
    from scn_deploy.zoo import choose_models

    gray = image.ndim == 2 or image.shape[2] == 1
    choice = choose_models(model, task=task, scale=scale, gray=gray, fast=fast)
    models = ModelSet(choice, engine, options)
    jpeg = jpeg_quality is not None and jpeg_quality < 100 and models.can_deblock
    restorer, source = models.for_input(image, int(jpeg_quality) if jpeg else None)  # type: ignore[arg-type]
    return restorer.restore(source, level)
