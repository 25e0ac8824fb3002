"""One request's work: decode the posted bytes, restore, encode, all in memory.

It is `scn upscale | denoise | deblock`'s path for one file (`scn_deploy.imageio`'s decoder,
`scn_deploy.picture_restore`'s decisions and restoration, the same encoder), so the bytes that
come back are the bytes the command writes for the same image and options. Nothing here
touches the file system: the request's name for the image is a label in messages only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from scn_deploy.imageio import decode_image, encode_image
from scn_deploy.modelset import ModelSet
from scn_deploy.picture_restore import conditioning_level, deblock_decision, restore_picture
from scn_deploy.serve.params import RestorationParams

#: How a posted image is named in messages.
UPLOAD_LABEL = "upload"


@dataclass
class Restored:
    """A restored image, encoded, and what the response headers report."""

    body: bytes
    model: str
    engine: str
    precision: str
    device: str
    width: int
    height: int
    notes: list[str] = field(default_factory=list)
    deblocked_quality: int | None = None
    #: host:pid of the process that restored it (an engine replica with --cluster ray)
    host: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def restore_upload(
    models: ModelSet,
    params: RestorationParams,
    data: bytes,
    *,
    max_pixels: int | None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Restored:
    """Restore one posted image with ``models`` as ``params`` asks. Raises `ScnError`
    subclasses for a bad image (`ImageReadError`) or an unusable level (`ScnError`)."""
    picture = decode_image(data, name=UPLOAD_LABEL, max_pixels=max_pixels)
    notes = list(picture.notes)
    spec = models.spec
    level = conditioning_level(spec, params.level, data, UPLOAD_LABEL, picture.format, notes.append)
    decision = deblock_decision(
        spec, params.deblock, models, data, UPLOAD_LABEL, picture.format, notes.append
    )
    quality = decision.quality if decision is not None else None
    restored = restore_picture(models, picture, level=level, deblock=quality, on_tile=on_tile)
    del picture
    body, encode_notes = encode_image(restored, params.fmt, quality=params.jpeg_quality)
    engine = models.primary().engine
    height, width = restored.pixels.shape[:2]
    return Restored(
        body=body,
        model=models.choice.model.stem,
        engine=engine.name,
        precision=engine.precision,
        device=engine.device,
        width=width,
        height=height,
        notes=notes + encode_notes,
        deblocked_quality=quality,
    )
