"""How much device memory a forward pass may use: the tile planner's budget and the CUDA
memory queries behind it (also `scn bench`'s GPU memory report).

A CUDA query goes through PyTorch when PyTorch is already imported (its caching allocator's
idle blocks count as free: they are reused, not lost), else through the CUDA runtime
(`cuda_runtime`, the `[gpu]` extra's cuda-python), so a TensorRT or ONNX Runtime process never
imports PyTorch just to ask. Nothing here imports a backend.
"""

from __future__ import annotations

import os
import sys

__all__ = ["CUDA_MAX_BUDGET", "cuda_free_bytes", "cuda_memory_info", "default_memory_budget"]

#: The most one forward pass may plan for on a GPU: keeps every activation far below 2**31
#: elements (int32 indexing in cuDNN / TensorRT kernels) even on 80+ GB cards.
CUDA_MAX_BUDGET = 8 << 30

#: The budget on a GPU whose free memory cannot be queried.
CUDA_FALLBACK_BUDGET = 2 << 30

#: The budget on the CPU: 1 GiB, at most a quarter of the free RAM, at least 64 MiB.
CPU_BUDGET, CPU_MIN_BUDGET = 1 << 30, 64 << 20


def cuda_memory_info(index: int) -> tuple[int, int]:
    """(free, total) bytes of GPU `index` as the driver reports them (every allocator's pool
    counts as used): PyTorch's query when PyTorch is imported, else the CUDA runtime's.
    Raises when neither can tell (`ConfigError` without cuda-python)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        free, total = torch.cuda.mem_get_info(index)
        return int(free), int(total)
    from scn_deploy.engines.cuda_runtime import CudaRuntime

    return CudaRuntime().memory_info(index)


def cuda_free_bytes(index: int) -> int:
    """Free GPU memory as this process can use it: the driver's free memory plus what
    PyTorch's caching allocator holds but does not use."""
    free, _total = cuda_memory_info(index)
    torch = sys.modules.get("torch")
    if torch is not None:
        free += max(torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index), 0)
    return free


def default_memory_budget(device: str = "cpu") -> int:
    """Bytes that one forward pass may use: `CPU_BUDGET` (at most a quarter of free RAM) on
    the CPU; on CUDA half the free GPU memory (cached blocks count as free), at most
    `CUDA_MAX_BUDGET` (`CUDA_FALLBACK_BUDGET` when it cannot be queried)."""
    if device.startswith("cuda"):
        from scn_deploy.engines.cuda_runtime import device_index

        try:
            return min(cuda_free_bytes(device_index(device)) // 2, CUDA_MAX_BUDGET)
        except Exception:  # neither torch nor the CUDA runtime can tell: a fixed budget
            return CUDA_FALLBACK_BUDGET
    budget = CPU_BUDGET
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        budget = min(budget, available // 4)
    except (ValueError, OSError, AttributeError):
        pass
    return max(budget, CPU_MIN_BUDGET)
