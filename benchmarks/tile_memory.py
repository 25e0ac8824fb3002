"""Peak memory of `scn denoise` / `scn upscale` on a large photo: tiles, not the image.

Usage:
    python benchmarks/tile_memory.py [--width 6000 --height 4000] [--tiles 256 512 1024 auto]
        [--task denoise] [--threads 1] [--json FILE]

Writes a WIDTHxHEIGHT RGB PNG (smooth noise + grain, a photo stand-in), a tiny model with
perturbed weights, then runs the real command line once per setting in a fresh process and
reads that process's peak resident memory (ru_maxrss from wait4). Reported with it:
the process baseline (Python + torch + the model on a 64x64 image), the image buffers the
command must hold (decoded input + output, uint8), and what is left: the working memory of
tiling. A smaller image at the same tile shows that the working memory does not grow with the
image; --whole-sizes adds whole-image runs (tile 0) for contrast.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scn_deploy.arch import preset_spec
from scn_deploy.arch.scn import build_network
from scn_deploy.modelfile import save_model


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields plus grain, uint8 RGB, built band by band (little memory)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 64 + 2, width // 64 + 2, 3)).astype(np.float32)
    out = np.empty((height, width, 3), np.uint8)
    for y0 in range(0, height, 512):
        rows = np.arange(y0, min(height, y0 + 512))
        band = coarse[rows // 64][:, np.arange(width) // 64]
        grain = rng.random(band.shape, dtype=np.float32)
        out[rows] = np.clip((0.8 * band + 0.2 * grain) * 255, 0, 255).astype(np.uint8)
    return out


def make_model(folder: Path, task: str) -> Path:
    spec = (
        preset_spec("tiny", task="sr", scale=2)
        if task == "upscale"
        else preset_spec("tiny", task="denoise", level_range=(0.0, 75.0))
    )
    torch.manual_seed(0)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return save_model(folder / f"tiny-{task}.safetensors", model, spec)


def run_cli(args: list[str], threads: int) -> tuple[float, float, str]:
    """Run `scn ARGS` in a fresh process; (peak RSS MiB, seconds, stderr tail)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    code = "from scn_deploy.cli import app; app()"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stdout = proc.stdout.read() if proc.stdout else ""
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"scn {' '.join(args)} failed:\n{stdout}\n{stderr}")
    return usage.ru_maxrss / 1024, seconds, stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--tiles", nargs="+", default=["256", "512", "1024", "auto"])
    parser.add_argument("--task", choices=["denoise", "upscale"], default="denoise")
    parser.add_argument("--small", type=int, nargs=2, default=[1500, 1000], metavar=("W", "H"))
    parser.add_argument(
        "--whole-sizes", type=int, nargs="*", default=[500, 1000], help="whole-image runs: heights"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = make_model(folder, args.task)
        scale = 2 if args.task == "upscale" else 1
        level = ["--sigma", "10"] if args.task == "denoise" else []

        def image(width: int, height: int) -> Path:
            path = folder / f"in-{width}x{height}.png"
            if not path.exists():
                Image.fromarray(photo_like(width, height)).save(path, compress_level=1)
            return path

        def measure(width: int, height: int, tile: str) -> dict[str, object]:
            out = folder / "out"
            cli = [args.task, str(image(width, height)), "-o", str(out), "--model", str(model)]
            rss, seconds, last = run_cli(
                [*cli, *level, "--tile", tile, "--overwrite"], args.threads
            )
            buffers = width * height * 3 * (1 + scale * scale) / 2**20
            row = {
                "image": f"{width}x{height}",
                "tile": tile,
                "peak_rss_mib": round(rss, 1),
                "image_buffers_mib": round(buffers, 1),
                "seconds": round(seconds, 1),
                "summary": last,
            }
            rows.append(row)
            print(
                f"{row['image']:>10} tile {tile:>5}: peak RSS {rss:8.1f} MiB "
                f"(in+out buffers {buffers:6.1f} MiB), {seconds:6.1f} s   [{last}]",
                flush=True,
            )
            return row

        baseline = measure(64, 64, "0")
        for tile in args.tiles:
            measure(args.width, args.height, tile)
        measure(*args.small, "512")
        for h in args.whole_sizes:
            measure(h * 3 // 2, h, "0")
    base = float(baseline["peak_rss_mib"])  # type: ignore[arg-type]
    print(f"\nbaseline (Python + torch + model, 64x64 image): {base:.0f} MiB")
    for row in rows[1:]:
        extra = float(row["peak_rss_mib"]) - base - float(row["image_buffers_mib"])  # type: ignore[arg-type]
        row["working_mib"] = round(extra, 1)
        print(f"{row['image']:>10} tile {row['tile']:>5}: working memory {extra:7.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
