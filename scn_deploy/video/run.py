"""The frame pipeline and `restore_video`, the Python API for one video file.

decode (a thread: packets -> frames -> RGB by the stream's matrix and range) -> restore
(the calling thread: the video's one tile plan for every frame) -> encode (a thread: RGB ->
YUV -> the current segment's encoder), with bounded queues between the stages, so memory
is a few frames whatever the video's length. Segments finished by an earlier, interrupted
run of the same command are kept and skipped (`scn_deploy.video.segments`); the final file
is assembled from the segments by stream copy (`scn_deploy.video.assemble`).
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError, ImageReadError
from scn_deploy.modelset import ModelChoice, ModelSet
from scn_deploy.restorer import RestoreOptions
from scn_deploy.video.assemble import assemble
from scn_deploy.video.colour import frame_to_rgb
from scn_deploy.video.encode import SegmentWriter, check_encoder
from scn_deploy.video.formats import EncoderOptions, VideoOptions, container_for, require_av
from scn_deploy.video.probe import VideoInfo, open_input, probe_video
from scn_deploy.video.segments import Segment, WorkFolder, plan_segments, segment_container


class VideoProgress:
    """Progress hooks of one video (no-ops; the CLI's reporter draws them). `frames` and
    `segment_done` are called from the encode thread."""

    def started(self, info: VideoInfo, output: Path, plan: str, resumed: int, total: int) -> None:
        """Work begins; `resumed` of `total` segments were finished by an earlier run."""

    def frames(self, done: int, total: int, fps: float) -> None: ...

    def segment_done(self, index: int, total: int) -> None: ...

    def note(self, message: str) -> None: ...


@dataclass
class VideoResult:
    """What one video's restoration did; `to_json()` is its entry in `--json`'s "videos"."""

    path: str
    output: str
    frames: int
    seconds: float
    engine: str
    precision: str
    model: str
    segments: int
    resumed_segments: int = 0
    restored_frames: int = 0  # in this run (the others were restored by an earlier one)
    encoder: str = ""
    colour: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.restored_frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = round(self.fps, 3)
        data["seconds"] = round(self.seconds, 3)
        data["model_name"] = Path(self.model).stem
        return data


@dataclass
class _Frame:
    segment: int
    pts: int
    duration: int | None
    rgb: np.ndarray


_END = object()


class VideoJob:
    """Restores one video file to one output file with a run's `ModelSet`.

    Args:
        models: the run's models (each loaded once, shared with the run's images).
        level: the noise sigma (denoise) or JPEG quality (deblock) to condition on.
        deblock: SR only: the JPEG quality whose compression is removed from every frame
            first (the zoo's deblocking model via `ModelSet.deblock`); None: none.
        options: encoder, segment length and queue depth (`VideoOptions`).
        max_pixels: refuse frames above this many pixels (None: no limit).
    """

    def __init__(
        self,
        models: ModelSet,
        *,
        level: float | None = None,
        deblock: int | None = None,
        options: VideoOptions | None = None,
        max_pixels: int | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.models = models
        self.level = level
        self.deblock = deblock
        self.options = options or VideoOptions()
        self.max_pixels = max_pixels
        self.settings = settings or {}
        self.abort = threading.Event()

    def run(self, source: Path, output: Path, progress: VideoProgress | None = None) -> VideoResult:
        """Restore `source` into `output` (written atomically; resumes an interrupted run of
        the same settings). Raises `ImageReadError` for a bad file, `ConfigError` for options
        the output cannot take; nothing is left under `output`'s name then."""
        progress = progress or VideoProgress()
        started = time.perf_counter()
        container = container_for(output)
        info = probe_video(source, max_pixels=self.max_pixels)
        spec = self.models.spec
        if spec.conditioned and self.level is None:
            raise ConfigError(
                f"{source}: give the {spec.task_info.level_name} for videos (it is estimated "
                "from JPEG files only)"
            )
        restorer = self.models.restorer_for(3, deblocked=self.deblock is not None)
        scale = restorer.spec.scale
        width, height = info.width * scale, info.height * scale
        encoder = self.options.encoder.resolved(container, info.colour.bit_depth)
        try:
            check_encoder(encoder, width, height)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        _check_container(container, encoder, output)
        plan = restorer.plan(info.height, info.width)
        segments = plan_segments(info, self.options.segment_seconds)
        segment_format, segment_suffix = segment_container(encoder.codec or "")
        work = WorkFolder(output, self._fingerprint(source, encoder), segment_suffix)
        resumed = work.open()
        if resumed:
            progress.note(
                f"resuming: {resumed} of {len(segments)} segments were restored by an earlier "
                f"run (kept in {work.path})"
            )
        engine = restorer.engine
        progress.started(info, output, plan.describe(), resumed, len(segments))
        restored = 0
        if resumed < len(segments):
            restored = self._restore_segments(
                info,
                segments,
                resumed,
                work,
                restorer,
                plan,
                (width, height),
                encoder,
                progress,
                segment_format,
            )
        try:
            frames, notes = assemble(
                source, info, [work.segment(s.index) for s in segments], output, container
            )
        except ImageReadError:
            work.remove()  # the input decodes to other frames than it holds: corrupt
            raise
        work.remove()
        for message in notes:
            progress.note(message)
        if info.colour.guessed:
            notes.append(f"no colour matrix tagged: {info.colour.describe()}")
        return VideoResult(
            path=str(source),
            output=str(output),
            frames=frames,
            seconds=time.perf_counter() - started,
            engine=engine.name,
            precision=engine.precision,
            model=self._model_path(),
            segments=len(segments),
            resumed_segments=resumed,
            restored_frames=restored,
            encoder=encoder.describe(),
            colour=info.colour.describe(),
            notes=notes,
        )

    def _model_path(self) -> str:
        choice = self.models.choice
        if self.deblock is not None and choice.jpeg_model is not None:
            return str(choice.jpeg_model)
        return str(choice.model)

    def _fingerprint(self, source: Path, encoder: EncoderOptions) -> dict[str, Any]:
        stat = source.stat()
        return {
            "input": str(source.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "models": repr(self.models.choice),
            "engine": repr(self.models.engine_options),
            "restore": repr(self.models.restore_options),
            "level": self.level,
            "deblock": self.deblock,
            "encoder": repr(encoder),
            "segment_seconds": self.options.segment_seconds,
            **self.settings,
        }

    # -- the three stages ---------------------------------------------------------------------
    def _restore_segments(
        self,
        info: VideoInfo,
        segments: list[Segment],
        first: int,
        work: WorkFolder,
        restorer,
        plan,
        size: tuple[int, int],
        encoder: EncoderOptions,
        progress: VideoProgress,
        segment_format: str,
    ) -> int:
        depth = max(1, self.options.queue_frames)
        decoded: queue.Queue[Any] = queue.Queue(maxsize=depth)
        restored: queue.Queue[Any] = queue.Queue(maxsize=depth)
        errors: list[BaseException] = []
        pending = segments[first:]
        total = info.frames - info.frames_before(pending[0].start)
        counter = {"done": 0}
        started = time.perf_counter()

        def put(q: queue.Queue[Any], item: object) -> bool:
            while not self.abort.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def decoder() -> None:
            try:
                for item in self._decode(info, pending):
                    if not put(decoded, item):
                        return
                put(decoded, _END)
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)
                self.abort.set()

        def encoder_loop() -> None:
            writer: SegmentWriter | None = None
            current = -1
            try:
                while not self.abort.is_set():
                    try:
                        item = restored.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if item is _END:
                        if writer is not None:
                            writer.close()
                            work.finish(current)
                            progress.segment_done(current, len(segments))
                        writer = None
                        return
                    if item.segment != current:
                        if writer is not None:
                            writer.close()
                            work.finish(current)
                            progress.segment_done(current, len(segments))
                        current = item.segment
                        writer = SegmentWriter(
                            work.partial(current), info, size[0], size[1], encoder, segment_format
                        )
                    writer.write(item.rgb, item.pts, item.duration)
                    counter["done"] += 1
                    elapsed = time.perf_counter() - started
                    progress.frames(counter["done"], total, counter["done"] / max(elapsed, 1e-9))
            except BaseException as exc:
                errors.append(exc)
                self.abort.set()
            finally:
                if writer is not None:  # interrupted: the unfinished segment is dropped
                    writer.abandon()
                    work.partial(current).unlink(missing_ok=True)

        threads = [
            threading.Thread(target=decoder, name="scn-video-decode", daemon=True),
            threading.Thread(target=encoder_loop, name="scn-video-encode", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            while not self.abort.is_set():
                try:
                    item = decoded.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    put(restored, _END)
                    break
                source = item.rgb
                if self.deblock is not None:
                    source = self.models.deblock(source, self.deblock)
                item.rgb = restorer.restore(source, self.level, dtype=item.rgb.dtype, plan=plan)
                del source
                if not put(restored, item):
                    break
        except BaseException:
            self.abort.set()
            raise
        finally:
            for t in threads:
                t.join()
        if errors:
            raise errors[0]
        return counter["done"]

    def _decode(self, info: VideoInfo, pending: list[Segment]):
        """(segment, pts, duration, RGB) of every frame of the `pending` segments, in order."""
        av = require_av()
        start = pending[0].start
        with open_input(info.path) as container:
            stream = container.streams[info.index]
            stream.thread_type = "AUTO"
            if start is not None:
                container.seek(start, stream=stream, backward=True, any_frame=False)
            position = 0
            try:
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        pts = frame.pts if frame.pts is not None else frame.dts
                        if pts is None:
                            raise ImageReadError(f"{info.path}: a frame without a timestamp")
                        if start is not None and pts < start:
                            continue  # before the first pending segment: an earlier run's
                        while not pending[position].holds(pts):
                            position += 1
                            if position == len(pending):
                                raise ImageReadError(
                                    f"{info.path}: frame timestamps out of order at {pts}"
                                )
                        if (frame.width, frame.height) != (info.width, info.height):
                            raise ImageReadError(
                                f"{info.path}: the frame size changes mid-stream "
                                f"({info.width}x{info.height} -> {frame.width}x{frame.height})"
                            )
                        duration = frame.duration or None
                        yield _Frame(
                            pending[position].index, pts, duration, frame_to_rgb(frame, info.colour)
                        )
                        if self.abort.is_set():
                            return
            except av.error.FFmpegError as exc:
                raise ImageReadError(f"{info.path}: corrupt video ({exc})") from exc


def _check_container(container: str, encoder: EncoderOptions, output: Path) -> None:
    """Raise `ConfigError` when the output container cannot hold the encoder's stream."""
    av = require_av()
    with av.open(io.BytesIO(), mode="w", format=container) as probe:
        if encoder.codec not in probe.supported_codecs:
            raise ConfigError(
                f"{output}: the {output.suffix[1:]} container cannot hold {encoder.codec} "
                "video (pick another --codec or output suffix)"
            )


def restore_video(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    models: ModelChoice | ModelSet,
    *,
    level: float | None = None,
    deblock: int | None = None,
    engine: EngineOptions | None = None,
    restore: RestoreOptions | None = None,
    video: VideoOptions | None = None,
    max_pixels: int | None = None,
    progress: VideoProgress | None = None,
) -> VideoResult:
    """Restore one video file into `output` (its suffix picks the container).

    `models` is a `ModelChoice` (e.g. from `scn_deploy.zoo.choose_models`), or a loaded
    `ModelSet` to share with other calls; `engine` and `restore` are used when a set is made
    here (default tiling: "auto"). `level` is the noise sigma (denoise) or JPEG quality
    (deblock); `deblock` (SR) removes JPEG compression of that quality from every frame
    first. Raises `ScnError` subclasses for bad input or options; the output is then absent.
    """
    if isinstance(models, ModelChoice):
        models = ModelSet(models, engine, restore or RestoreOptions(tile="auto"))
    source, output = Path(source), Path(output)
    if source.resolve() == output.resolve():
        raise ConfigError(f"{output}: would overwrite the input")
    job = VideoJob(models, level=level, deblock=deblock, options=video, max_pixels=max_pixels)
    return job.run(source, output, progress)
