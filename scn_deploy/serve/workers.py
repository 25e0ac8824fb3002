"""The worker pool: a fixed number of threads, a bounded queue, measured speed.

Each worker thread holds its own engines (one `ModelSet` per model the service has served,
loaded in that thread; the cores are divided between the workers, see
`ServeConfig.engine_threads`): an engine's inference request is not shared between threads.
Requests wait in one bounded queue; `submit` raises `QueueFull` when it is full (the app
answers 429 with Retry-After from the queued work's expected seconds).

Speed is measured, per model: each worker's first load runs a warm-up image twice (the first
call compiles for a shape, the second is a warm call), and every request updates the model's
seconds per output megapixel (a moving average; a request far slower than expected, which is
what compiling a new input shape looks like, raises the model's overhead allowance instead).
A request's deadline is set when its first tile is done (the first tile of a shape may
compile, which no speed predicts): `timeout_margin` x (the expected seconds of the remaining
tiles + the overhead allowance) from then. A request cancelled (client gone, timeout, job
deleted) is skipped if still queued and stopped at the next tile if running.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.engines.options import EngineOptions
from scn_deploy.modelset import ModelChoice, ModelSet, spec_of
from scn_deploy.serve.config import ServeConfig
from scn_deploy.serve.params import RestorationParams
from scn_deploy.serve.restoration import Restored, restore_upload, restore_video_upload
from scn_deploy.tasks import Task

log = logging.getLogger("scn.serve")

#: (task, scale, fast, zoo model name or None): one model set of the service.
ModelKey = tuple[Task, int, bool, str | None]

#: Side of the warm-up image each worker restores after loading a model.
WARMUP_SIDE = 64
#: Weight of the newest request in the moving average of seconds per megapixel.
SPEED_WEIGHT = 0.3
#: A request slower than this many times (expected + overhead) counts as an overhead outlier.
OUTLIER = 3.0


def key_of(params: RestorationParams) -> ModelKey:
    return (params.task, params.scale, params.fast, params.model)


class QueueFull(Exception):
    """The queue is full; `retry_after` is the suggested wait in whole seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class Cancelled(Exception):
    """A request stopped before its end: `reason` is "disconnected", "timeout", "deleted"
    or "shutdown"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Speed:
    """A model's measured speed: seconds per output megapixel of a warm call, and the extra
    seconds a call may take (the first call's, compiling; the largest seen since)."""

    seconds_per_mp: float
    overhead_seconds: float

    def expected(self, megapixels: float) -> float:
        return self.seconds_per_mp * megapixels


class Catalog:
    """The models the service can serve: each key's files and spec (resolved once, without
    loading an engine) and its measured speed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._choices: dict[ModelKey, tuple[ModelChoice, ModelSpec]] = {}
        self._speeds: dict[ModelKey, Speed] = {}

    def resolve(self, key: ModelKey) -> tuple[ModelChoice, ModelSpec]:
        """The files of a key, as `scn upscale | denoise | deblock` choose them (raises
        `ScnError` when a model is not installed)."""
        with self._lock:
            found = self._choices.get(key)
        if found is not None:
            return found
        from scn_deploy.zoo import choose_models

        task, scale, fast, model = key
        choice = choose_models(model, task=task, scale=scale, fast=fast)
        found = (choice, spec_of(choice.model))
        with self._lock:
            self._choices[key] = found
        return found

    def speed(self, key: ModelKey) -> Speed | None:
        with self._lock:
            return self._speeds.get(key)

    def measured(self, key: ModelKey, seconds: float, megapixels: float) -> None:
        """One request's seconds for ``megapixels`` of output."""
        if megapixels <= 0:
            return
        with self._lock:
            speed = self._speeds.get(key)
            if speed is None:
                return
            expected = speed.expected(megapixels)
            if seconds > OUTLIER * (expected + speed.overhead_seconds):
                speed.overhead_seconds = max(speed.overhead_seconds, seconds - expected)
            else:
                rate = seconds / megapixels
                speed.seconds_per_mp += SPEED_WEIGHT * (rate - speed.seconds_per_mp)

    def warmed(self, key: ModelKey, first_call: float, seconds: float, megapixels: float) -> None:
        """A worker's warm-up: the first call's seconds, then a warm call's."""
        with self._lock:
            speed = self._speeds.get(key)
            overhead = max(0.0, first_call - seconds)
            if speed is None:
                self._speeds[key] = Speed(seconds / megapixels, overhead)
            else:
                speed.overhead_seconds = max(speed.overhead_seconds, overhead)


@dataclass(eq=False)
class Work:
    """One request or job on its way through the pool (compared and hashed by identity)."""

    params: RestorationParams
    data: bytes
    megapixels: float  # of the output
    future: concurrent.futures.Future[Restored] = field(default_factory=concurrent.futures.Future)
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    deadline: float | None = None
    expected_seconds: float | None = None
    tiles_done: int = 0
    tiles_total: int = 0
    cancel_reason: str | None = None

    @property
    def key(self) -> ModelKey:
        return key_of(self.params)

    def cancel(self, reason: str) -> None:
        """Stop this work: skipped if still queued, stopped at the next tile if running."""
        if self.cancel_reason is None:
            self.cancel_reason = reason

    def check(self) -> None:
        """Raise `Cancelled` when cancelled or past the deadline (called at every tile)."""
        deadline = self.deadline
        if self.cancel_reason is None and deadline is not None and time.monotonic() > deadline:
            self.cancel("timeout")
        if self.cancel_reason is not None:
            raise Cancelled(self.cancel_reason)

    def progress(self) -> float:
        if self.finished is not None:
            return 1.0
        return self.tiles_done / self.tiles_total if self.tiles_total else 0.0


@dataclass(frozen=True)
class Warmup:
    """A model's warm-up on loading: the first call's seconds (compiling), then a warm
    call's, for ``megapixels`` of output."""

    first_call: float
    seconds: float
    megapixels: float


class ModelHost(Protocol):
    """Where a worker's restorations run: `prepare` loads a key's models (None when they
    were loaded already), `restore` runs one request, calling ``on_tile(done, total)`` after
    each tile (which raises `Cancelled` to stop it)."""

    def prepare(self, key: ModelKey) -> Warmup | None: ...

    def restore(
        self,
        key: ModelKey,
        params: RestorationParams,
        data: bytes,
        on_tile: Callable[[int, int], None] | None,
    ) -> Restored: ...


class LocalModels:
    """One worker's engines in this process: a `ModelSet` per key, loaded and warmed up on
    first use, kept for the worker's life (an engine is never shared between threads)."""

    def __init__(self, catalog: Catalog, engine: EngineOptions, config: ServeConfig) -> None:
        self.catalog, self.engine, self.config = catalog, engine, config
        self.models: dict[ModelKey, ModelSet] = {}

    def prepare(self, key: ModelKey) -> Warmup | None:
        if key in self.models:
            return None
        choice, _ = self.catalog.resolve(key)
        model_set = ModelSet(choice, self.engine, self.config.restore)
        restorer = model_set.primary()
        spec = restorer.spec
        image = np.random.default_rng(0).random((WARMUP_SIDE, WARMUP_SIDE, 3), np.float32)
        level = None
        if spec.conditioned and spec.level_range is not None:
            level = float(sum(spec.level_range) / 2)
        started = time.perf_counter()
        restorer.restore(image, level)
        first = time.perf_counter() - started
        started = time.perf_counter()
        restorer.restore(image, level)
        second = time.perf_counter() - started
        log.info("loaded %s (%s, %.3f s first call)", choice.model.stem, restorer.engine, first)
        self.models[key] = model_set
        return Warmup(first, second, (WARMUP_SIDE * spec.scale) ** 2 / 1e6)

    def restore(
        self,
        key: ModelKey,
        params: RestorationParams,
        data: bytes,
        on_tile: Callable[[int, int], None] | None,
    ) -> Restored:
        self.prepare(key)
        run = restore_upload if params.container is None else restore_video_upload
        return run(
            self.models[key], params, data, max_pixels=self.config.max_pixels, on_tile=on_tile
        )


class WorkerPool:
    """``config.workers`` threads running `Work` from a queue of ``config.queue`` places."""

    def __init__(
        self,
        config: ServeConfig,
        catalog: Catalog,
        *,
        on_done: Callable[[Work, Restored | None, BaseException | None], None] | None = None,
        hosts: Callable[[], ModelHost] | None = None,
    ) -> None:
        """``hosts`` makes each worker thread's `ModelHost` (default: `LocalModels`, the
        engines in this process; `scn serve --cluster ray` gives one on Ray Serve replicas)."""
        self.config = config
        self.catalog = catalog
        self.on_done = on_done
        self._queue: queue.Queue[Work | None] = queue.Queue(maxsize=config.queue)
        self._threads: list[threading.Thread] = []
        self._preloaded = 0
        self._lock = threading.Lock()
        self._running: set[Work] = set()
        self.ready = threading.Event()
        self.load_error: str | None = None
        engine = replace(config.engine, threads=config.engine_threads())
        self._new_host = hosts or (lambda: LocalModels(catalog, engine, config))

    # -- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        for i in range(self.config.workers):
            thread = threading.Thread(target=self._run, name=f"scn-serve-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float) -> None:
        """End the pool once the server stopped taking requests and waited for those in
        flight: what is still queued is cancelled, what still runs is stopped at its next
        tile, and the threads get ``timeout`` seconds to end (they are daemons: the process
        does not wait for them beyond that)."""
        with self._lock:
            running = list(self._running)
        for work in running:
            work.cancel("shutdown")
        while True:
            try:
                work = self._queue.get_nowait()
            except queue.Empty:
                break
            if work is not None:
                work.cancel("shutdown")
                self._finish(work, None, Cancelled("shutdown"))
        for _ in self._threads:
            self._queue.put(None)
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))

    # -- queue --------------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        """Workers restoring now."""
        with self._lock:
            return len(self._running)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, work: Work) -> None:
        """Queue ``work``; raise `QueueFull` when the queue has no place."""
        speed = self.catalog.speed(work.key)
        if speed is not None:
            work.expected_seconds = speed.expected(work.megapixels)
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            raise QueueFull(self.retry_after()) from None

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queued work's expected seconds shared
        between the workers (at least 1)."""
        with self._queue.mutex:
            queued = [w for w in self._queue.queue if w is not None]
        seconds = sum(w.expected_seconds or 0.0 for w in queued) / max(1, self.config.workers)
        return max(1, math.ceil(seconds))

    def position(self, work: Work) -> int | None:
        """0-based place of ``work`` in the queue (None: not queued)."""
        with self._queue.mutex:
            for i, queued in enumerate(self._queue.queue):
                if queued is work:
                    return i
        return None

    # -- the worker threads -------------------------------------------------------------------
    def _run(self) -> None:
        host = self._new_host()
        try:
            for task, scale in self.config.preload:
                self._prepare(host, (task, scale, self.config.fast, None))
        except Exception as exc:  # reported by /readyz; requests still try their own models
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("loading the models failed: %s", self.load_error)
        with self._lock:
            self._preloaded += 1
            if self._preloaded == len(self._threads) and self.load_error is None:
                self.ready.set()
        while (work := self._queue.get()) is not None:
            if work.cancel_reason is not None:
                self._finish(work, None, Cancelled(work.cancel_reason))
                continue
            with self._lock:
                self._running.add(work)
            try:
                result = self._restore(host, work)
            except BaseException as exc:
                self._finish(work, None, exc)
            else:
                self._finish(work, result, None)
            finally:
                with self._lock:
                    self._running.discard(work)

    def _restore(self, host: ModelHost, work: Work) -> Restored:
        self._prepare(host, work.key)
        speed = self.catalog.speed(work.key)
        assert speed is not None
        work.expected_seconds = speed.expected(work.megapixels)
        work.started = time.monotonic()
        work.check()
        margin = self.config.timeout_margin

        def on_tile(done: int, total: int) -> None:
            work.tiles_done, work.tiles_total = done, total
            if done == 1 and total > 1:
                remaining = work.expected_seconds * (total - 1) / total
                work.deadline = time.monotonic() + margin * (remaining + speed.overhead_seconds)
            work.check()

        started = time.perf_counter()
        result = host.restore(work.key, work.params, work.data, on_tile)
        self.catalog.measured(work.key, time.perf_counter() - started, result.megapixels)
        return result

    def _prepare(self, host: ModelHost, key: ModelKey) -> None:
        """Load ``key``'s models on ``host`` (once) and record its warm-up speed."""
        warm = host.prepare(key)
        if warm is not None:
            self.catalog.warmed(key, warm.first_call, warm.seconds, warm.megapixels)

    def _finish(self, work: Work, result: Restored | None, error: BaseException | None) -> None:
        work.finished = time.monotonic()
        work.data = b""  # the upload is not needed any more
        if self.on_done is not None:
            self.on_done(work, result, error)
        if work.future.set_running_or_notify_cancel():
            if error is not None:
                work.future.set_exception(error)
            else:
                assert result is not None
                work.future.set_result(result)
