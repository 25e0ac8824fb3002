"""`scn models`: what the model zoo holds."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from scn_deploy.cli.app import app, fail, out
from scn_deploy.errors import ScnError


def _level_suffix(doc: dict[str, Any]) -> str:
    """ " sigma 25" / " q10" for restoration results (a conditioned model has many levels)."""
    if isinstance(doc.get("sigma"), int | float):
        return f" sigma {doc['sigma']:g}"
    if isinstance(doc.get("quality"), int | float):
        return f" q{doc['quality']:g}"
    if isinstance(doc.get("jpeg"), int | float):  # SR of JPEG inputs
        return f" JPEG q{doc['jpeg']:g}"
    return ""


def _benchmarks(results: Any) -> dict[str, float]:
    """Benchmark PSNRs in a model's results JSON: `scn eval --json` documents (one, or a
    list of them: "results": [{"dataset", "psnr_y", ...}]) or any {"<dataset>": {"psnr..."}}
    mapping."""
    found: dict[str, float] = {}
    docs = results if isinstance(results, list) else [results]
    if isinstance(results, dict) and isinstance(results.get("evaluations"), list):
        # A zoo card's results (benchmarks/zoo_card.py): the headline is the first plain
        # evaluation of the model itself (no TTA; not int8, bicubic or other scales), or for
        # an SR model of JPEG inputs the first of the JPEG path it served.
        name = results.get("name")
        plain = [
            e
            for e in results["evaluations"]
            if isinstance(e, dict)
            and not e.get("tta")
            and (e.get("model") == name or e.get("jpeg_model") == name)
        ]
        docs = plain[:1]
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        for row in doc.get("results", []) if isinstance(doc.get("results"), list) else []:
            if isinstance(row, dict) and isinstance(row.get("psnr_y"), int | float):
                name = str(row.get("dataset", "?")) + (" colour" if doc.get("colour") else "")
                found[name + _level_suffix(doc)] = float(row["psnr_y"])
        for key, value in doc.items():
            if isinstance(value, dict):
                psnr = next(
                    (
                        v
                        for k, v in value.items()
                        if "psnr" in k.lower() and isinstance(v, int | float)
                    ),
                    None,
                )
                if psnr is not None:
                    found.setdefault(str(key), float(psnr))
    return found


def _setting(spec: Any) -> str:
    task = spec.task
    if task.upscales:
        return f"x{spec.scale}"
    if spec.level_range is not None:
        return f"{task.level_name} {spec.level_range[0]:g}-{spec.level_range[1]:g}"
    fixed = task.fixed_level(spec)
    return f"{task.level_name} {fixed:g}" if fixed is not None else "-"


@app.command()
def models(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON list of the zoo's models.")
    ] = False,
) -> None:
    """List the installed zoo models: task, scale / sigma / quality, tier (fast or standard),
    cost (GFLOP per output MP), measured speed and benchmark PSNR."""
    from scn_deploy.paths import models_dir
    from scn_deploy.zoo import list_zoo, tier_of

    try:
        entries = list_zoo()
    except ScnError as exc:
        raise fail(str(exc)) from None
    rows = [
        {
            "name": e.name,
            "task": e.spec.task.name,
            "setting": _setting(e.spec),
            "channels": e.spec.channels,
            "preset": e.spec.preset,
            "tier": tier_of(e.spec),
            "gflop_per_output_mp": e.results.get("gflop_per_output_mp"),
            "speed": e.results.get("speed"),
            "path": str(e.path),
            "psnr": _benchmarks(e.results),
        }
        for e in entries
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if not rows:
        out.print(f"no zoo models installed in {models_dir()} (use --model FILE)", markup=False)
        return
    hosts = sorted({row["speed"]["host"] for row in rows if row["speed"]})
    table = Table(
        title=escape(f"model zoo ({models_dir()})"),
        caption=escape(
            "GFLOP: convolution GFLOP per output megapixel. MP/s: output megapixels per second "
            f"measured by `scn bench` (256x256 tiles) on {', '.join(hosts) or 'no recorded CPU'}"
            "; `scn bench --model NAME` measures it here."
        ),
    )
    columns = ("name", "task", "setting", "tier", "GFLOP", "MP/s", "benchmark PSNR-Y (dB)")
    for column in columns:
        table.add_column(column, justify="right" if column in ("GFLOP", "MP/s") else "left")
    for row in rows:
        psnr = ", ".join(f"{k} {v:.2f}" for k, v in row["psnr"].items()) or "-"
        gflop = row["gflop_per_output_mp"]
        speed = row["speed"]
        table.add_row(
            row["name"],
            row["task"],
            row["setting"] + (" (gray)" if row["channels"] == 1 else ""),
            row["tier"] if row["tier"] == row["preset"] else f"{row['tier']} ({row['preset']})",
            f"{gflop:.0f}" if gflop is not None else "-",
            f"{speed['mp_per_s']:.2f} ({speed['engine']} {speed['precision']})" if speed else "-",
            escape(psnr),
        )
    out.print(table)
