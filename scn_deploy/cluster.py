"""Restoration at scale on Ray Data: the local pipeline's per-file work on an actor pool.

Videos are split the other way: the driver plans a video (`scn_deploy.video.run.VideoJob`),
and its keyframe-aligned segments go to a pool of `VideoSegmentActor`s, each restoring a run
of consecutive segments into the video's work folder; the driver then assembles the file by
stream copy as a local run does, so the result equals the local run's frame for frame.

The driver plans the run exactly as `scn_deploy.pipeline.run` does (inputs, output names,
skips), then builds a Ray Data pipeline: the planned jobs -> `map_batches` on a pool of
`RestoreActor`s, each holding one `ModelSet` for its whole life (the primary engine and every
companion loaded once per actor) and running decode -> restore -> encode for its files ->
per-file reports streamed back to the driver. A bad image becomes a `failed` entry in the
report, never a failed job. Inputs and outputs are paths every node can reach
(one machine, or a shared filesystem such as NFS or an object store mounted with
mountpoint-s3 / s3fs). Ray is optional: `pip install 'scn-deploy[ray]'`.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scn_deploy.errors import ConfigError, ScnError
from scn_deploy.pipeline import Reporter, Run, RunRequest, models_for

if TYPE_CHECKING:
    from scn_deploy.files import Job
    from scn_deploy.video.run import VideoJob, VideoPlan, VideoProgress
    from scn_deploy.video.segments import Segment

RAY_HINT = "restoring on a Ray cluster needs Ray Data: pip install 'scn-deploy[ray]'"


@dataclass
class ClusterOptions:
    """Where and how wide to run.

    Attributes:
        address: Ray address ("auto" for a running cluster, "ray://host:10001" for a remote
            one); None starts a local Ray instance for this run.
        actors: engines running at once (default: GPUs when num_gpus > 0, else 1 per 2 CPUs).
        num_gpus: GPUs to use in all; each actor gets num_gpus / actors of one.
        cpus_per_actor: CPU threads each engine may use.
    """

    address: str | None = None
    actors: int | None = None
    num_gpus: float = 0.0
    cpus_per_actor: int = 2
    name: str = "ray"

    def execute(self, state: Run, jobs: list[Job]) -> None:
        """Run planned jobs on Ray (`pipeline.ClusterExecutor`)."""
        execute_on_ray(state, jobs, self)

    def restore_segments(
        self, job: VideoJob, plan: VideoPlan, pending: list[Segment], progress: VideoProgress
    ) -> int:
        """Restore a video's pending segments on Ray (`video.run.SegmentExecutor`)."""
        return restore_segments_on_ray(job, plan, pending, progress, self)


class RestoreActor:
    """One model set, kept loaded for the actor's life; restores the files of each batch it is
    given (a `Run` per file, all sharing the set)."""

    def __init__(self, request: RunRequest, fmt: str, threads: int) -> None:
        from scn_deploy.engines.registry import torch_available

        if request.engine.threads is None:  # this actor's share of the node's cores
            request = replace(request, engine=replace(request.engine, threads=threads))

        if torch_available():
            import torch

            torch.set_num_threads(threads)
        self.request = request
        self.fmt = fmt
        self.models = models_for(request)
        self.models.primary()  # loaded at start: an unusable model fails the actor at once
        self.actor_id = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {
            "source": [],
            "output": [],
            "error": [],
            "notes": [],
            "deblocked": [],
            "actor": [],
            "loaded": [],
        }
        for source, output in zip(batch["source"], batch["output"], strict=True):
            source, output = str(source), str(output)
            summary = self._restore_one(source, output)
            rows["source"].append(source)
            rows["output"].append(output if summary.outputs else "")
            rows["error"].append(summary.failed[0][1] if summary.failed else "")
            rows["notes"].append([note for _p, note in summary.notes])
            rows["deblocked"].append([[q, how] for _p, q, how in summary.deblocked])
            rows["actor"].append(self.actor_id)
            rows["loaded"].append([str(p) for p in self.models.loads])
        return rows

    def _restore_one(self, source: str, output: str):
        from scn_deploy.files import Job, Source
        from scn_deploy.remote import fetch, store, url_of

        state = Run(self.request, Reporter(), fmt=self.fmt, models=self.models)
        if url_of(source) is None:  # a shared filesystem: read and write in place
            path = Path(source)
            state.process(Job(Source(path, None, Path(path.name)), Path(output)))
            return state.summary
        with tempfile.TemporaryDirectory(prefix="scn-ray-") as work:
            try:
                local = fetch(source, Path(work))
            except Exception as exc:
                state.summary.failed.append((source, f"{source}: cannot read it ({exc})"))
                return state.summary
            result = Path(work) / "out" / f"result.{self.fmt}"
            state.process(Job(Source(local, None, Path(local.name)), result))
            summary = state.summary
            summary.failed = [(source, e.replace(str(local), source)) for _p, e in summary.failed]
            summary.notes = [(source, n.replace(str(local), source)) for _p, n in summary.notes]
            if summary.outputs:
                try:
                    store(result, output)
                except Exception as exc:
                    summary.outputs = []
                    summary.failed.append((source, f"{output}: cannot write it ({exc})"))
        return summary


class VideoSegmentActor:
    """One model set for the actor's life; restores runs of consecutive segments of one video
    (rows {"first", "stop"}: indices into the pending segments) into its work folder."""

    def __init__(
        self, job: dict[str, Any], plan: VideoPlan, pending: list[Segment], threads: int
    ) -> None:
        from scn_deploy.modelset import ModelSet
        from scn_deploy.video.run import VideoJob

        engine = job["engine"]
        if engine.threads is None:  # this actor's share of the node's cores
            engine = replace(engine, threads=threads)
        models = ModelSet(job["choice"], engine, job["restore"])
        self.job = VideoJob(
            models, level=job["level"], deblock=job["deblock_quality"], options=job["options"]
        )
        self.plan = plan
        self.pending = pending
        models.primary()  # loaded at start: an unusable model fails the actor at once

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {"first": [], "frames": [], "error": []}
        for first, stop in zip(batch["first"], batch["stop"], strict=True):
            run = self.pending[int(first) : int(stop)]
            try:
                frames, error = self.job.restore_segments(self.plan, run), ""
            except ScnError as exc:
                frames, error = 0, str(exc)
            rows["first"].append(int(first))
            rows["frames"].append(frames)
            rows["error"].append(error)
        return rows


def restore_segments_on_ray(
    job: VideoJob,
    plan: VideoPlan,
    pending: list[Segment],
    progress: VideoProgress,
    options: ClusterOptions,
) -> int:
    """Restore `pending` (consecutive segments of `plan`) on a pool of `VideoSegmentActor`s,
    two runs of segments per actor; returns the frames restored. Raises the first error."""
    with _ray_session(options) as ray:
        n = _actors(options, len(pending))
        parts = min(len(pending), 2 * n)
        bounds = [round(i * len(pending) / parts) for i in range(parts + 1)]
        items = [{"first": a, "stop": b} for a, b in itertools.pairwise(bounds)]
        spec = {
            "choice": job.models.choice,
            "engine": job.models.engine_options,
            "restore": job.models.restore_options,
            "level": job.level,
            "deblock_quality": job.deblock,
            "options": job.options,
        }
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            VideoSegmentActor,
            fn_constructor_kwargs={
                "job": spec,
                "plan": plan,
                "pending": pending,
                "threads": options.cpus_per_actor,
            },
            batch_size=1,
            concurrency=n,
            num_cpus=options.cpus_per_actor,
            num_gpus=options.num_gpus / n if options.num_gpus > 0 else 0,
        )
        done = 0
        for row in ds.iter_rows():
            if row["error"]:
                raise ScnError(row["error"])
            done += int(row["frames"])
            progress.frames(done, plan.info.frames, 0.0)
    return done


@contextmanager
def _ray_session(options: ClusterOptions) -> Iterator[Any]:
    """The `ray` module, connected (a local instance started and stopped here when none is
    running); Ray's wrapped failures become `ScnError`."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError(RAY_HINT) from None
    if options.num_gpus < 0:
        raise ConfigError("--num-gpus must be >= 0")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=options.address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # stderr stays for our log
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True  # results listed in submission order
        yield ray
    except ScnError:
        raise
    except Exception as exc:  # Ray wraps actor start-up errors (e.g. an unusable model)
        raise ScnError(f"the Ray job failed: {exc}") from exc
    finally:
        if started_here:
            ray.shutdown()


def _name(path: Path) -> str:
    from scn_deploy.remote import url_of

    return url_of(path) or str(path)


def _actors(options: ClusterOptions, jobs: int) -> int:
    if options.actors is not None:
        if options.actors < 1:
            raise ConfigError("--actors must be >= 1")
        return min(options.actors, jobs)
    if options.num_gpus > 0:
        return max(1, min(int(options.num_gpus), jobs))
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(cpus // max(options.cpus_per_actor, 1), jobs))


def execute_on_ray(state: Run, jobs: list[Job], options: ClusterOptions) -> None:
    """Run planned jobs on Ray; fills `state.summary` as the local pipeline would.

    A job's source and output may be URLs (see `scn_deploy.remote`); their `Path` form is
    only used for messages.
    """
    with _ray_session(options) as ray:
        n = _actors(options, len(jobs))
        gpus_each = options.num_gpus / n if options.num_gpus > 0 else 0
        items = [{"source": _name(j.source.path), "output": _name(j.output)} for j in jobs]
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        ds = ds.map_batches(
            RestoreActor,
            fn_constructor_kwargs={
                "request": state.request,
                "fmt": state.fmt,
                "threads": options.cpus_per_actor,
            },
            batch_size=1,
            concurrency=n,
            num_cpus=options.cpus_per_actor,
            num_gpus=gpus_each,
        )
        by_source = {_name(j.source.path): j for j in jobs}
        loaded: dict[str, list[str]] = {}  # per actor: the model files its set has loaded
        state.reporter.info(f"Ray: {n} actor(s) over {len(jobs)} file(s)")
        for row in ds.iter_rows():
            loaded[row["actor"]] = list(row["loaded"])
            job = by_source[row["source"]]
            for note in row["notes"]:
                state.note(job.source.path, note)
            if row["error"]:
                state.fail(job.source.path, row["error"])
                continue
            for quality, how in row["deblocked"]:
                state.summary.deblocked.append((_name(job.source.path), int(quality), str(how)))
            state.record(job, row["output"], 0.0)
        state.summary.loaded = [path for paths in loaded.values() for path in paths]
