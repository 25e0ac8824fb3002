"""ONNX Runtime backend: runs exported models without PyTorch (CPU, CUDA or TensorRT EP)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from scn_deploy.engines.base import Engine
from scn_deploy.errors import ConfigError, ModelFileError


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.startswith("cuda"):
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
        chosen = [p for p in wanted if p in available]
        if not chosen:
            raise ConfigError(
                f"--device {device}: ONNX Runtime has no CUDA provider here "
                "(pip install 'scn-deploy[gpu]')"
            )
        return [*chosen, "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxEngine(Engine):
    name = "onnx"

    def __init__(self, path: Path, *, device: str = "cpu", num_scales: int | None = None) -> None:
        import onnxruntime as ort

        from scn_deploy.exporting.metadata import metadata_from_session

        if not Path(path).is_file():
            raise ModelFileError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if os.environ.get("SCN_THREADS"):  # e.g. one engine per Ray actor, N cores each
            options.intra_op_num_threads = int(os.environ["SCN_THREADS"])
        try:
            self.session = ort.InferenceSession(str(path), options, providers=_providers(device))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
        spec, n, meta = metadata_from_session(self.session, Path(path))
        if num_scales is not None and num_scales != n:
            raise ConfigError(f"{path} was exported with {n} scales, not {num_scales}")
        self.metadata = meta
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_type = self.session.get_inputs()[0].type
        precision = meta.get("scn_precision", "fp32")
        super().__init__(spec, num_scales=n, device=device, precision=precision, source=str(path))

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.check_input(image, level)
        dtype = np.float16 if "float16" in self.input_type else np.float32
        feeds = {self.input_names[0]: np.ascontiguousarray(image, dtype)}
        if self.spec.conditioned:
            feeds[self.input_names[1]] = np.ascontiguousarray(level, dtype)
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)
