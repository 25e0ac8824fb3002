"""Tiled inference: plan overlapping tiles, run them in batches, keep each tile's core.

An image too large for one forward pass is cut into a grid of *cores* that partition it. Each
core is run with `overlap` pixels of real image context on every side (its *window*, clipped
at the image border), and only the core of each output is kept, so no kept pixel is ever
computed near an artificial tile edge. The result equals the whole-image output when the
overlap covers the network's receptive field and every window sees the same feature pyramid:

* **Receptive field.** `measure_receptive_field` perturbs one pixel of a textured canvas and
  finds the farthest output pixel that moves by more than 1e-3 of a grey level;
  `default_overlap` (that radius + 2, rounded to the alignment) is the overlap used unless
  one is given. When measuring would be too slow (very large models on CPU), the analytic
  bound `receptive_field_bound` is used instead.
* **Pyramid alignment.** SCN downsamples its features by a ratio p/q per level, to
  ceil(size * p/q). A window whose origin and size are multiples of q**(levels - 1)
  (`pyramid_alignment`) has a pyramid that is exactly a sub-grid of the image's pyramid.
  Cores and the overlap are rounded to that multiple, so windows start aligned; a window that
  ends at the bottom/right border, and a whole image of any size, is mirror-padded up to the
  next multiple and the padding cropped from the output. Whole-image and tiled inference
  both go through `run_tiles`, so they make the same forward passes up to the context.
  The alignment is capped at `MAX_ALIGNMENT` (1,024 px: ratio 1/2 up to 11 levels, ratio
  2/3 up to 7). Deeper pyramids (ratio 2/3 with 8 or 9 scales) are padded to 729 px, not to
  2,187 or 6,561; their windows then share the image's grid on the first 7 levels only and
  the coarser levels, sampled up to a pixel of their own grid apart, make tiled results
  differ slightly from whole-image ones (`aligned_levels` says how many levels are exact).

Cores are handed to a `store` callback as soon as they are computed (the caller writes them
into a preallocated output), windows are fetched one batch at a time (`fetch`), so memory
grows with the tile size, not with the image. `TilePlanner` makes the plan, `run_tiles` runs
it, `run_tiled` is the NCHW convenience. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.facts import (
    activation_bytes_per_pixel,
    flops_per_input_pixel,
    pyramid_alignment,
    receptive_field_bound,
)
from scn_deploy.dihedral import DIHEDRAL, dihedral, dihedral_inverse
from scn_deploy.engines.base import Engine
from scn_deploy.errors import ConfigError, ScnError

__all__ = [
    "Span",
    "Tile",
    "TilePlanner",
    "TileSize",
    "auto_tile",
    "default_memory_budget",
    "default_overlap",
    "measure_receptive_field",
    "run_tiled",
    "run_tiles",
]

# A level map factory: (batch, height, width) -> (batch, 1, height, width) or None.
LevelFn = Callable[[int, int, int], "np.ndarray | None"]

# Output change (in [0, 1] units) that counts as "influenced": 1e-3 of an 8-bit grey level.
RF_THRESHOLD = 1e-3 / 255.0
# Largest canvas used to measure a receptive field, and the FLOPs we are willing to spend.
RF_MAX_CANVAS = 1024
RF_MAX_FLOPS = {"cpu": 4e11, "cuda": 4e13}

#: A tile side in input pixels, or (height, width); 0 = not cut.
TileSize = int | tuple[int, int]


#: The most one forward pass may plan for on a GPU: keeps every activation far below 2**31
#: elements (int32 indexing in cuDNN / TensorRT kernels) even on 80+ GB cards.
CUDA_MAX_BUDGET = 8 << 30


def cuda_free_bytes(index: int) -> int:
    """Free GPU memory as this process can use it: the driver's free memory plus what
    PyTorch's caching allocator holds but does not use (it is reused, not lost). Without
    PyTorch (the TensorRT and ONNX Runtime GPU installs) the CUDA runtime is asked."""
    try:
        import torch
    except ImportError:
        from scn_deploy.engines.cuda_runtime import CudaRuntime

        return CudaRuntime().free_bytes(index)
    free, _total = torch.cuda.mem_get_info(index)
    cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    return int(free + max(cached, 0))


def default_memory_budget(device: str = "cpu") -> int:
    """Bytes that one forward pass may use: 1 GiB (at most a quarter of free RAM) on CPU;
    on CUDA half the free GPU memory (cached blocks count as free), at most
    `CUDA_MAX_BUDGET` (2 GiB when it cannot be queried)."""
    if device.startswith("cuda"):
        try:
            index = int(device.split(":")[1]) if ":" in device else 0
            return min(cuda_free_bytes(index) // 2, CUDA_MAX_BUDGET)
        except Exception:  # neither torch nor the CUDA runtime can tell: a fixed budget
            return 2 << 30
    budget = 1 << 30
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        budget = min(budget, available // 4)
    except (ValueError, OSError, AttributeError):
        pass
    return max(budget, 64 << 20)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def auto_tile(
    spec: ModelSpec,
    num_scales: int,
    height: int,
    width: int,
    *,
    overlap: int | Callable[[], int],
    batch: int = 1,
    memory_budget: int | None = None,
    device: str = "cpu",
    fp16: bool = False,
    window_cost: Callable[[int], float] | None = None,
) -> TileSize:
    """The tile grid that computes the image fastest with every window in the budget.

    Returns 0 (no tiling) when the whole image fits `memory_budget` and no plan is cheaper;
    else (tile_h, tile_w), core sides in input pixels (0 on an axis that is not cut:
    full-width strips are often the cheapest plan). Overlap makes each window larger than
    its core, so with a flat `window_cost` the fastest plan is the one with the fewest,
    largest windows that fit. `window_cost(pixels)` (`Engine.window_cost`) is the time per
    pixel of a window of that size relative to small ones: where large windows run slower,
    a plan's window pixels are weighted by it and smaller windows can win. Every grid of
    tile counts is tried. Tiles are multiples of the pyramid alignment and at least 32
    pixels. `overlap` may be a callable, evaluated only when tiling is needed (measuring
    the receptive field costs a forward pass). `fp16` means 2-byte activations (fp16 or
    bf16).
    """
    per_pixel = activation_bytes_per_pixel(spec.arch, num_scales, fp16=fp16)
    budget = memory_budget if memory_budget is not None else default_memory_budget(device)
    cost_of = window_cost or (lambda pixels: 1.0)
    if height * width * per_pixel <= budget and cost_of(height * width) <= 1.0:
        return 0
    align = pyramid_alignment(spec.arch, num_scales)
    max_pixels = budget / (per_pixel * max(1, batch))
    context = overlap() if callable(overlap) else overlap
    smallest = _round_up(32, align)
    best: tuple[tuple[int, int], tuple[int, int]] | None = None
    across = _axis_choices(width, context, align, smallest)
    for tile_h, sum_h, max_h, n_h in _axis_choices(height, context, align, smallest):
        for tile_w, sum_w, max_w, n_w in across:
            if max_h * max_w > max_pixels:
                continue
            per_pass = max_h * max_w * max(1, min(batch, n_h * n_w))  # pixels per forward pass
            cost = (sum_h * sum_w * cost_of(per_pass), n_h * n_w)
            if best is None or cost < best[0]:
                best = (cost, (tile_h, tile_w))
    if best is None:
        return (smallest, smallest)
    return 0 if best[1] == (0, 0) else best[1]


def _axis_choices(
    size: int, overlap: int, align: int, smallest: int
) -> list[tuple[int, int, int, int]]:
    """(tile, total window length, longest window, windows) for each way to cut one axis."""
    choices: dict[int, tuple[int, int, int, int]] = {}
    for count in range(1, max(1, size // smallest) + 1):
        tile = _round_up(-(-size // count), align) if count > 1 else 0
        if count > 1 and tile < smallest:
            break
        spans = axis_spans(size, tile, overlap, align)
        lengths = [_round_up(span.hi - span.lo, align) for span in spans]
        choices.setdefault(len(spans), (tile, sum(lengths), max(lengths), len(spans)))
    return list(choices.values())


# ---------------------------------------------------------------------------------------------
# Receptive field
# ---------------------------------------------------------------------------------------------


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
    size = min(_round_up(2 * bound + 2 * align + 1, align), _round_up(max_canvas, align))
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
    """`measure_receptive_field`, cached per model file, scales, precision and device.

    The receptive field is a property of the model, measured in fp32: bf16 / fp16 / int8
    rounding turns the far, tiny influence of a pixel into steps above the threshold, which
    would grow the overlap to the canvas. Lower-precision engines are measured through their
    fp32 twin, or given the architecture bound when they have none."""
    key = _engine_key(engine)
    if key not in _RF_CACHE:
        _RF_CACHE[key] = _stored_receptive_field(engine) or _measure_fp32(engine)
    return _RF_CACHE[key]


def _measure_fp32(engine: Engine) -> ReceptiveField:
    if engine.fp32_twin is not None:  # lower precision or CUDA: measured on the CPU in fp32
        found = measure_receptive_field(engine.fp32_twin())
    elif engine.precision == "fp32":
        found = measure_receptive_field(engine)
    else:
        bound = receptive_field_bound(engine.spec.arch, engine.num_scales)
        return ReceptiveField(bound, measured=False)
    _store_receptive_field(engine, found)
    return found


def _rf_store_key(engine: Engine) -> str | None:
    """What a measured receptive field depends on: the weights file, the scales, the
    threshold (not the engine or the precision: it is measured in fp32)."""
    from scn_deploy.exporting.cache import file_sha256

    try:
        digest = file_sha256(engine.source)
    except OSError:
        return None
    if engine.precision == "int8":  # the quantized file: its fp32 twin is another file
        digest = f"int8-{digest}"
    return f"{digest}-s{engine.num_scales}-t{RF_THRESHOLD:g}"


def _rf_store() -> Path:
    from scn_deploy.exporting.cache import cache_dir

    return cache_dir() / "receptive-field.json"


def _stored_receptive_field(engine: Engine) -> ReceptiveField | None:
    """A receptive field measured by an earlier run (the user cache), or None."""
    key = _rf_store_key(engine)
    try:
        radius = json.loads(_rf_store().read_text())[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ReceptiveField(int(radius["radius"]), True, bool(radius["saturated"]))


def _store_receptive_field(engine: Engine, found: ReceptiveField) -> None:
    key = _rf_store_key(engine)
    if key is None:
        return
    from scn_deploy.atomic import atomic_write

    try:
        known = json.loads(_rf_store().read_text())
    except (OSError, ValueError):
        known = {}
    known[key] = {"radius": found.radius, "saturated": found.saturated}
    with contextlib.suppress(ScnError):  # an unwritable cache costs the next run a probe
        atomic_write(_rf_store(), (json.dumps(known, indent=1) + "\n").encode())


def default_overlap(engine: Engine) -> int:
    """The overlap used when none is given: the receptive field plus 2 pixels of margin,
    rounded up to the pyramid alignment."""
    align = pyramid_alignment(engine.spec.arch, engine.num_scales)
    return _round_up(receptive_field(engine).radius + 2, align)


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One axis of a tile: the core [start, stop) and its window [lo, hi) (core + context)."""

    start: int
    stop: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Tile:
    """A core to produce and the window of input that is run to produce it."""

    index: int
    y: Span
    x: Span

    @property
    def window(self) -> tuple[slice, slice]:
        """Input rows/columns the engine sees."""
        return slice(self.y.lo, self.y.hi), slice(self.x.lo, self.x.hi)

    def core_in_window(self, scale: int = 1) -> tuple[slice, slice]:
        """Where the core lies in the window's output."""
        y, x = self.y, self.x
        return (
            slice((y.start - y.lo) * scale, (y.stop - y.lo) * scale),
            slice((x.start - x.lo) * scale, (x.stop - x.lo) * scale),
        )

    def core_out(self, scale: int = 1) -> tuple[slice, slice]:
        """Where the core lies in the full output."""
        return (
            slice(self.y.start * scale, self.y.stop * scale),
            slice(self.x.start * scale, self.x.stop * scale),
        )


def axis_spans(size: int, tile: int, overlap: int, align: int) -> list[Span]:
    """Cut one axis of `size` pixels into cores of about `tile` (0: one core) with at least
    `overlap` pixels of context on each side (cores and overlap rounded up to `align`).

    The number of cores is ceil(size / tile); they are made as equal as the alignment allows.
    Every window has the same length (the interior one's, core + 2 x overlap): a window at
    the border takes its missing context from the inner side instead, so that all windows
    of an image share one shape (engines that compile per shape compile once; windows batch
    together). Window starts stay multiples of `align`; a last window that ends at the
    border may be shorter by less than `align` (the runner mirror-pads it to the length).
    """
    tile = _round_up(tile, align) if tile else 0
    overlap = _round_up(overlap, align)
    if not tile or tile >= size:
        return [Span(0, size, 0, size)]
    count = -(-size // tile)
    step = _round_up(-(-size // count), align)
    starts = range(0, size, step)
    length = step + overlap * (2 if len(starts) > 2 else 1)
    spans = []
    for start in starts:
        stop = min(size, start + step)
        lo = min(max(0, start - overlap), _round_up(max(0, size - length), align))
        spans.append(Span(start, stop, lo, min(size, lo + length)))
    return spans


class TilePlanner:
    """Cuts an image into tiles: cores that partition it, windows = core + overlap.

    Args:
        height, width: input size.
        tile: core side in input pixels, or (height, width) of the cores; 0 (or >= the
            image) = not cut (on that axis, for a pair).
        overlap: context on each side of a core, input pixels.
        align: cores and overlap are rounded up to multiples of this (see `pyramid_alignment`).
    """

    def __init__(
        self, height: int, width: int, *, tile: TileSize, overlap: int = 0, align: int = 1
    ) -> None:
        if height < 1 or width < 1:
            raise ConfigError(f"cannot tile an empty image ({height}x{width})")
        tile_h, tile_w = tile if isinstance(tile, tuple) else (tile, tile)
        if min(tile_h, tile_w) < 0 or overlap < 0 or align < 1:
            raise ConfigError(f"tile, overlap must be >= 0 (got {tile}, {overlap})")
        self.height, self.width = height, width
        self.align = align
        self.overlap = _round_up(overlap, align)
        ys = axis_spans(height, tile_h, overlap, align)
        xs = axis_spans(width, tile_w, overlap, align)
        self.tiles = [
            Tile(i * len(xs) + j, y, x) for i, y in enumerate(ys) for j, x in enumerate(xs)
        ]

    @classmethod
    def for_engine(
        cls,
        engine: Engine,
        height: int,
        width: int,
        *,
        tile: TileSize,
        overlap: int | None = None,
    ) -> TilePlanner:
        """A plan with the engine's alignment and (by default) its measured overlap."""
        align = pyramid_alignment(engine.spec.arch, engine.num_scales)
        if overlap is None:
            tile_h, tile_w = tile if isinstance(tile, tuple) else (tile, tile)
            cut = 0 < tile_h < height or 0 < tile_w < width
            overlap = default_overlap(engine) if cut else 0
        return cls(height, width, tile=tile, overlap=overlap, align=align)

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[Tile]:
        return iter(self.tiles)

    def describe(self) -> str:
        if len(self.tiles) == 1:
            return "whole image"
        rows = len({t.y for t in self.tiles})
        cols = len(self.tiles) // rows
        first = self.tiles[0]
        core = f"{first.y.stop - first.y.start}x{first.x.stop - first.x.start}"
        return f"{rows}x{cols} tiles of {core} px, overlap {self.overlap} px"


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def _pad_to_alignment(x: np.ndarray, align: int) -> np.ndarray:
    """Mirror-pad the bottom/right of an (N, C, h, w) window to multiples of `align`.

    Only windows that end at the image's bottom/right border can be unaligned; the padding
    gives them (and a whole image of any size) the exact pyramid of an aligned image, the one
    every other window sees. The padded rows/columns are outside every core and are cropped.
    """
    pad_h, pad_w = (-x.shape[-2]) % align, (-x.shape[-1]) % align
    if not pad_h and not pad_w:
        return x
    return np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="symmetric")


@dataclass
class _Pending:
    tile: Tile
    k: int
    flip: bool
    x: np.ndarray


def run_tiles(
    engine: Engine,
    tiles: Sequence[Tile],
    fetch: Callable[[Tile], np.ndarray],
    store: Callable[[Tile, np.ndarray], None],
    *,
    level_fn: LevelFn | None = None,
    batch: int = 1,
    tta: bool = False,
    on_tile: Callable[[Tile], None] | None = None,
) -> None:
    """Run `tiles` through `engine` and hand each core's output to `store`.

    `fetch(tile)` returns the window as (N, C, h, w) float32 (N >= 1: e.g. one item per
    channel for a gray model on a colour image). Consecutive windows of the same shape are
    stacked, up to `batch` windows per forward pass. With `tta`, each window runs under the
    eight dihedral transforms and the core outputs are averaged. `store(tile, y)` receives
    the core of the output, (N, C, h_core * scale, w_core * scale) float32, not clamped;
    `on_tile(tile)` is called after each store (progress).
    """
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    scale = engine.spec.scale
    align = pyramid_alignment(engine.spec.arch, engine.num_scales)
    transforms = DIHEDRAL if tta else [(0, False)]
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    pending: list[_Pending] = []

    def flush() -> None:
        if not pending:
            return
        xs = pending[0].x if len(pending) == 1 else np.concatenate([p.x for p in pending])
        n, _, h, w = xs.shape
        level = level_fn(n, h, w) if level_fn is not None else None
        ys = engine.infer(np.ascontiguousarray(xs, np.float32), level)
        expected = (n, engine.spec.arch.out_channels, h * scale, w * scale)
        if ys.shape != expected:
            raise ScnError(
                f"{engine.name} engine returned {ys.shape} for {xs.shape}, not {expected}"
            )
        offset = 0
        for p in pending:
            m = p.x.shape[0]
            y = dihedral_inverse(ys[offset : offset + m], p.k, p.flip)
            offset += m
            core = y[(..., *p.tile.core_in_window(scale))]
            index = p.tile.index
            if len(transforms) == 1:  # nothing to average: hand over the view, no copy
                store(p.tile, core)
                if on_tile is not None:
                    on_tile(p.tile)
                continue
            if index in sums:
                sums[index] += core
            else:
                sums[index] = np.array(core, np.float32)
            counts[index] = counts.get(index, 0) + 1
            if counts[index] == len(transforms):
                result = sums.pop(index)
                del counts[index]
                if len(transforms) > 1:
                    result /= len(transforms)
                store(p.tile, result)
                if on_tile is not None:
                    on_tile(p.tile)
        pending.clear()

    for tile in tiles:
        x = _pad_to_alignment(fetch(tile), align)
        for k, flip in transforms:
            xt = dihedral(x, k, flip)
            if pending and (xt.shape != pending[0].x.shape or len(pending) >= batch):
                flush()
            pending.append(_Pending(tile, k, flip, xt))
    flush()


def run_tiled(
    engine: Engine,
    x: np.ndarray,
    *,
    level_map: Callable[[int, int, int, float | None], np.ndarray | None] | None = None,
    level: float | None = None,
    tile: TileSize,
    overlap: int | None = None,
    batch: int = 1,
    tta: bool = False,
) -> np.ndarray:
    """Tiled `engine.infer` for an NCHW float32 batch: same result, bounded working memory.

    Args:
        level_map: `(batch, h, w, level) -> map or None` (e.g. `Restorer._level_map`).
        tile: core side in input pixels (0: whole image).
        overlap: context pixels per side (None: `default_overlap(engine)`).
        batch: windows per forward pass.
    Returns (N, C_out, H*s, W*s) float32, not clamped.
    """
    n, _, height, width = x.shape
    plan = TilePlanner.for_engine(engine, height, width, tile=tile, overlap=overlap)
    s = engine.spec.scale
    out = np.empty((n, engine.spec.arch.out_channels, height * s, width * s), np.float32)

    def fetch(t: Tile) -> np.ndarray:
        return x[(..., *t.window)]

    def store(t: Tile, y: np.ndarray) -> None:
        out[(..., *t.core_out(s))] = y

    level_fn = None
    if level_map is not None:

        def level_fn(b: int, h: int, w: int) -> np.ndarray | None:
            return level_map(b, h, w, level)

    run_tiles(engine, plan.tiles, fetch, store, level_fn=level_fn, batch=batch, tta=tta)
    return out
