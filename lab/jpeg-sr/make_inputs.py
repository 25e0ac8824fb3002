"""Training inputs for an SR model that upscales JPEGs (`scn train --inputs`).

For every training image: the bicubic LR (modcropped HR, MATLAB imresize, as `scn train`
makes it), JPEG-coded in colour at each quality (OpenCV, 4:2:0, the `scn eval --jpeg`
protocol). With `--stage deblocked` (the default) it is then restored by the zoo's `deblock`
model at that quality, exactly as `scn upscale --deblock auto` prepares a JPEG (same engine
choice, float result rounded to uint8 here); with `--stage jpeg` the decoded JPEG itself is the
input (for an SR model trained end to end on compressed inputs). One folder per quality:
OUT/q<Q>/<stem>.png. Keep OUT outside the repository.

    python lab/jpeg-sr/make_inputs.py --data $SCN_DATA/train/T91 --data $SCN_DATA/train/BSD200
        --out /path/outside/the/repo [--quality 20 30 40 50 60 75 90] [--stage jpeg]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from scn_deploy.degrade import bicubic_degrade, jpeg_compress
from scn_deploy.engines import load_engine
from scn_deploy.imageio import list_images, read_image, write_image
from scn_deploy.restore import RestoreOptions, Restorer, to_dtype
from scn_deploy.train.data import to_channels
from scn_deploy.zoo import zoo_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--quality", type=int, nargs="+", default=[20, 30, 40, 50, 60, 75, 90])
    parser.add_argument("--stage", choices=["deblocked", "jpeg"], default="deblocked")
    args = parser.parse_args()
    restorer = None
    if args.stage == "deblocked":
        restorer = Restorer(load_engine(zoo_path("deblock")), RestoreOptions(tile="auto"))
    files = [f for folder in args.data for f in list_images(folder, recursive=True)]
    started = time.perf_counter()
    for n, path in enumerate(files, 1):
        hr = to_channels(read_image(path), gray=False)
        h, w = hr.shape[:2]
        hr = hr[: h - h % args.scale, : w - w % args.scale]
        lr = bicubic_degrade(hr, args.scale)
        for q in args.quality:
            target = args.out / f"q{q}" / f"{path.stem}.png"
            if target.exists():
                continue
            coded = jpeg_compress(lr, q)
            if restorer is not None:
                coded = to_dtype(restorer.restore(coded, float(q)), np.uint8)
            write_image(target, coded)
        if n % 25 == 0:
            print(f"{n}/{len(files)} images, {time.perf_counter() - started:.0f} s", flush=True)
    print(f"done: {len(files)} images x {len(args.quality)} qualities in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
