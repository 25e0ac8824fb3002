"""The models one run uses, loaded on first use and kept: the primary model and its companions.

A restoration may need more than one network:

- the primary model (the one given, or the zoo's default for the task);
- a gray companion: the zoo's 1-channel model of the same task, for gray inputs beside a
  colour primary (a colour model sees a gray image's noise or blocking identical in R, G and
  B, unlike in training);
- for super-resolution of JPEG inputs: the zoo's deblocking models (colour, gray) that remove
  the compression first, and the zoo's SR model for such inputs (`sr-xN-jpeg`) when installed.

`ModelChoice` names the files (`scn_deploy.zoo.choose_models` fills it from a command line);
`ModelSet` loads each one when it is first needed, with the run's `EngineOptions` and
`RestoreOptions`, and keeps it for its own life. The local pipeline makes one set per run,
each Ray actor one for its whole life, `scn_deploy.restore.restore` one per call and
`scn eval` one per request, so no caller loads a companion twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.engines.options import EngineOptions
from scn_deploy.engines.registry import load_engine
from scn_deploy.errors import ConfigError
from scn_deploy.restorer import RestoreOptions, Restorer


@dataclass(frozen=True)
class ModelChoice:
    """Which model files a run uses.

    Attributes:
        model: the primary model (.safetensors or .onnx).
        gray_model: a 1-channel model of the same task for gray inputs beside a colour
            `model`; None: every input goes to `model`.
        jpeg_model: SR only: the model that upscales JPEG inputs once they are deblocked
            (None: `model`).
        deblockers: SR only: the deblocking models (colour, gray) run on JPEG inputs before
            upscaling; either may be None (the other serves), both None: no deblocking.
    """

    model: Path
    gray_model: Path | None = None
    jpeg_model: Path | None = None
    deblockers: tuple[Path | None, Path | None] = (None, None)

    @property
    def can_deblock(self) -> bool:
        return any(p is not None for p in self.deblockers)


#: The roles a model plays in a set (`ModelSet.on_first_use` names them).
PRIMARY, GRAY, JPEG, DEBLOCK = "model", "gray_model", "jpeg_model", "deblock_model"


class ModelSet:
    """The models of a `ModelChoice`, each loaded once on first use (thread-safe).

    ``engine`` and ``restore`` are the run's options. Deblocking models run at their own
    pyramid size (``num_scales`` as trained) and, since both stages' engines stay loaded,
    plan their tiles with a quarter of the memory budget. ``on_first_use(role, path)`` is
    called the first time a companion serves (the pipeline names it in its summary).
    ``loads`` lists every file loaded, in order: each appears once for the set's life.
    """

    def __init__(
        self,
        choice: ModelChoice,
        engine: EngineOptions | None = None,
        restore: RestoreOptions | None = None,
        *,
        on_first_use: Callable[[str, Path], None] | None = None,
    ) -> None:
        self.choice = choice
        self.engine_options = engine or EngineOptions()
        self.restore_options = restore or RestoreOptions()
        self.on_first_use = on_first_use
        self.loads: list[Path] = []
        self._restorers: dict[tuple[str, Path], Restorer] = {}
        self._lock = threading.Lock()
        self._spec: ModelSpec | None = None
        self._jpeg_spec: ModelSpec | None = None

    # -- what it holds --------------------------------------------------------------------
    @property
    def spec(self) -> ModelSpec:
        """The primary model's spec (read from the file; no engine is loaded for it)."""
        if self._spec is None:
            self._spec = spec_of(self.choice.model)
        return self._spec

    @property
    def can_deblock(self) -> bool:
        return self.choice.can_deblock

    def primary(self) -> Restorer:
        return self._get(PRIMARY, self.choice.model)

    def restorer_for(self, channels: int, *, jpeg: bool = False) -> Restorer:
        """The restorer for an input of ``channels`` channels (1 or 3); ``jpeg``: the input is
        a JPEG that the JPEG path handles (SR: the JPEG model serves when set)."""
        if jpeg and self.choice.jpeg_model is not None:
            return self._get(JPEG, self.choice.jpeg_model)
        gray = self.choice.gray_model
        if channels == 1 and gray is not None and self.spec.channels != 1:
            return self._get(GRAY, gray)
        return self.primary()

    def jpeg_model_for(self, quality: int) -> Path | None:
        """The JPEG model that upscales a JPEG of ``quality`` (None: the standard model
        does, as there is none or it does not serve that quality)."""
        path = self.choice.jpeg_model
        if path is None:
            return None
        if self._jpeg_spec is None:  # the file's metadata: no engine loaded to read it
            self._jpeg_spec = spec_of(path)
        return path if self._jpeg_spec.serves_jpeg_quality(quality) else None

    def for_input(
        self, pixels: np.ndarray, jpeg_quality: int | None = None
    ) -> tuple[Restorer, np.ndarray]:
        """The restorer for ``pixels`` and the input to give it: the pixels themselves, or
        for a JPEG to clean first (``jpeg_quality``, SR) the deblocked pixels (float32),
        unless the model that upscales JPEGs was trained on them as they are
        (`ModelSpec.input_kind` "jpeg"). A JPEG model that does not serve the JPEG's quality
        (`ModelSpec.jpeg_qualities`) leaves it to the standard model."""
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        if jpeg_quality is None:
            return self.restorer_for(channels), pixels
        restorer = self.restorer_for(channels, jpeg=self.jpeg_model_for(jpeg_quality) is not None)
        if restorer.spec.input_kind == "jpeg":
            return restorer, pixels
        return restorer, self.deblock(pixels, jpeg_quality)

    def deblock(self, pixels: np.ndarray, quality: int) -> np.ndarray:
        """``pixels`` (HxW or HxWxC, any dtype) deblocked as JPEG quality ``quality`` by the
        deblocking model for its channel count: float32 in [0, 1], same layout (no rounding
        before the SR model). Qualities beyond the model's trained range use its nearest end."""
        colour, gray = self.choice.deblockers
        if colour is None and gray is None:
            raise ConfigError("JPEG inputs need a deblocking model (deblock or deblock-gray)")
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        path = (gray or colour) if channels == 1 else (colour or gray)
        assert path is not None
        restorer = self._get(DEBLOCK, path)
        lo, hi = restorer.spec.level_range or (quality, quality)
        level = float(min(max(quality, lo), hi))
        return restorer.restore(pixels, level, dtype=np.float32)

    # -- loading --------------------------------------------------------------------------
    def _options_for(self, role: str) -> tuple[EngineOptions, RestoreOptions]:
        engine, restore = self.engine_options, self.restore_options
        if role != DEBLOCK:
            return engine, restore
        engine = replace(engine, num_scales=None)
        if restore.tile == "auto":
            from scn_deploy.engines.memory import default_memory_budget
            from scn_deploy.engines.registry import resolve_device

            budget = restore.memory_budget or default_memory_budget(resolve_device(engine.device))
            restore = replace(restore, memory_budget=budget // 4)
        return engine, restore

    def _get(self, role: str, path: Path) -> Restorer:
        key = (role, path)
        with self._lock:
            restorer = self._restorers.get(key)
            if restorer is None:
                engine, restore = self._options_for(role)
                restorer = Restorer(load_engine(path, engine), restore)
                self._restorers[key] = restorer
                self.loads.append(path)
                first = True
            else:
                first = False
        if first and role != PRIMARY and self.on_first_use is not None:
            self.on_first_use(role, path)
        return restorer


def spec_of(model: Path) -> ModelSpec:
    """What a model file (.safetensors or .onnx) is, read from its metadata."""
    from scn_deploy.modelfile import read_spec

    if model.suffix.lower() == ".onnx":
        from scn_deploy.exporting.metadata import read_onnx_spec

        return read_onnx_spec(model)
    return read_spec(model)
