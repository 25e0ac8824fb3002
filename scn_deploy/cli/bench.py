"""`scn bench`: how fast a model runs here, against this machine's measured GEMM peak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from scn_deploy.cli.app import app, err, fail, out, parse_hw
from scn_deploy.cli.restoring import Device, Engine, EngineOpt, Precision, PrecisionOpt
from scn_deploy.errors import ConfigError, ScnError


@app.command("bench")
def bench_command(
    model: Annotated[
        str, typer.Option(help="Zoo name, model file (.safetensors) or exported .onnx.")
    ] = "sr-x2",
    engine: EngineOpt = Engine.auto,
    device: Device = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: Annotated[int, typer.Option(help="Input tile side in pixels.")] = 256,
    batch: Annotated[int, typer.Option(help="Tiles per forward pass.")] = 1,
    size: Annotated[
        str | None,
        typer.Option(
            help="Also restore a whole synthetic HxW image as `scn upscale` does by default "
            "(tile auto, overlap, stitching; no file I/O) and report its MP/s."
        ),
    ] = None,
    repeat: Annotated[int, typer.Option(help="Timed runs (median reported).")] = 5,
    scales: Annotated[
        int | None, typer.Option(help="Pyramid scales (default: as trained).")
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Bench every installed engine x precision side by side (MP/s, ratio to ONNX "
            "Runtime fp32, fraction of the fp32 GEMM peak, Set5 PSNR-Y change for SR models "
            "when the benchmark data is present).",
        ),
    ] = False,
    versus: Annotated[
        str | None,
        typer.Option(
            "--vs",
            help="Also bench this model (zoo name or file) the same way in the same run and "
            "report the speed ratio, e.g. --model sr-x2-fast --vs sr-x2.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json-file", help="Also write the JSON object to this file.")
    ] = None,
) -> None:
    """Measure output megapixels/s, ms per tile, peak memory and GFLOP/s vs the GEMM peak."""
    from scn_deploy.bench import BenchRequest, BenchResult, run_bench
    from scn_deploy.engines.options import EngineOptions

    request = BenchRequest(
        model=model,
        engine=EngineOptions(
            engine=engine.value,
            device=device,
            precision=None if precision == Precision.auto else precision.value,
            num_scales=scales,
        ),
        tile=tile,
        batch=batch,
        size=parse_hw(size, "--size"),
        repeat=repeat,
    )
    if compare and versus:
        raise fail("--compare and --vs are separate reports: give one", 2)
    if versus:
        from scn_deploy.bench import bench_versus

        _print_versus(_emit(lambda r: bench_versus(r, versus), request, as_json, json_file))
        return
    if compare:
        from scn_deploy.bench import compare_engines

        _print_comparison(_emit(compare_engines, request, as_json, json_file))
        return
    doc = _emit(lambda r: run_bench(r).to_dict(), request, as_json, json_file)
    if doc is None:
        return
    result = BenchResult(**doc)
    table = Table(title=escape(f"{Path(result.model).name}: {result.engine} on {result.host}"))
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("precision / scales", f"{result.precision} / {result.scales}"),
        ("tile x batch", f"{result.tile} x {result.batch}"),
        ("output MP/s", f"{result.mp_per_s:.3f}"),
        ("ms per tile", f"{result.ms_per_tile:.1f}"),
        ("peak host RSS", f"{result.peak_rss_mb:.0f} MiB"),
    ]
    for key, value in (result.gpu_memory_mb or {}).items():
        rows.append((f"GPU memory ({key.replace('_', ' ')})", f"{value:.0f} MiB"))
    if result.gflops is not None:
        rows.append(("network GFLOP/s", f"{result.gflops:.1f}"))
    gemm = ", ".join(f"{k} {v:.1f}" for k, v in result.gemm_by_library.items() if k != "peak")
    if result.gemm_peak_gflops is not None:
        rows.append(
            (
                f"{result.gemm_arithmetic} GEMM peak GFLOP/s",
                f"{result.gemm_peak_gflops:.1f} ({gemm})",
            )
        )
    if result.fraction_of_peak is not None:
        rows.append(("fraction of peak", f"{100 * result.fraction_of_peak:.0f}%"))
    if result.image:
        im = result.image
        rows.append(
            (
                f"whole {im['size'][0]}x{im['size'][1]} image",
                f"{im['seconds']:.2f} s, {im['plan']}, {im['mp_per_s']:.3f} MP/s "
                f"({im['mp_per_s'] / result.mp_per_s:.2f} of the tile figure)",
            )
        )
    for key, value in rows:
        table.add_row(key, value)
    err.print(table)
    out.print(f"{result.mp_per_s:.3f} MP/s", highlight=False)


def _emit(measure, request, as_json: bool, json_file: Path | None) -> dict | None:
    """Run `measure(request)` -> JSON document; write it to `json_file`, print it with
    `as_json` (then None: nothing more to show), else return it for a table."""
    try:
        doc = measure(request)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except ScnError as exc:
        raise fail(str(exc)) from None
    if json_file is not None:
        from scn_deploy.atomic import atomic_write

        atomic_write(json_file, (json.dumps(doc, indent=2) + "\n").encode())
    if as_json:
        print(json.dumps(doc))
        return None
    return doc


def _print_comparison(doc: dict | None) -> None:
    if doc is None:
        return
    table = Table(
        title=escape(f"{doc['model']}: tile {doc['tile']} x {doc['batch']} on {doc['host']}"),
        caption=f"ratio: to {doc['baseline']}; Set5 change: PSNR-Y vs {doc['baseline']}",
    )
    for column in ("engine", "precision", "MP/s", "ratio", "of peak", "Set5 PSNR-Y", "change"):
        table.add_column(column, justify="left" if column in ("engine", "precision") else "right")
    for row in doc["rows"]:
        peak = row["fraction_of_peak"]
        psnr = row["set5_psnr_y"]
        delta = row["set5_delta_db"]
        table.add_row(
            row["engine"],
            row["precision"],
            f"{row['mp_per_s']:.3f}",
            f"{row['ratio']:.2f}x",
            f"{100 * peak:.0f}% {row.get('gemm_arithmetic', 'fp32')}" if peak is not None else "-",
            f"{psnr:.3f}" if psnr is not None else "-",
            f"{delta:+.3f}" if delta is not None else "-",
        )
    out.print(table)


def _print_versus(doc: dict | None) -> None:
    if doc is None:
        return
    first, other = doc["rows"]
    table = Table(
        title=escape(f"tile {doc['tile']} x {doc['batch']} on {doc['host']}"),
        caption=escape(
            f"{Path(first['model']).stem} runs {doc['speedup']:.2f}x "
            f"{Path(other['model']).stem}'s speed"
        ),
    )
    for column in ("model", "engine", "precision", "GFLOP / output MP", "MP/s", "ms per tile"):
        table.add_column(column, justify="left" if column in ("model", "engine") else "right")
    for row in doc["rows"]:
        gflop = row["gflop_per_output_mp"]
        table.add_row(
            escape(Path(row["model"]).stem),
            row["engine"],
            row["precision"],
            f"{gflop:.1f}" if gflop is not None else "-",
            f"{row['mp_per_s']:.3f}",
            f"{row['ms_per_tile']:.1f}",
        )
    out.print(table)
    out.print(f"speedup {doc['speedup']:.2f}x", highlight=False)
