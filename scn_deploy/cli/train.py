"""`scn train`."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from scn_deploy.cli.app import TaskName, app, err, fail
from scn_deploy.errors import ScnError


@app.command()
def train(
    task: Annotated[TaskName, typer.Option(help="What to train: sr, denoise or deblock.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, log.csv).")],
    data: Annotated[
        list[Path] | None,
        typer.Option(help="Folder of training images (repeatable; sub-folders included)."),
    ] = None,
    val: Annotated[
        list[Path] | None,
        typer.Option(
            help="Validation image folder (repeatable). Default: hold out --val-count "
            "training images."
        ),
    ] = None,
    inputs: Annotated[
        list[Path] | None,
        typer.Option(
            help="SR: a folder of given degraded LR images, one per training image (same stem, "
            "the size of its bicubic LR), e.g. JPEG-coded then deblocked; repeatable: each "
            "sample draws one folder. Validation uses the first. Default: bicubic LR.",
        ),
    ] = None,
    input_kind: Annotated[
        str,
        typer.Option(
            help="What the --inputs are: clean (the default), or jpeg (JPEG-coded LR images "
            "as decoded): the model file then says it takes JPEGs as they are, and `scn "
            "upscale` skips the deblocking stage before it.",
        ),
    ] = "clean",
    val_count: Annotated[int, typer.Option(help="Training images held out for validation.")] = 5,
    val_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 500,
    scale: Annotated[int, typer.Option(help="SR factor: 2, 3 or 4.")] = 2,
    sigma: Annotated[float | None, typer.Option(help="Fixed Gaussian noise sigma (0-255).")] = None,
    sigma_range: Annotated[
        tuple[float, float] | None,
        typer.Option(
            help="Blind denoising: each sample draws sigma in [A, B] and the model gets "
            "a sigma map as input."
        ),
    ] = None,
    quality: Annotated[int | None, typer.Option(help="Fixed JPEG quality (1-100).")] = None,
    quality_range: Annotated[
        tuple[int, int] | None,
        typer.Option(
            help="Blind deblocking: each sample draws a quality in [A, B]; the model "
            "gets a quality map as input."
        ),
    ] = None,
    gray: Annotated[bool, typer.Option(help="Train on grayscale (1 channel) images.")] = False,
    preset: Annotated[
        str, typer.Option(help="Architecture preset: tiny, fast, small, base, paper.")
    ] = "small",
    arch_json: Annotated[
        str | None,
        typer.Option(help="JSON object of SCNConfig overrides, e.g. '{\"scale_kernel\": 5}'."),
    ] = None,
    num_scales: Annotated[
        int,
        typer.Option(
            "--scales",
            "--num-scales",
            help="Pyramid scales to train with (--num-scales: old name).",
        ),
    ] = 3,
    scale_ratio: Annotated[float, typer.Option(help="Pyramid scale ratio in (0, 1).")] = 0.5,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from the matching weights of a model file (e.g. x3 from x2). From a "
            "shallower model (e.g. --preset base from a small file), the extra blocks start "
            "as identities, so training starts at that model's quality."
        ),
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimiser steps in total.")] = 2000,
    batch: Annotated[int, typer.Option(help="Patches per step.")] = 16,
    patch: Annotated[int, typer.Option(help="Input (LR) patch size.")] = 48,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_halve_start: Annotated[
        int | None, typer.Option(help="Step at which the LR is first halved (default 62.5%).")
    ] = None,
    lr_halve_every: Annotated[
        int | None, typer.Option(help="Halve the LR again every N steps (default 7.5%).")
    ] = None,
    lr_warmup: Annotated[
        int,
        typer.Option(
            help="Ramp the LR linearly up over the first N steps (0: none), e.g. when "
            "continuing a trained model with --init."
        ),
    ] = 0,
    loss: Annotated[
        str,
        typer.Option(
            help="Training loss: l1 (the paper's) or l2 (mean squared error, what PSNR scores; "
            "for a last fine-tune of an l1 model). log.csv's loss column is in its units."
        ),
    ] = "l1",
    device: Annotated[str, typer.Option(help="cpu or cuda[:i].")] = "cpu",
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 autocast on CPUs with native bf16, AVX512-BF16 or AMX: 2-2.9x "
            "faster than fp32 with channels_last; fp32 elsewhere), fp32, bf16 or fp16 (CUDA "
            "only). Weights and optimizer stay fp32; the run states its choice at the start "
            "and in the model file's training summary."
        ),
    ] = "auto",
    channels_last: Annotated[
        bool,
        typer.Option(
            help="channels_last (NHWC) memory format: 10-30% faster steps with oneDNN on CPU "
            "(benchmarks/train_throughput.py) and the layout CUDA tensor cores want."
        ),
    ] = True,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the network.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for initialisation and batches.")] = 0,
    val_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed that picks the held-out validation images (default: --seed). Keep the "
            "first run's value when continuing a model (--init) with a new --seed, so the "
            "held-out images stay unseen."
        ),
    ] = None,
    ckpt_every: Annotated[
        int, typer.Option(help="Write a resumable checkpoint every N steps.")
    ] = 100,
    snapshot_every: Annotated[
        int,
        typer.Option(
            help="Also keep the weights every N steps as snapshots/step-N.safetensors in --out "
            "(0: none), for weight averaging (benchmarks/average_weights.py)."
        ),
    ] = 0,
    resume: Annotated[
        bool, typer.Option(help="Continue the interrupted run in --out exactly.")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="TOML file with any of these options (flags override).")
    ] = None,
) -> None:
    """Train an SCN model (paper recipe: L1, Adam, flips/rotations, step-wise LR halving)."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from scn_deploy.train import TrainConfig, Trainer

    values = {
        "task": task.value,
        "out": str(out),
        "data": [str(d) for d in data or []],
        "inputs": [str(d) for d in inputs or []],
        "input_kind": input_kind,
        "val": [str(v) for v in val or []],
        "val_count": val_count,
        "val_every": val_every,
        "scale": scale,
        "sigma": sigma,
        "sigma_range": sigma_range,
        "quality": quality,
        "quality_range": quality_range,
        "gray": gray,
        "preset": preset,
        "num_scales": num_scales,
        "scale_ratio": scale_ratio,
        "init": str(init) if init else None,
        "steps": steps,
        "batch": batch,
        "patch": patch,
        "lr": lr,
        "lr_halve_start": lr_halve_start,
        "lr_halve_every": lr_halve_every,
        "lr_warmup": lr_warmup,
        "loss": loss,
        "device": device,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile_model,
        "seed": seed,
        "val_seed": val_seed,
        "ckpt_every": ckpt_every,
        "snapshot_every": snapshot_every,
    }
    try:
        if arch_json:
            try:
                values["arch"] = json.loads(arch_json)
            except json.JSONDecodeError as exc:
                raise fail(f"--arch-json is not valid JSON: {exc}", 2) from None
        if config is not None:
            cfg = TrainConfig.from_toml(config, **values)
        else:
            cfg = TrainConfig.from_dict({k: v for k, v in values.items() if v is not None})
        trainer = Trainer(cfg, resume=resume)
    except ScnError as exc:
        raise fail(str(exc)) from None
    if not trainer.is_main:  # other torchrun ranks train silently
        err.quiet = True
    for path, why in trainer.bank.skipped:
        err.print(f"[yellow]warning:[/] {escape(f'skipped {path}: {why}')}")
    err.print(
        f"training {trainer.spec.describe()} ({cfg.preset}, {cfg.num_scales} scales) on "
        f"{len(trainer.bank.hr)} images, validating on {len(trainer.val_set)}; "
        f"step {trainer.step}/{cfg.steps}; {trainer.cfg.precision} "
        f"({trainer.precision_reason}){', channels_last' if cfg.channels_last else ''}",
        markup=False,
    )
    columns = [
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("val {task.fields[psnr]}"),
        TextColumn("{task.fields[rate]:.2f} it/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    psnr_text = f"{trainer.best_psnr:.2f}" if trainer.best_psnr is not None else "-"
    with Progress(*columns, console=err, disable=not err.is_terminal) as bar:
        job = bar.add_task(
            "train", total=cfg.steps, completed=trainer.step, loss=0.0, psnr=psnr_text, rate=0.0
        )

        def report(record: dict[str, float]) -> None:
            nonlocal psnr_text
            if record["val_psnr_y"] == record["val_psnr_y"]:  # not NaN
                psnr_text = f"{record['val_psnr_y']:.2f}"
            bar.update(
                job,
                completed=record["step"],
                loss=record["loss"],
                psnr=psnr_text,
                rate=record["steps_per_s"],
            )

        def on_term(signum: int, frame: object) -> None:  # a kill saves like Ctrl-C
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            result = trainer.run(report)
        except KeyboardInterrupt:
            message = f"interrupted at step {trainer.step}; resume with --resume --out {out}"
            err.print(message, markup=False)
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    start = f"{result.start_psnr:.2f}" if result.start_psnr is not None else "-"
    best = f"{result.best_psnr:.2f}" if result.best_psnr is not None else "-"
    err.print(
        f"done: {result.steps} steps, {result.seconds:.0f} s of training "
        f"({result.steps_per_s:.3f} steps/s); validation PSNR-Y {start} -> best {best} dB; "
        f"model files in {result.out}",
        markup=False,
    )
