"""ONNX Runtime backend: runs exported models without PyTorch (CPU, or CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scn_deploy.engines.base import Engine
from scn_deploy.engines.cuda_runtime import device_index
from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError, ModelFileError


def providers_for(device: str) -> list[str | tuple[str, dict[str, object]]]:
    """ONNX Runtime providers for `device`: on CUDA, the CUDA provider on that device index.

    ORT's TensorRT provider is left out on purpose: with default options it rebuilds an engine
    for every new tile shape and runs fp32; `--engine tensorrt` is this package's TensorRT
    path (profiles, fp16, an engine cache)."""
    import onnxruntime as ort

    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ConfigError(
            f"--device {device}: ONNX Runtime has no CUDA provider here "
            "(pip install 'scn-deploy[gpu]'; see docs/gpu.md for the GPU install)"
        )
    options = {"device_id": device_index(device)}
    return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


def check_providers(session: object, device: str, path: Path) -> None:
    """ORT falls back to the CPU silently when CUDA or cuDNN libraries are missing: refuse
    to report a CUDA run that would not be one."""
    if device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():  # type: ignore[attr-defined]
        raise ConfigError(
            f"{path}: ONNX Runtime could not start its CUDA provider on {device} (missing CUDA "
            "or cuDNN libraries?) and would run on the CPU; use --device cpu or fix the install"
        )


class OnnxEngine(Engine):
    name = "onnx"

    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        num_scales: int | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        from scn_deploy.exporting.metadata import metadata_from_session

        if not Path(path).is_file():
            raise ModelFileError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:  # e.g. one engine per Ray actor, N cores each
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers_for(device))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFileError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
        check_providers(self.session, device, Path(path))
        spec, n, meta = metadata_from_session(self.session, Path(path))
        if num_scales is not None and num_scales != n:
            raise ConfigError(f"{path} was exported with {n} scales, not {num_scales}")
        self.metadata = meta
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_type = self.session.get_inputs()[0].type
        precision = meta.get("scn_precision", "fp32")
        super().__init__(spec, num_scales=n, device=device, precision=precision, source=str(path))

    @classmethod
    def load(cls, file: Path, *, device: str, precision: str, options: EngineOptions) -> OnnxEngine:
        """The export already has the precision (fp32, fp16 or int8 file)."""
        return cls(file, device=device, num_scales=options.num_scales, threads=options.threads)

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.check_input(image, level)
        dtype = np.float16 if "float16" in self.input_type else np.float32
        feeds = {self.input_names[0]: np.ascontiguousarray(image, dtype)}
        if self.spec.conditioned:
            feeds[self.input_names[1]] = np.ascontiguousarray(level, dtype)
        return self.session.run(None, feeds)[0].astype(np.float32, copy=False)
