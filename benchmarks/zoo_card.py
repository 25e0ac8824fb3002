"""Write a zoo model's card (models/NAME.md) and results file (models/NAME.json).

Everything in the card comes from the model file itself (architecture, training summary) and
from `scn eval --json-file` files measured for it; the CPU speed is measured here.

Usage:
    python benchmarks/zoo_card.py NAME --eval RESULT.json [--eval ...] [--note TEXT]
        [--command "the scn eval command lines"] [--time-size 256] [--keep-speed]
        [--dataset NAME ...] [--bench BENCH.json]
    python benchmarks/zoo_card.py NAME --bench BENCH.json --costs-only

--bench records a `scn bench --json-file` result (output MP/s, engine, precision, CPU) as the
model's measured speed, which `scn models` shows; --costs-only updates just the results file's
cost fields (GFLOP per output MP, measured speed) and leaves the card and evaluations alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import load_runs, markdown_tables

from scn_deploy.bench import host_description
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.info import summarize_file
from scn_deploy.zoo import zoo_path


def cpu_seconds_per_output_mp(path: Path, size: int, repeats: int = 3) -> float:
    """Wall seconds per output megapixel of the torch engine on this CPU (best of repeats)."""
    engine = load_engine(path, EngineOptions(engine="torch"))
    c = engine.spec.channels
    x = np.random.default_rng(0).random((1, c, size, size), dtype=np.float32)
    level = None
    if engine.spec.conditioned:
        lo, hi = engine.spec.level_range or (0, 0)
        level = np.full((1, 1, size, size), engine.spec.condition_value((lo + hi) / 2), np.float32)
    engine.infer(x, level)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        engine.infer(x, level)
        best = min(best, time.perf_counter() - t)
    out_mp = (size * engine.spec.scale) ** 2 / 1e6
    return best / out_mp


def kept_speed(path: Path, summary) -> tuple[float, str] | None:
    """The existing card's CPU s/MP and the CPU it was timed on, when it describes the same
    architecture, else None."""
    old_path = path.with_suffix(".json")
    if not old_path.exists():
        return None
    old = json.loads(old_path.read_text())
    if old.get("params") != summary.params or old.get("description") != summary.spec.describe():
        print("--keep-speed: the architecture changed, timing again", file=sys.stderr)
        return None
    return float(old["cpu_seconds_per_output_mp"]), str(old.get("cpu", "x86_64"))


def cost_fields(summary, bench_path: str | None) -> dict:
    """GFLOP per output MP (counted) and, from a `scn bench` result, the measured speed."""
    fields: dict = {"gflop_per_output_mp": round(summary.flops_per_mp / 1e9, 1)}
    if bench_path:
        bench = json.loads(Path(bench_path).read_text())
        fields["speed"] = {
            "mp_per_s": round(bench["mp_per_s"], 3),
            "engine": bench["engine"],
            "precision": bench["precision"],
            "tile": bench["tile"],
            "host": bench["host"],
            "source": os.path.relpath(bench_path),
        }
    return fields


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--eval", nargs="+", default=[], help="scn eval --json-file files")
    parser.add_argument("--command", action="append", default=[], help="commands that made them")
    parser.add_argument("--note", action="append", default=[], help="extra lines for the card")
    parser.add_argument("--time-size", type=int, default=256)
    parser.add_argument(
        "--dataset",
        action="append",
        default=None,
        help="only these datasets' results (baseline files often cover gray and colour sets)",
    )
    parser.add_argument(
        "--keep-speed",
        action="store_true",
        help="reuse the CPU s/MP of the existing card (same architecture: more training only); "
        "for when the CPU is busy and a timing now would be wrong",
    )
    parser.add_argument("--bench", help="a `scn bench --json-file` result for this model")
    parser.add_argument(
        "--costs-only",
        action="store_true",
        help="only add GFLOP/MP and --bench's speed to the existing results file",
    )
    args = parser.parse_args()

    path = zoo_path(args.name)
    summary = summarize_file(path)
    costs = cost_fields(summary, args.bench)
    if args.costs_only:
        results_path = path.with_suffix(".json")
        results = {**json.loads(results_path.read_text()), **costs}
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"updated {results_path}")
        return 0
    spec = summary.spec
    runs = load_runs(args.eval)
    if args.dataset:
        runs = [
            {**run, "results": [r for r in run["results"] if r["dataset"] in args.dataset]}
            for run in runs
        ]
        runs = [run for run in runs if run["results"]]
    kept = kept_speed(path, summary) if args.keep_speed else None
    if kept is None:
        speed, cpu = cpu_seconds_per_output_mp(path, args.time_size), host_description("cpu")
    else:
        speed, cpu = kept  # labelled with the CPU that timed it, not this one
    results = {
        "name": args.name,
        "description": spec.describe(),
        "params": summary.params,
        "cpu_seconds_per_output_mp": round(speed, 3),
        "cpu": cpu,
        **costs,
        "evaluations": runs,
    }
    path.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")

    t = spec.training
    arch = spec.arch
    shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else path
    lines = [
        f"# {args.name}: {spec.describe()}",
        "",
        f"File: `{path.name}` (self-describing safetensors; `scn info {shown}` prints all "
        "of this).",
        "",
        "| | |",
        "|---|---|",
        f"| task | {spec.describe()} |",
        f"| preset | {spec.preset} ({arch.num_blocks} blocks, {arch.num_features} features, "
        f"x{arch.width_multiplier:g} width"
        + (
            f"; body at 1/{arch.space_to_depth} resolution: space_to_depth {arch.space_to_depth}"
            if arch.space_to_depth > 1
            else ""
        )
        + ") |",
        f"| pyramid | {arch.num_scales} scales trained, ratio {arch.ratio_fraction}, scale "
        f"kernel {arch.scale_kernel}, {arch.resample} resampling, {arch.boundary} boundary |",
        f"| channels | {arch.in_channels} in / {arch.out_channels} out |",
        f"| parameters | {summary.params:,} |",
        f"| conv GFLOP per output MP | {summary.flops_per_mp / 1e9:,.0f} |"
        if summary.flops_per_mp
        else "| conv GFLOP per output MP | n/a |",
        f"| CPU seconds per output MP | {speed:.2f} (torch fp32, {cpu}, "
        f"{args.time_size}x{args.time_size} input) |",
        f"| training data | {', '.join(Path(d).name for d in t.get('data', []))} "
        f"({t.get('train_images', '?')} images; {t.get('val_images', '?')} held out for "
        "validation) |",
        f"| steps / batch / patch | {t.get('steps')} / {t.get('batch')} / {t.get('patch')} "
        f"({'LR ' if spec.task.upscales else ''}pixels) |",
        f"| hardware / wall time | {t.get('device')} / {t.get('seconds', 0) / 3600:.2f} h of "
        "training steps |",
        f"| initialised from | {t.get('init') or 'scratch'} |",
        "",
        "## Measured (scn eval, PSNR/SSIM on Y)",
        "",
        markdown_tables(runs),
    ]
    if args.command:
        lines += ["Commands:", "", "```bash", *args.command, "```", ""]
    for note in args.note:  # one paragraph each
        lines += [note, ""]
    path.with_suffix(".md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {path.with_suffix('.md')} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
