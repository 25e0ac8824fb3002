"""Pack training folders as lossless WebP into a git-ignored folder, to `carry` to a GPU machine.

The GPU machine receives the working tree (64 MiB in all) and nothing else; T91 + BSD200 are
61 MB as PNG and ~41 MB as lossless WebP, Train400 (gray) a few MB more. Pixels are unchanged
(lossless; a check decodes every file again and compares).

Usage:
    python benchmarks/pack_training_data.py T91 BSD200 [Train400] [-o .carry/train]
then, on the device: scn train --data .carry/train/T91 --data .carry/train/BSD200 ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.imageio import list_images, read_image
from scn_deploy.paths import data_root


def pack(name: str, out: Path) -> tuple[int, int]:
    """Pack data_root()/train/NAME into OUT/NAME; returns (files, bytes written)."""
    src = data_root() / "train" / name
    dst = out / name
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    paths = list_images(src)
    for path in paths:
        img = read_image(path)  # RGB or gray, as stored
        bgr = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless
        if not ok:
            raise SystemExit(f"{path}: WebP encoding failed")
        back = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if not np.array_equal(back, bgr):
            raise SystemExit(f"{path}: the WebP copy is not lossless")
        target = dst / f"{path.stem}.webp"
        target.write_bytes(data.tobytes())
        total += target.stat().st_size
    return len(paths), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="folders of <data root>/train to pack")
    parser.add_argument("-o", "--out", type=Path, default=Path(".carry/train"))
    args = parser.parse_args()
    for name in args.names:
        files, size = pack(name, args.out)
        print(f"{name}: {files} images, {size / 1e6:.1f} MB in {args.out / name}")


if __name__ == "__main__":
    main()
