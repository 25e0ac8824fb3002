"""End-to-end speed and memory on a real photo, against `scn bench` in the same run.

Makes a 2000x1500 JPEG (quality 90) from real photographs (a 5x5 mosaic of B100 crops when
the benchmark data is present, else scikit-image's astronaut, resized), then runs, each in a
fresh process whose peak RSS is recorded:

- `scn upscale PHOTO --scale 2 --deblock off` (the SR path alone) with default options and
  with each --precision given, each twice: "cold" (the first run: the engine compiles for
  the tile shape and the receptive field is measured, both then cached) and "warm" (what
  every later run costs),
- `scn upscale PHOTO --scale 2` as it is by default for a JPEG: deblocked first (warm),
- `scn denoise PHOTO --sigma 25` and `scn denoise PHOTO --sigma 25 --fast` (the fast tier),
  each cold then warm,
- `scn bench` on the engine and precision that the upscale used, after each upscale run,

and reports output MP/s, the ratio of the upscale to the bench, and peak RSS. With
`--repeat N` the warm upscale runs N times, each followed by its bench, and the medians are
reported (the samples are kept in the JSON).

    python benchmarks/photo_e2e.py [--precision int8 ...] [--only denoise] [--repeat 3]
        [--json-file FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.cpu import cpu_description
from scn_deploy.paths import data_root

HEIGHT, WIDTH = 1500, 2000


def make_photo(path: Path) -> str:
    """Write the test photo; returns what it was made from."""
    root = data_root()
    folder = root / "benchmarks/sr/B100" if root is not None else None
    if folder is not None and folder.is_dir():
        crops = []
        for f in sorted(folder.glob("*.jpg")):
            image = cv2.imread(str(f))
            if image is not None and image.shape[:2] == (321, 481):
                crops.append(image[:300, :400])
            if len(crops) == 25:
                break
        rows = [np.concatenate(crops[r * 5 : (r + 1) * 5], axis=1) for r in range(5)]
        photo, source = np.concatenate(rows, axis=0), "a 5x5 mosaic of 400x300 B100 crops"
    else:
        from skimage import data

        photo = cv2.resize(data.astronaut()[..., ::-1], (WIDTH, HEIGHT), cv2.INTER_CUBIC)
        source = "scikit-image's astronaut, resized"
    cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return source


def run_child(args: list[str], cache: str) -> tuple[dict, float]:
    """Run `scn ARGS --json` in a fresh process with the user cache `cache`: (its JSON
    summary, its peak RSS in MiB)."""
    code = (
        "import json, resource, sys\n"
        "from scn_deploy.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "    print(json.dumps({'peak_rss_mb': rss}), file=sys.stderr)\n"
    )
    env = {**os.environ, "SCN_CACHE": cache}
    done = subprocess.run(
        [sys.executable, "-c", code, *args, "--json"], capture_output=True, text=True, env=env
    )
    if done.returncode:
        raise SystemExit(f"scn {' '.join(args)} failed:\n{done.stderr}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rss = json.loads(done.stderr.strip().splitlines()[-1])["peak_rss_mb"]
    return summary, rss


def report(doc: dict, json_file: Path | None) -> None:
    """Print a benchmark's result as JSON and write it to `json_file` when one is given."""
    text = json.dumps(doc, indent=2)
    print(text)
    if json_file:
        json_file.write_text(text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", action="append", default=[], help="also this precision")
    parser.add_argument("--json-file", type=Path, help="write the results here")
    parser.add_argument(
        "--only", choices=["upscale", "denoise"], help="run only these rows (default: all)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="warm upscale runs, each followed by its bench; medians are reported (this "
        "machine's speed drifts by 10%% from minute to minute)",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        source = make_photo(photo)
        out_mp = HEIGHT * WIDTH * 4 / 1e6
        cache = f"{tmp}/cache"  # empty at first: the first run compiles and measures
        runs = [(p, state) for p in [None, *args.precision] for state in ("cold", "warm")]
        for precision, state in runs if args.only in (None, "upscale") else []:
            extra = ["--deblock", "off"]
            extra += [] if precision is None else ["--precision", precision]
            upscale = ["upscale", str(photo), "--scale", "2", "-o", f"{tmp}/up.png", *extra]
            samples = []  # (seconds, bench MP/s, peak RSS): warm runs alternate with benches
            for _ in range(args.repeat if state == "warm" else 1):
                summary, rss = run_child([*upscale, "--overwrite", "--quiet"], cache)
                bench_args = ["bench", "--engine", summary["engine"]]
                bench_args += ["--precision", summary["precision"]]
                bench, _ = run_child(bench_args, cache)
                samples.append((summary["seconds"], bench["mp_per_s"], rss))
            seconds = statistics.median(s[0] for s in samples)
            bench_mp_per_s = statistics.median(s[1] for s in samples)
            e2e = out_mp / seconds
            rows.append(
                {
                    "command": " ".join(["scn upscale PHOTO --scale 2", *extra]),
                    "cache": state,
                    "engine": summary["engine"],
                    "precision": summary["precision"],
                    "seconds": seconds,
                    "mp_per_s": e2e,
                    "bench_mp_per_s": bench_mp_per_s,
                    "ratio_to_bench": e2e / bench_mp_per_s,
                    "peak_rss_mb": max(s[2] for s in samples),
                    "samples": [
                        {"seconds": s[0], "bench_mp_per_s": s[1], "peak_rss_mb": s[2]}
                        for s in samples
                    ],
                }
            )
        if args.only in (None, "upscale"):
            upscale = ["upscale", str(photo), "--scale", "2", "-o", f"{tmp}/up.png"]
            summary, rss = run_child([*upscale, "--overwrite", "--quiet"], cache)
            rows.append(
                {
                    "command": "scn upscale PHOTO --scale 2",
                    "cache": "warm",
                    "engine": summary["engine"],
                    "precision": summary["precision"],
                    "seconds": summary["seconds"],
                    "mp_per_s": out_mp / summary["seconds"],
                    "deblocked": summary["deblocked"],
                    "peak_rss_mb": rss,
                }
            )
        tiers = [[], ["--fast"]] if args.only in (None, "denoise") else []
        for extra, state in [(extra, state) for extra in tiers for state in ("cold", "warm")]:
            denoise = ["denoise", str(photo), "--sigma", "25", "-o", f"{tmp}/dn.png", *extra]
            summary, rss = run_child([*denoise, "--overwrite", "--quiet"], cache)
            rows.append(
                {
                    "command": " ".join(["scn denoise PHOTO --sigma 25", *extra]),
                    "cache": state,
                    "model": summary["model_name"],
                    "engine": summary["engine"],
                    "precision": summary["precision"],
                    "seconds": summary["seconds"],
                    "mp_per_s": HEIGHT * WIDTH / 1e6 / summary["seconds"],
                    "peak_rss_mb": rss,
                }
            )
    doc = {"photo": f"{WIDTH}x{HEIGHT} JPEG q90, {source}", "cpu": cpu_description()}
    doc["rows"] = rows
    report(doc, args.json_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
