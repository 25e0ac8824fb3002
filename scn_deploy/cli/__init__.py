"""The `scn` command line. Each command lives in its own module and registers on `app`."""

from scn_deploy.cli import eval, export, info, train  # noqa: F401  (registers the commands)
from scn_deploy.cli.app import app

__all__ = ["app"]
