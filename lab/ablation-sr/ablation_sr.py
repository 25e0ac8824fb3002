"""Issue #8's ablation of the paper's claims on x2 super-resolution, with our own runs.

Every run trains the same `small` network (8 blocks, 32 features; the single-scale run lacks
only the cross-scale 1x1 convs, under 3% of the parameters) on the same data (T91 + BSD200, the
same 5 held-out validation images), with the same seed, batches, steps and learning-rate
schedule; only the pyramid differs:

    single     1 scale                  the single-scale baseline (Fig. 6: 34.74 in the paper)
    r12        4 scales, ratio 1/2
    r23        4 scales, ratio 2/3      the paper's best ratio
    r12-bzero  r12 with boundary "zero": a missing neighbour at the pyramid's ends is dropped
               instead of replaced by the same-scale term (the reference code's choice and
               our default, which doubles the finest scale's residual at initialisation)

Then every run's last weights (same number of steps, no selection) are evaluated with
`scn eval` on Set5 and Set14 x2 (PSNR/SSIM on Y, scale as border crop), and the multi-scale
runs also with 1..9 evaluation scales (the paper's Fig. 7).

    python lab/ablation-sr/ablation_sr.py train --steps 1500 [--runs runs/ablation] [--jobs 2]
    python lab/ablation-sr/ablation_sr.py eval [--runs ...] [--jobs 2] [--only single r12]
    python lab/ablation-sr/ablation_sr.py report [-o FILE]  # markdown + the figure:
        docs/images/ablation-scales.png

Longer budgets (`--steps 6000`: is the multi-scale deficit at 1,500 steps closing?) keep their
own run folders (runs/ablation-6000) and result files (ablation-6000-<run>.json,
ablation-6000-runs.json) beside the 1,500-step ones, and validate every 500 steps; their
`report --steps 6000` adds each run's validation curve, the gap to single scale step by step.
`eval --no-scales` skips the 1..9-scale sweep.

`train` continues interrupted runs (`scn train --resume`) and skips finished ones; `eval` writes
lab/ablation-sr/results/ablation-<run>[-s<k>].json and skips existing files unless --force; `report`
needs only those JSON files (and matplotlib for the figure: `pip install -e ".[plots]"`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
FIGURE = ROOT / "docs" / "images" / "ablation-scales.png"
DATASETS = ("Set5", "Set14")
EVAL_SCALES = range(1, 10)
SEED = 0
BASE_STEPS = 1500  # the first budget: its files keep their unsuffixed names


@dataclass(frozen=True)
class AblationRun:
    """One training configuration of the ablation."""

    name: str
    num_scales: int
    scale_ratio: float
    label: str
    boundary: str = "replicate"  # SCNConfig.boundary: the pyramid ends' missing neighbours

    @property
    def multi_scale(self) -> bool:
        return self.num_scales > 1


RUNS = (
    AblationRun("single", 1, 0.5, "single scale"),
    AblationRun("r12", 4, 0.5, "SCN, 4 scales, ratio 1/2"),
    AblationRun("r23", 4, 2 / 3, "SCN, 4 scales, ratio 2/3"),
    AblationRun("r12-bzero", 4, 0.5, "SCN, 4 scales, ratio 1/2, zero boundary", "zero"),
)


def data_root() -> Path:
    """The project's data root (`scn_deploy.paths`), relative to the repository root where the
    commands run; the documented default ../shared/data when there is none yet."""
    from scn_deploy.paths import data_root as project_data_root

    root = project_data_root()
    return Path(os.path.relpath(root, ROOT)) if root else Path("..", "shared", "data")


def prefix(steps: int) -> str:
    """Result-file prefix of a budget: ablation (1,500 steps) or ablation-<steps>."""
    return "ablation" if steps == BASE_STEPS else f"ablation-{steps}"


def default_runs(steps: int) -> Path:
    return ROOT / "runs" / prefix(steps)  # git-ignored


def train_command(run: AblationRun, runs: Path, steps: int) -> list[str]:
    out = runs / run.name
    train = data_root() / "train"
    cmd = [
        "scn", "train", "--task", "sr", "--scale", "2", "--preset", "small",
        "--data", str(train / "T91"), "--data", str(train / "BSD200"),
        "--scales", str(run.num_scales), "--scale-ratio", f"{run.scale_ratio:.6f}",
        "--steps", str(steps), "--lr", "1e-3",  # the paper's schedule: halved from 62.5% on
        "--seed", str(SEED), "--val-every", str(max(1, min(steps // 4, 500))), "--out", str(out),
    ]  # fmt: skip
    if run.boundary != "replicate":
        cmd += ["--arch-json", json.dumps({"boundary": run.boundary})]
    return cmd


def finished_steps(run: AblationRun, runs: Path) -> int:
    from scn_deploy.modelfile import read_spec

    last = runs / run.name / "last.safetensors"
    return int((read_spec(last).training or {}).get("steps", 0)) if last.exists() else 0


def eval_commands(
    run: AblationRun, runs: Path, steps: int, scales: bool = True
) -> list[tuple[list[str], Path]]:
    model = str(runs / run.name / "last.safetensors")
    folders = [a for d in DATASETS for a in ("--data", d)]
    base = ["scn", "eval", *folders, "--task", "sr", "--scale", "2", "--model", model]
    base += ["--engine", "torch"]
    name = f"{prefix(steps)}-{run.name}"
    out = [(base, RESULTS / f"{name}.json")]
    if run.multi_scale and scales:
        for k in EVAL_SCALES:
            out.append(([*base, "--scales", str(k)], RESULTS / f"{name}-s{k}.json"))
    return out


def run_all(commands: list[list[str]], jobs: int) -> int:
    env = dict(os.environ)
    if jobs > 1:  # one thread each: the jobs share the cores
        env.update(OMP_NUM_THREADS="1", SCN_THREADS="1")

    def execute(cmd: list[str]) -> int:
        print("$", shlex.join(cmd), flush=True)
        return subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        codes = list(pool.map(execute, commands))
    return max(codes, default=0)


def cmd_train(args: argparse.Namespace) -> int:
    runs = args.runs
    commands = []
    for run in selected(args):
        if finished_steps(run, runs) >= args.steps:
            print(f"{run.name}: finished ({args.steps} steps)")
            continue
        resume = ["--resume"] if (runs / run.name / "state.pt").exists() else []
        commands.append([*train_command(run, runs, args.steps), *resume])
    return run_all(commands, args.jobs)


def selected(args: argparse.Namespace) -> list[AblationRun]:
    return [r for r in RUNS if not args.only or r.name in args.only]


def cmd_eval(args: argparse.Namespace) -> int:
    runs = args.runs
    todo = []
    for run in selected(args):
        done = finished_steps(run, runs)
        if done < args.steps:  # last.safetensors is also written at every checkpoint
            print(f"{run.name}: trained {done} of {args.steps} steps so far", file=sys.stderr)
            return 1
        for cmd, out in eval_commands(run, runs, args.steps, scales=not args.no_scales):
            if args.force or not out.exists():
                todo.append([*cmd, "--json-file", str(out)])
    finished = [r for r in RUNS if finished_steps(r, runs) >= args.steps]
    write_budget(runs, finished, args.steps)
    return run_all(todo, args.jobs)


def validation_curve(log: Path) -> list[list[float]]:
    """[step, validation PSNR-Y] pairs of a run's log.csv (empty when it has none)."""
    import csv

    if not log.exists():
        return []
    with log.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_psnr_y")]
    return [[int(r["step"]), round(float(r["val_psnr_y"]), 4)] for r in rows]


def write_budget(runs: Path, finished: list[AblationRun], steps: int = BASE_STEPS) -> None:
    """What each evaluated run was trained with, and its validation curve:
    results/<prefix>-runs.json.

    Runs whose folders are gone (another session's) keep their recorded entry.
    """
    from scn_deploy.modelfile import read_spec

    path = RESULTS / f"{prefix(steps)}-runs.json"
    budget = json.loads(path.read_text()) if path.exists() else {}
    for run in finished:
        spec = read_spec(runs / run.name / "last.safetensors")
        training = spec.training or {}
        budget[run.name] = {
            "num_scales": spec.arch.num_scales,
            "scale_ratio": spec.arch.scale_ratio,
            "preset": spec.preset,
            **{k: training.get(k) for k in ("steps", "batch", "patch", "seconds", "device")},
            "train_images": training.get("train_images"),
            "command": shlex.join(train_command(run, runs, int(training.get("steps", 0)))),
        }
        if curve := validation_curve(runs / run.name / "log.csv"):
            budget[run.name]["validation"] = curve
    budget = {r.name: budget[r.name] for r in RUNS if r.name in budget}  # RUNS order
    path.write_text(json.dumps(budget, indent=1) + "\n")


def load(name: str) -> dict[str, float] | None:
    """Dataset -> PSNR-Y of one result file (None when it does not exist)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    return {r["dataset"]: r["psnr_y"] for r in json.loads(path.read_text())["results"]}


def report(args: argparse.Namespace) -> int:
    steps = getattr(args, "steps", BASE_STEPS)
    pre = prefix(steps)
    budget_file = RESULTS / f"{pre}-runs.json"
    budget = json.loads(budget_file.read_text()) if budget_file.exists() else {}
    lines = []
    for name, b in budget.items():
        lines.append(
            f"- `{name}`: {b['steps']} steps of {b['batch']} {b['patch']}x{b['patch']} patches, "
            f"{b['train_images']} images, {b['seconds'] / 60:.0f} min on {b['device']}: "
            f"`{b['command']}`"
        )
    header = " | ".join(f"{d} x2" for d in DATASETS)
    lines += ["", f"| run | {header} | vs single scale (Set5 / Set14) |"]
    lines.append("|---|" + "---:|" * (len(DATASETS) + 1))
    base = load(f"{pre}-single")
    for run in RUNS:
        got = load(f"{pre}-{run.name}")
        if got is None:
            continue
        cells = [f"{got[d]:.2f}" for d in DATASETS]
        delta = (
            " / ".join(f"{got[d] - base[d]:+.2f}" for d in DATASETS)
            if base and run.multi_scale
            else "-"
        )
        lines.append(f"| {run.label} | " + " | ".join(cells) + f" | {delta} |")
    lines += validation_table(budget)
    curves: dict[str, list[float | None]] = {}
    scale_rows = []
    for run in (r for r in RUNS if r.multi_scale):
        for dataset in DATASETS:
            row = [load(f"{pre}-{run.name}-s{k}") for k in EVAL_SCALES]
            values = [r[dataset] if r else None for r in row]
            if all(v is None for v in values):
                continue
            curves[f"{run.label} ({dataset})"] = values
            cells = ["-" if v is None else f"{v:.2f}" for v in values]
            scale_rows.append(f"| {run.label}, {dataset} | " + " | ".join(cells) + " |")
    if scale_rows:
        lines += ["", "PSNR-Y (x2) by number of scales at evaluation (trained with 4):", ""]
        lines.append("| run | " + " | ".join(str(k) for k in EVAL_SCALES) + " |")
        lines.append("|---|" + "---:|" * len(EVAL_SCALES))
        lines += scale_rows
    text = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    if curves and not args.no_figure and steps == BASE_STEPS:  # the figure is the 1,500 budget's
        plot(curves)
    return 0


def validation_table(budget: dict[str, dict]) -> list[str]:
    """Validation PSNR-Y (the 5 held-out images) step by step, and each multi-scale run's gap
    to single scale: does the deficit close with training? Only runs with recorded curves."""
    curves = {r: dict(map(tuple, budget[r.name]["validation"])) for r in RUNS
              if "validation" in budget.get(r.name, {})}  # fmt: skip
    if not curves:
        return []
    steps = sorted({s for c in curves.values() for s in c})
    single = next((c for r, c in curves.items() if not r.multi_scale), {})
    title = "Validation PSNR-Y (x2, 5 held-out images) by training step (gap to single scale):"
    lines = ["", title]
    lines += ["", "| run | " + " | ".join(f"{s:,}" for s in steps) + " |"]
    lines.append("|---|" + "---:|" * len(steps))
    for run, curve in curves.items():
        cells = []
        for s in steps:
            if s not in curve:
                cells.append("-")
            elif run.multi_scale and s in single:
                cells.append(f"{curve[s]:.2f} ({curve[s] - single[s]:+.2f})")
            else:
                cells.append(f"{curve[s]:.2f}")
        lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
    return lines


def plot(curves: dict[str, list[float | None]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(DATASETS)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), dpi=110)
    for ax, dataset in zip(axes, datasets, strict=True):
        for label, values in curves.items():
            if not label.endswith(f"({dataset})"):
                continue
            xs = [k for k, v in zip(EVAL_SCALES, values, strict=True) if v is not None]
            ys = [v for v in values if v is not None]
            ax.plot(xs, ys, marker="o", label=label.rsplit(" (", 1)[0])
        ax.axvline(4, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title(f"{dataset} x2 (trained with 4 scales)")
        ax.set_xlabel("scales at evaluation")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.set_xticks(list(EVAL_SCALES))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE)
    print(f"wrote {FIGURE.relative_to(ROOT)}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "eval"):
        p = sub.add_parser(name)
        p.add_argument("--runs", help="run folders (git-ignored; default runs/ablation[-STEPS])")
        p.add_argument("--jobs", type=int, default=1, help="runs at once (1 thread each)")
        p.add_argument("--only", nargs="+", choices=[r.name for r in RUNS], help="these runs")
    for p in sub.choices.values():
        p.add_argument("--steps", type=int, default=BASE_STEPS, help="training steps of every run")
    sub.choices["eval"].add_argument("--force", action="store_true")
    sub.choices["eval"].add_argument(
        "--no-scales", action="store_true", help="skip the 1..9 evaluation-scale sweep"
    )
    p = sub.add_parser("report")
    p.add_argument("--steps", type=int, default=BASE_STEPS, help="the budget to report")
    p.add_argument("-o", "--output", help="markdown file (default: stdout)")
    p.add_argument("--no-figure", action="store_true")
    args = parser.parse_args()
    if hasattr(args, "runs"):  # the commands run in the repository root
        args.runs = Path(args.runs or default_runs(args.steps)).resolve()
    return {"train": cmd_train, "eval": cmd_eval, "report": report}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
