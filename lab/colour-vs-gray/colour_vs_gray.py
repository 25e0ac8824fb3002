"""A colour restoration model against the gray one run channel by channel, on held-out images.

Before a colour `denoise` / `deblock` model ships it has to beat what `scn denoise` did without
it: the gray model applied to R, G and B separately. The comparison uses the images that the
colour model's training run held out for validation (same files, same `--seed`, same
`--val-count`), never a benchmark set, so it can decide what ships without test-set selection.

    python lab/colour-vs-gray/colour_vs_gray.py --colour runs/denoise/best.safetensors \
        --gray models/denoise-gray.safetensors --data ../shared/data/train/T91 \
        --data ../shared/data/train/BSD200 --seed 0 --level 15 --level 25 --level 50

Prints PSNR-Y and PSNR-RGB (no border crop) per level for both, averaged over the images
(centre crops of at most --crop pixels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scn_deploy.degrade import add_gaussian_noise, jpeg_compress
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.imageio import read_image
from scn_deploy.metrics import psnr
from scn_deploy.restore import Restorer, to_dtype
from scn_deploy.train.data import collect_files
from scn_deploy.train.validation import split_held_out


def as_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        raise SystemExit("8-bit images only")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    return img[..., :3]


def centre_crop(img: np.ndarray, crop: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(crop, h) // 8 * 8, min(crop, w) // 8 * 8
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def degrade(clean: np.ndarray, task: str, level: float, seed: int) -> np.ndarray:
    if task == "denoise":
        return add_gaussian_noise(clean / 255.0, level, seed).astype(np.float32)
    return jpeg_compress(clean, int(level))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--colour", required=True, help="colour (3-channel) model file")
    ap.add_argument("--gray", required=True, help="gray (1-channel) model file")
    ap.add_argument("--data", action="append", required=True, help="training folder(s)")
    ap.add_argument("--seed", type=int, default=0, help="the colour run's --seed")
    ap.add_argument("--val-count", type=int, default=5, help="the colour run's --val-count")
    ap.add_argument("--level", type=float, action="append", help="sigma or JPEG quality")
    ap.add_argument("--crop", type=int, default=256, help="centre-crop size (pixels)")
    ap.add_argument("--engine", default="onnx", help="inference engine (torch, onnx)")
    ap.add_argument("--json", type=Path, help="also write the table here")
    args = ap.parse_args()

    colour = Restorer(load_engine(args.colour, EngineOptions(engine=args.engine)))
    gray = Restorer(load_engine(args.gray, EngineOptions(engine=args.engine)))
    task = colour.spec.task.name
    if colour.spec.channels != 3 or gray.spec.channels != 1 or gray.spec.task != colour.spec.task:
        raise SystemExit("need a 3-channel --colour and a 1-channel --gray model of one task")
    levels = args.level or ([15.0, 25.0, 50.0] if task == "denoise" else [10.0, 20.0, 40.0])
    files = split_held_out(collect_files(args.data), seed=args.seed, count=args.val_count)[1]
    images = [centre_crop(as_rgb(read_image(f)), args.crop) for f in files]
    print("held out:", ", ".join(f.name for f in files))
    rows = []
    for level in levels:
        row: dict[str, float] = {"level": level}
        for name, restorer in (("input", None), ("gray per channel", gray), ("colour", colour)):
            y, rgb = [], []
            for i, clean in enumerate(images):
                noisy = degrade(clean, task, level, i)
                if restorer is None:  # the degraded input, as an 8-bit image
                    out = to_dtype(np.clip(noisy, 0, 1), np.uint8) if task == "denoise" else noisy
                else:
                    out = to_dtype(restorer.restore(noisy, float(level)), np.uint8)
                y.append(psnr(out, clean, y_channel=True))
                rgb.append(psnr(out, clean, y_channel=False))
            row[f"{name} Y"], row[f"{name} RGB"] = float(np.mean(y)), float(np.mean(rgb))
        rows.append(row)
        print(
            f"{task} {level:g}: input {row['input Y']:.2f}/{row['input RGB']:.2f}  "
            f"gray per channel {row['gray per channel Y']:.2f}/{row['gray per channel RGB']:.2f}  "
            f"colour {row['colour Y']:.2f}/{row['colour RGB']:.2f}  (PSNR-Y/PSNR-RGB dB)"
        )
    if args.json:
        table = {"held_out": [f.name for f in files], "rows": rows}
        args.json.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
