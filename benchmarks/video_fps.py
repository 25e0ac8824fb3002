"""Video frame rate file to file, against `scn bench` for the same model, engine and precision.

Makes a textured test clip (scikit-image's photographs panned across the frame, H.264 CRF 18,
--seconds at --rate fps; or takes --input), runs `scn upscale CLIP -o OUT.mp4 --json` in a
fresh process (decode, restore, encode and the final stream copy; the model load is outside
the video's timing) and `scn bench --size HxW --json` (the whole-image restoration of one frame,
no file I/O), and prints both frame rates, their ratio, the upscale process's peak RSS and the
CPU. One JSON per run in benchmarks/results/video-fps-<model>-<H>x<W>.json.

    python benchmarks/video_fps.py [--model sr-x2-fast] [--size 360x640] [--seconds 10]
        [--rate 24] [--engine auto] [--precision auto] [--input CLIP] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.bench import host_description

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def panorama(height: int, width: int) -> np.ndarray:
    """scikit-image's colour photographs side by side, scaled to the clip's height plus room
    to pan."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    scaled = [
        cv2.resize(
            p,
            (round(p.shape[1] * height * 1.25 / p.shape[0]), round(height * 1.25)),
            interpolation=cv2.INTER_AREA,
        )
        for p in photos
    ]
    strip = np.concatenate(scaled, axis=1)
    while strip.shape[1] < width * 3:
        strip = np.concatenate([strip, strip[:, ::-1]], axis=1)
    return strip


def make_clip(path: Path, height: int, width: int, seconds: float, rate: int) -> int:
    """A panning clip; returns its frame count."""
    import av

    strip = panorama(height, width)
    frames = round(seconds * rate)
    span_x = strip.shape[1] - width
    span_y = strip.shape[0] - height
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.colorspace = 1  # BT.709, limited range: a common HD tagging
        stream.codec_context.color_range = 1
        for i in range(frames):
            x = round(span_x * i / max(frames - 1, 1))
            y = round(span_y * (0.5 + 0.5 * np.sin(i / rate)))
            crop = np.ascontiguousarray(strip[y : y + height, x : x + width])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="itu709", dst_color_range=1
            )
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return frames


def scn(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "scn_deploy.cli", *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"scn {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sr-x2-fast")
    parser.add_argument("--size", default="360x640", help="HxW of the made clip")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=24)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--input", type=Path, help="a clip to use instead of the made one")
    parser.add_argument("--keep", type=Path, help="keep the clip and the output here")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    common = ["--model", args.model, "--engine", args.engine, "--precision", args.precision]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clip = args.input or folder / f"clip-{height}x{width}.mp4"
        if args.input is None:
            make_clip(clip, height, width, args.seconds, args.rate)
            print(f"made {clip} ({args.seconds:g} s at {args.rate} fps)", file=sys.stderr)
        import av

        with av.open(str(clip)) as c:
            height, width = c.streams.video[0].height, c.streams.video[0].width
        out = folder / f"{clip.stem}_{args.model}.mp4"
        summary = scn("upscale", str(clip), "-o", str(out), "--overwrite", "--json", *common)
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        (video,) = summary["videos"]
        bench = scn("bench", "--size", f"{height}x{width}", "--json", *common)
    image = bench["image"]
    bench_fps = 1.0 / image["seconds"]
    result = {
        "host": host_description("cpu"),
        "model": args.model,
        "size": [height, width],
        "engine": video["engine"],
        "precision": video["precision"],
        "bench_engine": bench["engine"],
        "bench_precision": bench["precision"],
        "frames": video["frames"],
        "video_seconds": video["seconds"],
        "video_fps": video["fps"],
        "bench_fps": bench_fps,
        "ratio": video["fps"] / bench_fps,
        "upscale_peak_rss_mb": rss_mb,
        "encoder": video["encoder"],
        "command": " ".join(["python", "benchmarks/video_fps.py", *sys.argv[1:]]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"video-fps-{args.model}-{height}x{width}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.model} {height}x{width} on {result['engine']} {result['precision']}: "
        f"{video['fps']:.2f} fps file to file ({video['frames']} frames in "
        f"{video['seconds']:.1f} s), scn bench {bench_fps:.2f} fps, ratio {result['ratio']:.2f}; "
        f"peak RSS {rss_mb:.0f} MB; {result['host']}\n-> {target}"
    )


if __name__ == "__main__":
    main()
