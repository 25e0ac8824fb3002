"""Jobs: restorations submitted now and fetched later (large images, videos).

`POST /v1/jobs/{task}` queues the same `Work` a direct request does and returns an id at
once; `GET /v1/jobs/{id}` reports its status, progress (tiles, or a video's frames, done /
total) and ETA (from the model's measured speed while queued, from its own progress while
running); `GET /v1/jobs/{id}/result` returns the result when done; `DELETE /v1/jobs/{id}`
cancels it. A job is forgotten `ttl` seconds after it finished (unfinished jobs are bounded
by the queue). A result above `SPILL_BYTES` waits in a file of the store's private temporary
folder, not in memory, so finished jobs do not hold the server's memory (64 kept 4K videos
would be gigabytes); the file goes with the job.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scn_deploy.serve.restoration import Restored
from scn_deploy.serve.workers import Work, WorkerPool

#: Results larger than this are kept in a file until fetched or expired.
SPILL_BYTES = 4 << 20


@dataclass
class Job:
    id: str
    route: str
    work: Work
    created: float
    result: Restored | None = None
    error: tuple[int, str] | None = None  # HTTP status and message
    result_file: Path | None = None  # the result's bytes when spilled (result.body is empty)

    @property
    def status(self) -> str:
        if self.result is not None:
            return "done"
        if self.error is not None:
            return "cancelled" if self.work.cancel_reason else "failed"
        return "running" if self.work.started is not None else "queued"

    def eta_seconds(self, pool: WorkerPool, now: float) -> float | None:
        """Seconds until done: measured progress while running, else the expected seconds of
        the work ahead in the queue and of this one."""
        work = self.work
        if self.result is not None or self.error is not None:
            return 0.0
        if work.started is not None:
            elapsed = now - work.started
            fraction = work.progress()
            if fraction > 0:
                return max(0.0, elapsed / fraction - elapsed)
            return max(0.0, (work.expected_seconds or 0.0) - elapsed)
        if work.expected_seconds is None:
            return None
        place = pool.position(work) or 0
        ahead = place * work.expected_seconds / max(1, pool.config.workers)
        return ahead + work.expected_seconds


class JobStore:
    """The jobs of one service, kept `ttl` seconds after they finish, at most `limit`."""

    def __init__(self, ttl: float, limit: int, spill_bytes: int = SPILL_BYTES) -> None:
        self.ttl = ttl
        self.limit = limit
        self.spill_bytes = spill_bytes
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._folder: Path | None = None

    def finish(self, job: Job, result: Restored) -> None:
        """Keep a finished job's result: in memory, or in a file when it is large."""
        if len(result.body) <= self.spill_bytes:
            job.result = result
            return
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="scn-serve-results-"))
            path = self._folder / job.id
        path.write_bytes(result.body)
        job.result_file = path
        job.result = replace(result, body=b"")
        with self._lock:
            gone = job.id not in self._jobs
        if gone:  # deleted while it was being written
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove every spilled result (the server is stopping)."""
        with self._lock:
            self._jobs.clear()
            folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def has_room(self) -> bool:
        self.expire()
        return len(self) < self.limit

    def add(self, route: str, work: Work) -> Job:
        job = Job(secrets.token_urlsafe(16), route, work, time.monotonic())
        with self._lock:
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        self.expire()
        with self._lock:
            return self._jobs.get(job_id)

    def remove(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            _discard(job)
        return job

    def expire(self, now: float | None = None) -> int:
        """Forget the jobs past their TTL; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [
                job_id
                for job_id, job in self._jobs.items()
                if job.work.finished is not None and now - job.work.finished > self.ttl
            ]
            gone = [self._jobs.pop(job_id) for job_id in old]
        for job in gone:
            _discard(job)
        return len(old)

    def describe(self, job: Job, pool: WorkerPool) -> dict[str, Any]:
        now = time.monotonic()
        work = job.work
        eta = job.eta_seconds(pool, now)
        info: dict[str, Any] = {
            "id": job.id,
            "task": job.route,
            "status": job.status,
            "progress": round(work.progress(), 4),
            "tiles": {"done": work.tiles_done, "total": work.tiles_total},
            "eta_seconds": None if eta is None else round(eta, 3),
            "queue_position": pool.position(work),
            "expires_in_seconds": (
                None if work.finished is None else round(self.ttl - (now - work.finished), 1)
            ),
        }
        if job.error is not None:
            info["error"] = job.error[1]
        if job.result is not None:
            info["result"] = f"/v1/jobs/{job.id}/result"
            info["width"], info["height"] = job.result.width, job.result.height
            if work.params.container is not None:
                info["frames"] = job.result.frames
        return info


def _discard(job: Job) -> None:
    if job.result_file is not None:
        with contextlib.suppress(OSError):
            job.result_file.unlink()
