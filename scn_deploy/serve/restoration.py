"""One request's work: decode the posted bytes, restore, encode, all in memory.

It is `scn upscale | denoise | deblock`'s path for one file (`scn_deploy.imageio`'s decoder,
`scn_deploy.picture_restore`'s decisions and restoration, the same encoder), so the bytes that
come back are the bytes the command writes for the same image and options. Nothing here
touches the file system: the request's name for the image is a label in messages only.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from scn_deploy.errors import ScnError
from scn_deploy.imageio import decode_image, encode_image
from scn_deploy.modelset import ModelSet
from scn_deploy.picture_restore import conditioning_level, deblock_decision, restore_picture
from scn_deploy.serve.params import RestorationParams

if TYPE_CHECKING:
    from scn_deploy.video.probe import VideoInfo

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
    frames: int = 1  # a video's frames

    @property
    def megapixels(self) -> float:
        return self.width * self.height * self.frames / 1e6


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
    jpeg_model = models.jpeg_model_for(quality) if quality is not None else None
    restored = restore_picture(models, picture, level=level, deblock=quality, on_tile=on_tile)
    del picture
    body, encode_notes = encode_image(restored, params.fmt, quality=params.jpeg_quality)
    engine = models.primary().engine
    height, width = restored.pixels.shape[:2]
    return Restored(
        body=body,
        model=(jpeg_model or models.choice.model).stem,
        engine=engine.name,
        precision=engine.precision,
        device=engine.device,
        width=width,
        height=height,
        notes=notes + encode_notes,
        deblocked_quality=quality,
    )


def probe_video_upload(data: bytes, suffix: str, *, max_pixels: int | None) -> VideoInfo:
    """A posted video's stream (size, frame count), read from a private temporary copy;
    raises `ImageReadError` for a file FFmpeg cannot read, `ConfigError` without PyAV."""
    from scn_deploy.video.probe import probe_video

    with tempfile.TemporaryDirectory(prefix="scn-serve-") as folder:
        source = Path(folder) / f"{UPLOAD_LABEL}{suffix}"
        source.write_bytes(data)
        with _labelled(source):
            info = probe_video(source, max_pixels=max_pixels)
    return replace(info, path=Path(f"{UPLOAD_LABEL}{suffix}"))


@contextmanager
def _labelled(path: Path) -> Iterator[None]:
    """Errors naming the private temporary ``path`` name the upload instead."""
    try:
        yield
    except ScnError as exc:
        raise type(exc)(str(exc).replace(str(path), UPLOAD_LABEL)) from None


def restore_video_upload(
    models: ModelSet,
    params: RestorationParams,
    data: bytes,
    *,
    max_pixels: int | None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Restored:
    """Restore a posted video as `scn upscale clip.mp4` would (`scn_deploy.video`'s pipeline,
    its default encoder, the other streams copied) into the same container; ``on_tile`` gets
    (frames done, frames) and stops the run by raising. The upload and the result live in a
    private temporary folder (names chosen here) that is removed before this returns."""
    from scn_deploy.video.run import VideoJob, VideoProgress

    assert params.container is not None

    class Relay(VideoProgress):
        def frames(self, done: int, total: int, fps: float) -> None:
            if on_tile is not None:
                on_tile(done, total)

    deblock = params.deblock.quality if params.deblock.mode == "fixed" else None
    job = VideoJob(models, level=params.level, deblock=deblock, max_pixels=max_pixels)
    with tempfile.TemporaryDirectory(prefix="scn-serve-") as folder:
        source = Path(folder) / f"{UPLOAD_LABEL}{params.container}"
        source.write_bytes(data)
        output = Path(folder) / f"result{params.container}"
        with _labelled(source):
            result = job.run(source, output, Relay())
        body = output.read_bytes()
    engine = models.primary().engine
    width, height = result.size
    return Restored(
        body=body,
        model=Path(result.model).stem,
        engine=result.engine,
        precision=result.precision,
        device=engine.device,
        width=width,
        height=height,
        notes=[n.replace(str(source), UPLOAD_LABEL) for n in result.notes],
        frames=result.frames,
    )
