"""`scn deblock`: JPEG artefact removal of image files and folders."""

from __future__ import annotations

from typing import Annotated

import typer

from scn_deploy.cli.app import app
from scn_deploy.cli.restoring import (
    Common,
    RestorationFast,
    check_level,
    execute,
    load_spec,
    restoration_command,
)


@app.command()
@restoration_command
def deblock(
    common: Common,
    quality: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=100,
            help="JPEG quality the images were saved with (1-100). Omitted: estimated for "
            "each JPEG from its quantisation tables (the estimate is printed); videos need it "
            "(the strength to remove from every frame).",
        ),
    ] = None,
    fast: RestorationFast = False,
) -> None:
    """Remove JPEG blocking and ringing from images (and video frames) with an SCN
    deblocking model."""
    path, spec = load_spec(common.model, "deblock", 1, quiet=common.quiet, fast=fast)
    level = check_level(spec, quality)
    execute(common, task="deblock", model_path=path, level=level, fast=fast)
