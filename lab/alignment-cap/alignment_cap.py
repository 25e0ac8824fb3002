"""How far tiled output drifts from whole-image output when the pyramid alignment is capped.

`scn_deploy.arch.facts.MAX_ALIGNMENT` caps the window alignment (729 px for ratio 2/3, where 8
or 9 scales would need 2,187 or 6,561 px), so the coarsest levels of a deep pyramid are no longer
shared exactly between tiles and the whole image. This runs a model on a photo (scikit-image's
astronaut, tiled with `np.tile` up to the requested size) whole and tiled, with the cap lowered
to `--cap`, and prints the difference in 8-bit grey levels. Lowering the cap on a shallow
pyramid shows the effect of one inexact level at a cost a CPU can afford:

    python lab/alignment-cap/alignment_cap.py runs/ablation/r23/last.safetensors --scales 5 \\
        --cap 27 --size 324 --tile 135 --overlap 81
"""

from __future__ import annotations

import argparse

import numpy as np
from skimage import data

from scn_deploy import tiling
from scn_deploy.arch import facts
from scn_deploy.engines import EngineOptions, load_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--scales", type=int, required=True, help="evaluation scales")
    parser.add_argument("--cap", type=int, required=True, help="MAX_ALIGNMENT to use (px)")
    parser.add_argument("--size", type=int, default=324, help="square input side (px)")
    parser.add_argument("--tile", type=int, required=True, help="core side (px)")
    parser.add_argument("--overlap", type=int, required=True, help="context per side (px)")
    args = parser.parse_args()

    facts.MAX_ALIGNMENT = args.cap
    engine = load_engine(args.model, EngineOptions(num_scales=args.scales))
    arch = engine.spec.arch
    photo = data.astronaut()
    reps = -(-args.size // photo.shape[0])
    image = np.tile(photo, (reps, reps, 1))[: args.size, : args.size]
    x = image.astype(np.float32).transpose(2, 0, 1)[None] / 255
    rf = tiling.measure_receptive_field(engine)
    plan = tiling.TilePlanner.for_engine(
        engine, args.size, args.size, tile=args.tile, overlap=args.overlap
    )
    print(
        f"levels {facts.effective_levels(arch, args.scales)}, alignment "
        f"{facts.pyramid_alignment(arch, args.scales)} px (cap {args.cap}), exact levels "
        f"{facts.aligned_levels(arch, args.scales)}; receptive field {rf.describe()}; "
        f"{plan.describe()}"
    )
    whole = tiling.run_tiled(engine, x, tile=0)
    tiled = tiling.run_tiled(engine, x, tile=args.tile, overlap=args.overlap)
    diff = np.abs(whole - tiled) * 255
    print(
        f"tiled vs whole, grey levels: max {diff.max():.4f}, mean {diff.mean():.5f}, "
        f"99.9th percentile {np.quantile(diff, 0.999):.4f}"
    )


if __name__ == "__main__":
    main()
