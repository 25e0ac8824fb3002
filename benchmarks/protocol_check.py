"""Reproduce the protocol check table of ``shared/data/SOURCES.md`` with scn_deploy's own code.

Prints, to 3 decimals, the baseline numbers every SCN result is compared against:

* SR bicubic x2/x3/x4 on Set5 / Set14 / B100: HR modcropped to the scale, LR made from the RGB
  image with MATLAB-style ``imresize(1/s)``, upscaled back with ``imresize(s)`` (uint8 output),
  PSNR/SSIM on the unrounded BT.601 Y channel with ``crop_border = s``.
* JPEG input quality on LIVE1 / Classic5 at q = 10/20/30/40: colour files are turned into Y
  rounded to uint8 (gray files used as they are), encoded as 1-channel JPEG by OpenCV.
* AWGN input PSNR on Set12 / BSD68 at sigma = 15/25/50 (seed 0 + image index, the noisy image
  neither clipped nor quantised), next to the analytic ``20 log10(255 / sigma)``.

The protocols themselves live in ``scn_deploy.evaluate`` (shared with ``scn eval``); this script
only runs them and compares with the reference numbers.

Each line is compared with the expected value; the exit status is 1 if any check fails.
Also times ``imresize`` on a 2040x1356x3 uint8 image (the DIV2K size).

Usage: ``python benchmarks/protocol_check.py [--quick]`` (``--quick``: first 10 B100 images).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scn_deploy.degrade import imresize
from scn_deploy.evaluate import DatasetResult, EvalRequest, evaluate_files
from scn_deploy.imageio import list_images
from scn_deploy.paths import data_root

SCALES = (2, 3, 4)
QUALITIES = (10, 20, 30, 40)
SIGMAS = (15, 25, 50)

# Expected values: PSNR measured in SOURCES.md (3 decimals, must match to +-0.0005),
# SSIM as published (+-0.002), JPEG PSNR as published (+-0.05).
SR_PSNR = {
    "Set5": (33.674, 30.403, 28.429),
    "Set14": (30.230, 27.537, 25.994),
    "B100": (29.560, 27.209, 25.961),
}
SR_SSIM = {
    "Set5": (0.9299, 0.8682, 0.8104),
    "Set14": (0.8688, 0.7742, 0.7027),
    "B100": (0.8431, 0.7385, 0.6675),
}
JPEG_PSNR = {
    "LIVE1": (27.77, 30.07, 31.41, 32.35),
    "Classic5": (27.82, 30.12, 31.48, 32.43),
}


def _run(files: list[Path], task: str, **fields: float | int | str) -> DatasetResult:
    """One dataset through ``scn_deploy.evaluate`` (the code behind ``scn eval``)."""
    request = EvalRequest(data=[files[0].parent], task=task, **fields)  # type: ignore[arg-type]
    request.validate()
    return evaluate_files(files, request, dataset=files[0].parent.name)


def sr_bicubic(files: list[Path], scale: int) -> tuple[float, float]:
    r = _run(files, "sr", level=scale, method="bicubic")
    return r.psnr_y, r.ssim_y


def jpeg_input(files: list[Path], quality: int) -> tuple[float, float]:
    r = _run(files, "deblock", level=quality, method="identity")
    return r.psnr_y, r.ssim_y


def noisy_input(files: list[Path], sigma: float) -> float:
    return _run(files, "denoise", level=sigma, method="identity").psnr_y


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, label: str, value: float, target: float, tol: float, fmt: str) -> str:
        ok = abs(value - target) <= tol
        if not ok:
            self.failures.append(f"{label}: {value:{fmt}} vs {target:{fmt}} (tol {tol})")
        return "ok" if ok else "MISMATCH"


def _time(fn: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def time_imresize() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1356, 0:2040]
    smooth = 127.5 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None]
    img = np.clip(smooth + rng.normal(0, 20, (1356, 2040, 3)), 0, 255).astype(np.uint8)
    print("\nimresize timing, 2040x1356x3 uint8 (median of 5, warm weight cache):")
    for s in SCALES:
        imresize(img, 1.0 / s)  # fill the weight cache
        t_down = _time(lambda s=s: imresize(img, 1.0 / s))
        lr = imresize(img, 1.0 / s)
        imresize(lr, float(s))
        t_up = _time(lambda s=s, lr=lr: imresize(lr, float(s)))
        print(f"  x{s}: downscale {t_down * 1000:7.1f} ms   upscale back {t_up * 1000:7.1f} ms")
    t0 = time.perf_counter()
    imresize(img, output_shape=(1355, 2039))  # new weight tables, 7 taps at full size
    print(
        "  near-identity 2040x1356 -> 2039x1355 (cold weight cache): "
        f"{(time.perf_counter() - t0) * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the first 10 B100 images")
    parser.add_argument("--no-timing", action="store_true", help="skip the imresize timing")
    args = parser.parse_args()

    root = data_root()
    bench = root / "benchmarks" if root is not None else None
    if bench is None or not bench.is_dir():
        print(
            "protocol_check: benchmark data not found (set SCN_DATA or place it at "
            "../shared/data); nothing to check.",
            file=sys.stderr,
        )
        return 2

    rep = Report()
    print(f"data root: {root}\n")
    print("SR bicubic (Y, crop = scale, LR from modcropped RGB, uint8 output)")
    print(f"{'set':<9}{'scale':>6}{'PSNR':>9}{'target':>9}{'':>10}{'SSIM':>9}{'published':>11}")
    for name in ("Set5", "Set14", "B100"):
        files = list_images(bench / "sr" / name)
        if args.quick and name == "B100":
            files = files[:10]
        for k, s in enumerate(SCALES):
            p, q = sr_bicubic(files, s)
            status_p = rep.check(f"{name} x{s} PSNR", round(p, 3), SR_PSNR[name][k], 0.0005, ".3f")
            status_s = rep.check(f"{name} x{s} SSIM", q, SR_SSIM[name][k], 0.002, ".4f")
            if args.quick and name == "B100":
                status_p = status_s = "(quick)"
            print(
                f"{name:<9}{'x' + str(s):>6}{p:9.3f}{SR_PSNR[name][k]:9.3f}{status_p:>10}"
                f"{q:9.4f}{SR_SSIM[name][k]:11.4f} {status_s}"
            )

    print("\nJPEG input (Y rounded to uint8 / gray as is; OpenCV libjpeg)")
    print(f"{'set':<9}{'q':>6}{'PSNR':>9}{'published':>11}{'':>10}{'SSIM':>9}")
    for name in ("LIVE1", "Classic5"):
        files = list_images(bench / "jpeg" / name)
        for k, qual in enumerate(QUALITIES):
            p, q = jpeg_input(files, qual)
            status = rep.check(f"{name} q{qual} PSNR", p, JPEG_PSNR[name][k], 0.05, ".3f")
            print(f"{name:<9}{qual:>6}{p:9.3f}{JPEG_PSNR[name][k]:11.2f}{status:>10}{q:9.4f}")

    print("\nAWGN input PSNR (seed 0 + image index, not clipped, not quantised)")
    print(f"{'set':<9}{'sigma':>6}{'PSNR':>9}{'analytic':>10}")
    for name in ("Set12", "BSD68"):
        files = list_images(bench / "denoise" / name)
        for sigma in SIGMAS:
            p = noisy_input(files, sigma)
            analytic = 20.0 * math.log10(255.0 / sigma)
            status = rep.check(f"{name} sigma{sigma}", p, analytic, 0.02, ".3f")
            print(f"{name:<9}{sigma:>6}{p:9.3f}{analytic:10.3f}  {status}")

    if not args.no_timing:
        time_imresize()

    if rep.failures:
        print("\nFAILED checks:\n  " + "\n  ".join(rep.failures))
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
