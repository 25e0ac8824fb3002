"""The run's engine options: one value that the CLI, `restore()`, `scn eval`, `scn bench`, the
service and the Ray actors build once and pass down unchanged to `load_engine`.

`EngineOptions` holds what every backend needs (which engine, device, precision, pyramid
scales, threads) and the run's largest tile and batch; a backend with settings of its own
derives them here from the run's (`TensorrtOptions`: the optimization profile), so each
backend's knobs are documented in one place. Nothing here imports a backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: The tile TensorRT builds its profile for when the run's tile is not fixed (`--tile auto`).
TENSORRT_DEFAULT_TILE = 256


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs a model, where and how.

    Attributes:
        engine: a name from `scn_deploy.engines.registry.ENGINE_NAMES` ("auto": the fastest
            installed for the device).
        device: "auto", "cpu", "cuda" or "cuda:N".
        precision: None (auto), "fp32", "fp16", "bf16" or "int8".
        num_scales: pyramid scales at inference (None: as trained).
        tile: the largest tile (input pixels) the run will send, None when not fixed;
            batch: tiles per forward pass. Engines built for fixed shapes size themselves
            from these (`TensorrtOptions`); the others ignore them.
        threads: intra-op threads of ONNX Runtime and OpenVINO (PyTorch keeps its own);
            None: the `SCN_THREADS` environment variable when set, else every core. One
            engine per Ray actor or service worker gets its share of the cores.
    """

    engine: str = "auto"
    device: str = "auto"
    precision: str | None = None
    num_scales: int | None = None
    tile: int | None = None
    batch: int = 1
    threads: int | None = None

    def resolved_threads(self) -> int | None:
        """`threads`, else `SCN_THREADS` when set, else None (every core)."""
        if self.threads is not None:
            return self.threads
        value = os.environ.get("SCN_THREADS")
        return int(value) if value else None

    def tensorrt(self) -> TensorrtOptions:
        return TensorrtOptions.for_run(self.tile, self.batch)


@dataclass(frozen=True)
class TensorrtOptions:
    """What the TensorRT engine is built for.

    Attributes:
        tile: the largest tile core (input pixels) it runs; the profile adds the model's
            overlap bound (see `scn_deploy.exporting.tensorrt_build.profile_for`).
        batch: tiles per forward pass (the profile allows 3x for gray models on RGB images).
    """

    tile: int = TENSORRT_DEFAULT_TILE
    batch: int = 1

    @classmethod
    def for_run(cls, tile: int | None, batch: int) -> TensorrtOptions:
        """The options for a run's tile (None or 0: the default tile; the tiler then cuts
        larger images to it) and batch."""
        return cls(tile=tile or TENSORRT_DEFAULT_TILE, batch=max(batch, 1))
