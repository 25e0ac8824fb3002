"""Restore files and folders: decode -> restore (tiled) -> encode, overlapped in threads.

Videos among the inputs go, one after the other and after the images, through
`scn_deploy.video` (the same three stages per frame, with the run's models).

`run(request)` is what `scn upscale | denoise | deblock` call. It expands the inputs
(`scn_deploy.files`), loads the engine once, then streams the files through three stages:
a decode thread (header check, decode, JPEG quality estimate) prefetches the next image
while the main thread runs the network tile by tile into a preallocated output, and an
encode thread encodes and writes the previous result atomically. Queues hold one image
each, so at most three images are alive at once. A file that fails at any stage is
recorded with its reason and the others go on. Ctrl-C stops decoding and inference at once;
the result already restored is still written (whole), and nothing partial is left.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError, ScnError
from scn_deploy.files import (
    FileOptions,
    Job,
    Problem,
    atomic_write,
    collect_sources,
    output_is_file,
    plan_outputs,
)
from scn_deploy.imageio import (
    Picture,
    load_image,
    probe_image,
    write_image_to,
)
from scn_deploy.jpeg_input import DeblockSetting
from scn_deploy.modelset import ModelChoice, ModelSet
from scn_deploy.picture_restore import conditioning_level, deblock_decision, restore_picture
from scn_deploy.queues import put_unless_stopped
from scn_deploy.restorer import RestoreOptions
from scn_deploy.tasks import task_named
from scn_deploy.tiling import TilePlanner
from scn_deploy.video.formats import VideoOptions, is_video
from scn_deploy.zoo import tier_of

if TYPE_CHECKING:
    from scn_deploy.video.run import VideoJob, VideoPlan, VideoProgress
    from scn_deploy.video.segments import Segment

__all__ = ["Reporter", "RunRequest", "RunSummary", "default_suffix", "run"]


def default_suffix(task: str, scale: int = 1, outscale: float | None = None) -> str:
    """`_x4` for super-resolution (`_x2.5` with --outscale 2.5), `_denoised`, `_deblocked`."""
    return task_named(task).output_suffix(scale, outscale)


class ClusterExecutor(Protocol):
    """Runs a planned run's files somewhere else (`scn_deploy.cluster.ClusterOptions`: Ray):
    each file through `Run.process`, each result reported back through `Run.record`."""

    name: str

    def execute(self, state: Run, jobs: list[Job]) -> None: ...

    def restore_segments(
        self, job: VideoJob, plan: VideoPlan, pending: list[Segment], progress: VideoProgress
    ) -> int:
        """A video's pending segments restored there (`scn_deploy.video.run.SegmentExecutor`);
        returns the frames restored."""
        ...


@dataclass
class RunRequest:
    """Everything one restoration command needs: what to do, and the option groups that the
    CLI builds once from its command line (engine, tiling, files, cluster).

    Attributes:
        task: "sr", "denoise" or "deblock" (the model must be of this task).
        inputs: files and/or folders.
        models: the model files (`scn_deploy.modelset.ModelChoice`: the primary model, the
            gray companion for gray inputs, and for SR the stages of JPEG inputs), already
            resolved (`scn_deploy.zoo.choose_models`).
        level: noise sigma (denoise) or JPEG quality (deblock) for a conditioned model;
            None for deblock = estimate each JPEG's quality from its tables.
        outscale: final scale of an SR output (resized from the model's), None = model's.
        deblock: SR only: "auto" removes a JPEG input's compression (quality estimated from
            its tables) with the zoo's deblocking model before upscaling; "off"; or a quality
            "Q" applied to every input (see `scn_deploy.jpeg_input`).
        engine: which engine, device, precision and pyramid scales (`EngineOptions`).
        restore: tiling, batch, TTA and the tile memory budget (`RestoreOptions`; levels
            outside a conditioned model's trained range are always accepted here).
        files: inputs read and outputs written (`scn_deploy.files.FileOptions`).
        cluster: run the files elsewhere (`scn_deploy.cluster.ClusterOptions`); None: here.
        video: how video inputs are encoded and segmented (`scn_deploy.video.VideoOptions`).
    """

    task: str
    inputs: list[Path]
    models: ModelChoice
    level: float | None = None
    outscale: float | None = None
    deblock: str = "auto"
    engine: EngineOptions = field(default_factory=EngineOptions)
    restore: RestoreOptions = field(default_factory=lambda: RestoreOptions(tile="auto"))
    files: FileOptions = field(default_factory=FileOptions)
    cluster: ClusterExecutor | None = None
    video: VideoOptions = field(default_factory=VideoOptions)


@dataclass
class RunSummary:
    """What happened; `to_json()` is the `--json` line."""

    model: str
    tier: str = "standard"  # the model's tier: "fast" (the fast preset) or "standard"
    gray_model: str | None = None  # the gray companion, when it served any file
    engine: str = ""
    device: str = ""
    precision: str = ""
    dry_run: bool = False
    processed: int = 0
    outputs: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # input, output, why
    failed: list[tuple[str, str]] = field(default_factory=list)  # path, error
    notes: list[tuple[str, str]] = field(default_factory=list)  # path, note
    deblocked: list[tuple[str, int, str]] = field(default_factory=list)  # path, quality, source
    jpeg_model: str | None = None  # the model that upscaled the deblocked files, if not `model`
    loaded: list[str] = field(default_factory=list)  # model files loaded (per Ray actor: each)
    seconds: float = 0.0
    overlap: int | None = None
    videos: list[dict[str, Any]] = field(default_factory=list)  # VideoResult.to_json()

    def to_json(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "skipped": len(self.skipped),
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "outputs": self.outputs,
            "seconds": round(self.seconds, 3),
            "engine": self.engine,
            "device": self.device,
            "precision": self.precision,
            "model": self.model,
            "model_name": Path(self.model).stem,
            "tier": self.tier,
            "gray_model": self.gray_model,
            "dry_run": self.dry_run,
            "overlap": self.overlap,
            "skipped_files": [{"path": p, "output": o, "reason": r} for p, o, r in self.skipped],
            "notes": [{"path": p, "note": n} for p, n in self.notes],
            "deblocked": [{"path": p, "quality": q, "source": s} for p, q, s in self.deblocked],
            "jpeg_model": self.jpeg_model,
            "loaded": self.loaded,
            "videos": self.videos,
        }


class Reporter:
    """Progress and log hooks (no-ops here; the CLI draws bars and prints lines).

    `file_done`, `failed` and `note` may be called from the encode thread.
    """

    def start(self, total: int) -> None: ...

    def file_started(self, job: Job, width: int, height: int, plan: str) -> None: ...

    def tiles(self, done: int, total: int) -> None: ...

    def file_done(self, job: Job, seconds: float) -> None: ...

    def skipped(self, path: Path, output: Path | None, reason: str) -> None: ...

    def failed(self, path: Path, error: str) -> None: ...

    def note(self, path: Path, message: str) -> None: ...

    def info(self, message: str) -> None: ...

    def video_started(self, job: Job, description: str, plan: str) -> None:
        """A video's frames start (`description`: size, codec, colour)."""

    def frames(self, done: int, total: int, fps: float) -> None:
        """A video's frames restored so far in this run (called from its encode thread)."""


@dataclass
class _Decoded:
    job: Job
    picture: Picture | None = None
    level: float | None = None
    error: str | None = None
    started: float = 0.0
    deblock: int | None = None  # SR: the JPEG quality to remove first (None: none)


@dataclass
class _Restored:
    job: Job
    picture: Picture
    started: float


def _error_text(path: Path, exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ScnError) else f"{type(exc).__name__}: {exc}"
    return text if text.startswith(str(path)) else f"{path}: {text}"


class Run:
    """One run: its plan, its bookkeeping (thread-safe) and the per-file work (`process`:
    decode, restore, encode) that the local `execute` overlaps in threads and a cluster
    executor runs on its workers."""

    def __init__(
        self,
        request: RunRequest,
        reporter: Reporter,
        *,
        fmt: str = "png",
        models: ModelSet | None = None,
    ) -> None:
        """``models``: the run's model set (a Ray actor passes the one it keeps for its
        life); None makes one from the request, loading each model on first use."""
        self.request = request
        self.fmt = fmt
        self.reporter = reporter
        self.lock = threading.Lock()
        self.abort = threading.Event()
        self.models = models or models_for(request)
        self.models.on_first_use = self._companion_used
        self.spec = self.models.spec
        self.summary = RunSummary(
            model=str(request.models.model),
            tier=tier_of(self.spec),
            dry_run=request.files.dry_run,
        )
        self.deblock_setting = DeblockSetting.parse(request.deblock)

    def _companion_used(self, role: str, path: Path) -> None:
        """A companion model served for the first time: named in the summary."""
        if hasattr(self.summary, role):
            with self.lock:
                setattr(self.summary, role, str(path))

    # -- bookkeeping (thread-safe) -----------------------------------------------------------
    def fail(self, path: Path, error: str) -> None:
        with self.lock:
            self.summary.failed.append((_url(path), error))
        self.reporter.failed(path, error)

    def note(self, path: Path, message: str) -> None:
        with self.lock:
            self.summary.notes.append((_url(path), message))
        self.reporter.note(path, message)

    # -- planning ----------------------------------------------------------------------------
    def plan(self) -> list[Job]:
        req, files = self.request, self.request.files
        sources, problems = collect_sources(
            req.inputs, recursive=files.recursive, exclude=files.out
        )
        fmt = files.fmt
        if fmt is None:
            single = output_is_file(files.out, sources)
            image_out = single and files.out is not None and not is_video(files.out)
            fmt = _format_of(files.out) if image_out and files.out is not None else "png"
        self.fmt = fmt
        jobs, refused, dropped = plan_outputs(
            sources, out=files.out, suffix=self.suffix(), fmt=fmt, overwrite=files.overwrite
        )
        for problem in [*problems, *refused]:
            if problem.skipped:
                self._skip(problem, None)
            else:
                self.fail(problem.path, f"{problem.path}: {problem.reason}")
        for problem in dropped:
            self._skip(problem, None)
        todo = []
        for job in jobs:
            exists = job.output.exists() or job.output.is_symlink()
            if exists and not files.overwrite:
                self._skip(Problem(job.source.path, "output exists (use --overwrite)"), job.output)
            else:
                todo.append(job)
        return todo

    def suffix(self) -> str:
        """The output name suffix: --suffix, or the task's default."""
        req = self.request
        if req.files.suffix is not None:
            return req.files.suffix
        return default_suffix(req.task, self.spec.scale, req.outscale)

    def _skip(self, problem: Problem, output: Path | None) -> None:
        where = _url(output) if output else ""
        self.summary.skipped.append((_url(problem.path), where, problem.reason))
        self.reporter.skipped(problem.path, output, problem.reason)

    # -- stage 1: decode ---------------------------------------------------------------------
    def decode(self, job: Job) -> _Decoded:
        started = time.perf_counter()
        path = job.source.path
        try:
            picture = load_image(path, max_pixels=self.request.files.max_pixels)
            for message in picture.notes:
                self.note(path, message)
            level = self.level_for(path, picture)
            deblock = self.deblock_for(path, picture)
        except Exception as exc:  # reported per file; the run goes on
            return _Decoded(job, error=_error_text(path, exc), started=started)
        return _Decoded(job, picture, level, started=started, deblock=deblock)

    def deblock_for(self, path: Path, picture: Picture) -> int | None:
        """SR: the JPEG quality to remove before upscaling this file (None: none)."""
        decision = deblock_decision(
            self.spec,
            self.deblock_setting,
            self.models,
            path,
            str(path),
            picture.format,
            lambda message: self.note(path, message),
        )
        if decision is None:
            return None
        with self.lock:
            self.summary.deblocked.append((_url(path), decision.quality, decision.source))
        return decision.quality

    def level_for(self, path: Path, picture: Picture) -> float | None:
        """The conditioning level for this file (estimating JPEG quality when needed)."""
        return conditioning_level(
            self.spec,
            self.request.level,
            path,
            str(path),
            picture.format,
            lambda message: self.note(path, message),
        )

    # -- stage 2: restore --------------------------------------------------------------------
    def restore(self, item: _Decoded) -> Picture:
        assert item.picture is not None
        height, width = item.picture.pixels.shape[:2]

        def planned(plan: TilePlanner) -> None:
            if len(plan) > 1:
                self.summary.overlap = plan.overlap
            self.reporter.file_started(item.job, width, height, plan.describe())

        return restore_picture(
            self.models,
            item.picture,
            level=item.level,
            deblock=item.deblock,
            outscale=self.request.outscale,
            on_tile=self.reporter.tiles,
            on_plan=planned,
        )

    # -- stage 3: encode ---------------------------------------------------------------------
    def encode(self, item: _Restored) -> None:
        path = item.job.source.path
        notes: list[str] = []

        def write(fh: BinaryIO) -> None:
            notes.extend(
                write_image_to(fh, item.picture, self.fmt, quality=self.request.files.jpeg_quality)
            )

        try:
            atomic_write(item.job.output, write)
        except Exception as exc:
            self.fail(path, _error_text(path, exc))
            return
        for message in notes:
            self.note(path, message)
        self.record(item.job, str(item.job.output), time.perf_counter() - item.started)

    def record(self, job: Job, output: str, seconds: float) -> None:
        """A file written to `output`."""
        with self.lock:
            self.summary.processed += 1
            self.summary.outputs.append(output)
        self.reporter.file_done(job, seconds)

    def process(self, job: Job) -> None:
        """The three stages for one file, in this thread (what each Ray actor runs)."""
        item = self.decode(job)
        if item.error is not None:
            self.fail(job.source.path, item.error)
            return
        try:
            picture = self.restore(item)
        except Exception as exc:
            self.fail(job.source.path, _error_text(job.source.path, exc))
            return
        self.encode(_Restored(job, picture, item.started))

    # -- videos -----------------------------------------------------------------------------
    def process_video(self, job: Job, executor: ClusterExecutor | None = None) -> None:
        """One video file (`scn_deploy.video`): its frames through the run's models, or its
        segments through `executor` (a cluster's `restore_segments`)."""
        from scn_deploy.video.run import VideoJob, VideoProgress

        path, req, reporter = job.source.path, self.request, self.reporter
        run = self

        class Progress(VideoProgress):
            def started(self, info, output, plan, resumed, total) -> None:
                reporter.video_started(job, info.describe(), plan)

            def frames(self, done: int, total: int, fps: float) -> None:
                reporter.frames(done, total, fps)

            def note(self, message: str) -> None:
                run.note(path, message)

        deblock = None
        if self.spec.task_info.upscales and self.deblock_setting.mode == "fixed":
            deblock = self.deblock_setting.quality
        video = VideoJob(
            self.models,
            level=req.level if self.spec.conditioned else None,
            deblock=deblock,
            options=req.video,
            max_pixels=req.files.max_pixels,
        )
        if req.outscale is not None and req.outscale != self.spec.scale:
            self.fail(path, f"{path}: --outscale is not supported for videos")
            return
        started = time.perf_counter()
        try:
            result = video.run(path, job.output, Progress(), executor)
        except KeyboardInterrupt:
            self.abort.set()
            raise
        except Exception as exc:
            self.fail(path, _error_text(path, exc))
            return
        if deblock is not None:
            with self.lock:
                self.summary.deblocked.append((str(path), deblock, "--deblock"))
        with self.lock:
            self.summary.videos.append(result.to_json())
        self.record(job, str(job.output), time.perf_counter() - started)

    # -- the three stages together -----------------------------------------------------------
    def execute(self, jobs: list[Job]) -> None:
        decoded: queue.Queue[_Decoded | None] = queue.Queue(maxsize=1)
        restored: queue.Queue[_Restored | None] = queue.Queue(maxsize=1)

        def put(q: queue.Queue[Any], item: object) -> bool:
            return put_unless_stopped(q, item, self.abort)

        def decoder() -> None:
            for job in jobs:
                if self.abort.is_set() or not put(decoded, self.decode(job)):
                    return
            put(decoded, None)

        def encoder() -> None:  # on abort it still writes what was already restored
            while (item := restored.get()) is not None:
                self.encode(item)

        threads = [
            threading.Thread(target=decoder, name="scn-decode", daemon=True),
            threading.Thread(target=encoder, name="scn-encode", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            for item in _drain(decoded):
                if item.error is not None:
                    self.fail(item.job.source.path, item.error)
                    continue
                try:
                    picture = self.restore(item)
                except Exception as exc:  # e.g. out of memory on one huge image
                    self.fail(item.job.source.path, _error_text(item.job.source.path, exc))
                    continue
                finally:
                    item.picture = None  # the input is not needed while the output encodes
                put(restored, _Restored(item.job, picture, item.started))
                del picture
            restored.put(None)
        except BaseException:
            self.abort.set()
            raise
        finally:
            if self.abort.is_set():
                _clear(decoded)
                restored.put(None)
            for t in threads:
                t.join()


def _drain(q: queue.Queue[_Decoded | None]) -> Iterator[_Decoded]:
    while (item := q.get()) is not None:
        yield item


def _clear(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _format_of(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jpeg": "jpg", ".jpg": "jpg", ".tif": "tiff", ".tiff": "tiff"}.get(ext, ext[1:])


def run(request: RunRequest, reporter: Reporter | None = None) -> RunSummary:
    """Restore every image of `request.inputs`; never raises for a bad input file.

    Raises `ScnError` (ConfigError / ModelFileError) only for what stops the whole run: an
    unusable model or engine. Bad files end up in `RunSummary.failed`.
    """
    started = time.perf_counter()
    reporter = reporter or Reporter()
    state = Run(request, reporter)
    remote = _plan_remote(state)
    jobs = state.plan() if remote is None else remote
    summary = state.summary
    if request.files.dry_run and remote is not None:
        summary.outputs = [_url(job.output) for job in jobs]
    elif request.files.dry_run:
        for job in jobs:
            try:
                what = _describe_input(job.source.path, request.files.max_pixels)
            except ScnError as exc:
                state.fail(job.source.path, _error_text(job.source.path, exc))
                continue
            summary.outputs.append(str(job.output))
            reporter.info(f"would write {job.output} ({what})")
        summary.seconds = time.perf_counter() - started
        return summary
    videos = [job for job in jobs if is_video(job.source.path)]
    jobs = [job for job in jobs if not is_video(job.source.path)]
    if (jobs or videos) and request.cluster is not None:
        options = request.engine
        summary.engine = f"{options.engine} on {request.cluster.name}"
        summary.device, summary.precision = options.device, options.precision or "auto"
        reporter.start(len(jobs) + len(videos))
        if jobs:
            request.cluster.execute(state, jobs)
        for job in videos:  # planned and assembled here, segments restored on the cluster
            state.process_video(job, executor=request.cluster)
    elif jobs or videos:  # load the engine only when there is work for it
        eng = state.models.primary().engine
        summary.engine, summary.device, summary.precision = eng.name, eng.device, eng.precision
        reporter.start(len(jobs) + len(videos))
        state.execute(jobs)
        for job in videos:
            if state.abort.is_set():
                break
            state.process_video(job)
        summary.loaded = [str(p) for p in state.models.loads]
    summary.seconds = time.perf_counter() - started
    return summary


def _describe_input(path: Path, max_pixels: int | None) -> str:
    """What a dry run says about an input: its size and format (headers only)."""
    if is_video(path):
        from scn_deploy.video.probe import probe_video

        info = probe_video(path, max_pixels=max_pixels, scan=False)
        return f"video {info.describe()}"
    header = probe_image(path, max_pixels=max_pixels)
    return f"{header.width}x{header.height} {header.format}"


def _url(path: Path) -> str:
    from scn_deploy.remote import url_of

    return url_of(path) or str(path)


def _plan_remote(state: Run) -> list[Job] | None:
    """Jobs for URL inputs (s3://...; Ray only), None when the inputs are local paths."""
    from scn_deploy.files import Source
    from scn_deploy.remote import plan_remote, url_of

    req, files = state.request, state.request.files
    if not any(url_of(p) for p in req.inputs):
        return None
    if req.cluster is None:
        raise ConfigError("URL inputs (s3://, gs://, file://...) are read with --cluster ray")
    state.fmt = files.fmt or "png"
    items, problems = plan_remote(
        req.inputs, out=files.out, suffix=state.suffix(), fmt=state.fmt, recursive=files.recursive
    )
    for source, reason in problems:
        state.fail(Path(source), reason)
    jobs = []
    for item in items:
        name = Path(item.source.rsplit("/", 1)[-1])
        job = Job(Source(Path(item.source), None, name), Path(item.output))
        if item.exists and not files.overwrite:
            state._skip(Problem(Path(item.source), "output exists (use --overwrite)"), job.output)
        else:
            jobs.append(job)
    return jobs


def models_for(request: RunRequest) -> ModelSet:
    """The request's model set: its engine options, and its tiling options accepting levels
    beyond a conditioned model's trained range (the CLI has warned about them)."""
    return ModelSet(
        request.models, request.engine, replace(request.restore, extrapolate_level=True)
    )
