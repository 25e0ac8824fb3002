"""`python -m scn_deploy.cli ...` runs the `scn` command line."""

from scn_deploy.cli import app

app()
