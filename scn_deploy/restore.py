"""The public restoration API: arrays in, arrays out.

`Restorer` keeps one loaded engine for many images; `restore()` is the one-call version.
Images are HxW (gray) or HxWxC arrays, uint8 / uint16 / float in [0, 1]; results are float32
in [0, 1] with the same layout (use `to_dtype` to quantise). Alpha and file formats are the
business of `scn_deploy.imageio` and the CLI, not of this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from scn_deploy.engines.base import Engine, load_engine
from scn_deploy.errors import ConfigError

# The eight dihedral transforms of the x8 self-ensemble (the paper's SCN+) as (rot90 k, flip).
_DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


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
        return np.clip(np.rint(image01 * 255.0), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.rint(image01 * 65535.0), 0, 65535).astype(np.uint16)
    return np.clip(image01, 0.0, 1.0).astype(np.float32)


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Apply a transform to the last two axes of an NCHW array."""
    if flip:
        x = x[..., ::-1]
    return np.rot90(x, k, axes=(-2, -1))


def _dihedral_inverse(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    x = np.rot90(x, -k, axes=(-2, -1))
    return x[..., ::-1] if flip else x


@dataclass
class RestoreOptions:
    """How a `Restorer` runs the engine.

    Attributes:
        tile: tile size in input pixels (0 = the whole image at once).
        tile_overlap: context pixels added around each tile (None = the model's default).
        batch: tiles per forward pass.
        tta: x8 geometric self-ensemble (flips and 90-degree rotations, averaged).
    """

    tile: int = 0
    tile_overlap: int | None = None
    batch: int = 1
    tta: bool = False


class Restorer:
    """Keeps one engine loaded and restores many images with it."""

    def __init__(self, engine: Engine, options: RestoreOptions | None = None) -> None:
        self.engine = engine
        self.options = options or RestoreOptions()

    @property
    def spec(self):
        return self.engine.spec

    def _level_map(self, batch: int, h: int, w: int, level: float | None) -> np.ndarray | None:
        if not self.spec.conditioned:
            return None
        if level is None:
            raise ConfigError(f"{self.spec.describe()}: give the noise sigma / JPEG quality")
        lo, hi = self.spec.level_range or (level, level)
        if not lo <= level <= hi:
            raise ConfigError(
                f"level {level:g} is outside the range this model was trained for ({lo:g}-{hi:g})"
            )
        value = self.spec.condition_value(level)
        return np.full((batch, 1, h, w), value, np.float32)

    def _run(self, x: np.ndarray, level: float | None) -> np.ndarray:
        """NCHW float32 -> NCHW float32 through the engine (tiled when options.tile > 0)."""
        opts = self.options
        if opts.tile and max(x.shape[-2:]) > opts.tile:
            from scn_deploy.tiling import run_tiled

            return run_tiled(
                self.engine,
                x,
                level_map=self._level_map,
                level=level,
                tile=opts.tile,
                overlap=opts.tile_overlap,
                batch=opts.batch,
            )
        return self.engine.infer(x, self._level_map(x.shape[0], *x.shape[-2:], level))

    def restore_nchw(self, x: np.ndarray, level: float | None = None) -> np.ndarray:
        """Restore an NCHW float32 batch whose C matches the model; output not clamped."""
        if not self.options.tta:
            return self._run(x, level)
        acc = None
        for k, flip in _DIHEDRAL:
            y = _dihedral_inverse(
                self._run(np.ascontiguousarray(_dihedral(x, k, flip)), level), k, flip
            )
            acc = y if acc is None else acc + y
        assert acc is not None
        return acc / len(_DIHEDRAL)

    def restore(self, image: np.ndarray, level: float | None = None) -> np.ndarray:
        """Restore one image (HxW or HxWxC, C = 1 or 3); float32 [0, 1] of the same layout.

        Gray images on an RGB model are replicated to three channels and the result averaged
        back to one; RGB images on a gray model are restored channel by channel.
        """
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            raise ConfigError(f"expected an HxW or HxWx1/3 image, got shape {image.shape}")
        img = to_float(image)
        squeeze = img.ndim == 2
        if squeeze:
            img = img[..., None]
        c_in, c_model = img.shape[2], self.spec.channels
        chw = img.transpose(2, 0, 1)
        if c_in == c_model:
            batch = chw[None]
        elif c_model == 3:  # gray image, RGB model
            batch = np.repeat(chw, 3, axis=0)[None]
        else:  # RGB image, gray model: one channel per batch item
            batch = chw[:, None]
        out = self.restore_nchw(np.ascontiguousarray(batch, np.float32), level)
        if c_in == c_model:
            result = out[0]
        elif c_model == 3:
            result = out[0].mean(axis=0, keepdims=True)
        else:
            result = out[:, 0]
        result = np.clip(result.transpose(1, 2, 0), 0.0, 1.0)
        return result[..., 0] if squeeze else result


def restore(
    image: np.ndarray,
    *,
    model: str | os.PathLike[str] | None = None,
    task: str = "sr",
    scale: int = 2,
    level: float | None = None,
    engine: str = "auto",
    device: str = "cpu",
    num_scales: int | None = None,
    options: RestoreOptions | None = None,
) -> np.ndarray:
    """One-call restoration: load a model (by file or from the zoo) and restore `image`.

    Args:
        model: a model file / ONNX file / zoo name; default: the zoo model for the task.
        task: "sr", "denoise" or "deblock" (used to pick the zoo model).
        scale: SR factor when picking the zoo model.
        level: noise sigma (0-255) for denoising, JPEG quality for deblocking.
    """
    from scn_deploy.zoo import resolve_model

    path = resolve_model(model, task=task, scale=scale, gray=image.ndim == 2)
    eng = load_engine(path, engine=engine, device=device, num_scales=num_scales)
    return Restorer(eng, options).restore(image, level)
