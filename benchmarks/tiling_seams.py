"""Seam statistics of tiled inference: tiled output vs whole-image output on real photos.

Usage:
    python benchmarks/tiling_seams.py [--tiles 64 96 128 256] [--model FILE ...] [--json FILE]

For every model (default: tiny sr x2/x3/x4, denoise and deblock networks with perturbed
weights; add trained model files with --model) and every skimage photo (astronaut, coffee,
chelsea, camera), restore the photo whole and tiled at each tile size (default overlap: the
measured receptive field), both quantised to uint8, and report the share of pixels within
1 grey level, the largest difference and the mean difference. Also prints each model's
measured receptive field, the architecture bound and the default overlap.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data

from scn_deploy.arch import preset_spec
from scn_deploy.arch.facts import receptive_field_bound
from scn_deploy.arch.scn import build_network
from scn_deploy.engines import load_engine
from scn_deploy.modelfile import save_model
from scn_deploy.restore import RestoreOptions, Restorer
from scn_deploy.tiling import default_overlap, receptive_field

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")


def tiny_models(folder: Path) -> list[Path]:
    """Tiny networks with perturbed weights (restoration: a residual of a few grey levels)."""
    specs = [
        preset_spec("tiny", task="sr", scale=2),
        preset_spec("tiny", task="sr", scale=3),
        preset_spec("tiny", task="sr", scale=4),
        preset_spec("tiny", task="denoise", level_range=(0.0, 75.0)),
        preset_spec("tiny", task="deblock", level_range=(10.0, 90.0)),
    ]
    paths = []
    for i, spec in enumerate(specs):
        torch.manual_seed(i)
        model = build_network(spec.arch).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
            if spec.scale == 1:
                model.tail.parametrizations.weight.original0.mul_(0.1)
        name = f"tiny-{spec.task}{spec.scale if spec.task.upscales else ''}.safetensors"
        paths.append(save_model(folder / name, model, spec))
    return paths


def level_for(spec) -> float | None:
    if not spec.conditioned:
        return None
    return 25.0 if spec.task.name == "denoise" else 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[64, 96, 128, 256])
    parser.add_argument("--model", type=Path, nargs="*", default=[], help="extra model files")
    parser.add_argument("--no-tiny", action="store_true", help="only the --model files")
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS))
    parser.add_argument("--json", type=Path, help="write all rows to this file")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = ([] if args.no_tiny else tiny_models(Path(tmp))) + list(args.model)
        for path in models:
            engine = load_engine(path)
            spec = engine.spec
            t0 = time.perf_counter()
            rf = receptive_field(engine)
            t_rf = time.perf_counter() - t0
            overlap = default_overlap(engine)
            bound = receptive_field_bound(spec.arch, engine.num_scales)
            print(
                f"\n{path.name}: {spec.describe()}, {engine.num_scales} scales; receptive field "
                f"{rf.describe()} in {t_rf:.2f} s, bound {bound} px -> overlap {overlap} px"
            )
            print(f"{'photo':>10} {'size':>9} {'tile':>5} {'<=1 level':>10} {'max':>4} {'mean':>8}")
            for name in args.photos:
                image = getattr(data, name)()
                level = level_for(spec)
                whole = Restorer(engine).restore(image, level, dtype=np.uint8).astype(np.int16)
                for tile in args.tiles:
                    tiled = Restorer(engine, RestoreOptions(tile=tile, batch=4)).restore(
                        image, level, dtype=np.uint8
                    )
                    diff = np.abs(whole - tiled.astype(np.int16))
                    row = {
                        "model": path.name,
                        "task": spec.task.name,
                        "scale": spec.scale,
                        "receptive_field": rf.radius,
                        "overlap": overlap,
                        "photo": name,
                        "size": f"{image.shape[1]}x{image.shape[0]}",
                        "tile": tile,
                        "within_1": float((diff <= 1).mean()),
                        "max": int(diff.max()),
                        "mean": float(diff.mean()),
                    }
                    rows.append(row)
                    print(
                        f"{name:>10} {row['size']:>9} {tile:>5} {row['within_1']:>10.6f} "
                        f"{row['max']:>4} {row['mean']:>8.5f}"
                    )
    worst = min(r["within_1"] for r in rows)
    print(
        f"\nall {len(rows)} cases: worst share within 1 level {worst:.6f}, "
        f"largest difference {max(r['max'] for r in rows)}"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
