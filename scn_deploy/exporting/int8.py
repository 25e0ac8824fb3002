"""int8 (QDQ) quantization of an fp32 export with ONNX Runtime, calibrated on real images.

Calibration feeds the network what it sees at inference: for SR the images themselves (as
low-resolution inputs), for denoising the images with Gaussian noise at levels spread over the
model's range, for deblocking their JPEG at such qualities. Only convolutions are quantized
(weights per channel, int8; activations uint8); resampling and additions stay in float, and so
do the convolutions that read the image and the one that writes the output (the edge layers,
where 8 bits cost the most quality for the least time). Ranges are reduced to 7 bits
(`reduce_range`): without VNNI, x86 int8 kernels (u8 x s8 pairs summed in 16 bits) saturate
with full-range values; measured on sr-x2 this is the difference between 25.6 dB and 41 dB
agreement with fp32.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.errors import DataError, ScnError

CALIBRATION_TILE = 96
CALIBRATION_TILES = 48


def _model_input(img: np.ndarray, spec: ModelSpec, level: float | None, rng) -> np.ndarray:
    """uint8 image -> the network input (C, H, W) float32 in [0, 1] for this model."""
    from scn_deploy.metrics import y_uint8

    img = y_uint8(img) if spec.channels == 1 else img
    if img.ndim == 2 and spec.channels == 3:
        img = np.repeat(img[:, :, None], 3, axis=2)
    task = spec.task
    if not task.upscales:  # an SR model's input is the image itself
        if level is None:
            level = task.fixed_level(spec) or task.typical_level
        img = task.degrade(img, level, rng)
    x = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    x = x[:, :, None] if x.ndim == 2 else x
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def calibration_batches(
    folder: str | os.PathLike[str],
    spec: ModelSpec,
    *,
    tile: int = CALIBRATION_TILE,
    count: int = CALIBRATION_TILES,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """`count` single-tile feeds cut at random from the images in `folder`."""
    from scn_deploy.exporting.onnx_export import INPUT_IMAGE, INPUT_LEVEL
    from scn_deploy.imageio import list_images, load_benchmark_image

    paths = list_images(folder)
    rng = np.random.default_rng(seed)
    images = [load_benchmark_image(p) for p in paths]
    usable = [im for im in images if min(im.shape[:2]) >= tile]
    if not usable:
        raise DataError(f"{folder}: no calibration image is at least {tile}x{tile} pixels")
    feeds = []
    for i in range(count):
        img = usable[i % len(usable)]
        y = int(rng.integers(0, img.shape[0] - tile + 1))
        x = int(rng.integers(0, img.shape[1] - tile + 1))
        level = None
        if spec.level_range is not None:  # spread levels over the conditioned range
            lo, hi = spec.level_range
            level = lo + (hi - lo) * (i + 0.5) / count
        crop = img[y : y + tile, x : x + tile]
        feed = {INPUT_IMAGE: _model_input(crop, spec, level, rng)[None]}
        if spec.conditioned:
            assert level is not None
            value = spec.condition_value(level)
            feed[INPUT_LEVEL] = np.full((1, 1, tile, tile), value, np.float32)
        feeds.append(feed)
    return feeds


def edge_convolutions(proto) -> list[str]:
    """Names of the Conv nodes next to the graph's inputs or outputs (no Conv in between)."""
    nodes = list(proto.graph.node)
    producers = {out: n for n in nodes for out in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)

    def reach(starts: list, step) -> set[str]:
        found, seen, todo = set(), set(), list(starts)
        while todo:
            node = todo.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type == "Conv":
                found.add(node.name)
            elif node.op_type != "Shape":  # shape arithmetic carries no pixel values
                todo.extend(step(node))

        return found

    graph_inputs = [i.name for i in proto.graph.input]
    first = reach(
        [c for name in graph_inputs for c in consumers.get(name, [])],
        lambda n: [c for out in n.output for c in consumers.get(out, [])],
    )
    last = reach(
        [producers[o.name] for o in proto.graph.output if o.name in producers],
        lambda n: [producers[i] for i in n.input if i in producers],
    )
    return sorted(first | last)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)


def quantize_int8(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    calib: str | os.PathLike[str],
    *,
    tile: int = CALIBRATION_TILE,
    count: int = CALIBRATION_TILES,
) -> Path:
    """Write an int8 QDQ copy of the fp32 export `src` to `dst`, calibrated on `calib`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from scn_deploy.atomic import atomic_write
    from scn_deploy.exporting.metadata import read_onnx_metadata
    from scn_deploy.exporting.onnx_export import set_metadata

    spec, _n, meta = read_onnx_metadata(src)
    if meta.get("scn_precision", "fp32") != "fp32":
        raise ScnError(f"{src}: int8 quantization starts from an fp32 export")
    feeds = calibration_batches(calib, spec, tile=tile, count=count)
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix="scn-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        quantized = Path(work) / "int8.onnx"
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        edges = edge_convolutions(onnx.load(str(prepared)))
        quantize_static(
            str(prepared),
            str(quantized),
            _Reader(feeds),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            reduce_range=True,
            nodes_to_exclude=edges,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        proto = onnx.load(str(quantized))
    set_metadata(
        proto,
        {
            **{k: v for k, v in meta.items() if k.startswith("scn_")},
            "scn_precision": "int8",
            "scn_calibration": f"{Path(calib).name}: {count} tiles of {tile}x{tile}",
        },
    )
    atomic_write(dst, proto.SerializeToString())
    return dst
