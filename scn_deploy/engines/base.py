"""The engine interface every backend implements, and the factory that picks one.

An engine runs the network on NCHW float32 batches in [0, 1] (plus the conditioning map for
conditioned models) and returns NCHW float32, not clamped. Tiling, TTA, colour handling and
file I/O live above it (`scn_deploy.restore`), so backends stay small.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.errors import ConfigError

ENGINE_NAMES = ("auto", "torch", "onnx", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class Engine(ABC):
    """A loaded network ready for inference.

    Attributes:
        name: backend name ("torch", "onnx", "tensorrt").
        spec: what the model is (task, scale, channels, conditioning).
        num_scales: pyramid scales this engine evaluates with.
        device: where it runs ("cpu", "cuda:0", ...).
        precision: "fp32", "fp16", "bf16" or "int8".
        source: the file it was loaded from.
        max_tile: the largest tile it accepts (TensorRT profiles), None when unbounded.
    """

    name: str = "base"
    max_tile: int | None = None

    def __init__(
        self, spec: ModelSpec, *, num_scales: int, device: str, precision: str, source: str
    ) -> None:
        self.spec = spec
        self.num_scales = num_scales
        self.device = device
        self.precision = precision
        self.source = source

    @abstractmethod
    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        """Run one batch: (B, C, H, W) float32 [0, 1] -> (B, C, H*s, W*s) float32."""

    def check_input(self, image: np.ndarray, level: np.ndarray | None) -> None:
        c = self.spec.channels
        if image.ndim != 4 or image.shape[1] != c:
            raise ConfigError(f"{self.name} engine expects (B, {c}, H, W), got {image.shape}")
        if self.spec.conditioned and level is None:
            raise ConfigError("this model is conditioned: a level map is required")

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision}, {self.num_scales} scales)"


def torch_available() -> bool:
    """Whether PyTorch is installed (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None


def load_engine(
    model: str | os.PathLike[str],
    *,
    engine: str = "auto",
    device: str = "cpu",
    num_scales: int | None = None,
    fp16: bool = False,
    precision: str | None = None,
) -> Engine:
    """Load `model` (a .safetensors model file or an exported .onnx) into an engine.

    engine="auto": .onnx files run on ONNX Runtime; model files run on PyTorch when it is
    installed, else on the ONNX export that `scn export` made for them (exported on the fly
    into the user cache when PyTorch is there but `export/` lacks the scales asked for).
    precision: "fp32" (default), "fp16" (same as fp16=True), "bf16" (torch) or "int8"
    (an ONNX export quantized by `scn export --int8`).
    """
    if engine not in ENGINE_NAMES:
        raise ConfigError(f"unknown engine {engine!r}; choose from {', '.join(ENGINE_NAMES)}")
    precision = precision or ("fp16" if fp16 else "fp32")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    path = Path(model)
    is_onnx = path.suffix.lower() == ".onnx"
    if engine == "auto":
        engine = "onnx" if is_onnx or not torch_available() or precision == "int8" else "torch"
    if engine == "torch":
        if is_onnx:
            raise ConfigError("the torch engine needs a .safetensors model file, not an .onnx")
        if not torch_available():
            raise ConfigError("the torch engine needs PyTorch: pip install 'scn-deploy[torch]'")
        from scn_deploy.engines.torch_engine import TorchEngine

        return TorchEngine(path, device=device, num_scales=num_scales, precision=precision)
    from scn_deploy.exporting.cache import onnx_for

    onnx_path = path if is_onnx else onnx_for(path, num_scales, precision=precision)
    if engine == "onnx":
        from scn_deploy.engines.onnx_engine import OnnxEngine

        return OnnxEngine(onnx_path, device=device, num_scales=num_scales)
    from scn_deploy.engines.tensorrt_engine import TensorrtEngine

    return TensorrtEngine(onnx_path, device=device, precision=precision)
