"""The HTTP API (Starlette) and the server (uvicorn).

Routes (all JSON errors are ``{"error": message, "status": code}``):

- ``POST /v1/upscale | /v1/denoise | /v1/deblock``: the image as the body or as a multipart
  upload; the restored image back (png unless ``format=``), with headers naming the model,
  engine, precision, device and seconds;
- ``POST /v1/jobs/{task}`` (same parameters): 202 with the job's id; ``GET /v1/jobs/{id}``:
  status, progress, ETA; ``GET /v1/jobs/{id}/result``: the image; ``DELETE /v1/jobs/{id}``;
- ``GET /v1/info``: tasks, models and limits (the web page reads it);
- ``GET /``: the web page; ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

With a token, every route except ``/``, ``/healthz`` and ``/readyz`` needs ``Authorization:
Bearer <token>`` (401 otherwise). The request's bytes are decoded in memory: nothing from a
request reaches a file-system path.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)
from starlette.routing import Route

from scn_deploy.arch.config import ModelSpec
from scn_deploy.errors import ConfigError, ImageReadError, ImageTooLargeError, ScnError
from scn_deploy.imageio import probe_image_data
from scn_deploy.jpeg_input import DeblockSetting
from scn_deploy.serve.config import ServeConfig
from scn_deploy.serve.jobs import Job, JobStore
from scn_deploy.serve.metrics import CONTENT_TYPE, Metrics
from scn_deploy.serve.params import TASKS, BadRequest, RestorationParams, parse_params
from scn_deploy.serve.restoration import UPLOAD_LABEL, Restored, probe_video_upload
from scn_deploy.serve.workers import (
    Cancelled,
    Catalog,
    ModelHost,
    QueueFull,
    Work,
    WorkerPool,
    key_of,
)
from scn_deploy.video.formats import sniff_container

log = logging.getLogger("scn.serve")

#: How often a waiting request checks for its client's disconnect and its deadline.
POLL_SECONDS = 0.1
#: Status reported (in metrics) for a request whose client went away (nginx's convention).
CLIENT_CLOSED = 499
#: How long the lifespan's end waits for the worker threads, after uvicorn's graceful period
#: (`ServeConfig.shutdown_seconds`): together within the 10 s an orchestrator usually allows.
STOP_SECONDS = 1.5
_PUBLIC = frozenset({"/", "/healthz", "/readyz"})


class Service:
    """What the routes share: the config, the catalog, the worker pool, jobs and metrics."""

    def __init__(self, config: ServeConfig, hosts: Callable[[], ModelHost] | None = None) -> None:
        from scn_deploy.zoo import available_names

        self.config = config
        self.catalog = Catalog()
        self.metrics = Metrics()
        self.jobs = JobStore(config.job_ttl, config.max_jobs)
        self.pool = WorkerPool(config, self.catalog, on_done=self._done, hosts=hosts)
        self.zoo_names = available_names()
        for task, scale in config.preload:  # a missing model stops `scn serve` at once
            self.catalog.resolve((task, scale, config.fast, None))
        gauges = {
            "scn_queue_depth": ("Requests and jobs waiting for a worker.", lambda: self.pool.depth),
            "scn_workers_busy": ("Workers restoring now.", lambda: self.pool.busy),
            "scn_workers": ("Worker threads.", lambda: config.workers),
            "scn_jobs": ("Jobs kept (queued, running or finished).", lambda: len(self.jobs)),
            "scn_ready": ("1 once the preloaded models are loaded.", self._ready_value),
            "process_resident_memory_bytes": ("Resident memory of the server.", resident_bytes),
        }
        self.metrics.gauges.update(gauges)

    def _ready_value(self) -> float:
        return 1.0 if self.pool.ready.is_set() else 0.0

    def _done(self, work: Work, result: Restored | None, error: BaseException | None) -> None:
        if result is not None:
            self.metrics.restored(result.megapixels)

    def authorized(self, request: Request) -> bool:
        token = self.config.token
        if not token or request.url.path in _PUBLIC:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )


def resident_bytes() -> float:
    """The process's resident set size now (Linux /proc; elsewhere its peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return float(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except OSError:
        import resource

        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def problem(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status, headers=headers)


def problem_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message for what stopped a restoration."""
    if isinstance(exc, BadRequest):
        return exc.status, exc.message
    if isinstance(exc, ImageTooLargeError):
        return 413, str(exc)
    if isinstance(exc, ImageReadError):
        return 400, str(exc)
    if isinstance(exc, Cancelled):
        statuses = {"timeout": 504, "shutdown": 503, "disconnected": CLIENT_CLOSED}
        text = {
            "timeout": "the restoration took longer than its measured speed allows",
            "shutdown": "the server is shutting down",
        }.get(exc.reason, f"cancelled ({exc.reason})")
        return statuses.get(exc.reason, 409), text
    if isinstance(exc, ScnError):
        return 400, str(exc).replace("--", "")
    log.error("restoration failed", exc_info=exc)
    return 500, f"internal error: {type(exc).__name__}: {exc}"


Handler = Callable[[Request], Awaitable[Response]]


def instrumented(route: str) -> Callable[[Callable[[Service, Request], Awaitable[Response]]], Any]:
    """Check the token, turn `BadRequest` into its JSON error and record the request's
    status and latency under ``route`` (a template, not the raw path)."""

    def wrap(handler: Callable[[Service, Request], Awaitable[Response]]) -> Any:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            service: Service = request.app.state.service
            started = time.perf_counter()
            if not service.authorized(request):
                response: Response = problem(
                    "missing or wrong Bearer token (Authorization: Bearer <token>)",
                    401,
                    {"WWW-Authenticate": "Bearer"},
                )
            else:
                try:
                    response = await handler(service, request)
                except BadRequest as exc:
                    response = problem(exc.message, exc.status, exc.headers)
            service.metrics.request(route, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    return wrap


# -- reading a request ---------------------------------------------------------------------------
async def read_image(request: Request, limit: int) -> bytes:
    """The posted image: the body, or the multipart upload's file (at most ``limit`` bytes
    either way; 413 above). Everything stays in memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the body is {int(declared):,} bytes, above the limit of {limit:,}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the body is above the limit of {limit:,} bytes", 413)
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await _multipart_file(request, body, limit)
    if not body:
        raise BadRequest("no image: send it as the request body or as a multipart upload")
    return body


async def _multipart_file(request: Request, body: bytes, limit: int) -> bytes:
    async def stream() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=8)
    parser.spool_max_size = limit  # the upload stays in memory, never in a temporary file
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"bad multipart upload: {exc.message}") from None
    uploads = [value for _, value in form.multi_items() if not isinstance(value, str)]
    if not uploads:
        raise BadRequest("the multipart upload has no file (send it as the field 'image')")
    data = await uploads[0].read()
    await form.close()
    return data


def _query(request: Request) -> dict[str, str]:
    items = request.query_params.multi_items()
    names = [name for name, _ in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadRequest(f"parameter given more than once: {', '.join(repeated)}")
    return dict(items)


async def prepare(service: Service, request: Request, route: str, *, job: bool = False) -> Work:
    """Check a restoration request (parameters, model, level, image header) into `Work`;
    raise `BadRequest` (4xx) for anything wrong, before it takes a place in the queue."""
    config = service.config
    query = _query(request)
    params = parse_params(route, query, default_fast=config.fast, zoo_names=service.zoo_names)
    try:
        _, spec = service.catalog.resolve(key_of(params))
    except ScnError as exc:
        raise BadRequest(str(exc).replace("--", "")) from None
    if spec.task != params.task:
        raise BadRequest(f"model {params.model} is a {spec.describe()} model, not for /{route}")
    if spec.scale != params.scale:  # a model given without scale: the model's own
        if "scale" in query:
            raise BadRequest(f"model {params.model} upscales x{spec.scale}, not x{params.scale}")
        params = replace(params, scale=spec.scale)
    check = spec.task_info.check_level(spec, params.level)
    if check.problem == "fixed" or (
        check.problem == "missing" and not spec.task_info.level_from_file
    ):
        raise BadRequest(check.message.replace("--", ""))
    data = await read_image(request, config.max_body_bytes)
    container = sniff_container(data)
    if container is not None:
        return await _prepare_video(service, route, query, params, spec, data, container, job)
    try:
        header = probe_image_data(data, name=UPLOAD_LABEL, max_pixels=config.max_pixels)
    except ScnError as exc:
        status, message = problem_of(exc)
        raise BadRequest(message, status) from None
    _check_min_side(header.width, header.height, config.min_side)
    return Work(params, data, header.pixels * spec.scale**2 / 1e6)


def _check_min_side(width: int, height: int, min_side: int) -> None:
    if min(width, height) < min_side:
        raise BadRequest(
            f"{UPLOAD_LABEL}: {width}x{height} is below the smallest size served "
            f"({min_side} px a side)"
        )


async def _prepare_video(
    service: Service,
    route: str,
    query: dict[str, str],
    params: RestorationParams,
    spec: ModelSpec,
    data: bytes,
    container: str,
    job: bool,
) -> Work:
    """A posted video: a job only (it takes minutes), probed (size, frames) before it
    queues, so its ETA and timeout follow its length."""
    if not job:
        raise BadRequest(
            f"a video is restored as a job: POST /v1/jobs/{route} with the same parameters, "
            "then GET /v1/jobs/{id} for its progress and /v1/jobs/{id}/result for the video"
        )
    if "format" in query or "jpeg_quality" in query:
        raise BadRequest("format and jpeg_quality are for images: a video keeps its container")
    if spec.conditioned and params.level is None:
        name = spec.task_info.level_name
        raise BadRequest(f"give {name} for a video (it is estimated from JPEG files only)")
    if params.deblock.mode == "auto":  # JPEG estimation is for JPEG files; a video: off
        params = replace(params, deblock=DeblockSetting("off"))
    config = service.config
    try:
        info = await asyncio.to_thread(
            probe_video_upload, data, container, max_pixels=config.max_pixels
        )
    except ConfigError as exc:  # no PyAV on this server
        raise BadRequest(f"this server cannot restore videos: {exc}", 415) from None
    except ScnError as exc:
        status, message = problem_of(exc)
        raise BadRequest(message, status) from None
    _check_min_side(info.width, info.height, config.min_side)
    params = replace(params, container=container)
    return Work(params, data, info.width * info.height * spec.scale**2 * info.frames / 1e6)


def _submit(service: Service, work: Work) -> None:
    try:
        service.pool.submit(work)
    except QueueFull as exc:
        raise BadRequest(str(exc), 429, {"Retry-After": str(exc.retry_after)}) from exc


def _image_response(route: str, work: Work, result: Restored, file: Path | None = None) -> Response:
    """The result with its headers: from memory, or streamed from ``file`` (a spilled job
    result)."""
    params = work.params
    started = work.started or work.submitted
    finished = work.finished or time.monotonic()
    headers = {
        "X-Scn-Model": result.model,
        "X-Scn-Engine": result.engine,
        "X-Scn-Precision": result.precision,
        "X-Scn-Device": result.device,
        "X-Scn-Seconds": f"{finished - started:.3f}",
        "X-Scn-Queue-Seconds": f"{started - work.submitted:.3f}",
        "X-Scn-Size": f"{result.width}x{result.height}",
        "X-Scn-Host": result.host,
        "Content-Disposition": f'inline; filename="{params.result_name}"',
    }
    if params.container is not None:
        headers["X-Scn-Frames"] = str(result.frames)
    if result.deblocked_quality is not None:
        headers["X-Scn-Deblocked-Quality"] = str(result.deblocked_quality)
    if result.notes:
        headers["X-Scn-Notes"] = "; ".join(result.notes).encode("ascii", "replace").decode()
    if file is not None:
        return FileResponse(file, media_type=params.media_type, headers=headers)
    return Response(result.body, media_type=params.media_type, headers=headers)


# -- routes --------------------------------------------------------------------------------------
def _restore_route(route: str) -> Handler:
    @instrumented(f"/v1/{route}")
    async def restore(service: Service, request: Request) -> Response:
        work = await prepare(service, request, route)
        _submit(service, work)
        waiting = asyncio.wrap_future(work.future)
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=POLL_SECONDS)
            if done:
                break
            if await request.is_disconnected():
                work.cancel("disconnected")
                waiting.cancel()  # its outcome is nobody's business any more
                return problem("the client disconnected", CLIENT_CLOSED)
            if work.deadline is not None and time.monotonic() > work.deadline:
                work.cancel("timeout")
                waiting.cancel()
                break
        try:
            result = waiting.result() if waiting.done() and not waiting.cancelled() else None
        except BaseException as exc:
            status, message = problem_of(exc)
            return problem(message, status)
        if result is None:  # past the deadline while its only tile runs
            status, message = problem_of(Cancelled("timeout"))
            return problem(message, status)
        return _image_response(route, work, result)

    return restore


def _job_route(route: str) -> Handler:
    @instrumented("/v1/jobs/{task}")
    async def submit(service: Service, request: Request) -> Response:
        if not service.jobs.has_room():
            raise BadRequest(f"{service.config.max_jobs} jobs are kept already; retry later", 429)
        work = await prepare(service, request, route, job=True)
        _submit(service, work)
        job = service.jobs.add(route, work)
        work.future.add_done_callback(functools.partial(_job_finished, service.jobs, job))
        info = service.jobs.describe(job, service.pool)
        return JSONResponse(info, 202, headers={"Location": f"/v1/jobs/{job.id}"})

    return submit


def _job_finished(jobs: JobStore, job: Job, future: Any) -> None:
    if future.cancelled():
        job.error = (409, "cancelled")
        return
    error = future.exception()
    if error is not None:
        job.error = problem_of(error)
    else:
        jobs.finish(job, future.result())


def _job(service: Service, request: Request) -> Job:
    job = service.jobs.get(request.path_params["job_id"])
    if job is None:
        raise BadRequest("no such job (unknown, or expired)", 404)
    return job


@instrumented("/v1/jobs/{id}")
async def job_status(service: Service, request: Request) -> Response:
    job = _job(service, request)
    if request.method == "DELETE":
        job.work.cancel("deleted")
        service.jobs.remove(job.id)
        return JSONResponse({"id": job.id, "status": "deleted"})
    return JSONResponse(service.jobs.describe(job, service.pool))


@instrumented("/v1/jobs/{id}/result")
async def job_result(service: Service, request: Request) -> Response:
    job = _job(service, request)
    if job.error is not None:
        return problem(job.error[1], job.error[0])
    if job.result is None:
        info = service.jobs.describe(job, service.pool)
        eta = info["eta_seconds"]
        retry = {"Retry-After": str(max(1, round(eta)))} if eta is not None else None
        return problem(f"the job is {job.status}", 409, retry)
    return _image_response(job.route, job.work, job.result, job.result_file)


@instrumented("/v1/info")
async def info(service: Service, request: Request) -> Response:
    config = service.config
    return JSONResponse(
        {
            "tasks": list(TASKS),
            "models": service.zoo_names,
            "fast_default": config.fast,
            "max_pixels": config.max_pixels,
            "max_body_bytes": config.max_body_bytes,
            "min_side": config.min_side,
            "workers": config.workers,
            "queue": config.queue,
            "auth": bool(config.token),
        }
    )


@instrumented("/healthz")
async def healthz(service: Service, request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@instrumented("/readyz")
async def readyz(service: Service, request: Request) -> Response:
    pool = service.pool
    ready = pool.ready.is_set()
    body: dict[str, Any] = {"ready": ready, "workers": service.config.workers}
    if pool.load_error is not None:
        body["error"] = pool.load_error
    return JSONResponse(body, 200 if ready else 503)


@instrumented("/metrics")
async def metrics(service: Service, request: Request) -> Response:
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)


@instrumented("/")
async def page(service: Service, request: Request) -> Response:
    html = resources.files("scn_deploy.serve").joinpath("page.html").read_text("utf-8")
    policy = (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; connect-src 'self' blob:"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


async def not_found(request: Request, exc: Exception) -> Response:
    return problem(f"no route {request.method} {request.url.path}", 404)


async def not_allowed(request: Request, exc: Exception) -> Response:
    return problem(f"{request.method} is not allowed on {request.url.path}", 405)


def create_app(config: ServeConfig, hosts: Callable[[], ModelHost] | None = None) -> Starlette:
    """The ASGI app. The lifespan starts the workers (which load the preloaded models in the
    background: /readyz says when) and, on shutdown, lets running work finish. ``hosts``
    makes each worker's `ModelHost` (default: engines in this process)."""
    service = Service(config, hosts)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.pool.start()
        sweeper = asyncio.create_task(_sweep(service))
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.to_thread(service.pool.stop, STOP_SECONDS)
            service.jobs.close()

    routes = [Route("/", page), Route("/healthz", healthz), Route("/readyz", readyz)]
    routes += [Route("/metrics", metrics), Route("/v1/info", info)]
    for route in TASKS:
        routes.append(Route(f"/v1/{route}", _restore_route(route), methods=["POST"]))
        routes.append(Route(f"/v1/jobs/{route}", _job_route(route), methods=["POST"]))
    routes.append(Route("/v1/jobs/{job_id}", job_status, methods=["GET", "DELETE"]))
    routes.append(Route("/v1/jobs/{job_id}/result", job_result))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_allowed},
    )
    app.state.service = service
    return app


async def _sweep(service: Service) -> None:
    """Forget expired jobs now and then (also done on every job call)."""
    while True:
        await asyncio.sleep(max(1.0, service.config.job_ttl / 10))
        service.jobs.expire()


def run_server(config: ServeConfig) -> None:
    """Serve until SIGTERM / Ctrl-C: uvicorn stops accepting, waits up to
    ``config.shutdown_seconds`` for the requests in flight, then the lifespan ends and this
    returns (the process exits 0)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    limit_malloc_arenas()
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            lifespan="on",
            timeout_graceful_shutdown=config.shutdown_seconds,
            log_level="info",
        )
    )
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM / SIGINT, then re-raises the signal with
        # the handlers it found: these make that a normal exit (status 0), not a kill.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _after_graceful_shutdown)
    server.run()


#: glibc malloc arenas the server may use. By default glibc gives every thread that
#: allocates its own arena (up to 8 per core), so a server whose request threads come and go
#: grows by tens of MB before it levels off: measured with `benchmarks/serve_load.py` (8
#: clients x 25 requests, 512x512 x2 fast, one worker, 2-core EPYC), RSS after the run was
#: 10.3% above RSS after the first 10 requests (412 -> 455 MB; 455 MB after 480 requests too)
#: with the default, 0.3% (351 -> 352 MB) with two arenas, at the same throughput.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (before the worker threads start); False where the C
    library is not glibc or refuses. `MALLOC_ARENA_MAX` in the environment takes precedence."""
    import ctypes
    import ctypes.util
    import os

    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        return False


def _after_graceful_shutdown(sig: int, frame: object) -> None:
    log.info("stopped on %s", signal.Signals(sig).name)
