"""`scn info`: describe a model (a file or a zoo name) or a preset network."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from scn_deploy.cli.app import TaskName, app, fail, out
from scn_deploy.errors import ConfigError, ScnError


@app.command()
def info(
    model: Annotated[
        str | None,
        typer.Argument(
            help="A model: a zoo name (see `scn models`) or a file (.safetensors). Omit with "
            "--preset."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Describe an untrained network of this preset (tiny, fast, small, base, paper)."
        ),
    ] = None,
    task: Annotated[TaskName, typer.Option(help="Task of the preset network.")] = TaskName("sr"),
    scale: Annotated[int, typer.Option(help="Upscaling factor for --task sr (2, 3 or 4).")] = 2,
    channels: Annotated[int, typer.Option(help="Image channels: 1 (gray) or 3 (RGB).")] = 3,
    num_scales: Annotated[
        int | None,
        typer.Option(
            "--scales",
            "--num-scales",
            help="Pyramid scales: the network's for --preset (default 3); for a model "
            "file, the number to report FLOPs for (default: as trained). --num-scales: old name.",
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
    from scn_deploy.tasks import task_named
    from scn_deploy.zoo import model_path

    if (model is None) == (preset is None):
        raise fail("give either a MODEL (a file or a zoo name) or --preset NAME", 2)
    try:
        if model is not None:
            summary = summarize_file(model_path(model), num_scales)
        else:
            from scn_deploy.arch.presets import preset_spec

            kind = task_named(task.value)
            level_range = kind.conditioned_range if conditioned else None
            if conditioned and level_range is None:
                raise ConfigError(f"{kind.title} models are not conditioned")
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
    table = Table(title=escape(f"{summary.source}: {spec.describe()}"), show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    table.add_row("parameters", f"{summary.params:,}")
    table.add_row(
        f"GFLOP / output MP ({summary.num_scales} scales)", f"{summary.flops_per_mp / 1e9:,.1f}"
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
