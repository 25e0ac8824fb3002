"""OpenVINO int8 for sr-x2: NNCF post-training quantization against the shipped QDQ export.

Measures, in one run: Set5 x2 PSNR-Y (the paper's protocol, whole images) and 256x256 tile
speed for OpenVINO fp32, bf16 (where native), int8 from `export/sr-x2-s3-int8.onnx` (ONNX
Runtime's QDQ quantization, what `--precision int8` runs) and int8 from NNCF's
`nncf.quantize` of the fp32 export, calibrated on LR crops of the training images (T91 +
BSD200, never a benchmark image). Writes results.json beside this script.

    python lab/openvino-int8/nncf_vs_qdq.py [--calib 64] [--repeat 5]   (needs nncf, openvino)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from scn_deploy.cpu import cpu_description, native_bf16
from scn_deploy.degrade import bicubic_degrade
from scn_deploy.evaluate import load_benchmark_image, resolve_data_dir, sr_pair
from scn_deploy.imageio import list_images
from scn_deploy.metrics import psnr
from scn_deploy.paths import data_root

ROOT = Path(__file__).resolve().parents[2]
FP32 = ROOT / "export" / "sr-x2-s3.onnx"
QDQ = ROOT / "export" / "sr-x2-s3-int8.onnx"


def calibration_items(count: int, size: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    files = []
    for folder in ("T91", "BSD200"):
        files += list_images(data_root() / "train" / folder)
    items = []
    for i in rng.permutation(len(files)):
        if len(items) == count:
            break
        hr = load_benchmark_image(files[i])
        if min(hr.shape[:2]) < 2 * size:
            continue
        if hr.ndim == 2:
            hr = np.repeat(hr[..., None], 3, axis=2)
        lr = bicubic_degrade(hr, 2)
        y = int(rng.integers(0, lr.shape[0] - size + 1))
        x = int(rng.integers(0, lr.shape[1] - size + 1))
        crop = lr[y : y + size, x : x + size].astype(np.float32) / 255.0
        items.append(crop.transpose(2, 0, 1)[None].copy())
    return items


def compile_for(core, model, shape, precision: str):
    import openvino as ov

    m = model.clone()
    m.reshape({m.inputs[0]: ov.PartialShape(list(shape))})
    hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[precision]
    return core.compile_model(
        m, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    )


def set5_psnr(core, model, precision: str) -> float:
    scores = []
    folder = resolve_data_dir("Set5")
    for f in sorted(folder.iterdir()):
        hr, lr = sr_pair(load_benchmark_image(f), 2)
        x = (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        out = compile_for(core, model, x.shape, precision)(x)[0][0].transpose(1, 2, 0)
        out8 = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
        scores.append(psnr(out8, hr, crop_border=2))
    return float(np.mean(scores))


def tile_mp_per_s(core, model, precision: str, repeat: int) -> float:
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    compiled = compile_for(core, model, x.shape, precision)
    compiled(x)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        compiled(x)
        times.append(time.perf_counter() - start)
    return (512 * 512 / 1e6) / statistics.median(times)


def main() -> int:
    import nncf
    import openvino as ov

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=64, help="calibration crops")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--preset",
        action="append",
        choices=["performance", "mixed"],
        help="NNCF quantization presets to try (default: both): performance = symmetric, "
        "mixed = asymmetric activations",
    )
    args = parser.parse_args()
    core = ov.Core()
    fp32 = core.read_model(FP32)
    dataset = nncf.Dataset(calibration_items(args.calib))
    variants = [("fp32", fp32, "fp32"), ("qdq int8", core.read_model(QDQ), "int8")]
    if native_bf16():
        variants.insert(1, ("bf16", fp32, "bf16"))
    quantize_seconds = {}
    for name in args.preset or ["performance", "mixed"]:
        preset = {
            "performance": nncf.QuantizationPreset.PERFORMANCE,
            "mixed": nncf.QuantizationPreset.MIXED,
        }[name]
        started = time.perf_counter()
        quantized = nncf.quantize(fp32, dataset, preset=preset, subset_size=args.calib)
        quantize_seconds[name] = time.perf_counter() - started
        variants.append((f"nncf int8 ({name})", quantized, "int8"))
    rows = []
    for label, model, precision in variants:
        rows.append(
            {
                "variant": label,
                "set5_psnr_y": set5_psnr(core, model, precision),
                "tile_mp_per_s": tile_mp_per_s(core, model, precision, args.repeat),
            }
        )
        print(rows[-1], flush=True)
    base = rows[0]
    for row in rows:
        row["psnr_change_db"] = row["set5_psnr_y"] - base["set5_psnr_y"]
        row["speed_vs_fp32"] = row["tile_mp_per_s"] / base["tile_mp_per_s"]
    doc = {
        "model": "sr-x2",
        "cpu": cpu_description(),
        "openvino": ov.__version__,
        "nncf": nncf.__version__,
        "calibration": f"{args.calib} random 96x96 LR crops of T91 + BSD200 (bicubic x2)",
        "nncf_quantize_seconds": quantize_seconds,
        "command": "python lab/openvino-int8/nncf_vs_qdq.py",
        "rows": rows,
    }
    (Path(__file__).parent / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
