"""The receptive field: how far one input pixel influences the output, which is the
overlap tiles need to match the whole-image result.

`measure_receptive_field` perturbs one pixel of a textured canvas and finds the farthest
output pixel that moves by more than 1e-3 of a grey level; `default_overlap` (that radius +
2, rounded to the alignment) is the overlap used unless one is given. When measuring would
be too slow (very large models on CPU), the analytic bound `receptive_field_bound` is used.
`receptive_field` caches the measurement per engine in the process and per model file in
the user cache (`receptive-field.json`), which concurrent processes update without losing
each other's entries (`scn_deploy.atomic.merge_json`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.facts import (
    align_up,
    flops_per_input_pixel,
    pyramid_alignment,
    receptive_field_bound,
)
from scn_deploy.atomic import merge_json, read_json_object
from scn_deploy.digest import file_sha256
from scn_deploy.engines.base import Engine
from scn_deploy.errors import ScnError
from scn_deploy.paths import cache_dir

__all__ = [
    "ReceptiveField",
    "default_overlap",
    "measure_receptive_field",
    "receptive_field",
    "receptive_field_key",
    "receptive_field_store",
    "store_receptive_field",
    "stored_receptive_field",
]

# Output change (in [0, 1] units) that counts as "influenced": 1e-3 of an 8-bit grey level.
RF_THRESHOLD = 1e-3 / 255.0
# Largest canvas used to measure a receptive field, and the FLOPs we are willing to spend.
RF_MAX_CANVAS = 1024
RF_MAX_FLOPS = {"cpu": 4e11, "cuda": 4e13}


@dataclass(frozen=True)
class ReceptiveField:
    """A receptive field radius in input pixels and how it was obtained."""

    radius: int
    measured: bool
    saturated: bool = False  # the influence reached the edge of the measuring canvas

    def describe(self) -> str:
        if not self.measured:
            return f"{self.radius} px (architecture bound; too costly to measure here)"
        if self.saturated:
            return f">= {self.radius} px (reaches the {RF_MAX_CANVAS} px measuring canvas)"
        return f"{self.radius} px (measured)"


def _texture(size: int, channels: int, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like canvas: smoothed noise plus fine grain, in [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((channels, size // 8 + 2, size // 8 + 2))
    smooth = np.kron(coarse, np.ones((8, 8)))[:, :size, :size]
    grain = rng.random((channels, size, size))
    return (0.1 + 0.8 * (0.7 * smooth + 0.3 * grain)).astype(np.float32)


def _probe_level(spec: ModelSpec, n: int, h: int, w: int) -> np.ndarray | None:
    if not spec.conditioned:
        return None
    assert spec.level_range is not None
    lo, hi = spec.level_range
    return np.full((n, 1, h, w), spec.condition_value((lo + hi) / 2), np.float32)


def measure_receptive_field(
    engine: Engine, *, threshold: float = RF_THRESHOLD, max_canvas: int = RF_MAX_CANVAS
) -> ReceptiveField:
    """Measure how far one input pixel influences the output (Chebyshev radius, input px).

    Runs the engine once on a batch of two canvases that differ in the centre pixel and
    returns the largest distance from it at which any output channel changes by more than
    `threshold` (default 1e-3 of an 8-bit grey level). The canvas is twice the architecture
    bound (capped at `max_canvas`); when that would cost more than `RF_MAX_FLOPS` for the
    device, the bound itself is returned (`measured=False`).
    """
    spec = engine.spec
    cfg = spec.arch
    bound = receptive_field_bound(cfg, engine.num_scales)
    align = pyramid_alignment(cfg, engine.num_scales)
    size = min(align_up(2 * bound + 2 * align + 1, align), align_up(max_canvas, align))
    device = "cuda" if str(engine.device).startswith("cuda") else "cpu"
    if 2 * size * size * flops_per_input_pixel(cfg, engine.num_scales) > RF_MAX_FLOPS[device]:
        return ReceptiveField(bound, measured=False)
    base = _texture(size, spec.channels)
    centre = size // 2
    probe = base.copy()
    probe[:, centre, centre] = np.where(base[:, centre, centre] > 0.5, 0.0, 1.0)
    batch = np.stack([base, probe])
    out = engine.infer(batch, _probe_level(spec, 2, size, size))
    diff = np.abs(out[1] - out[0]).max(axis=0)
    ys, xs = np.nonzero(diff > threshold)
    if ys.size == 0:
        return ReceptiveField(0, measured=True)
    s = spec.scale
    dist = np.maximum(np.abs(ys // s - centre), np.abs(xs // s - centre))
    radius = int(dist.max())
    return ReceptiveField(radius, measured=True, saturated=radius >= centre - align)


_RF_CACHE: dict[tuple[object, ...], ReceptiveField] = {}


def _engine_key(engine: Engine) -> tuple[object, ...]:
    try:
        mtime = os.stat(engine.source).st_mtime_ns
    except OSError:
        mtime = id(engine)
    return (engine.name, engine.source, mtime, engine.num_scales, engine.precision, engine.device)


def receptive_field(engine: Engine) -> ReceptiveField:
    """`measure_receptive_field`, cached per model file, scales, precision and device in the
    process, and per model file and scales in the user cache (`receptive_field_store`).

    The receptive field is a property of the model, measured in fp32: bf16 / fp16 / int8
    rounding turns the far, tiny influence of a pixel into steps above the threshold, which
    would grow the overlap to the canvas. Lower-precision engines are measured through their
    fp32 twin, or given the architecture bound when they have none."""
    key = _engine_key(engine)
    if key not in _RF_CACHE:
        store_key = receptive_field_key(engine)
        stored = stored_receptive_field(store_key) if store_key else None
        _RF_CACHE[key] = stored or _measure_fp32(engine, store_key)
    return _RF_CACHE[key]


def _measure_fp32(engine: Engine, store_key: str | None) -> ReceptiveField:
    if engine.fp32_twin is not None:  # lower precision or CUDA: measured on the CPU in fp32
        found = measure_receptive_field(engine.fp32_twin())
    elif engine.precision == "fp32":
        found = measure_receptive_field(engine)
    else:
        bound = receptive_field_bound(engine.spec.arch, engine.num_scales)
        return ReceptiveField(bound, measured=False)
    if store_key is not None:
        store_receptive_field(store_key, found)
    return found


def receptive_field_key(engine: Engine) -> str | None:
    """The store's key for an engine's receptive field: what a measurement depends on, the
    weights file, the scales and the threshold (not the engine or the precision: it is
    measured in fp32). None when the engine's file cannot be read."""
    try:
        digest = file_sha256(engine.source)
    except OSError:
        return None
    if engine.precision == "int8":  # the quantized file: its fp32 twin is another file
        digest = f"int8-{digest}"
    return f"{digest}-s{engine.num_scales}-t{RF_THRESHOLD:g}"


def receptive_field_store() -> Path:
    """Where measured receptive fields are kept: `receptive-field.json` in the user cache,
    a JSON object of `receptive_field_key` -> {"radius", "saturated"}."""
    return cache_dir() / "receptive-field.json"


def stored_receptive_field(key: str) -> ReceptiveField | None:
    """The receptive field an earlier run measured under `key`, or None."""
    entry = read_json_object(receptive_field_store()).get(key)
    try:
        return ReceptiveField(int(entry["radius"]), True, bool(entry["saturated"]))  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


def store_receptive_field(key: str, found: ReceptiveField) -> None:
    """Keep a measured receptive field under `key`, merged into the store so that processes
    measuring other models at the same time lose nothing. An unwritable cache is ignored
    (the next run measures again)."""
    with contextlib.suppress(ScnError):
        merge_json(
            receptive_field_store(), {key: {"radius": found.radius, "saturated": found.saturated}}
        )


def default_overlap(engine: Engine) -> int:
    """The overlap used when none is given: the receptive field plus 2 pixels of margin,
    rounded up to the pyramid alignment."""
    align = pyramid_alignment(engine.spec.arch, engine.num_scales)
    return align_up(receptive_field(engine).radius + 2, align)
