"""TensorRT backend: runs a serialized engine built from an ONNX export (NVIDIA GPUs).

The engine is built (or fetched from the cache) by `scn_deploy.exporting.tensorrt_build`
with an optimization profile for the run's tile and batch (`TensorrtOptions`: the same
profile, so the same cache entry, as `scn export --trt --tile T --batch B`); tiles outside
the profile are refused with a message. Device memory, copies and the stream come from the
CUDA runtime bindings (`scn_deploy.engines.cuda_runtime`, cuda-python), not from PyTorch, so
the `[gpu]` install runs it without torch.

Why TensorRT's own runtime rather than ONNX Runtime's TensorRT execution provider: the
engine and `scn export --trt` share one cache key and one explicit profile (the provider
keeps its own cache and, without a profile for every shape, rebuilds per tile shape), fp16
is a builder flag on the fp32 export, and the provider needs an ONNX Runtime build that
matches the installed TensorRT exactly.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from scn_deploy.engines.base import Engine
from scn_deploy.engines.options import TENSORRT_DEFAULT_TILE, EngineOptions, TensorrtOptions
from scn_deploy.errors import ConfigError

__all__ = ["TENSORRT_DEFAULT_TILE", "TensorrtEngine", "TensorrtOptions"]


def numpy_dtype_of(trt_dtype: object, trt: Any) -> np.dtype:
    """The numpy dtype of a TensorRT tensor dtype (float and half are what our exports use)."""
    table = {trt.DataType.FLOAT: np.dtype(np.float32), trt.DataType.HALF: np.dtype(np.float16)}
    if trt_dtype not in table:
        raise ConfigError(f"unexpected TensorRT tensor type {trt_dtype}: expected float or half")
    return table[trt_dtype]


class TensorrtEngine(Engine):
    name = "tensorrt"

    def __init__(
        self,
        onnx_path: Path,
        *,
        device: str = "cuda",
        precision: str = "fp32",
        options: TensorrtOptions | None = None,
    ) -> None:
        from scn_deploy.engines.cuda_runtime import CudaRuntime, DeviceBuffers, device_index
        from scn_deploy.exporting.metadata import read_onnx_metadata
        from scn_deploy.exporting.tensorrt_build import build_engine, profile_for, require_tensorrt

        if not device.startswith("cuda"):
            raise ConfigError("the tensorrt engine runs on a GPU: use --device cuda")
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"the tensorrt engine builds fp32 or fp16, not {precision}")
        options = options or TensorrtOptions()
        require_tensorrt()
        import tensorrt as trt

        spec, n, _meta = read_onnx_metadata(onnx_path)
        self.options = options
        self.profile = profile_for(spec, n, batch=options.batch, tile=options.tile)
        self.max_tile = options.tile
        self._cuda = cuda = CudaRuntime()
        self._index = device_index(device)
        cuda.set_device(self._index)  # build, name and run on cuda:N, not the current device
        built = build_engine(
            onnx_path,
            profile=self.profile,
            fp16=precision == "fp16",
            gpu=cuda.device_name(self._index),
        )
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(built.path.read_bytes())
        if self._engine is None:  # e.g. a cached engine from another TensorRT build
            raise ConfigError(
                f"TensorRT cannot load the cached engine {built.path}: delete it to rebuild"
            )
        self._context = self._engine.create_execution_context()
        self._stream = cuda.stream()  # a stream of our own, not the legacy default stream
        self._buffers = DeviceBuffers(cuda)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [
            name for name in names if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        ]
        self._output = next(name for name in names if name not in self._inputs)
        self._dtypes = {
            name: numpy_dtype_of(self._engine.get_tensor_dtype(name), trt) for name in names
        }
        super().__init__(
            spec, num_scales=n, device=device, precision=precision, source=str(onnx_path)
        )

    @classmethod
    def load(
        cls, file: Path, *, device: str, precision: str, options: EngineOptions
    ) -> TensorrtEngine:
        run = options.tensorrt()
        return cls(file, device=device, precision=precision, options=run)

    def infer(self, image: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        self.check_input(image, level)
        if not self.profile.fits(image.shape):
            lo, hi = self.profile.min, self.profile.max
            raise ConfigError(
                f"tile {image.shape[2]}x{image.shape[3]} (batch {image.shape[0]}) is outside the "
                f"TensorRT profile {lo[2]}..{hi[2]} px, batch <= {hi[0]}: use a smaller --tile"
            )
        cuda, context = self._cuda, self._context
        cuda.set_device(self._index)
        arrays = [image] if level is None else [image, level]
        hosts = []  # kept alive until the stream is synchronized
        for name, array in zip(self._inputs, arrays, strict=True):
            host = np.ascontiguousarray(array, dtype=self._dtypes[name])  # the engine's dtype
            pointer = self._buffers.get(name, host.nbytes)
            cuda.to_device(pointer, host, self._stream)
            context.set_input_shape(name, tuple(host.shape))
            context.set_tensor_address(name, pointer)
            hosts.append(host)
        out = np.empty(
            tuple(context.get_tensor_shape(self._output)), dtype=self._dtypes[self._output]
        )
        pointer = self._buffers.get(self._output, out.nbytes)
        context.set_tensor_address(self._output, pointer)
        if not context.execute_async_v3(int(self._stream)):  # the stream's handle
            raise ConfigError("TensorRT execution failed")
        cuda.to_host(out, pointer, self._stream)
        cuda.synchronize(self._stream)
        return out.astype(np.float32, copy=False)

    def close(self) -> None:
        """Free the device buffers and the stream (also done when the engine is collected)."""
        buffers = getattr(self, "_buffers", None)
        if buffers is not None:
            self._cuda.set_device(self._index)
            buffers.release()
            self._cuda.destroy_stream(self._stream)
            self._buffers = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at shutdown the driver may be gone already
            self.close()
