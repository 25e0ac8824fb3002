"""`scn serve`: restoration as an HTTP service, with a web page.

Built on Starlette (the ASGI toolkit) served by uvicorn: a small, well-kept stack with few
dependencies (no validation or ORM layers that this API does not need), lifespan hooks that
load the models once and stop the workers cleanly, an in-process test client, and uvicorn's
graceful shutdown on SIGTERM (stop accepting, finish the requests in flight, then exit).

The modules, each small:

- `config`: `ServeConfig`, what `scn serve`'s options set;
- `params`: a request's query parameters checked into `RestorationParams` (4xx errors);
- `restoration`: one request's work, on the library's own decode -> restore -> encode path
  (`scn_deploy.picture_restore`), so a posted image gives the bytes `scn upscale` writes;
- `workers`: the fixed pool of worker threads (each with its own engines) and the bounded
  queue, measured speed, timeouts and cancellation;
- `jobs`: submitted jobs for large inputs (status, progress, ETA, result, expiry);
- `metrics`: the Prometheus text at /metrics;
- `app`: the Starlette routes, the Bearer-token check and the lifespan;
- `page.html`: the self-contained web page at /.
"""

from scn_deploy.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def create_app(config: ServeConfig, hosts=None):
    """The ASGI app for `config` (see `scn_deploy.serve.app`)."""
    from scn_deploy.serve.app import create_app as _create

    return _create(config, hosts)


def serve(config: ServeConfig) -> None:
    """Run the service with uvicorn until SIGTERM / Ctrl-C (see `scn_deploy.serve.app`)."""
    from scn_deploy.serve.app import run_server

    run_server(config)
