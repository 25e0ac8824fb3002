"""Running a tile plan: windows fetched one batch at a time, mirror-padded to the pyramid
alignment, run through the engine (under the eight dihedral transforms with TTA), and each
core handed to the caller as soon as it is computed.

`run_tiles` runs any plan with caller-supplied `fetch` / `store` callbacks (memory grows with
the tile, not with the image); `run_tiled` is the NCHW-array convenience.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from scn_deploy.arch.facts import pyramid_alignment
from scn_deploy.dihedral import DIHEDRAL, dihedral, dihedral_inverse
from scn_deploy.engines.base import Engine
from scn_deploy.errors import ConfigError, ScnError
from scn_deploy.tiling.plan import Tile, TilePlanner, TileSize

__all__ = ["LevelFn", "run_tiled", "run_tiles"]

# A level map factory: (batch, height, width) -> (batch, 1, height, width) or None.
LevelFn = Callable[[int, int, int], "np.ndarray | None"]


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
