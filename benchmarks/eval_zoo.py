"""Run the standard `scn eval` set of a zoo model (and its task's baselines): one JSON each.

The README and card tables are made from these files by benchmarks/tables.py and
benchmarks/zoo_card.py. Every run is a plain `scn eval` command line, printed before it runs
(copy it to reproduce one number); existing result files are kept unless --force.

    python benchmarks/eval_zoo.py NAME [NAME ...] [--baselines] [--jobs 2] [--engine onnx]
        [--level N ...]   (only these sigmas / qualities)
    python benchmarks/eval_zoo.py --all --check DIR [--jobs 2]
        (re-measure into DIR and compare with the stored results: the cards' numbers must
        come back within --tolerance dB / the same SSIM to 1e-4; exit 1 otherwise)

Sets (names resolved under the data root, see `scn eval --help`):
    sr        Set5, Set14, B100 at the model's scale              -> NAME-model.json
    denoise   BSD68 + Set12 (gray) or CBSD68 (colour) at sigma 15, 25, 50; BSD68 / CBSD68 also
              at sigma 10, 20, 30, 40 (a conditioned model between its trained levels)
                                                                  -> NAME-s<sigma>.json
    deblock   LIVE1 + Classic5 (gray: Y protocol) or LIVE1 --colour (colour JPEG protocol)
              at quality 10, 20, 30, 40                           -> NAME-q<quality>.json
--baselines adds the degraded input (identity) at the same levels and, for denoising, BM3D at
sigma 25 (--bm3d-sigma to choose others): denoise-s<sigma>-bm3d.json.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scn_deploy.zoo import zoo_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def plan(
    name: str,
    *,
    engine: str,
    baselines: bool,
    bm3d_sigmas: list[int],
    levels: list[int] | None = None,
) -> list[list[str]]:
    """The `scn eval` argument lists for a model (and its baselines), each with its --json.

    ``levels`` keeps only those sigmas / qualities (default: all of the standard set)."""
    from scn_deploy.modelfile import read_spec

    spec = read_spec(zoo_path(name))
    model = ["--model", name, "--engine", engine]
    runs: list[list[str]] = []

    def add(data: list[str], level: list[str], who: list[str], out: str) -> None:
        folders = [a for d in data for a in ("--data", d)]
        runs.append(["eval", *folders, "--task", spec.task.name, *level, *who, "--json-file", out])

    if spec.task.upscales:
        add(["Set5", "Set14", "B100"], ["--scale", str(spec.scale)], model, f"{name}-model.json")
        return runs
    if spec.task.name == "denoise":
        full, only = (["BSD68", "Set12"], ["BSD68"]) if spec.channels == 1 else (["CBSD68"],) * 2
        tag = "" if spec.channels == 1 else "colour-"
        for sigma in (15, 25, 50, 10, 20, 30, 40):
            if levels and sigma not in levels:
                continue
            data = full if sigma in (15, 25, 50) else only
            level = ["--sigma", str(sigma)]
            add(data, level, model, f"{name}-s{sigma}.json")
            if baselines:
                add(data, level, ["--method", "identity"], f"denoise-{tag}s{sigma}-identity.json")
        for sigma in bm3d_sigmas if baselines else []:
            add(
                only,
                ["--sigma", str(sigma)],
                ["--method", "bm3d"],
                f"denoise-{tag}s{sigma}-bm3d.json",
            )
        return runs
    gray = spec.channels == 1
    data, protocol = (["LIVE1", "Classic5"], []) if gray else (["LIVE1"], ["--colour"])
    tag = "" if gray else "colour-"
    for q in (10, 20, 30, 40):
        if levels and q not in levels:
            continue
        level = ["--quality", str(q), *protocol]
        add(data, level, model, f"{name}-q{q}.json")
        if baselines:
            add(data, level, ["--method", "identity"], f"deblock-{tag}q{q}-identity.json")
    return runs


def compare(stored: Path, fresh: Path, tolerance: float) -> list[str]:
    """The metrics of ``fresh`` that differ from ``stored`` by more than ``tolerance`` (PSNR, dB)
    or ``tolerance / 100`` (SSIM), one line each; a dataset missing from either is a difference."""
    import json

    def rows(path: Path) -> dict[str, dict]:
        return {row["dataset"]: row for row in json.loads(path.read_text())["results"]}

    old, new = rows(stored), rows(fresh)
    out = [f"{fresh.name}: {name} only in one" for name in sorted(set(old) ^ set(new))]
    for name in sorted(set(old) & set(new)):
        for key, value in old[name].items():
            if not key.startswith(("psnr", "ssim")) or key not in new[name]:
                continue
            limit = tolerance if key.startswith("psnr") else tolerance / 100
            got = new[name][key]
            if value is None or got is None:
                if (value is None) != (got is None):
                    out.append(f"{fresh.name}: {name} {key} {value} -> {got}")
                continue
            if abs(got - value) > limit:
                out.append(f"{fresh.name}: {name} {key} {value:.4f} -> {got:.4f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo model names, e.g. denoise-gray")
    parser.add_argument("--all", action="store_true", help="every model in models/")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="write the results into DIR instead and compare them with the stored ones",
    )
    parser.add_argument("--tolerance", type=float, default=0.01, help="--check's PSNR bound, dB")
    parser.add_argument("--engine", default="onnx", help="scn eval --engine (default: onnx)")
    parser.add_argument("--baselines", action="store_true", help="also the baselines")
    parser.add_argument("--bm3d-sigma", type=int, action="append", default=None)
    parser.add_argument(
        "--level", type=int, action="append", default=None, help="only this sigma / quality"
    )
    parser.add_argument("--jobs", type=int, default=1, help="evaluations run at once")
    parser.add_argument("--force", action="store_true", help="re-run existing result files")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    names = list(args.names)
    if args.all:
        names += sorted(p.stem for p in (ROOT / "models").glob("*.safetensors"))
    if not names:
        parser.error("name zoo models, or --all")
    out_dir = args.check.resolve() if args.check else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)

    runs = [
        run
        for name in names
        for run in plan(
            name,
            engine=args.engine,
            baselines=args.baselines,
            bm3d_sigmas=args.bm3d_sigma or [25],
            levels=args.level,
        )
    ]
    runs.sort(key=lambda run: "bm3d" not in run)  # the longest runs first
    todo = []
    pairs: list[tuple[Path, Path]] = []
    for run in runs:
        out = out_dir / run[-1]
        if args.check:
            stored = RESULTS / run[-1]
            if not stored.exists():
                print(f"skip {run[-1]} (no stored result to compare with)")
                continue
            pairs.append((stored, out))
        run[-1] = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
        if out.exists() and not args.force:
            print(f"keep {run[-1]}")
            continue
        todo.append(run)
    env = dict(os.environ)
    if args.jobs > 1:  # one core per evaluation: ONNX Runtime and torch intra-op threads
        env.update(SCN_THREADS="1", OMP_NUM_THREADS="1")

    def execute(run: list[str]) -> int:
        print("scn " + shlex.join(run), flush=True)
        if args.dry_run:
            return 0
        cmd = [sys.executable, "-m", "scn_deploy.cli", *run]
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        if done.returncode:
            print(f"FAILED ({done.returncode}): scn {shlex.join(run)}", file=sys.stderr)
        return done.returncode

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = list(pool.map(execute, todo))
    if any(codes):
        return 1
    if args.check and not args.dry_run:
        differences = [
            line for stored, fresh in pairs for line in compare(stored, fresh, args.tolerance)
        ]
        within = f"{len(pairs)} results reproduce within {args.tolerance} dB"
        print("\n".join(differences) or within)
        return 1 if differences else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
