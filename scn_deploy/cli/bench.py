"""`scn bench`: how fast a model runs here, against this machine's measured GEMM peak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from scn_deploy.cli.app import app, err, fail, out, parse_hw
from scn_deploy.cli.restoring import Engine
from scn_deploy.errors import ConfigError, ScnError


@app.command("bench")
def bench_command(
    model: Annotated[
        str, typer.Option(help="Zoo name, model file (.safetensors) or exported .onnx.")
    ] = "sr-x2",
    engine: Annotated[
        Engine, typer.Option(help="Inference engine: auto, torch, onnx or tensorrt.")
    ] = Engine.auto,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    precision: Annotated[
        str,
        typer.Option(
            help="fp32; fp16 (GPU, or an fp16 ONNX); bf16 (torch); int8 (the ONNX made by "
            "`scn export --int8`)."
        ),
    ] = "fp32",
    tile: Annotated[int, typer.Option(help="Input tile side in pixels.")] = 256,
    batch: Annotated[int, typer.Option(help="Tiles per forward pass.")] = 1,
    size: Annotated[
        str | None,
        typer.Option(
            help="Also restore a whole synthetic HxW image through the tiler (end to end)."
        ),
    ] = None,
    repeat: Annotated[int, typer.Option(help="Timed runs (median reported).")] = 5,
    scales: Annotated[
        int | None, typer.Option(help="Pyramid scales (default: as trained).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json-file", help="Also write the JSON object to this file.")
    ] = None,
) -> None:
    """Measure output megapixels/s, ms per tile, peak memory and GFLOP/s vs the GEMM peak."""
    from scn_deploy.bench import BenchRequest, run_bench

    request = BenchRequest(
        model=model,
        engine=engine.value,
        device=device,
        precision=precision,
        tile=tile,
        batch=batch,
        size=parse_hw(size, "--size"),
        repeat=repeat,
        scales=scales,
    )
    try:
        result = run_bench(request)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except ScnError as exc:
        raise fail(str(exc)) from None
    doc = result.to_dict()
    if json_file is not None:
        from scn_deploy.atomic import atomic_write

        atomic_write(json_file, (json.dumps(doc, indent=2) + "\n").encode())
    if as_json:
        print(json.dumps(doc))
        return
    table = Table(title=f"{Path(result.model).name}: {result.engine} on {result.host}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("precision / scales", f"{result.precision} / {result.scales}"),
        ("tile x batch", f"{result.tile} x {result.batch}"),
        ("output MP/s", f"{result.mp_per_s:.3f}"),
        ("ms per tile", f"{result.ms_per_tile:.1f}"),
        ("peak RSS", f"{result.peak_rss_mb:.0f} MiB"),
    ]
    if result.gflops is not None:
        rows.append(("network GFLOP/s", f"{result.gflops:.1f}"))
    gemm = ", ".join(f"{k} {v:.1f}" for k, v in result.gemm_by_library.items() if k != "peak")
    rows.append(("fp32 GEMM peak GFLOP/s", f"{result.gemm_peak_gflops:.1f} ({gemm})"))
    if result.fraction_of_peak is not None:
        rows.append(("fraction of peak", f"{100 * result.fraction_of_peak:.0f}%"))
    if result.image:
        im = result.image
        rows.append(
            (
                f"whole {im['size'][0]}x{im['size'][1]} image",
                f"{im['seconds']:.2f} s, {im['tiles']} tiles, {im['mp_per_s']:.3f} MP/s",
            )
        )
    for key, value in rows:
        table.add_row(key, value)
    err.print(table)
    out.print(f"{result.mp_per_s:.3f} MP/s", highlight=False)
