"""Fine-tune the JPEG chain of `scn upscale` jointly: deblock-fast then sr-x2, one loss at HR.

The shipped chain deblocks the decoded JPEG LR (float, unrounded), then upscales it. Here both
networks train together on (JPEG-coded bicubic LR, HR) pairs, the L1 loss taken after the SR
stage, so the deblocker learns to keep what the upscaler needs rather than what a clean LR
image has. Inputs: the folders `make_inputs.py --stage jpeg` writes (DIR/q<Q>/<stem>.png).
Validation: PSNR-Y (border = scale) of the whole chain on the held-out images of
`split_held_out(seed=0, count=5)` (the trainer's `--val-seed 0`), JPEG q30 and q75.

    python lab/jpeg-sr/joint_finetune.py --data $SCN_DATA/train/T91 --data
        $SCN_DATA/train/BSD200 --inputs DIR --out RUN [--steps 6000] [--threads 1]

Writes RUN/deblock.safetensors and RUN/sr.safetensors at each best validation, RUN/log.csv,
and RUN/state.pt (resume with --resume). Keep RUN outside the repository.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scn_deploy.dihedral import dihedral
from scn_deploy.imageio import list_images, read_image
from scn_deploy.metrics import psnr
from scn_deploy.modelfile import load_model, save_model
from scn_deploy.train.data import to_channels
from scn_deploy.train.validation import split_held_out
from scn_deploy.zoo import zoo_path

VAL_QUALITIES = (30, 75)


def load_pairs(files: list[Path], inputs: Path, qualities: list[int], scale: int):
    """HR (modcropped) and, per quality, the decoded JPEG LR of each file (uint8 HxWx3)."""
    hr, lr = [], {q: [] for q in qualities}
    for path in files:
        img = to_channels(read_image(path), gray=False)
        h, w = img.shape[:2]
        img = img[: h - h % scale, : w - w % scale]
        hr.append(img)
        for q in qualities:
            coded = to_channels(read_image(inputs / f"q{q}" / f"{path.stem}.png"), gray=False)
            assert coded.shape[0] * scale == img.shape[0], path
            lr[q].append(coded)
    return hr, lr


def make_batch(rng, hr, lr, qualities, batch: int, patch: int, scale: int):
    xs, ys, qs = [], [], []
    for _ in range(batch):
        i = int(rng.integers(len(hr)))
        q = qualities[int(rng.integers(len(qualities)))]
        src = lr[q][i]
        # crops on the 8x8 JPEG grid, as a whole image is coded
        y = 8 * int(rng.integers((src.shape[0] - patch) // 8 + 1))
        x = 8 * int(rng.integers((src.shape[1] - patch) // 8 + 1))
        k = int(rng.integers(8))
        lp = dihedral(src[y : y + patch, x : x + patch], k & 3, bool(k & 4), (0, 1))
        hp = hr[i][y * scale : (y + patch) * scale, x * scale : (x + patch) * scale]
        hp = dihedral(hp, k & 3, bool(k & 4), (0, 1))
        xs.append(lp.transpose(2, 0, 1))
        ys.append(hp.transpose(2, 0, 1))
        qs.append(q)
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255)
    y = torch.from_numpy(np.stack(ys).astype(np.float32) / 255)
    return x, y, qs


def cond_map(spec, qualities, shape) -> torch.Tensor:
    lo, hi = spec.level_range
    values = [spec.condition_value(float(min(max(q, lo), hi))) for q in qualities]
    b, _, h, w = shape
    return torch.tensor(values, dtype=torch.float32).view(b, 1, 1, 1).expand(b, 1, h, w)


def chain(deblocker, dspec, upscaler, x, qualities):
    cleaned = deblocker(x, cond_map(dspec, qualities, x.shape))
    return upscaler(cleaned.float())


@torch.no_grad()
def validate(deblocker, dspec, upscaler, val, scale: int) -> dict[int, float]:
    deblocker.eval(), upscaler.eval()
    scores = {}
    for q in VAL_QUALITIES:
        values = []
        for hr, lr in zip(val[0], val[1][q], strict=True):
            x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255)
            out = chain(deblocker, dspec, upscaler, x, [q])[0].clamp(0, 1)
            sr = (out.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            values.append(psnr(sr, hr, crop_border=scale, y_channel=True))
        scores[q] = float(np.mean(values))
    deblocker.train(), upscaler.train()
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deblocker", default=str(zoo_path("deblock-fast")))
    parser.add_argument("--upscaler", default=str(zoo_path("sr-x2")))
    parser.add_argument("--quality", type=int, nargs="+", default=[20, 30, 40, 50, 60, 75, 90])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--val-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=53)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    deblocker, dspec = load_model(args.deblocker)
    upscaler, uspec = load_model(args.upscaler)
    scale = uspec.scale
    files = [f for folder in args.data for f in list_images(folder, recursive=True)]
    train_files, val_files = split_held_out(files, seed=0, count=5)
    train = load_pairs(train_files, args.inputs, args.quality, scale)
    keep = [i for i, img in enumerate(train[0]) if min(img.shape[:2]) >= args.patch * scale]
    train = ([train[0][i] for i in keep], {q: [v[i] for i in keep] for q, v in train[1].items()})
    val = load_pairs(val_files, args.inputs, list(VAL_QUALITIES), scale)
    params = list(deblocker.parameters()) + list(upscaler.parameters())
    optimizer = torch.optim.Adam(params, lr=args.lr)
    # cosine decay to 1/10: one schedule whatever the length
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: 0.1 + 0.45 * (1 + np.cos(np.pi * min(t / args.steps, 1.0)))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    state_path, step, best = args.out / "state.pt", 0, None
    if args.resume and state_path.exists():
        state = torch.load(state_path, weights_only=False)
        deblocker.load_state_dict(state["deblocker"])
        upscaler.load_state_dict(state["upscaler"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, best = state["step"], state["best"]
    deblocker.train(), upscaler.train()
    deblocker.to(memory_format=torch.channels_last)
    upscaler.to(memory_format=torch.channels_last)
    log = (args.out / "log.csv").open("a", newline="")
    writer = csv.writer(log)
    if step == 0:
        scores = validate(deblocker, dspec, upscaler, val, scale)
        best = scores[30]
        writer.writerow([0, "", f"{scores[30]:.4f}", f"{scores[75]:.4f}", 0.0])
        print(f"start: val q30 {scores[30]:.4f} q75 {scores[75]:.4f}", flush=True)
    started, losses = time.perf_counter(), []
    while step < args.steps:
        rng = np.random.default_rng([args.seed, step])
        x, y, qs = make_batch(rng, *train, args.quality, args.batch, args.patch, scale)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = chain(deblocker, dspec, upscaler, x, qs)
        loss = F.l1_loss(pred.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(float(loss.detach()))
        if step % args.val_every == 0 or step == args.steps:
            scores = validate(deblocker, dspec, upscaler, val, scale)
            elapsed = time.perf_counter() - started
            writer.writerow(
                [
                    step,
                    f"{np.mean(losses):.5f}",
                    f"{scores[30]:.4f}",
                    f"{scores[75]:.4f}",
                    f"{elapsed:.0f}",
                ]
            )
            log.flush()
            print(
                f"step {step}: loss {np.mean(losses):.5f} val q30 {scores[30]:.4f} "
                f"q75 {scores[75]:.4f} ({elapsed:.0f} s)",
                flush=True,
            )
            losses = []
            if scores[30] > best:
                best = scores[30]
                save_model(args.out / "deblock.safetensors", deblocker, dspec)
                save_model(args.out / "sr.safetensors", upscaler, uspec)
            torch.save(
                {
                    "deblocker": deblocker.state_dict(),
                    "upscaler": upscaler.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                    "best": best,
                },
                state_path,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
