"""The few CUDA runtime calls the TensorRT backend needs, through NVIDIA's `cuda-python`.

TensorRT runs an engine on device memory and a stream that the caller provides. This module
gets both from the CUDA runtime bindings (`cuda.bindings.runtime`, `cuda-python` >= 12.6;
`cuda.cudart` in older releases), which the `[gpu]` extra installs beside `tensorrt`, so the
TensorRT path needs neither PyTorch nor a second copy of the CUDA libraries. Every call's
status is checked and turned into a `ConfigError` naming the call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scn_deploy.errors import ConfigError

INSTALL_HINT = "pip install 'scn-deploy[gpu]' (cuda-python)"


def import_cudart() -> Any:
    """The CUDA runtime binding module; raises `ConfigError` when cuda-python is missing."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            hint = f"the CUDA runtime bindings are not installed: {INSTALL_HINT}"
            raise ConfigError(hint) from None
    return runtime


def device_index(device: str) -> int:
    """ "cuda" -> 0, "cuda:N" -> N."""
    return int(device.split(":", 1)[1]) if ":" in device else 0


class CudaRuntime:
    """Checked wrappers of the CUDA runtime calls: device choice and properties, device
    memory, host <-> device copies on a stream."""

    def __init__(self, cudart: Any | None = None) -> None:
        self.rt = cudart if cudart is not None else import_cudart()

    def _check(self, call: str, result: Any) -> Any:
        status, *values = result if isinstance(result, tuple) else (result,)
        if status != self.rt.cudaError_t.cudaSuccess:
            raise ConfigError(f"CUDA {call} failed: {status}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def device_count(self) -> int:
        try:
            return int(self._check("cudaGetDeviceCount", self.rt.cudaGetDeviceCount()))
        except ConfigError:  # no driver / no GPU
            return 0

    def current_device(self) -> int:
        return int(self._check("cudaGetDevice", self.rt.cudaGetDevice()))

    def set_device(self, index: int) -> None:
        self._check("cudaSetDevice", self.rt.cudaSetDevice(index))

    def device_name(self, index: int) -> str:
        props = self._check("cudaGetDeviceProperties", self.rt.cudaGetDeviceProperties(index))
        name = props.name
        return (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\x00")

    def memory_info(self, index: int) -> tuple[int, int]:
        """(free, total) bytes of GPU `index` as the driver reports them."""
        self.set_device(index)
        free, total = self._check("cudaMemGetInfo", self.rt.cudaMemGetInfo())
        return int(free), int(total)

    def free_bytes(self, index: int) -> int:
        return self.memory_info(index)[0]

    def malloc(self, nbytes: int) -> int:
        return int(self._check("cudaMalloc", self.rt.cudaMalloc(max(nbytes, 1))))

    def free(self, pointer: int) -> None:
        self._check("cudaFree", self.rt.cudaFree(pointer))

    def stream(self) -> Any:
        return self._check("cudaStreamCreate", self.rt.cudaStreamCreate())

    def destroy_stream(self, stream: Any) -> None:
        self._check("cudaStreamDestroy", self.rt.cudaStreamDestroy(stream))

    def synchronize(self, stream: Any) -> None:
        self._check("cudaStreamSynchronize", self.rt.cudaStreamSynchronize(stream))

    def to_device(self, pointer: int, host: np.ndarray, stream: Any) -> None:
        """Copy a C-contiguous host array to device memory at `pointer` (asynchronous on
        `stream`: keep `host` alive until the stream is synchronized)."""
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        call = self.rt.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, kind, stream)
        self._check("cudaMemcpyAsync", call)

    def to_host(self, host: np.ndarray, pointer: int, stream: Any) -> None:
        """Copy device memory at `pointer` into a C-contiguous host array (asynchronous)."""
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        call = self.rt.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, stream)
        self._check("cudaMemcpyAsync", call)


class DeviceBuffers:
    """Device allocations by name, grown when a larger one is needed and freed together."""

    def __init__(self, cuda: CudaRuntime) -> None:
        self.cuda = cuda
        self._held: dict[str, tuple[int, int]] = {}  # name -> (pointer, bytes)

    def get(self, name: str, nbytes: int) -> int:
        pointer, size = self._held.get(name, (0, 0))
        if size < nbytes:
            if pointer:
                self.cuda.free(pointer)
            pointer, size = self.cuda.malloc(nbytes), nbytes
            self._held[name] = (pointer, size)
        return pointer

    def release(self) -> None:
        for pointer, _size in self._held.values():
            self.cuda.free(pointer)
        self._held.clear()
