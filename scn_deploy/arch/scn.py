"""The scale-wise convolutional network (SCN, Fan et al., AAAI 2020).

Data flow of `SCN.forward` for an input image x in [0, 1]:

    x - mean (+ conditioning map) --3x3 conv--> features
    features --progressive resampling--> pyramid [f_0 (finest), f_1, ..., f_{N-1}]
    repeat num_blocks times:  f_s <- f_s + sum_{i=-k..k} h_i(q_i(p(f_{s+i})))
        p   : the SAME spatial body at every scale (3x3 conv -> ReLU -> 3x3 conv, wide)
        q_i : a 1x1 conv per scale offset (identity for i = 0)
        h_i : resampling from the size of scale s+i to the size of scale s
    f_0 --3x3 conv--> prediction
    sr:      pixel_shuffle(prediction + 5x5 conv(x - mean)) + mean
    restore: x + prediction (a residual on the input)

With `space_to_depth` f > 1 (restoration only) the head reads pixel_unshuffle(x - mean, f)
(and the conditioning map average-pooled by f), the body runs at 1/f of the resolution and the
tail's f*f*C channels are pixel-shuffled back into the residual.

Pyramid sizes come from the actual input size by exact integer arithmetic
(size_{s+1} = ceil(size_s * ratio), never zero), so any input >= 1x1 runs with any number of
scales (1..12) and the graph stays symbolic in height and width for ONNX export.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from scn_deploy.arch.config import MAX_EVAL_SCALES, SCNConfig
from scn_deploy.errors import ConfigError

Size = tuple[int, int]


def pyramid_sizes(height: int, width: int, num_scales: int, ratio: Fraction) -> list[Size]:
    """Sizes of the feature pyramid: each level is ceil(previous * ratio), at least 1."""
    p, q = ratio.numerator, ratio.denominator
    sizes = [(height, width)]
    for _ in range(num_scales - 1):
        height = (height * p + q - 1) // q
        width = (width * p + q - 1) // q
        sizes.append((height, width))
    return sizes


def _conv(
    in_ch: int, out_ch: int, kernel: int, *, weight_norm: bool, gain: float | None = None
) -> nn.Conv2d | nn.Module:
    """A 'same'-padded convolution, optionally weight-normalised with gain g set to `gain`."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.bias)
    if not weight_norm:
        if gain is not None and gain != 1.0:
            with torch.no_grad():
                conv.weight.mul_(gain)
        return conv
    conv = nn.utils.parametrizations.weight_norm(conv)
    if gain is not None:
        with torch.no_grad():
            conv.parametrizations.weight.original0.fill_(gain)
    return conv


def _pad_to_multiple(x: torch.Tensor, step: int) -> torch.Tensor:
    """Replicate-pad the bottom/right edges so that H and W are multiples of `step`."""
    pad_h = (-x.shape[-2]) % step
    pad_w = (-x.shape[-1]) % step
    if isinstance(pad_h, int) and isinstance(pad_w, int) and pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


class Resampler(nn.Module):
    """Parameter-free resampling between pyramid levels ("bilinear" or "avgpool" modes).

    bilinear: `F.interpolate(..., mode="bilinear", align_corners=False)` to the exact target
    size, down and up. avgpool: average pooling by the integer step (edges replicate-padded to
    a multiple of it), nearest-neighbour up-sampling to the exact target size.
    """

    def __init__(self, mode: str, step: int | None) -> None:
        super().__init__()
        self.mode = mode
        self.step = step

    def down(self, x: torch.Tensor, size: Size, levels: int) -> torch.Tensor:
        if self.mode == "bilinear":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        assert self.step is not None
        k = self.step**levels
        return F.avg_pool2d(_pad_to_multiple(x, k), kernel_size=k, stride=k)

    def up(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        if self.mode == "bilinear":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.interpolate(x, size=size, mode="nearest")


class CrossScale(nn.Module):
    """f_i = h_i o q_i for one scale offset i != 0: brings features from scale s+i to scale s.

    In the "bilinear"/"avgpool" modes q_i is a 1x1 conv and h_i the parameter-free resampler.
    Both are linear and the resamplers' weights sum to one, so they commute exactly; the 1x1
    conv is applied at the smaller of the two resolutions (after down-sampling, before
    up-sampling), which saves compute and gives the same result as q-then-h.
    In the "conv" mode the resampling is learned: a strided conv down, a transposed conv up,
    with kernel = stride = step**|i|.
    """

    def __init__(self, cfg: SCNConfig, offset: int, resampler: Resampler) -> None:
        super().__init__()
        self.offset = offset
        self.levels = abs(offset)
        self.resampler = resampler
        c = cfg.num_features
        self.learned = cfg.resample == "conv"
        if self.learned:
            assert cfg.integer_step is not None
            self.stride = cfg.integer_step**self.levels
            if offset < 0:  # source is finer: strided conv down
                op: nn.Module = nn.Conv2d(c, c, self.stride, stride=self.stride)
            else:  # source is coarser: transposed conv up
                op = nn.ConvTranspose2d(c, c, self.stride, stride=self.stride)
            nn.init.zeros_(op.bias)
            self.q = nn.utils.parametrizations.weight_norm(op) if cfg.weight_norm else op
        else:
            self.q = _conv(c, c, 1, weight_norm=cfg.weight_norm)

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        if self.learned:
            if self.offset < 0:
                return self.q(_pad_to_multiple(x, self.stride))
            return self.q(x)[..., : size[0], : size[1]]
        if self.offset < 0:
            return self.q(self.resampler.down(x, size, self.levels))
        return self.resampler.up(self.q(x), size)


class ScaleWiseConv(nn.Module):
    """Aggregates the body outputs of neighbouring scales: sum_{i=-k..k} f_i(r_{s+i}).

    Missing neighbours at the pyramid's ends follow `cfg.boundary`: "replicate" adds the
    same-scale term in their place (as the reference code does), "zero" drops them.
    """

    def __init__(self, cfg: SCNConfig, resampler: Resampler) -> None:
        super().__init__()
        self.reach = cfg.scale_reach
        self.replicate = cfg.boundary == "replicate"
        offsets = [i for i in range(-self.reach, self.reach + 1) if i != 0]
        self.cross = nn.ModuleDict({self._key(i): CrossScale(cfg, i, resampler) for i in offsets})

    @staticmethod
    def _key(offset: int) -> str:
        return f"finer{-offset}" if offset < 0 else f"coarser{offset}"

    def forward(self, residuals: list[torch.Tensor], sizes: list[Size]) -> list[torch.Tensor]:
        n = len(residuals)
        out = []
        for s in range(n):
            acc = residuals[s]
            for i in range(-self.reach, self.reach + 1):
                if i == 0:
                    continue
                j = s + i
                if 0 <= j < n:
                    acc = acc + self.cross[self._key(i)](residuals[j], sizes[s])
                elif self.replicate:
                    acc = acc + residuals[s]
            out.append(acc)
        return out


class ScaleWiseBlock(nn.Module):
    """One residual block: x_s <- x_s + ScaleWiseConv(p(x_0), ..., p(x_{N-1}))_s.

    p is the wide-activation body (3x3 conv -> ReLU -> 3x3 conv), shared by all scales.
    A single-scale network (no cross-scale weights) is a plain WDSR-A block.
    """

    def __init__(self, cfg: SCNConfig, resampler: Resampler, res_scale: float) -> None:
        super().__init__()
        wn = cfg.weight_norm
        self.body = nn.Sequential(
            _conv(cfg.num_features, cfg.hidden_features, 3, weight_norm=wn, gain=2.0),
            nn.ReLU(inplace=True),
            _conv(cfg.hidden_features, cfg.num_features, 3, weight_norm=wn, gain=res_scale),
        )
        self.scale_conv = ScaleWiseConv(cfg, resampler) if cfg.cross_scale else None

    def forward(self, pyramid: list[torch.Tensor], sizes: list[Size]) -> list[torch.Tensor]:
        residuals = [self.body(x) for x in pyramid]
        if self.scale_conv is not None:
            residuals = self.scale_conv(residuals, sizes)
        return [x + r for x, r in zip(pyramid, residuals, strict=True)]


class SCN(nn.Module):
    """Scale-wise convolutional network for super-resolution or restoration.

    `forward(x, cond=None, num_scales=None)`:
        x: (B, in_channels, H, W) float in [0, 1].
        cond: (B, 1, H, W) conditioning map for conditioned models (see
            `ModelSpec.condition_value`), else None.
        num_scales: pyramid scales for this call (default: `eval_scales`, which starts as the
            trained number). Any value 1..12 works for a multi-scale model.
    Returns (B, out_channels, H*upscale, W*upscale), not clamped.
    """

    def __init__(self, cfg: SCNConfig) -> None:
        super().__init__()
        self.config = cfg
        self.eval_scales = cfg.num_scales
        self.prune_scales = True
        wn = cfg.weight_norm
        f = cfg.space_to_depth
        in_total = cfg.in_channels * f * f + cfg.cond_channels
        out_total = cfg.out_channels * (cfg.upscale * f) ** 2
        self.ratio = cfg.ratio_fraction
        self.resampler = Resampler(
            "avgpool" if cfg.resample == "conv" else cfg.resample, cfg.integer_step
        )
        self.head = _conv(in_total, cfg.num_features, 3, weight_norm=wn, gain=1.0)
        res_scale = 1.0 / math.sqrt(cfg.num_blocks)
        self.blocks = nn.ModuleList(
            ScaleWiseBlock(cfg, self.resampler, res_scale) for _ in range(cfg.num_blocks)
        )
        self.tail = _conv(cfg.num_features, out_total, 3, weight_norm=wn, gain=1.0)
        self.skip = (
            _conv(in_total, out_total, 5, weight_norm=wn, gain=1.0) if cfg.upscale > 1 else None
        )
        self.shuffle = nn.PixelShuffle(cfg.upscale) if cfg.upscale > 1 else None
        self.unfold = f if f > 1 else None

    def check_scales(self, num_scales: int) -> None:
        if not 1 <= num_scales <= MAX_EVAL_SCALES:
            raise ConfigError(f"num_scales must be in 1..{MAX_EVAL_SCALES}, got {num_scales}")
        if num_scales > 1 and not self.config.cross_scale:
            raise ConfigError(
                "this is a single-scale model (trained with num_scales=1): it has no "
                "cross-scale weights and can only run with 1 scale"
            )

    def set_eval_scales(self, num_scales: int) -> None:
        self.check_scales(num_scales)
        self.eval_scales = num_scales

    def effective_scales(self, num_scales: int) -> int:
        """Scales that can influence the output: min(n, k * num_blocks + 1).

        Information moves at most k scales per block, so after num_blocks blocks the finest
        scale has seen scales 0..k*num_blocks only; coarser levels are exact no-ops and are
        not computed (the boundary rule only touches levels that never reach the output).
        """
        if not self.prune_scales:
            return num_scales
        return min(num_scales, self.config.scale_reach * self.config.num_blocks + 1)

    def build_pyramid(self, feat: torch.Tensor, sizes: list[Size]) -> list[torch.Tensor]:
        pyramid = [feat]
        for size in sizes[1:]:
            pyramid.append(self.resampler.down(pyramid[-1], size, 1))
        return pyramid

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, num_scales: int | None = None
    ) -> torch.Tensor:
        cfg = self.config
        n = self.eval_scales if num_scales is None else num_scales
        if num_scales is not None:
            self.check_scales(n)
        inp = x - cfg.image_mean
        f = self.unfold
        if f is not None:
            height, width = x.shape[-2], x.shape[-1]
            inp = F.pixel_unshuffle(_pad_to_multiple(inp, f), f)
        if cfg.cond_channels:
            if cond is None:
                raise ConfigError("this model is conditioned: pass a conditioning map")
            cond = cond.to(inp.dtype)
            if f is not None:
                cond = F.avg_pool2d(_pad_to_multiple(cond, f), f)
            inp = torch.cat([inp, cond], dim=1)
        feat = self.head(inp)
        sizes = pyramid_sizes(inp.shape[-2], inp.shape[-1], self.effective_scales(n), self.ratio)
        pyramid = self.build_pyramid(feat, sizes)
        for block in self.blocks:
            pyramid = block(pyramid, sizes)
        out = self.tail(pyramid[0])
        if self.shuffle is not None:
            assert self.skip is not None
            return self.shuffle(out + self.skip(inp)) + cfg.image_mean
        if f is not None:
            out = F.pixel_shuffle(out, f)[..., :height, :width]
        return x + out


def build_network(cfg: SCNConfig) -> SCN:
    """A freshly initialised SCN for a config."""
    return SCN(cfg)


def fuse_weight_norm(model: SCN) -> SCN:
    """An equivalent network with weight norm folded into plain weights (for inference/export).

    Builds a fresh `weight_norm=False` network and copies the effective weights, rather than
    removing parametrisations from a deep copy (which would also strip the original's class).
    """
    if not model.config.weight_norm:
        return model
    plain = SCN(model.config.replace(weight_norm=False)).to(next(model.parameters()).device)
    plain.eval_scales, plain.prune_scales = model.eval_scales, model.prune_scales
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                target = plain.get_submodule(name)
                target.weight.copy_(module.weight)
                target.bias.copy_(module.bias)
    return plain.train(model.training)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, weight-norm gains included (as published counts do)."""
    return sum(p.numel() for p in model.parameters())
