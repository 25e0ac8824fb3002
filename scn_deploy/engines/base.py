"""The engine interface every backend implements (`scn_deploy.engines.registry` picks one).

An engine runs the network on NCHW float32 batches in [0, 1] (plus the conditioning map for
conditioned models) and returns NCHW float32, not clamped. Tiling, TTA, colour handling and
file I/O live above it (`scn_deploy.restore`), so backends stay small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError


class UnsupportedModel(ConfigError):
    """A backend cannot run this model file (e.g. its precision); `auto` tries the next."""


class Engine(ABC):
    """A loaded network ready for inference.

    Attributes:
        name: backend name ("torch", "onnx", "openvino", "tensorrt").
        spec: what the model is (task, scale, channels, conditioning).
        num_scales: pyramid scales this engine evaluates with.
        device: where it runs ("cpu", "cuda:0", ...).
        precision: "fp32", "fp16", "bf16" or "int8".
        source: the file it was loaded from.
        max_tile: the largest tile it accepts (TensorRT profiles), None when unbounded.
        fp32_twin: loads the same model in fp32 on this host (set by the registry for
            engines of lower precision): measurements that rounding would blur, such as the
            receptive field, use it. None when no fp32 version can be had.
    """

    name: str = "base"
    max_tile: int | None = None
    fp32_twin: Callable[[], Engine] | None = None

    def __init__(
        self, spec: ModelSpec, *, num_scales: int, device: str, precision: str, source: str
    ) -> None:
        self.spec = spec
        self.num_scales = num_scales
        self.device = device
        self.precision = precision
        self.source = source

    @classmethod
    @abstractmethod
    def load(cls, file: Path, *, device: str, precision: str, options: EngineOptions) -> Engine:
        """The engine for `file` (the model file, or the ONNX export for backends that run
        ONNX), with the device and precision the registry chose and the run's options (each
        backend takes what it needs from them, e.g. TensorRT its profile's tile and batch)."""

    @abstractmethod
    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        """Run one batch: (B, C, H, W) float32 [0, 1] -> (B, C, H*s, W*s) float32."""

    def check_input(self, image: np.ndarray, level: np.ndarray | None) -> None:
        c = self.spec.channels
        if image.ndim != 4 or image.shape[1] != c:
            raise ConfigError(f"{self.name} engine expects (B, {c}, H, W), got {image.shape}")
        if self.spec.conditioned and level is None:
            raise ConfigError("this model is conditioned: a level map is required")

    @property
    def half_activations(self) -> bool:
        """Whether activations take 2 bytes (fp16 / bf16): the tiler's memory estimate."""
        return self.precision in ("fp16", "bf16")

    def window_cost(self, pixels: int) -> float:
        """Time per pixel of a forward pass over `pixels` input pixels, relative to small
        windows (1.0). Backends whose kernels slow down once windows outgrow the caches
        return more for large windows, and the tiler weighs that against the overlap that
        smaller windows recompute. The default: no such slowdown known."""
        return 1.0

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision}, {self.num_scales} scales)"
