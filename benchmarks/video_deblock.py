"""`scn upscale --deblock Q` on a low-bitrate H.264 clip, scored against its uncompressed source.

The source is a panning clip of scikit-image's photographs at --size (HxW, the HR frames,
kept in memory, never compressed). Its LR frames are the MATLAB-style bicubic x2 reduction
(`scn_deploy.degrade.bicubic_degrade`, as for images), encoded once with libx264 at --crf
(a low bitrate: the kbit/s is printed). Then `scn upscale LR.mp4 --scale 2 --deblock off` and
`--deblock Q` for each --quality, plus bicubic upscaling of the decoded LR frames; every output
is decoded as a player would and scored by PSNR-Y against the HR frames (border 2, the SR
protocol). Prints a markdown table; one JSON in benchmarks/results/video-deblock-<model>.json.

    python benchmarks/video_deblock.py [--model sr-x2-fast] [--size 720x1280] [--seconds 2]
        [--crf 35] [--quality 20 30 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from scn_deploy.bench import host_description
from scn_deploy.degrade import bicubic_degrade, imresize
from scn_deploy.metrics import psnr, rgb_to_y

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_fps import panorama  # a sibling script: the made clip's photographs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def hr_frames(height: int, width: int, count: int, rate: int) -> list[np.ndarray]:
    """The uncompressed source: a pan across the photographs, uint8 RGB."""
    strip = panorama(height, width)
    span_x, span_y = strip.shape[1] - width, strip.shape[0] - height
    frames = []
    for i in range(count):
        x = round(span_x * i / max(count - 1, 1) / 3)
        y = round(span_y * (0.5 + 0.5 * np.sin(i / rate)))
        frames.append(np.ascontiguousarray(strip[y : y + height, x : x + width]))
    return frames


def encode(path: Path, frames: list[np.ndarray], rate: int, crf: int) -> float:
    """H.264 at `crf` (BT.709, limited range), returns the video bitrate in kbit/s."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.colorspace = 1
        stream.codec_context.color_range = 1
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="itu709", dst_color_range=1
            )
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.stat().st_size * 8 / 1000 / (len(frames) / rate)


def decode(path: Path) -> list[np.ndarray]:
    """Every frame as RGB by the stream's own matrix and range, as a player would."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        space = "itu709" if stream.codec_context.colorspace == 1 else "itu601"
        rng = stream.codec_context.color_range or 1
        return [
            f.reformat(format="rgb24", src_colorspace=space, src_color_range=rng).to_ndarray()
            for f in c.decode(stream)
        ]


def score(frames: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Mean PSNR-Y over the frames, border 2 (the SR protocol)."""
    if len(frames) != len(reference):
        sys.exit(f"{len(frames)} frames out for {len(reference)} in")
    values = [
        psnr(
            np.clip(np.rint(rgb_to_y(a)), 0, 255).astype(np.uint8),
            np.clip(np.rint(rgb_to_y(b)), 0, 255).astype(np.uint8),
            crop_border=2,
        )
        for a, b in zip(frames, reference, strict=True)
    ]
    return float(np.mean(values))


def upscale(clip: Path, out: Path, model: str, deblock: str) -> dict:
    args = ["upscale", str(clip), "--scale", "2", "--model", model, "--deblock", deblock]
    done = subprocess.run(
        [sys.executable, "-m", "scn_deploy.cli", *args, "-o", str(out), "--overwrite", "--json"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"scn {' '.join(args)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sr-x2-fast")
    parser.add_argument("--size", default="720x1280", help="HxW of the HR (source) frames")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=24)
    parser.add_argument("--crf", type=int, default=35)
    parser.add_argument("--quality", type=int, nargs="+", default=[20, 30, 40])
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    hr = hr_frames(height, width, round(args.seconds * args.rate), args.rate)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "lr.mp4"
        kbps = encode(clip, [bicubic_degrade(f, 2) for f in hr], args.rate, args.crf)
        lr = decode(clip)
        rows.append({"method": "bicubic", "psnr_y": score([imresize(f, 2.0) for f in lr], hr)})
        for deblock in ["off", *map(str, args.quality)]:
            out = Path(tmp) / f"out-{deblock}.mp4"
            summary = upscale(clip, out, args.model, deblock)
            (video,) = summary["videos"]
            label = f"{args.model}, " + (
                "as it is (`--deblock off`)" if deblock == "off" else f"`--deblock {deblock}`"
            )
            rows.append(
                {
                    "method": label,
                    "psnr_y": score(decode(out), hr),
                    "fps": video["fps"],
                    "engine": video["engine"],
                    "precision": video["precision"],
                }
            )
    result = {
        "host": host_description("cpu"),
        "source": f"{len(hr)} frames {width}x{height}, LR {width // 2}x{height // 2}",
        "lr_codec": f"libx264 CRF {args.crf} preset fast, {kbps:.0f} kbit/s",
        "rows": rows,
        "command": " ".join(["python", "benchmarks/video_deblock.py", *sys.argv[1:]]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"video-deblock-{args.model}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"LR clip: {result['source']}, {result['lr_codec']}; {result['host']}")
    print("| method | PSNR-Y vs the uncompressed source | fps |\n|---|---:|---:|")
    for row in rows:
        fps = f"{row['fps']:.1f}" if "fps" in row else "-"
        print(f"| {row['method']} | {row['psnr_y']:.2f} | {fps} |")
    print(f"-> {target}")


if __name__ == "__main__":
    main()
