"""Export an SCN to ONNX with dynamic batch, height and width and N pyramid scales baked in."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.facts import flops_per_output_megapixel
from scn_deploy.arch.scn import SCN, fuse_weight_norm
from scn_deploy.atomic import atomic_target, atomic_write
from scn_deploy.errors import ScnError

DEFAULT_OPSET = 17
FP32_TOLERANCE = 1e-4  # max abs error, ORT vs PyTorch, on images in [0, 1]
FP16_MIN_PSNR = 50.0  # dB, ORT fp16 vs PyTorch fp32
INPUT_IMAGE = "image"
INPUT_LEVEL = "level"
OUTPUT = "restored"


class _ExportWrapper(nn.Module):
    """Fixes the number of scales; takes the conditioning map as a second input if needed."""

    def __init__(self, model: SCN, num_scales: int) -> None:
        super().__init__()
        self.model = model
        self.num_scales = num_scales

    def forward(self, image: torch.Tensor, level: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(image, level, num_scales=self.num_scales)


def export_onnx(
    model: SCN,
    spec: ModelSpec,
    path: str | os.PathLike[str],
    *,
    num_scales: int | None = None,
    opset: int = DEFAULT_OPSET,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Trace `model` to ONNX at `path` (written atomically) and store the spec as metadata.

    Inputs: `image` (B, C, H, W) float32 in [0, 1]; for conditioned models also `level`
    (B, 1, H, W), the conditioning map. Output: `restored`. Batch, H and W are dynamic.
    Metadata keys: `scn_spec` (ModelSpec JSON), `scn_num_scales`, `scn_precision`,
    `scn_gflop_per_output_mp` (convolution work, for `scn bench`), `scn_package_version`,
    plus `extra_metadata`.
    """
    import onnx

    from scn_deploy import __version__

    n = num_scales or spec.arch.num_scales
    model.check_scales(n)
    wrapper = _ExportWrapper(fuse_weight_norm(model).eval().cpu(), n)
    c = spec.arch.in_channels
    example: tuple[torch.Tensor, ...] = (torch.rand(1, c, 24, 20),)
    names = [INPUT_IMAGE]
    axes = {
        INPUT_IMAGE: {0: "batch", 2: "height", 3: "width"},
        OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"},
    }
    if spec.conditioned:
        example = (*example, torch.full((1, 1, 24, 20), 0.1))
        names.append(INPUT_LEVEL)
        axes[INPUT_LEVEL] = {0: "batch", 2: "height", 3: "width"}
    path = Path(path)
    with atomic_target(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            # The TorchScript-based exporter keeps H/W symbolic through the integer pyramid-size
            # arithmetic, exports in well under a second and supports opset 17.
            torch.onnx.export(
                wrapper,
                example,
                str(tmp),
                input_names=names,
                output_names=[OUTPUT],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(tmp)
        meta = {
            "scn_spec": spec.to_json(),
            "scn_num_scales": str(n),
            "scn_precision": "fp32",
            "scn_gflop_per_output_mp": f"{flops_per_output_megapixel(spec.arch, n) / 1e9:.4f}",
            "scn_package_version": __version__,
            **(extra_metadata or {}),
        }
        set_metadata(proto, meta)
        proto.producer_name = "scn-deploy"
        onnx.save(proto, tmp)
    return path


def set_metadata(proto, values: dict[str, str]) -> None:
    """Set (add or replace) metadata entries of an ONNX ModelProto."""
    kept = [(e.key, e.value) for e in proto.metadata_props if e.key not in values]
    del proto.metadata_props[:]
    for key, value in [*kept, *values.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Half-precision copy of an fp32 export: fp16 weights, inputs and outputs.

    Uses ONNX Runtime's converter (shipped with onnxruntime); Resize keeps its fp32 scales.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(proto, keep_io_types=False)
    set_metadata(half, {"scn_precision": "fp16"})
    dst = Path(dst)
    atomic_write(dst, half.SerializeToString())
    return dst


@dataclass
class ExportReport:
    """What `export_model` made and how well it matches PyTorch."""

    path: Path
    num_scales: int
    precision: str
    max_abs_error: float
    psnr_db: float
    limit: str

    @property
    def ok(self) -> bool:
        if self.precision == "fp16":
            return self.psnr_db >= FP16_MIN_PSNR
        if self.precision == "fp32":
            return self.max_abs_error <= FP32_TOLERANCE
        return True  # int8: quality is measured with `scn eval`, not bounded here

    def describe(self) -> str:
        return (
            f"{self.path} ({self.num_scales} scales, {self.precision}); ONNX Runtime vs "
            f"PyTorch fp32 on unseen sizes: max abs error {self.max_abs_error:.2e}, "
            f"PSNR {self.psnr_db:.1f} dB ({self.limit})"
        )


def export_model(
    model_path: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    num_scales: int | None = None,
    precision: str = "fp32",
    opset: int = DEFAULT_OPSET,
) -> ExportReport:
    """Export a model file to a verified ONNX at `target` (fp32 or fp16).

    The file is removed again and `ScnError` raised when verification fails.
    """
    from scn_deploy.modelfile import load_model

    if precision not in ("fp32", "fp16"):
        raise ScnError(f"export_model makes fp32 or fp16 files, not {precision}")
    model_path, target = Path(model_path), Path(target)
    net, spec = load_model(model_path)
    n = num_scales or spec.arch.num_scales
    meta = {
        "scn_source": model_path.name,
        "scn_source_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
    }
    export_onnx(net, spec, target, num_scales=n, opset=opset, extra_metadata=meta)
    if precision == "fp16":
        convert_fp16(target, target)
    check = verify_export(net, spec, target, num_scales=n)
    limit = (
        f"limit PSNR >= {FP16_MIN_PSNR:.0f} dB"
        if precision == "fp16"
        else f"limit max abs error {FP32_TOLERANCE:.0e}"
    )
    report = ExportReport(target, n, precision, check["max_abs_error"], check["psnr_db"], limit)
    if not report.ok:
        target.unlink(missing_ok=True)
        raise ScnError(f"export failed verification: {report.describe()}")
    return report


def verify_export(
    model: SCN,
    spec: ModelSpec,
    path: str | os.PathLike[str],
    *,
    num_scales: int,
    sizes: tuple[tuple[int, int], ...] = ((37, 29), (64, 51)),
) -> dict[str, float]:
    """Check an export: `onnx.checker`, then ONNX Runtime vs PyTorch on sizes never traced.

    Returns {"max_abs_error", "psnr_db"} over all sizes (PSNR of ORT vs torch, peak 1.0).
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    half = "float16" in sess.get_inputs()[0].type
    gen = torch.Generator().manual_seed(0)
    worst, sq_err, count = 0.0, 0.0, 0
    for h, w in sizes:
        x = torch.rand(1, spec.arch.in_channels, h, w, generator=gen)
        cond = torch.full((1, 1, h, w), 0.1) if spec.conditioned else None
        with torch.no_grad():
            ref = model(x, cond, num_scales=num_scales).numpy()
        dtype = np.float16 if half else np.float32
        feeds = {INPUT_IMAGE: x.numpy().astype(dtype)}
        if cond is not None:
            feeds[INPUT_LEVEL] = cond.numpy().astype(dtype)
        got = sess.run(None, feeds)[0].astype(np.float32)
        diff = np.abs(got - ref)
        worst = max(worst, float(diff.max()))
        sq_err += float((diff.astype(np.float64) ** 2).sum())
        count += diff.size
    mse = sq_err / max(count, 1)
    psnr = float("inf") if mse == 0 else 10 * float(np.log10(1.0 / mse))
    return {"max_abs_error": worst, "psnr_db": psnr}
