"""What a network config implies for running it, without torch: how deep its pyramid reaches,
the window alignment that keeps a tile's pyramid on the image's grid, a bound on the receptive
field, and compute and activation memory per input pixel. Tiling plans with these facts; the
TensorRT profile reads them too."""

from __future__ import annotations

import math

from scn_deploy.arch.config import SCNConfig

__all__ = [
    "MAX_ALIGNMENT",
    "activation_bytes_per_pixel",
    "align_up",
    "aligned_levels",
    "effective_levels",
    "flops_per_input_pixel",
    "flops_per_output_megapixel",
    "pyramid_alignment",
    "receptive_field_bound",
]

# Largest alignment asked of windows (and of whole images, which are padded to it). Deep
# ratio-2/3 pyramids would otherwise need 3**7 = 2,187 px (8 levels) or 6,561 px (9 levels).
MAX_ALIGNMENT = 1024


def effective_levels(cfg: SCNConfig, num_scales: int) -> int:
    """Pyramid levels that reach the output (`SCN.effective_scales`: min(n, k*blocks + 1))."""
    if num_scales <= 1:
        return 1
    return min(num_scales, cfg.scale_reach * cfg.num_blocks + 1)


def pyramid_alignment(cfg: SCNConfig, num_scales: int, *, limit: int | None = None) -> int:
    """Window origins/sizes that keep a window's feature pyramid on the image's grid.

    For a level ratio p/q, level l samples the image on a grid of step (q/p)**l anchored at
    the window origin; the grids of a window and of the whole image coincide when the origin
    and size are multiples of q**(levels - 1). That is capped at the largest power of q not
    above `limit` (default `MAX_ALIGNMENT`): past it, only the first `aligned_levels` levels
    coincide exactly (see `scn_deploy.tiling`). A `space_to_depth` factor f runs the pyramid
    on an f-times smaller grid, so the alignment is f * q**(levels - 1).
    """
    limit = MAX_ALIGNMENT if limit is None else limit
    q = cfg.ratio_fraction.denominator
    align = cfg.space_to_depth
    for _ in range(effective_levels(cfg, num_scales) - 1):
        if align * q > limit:
            break
        align *= q
    return align


def align_up(value: int, align: int) -> int:
    """`value` rounded up to a multiple of `align` (window sides, overlaps, canvases)."""
    return -(-value // align) * align


def aligned_levels(cfg: SCNConfig, num_scales: int) -> int:
    """How many pyramid levels (from the finest) tiled windows share exactly with the image."""
    q = cfg.ratio_fraction.denominator
    align = pyramid_alignment(cfg, num_scales) // cfg.space_to_depth
    levels = 1
    while align >= q and levels < effective_levels(cfg, num_scales):
        align //= q
        levels += 1
    return levels


def receptive_field_bound(cfg: SCNConfig, num_scales: int) -> int:
    """An upper bound on the receptive field radius (input pixels), from the architecture.

    Per block a level-s feature reads the body (two 3x3 convs: 2 pixels of the source level)
    of levels up to s+k and resamples them (1 pixel of the source level), i.e. at most 3
    coarsest-level pixels; building the pyramid and the ceil-size rounding add one more
    coarsest-level pixel each; head, tail and the 5x5 skip add 4 input pixels. A
    `space_to_depth` factor f scales all of it by f (the body's pixels are f input pixels).
    """
    levels = effective_levels(cfg, num_scales)
    coarsest = float(1 / cfg.ratio_fraction) ** (levels - 1)
    return math.ceil(cfg.space_to_depth * (4 + (3 * cfg.num_blocks + 2) * coarsest))


def _level_weights(cfg: SCNConfig, num_scales: int) -> list[float]:
    """Area of each pyramid level relative to the input (1, ratio**2, ...)."""
    r = float(cfg.ratio_fraction)
    return [r ** (2 * level) for level in range(effective_levels(cfg, num_scales))]


def flops_per_input_pixel(cfg: SCNConfig, num_scales: int) -> float:
    """Convolution FLOPs (2 x MACs) per input pixel, from the config (no torch needed)."""
    weights = _level_weights(cfg, num_scales)
    pyramid = sum(weights)
    c, hidden = cfg.num_features, cfg.hidden_features
    area = cfg.space_to_depth**2  # input pixels per body pixel
    c_in = (cfg.in_channels * area + cfg.cond_channels) / area
    c_out = cfg.out_channels * cfg.upscale**2
    macs = c_in * c * 9 + c * c_out * 9
    if cfg.upscale > 1:
        macs += c_in * c_out * 25
    body = 2 * c * hidden * 9
    cross = 0.0
    learned = cfg.resample == "conv"
    if len(weights) > 1:
        # One 1x1 conv per (level, offset), at the smaller of the two levels; learned
        # resampling (a strided conv down, a transposed conv up, kernel = stride) costs c*c
        # per pixel of the larger one.
        for s in range(len(weights)):
            for i in range(-cfg.scale_reach, cfg.scale_reach + 1):
                j = s + i
                if i != 0 and 0 <= j < len(weights):
                    cross += c * c * weights[min(s, j) if learned else max(s, j)]
    macs += cfg.num_blocks * (body * pyramid + cross) / area
    return 2.0 * macs


def activation_bytes_per_pixel(cfg: SCNConfig, num_scales: int, *, fp16: bool = False) -> float:
    """Peak feature-map memory per input pixel of one forward pass (bytes, with headroom).

    Live at the peak of a block: the pyramid, its residuals, the cross-scale sums and the new
    pyramid (4 x C x pyramid area), the wide hidden activation and body output at full
    resolution; plus the head input and the tail/skip/pixel-shuffle outputs; x1.5 for the
    allocator and the engine's own buffers.
    """
    pyramid = sum(_level_weights(cfg, num_scales))
    c = cfg.num_features
    c_out = cfg.out_channels * cfg.upscale**2
    floats = (4 * c * pyramid + cfg.hidden_features + c) / cfg.space_to_depth**2
    floats += cfg.in_channels + cfg.cond_channels + 3 * c_out
    return 1.5 * floats * (2 if fp16 else 4)


def flops_per_output_megapixel(cfg: SCNConfig, num_scales: int | None = None) -> float:
    """Convolution FLOPs (2 x multiply-accumulates) per output megapixel (resampling and
    activations not counted: under 1%), at `num_scales` (default: as trained)."""
    n = cfg.num_scales if num_scales is None else num_scales
    return flops_per_input_pixel(cfg, n) / cfg.upscale**2 * 1e6
