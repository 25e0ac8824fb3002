"""Before/after pictures for the README, made with the shipped models and `scn` itself.

Usage: python benchmarks/readme_figures.py [upscale] [denoise] [deblock]
(default: all three; writes docs/images/<task>.png)

upscale: the shipped example image is downscaled x2 (MATLAB bicubic), then `scn upscale` brings
it back; the figure shows a crop of input (pixel-replicated), bicubic, SCN and the original.
denoise: the example image in gray plus Gaussian noise sigma 25, saved as an 8-bit PNG (what a
user has), then `scn denoise --sigma 25`; BM3D (told the sigma) beside it when installed.
deblock: the example image in gray saved as a quality-10 JPEG, then `scn deblock` (the quality
is estimated from the file's quantisation tables).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from scn_deploy.degrade import bicubic_degrade, imresize
from scn_deploy.errors import ConfigError
from scn_deploy.imageio import read_image, write_image
from scn_deploy.metrics import psnr
from scn_deploy.restore import to_dtype

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images"
EXAMPLE = ROOT / "examples" / "astronaut.png"


def label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0) if img.ndim == 3 else 0, -1)
    white = (255, 255, 255) if img.ndim == 3 else 255
    cv2.putText(img, text, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, white, 1, cv2.LINE_AA)
    return img


def run_scn(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "scn_deploy.cli", *args, "--quiet"], check=True)


def save_strip(name: str, panels: list[tuple[np.ndarray, str]], y0: int, x0: int, size: int):
    crops = [label(img[y0 : y0 + size, x0 : x0 + size], text) for img, text in panels]
    path = OUT / f"{name}.png"
    write_image(path, np.concatenate(crops, axis=1))
    return path


def example_gray() -> np.ndarray:
    return cv2.cvtColor(read_image(EXAMPLE), cv2.COLOR_RGB2GRAY)


def upscale_figure() -> Path:
    hr = read_image(EXAMPLE)
    lr = bicubic_degrade(hr, 2)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "lr.png", Path(tmp) / "sr.png"
        write_image(src, lr)
        run_scn("upscale", str(src), "--scale", "2", "-o", str(out))
        sr = read_image(out)
    bic = imresize(lr, scale=2)
    return save_strip(
        "upscale",
        [
            (np.repeat(np.repeat(lr, 2, 0), 2, 1), "input x2 (nearest)"),
            (bic, f"bicubic {psnr(bic, hr, 2):.2f} dB"),
            (sr, f"SCN sr-x2 {psnr(sr, hr, 2):.2f} dB"),
            (hr, "original"),
        ],
        40,
        50,
        160,
    )


def denoise_figure(sigma: float = 25.0) -> Path:
    clean = example_gray()
    rng = np.random.default_rng(0)
    noisy = np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "noisy.png", Path(tmp) / "out.png"
        write_image(src, noisy)
        run_scn("denoise", str(src), "--sigma", f"{sigma:g}", "-o", str(out))
        restored = read_image(out)
    panels = [(noisy, f"noisy s{sigma:g} {psnr(noisy, clean):.2f} dB")]
    try:
        from scn_deploy.baselines import bm3d_denoise

        bm3d = to_dtype(bm3d_denoise(noisy.astype(np.float64) / 255, sigma), np.uint8)
        panels.append((bm3d, f"BM3D {psnr(bm3d, clean):.2f} dB"))
    except ConfigError as exc:  # the BM3D panel is optional (bm3d not installed)
        print(f"(no BM3D panel: {exc})", file=sys.stderr)
    panels += [(restored, f"SCN denoise {psnr(restored, clean):.2f} dB"), (clean, "original")]
    return save_strip("denoise", panels, 20, 80, 150)


def deblock_figure(quality: int = 10) -> Path:
    clean = example_gray()
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "photo.jpg", Path(tmp) / "out.png"
        cv2.imwrite(str(src), clean, [cv2.IMWRITE_JPEG_QUALITY, quality])
        coded = read_image(src)
        run_scn("deblock", str(src), "-o", str(out))
        restored = read_image(out)
    return save_strip(
        "deblock",
        [
            (coded, f"JPEG q{quality} {psnr(coded, clean):.2f} dB"),
            (restored, f"SCN deblock {psnr(restored, clean):.2f} dB"),
            (clean, "original"),
        ],
        20,
        80,
        150,
    )


FIGURES = {"upscale": upscale_figure, "denoise": denoise_figure, "deblock": deblock_figure}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or list(FIGURES):
        print(FIGURES[name]())
