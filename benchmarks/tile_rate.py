"""How fast the engine runs per output pixel as windows grow, and what that makes of a photo.

Two parts, in one process and one engine (default: sr-x2, OpenVINO bf16):

1. the engine alone on square windows of each `--sides` and on the 2x2 plan's window of the
   photo (776x1024): output MP/s, median of `--repeat` calls after a warm-up;
2. the whole 2000x1500 photo of photo_e2e.py restored in memory (decoded, tiled, stitched to
   uint8; no file I/O) with each `--tiles` setting: output MP/s, the plan, and the share of
   extra pixels its windows' overlap computes.

`scn bench` times one 256x256 tile. On CPUs whose kernels are cache-bound this rate falls as
windows grow, and no tiling wins it back: small windows pay overlap instead. This script
measures both sides of that trade on the machine at hand.

    python benchmarks/tile_rate.py [--model sr-x2] [--precision bf16] [--engine openvino]
        [--sides 128 256 384 512 768] [--tiles auto 256 512] [--json-file FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.bench import median_seconds
from scn_deploy.cpu import cpu_description
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.restore import RestoreOptions, Restorer
from scn_deploy.zoo import zoo_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_e2e import make_photo, report  # a sibling script


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sr-x2")
    parser.add_argument("--engine", default="openvino")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--sides", type=int, nargs="+", default=[128, 256, 384, 512, 768])
    parser.add_argument("--tiles", nargs="+", default=["auto", "256", "512"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json-file", type=Path)
    args = parser.parse_args()
    options = EngineOptions(engine=args.engine, device="cpu", precision=args.precision)
    model = Path(args.model) if Path(args.model).is_file() else zoo_path(args.model)
    engine = load_engine(model, options)
    spec, scale = engine.spec, engine.spec.scale
    with tempfile.TemporaryDirectory() as tmp:
        source = make_photo(Path(tmp) / "photo.jpg")
        photo = np.ascontiguousarray(cv2.imread(str(Path(tmp) / "photo.jpg"))[..., ::-1])
    rng = np.random.default_rng(0)
    windows = []
    for h, w in [(side, side) for side in args.sides] + [(776, 1024)]:
        x = rng.random((1, spec.channels, h, w), dtype=np.float32)
        level = np.full((1, 1, h, w), 0.5, np.float32) if spec.conditioned else None
        seconds = median_seconds(lambda x=x, level=level: engine.infer(x, level), args.repeat)
        mp_per_s = h * w * scale * scale / 1e6 / seconds
        windows.append({"window": f"{h}x{w}", "mp_per_s": round(mp_per_s, 3)})
        print(f"window {h}x{w}: {mp_per_s:.3f} MP/s", flush=True)
    photos = []
    height, width = photo.shape[:2]
    for tile in args.tiles:
        restorer = Restorer(engine, RestoreOptions(tile=tile if tile == "auto" else int(tile)))
        plan = restorer.plan(height, width)
        computed = sum((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in plan.tiles)
        seconds = median_seconds(
            lambda r=restorer, p=plan: r.restore(photo, dtype=np.uint8, plan=p), args.repeat
        )
        mp_per_s = height * width * scale * scale / 1e6 / seconds
        photos.append(
            {
                "tile": tile,
                "plan": plan.describe(),
                "overlap_extra": round(computed / (height * width) - 1, 3),
                "mp_per_s": round(mp_per_s, 3),
            }
        )
        print(f"photo, tile {tile} ({plan.describe()}): {mp_per_s:.3f} MP/s", flush=True)
    doc = {
        "model": args.model,
        "engine": engine.name,
        "precision": engine.precision,
        "cpu": cpu_description(),
        "photo": f"{width}x{height} JPEG q90, {source}, decoded once",
        "windows": windows,
        "photo_runs": photos,
    }
    report(doc, args.json_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
