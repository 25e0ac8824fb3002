"""One loaded engine restoring many arrays: `Restorer`, its `RestoreOptions`, and conversions.

`Restorer` keeps one loaded engine for many images (`scn_deploy.restore.restore` is the
one-call version, `scn_deploy.modelset.ModelSet` keeps a run's several).
Images are HxW (gray) or HxWxC arrays, uint8 / uint16 / float in [0, 1]; results are float32
in [0, 1] with the same layout (use `to_dtype` to quantise). Alpha and file formats are the
business of `scn_deploy.imageio` and the CLI, not of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from scn_deploy.engines.base import Engine
from scn_deploy.errors import ConfigError
from scn_deploy.tiling import (
    Tile,
    TilePlanner,
    TileSize,
    auto_tile,
    default_overlap,
    run_tiles,
)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise ConfigError(f"unsupported image dtype {image.dtype}")


def to_dtype(image01: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """float [0, 1] -> uint8 / uint16 (rounded, clipped) or float32."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return _to_uint8(image01)
    if dtype == np.uint16:
        return np.clip(np.rint(image01 * 65535.0), 0, 65535).astype(np.uint16)
    return np.clip(image01, 0.0, 1.0).astype(np.float32)


def _saturate_uint8(x2d: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """clip(rint(x * 255)) of a 2-D float array (rows may be strided) as uint8, in two
    multithreaded OpenCV passes: negatives to 0 (into `scratch` when given), then the
    saturating conversion, which rounds half to even as `np.rint` does. About 15x faster than
    the numpy expression, whose passes and temporaries were 12% of a whole-photo upscale."""
    return cv2.convertScaleAbs(cv2.max(x2d, 0.0, dst=scratch), alpha=255.0)


def _to_uint8(image01: np.ndarray) -> np.ndarray:
    if image01.size == 0 or image01.ndim < 2:
        return np.clip(np.rint(image01 * 255.0), 0, 255).astype(np.uint8)
    x = np.ascontiguousarray(image01)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    return _saturate_uint8(x.reshape(-1, x.shape[-1])).reshape(x.shape)  # one channel to cv2


def planes_to_image(planes: np.ndarray, dtype: np.dtype | type, *, gray: bool) -> np.ndarray:
    """(C, h, w) float [0, 1] planes (any strides) -> (h, w) if ``gray`` else (h, w, C) in
    ``dtype``, as `to_dtype` converts. uint8 goes plane by plane through OpenCV, reading the
    strided planes in place and interleaving them with `cv2.merge`: the tiler's hot path,
    about 10x faster than converting and transposing with numpy."""
    if np.dtype(dtype) != np.uint8 or planes.size == 0:
        converted = to_dtype(planes, dtype)
        return converted[0] if gray else converted.transpose(1, 2, 0)
    scratch = np.empty(planes.shape[1:], np.float32)
    converted = [_saturate_uint8(p.astype(np.float32, copy=False), scratch) for p in planes]
    if gray:
        return converted[0]
    return cv2.merge(converted) if len(converted) > 1 else converted[0][..., None]


@dataclass
class RestoreOptions:
    """How a `Restorer` runs the engine.

    Attributes:
        tile: tile (core) size in input pixels; 0 = the whole image at once; "auto" = the
            largest tile whose forward pass fits `memory_budget` (0 when the image fits).
        tile_overlap: context pixels added around each tile (None = the model's measured
            receptive field, see `scn_deploy.tiling.default_overlap`).
        batch: tiles per forward pass.
        tta: x8 geometric self-ensemble (flips and 90-degree rotations, averaged).
        memory_budget: bytes one forward pass may use with tile="auto" (None: 1 GiB on CPU,
            half the free GPU memory on CUDA).
        extrapolate_level: accept noise levels / qualities outside a conditioned model's
            trained range (the model extrapolates) instead of raising.
    """

    tile: int | Literal["auto"] = 0
    tile_overlap: int | None = None
    batch: int = 1
    tta: bool = False
    memory_budget: int | None = None
    extrapolate_level: bool = False


def _to_model_batch(chw: np.ndarray, c_model: int) -> np.ndarray:
    """(C, h, w) image channels -> (N, c_model, h, w): as is, gray replicated to RGB, or one
    batch item per channel for a gray model."""
    if chw.shape[0] == c_model:
        return chw[None]
    if c_model == 3:  # gray image, RGB model
        return np.repeat(chw, 3, axis=0)[None]
    return chw[:, None]  # RGB image, gray model: one channel per batch item


def _from_model_batch(out: np.ndarray, c_in: int, c_model: int) -> np.ndarray:
    """Inverse of `_to_model_batch` on the model output: (N, c_model, h, w) -> (c_in, h, w)."""
    if c_in == c_model:
        return out[0]
    if c_model == 3:
        return out[0].mean(axis=0, keepdims=True)
    return out[:, 0]


class Restorer:
    """Keeps one engine loaded and restores many images with it.

    Every forward pass goes through `scn_deploy.tiling` (a whole image is a plan of one
    tile), so tiled and whole-image results come from the same code: windows are padded to
    the model's pyramid alignment, outputs cropped, x8 TTA averaged per window.
    """

    def __init__(self, engine: Engine, options: RestoreOptions | None = None) -> None:
        self.engine = engine
        self.options = options or RestoreOptions()

    @property
    def spec(self):
        return self.engine.spec

    def check_level(self, level: float | None) -> None:
        """Raise `ConfigError` unless `level` is usable with this model."""
        if not self.spec.conditioned:
            return
        check = self.spec.task_info.check_level(self.spec, level)
        if check.problem == "missing" or (
            check.problem == "outside" and not self.options.extrapolate_level
        ):
            raise ConfigError(check.message)

    def _level_map(self, batch: int, h: int, w: int, level: float | None) -> np.ndarray | None:
        if not self.spec.conditioned:
            return None
        self.check_level(level)
        assert level is not None
        value = self.spec.condition_value(level)
        return np.full((batch, 1, h, w), value, np.float32)

    def tile_size(self, height: int, width: int) -> TileSize:
        """The tile size for an image: `options.tile`, with "auto" resolved (0 = whole;
        (tile_h, tile_w) for the cheapest grid that fits the memory budget)."""
        opts = self.options
        eng = self.engine
        if opts.tile != "auto":
            tile = int(opts.tile)
            limit = eng.max_tile
            if limit is not None and (tile > limit or (tile == 0 and max(height, width) > limit)):
                raise ConfigError(
                    f"the {eng.name} engine was built for tiles up to {limit} px: use --tile "
                    f"{limit} or smaller, or --tile auto"
                )
            return tile
        overlap = opts.tile_overlap
        tile = auto_tile(
            eng.spec,
            eng.num_scales,
            height,
            width,
            overlap=overlap if overlap is not None else lambda: default_overlap(eng),
            batch=opts.batch,
            memory_budget=opts.memory_budget,
            device=eng.device,
            fp16=eng.half_activations,
            window_cost=eng.window_cost,
        )
        if eng.max_tile is not None:
            sides = tile if isinstance(tile, tuple) else (tile, tile)
            if any(side == 0 or side > eng.max_tile for side in sides):
                return eng.max_tile
        return tile

    def plan(self, height: int, width: int) -> TilePlanner:
        """The tile plan for an image of this size."""
        tile = self.tile_size(height, width)
        return TilePlanner.for_engine(
            self.engine, height, width, tile=tile, overlap=self.options.tile_overlap
        )

    def restore(
        self,
        image: np.ndarray,
        level: float | None = None,
        *,
        dtype: np.dtype | type = np.float32,
        on_tile: Callable[[int, int], None] | None = None,
        plan: TilePlanner | None = None,
    ) -> np.ndarray:
        """Restore one image (HxW or HxWxC, C = 1 or 3) into a new array of the same layout.

        Gray images on an RGB model are replicated to three channels and the result averaged
        back to one; RGB images on a gray model are restored channel by channel.

        Args:
            dtype: float32 (default: values in [0, 1]), uint8 or uint16 (quantised as
                `to_dtype` does). The output is allocated once and filled tile by tile, so
                with integer dtypes and tiling the working memory stays a few tiles.
            on_tile: progress callback `(tiles_done, tiles_total)`.
            plan: the tile plan (default: `self.plan(height, width)`).
        """
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            raise ConfigError(f"expected an HxW or HxWx1/3 image, got shape {image.shape}")
        self.check_level(level)
        height, width = image.shape[:2]
        c_in = 1 if image.ndim == 2 else image.shape[2]
        c_model, s = self.spec.channels, self.spec.scale
        if plan is None:
            plan = self.plan(height, width)
        elif (plan.height, plan.width) != (height, width):
            raise ConfigError(
                f"the tile plan is for {plan.height}x{plan.width}, not {height}x{width}"
            )
        out = np.empty((height * s, width * s, *image.shape[2:]), np.dtype(dtype))
        done = 0

        def fetch(tile: Tile) -> np.ndarray:
            window = to_float(image[tile.window])
            chw = window[None] if window.ndim == 2 else window.transpose(2, 0, 1)
            return np.ascontiguousarray(_to_model_batch(chw, c_model), np.float32)

        def store(tile: Tile, y: np.ndarray) -> None:
            nonlocal done
            planes = _from_model_batch(y, c_in, c_model)  # (C, h, w), a view of the output
            out[tile.core_out(s)] = planes_to_image(planes, dtype, gray=image.ndim == 2)
            done += 1
            if on_tile is not None:
                on_tile(done, len(plan))

        def level_fn(n: int, h: int, w: int) -> np.ndarray | None:
            return self._level_map(n, h, w, level)

        run_tiles(
            self.engine,
            plan.tiles,
            fetch,
            store,
            level_fn=level_fn,
            batch=self.options.batch,
            tta=self.options.tta,
        )
        return out
