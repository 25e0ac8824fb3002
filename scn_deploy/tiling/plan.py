"""The tile plan: cores that partition an image, windows = core + overlap, and the grid
that computes an image fastest within a memory budget.

`axis_spans` cuts one axis, `TilePlanner` makes the grid (`for_engine`: with the engine's
pyramid alignment and measured overlap), `auto_tile` chooses the tile size. Cores and the
overlap are multiples of the pyramid alignment so that every window starts on the image's
pyramid grid (see `scn_deploy.tiling`). Nothing here runs a network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from scn_deploy.arch.config import ModelSpec
from scn_deploy.arch.facts import activation_bytes_per_pixel, align_up, pyramid_alignment
from scn_deploy.engines.base import Engine
from scn_deploy.engines.memory import default_memory_budget
from scn_deploy.errors import ConfigError
from scn_deploy.tiling.receptive_fields import default_overlap

__all__ = ["Span", "Tile", "TilePlanner", "TileSize", "auto_tile", "axis_spans"]

#: A tile side in input pixels, or (height, width); 0 = not cut.
TileSize = int | tuple[int, int]


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
    tile = align_up(tile, align) if tile else 0
    overlap = align_up(overlap, align)
    if not tile or tile >= size:
        return [Span(0, size, 0, size)]
    count = -(-size // tile)
    step = align_up(-(-size // count), align)
    starts = range(0, size, step)
    length = step + overlap * (2 if len(starts) > 2 else 1)
    spans = []
    for start in starts:
        stop = min(size, start + step)
        lo = min(max(0, start - overlap), align_up(max(0, size - length), align))
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
        self.overlap = align_up(overlap, align)
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
    smallest = align_up(32, align)
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
        tile = align_up(-(-size // count), align) if count > 1 else 0
        if count > 1 and tile < smallest:
            break
        spans = axis_spans(size, tile, overlap, align)
        lengths = [align_up(span.hi - span.lo, align) for span in spans]
        choices.setdefault(len(spans), (tile, sum(lengths), max(lengths), len(spans)))
    return list(choices.values())
