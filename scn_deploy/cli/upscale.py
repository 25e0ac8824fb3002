"""`scn upscale`: super-resolution of image files and folders."""

from __future__ import annotations

from typing import Annotated

import typer

from scn_deploy.cli.app import app, fail
from scn_deploy.cli.restoring import Common, execute, load_spec, restoration_command


@app.command()
@restoration_command
def upscale(
    common: Common,
    scale: Annotated[
        int | None,
        typer.Option(
            help="Upscaling factor 2, 3 or 4 (default: the --model's, else 4 from the zoo)."
        ),
    ] = None,
    outscale: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Final scale of the output, resized (bicubic, or area when shrinking) from "
            "the model's output, e.g. 3.5 with an x4 model.",
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Use the fast tier's model for the scale (sr-x2-fast, sr-x3-fast, sr-x4-fast: "
            "about 1/8 of the default models' compute, a few tenths of a dB lower; see "
            "`scn models`). Not with --model.",
        ),
    ] = False,
    deblock: Annotated[
        str,
        typer.Option(
            help="JPEG inputs: auto (remove the compression of JPEG files first, with the "
            "zoo's deblocking model at the quality estimated from the file's tables; lossless "
            "inputs are unchanged), off (upscale as they are), or a quality 1-100 applied to "
            "every input (e.g. a PNG that was once a JPEG) and every video frame (auto leaves "
            "videos as they are). Reported per file and in --json.",
        ),
    ] = "auto",
) -> None:
    """Upscale images and videos x2/x3/x4 with an SCN super-resolution model (alpha upscaled
    bicubic; videos keep their timestamps, audio, subtitles and colour tags)."""
    if scale is not None and scale not in (2, 3, 4):
        raise fail(f"--scale must be 2, 3 or 4, got {scale}", 2)
    path, spec = load_spec(common.model, "sr", scale or 4, quiet=common.quiet, fast=fast)
    if scale is not None and spec.scale != scale:
        raise fail(
            f"{path} upscales x{spec.scale}, not x{scale} (drop --scale or pick another model)", 2
        )
    from scn_deploy.errors import ConfigError
    from scn_deploy.jpeg_input import DeblockSetting

    try:
        setting = DeblockSetting.parse(deblock)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    execute(
        common,
        task="sr",
        model_path=path,
        outscale=outscale,
        deblock=str(setting),
        fast=fast,
    )
