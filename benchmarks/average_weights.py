"""Average model files (snapshots of a run, or ends of runs from one model) and score them.

Scores every input and the uniform mean of their weights on a training run's held-out
images (the trainer's own validation: same files, crop and degradation; never a benchmark
set), and writes the mean as a model file with --out:

    python benchmarks/average_weights.py SNAP1.safetensors SNAP2.safetensors ... \
        --task sr --scale 4 --data ../shared/data/train/T91 --data ../shared/data/train/BSD200 \
        --val-seed 0 [--window 4 --window 8] [--plus START.safetensors] [--out averaged.safetensors]

--window K scores the mean of the last K inputs (in the order given), for each K (default: all
of them); --plus FILE joins every mean (e.g. the model a run continued from: a mean across
runs); --out writes the best-scoring mean. Its spec (training summary) is the last input's,
plus the summaries of every averaged file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from scn_deploy.modelfile import load_model, read_spec, save_model
from scn_deploy.train.average import average_model_files
from scn_deploy.train.config import TrainConfig
from scn_deploy.train.data import collect_files
from scn_deploy.train.validation import make_val_set, split_held_out, validate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--task", default="sr")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--sigma", type=float)
    parser.add_argument("--quality", type=int)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--val-seed", type=int, default=0)
    parser.add_argument("--val-count", type=int, default=5)
    parser.add_argument("--window", type=int, action="append", default=[])
    parser.add_argument("--plus", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, help="write the best-scoring mean here")
    parser.add_argument("--half", action="store_true", help="store --out as float16")
    parser.add_argument("--json", type=Path, help="write the scores here")
    args = parser.parse_args()

    cfg = TrainConfig(
        task=args.task,
        scale=args.scale,
        sigma=args.sigma,
        quality=args.quality,
        data=args.data,
        val_seed=args.val_seed,
        val_count=args.val_count,
    )
    files = collect_files(cfg.data)
    held_out = split_held_out(files, seed=cfg.held_out_seed, count=cfg.val_count)[1]
    samples = make_val_set(held_out, cfg, read_spec(args.models[0]))
    torch.set_grad_enabled(False)

    scores: dict[str, float] = {}
    for path in [*args.plus, *args.models]:
        model, spec = load_model(path)
        scores[str(path)] = validate(model, samples, spec, "cpu")
        print(f"{scores[str(path)]:.4f}  {path}")

    windows = sorted(set(args.window)) or [len(args.models)]
    plus = " and --plus" if args.plus else ""
    best = None  # (score, window, model, spec) of the best mean so far
    for k in windows:
        if not 1 <= k <= len(args.models) or k + len(args.plus) < 2:
            raise SystemExit(f"--window {k}: needs 1..{len(args.models)}, and 2 files in all")
        model, spec = average_model_files([*args.plus, *args.models[-k:]])
        score = validate(model, samples, spec, "cpu")
        scores[f"mean of last {k}{plus}"] = score
        print(f"{score:.4f}  mean of the last {k}{plus}")
        if best is None or score > best[0]:
            best = (score, k, model, spec)

    if args.out and best is not None:
        score, k, model, spec = best
        spec.training["val_psnr_y"] = score
        save_model(args.out, model, spec, half=args.half)
        print(f"wrote {args.out} (mean of the last {k}{plus}: {score:.4f})")
    if args.json:
        report = {"held_out": [f.name for f in held_out], "scores": scores}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
