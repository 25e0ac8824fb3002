"""PNG writing speed and size: `scn_deploy.png` (1 thread and every core) against Pillow.

The image is what `scn upscale` writes for photo_e2e.py's 2000x1500 photo: that photo
upscaled x2 (bicubic here, so no model is needed), 12 MP. Each encoder runs `--repeat`
times; the fastest run is reported with the file size.

    python benchmarks/png_encode.py [--repeat 5] [--json-file FILE]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from scn_deploy import png
from scn_deploy.cpu import cpu_description

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_e2e import make_photo, report  # a sibling script


def _time(encode, repeat: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        buf = io.BytesIO()
        started = time.perf_counter()
        encode(buf)
        best = min(best, time.perf_counter() - started)
        size = len(buf.getvalue())
    return best, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json-file", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = make_photo(Path(tmp) / "photo.jpg")
        photo = cv2.imread(str(Path(tmp) / "photo.jpg"))[..., ::-1]
    image = np.ascontiguousarray(cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    cores = png._default_threads()
    encoders = {
        f"Pillow, zlib level {png.COMPRESS_LEVEL}": lambda fh: Image.fromarray(image).save(
            fh, format="PNG", compress_level=png.COMPRESS_LEVEL
        ),
        "scn_deploy.png, 1 thread": lambda fh: png.write_png(fh, image, threads=1),
        f"scn_deploy.png, {cores} threads": lambda fh: png.write_png(fh, image, threads=cores),
    }
    rows = []
    for name, encode in encoders.items():
        seconds, size = _time(encode, args.repeat)
        rows.append({"encoder": name, "seconds": round(seconds, 3), "mb": round(size / 1e6, 2)})
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = round(base / row["seconds"], 2)
    doc = {
        "image": f"{image.shape[1]}x{image.shape[0]} RGB, {source} upscaled x2 (bicubic)",
        "cpu": cpu_description(),
        "rows": rows,
    }
    report(doc, args.json_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
