"""The frame pipeline and `restore_video`, the Python API for one video file.

decode (a thread: packets -> frames -> RGB by the stream's matrix and range) -> restore
(the calling thread: the video's one tile plan for every frame) -> encode (a thread: RGB ->
YUV -> the current segment's encoder), with bounded queues between the stages, so memory
is a few frames whatever the video's length. Segments finished by an earlier, interrupted
run of the same command are kept and skipped (`scn_deploy.video.segments`); the final file
is assembled from the segments by stream copy (`scn_deploy.video.assemble`).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError, ImageReadError
from scn_deploy.modelset import ModelChoice, ModelSet
from scn_deploy.queues import put_unless_stopped
from scn_deploy.restorer import RestoreOptions
from scn_deploy.video.assemble import assemble
from scn_deploy.video.colour import frame_to_rgb
from scn_deploy.video.encode import SegmentWriter, check_encoder
from scn_deploy.video.formats import (
    EncoderOptions,
    VideoOptions,
    container_for,
    container_holds,
    require_av,
)
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
    size: tuple[int, int] = (0, 0)  # the output's frame width and height

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


@dataclass(frozen=True)
class VideoPlan:
    """What restoring one video needs, decided once before any frame is restored (plain data:
    it travels to Ray actors, which restore some of its segments each)."""

    source: Path
    output: Path
    info: VideoInfo
    container: str  # the output's muxer
    encoder: EncoderOptions  # resolved: no defaults left
    size: tuple[int, int]  # output width, height
    segments: tuple[Segment, ...]
    segment_format: str  # the muxer of the segment files
    segment_suffix: str

    def work_folder(self, fingerprint: dict[str, Any] | None = None) -> WorkFolder:
        return WorkFolder(self.output, fingerprint or {}, self.segment_suffix)


class SegmentExecutor(Protocol):
    """Restores a video's pending segments somewhere (`scn_deploy.cluster.ClusterOptions`:
    on Ray actors); returns the frames restored. The local default is
    `VideoJob.restore_segments` in this process."""

    def restore_segments(
        self, job: VideoJob, plan: VideoPlan, pending: list[Segment], progress: VideoProgress
    ) -> int: ...


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
    ) -> None:
        self.models = models
        self.level = level
        self.deblock = deblock
        self.options = options or VideoOptions()
        self.max_pixels = max_pixels
        self.abort = threading.Event()

    def plan(self, source: Path, output: Path) -> VideoPlan:
        """Probe the input and check every option against it (no engine is loaded). Raises
        `ImageReadError` for a bad file, `ConfigError` for options the output cannot take."""
        container = container_for(output)
        info = probe_video(source, max_pixels=self.max_pixels)
        spec = self.models.spec
        if spec.conditioned and self.level is None:
            raise ConfigError(
                f"{source}: give --{spec.task_info.level_name} for videos (it is estimated "
                "from JPEG files only)"
            )
        width, height = info.width * spec.scale, info.height * spec.scale
        encoder = self.options.encoder.resolved(container, info.colour.bit_depth)
        try:
            check_encoder(encoder, width, height)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        _check_container(container, encoder, output)
        segment_format, segment_suffix = segment_container(encoder.codec or "")
        return VideoPlan(
            source=source,
            output=output,
            info=info,
            container=container,
            encoder=encoder,
            size=(width, height),
            segments=tuple(plan_segments(info, self.options.segment_seconds)),
            segment_format=segment_format,
            segment_suffix=segment_suffix,
        )

    def run(
        self,
        source: Path,
        output: Path,
        progress: VideoProgress | None = None,
        executor: SegmentExecutor | None = None,
    ) -> VideoResult:
        """Restore `source` into `output` (written atomically; resumes an interrupted run of
        the same settings); the segments are restored here, or by `executor`. Raises
        `ImageReadError` for a bad file, `ConfigError` for options the output cannot take;
        nothing is left under `output`'s name then."""
        progress = progress or VideoProgress()
        started = time.perf_counter()
        plan = self.plan(source, output)
        segments = list(plan.segments)
        work = plan.work_folder(self._fingerprint(source, plan.encoder))
        resumed = work.open()
        if resumed:
            progress.note(
                f"resuming: {resumed} of {len(segments)} segments were restored by an earlier "
                f"run (kept in {work.path})"
            )
        progress.started(
            plan.info, output, self._describe_tiles(plan, executor), resumed, len(segments)
        )
        restored = 0
        if resumed < len(segments):
            pending = segments[resumed:]
            if executor is None:
                restored = self.restore_segments(plan, pending, progress)
            else:
                restored = executor.restore_segments(self, plan, pending, progress)
        try:
            frames, notes = assemble(
                source,
                plan.info,
                [work.segment(s.index) for s in segments],
                output,
                plan.container,
            )
        except ImageReadError:
            work.remove()  # the input decodes to other frames than it holds: corrupt
            raise
        work.remove()
        for message in notes:
            progress.note(message)
        if plan.info.colour.guessed:
            notes.append(f"no colour matrix tagged: {plan.info.colour.describe()}")
        options = self.models.engine_options
        engine, precision = options.engine, options.precision or "auto"
        if executor is None:
            loaded = self._restorer().engine
            engine, precision = loaded.name, loaded.precision
        return VideoResult(
            path=str(source),
            output=str(output),
            frames=frames,
            seconds=time.perf_counter() - started,
            engine=engine,
            precision=precision,
            model=self._model_path(),
            segments=len(segments),
            resumed_segments=resumed,
            restored_frames=restored,
            encoder=plan.encoder.describe(),
            colour=plan.info.colour.describe(),
            notes=notes,
            size=plan.size,
        )

    def _restorer(self):
        return self.models.restorer_for(3, jpeg=self.deblock is not None)

    def _describe_tiles(self, plan: VideoPlan, executor: SegmentExecutor | None) -> str:
        if executor is not None:
            return "segments on the cluster"
        return self._restorer().plan(plan.info.height, plan.info.width).describe()

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
            "deblock_quality": self.deblock,
            "encoder": repr(encoder),
            "segment_seconds": self.options.segment_seconds,
        }

    # -- the three stages ---------------------------------------------------------------------
    def restore_segments(
        self, plan: VideoPlan, pending: list[Segment], progress: VideoProgress | None = None
    ) -> int:
        """Restore the consecutive segments `pending` of `plan` into its work folder (each
        renamed into place when complete); returns the frames restored. Decode, restore and
        encode overlap in threads; every frame uses the video's one tile plan."""
        progress = progress or VideoProgress()
        info, work = plan.info, plan.work_folder()
        restorer = self._restorer()
        tiles = restorer.plan(info.height, info.width)
        depth = max(1, self.options.queue_frames)
        decoded: queue.Queue[Any] = queue.Queue(maxsize=depth)
        restored: queue.Queue[Any] = queue.Queue(maxsize=depth)
        errors: list[BaseException] = []
        total = info.frames - info.frames_before(pending[0].start)
        counter = {"done": 0}
        started = time.perf_counter()
        count = len(plan.segments)

        def put(q: queue.Queue[Any], item: object) -> bool:
            return put_unless_stopped(q, item, self.abort)

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

            def finish() -> None:
                assert writer is not None
                writer.close()
                work.finish(current)
                progress.segment_done(current, count)

            try:
                while not self.abort.is_set():
                    try:
                        item = restored.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if item is _END:
                        if writer is not None:
                            finish()
                        writer = None
                        return
                    if item.segment != current:
                        if writer is not None:
                            finish()
                        current = item.segment
                        writer = SegmentWriter(
                            work.partial(current),
                            info,
                            *plan.size,
                            plan.encoder,
                            plan.segment_format,
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
                # deblocked first, unless the JPEG model takes compressed frames as they are
                _same, source = self.models.for_input(item.rgb, self.deblock)
                item.rgb = restorer.restore(source, self.level, dtype=item.rgb.dtype, plan=tiles)
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
        start, end = pending[0].start, pending[-1].end
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
                            continue  # before the first pending segment: restored elsewhere
                        if end is not None and pts >= end:
                            return  # frames come in presentation order: the rest is later
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
                        yield _Frame(
                            pending[position].index,
                            pts,
                            frame.duration or None,
                            frame_to_rgb(frame, info.colour),
                        )
                        if self.abort.is_set():
                            return
            except av.error.FFmpegError as exc:
                raise ImageReadError(f"{info.path}: corrupt video ({exc})") from exc


def _check_container(container: str, encoder: EncoderOptions, output: Path) -> None:
    """Raise `ConfigError` when the output container cannot hold the encoder's stream."""
    if not container_holds(container, encoder.codec or ""):
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
    executor: SegmentExecutor | None = None,
) -> VideoResult:
    """Restore one video file into `output` (its suffix picks the container).

    `models` is a `ModelChoice` (e.g. from `scn_deploy.zoo.choose_models`), or a loaded
    `ModelSet` to share with other calls; `engine` and `restore` are used when a set is made
    here (default tiling: "auto"). `level` is the noise sigma (denoise) or JPEG quality
    (deblock); `deblock` (SR) removes JPEG compression of that quality from every frame
    first. `executor` restores the segments elsewhere (e.g. `scn_deploy.cluster.ClusterOptions`
    on Ray); None: here. Raises `ScnError` subclasses for bad input or options; the output is
    then absent.
    """
    if isinstance(models, ModelChoice):
        models = ModelSet(models, engine, restore or RestoreOptions(tile="auto"))
    source, output = Path(source), Path(output)
    if source.resolve() == output.resolve():
        raise ConfigError(f"{output}: would overwrite the input")
    job = VideoJob(models, level=level, deblock=deblock, options=video, max_pixels=max_pixels)
    return job.run(source, output, progress, executor)
