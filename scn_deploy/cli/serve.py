"""`scn serve`: restoration as an HTTP service with a web page (`scn_deploy.serve`)."""

from __future__ import annotations

from typing import Annotated

import typer

from scn_deploy.cli.app import app, err, fail
from scn_deploy.cli.restoring import (
    Address,
    Cluster,
    Device,
    Engine,
    EngineOpt,
    MaxPixels,
    Precision,
    PrecisionOpt,
    Tile,
    check_device,
    parse_tile,
    precision_of,
)
from scn_deploy.serve.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_SERVE_MAX_PIXELS


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. The default serves this machine only; 0.0.0.0 "
            "serves the network (set --token then)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="SCN_TOKEN",
            help="Require 'Authorization: Bearer TOKEN' on every call except /, /healthz and "
            "/readyz (401 without it). Prefer the SCN_TOKEN environment variable: a command "
            "line is visible to other users.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker threads, each with its own engines; the cores are divided between "
            "them. Default: one per core, at most 4.",
        ),
    ] = None,
    queue: Annotated[
        int,
        typer.Option(
            min=1, help="Requests and jobs waiting for a worker; beyond, 429 with Retry-After."
        ),
    ] = 16,
    max_pixels: MaxPixels = DEFAULT_SERVE_MAX_PIXELS,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body in bytes (413 above).")
    ] = DEFAULT_MAX_BODY_BYTES,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Serve the fast tier's models to requests that do not say fast=true|false "
            "(and load those at start).",
        ),
    ] = False,
    engine: EngineOpt = Engine.auto,
    device: Device = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: Tile = "auto",
    timeout_margin: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="A request is cancelled (504) when, counted from its first tile (which may "
            "compile for a new shape), it takes this many times its expected seconds: its "
            "output megapixels x the model's measured seconds per megapixel, plus the model's "
            "measured overhead.",
        ),
    ] = 10.0,
    job_ttl: Annotated[
        float,
        typer.Option(min=1.0, help="Seconds a finished job and its result are kept."),
    ] = 600.0,
    cluster: Annotated[
        Cluster,
        typer.Option(
            "--cluster",
            help="local (engines in this process) or ray: the same service as a Ray Serve "
            "application whose engine replicas hold the models (pip install "
            "'scn-deploy[ray]').",
        ),
    ] = Cluster.local,
    address: Address = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Engine replicas with --cluster ray (default: the cluster's CPUs / "
            "--cpus-per-replica). --workers does not apply: one worker per replica.",
        ),
    ] = None,
    cpus_per_replica: Annotated[
        int,
        typer.Option(min=1, help="CPU threads (and Ray CPUs) of each engine replica."),
    ] = 2,
    gpus_per_replica: Annotated[
        float, typer.Option(min=0, help="GPUs each engine replica reserves (--cluster ray).")
    ] = 0.0,
) -> None:
    """Serve upscale, denoise and deblock over HTTP (POST /v1/upscale?scale=2 ...), with
    jobs for large images, /healthz, /readyz, /metrics and a web page at /. The models load
    once at start; SIGTERM finishes the requests in flight and exits 0. See docs/serve.md."""
    from scn_deploy.engines.options import EngineOptions
    from scn_deploy.errors import ScnError
    from scn_deploy.restorer import RestoreOptions
    from scn_deploy.serve import ServeConfig
    from scn_deploy.serve import serve as run_service
    from scn_deploy.serve.config import default_workers

    check_device(device)
    if cluster == Cluster.local and (address or replicas or gpus_per_replica):
        raise fail("--address, --replicas and --gpus-per-replica need --cluster ray", 2)
    if cluster == Cluster.ray and workers is not None:
        raise fail("--workers does not apply with --cluster ray: give --replicas", 2)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        message = f"scn serve needs the serve extra ({exc}): pip install 'scn-deploy[serve]'"
        raise fail(message, 2) from None
    tile_size = parse_tile(tile)
    config = ServeConfig(
        host=host,
        port=port,
        token=token or None,
        workers=workers or default_workers(),
        queue=queue,
        max_pixels=max_pixels or None,
        max_body_bytes=max_body_bytes,
        fast=fast,
        timeout_margin=timeout_margin,
        job_ttl=job_ttl,
        engine=EngineOptions(
            engine=engine.value,
            device=device,
            precision=precision_of(precision, False),
            tile=tile_size if isinstance(tile_size, int) and tile_size > 0 else None,
        ),
        restore=RestoreOptions(tile=tile_size, extrapolate_level=True),
    )
    if host not in ("127.0.0.1", "localhost", "::1") and not config.token:
        err.print(f"warning: serving {host} without --token: anyone who can reach it may use it")
    try:
        if cluster == Cluster.ray:
            from scn_deploy.serve.ray_serve import RayServeOptions, serve_on_ray

            options = RayServeOptions(address, replicas, cpus_per_replica, gpus_per_replica)
            serve_on_ray(config, options)
        else:
            run_service(config)
    except ScnError as exc:
        raise fail(str(exc)) from None
