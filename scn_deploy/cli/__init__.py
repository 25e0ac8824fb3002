"""The `scn` command line. Each command lives in its own module and registers on `app`."""

from scn_deploy.cli import (  # noqa: F401  (registers the commands)
    bench,
    deblock,
    denoise,
    eval,
    export,
    info,
    models,
    serve,
    train,
    upscale,
)
from scn_deploy.cli.app import app

__all__ = ["app"]
