"""Speed against quality for every shipped super-resolution model and bicubic: the README chart.

Times each installed SR zoo model with `scn bench` (the default engine and precision, 256x256
tiles) and bicubic upscaling (`scn_deploy.degrade.imresize`, the MATLAB-style bicubic the PSNR
rows use) in one run on this machine, reads each model's Set5 / Set14 PSNR-Y from its card's
results (`models/NAME.json`, written from `scn eval` by benchmarks/zoo_card.py) and bicubic's
from `benchmarks/results/sr-xN-bicubic.json`, and writes:

    benchmarks/results/speed-quality.json   every point, with the CPU and engine
    docs/images/speed-quality.png           Set5 and Set14 PSNR-Y against CPU ms per output MP

Published FSRCNN and VDSR PSNRs (the reference rows of benchmarks/tables.py) are drawn as
horizontal lines: their papers give quality, not a speed on this CPU.

    python benchmarks/speed_quality.py [--repeat 5] [--markdown]   (needs matplotlib: [plots])
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import REFERENCES

from scn_deploy.bench import BenchRequest, host_description, run_bench
from scn_deploy.degrade import imresize
from scn_deploy.engines.options import EngineOptions
from scn_deploy.zoo import list_zoo, tier_of

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = ("Set5", "Set14")
TILE = 256


def model_psnr(results: dict, dataset: str) -> float | None:
    """The card's plain (3-scale, no TTA) PSNR-Y of the model on `dataset`."""
    for run in results.get("evaluations", []):
        if run.get("model") == results.get("name") and not run.get("tta"):
            for row in run["results"]:
                if row["dataset"] == dataset:
                    return float(row["psnr_y"])
    return None


def bicubic_psnr(scale: int, dataset: str) -> float | None:
    path = RESULTS / f"sr-x{scale}-bicubic.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["results"]
    return next((float(r["psnr_y"]) for r in rows if r["dataset"] == dataset), None)


def bicubic_ms_per_mp(scale: int, repeat: int) -> float:
    """Wall ms per output MP of imresize on a TILE x TILE RGB image (best of `repeat`)."""
    image = np.random.default_rng(0).random((TILE, TILE, 3), dtype=np.float32)
    imresize(image, scale=scale)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        imresize(image, scale=scale)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / ((TILE * scale) ** 2 / 1e6)


def measure(repeat: int) -> dict:
    points = []
    models = [e for e in list_zoo() if e.spec.task.upscales]
    for entry in models:
        bench = run_bench(
            BenchRequest(model=entry.name, engine=EngineOptions(device="cpu"), repeat=repeat)
        )
        points.append(
            {
                "name": entry.name,
                "scale": entry.spec.scale,
                "tier": tier_of(entry.spec),
                "engine": bench.engine,
                "precision": bench.precision,
                "gflop_per_output_mp": bench.gflop_per_output_mp,
                "ms_per_output_mp": 1000.0 / bench.mp_per_s,
                **{ds: model_psnr(entry.results, ds) for ds in DATASETS},
            }
        )
    for scale in sorted({p["scale"] for p in points}):
        points.append(
            {
                "name": f"bicubic x{scale}",
                "scale": scale,
                "tier": "baseline",
                "engine": "numpy (MATLAB-style imresize)",
                "precision": "fp32",
                "gflop_per_output_mp": None,
                "ms_per_output_mp": bicubic_ms_per_mp(scale, repeat),
                **{ds: bicubic_psnr(scale, ds) for ds in DATASETS},
            }
        )
    references = {
        ds: {
            label: {int(level): row["psnr_y"] for level, row in levels.items()}
            for label, levels in REFERENCES[("sr", ds)]
            if label != "SCN paper"
        }
        for ds in DATASETS
    }
    return {
        "host": host_description("cpu"),
        "tile": TILE,
        "repeat": repeat,
        "command": "python benchmarks/speed_quality.py",
        "points": points,
        "published": references,
    }


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    colours = {2: "tab:blue", 3: "tab:orange", 4: "tab:green"}
    markers = {"standard": "o", "fast": "s", "baseline": "x"}
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(12, 4.4), constrained_layout=True)
    for ax, ds in zip(axes, DATASETS, strict=True):
        for p in doc["points"]:
            if p[ds] is None:
                continue
            ax.scatter(
                p["ms_per_output_mp"],
                p[ds],
                color=colours[p["scale"]],
                marker=markers[p["tier"]],
                s=50,
            )
            ax.annotate(
                p["name"],
                (p["ms_per_output_mp"], p[ds]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7,
            )
        for label, levels in doc["published"][ds].items():
            style = "--" if label.startswith("FSRCNN") else ":"
            for key, value in levels.items():
                scale = int(key)  # a str once the results went through JSON (--from-json)
                if any(p["scale"] == scale for p in doc["points"]):
                    ax.axhline(value, color=colours[scale], linestyle=style, linewidth=0.8)
        ax.set_xscale("log")
        # plain numbers: the default "3x10^1" minor labels run into each other
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel("CPU ms per output megapixel (log)")
        ax.set_ylabel(f"{ds} PSNR-Y (dB)")
        ax.set_title(ds)
        ax.grid(True, which="both", alpha=0.3)
    handles = [
        plt.Line2D([], [], color=c, marker="o", linestyle="", label=f"x{s}")
        for s, c in colours.items()
    ]
    handles += [
        plt.Line2D([], [], color="gray", marker=markers["fast"], linestyle="", label="fast tier"),
        plt.Line2D([], [], color="gray", marker="x", linestyle="", label="bicubic"),
        plt.Line2D([], [], color="gray", linestyle="--", label="FSRCNN (published PSNR)"),
        plt.Line2D([], [], color="gray", linestyle=":", label="VDSR (published PSNR)"),
    ]
    fig.legend(handles=handles, fontsize=7, loc="outside right center")
    fig.suptitle(f"speed vs quality, {doc['host']} ({doc['command']})", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def markdown(doc: dict) -> str:
    lines = [
        "| model | scale | tier | engine | GFLOP / output MP | CPU ms / output MP | Set5 | Set14 |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for p in sorted(doc["points"], key=lambda p: (p["scale"], -p["ms_per_output_mp"])):
        gflop = p["gflop_per_output_mp"]
        lines.append(
            f"| {p['name']} | x{p['scale']} | {p['tier']} | {p['engine']} {p['precision']} | "
            f"{f'{gflop:.0f}' if gflop else '-'} | {p['ms_per_output_mp']:,.0f} | "
            + " | ".join(f"{p[ds]:.2f}" if p[ds] is not None else "-" for ds in DATASETS)
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per point (best)")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--from-json", action="store_true", help="re-plot the saved results")
    args = parser.parse_args()
    results = RESULTS / "speed-quality.json"
    if args.from_json:
        doc = json.loads(results.read_text())
    else:
        doc = measure(args.repeat)
        results.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, ROOT / "docs" / "images" / "speed-quality.png")
    print(markdown(doc) if args.markdown else f"wrote {results} and docs/images/speed-quality.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
