"""Before/after pictures for the README, made with the shipped models and `scn` itself.

Usage: python benchmarks/readme_figures.py   (writes docs/images/*.png)

upscale: the shipped example image is downscaled x2 (MATLAB bicubic), then `scn upscale` brings
it back; the figure shows a crop of input (pixel-replicated), bicubic, SCN and the original.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.degrade import bicubic_degrade, imresize
from scn_deploy.imageio import read_image, write_image
from scn_deploy.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"


def label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def upscale_figure() -> Path:
    hr = read_image(ROOT / "examples" / "astronaut.png")
    lr = bicubic_degrade(hr, 2)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "lr.png"
        write_image(src, lr)
        out = Path(tmp) / "sr.png"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "scn_deploy.cli",
                "upscale",
                str(src),
                "--scale",
                "2",
                "-o",
                str(out),
                "--quiet",
            ],
            check=True,
        )
        sr = read_image(out)
    bic = imresize(lr, scale=2)
    y0, x0, size = 40, 50, 160
    crops = [
        label(
            np.repeat(np.repeat(lr, 2, 0), 2, 1)[y0 : y0 + size, x0 : x0 + size],
            "input x2 (nearest)",
        ),
        label(bic[y0 : y0 + size, x0 : x0 + size], f"bicubic {psnr(bic, hr, 2):.2f} dB"),
        label(sr[y0 : y0 + size, x0 : x0 + size], f"SCN sr-x2 {psnr(sr, hr, 2):.2f} dB"),
        label(hr[y0 : y0 + size, x0 : x0 + size], "original"),
    ]
    path = OUT / "upscale.png"
    write_image(path, np.concatenate(crops, axis=1))
    return path


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    print(upscale_figure())
