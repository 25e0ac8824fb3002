"""What `scn serve`'s options set: one `ServeConfig`, built once by the CLI (or a test)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from scn_deploy.engines.options import EngineOptions
from scn_deploy.imageio import DEFAULT_MAX_PIXELS
from scn_deploy.restorer import RestoreOptions

#: Bodies above this are refused with 413 unless --max-body-bytes says otherwise.
DEFAULT_MAX_BODY_BYTES = 64 << 20
#: The largest input served unless --max-pixels says otherwise: an x4 output of it is the
#: largest input the file commands accept (DEFAULT_MAX_PIXELS, 400 MP), since a service
#: holds several requests' images at once.
DEFAULT_SERVE_MAX_PIXELS = DEFAULT_MAX_PIXELS // 16


#: Most workers by default: each holds its own engines (memory), and past a few the
#: per-engine threads get too few for a large image's latency.
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """One worker per core, at most `MAX_DEFAULT_WORKERS`: each worker's engines get the
    cores divided between the workers (`ServeConfig.engine_threads`), so one request's
    decoding and encoding overlap another's network. docs/serve.md has the measurement of
    one and two workers on the 2-core machine this was written on (two: 1.12x)."""
    return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))


@dataclass(frozen=True)
class ServeConfig:
    """The service's settings.

    Attributes:
        host, port: where uvicorn listens (127.0.0.1 unless --host says otherwise).
        token: the Bearer token every API call must carry (None: no authentication).
        workers: worker threads, each holding its own engines (requests run concurrently up
            to this number).
        queue: requests and jobs waiting for a worker; when full, 429 with Retry-After.
        max_pixels: the largest input (width x height, checked on the header before decoding).
        max_body_bytes: the largest request body (413 above).
        min_side: the smallest input side in pixels (400 below: nothing to restore).
        fast: the tier a request gets when it does not say `fast=`.
        engine: engine, device, precision and pyramid scales (threads: see `engine_threads`).
        restore: tiling, as `scn upscale`'s defaults (`--tile auto`, levels extrapolated).
        timeout_margin: once its first tile is done, a request may run this many times the
            expected seconds of the rest (measured seconds per megapixel x megapixels, plus
            the model's measured overhead) before it is cancelled with 504.
        job_ttl: seconds a finished job (and its result) is kept.
        max_jobs: jobs kept at once (finished ones until they expire); 429 beyond.
        preload: (task, scale) pairs whose models load at start, in the default tier;
            /readyz answers 200 once they are loaded. Others load on first use.
        shutdown_seconds: how long SIGTERM waits for requests in flight.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    workers: int = field(default_factory=default_workers)
    queue: int = 16
    max_pixels: int | None = DEFAULT_SERVE_MAX_PIXELS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    min_side: int = 8
    fast: bool = False
    engine: EngineOptions = field(default_factory=EngineOptions)
    restore: RestoreOptions = field(
        default_factory=lambda: RestoreOptions(tile="auto", extrapolate_level=True)
    )
    timeout_margin: float = 10.0
    job_ttl: float = 600.0
    max_jobs: int = 64
    preload: tuple[tuple[str, int], ...] = (("sr", 2), ("denoise", 1), ("deblock", 1))
    shutdown_seconds: int = 8

    def engine_threads(self) -> int | None:
        """Intra-op threads of each worker's engines: the cores shared between the workers
        (an explicit `engine.threads` or SCN_THREADS wins)."""
        given = self.engine.resolved_threads()
        if given is not None:
            return given
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))
