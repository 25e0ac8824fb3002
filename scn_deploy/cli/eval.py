"""`scn eval`: benchmark a model (or a baseline) with the published protocols."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from scn_deploy.cli.app import TaskName, app, choices, err, fail, out
from scn_deploy.cli.restoring import Device, Engine, EngineOpt, Precision, PrecisionOpt
from scn_deploy.errors import ScnError
from scn_deploy.tasks import TASKS

#: The baselines of every task (`Task.baselines`).
Method = choices("Method", dict.fromkeys(m for t in TASKS.values() for m in t.baselines))


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


@app.command("eval")
def eval_command(
    data: Annotated[
        list[Path],
        typer.Option(
            help="Folder of clean reference images, one dataset (repeatable). A bare "
            "benchmark name such as Set5 is looked up under the data root.",
        ),
    ],
    task: Annotated[TaskName, typer.Option(help="What to evaluate: sr, denoise or deblock.")],
    model: Annotated[
        str | None,
        typer.Option(help="Model file (.safetensors / .onnx) or zoo name. Or use --method."),
    ] = None,
    method: Annotated[
        Method | None,
        typer.Option(
            help="Baseline instead of a model: bicubic (sr: MATLAB imresize of the LR), "
            "identity (denoise/deblock: score the degraded input) or bm3d (denoise: BM3D / "
            "CBM3D told the true sigma; pip install 'scn-deploy[baselines]')."
        ),
    ] = None,
    scale: Annotated[int | None, typer.Option(help="SR factor (2, 3, 4); for --task sr.")] = None,
    sigma: Annotated[
        float | None, typer.Option(help="Gaussian noise sigma in 0-255 units; for --task denoise.")
    ] = None,
    quality: Annotated[
        int | None, typer.Option(help="JPEG quality 1-100; for --task deblock.")
    ] = None,
    scales: Annotated[
        int | None, typer.Option(help="Pyramid scales to run the model with (default: as trained).")
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="x8 self-ensemble (flips and rotations, averaged).")
    ] = False,
    colour: Annotated[
        bool,
        typer.Option(
            "--colour",
            help="deblock: the colour JPEG protocol (encode the RGB image with 4:2:0 chroma, "
            "restore in colour, report Y and RGB PSNR) instead of the Y-channel one.",
        ),
    ] = False,
    jpeg: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=100,
            help="sr: JPEG-code each bicubic LR image in colour (OpenCV, 4:2:0 chroma) at this "
            "quality before upscaling (the compressed-input protocol).",
        ),
    ] = None,
    deblock: Annotated[
        str,
        typer.Option(
            help="sr with --jpeg, a model: as `scn upscale --deblock`: auto (the zoo's "
            "deblocking model at the JPEG's quality first), off, or a quality Q.",
        ),
    ] = "auto",
    jpeg_model: Annotated[
        bool,
        typer.Option(
            "--jpeg-model",
            help="sr with --jpeg: upscale with the zoo's SR model for JPEG inputs (sr-xN-jpeg) "
            "where it serves the quality, as `scn upscale` does with the zoo's default model.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")
    ] = False,
    json_file: Annotated[
        Path | None,
        typer.Option("--json-file", help="Also write the results as JSON to this file."),
    ] = None,
    save_images: Annotated[
        Path | None,
        typer.Option(help="Write the restored images as PNG to DIR/<dataset>/<name>.png."),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(
            help="Folder of given degraded inputs, matched to the references by file name "
            "(stem); DIR/<dataset>/ is used when it exists. Replaces the synthetic degradation."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Noise seed for --task denoise (image i uses seed + i).")
    ] = 0,
    engine: EngineOpt = Engine.auto,
    device: Device = "auto",
    precision: PrecisionOpt = Precision.auto,
) -> None:
    """Evaluate a model or a baseline on benchmark folders: PSNR / SSIM per dataset."""
    from scn_deploy.engines.options import EngineOptions
    from scn_deploy.evaluate import EvalRequest, RequestError, evaluate, request_level, write_json
    from scn_deploy.tasks import task_named

    kind = task_named(task.value)
    try:
        level = request_level(kind, {"scale": scale, "sigma": sigma, "quality": quality})
    except RequestError as exc:
        raise fail(str(exc), 2) from None
    request = EvalRequest(
        data=list(data),
        task=kind,
        level=level,
        model=model,
        method=method.value if method is not None else None,
        tta=tta,
        colour=colour,
        jpeg=jpeg,
        deblock=deblock,
        jpeg_model=jpeg_model,
        inputs=inputs,
        save_images=save_images,
        seed=seed,
        engine=EngineOptions(
            engine=engine.value,
            device=device,
            precision=None if precision == Precision.auto else precision.value,
            num_scales=scales,
        ),
    )
    try:
        request.validate()
    except RequestError as exc:
        raise fail(str(exc), 2) from None

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=True) as bar:
        jobs: dict[str, int] = {}

        def report(dataset: str, done: int, total: int) -> None:
            if dataset not in jobs:
                jobs[dataset] = bar.add_task(dataset, total=total)
            bar.update(jobs[dataset], completed=done)

        try:
            result = evaluate(request, progress=report)
        except RequestError as exc:
            raise fail(str(exc), 2) from None
        except ScnError as exc:
            raise fail(str(exc)) from None

    what = result.model if result.model is not None else result.method
    extra = []
    if result.scales is not None:
        extra.append(f"{result.scales} scales")
    if result.tta:
        extra.append("x8 TTA")
    if result.colour:
        extra.append("colour JPEG")
    if result.jpeg is not None:
        extra.append(f"JPEG q{result.jpeg} LR")
    if result.deblock is not None:
        extra.append(f"deblock {result.deblock}")
    title = f"{result.task.name} {result.task.level_text(result.level)}, {what}"
    if extra:
        title += f" ({', '.join(extra)})"
    table = Table(title=escape(title))
    table.add_column("dataset", style="bold")
    table.add_column("images", justify="right")
    table.add_column("PSNR-Y", justify="right")
    table.add_column("SSIM-Y", justify="right")
    table.add_column("PSNR-RGB", justify="right")
    table.add_column("seconds", justify="right")
    for r in result.results:
        table.add_row(
            r.dataset,
            str(r.images),
            _fmt(r.psnr_y, 2),
            _fmt(r.ssim_y, 4),
            _fmt(r.psnr_rgb, 2),
            f"{r.seconds:.1f}",
        )
    if json_file is not None:
        try:
            write_json(result, json_file)
        except ScnError as exc:
            raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        out.print(table)
