"""Turn ``scn eval --json-file`` files into markdown tables, with published numbers beside ours.

One table per task; one column per level (scale / sigma / quality); for every dataset one row
per evaluated model or method, and a "published" row where the literature has numbers. Model
results feed the same tables: evaluate with ``scn eval --model ... --json-file FILE`` and pass the
file here; add the paper's numbers for that model to ``PUBLISHED`` to see them beside it.

Usage::

    python benchmarks/tables.py benchmarks/results/*.json [--no-published] [--merge-sr-zoo]
        [-o FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from scn_deploy.tasks import TASKS

LEVEL_KEYS = {name: task.level_key for name, task in TASKS.items()}
TASK_TITLES = {
    "sr": "Super-resolution (bicubic degradation)",
    "denoise": "Gaussian denoising",
    "deblock": "JPEG deblocking",
}
#: What each cell shows, per task (None values are left out of the cell).
CELL_FIELDS = {
    "sr": ("psnr_y", "ssim_y"),
    "deblock": ("psnr_y", "ssim_y", "psnr_rgb"),
    "denoise": ("psnr_y", "ssim_y", "psnr_rgb"),
}
FIELD_NAMES = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB"}
DATASET_ORDER = (
    "Set5",
    "Set14",
    "B100",
    "Urban100",
    "LIVE1",
    "LIVE1 colour",
    "Classic5",
    "Set12",
    "BSD68",
    "CBSD68",
)

# Published numbers: (task, row label, dataset) -> {level: {field: value}}; a value is a number
# or a string shown as it is (for approximate figures such as "~24.6").
# Bicubic: the SR literature's standard table (e.g. EDSR / RCAN / WDSR papers).
# JPEG input: ARCNN / DnCNN / FBCNN papers (Y channel, q = 10..40).
# Noisy input: 20 log10(255 / sigma), as quoted in denoising papers (~24.6 / 20.2 / 14.2).
Published = dict[tuple[str, str, str], dict[float, dict[str, float | str]]]
PUBLISHED: Published = {
    ("sr", "bicubic", "Set5"): {
        2: {"psnr_y": 33.66, "ssim_y": 0.9299},
        3: {"psnr_y": 30.39, "ssim_y": 0.8682},
        4: {"psnr_y": 28.42, "ssim_y": 0.8104},
    },
    ("sr", "bicubic", "Set14"): {
        2: {"psnr_y": 30.24, "ssim_y": 0.8688},
        3: {"psnr_y": 27.55, "ssim_y": 0.7742},
        4: {"psnr_y": 26.00, "ssim_y": 0.7027},
    },
    ("sr", "bicubic", "B100"): {
        2: {"psnr_y": 29.56, "ssim_y": 0.8431},
        3: {"psnr_y": 27.21, "ssim_y": 0.7385},
        4: {"psnr_y": 25.96, "ssim_y": 0.6675},
    },
    ("deblock", "identity", "LIVE1"): {
        10: {"psnr_y": 27.77},
        20: {"psnr_y": 30.07},
        30: {"psnr_y": 31.41},
        40: {"psnr_y": 32.35},
    },
    ("deblock", "identity", "Classic5"): {
        10: {"psnr_y": 27.82},
        20: {"psnr_y": 30.12},
        30: {"psnr_y": 31.48},
        40: {"psnr_y": 32.43},
    },
    # Colour JPEG input, PSNR over RGB (QGAC, Ehrlich et al. 2020; FBCNN, Jiang et al. 2021).
    ("deblock", "identity", "LIVE1 colour"): {
        10: {"psnr_rgb": 25.69},
        20: {"psnr_rgb": 28.06},
        30: {"psnr_rgb": 29.37},
        40: {"psnr_rgb": 30.28},
    },
    **{
        ("denoise", "identity", name): {
            15: {"psnr_y": "~24.6"},
            25: {"psnr_y": "~20.2"},
            50: {"psnr_y": "~14.2"},
        }
        for name in ("Set12", "BSD68")
    },
}


def _psnr_row(field: str = "psnr_y", **by_level: float) -> dict[float, dict[str, float | str]]:
    return {float(k.lstrip("qsx")): {field: v} for k, v in by_level.items()}


# Other methods' published PSNR (Y / gray), shown under each dataset as reference rows.
# SCN: the paper (Tables 3-5; SR rows are its 64-block DIV2K models). BM3D / DnCNN on BSD68
# and Set12: the DnCNN paper (Zhang et al. 2017, Tables 2-3). ARCNN on LIVE1 / Classic5: the
# DnCNN paper's Table 5. CBM3D / CDnCNN on CBSD68 (RGB PSNR): the DnCNN paper's colour table.
REFERENCES: dict[tuple[str, str], list[tuple[str, dict[float, dict[str, float | str]]]]] = {
    # FSRCNN (trained on 91 + 100 images) and VDSR (on T91 + BSD200, our training set), as
    # tabulated in the SR literature (e.g. the LapSRN and EDSR papers).
    ("sr", "Set5"): [
        ("FSRCNN (published)", _psnr_row(x2=37.05, x3=33.18, x4=30.72)),
        ("VDSR (published)", _psnr_row(x2=37.53, x3=33.66, x4=31.35)),
        ("SCN paper", _psnr_row(x2=38.18, x3=34.60, x4=32.39)),
    ],
    ("sr", "Set14"): [
        ("FSRCNN (published)", _psnr_row(x2=32.66, x3=29.37, x4=27.61)),
        ("VDSR (published)", _psnr_row(x2=33.03, x3=29.77, x4=28.01)),
        ("SCN paper", _psnr_row(x2=33.99, x3=30.50, x4=28.74)),
    ],
    ("sr", "B100"): [
        ("FSRCNN (published)", _psnr_row(x2=31.53, x3=28.53, x4=26.98)),
        ("VDSR (published)", _psnr_row(x2=31.90, x3=28.82, x4=27.29)),
        ("SCN paper", _psnr_row(x2=32.39, x3=29.26, x4=27.69)),
    ],
    ("denoise", "BSD68"): [
        ("BM3D (published)", _psnr_row(s15=31.07, s25=28.57, s50=25.62)),
        ("DnCNN (published)", _psnr_row(s15=31.73, s25=29.23, s50=26.23)),
        ("SCN paper", _psnr_row(s15=31.80, s25=29.31, s50=26.34)),
    ],
    ("denoise", "CBSD68"): [
        ("CBM3D (published, RGB)", _psnr_row("psnr_rgb", s15=33.52, s25=30.71, s50=27.38)),
        ("CDnCNN (published, RGB)", _psnr_row("psnr_rgb", s15=33.89, s25=31.23, s50=27.92)),
    ],
    ("denoise", "Set12"): [
        ("BM3D (published)", _psnr_row(s15=32.37, s25=29.97, s50=26.72)),
        ("DnCNN (published)", _psnr_row(s15=32.86, s25=30.44, s50=27.18)),
        ("SCN paper", _psnr_row(s15=32.99, s25=30.64, s50=27.43)),
    ],
    ("deblock", "LIVE1"): [
        ("ARCNN (published)", _psnr_row(q10=28.98, q20=31.29, q30=32.69, q40=33.63)),
        ("SCN paper", _psnr_row(q10=29.36, q20=31.66, q30=33.04, q40=34.02)),
    ],
    ("deblock", "Classic5"): [
        ("ARCNN (published)", _psnr_row(q10=29.04, q20=31.16, q30=32.52, q40=33.34)),
        ("SCN paper", _psnr_row(q10=29.53, q20=31.72, q30=32.92, q40=33.78)),
    ],
}


def load_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read ``scn eval --json-file`` documents; raises ValueError naming a malformed file."""
    runs = []
    for p in paths:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{p}: cannot read an scn eval JSON file ({exc})") from exc
        task = doc.get("task") if isinstance(doc, dict) else None
        if task not in LEVEL_KEYS or LEVEL_KEYS[task] not in doc or "results" not in doc:
            raise ValueError(f"{p}: not an scn eval JSON file")
        runs.append(doc)
    return runs


def run_label(run: dict[str, Any], *, merge_sr_zoo: bool = False) -> str:
    """Row label of a run: the method, or the model's name with its scales and TTA.

    ``merge_sr_zoo``: the zoo's sr-x2 / sr-x3 / sr-x4 share one row, "sr-xN" (the column
    says which scale, hence which model)."""
    if run.get("model") is None:
        return str(run["method"])
    label = Path(str(run["model"])).name
    for suffix in (".safetensors", ".onnx"):
        label = label.removesuffix(suffix)
    if merge_sr_zoo and run["task"] == "sr" and re.fullmatch(r"sr-x\d+", label):
        label = "sr-xN"
    if run.get("scales") is not None:
        label += f", {run['scales']} scales"
    if run.get("tta"):
        label += ", x8 TTA"
    return label


def dataset_label(run: dict[str, Any], result: dict[str, Any]) -> str:
    """A result's dataset name; "NAME colour" under the colour JPEG protocol (a separate table
    row: its numbers are not comparable with the Y-channel protocol's)."""
    return result["dataset"] + (" colour" if run.get("colour") else "")


def level_header(task: str, level: float) -> str:
    return {"sr": f"x{level:g}", "denoise": f"sigma {level:g}", "deblock": f"q {level:g}"}[task]


def _fmt(field: str, value: float | str) -> str:
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "inf"
    return f"{value:.4f}" if field.startswith("ssim") else f"{value:.2f}"


def _cell(values: dict[str, Any] | None, fields: tuple[str, ...]) -> str:
    """The present fields joined by " / "; a missing leading field shows as "-" (a reference
    with RGB PSNR only reads "- / - / 30.71"), trailing missing ones are left out."""
    if not values:
        return ""
    shown = [_fmt(f, values[f]) if values.get(f) is not None else "-" for f in fields]
    while shown and shown[-1] == "-":
        shown.pop()
    return " / ".join(shown)


def _dataset_key(name: str) -> tuple[int, str]:
    order = DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER)
    return (order, name)


def markdown_tables(
    runs: list[dict[str, Any]],
    published: Published | None = PUBLISHED,
    *,
    merge_sr_zoo: bool = False,
) -> str:
    """Markdown tables, one per task present in ``runs``.

    Rows: for every dataset, one row per run label (method or model) in the order first seen,
    each followed by its "published" row when ``published`` has numbers for it. Columns: the
    levels of that task, ascending. Cells show ``CELL_FIELDS[task]`` joined by " / ".
    Raises ValueError when two runs give the same (label, dataset, level).
    """
    out: list[str] = []
    for task in ("sr", "denoise", "deblock"):
        task_runs = [r for r in runs if r["task"] == task]
        if not task_runs:
            continue
        key = LEVEL_KEYS[task]
        fields = CELL_FIELDS[task]
        cells: dict[tuple[str, str], dict[float, dict[str, Any]]] = {}
        labels: list[str] = []
        datasets: list[str] = []
        levels: set[float] = set()
        for run in task_runs:
            label, level = run_label(run, merge_sr_zoo=merge_sr_zoo), float(run[key])
            levels.add(level)
            if label not in labels:
                labels.append(label)
            for res in run["results"]:
                name = dataset_label(run, res)
                if name not in datasets:
                    datasets.append(name)
                row = cells.setdefault((label, name), {})
                if level in row:
                    raise ValueError(f"two results for {label} on {name} at {key} {level:g}")
                row[level] = res
        columns = sorted(levels)
        what = " / ".join(FIELD_NAMES[f] for f in fields)
        out.append(f"### {TASK_TITLES[task]} ({what})\n")
        out.append(
            "| dataset | method | " + " | ".join(level_header(task, c) for c in columns) + " |"
        )
        out.append("|---|---|" + "---:|" * len(columns))
        for name in sorted(datasets, key=_dataset_key):
            for label in labels:
                row = cells.get((label, name))
                if row is None:
                    continue
                values = [_cell(row.get(c), fields) for c in columns]
                out.append(f"| {name} | {label} | " + " | ".join(values) + " |")
                pub = (published or {}).get((task, label, name))
                if pub:
                    values = [_cell(pub.get(c), fields) or "-" for c in columns]
                    out.append(f"| {name} | {label} (published) | " + " | ".join(values) + " |")
            for ref_label, ref in REFERENCES.get((task, name), []) if published else []:
                values = [_cell(ref.get(c), fields) or "-" for c in columns]
                if any(v != "-" for v in values):
                    out.append(f"| {name} | {ref_label} | " + " | ".join(values) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="scn eval --json-file files")
    parser.add_argument("--no-published", action="store_true", help="omit the published rows")
    parser.add_argument("-o", "--out", help="write the markdown here instead of stdout")
    parser.add_argument(
        "--merge-sr-zoo", action="store_true", help="one row 'sr-xN' for sr-x2, sr-x3, sr-x4"
    )
    args = parser.parse_args(argv)
    try:
        published = None if args.no_published else PUBLISHED
        text = markdown_tables(load_runs(args.files), published, merge_sr_zoo=args.merge_sr_zoo)
    except ValueError as exc:
        print(f"tables: {exc}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
