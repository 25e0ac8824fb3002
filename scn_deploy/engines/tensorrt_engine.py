"""TensorRT backend: runs a serialized engine built from an ONNX export (NVIDIA GPUs).

The engine is built (or fetched from the cache) by `scn_deploy.exporting.tensorrt_build`
with a profile for the tile size; tiles outside the profile are refused with a message.
Buffers are PyTorch CUDA tensors, so this backend needs torch with CUDA beside tensorrt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scn_deploy.engines.base import Engine
from scn_deploy.errors import ConfigError

DEFAULT_TILE = 256


class TensorrtEngine(Engine):
    name = "tensorrt"

    def __init__(
        self,
        onnx_path: Path,
        *,
        device: str = "cuda",
        precision: str = "fp32",
        tile: int = DEFAULT_TILE,
        batch: int = 1,
    ) -> None:
        from scn_deploy.exporting.metadata import read_onnx_metadata
        from scn_deploy.exporting.tensorrt_build import (
            build_engine,
            profile_for,
            require_tensorrt,
            torch_dtype_of,
        )

        if not device.startswith("cuda"):
            raise ConfigError("the tensorrt engine runs on a GPU: use --device cuda")
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"the tensorrt engine builds fp32 or fp16, not {precision}")
        require_tensorrt()
        import tensorrt as trt
        import torch

        spec, n, _meta = read_onnx_metadata(onnx_path)
        self.profile = profile_for(spec, n, batch=batch, tile=tile)
        self.max_tile = tile
        self._torch = torch
        self._device = torch.device(device)
        with torch.cuda.device(self._device):  # build, name and run on cuda:N, not the current
            built = build_engine(onnx_path, profile=self.profile, fp16=precision == "fp16")
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            self._engine = runtime.deserialize_cuda_engine(built.path.read_bytes())
            if self._engine is None:  # e.g. a cached engine from another TensorRT build
                raise ConfigError(
                    f"TensorRT cannot load the cached engine {built.path}: delete it to rebuild"
                )
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(self._device)  # not the legacy default stream
        self._names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [
            name
            for name in self._names
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        ]
        self._output = next(name for name in self._names if name not in self._inputs)
        self._dtypes = {
            name: torch_dtype_of(self._engine.get_tensor_dtype(name), trt, torch)
            for name in self._names
        }
        super().__init__(
            spec, num_scales=n, device=device, precision=precision, source=str(onnx_path)
        )

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.check_input(image, level)
        if not self.profile.fits(image.shape):
            lo, hi = self.profile.min, self.profile.max
            raise ConfigError(
                f"tile {image.shape[2]}x{image.shape[3]} (batch {image.shape[0]}) is outside the "
                f"TensorRT profile {lo[2]}..{hi[2]} px, batch <= {hi[0]}: use a smaller --tile"
            )
        torch = self._torch
        arrays = [image] if level is None else [image, level]
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            tensors = [  # each buffer in the dtype the engine declares for it
                torch.from_numpy(np.ascontiguousarray(a, np.float32))
                .to(self._device, non_blocking=True)
                .to(self._dtypes[name])
                for name, a in zip(self._inputs, arrays, strict=True)
            ]
            for name, t in zip(self._inputs, tensors, strict=True):
                self._context.set_input_shape(name, tuple(t.shape))
                self._context.set_tensor_address(name, t.data_ptr())
            shape = tuple(self._context.get_tensor_shape(self._output))
            out = torch.empty(shape, dtype=self._dtypes[self._output], device=self._device)
            self._context.set_tensor_address(self._output, out.data_ptr())
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise ConfigError("TensorRT execution failed")
            self._stream.synchronize()
            return out.float().cpu().numpy()
