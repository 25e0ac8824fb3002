"""Upscaling JPEG inputs: the compressed-input protocol table and the JPEG vs PNG timing.

Quality: for every JPEG quality Q, `scn eval --task sr --jpeg Q` (the bicubic LR images
JPEG-coded in colour with OpenCV, 4:2:0 chroma) for bicubic, the SR model with `--deblock off`
(what `scn upscale` did before JPEG inputs were handled), `--deblock auto` (the zoo's
deblocking model first) and, when the zoo has one for the scale, the SR model fine-tuned on
deblocked JPEGs (`sr-x2-jpeg`) after the same deblocking, which is what `scn upscale` runs by
default; the clean-input rows come from the model card's results and `sr-xN-bicubic.json`.
One JSON per run in benchmarks/results/jpeg-<model>-q<Q>-<how>.json (kept unless --force);
prints the markdown table for the README.

Timing: the example image (enlarged x3) upscaled by `scn upscale` as a PNG and as a JPEG of
the same size in the same run (`--timing`; best of --repeat runs each), written to
benchmarks/results/jpeg-timing-<model>.json.

    python benchmarks/jpeg_inputs.py [--model sr-x2] [--quality 30 50 75 90]
        [--data Set5 Set14 B100] [--timing] [--repeat 3] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from scn_deploy.bench import host_description
from scn_deploy.modelfile import read_spec
from scn_deploy.zoo import jpeg_companion, zoo_deblockers, zoo_model, zoo_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
EXAMPLE = ROOT / "examples" / "astronaut.png"
HOWS = {
    "bicubic": ["--method", "bicubic"],
    "off": ["--deblock", "off"],
    "auto": ["--deblock", "auto"],
    "jpeg": ["--deblock", "auto", "--jpeg-model"],  # and the zoo's SR model for JPEGs
}


def labels(model: str) -> dict[str, str]:
    colour, _gray = zoo_deblockers()  # the stage `--deblock auto` runs on these colour JPEGs
    stage = colour.stem if colour is not None else "deblock"
    return {
        "bicubic": "bicubic",
        "off": f"{model}, as it is (`--deblock off`)",
        "auto": f"{stage}, then {model}",
        "jpeg": f"{stage}, then {_jpeg_name(read_spec(zoo_path(model)).scale, model)}",
    }


def _jpeg_name(scale: int, model: str) -> str:
    """The JPEG model, with the qualities it serves (the others go to ``model``)."""
    entry = zoo_model("sr", scale, role="jpeg")
    if entry is None:
        return "-"
    served = read_spec(entry.path).jpeg_qualities if entry.installed else None
    if served is None:
        return entry.name
    return f"{entry.name} (q{served[0]}-{served[1]}; {model} above)"


def scn(*args: str) -> None:
    command = [sys.executable, "-m", "scn_deploy.cli", *args]
    print("scn " + shlex.join(args), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def run_evals(model: str, scale: int, qualities: list[int], data: list[str], force: bool) -> None:
    folders = [a for d in data for a in ("--data", d)]
    companion = jpeg_companion(scale)
    for q in qualities:
        for how, flags in HOWS.items():
            out = RESULTS / f"jpeg-{model}-q{q}-{how}.json"
            if (out.exists() and not force) or (how == "jpeg" and companion is None):
                continue
            # "jpeg": as `scn upscale` runs the zoo's default model: the JPEG model for the
            # qualities it serves (`jpeg_qualities`), the standard one for the others
            who = flags if how == "bicubic" else ["--model", model, *flags]
            scn(
                "eval",
                *folders,
                "--task",
                "sr",
                "--scale",
                str(scale),
                "--jpeg",
                str(q),
                *who,
                "--json-file",
                str(out.relative_to(ROOT)),
            )


def _psnr(path: Path, dataset: str, model: str | None = None) -> float | None:
    """PSNR-Y on `dataset` from an `scn eval` JSON, or from a card's results (the plain run
    of `model`: no TTA, as trained)."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    runs = doc.get("evaluations", [doc])
    for run in runs:
        if run.get("tta") or (model is not None and run.get("model") != model):
            continue
        for row in run["results"]:
            if row["dataset"] == dataset:
                return float(row["psnr_y"])
    return None


def table(model: str, scale: int, qualities: list[int], data: list[str]) -> str:
    lines = [
        f"| LR input (x{scale}) | method | " + " | ".join(data) + " |",
        "|---|---|" + "---:|" * len(data),
    ]
    names = labels(model)
    for q in qualities:
        for how in HOWS:
            path = RESULTS / f"jpeg-{model}-q{q}-{how}.json"
            if not path.exists():
                continue
            cells = [_psnr(path, d) for d in data]
            text = " | ".join(f"{c:.2f}" if c is not None else "-" for c in cells)
            lines.append(f"| JPEG q{q} | {names[how]} | {text} |")
    clean = {
        "bicubic": (RESULTS / f"sr-x{scale}-bicubic.json", None),
        model: (zoo_path(model).with_suffix(".json"), model),
    }
    for label, (path, name) in clean.items():
        cells = [_psnr(path, d, name) for d in data]
        text = " | ".join(f"{c:.2f}" if c is not None else "-" for c in cells)
        lines.append(f"| clean (PNG) | {label} | {text} |")
    return "\n".join(lines)


def timing(model: str, scale: int, repeat: int) -> dict:
    """`scn upscale` on the example image as PNG and as JPEG (q75), same size, same run."""
    small = cv2.imread(str(EXAMPLE))
    image = cv2.resize(small, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        png, jpg = Path(tmp) / "photo.png", Path(tmp) / "photo.jpg"
        cv2.imwrite(str(png), image)
        cv2.imwrite(str(jpg), image, [cv2.IMWRITE_JPEG_QUALITY, 75])
        for label, path in (("png", png), ("jpeg q75", jpg)):
            best = None
            for i in range(repeat):
                out = Path(tmp) / f"{path.suffix[1:]}-{i}"
                args = ["upscale", str(path), "--model", model, "-o", str(out), "--json", "-q"]
                done = subprocess.run(
                    [sys.executable, "-m", "scn_deploy.cli", *args],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                doc = json.loads(done.stdout.strip().splitlines()[-1])
                if best is None or doc["seconds"] < best["seconds"]:
                    best = doc
            assert best is not None
            rows[label] = {
                "seconds": best["seconds"],
                "engine": best["engine"],
                "precision": best["precision"],
                "deblocked": best["deblocked"],
            }
    height, width = image.shape[:2]
    return {
        "model": model,
        "scale": scale,
        "input": f"{EXAMPLE.relative_to(ROOT)} enlarged x3 ({width}x{height}), PNG and JPEG q75",
        "host": host_description("cpu"),
        "repeat": repeat,
        "command": "python benchmarks/jpeg_inputs.py --timing",
        "rows": rows,
        "jpeg_vs_png": rows["jpeg q75"]["seconds"] / rows["png"]["seconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sr-x2")
    parser.add_argument("--quality", type=int, nargs="+", default=[30, 50, 75, 90])
    parser.add_argument("--data", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--timing", action="store_true", help="only the JPEG vs PNG timing")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="re-run existing result files")
    args = parser.parse_args()
    os.chdir(ROOT)
    scale = read_spec(zoo_path(args.model)).scale
    if args.timing:
        doc = timing(args.model, scale, args.repeat)
        path = RESULTS / f"jpeg-timing-{args.model}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(json.dumps(doc, indent=2))
        return 0
    run_evals(args.model, scale, args.quality, args.data, args.force)
    print(table(args.model, scale, args.quality, args.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
