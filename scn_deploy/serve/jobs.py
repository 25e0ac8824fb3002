"""Jobs: restorations submitted now and fetched later (large images; video can plug in).

`POST /v1/jobs/{task}` queues the same `Work` a direct request does and returns an id at
once; `GET /v1/jobs/{id}` reports its status, progress (tiles done / total) and ETA (from the
model's measured speed while queued, from its own progress while running); `GET
/v1/jobs/{id}/result` returns the image when done; `DELETE /v1/jobs/{id}` cancels it. A job
is forgotten `ttl` seconds after it finished (unfinished jobs are bounded by the queue).
Anything that produces a `Work` (a video's frames later) can be a job: the store only reads
the work's progress and result.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from scn_deploy.serve.restoration import Restored
from scn_deploy.serve.workers import Work, WorkerPool


@dataclass
class Job:
    id: str
    route: str
    work: Work
    created: float
    result: Restored | None = None
    error: tuple[int, str] | None = None  # HTTP status and message

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

    def __init__(self, ttl: float, limit: int) -> None:
        self.ttl = ttl
        self.limit = limit
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

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
            return self._jobs.pop(job_id, None)

    def expire(self, now: float | None = None) -> int:
        """Forget the jobs past their TTL; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [
                job_id
                for job_id, job in self._jobs.items()
                if job.work.finished is not None and now - job.work.finished > self.ttl
            ]
            for job_id in old:
                self._jobs.pop(job_id)
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
