"""What this CPU is: model name, vector extensions, native bf16 (read from /proc/cpuinfo).

CPU speed figures are comparable only between CPUs with the same extensions (the same model
name covers AVX2-only and AVX-512 parts), so benchmarks print `cpu_description()` beside them.
"""

from __future__ import annotations

import functools
import os
import platform

_ISA_FLAGS = (
    ("AVX-512", "avx512f"),
    ("VNNI", "avx512_vnni"),
    ("BF16", "avx512_bf16"),
    ("AMX", "amx_tile"),
)


@functools.cache
def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU; flags are empty where /proc/cpuinfo is missing."""
    model = platform.processor() or platform.machine()
    flags: frozenset[str] = frozenset()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:  # the first CPU's "model name", then its "flags"
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return model, flags


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); elsewhere bf16 is
    emulated and slower than fp32."""
    flags = cpu_info()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_description() -> str:
    """ "AMD EPYC (AVX-512, VNNI, BF16), 2 cores"."""
    model, flags = cpu_info()
    isa = [name for name, flag in _ISA_FLAGS if flag in flags]
    if not isa and "avx2" in flags:
        isa = ["AVX2"]
    extensions = f" ({', '.join(isa)})" if isa else ""
    return f"{model}{extensions}, {os.cpu_count()} cores"
