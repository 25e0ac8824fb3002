"""Tiled inference: plan overlapping tiles, run them in batches, keep each tile's core.

An image too large for one forward pass is cut into a grid of *cores* that partition it. Each
core is run with `overlap` pixels of real image context on every side (its *window*, clipped
at the image border), and only the core of each output is kept, so no kept pixel is ever
computed near an artificial tile edge. The result equals the whole-image output when the
overlap covers the network's receptive field and every window sees the same feature pyramid:

* **Receptive field** (`receptive_fields.py`). `measure_receptive_field` perturbs one pixel of
  a textured canvas and finds the farthest output pixel that moves by more than 1e-3 of a
  grey level; `default_overlap` (that radius + 2, rounded to the alignment) is the overlap
  used unless one is given. When measuring would be too slow (very large models on CPU), the
  analytic bound `receptive_field_bound` is used instead.
* **Pyramid alignment** (`plan.py`). SCN downsamples its features by a ratio p/q per level,
  to ceil(size * p/q). A window whose origin and size are multiples of q**(levels - 1)
  (`pyramid_alignment`) has a pyramid that is exactly a sub-grid of the image's pyramid.
  Cores and the overlap are rounded to that multiple, so windows start aligned; a window that
  ends at the bottom/right border, and a whole image of any size, is mirror-padded up to the
  next multiple and the padding cropped from the output (`run.py`). Whole-image and tiled
  inference both go through `run_tiles`, so they make the same forward passes up to the
  context. The alignment is capped at `MAX_ALIGNMENT` (1,024 px: ratio 1/2 up to 11 levels,
  ratio 2/3 up to 7). Deeper pyramids (ratio 2/3 with 8 or 9 scales) are padded to 729 px,
  not to 2,187 or 6,561; their windows then share the image's grid on the first 7 levels
  only and the coarser levels, sampled up to a pixel of their own grid apart, make tiled
  results differ slightly from whole-image ones (`aligned_levels` says how many levels are
  exact).

Cores are handed to a `store` callback as soon as they are computed (the caller writes them
into a preallocated output), windows are fetched one batch at a time (`fetch`), so memory
grows with the tile size, not with the image. `TilePlanner` makes the plan, `run_tiles` runs
it, `run_tiled` is the NCHW convenience. The memory budget `auto_tile` plans for comes from
`scn_deploy.engines.memory`. Nothing here imports torch.
"""

from __future__ import annotations

from scn_deploy.tiling.plan import Span, Tile, TilePlanner, TileSize, auto_tile, axis_spans
from scn_deploy.tiling.receptive_fields import (
    ReceptiveField,
    default_overlap,
    measure_receptive_field,
    receptive_field,
)
from scn_deploy.tiling.run import LevelFn, run_tiled, run_tiles

__all__ = [
    "LevelFn",
    "ReceptiveField",
    "Span",
    "Tile",
    "TilePlanner",
    "TileSize",
    "auto_tile",
    "axis_spans",
    "default_overlap",
    "measure_receptive_field",
    "receptive_field",
    "run_tiled",
    "run_tiles",
]
