"""Classical baselines that `scn eval --method` runs on the same protocol as the models: each
task names its own (`Task.baselines`), `run_baseline` runs one on a degraded input.

- bicubic: MATLAB ``imresize`` of the LR image by the scale (super-resolution);
- identity: the degraded input itself (a float input stays float: it is scored unrounded);
- bm3d: BM3D (Dabov et al. 2007; colour: CBM3D) through the `bm3d` package of its authors' group
(Mäkinen, Azzari, Foi), an optional dependency: ``pip install 'scn-deploy[baselines]'``.
"""

from __future__ import annotations

import numpy as np

from scn_deploy.errors import ConfigError


def run_baseline(method: str, degraded: np.ndarray, level: float) -> np.ndarray:
    """A baseline's output for a degraded input at the task's level (the scale for bicubic,
    the true sigma for BM3D): uint8, or the float input itself for identity on an unquantised
    (noisy float) input."""
    if method == "identity":
        return degraded
    if method == "bicubic":
        from scn_deploy.degrade import imresize

        return imresize(degraded, float(level))
    if method == "bm3d":
        from scn_deploy.restorer import to_dtype

        return to_dtype(bm3d_denoise(degraded, float(level)), np.uint8)
    raise ConfigError(f"unknown baseline {method!r} (bicubic, identity, bm3d)")


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D (gray, HxW) or CBM3D (colour, HxWx3) of a float image in [0, 1] units.

    Args:
        noisy: the noisy image, not clipped (the evaluation protocol's raw float image).
        sigma: the noise standard deviation in 0-255 units (BM3D is told the true level).
    Returns the estimate as float64 in [0, 1] units, same shape.
    """
    try:
        import bm3d
    except ImportError:
        raise ConfigError(
            "the BM3D baseline needs the bm3d package: pip install 'scn-deploy[baselines]'"
        ) from None
    if noisy.ndim == 3 and noisy.shape[2] == 1:
        noisy = noisy[..., 0]
    s = float(sigma) / 255.0
    if s <= 0:
        return np.asarray(noisy, np.float64).copy()
    if noisy.ndim == 2:
        out = bm3d.bm3d(noisy.astype(np.float64), sigma_psd=s)
    elif noisy.ndim == 3 and noisy.shape[2] == 3:
        out = bm3d.bm3d_rgb(noisy.astype(np.float64), sigma_psd=s)
    else:
        raise ConfigError(f"BM3D takes gray or RGB images, got shape {noisy.shape}")
    return np.asarray(out, np.float64).reshape(noisy.shape)
