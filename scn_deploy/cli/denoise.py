"""`scn denoise`: Gaussian denoising of image files and folders."""

from __future__ import annotations

from typing import Annotated

import typer

from scn_deploy.cli.app import app
from scn_deploy.cli.restoring import (
    Actors,
    Address,
    AsJson,
    Batch,
    Cluster,
    ClusterOpt,
    Common,
    Device,
    DryRun,
    Engine,
    EngineOpt,
    FormatOpt,
    Fp16,
    Inputs,
    JpegQuality,
    MaxPixels,
    Model,
    NumGpus,
    Out,
    Overwrite,
    Precision,
    PrecisionOpt,
    Quiet,
    Recursive,
    RestorationFast,
    Scales,
    Suffix,
    Tile,
    TileMemory,
    TileOverlap,
    Tta,
    check_level,
    execute,
    load_spec,
)
from scn_deploy.imageio import DEFAULT_MAX_PIXELS


@app.command()
def denoise(
    inputs: Inputs,
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
    out: Out = None,
    model: Model = None,
    tile: Tile = "auto",
    tile_overlap: TileOverlap = None,
    tile_memory: TileMemory = None,
    batch: Batch = 1,
    engine: EngineOpt = Engine.auto,
    device: Device = "auto",
    fp16: Fp16 = False,
    precision: PrecisionOpt = Precision.auto,
    scales: Scales = None,
    tta: Tta = False,
    recursive: Recursive = False,
    suffix: Suffix = None,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQuality = 95,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    cluster: ClusterOpt = Cluster.local,
    address: Address = None,
    num_gpus: NumGpus = 0.0,
    actors: Actors = None,
    fast: RestorationFast = False,
) -> None:
    """Remove Gaussian noise of a given sigma with an SCN denoising model."""
    path, spec = load_spec(model, "denoise", 1, quiet=quiet, fast=fast)
    level = check_level(spec, sigma)
    common = Common.pick(locals())
    execute(common, task="denoise", model_path=path, level=level)
