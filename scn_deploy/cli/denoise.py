"""`scn denoise`: Gaussian denoising of image files and folders."""

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
def denoise(
    common: Common,
    sigma: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=255.0,
            help="Noise standard deviation in 0-255 grey levels. Any value for a conditioned "
            "model (outside its trained range it extrapolates, with a warning); a fixed-sigma "
            "model runs at its own sigma.",
        ),
    ] = None,
    fast: RestorationFast = False,
) -> None:
    """Remove Gaussian noise of a given sigma from images and videos with an SCN denoising
    model."""
    path, spec = load_spec(common.model, "denoise", 1, quiet=common.quiet, fast=fast)
    level = check_level(spec, sigma)
    execute(common, task="denoise", model_path=path, level=level, fast=fast)
