"""The `scn` command line: a thin layer over the library.

Commands declare options and call one library function each; library code raises
`ScnError` subclasses and only this module turns them into messages and exit codes
(1: a failure with the input/model/data, 2: a usage error).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scn_deploy import __version__
from scn_deploy.errors import ScnError

app = typer.Typer(
    name="scn",
    help="Scale-wise Convolution (SCN) image restoration: super-resolution, denoising, "
    "JPEG deblocking, evaluation, training and export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console()


class Task(StrEnum):
    sr = "sr"
    denoise = "denoise"
    deblock = "deblock"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"scn-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """scn: restore images with scale-wise convolutional networks."""


@app.command()
def info(
    model: Annotated[
        Path | None, typer.Argument(help="A model file (.safetensors). Omit with --preset.")
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Describe an untrained network of this preset (tiny, small, base, paper)."
        ),
    ] = None,
    task: Annotated[Task, typer.Option(help="Task of the preset network.")] = Task.sr,
    scale: Annotated[int, typer.Option(help="Upscaling factor for --task sr (2, 3 or 4).")] = 2,
    channels: Annotated[int, typer.Option(help="Image channels: 1 (gray) or 3 (RGB).")] = 3,
    num_scales: Annotated[
        int | None,
        typer.Option(
            help="Pyramid scales: the network's for --preset (default 3); for a model "
            "file, the number to report FLOPs for (default: as trained)."
        ),
    ] = None,
    scale_ratio: Annotated[float, typer.Option(help="Pyramid scale ratio for --preset.")] = 0.5,
    conditioned: Annotated[
        bool, typer.Option(help="Preset with a noise-level/quality input channel.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (params, flops_per_mp, config).")
    ] = False,
) -> None:
    """Show a model's configuration, parameter count and FLOPs per output megapixel."""
    from scn_deploy.info import summarize_file, summarize_spec

    if (model is None) == (preset is None):
        raise fail("give either a MODEL file or --preset NAME", 2)
    try:
        if model is not None:
            summary = summarize_file(model, num_scales)
        else:
            from scn_deploy.arch.presets import preset_spec

            level_range = None
            if conditioned:
                level_range = (0.0, 75.0) if task == Task.denoise else (10.0, 90.0)
            spec = preset_spec(
                preset or "",
                task=task.value,
                scale=scale,
                channels=channels,
                num_scales=num_scales or 3,
                scale_ratio=scale_ratio,
                level_range=level_range,
            )
            summary = summarize_spec(spec)
    except ScnError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(summary.to_dict()) + "\n")
        return
    spec = summary.spec
    table = Table(title=f"{summary.source}: {spec.describe()}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("parameters", f"{summary.params:,}")
    flops = summary.flops_per_mp
    table.add_row(
        f"GFLOP / output MP ({summary.num_scales} scales)",
        f"{flops / 1e9:,.1f}" if flops is not None else "n/a (install scn-deploy[torch])",
    )
    table.add_row("preset", str(spec.preset))
    for key, value in spec.arch.to_dict().items():
        table.add_row(key, str(value))
    if spec.sigma is not None:
        table.add_row("sigma", f"{spec.sigma:g}")
    if spec.quality is not None:
        table.add_row("quality", str(spec.quality))
    if spec.level_range is not None:
        table.add_row("level range", f"{spec.level_range[0]:g}-{spec.level_range[1]:g}")
    for key, value in spec.training.items():
        table.add_row(f"training.{key}", str(value))
    table.add_row("written by", f"scn-deploy {spec.version}")
    out.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
