"""PyTorch backend: the reference engine (CPU or CUDA, fp32 or fp16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scn_deploy.arch.scn import fuse_weight_norm
from scn_deploy.engines.base import Engine
from scn_deploy.engines.options import EngineOptions
from scn_deploy.errors import ConfigError
from scn_deploy.modelfile import load_model

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine(Engine):
    name = "torch"

    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        num_scales: int | None = None,
        precision: str = "fp32",
    ) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device is available")
        if precision not in DTYPES:
            raise ConfigError(f"the torch engine runs {', '.join(DTYPES)}, not {precision}")
        if precision == "fp16" and not device.startswith("cuda"):
            raise ConfigError("--fp16 needs a CUDA device (on CPU use fp32, or bf16)")
        model, spec = load_model(path, device=device)
        n = num_scales or spec.arch.num_scales
        model.set_eval_scales(n)
        self.model = fuse_weight_norm(model).eval()
        self.dtype = DTYPES[precision]
        self.model.to(self.dtype)
        super().__init__(spec, num_scales=n, device=device, precision=precision, source=str(path))

    @classmethod
    def load(
        cls, file: Path, *, device: str, precision: str, options: EngineOptions
    ) -> TorchEngine:
        if file.suffix.lower() == ".onnx":
            raise ConfigError("the torch engine needs a .safetensors model file, not an .onnx")
        return cls(file, device=device, num_scales=options.num_scales, precision=precision)

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.check_input(image, level)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).to(
                self.device, self.dtype
            )
            cond = None
            if level is not None:
                cond = torch.from_numpy(np.ascontiguousarray(level, np.float32))
                cond = cond.to(self.device, self.dtype)
            y = self.model(x, cond)
            return y.float().cpu().numpy()
