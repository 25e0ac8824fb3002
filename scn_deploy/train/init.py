"""How a network starts training: from a model file's weights, as an identity, or as a colour
network that begins as a trained gray one."""

from __future__ import annotations

import torch

from scn_deploy.arch.config import SCNConfig
from scn_deploy.arch.scn import SCN
from scn_deploy.errors import ConfigError, ModelFileError
from scn_deploy.modelfile import load_state

# Convolutions whose channel counts follow the image's: the first and the last.
_HEAD, _TAIL = "head", "tail"


def init_from(model: SCN, path: str) -> list[str]:
    """Copy every same-named, same-shaped tensor from a model file (e.g. x3 from an x2 body);
    returns the names of the tensors left as they were.

    A gray restoration model initialises a colour one of the same architecture completely
    (`colour_from_gray`): the colour network starts as the gray network applied to the mean
    of R, G and B, its residual added to every channel."""
    state, spec = load_state(path)
    if _gray_to_colour(spec.arch, model.config):
        state = colour_from_gray(state, spec.arch)
    own = model.state_dict()
    taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not taken:
        raise ModelFileError(f"{path}: no weights match this architecture")
    model.load_state_dict(taken, strict=False)
    return sorted(set(own) - set(taken))


def _gray_to_colour(source: SCNConfig, target: SCNConfig) -> bool:
    return (
        source.in_channels == source.out_channels == 1
        and target.in_channels == target.out_channels == 3
        and source.upscale == target.upscale == 1
        and source.space_to_depth == target.space_to_depth
        and source.cond_channels == target.cond_channels
        and source.weight_norm
        and target.weight_norm
    )


def colour_from_gray(state: dict[str, torch.Tensor], gray: SCNConfig) -> dict[str, torch.Tensor]:
    """A gray restoration network's weights as a 3-channel network of the same body.

    The head reads each colour plane with a third of the gray weights (so R = G = B = y gives
    the gray network's features for y) and the conditioning map as before; the tail writes the
    gray residual into each colour plane. Pixel-unshuffled planes are channel-major (channel
    c, sub-pixel k is c * f*f + k), as in `torch.nn.functional.pixel_unshuffle`."""
    if gray.upscale != 1 or gray.in_channels != 1 or not gray.weight_norm:
        raise ConfigError("colour_from_gray takes a weight-normalised gray restoration model")
    planes = gray.space_to_depth**2
    out = dict(state)
    head = _effective_weight(state, _HEAD)  # (features, planes + cond, 3, 3)
    image, cond = head[:, :planes], head[:, planes:]
    _set_weight(out, _HEAD, torch.cat([image / 3, image / 3, image / 3, cond], dim=1))
    tail = _effective_weight(state, _TAIL)  # (planes, features, 3, 3)
    _set_weight(out, _TAIL, tail.repeat(3, 1, 1, 1))
    out[f"{_TAIL}.bias"] = state[f"{_TAIL}.bias"].repeat(3)
    return out


def _effective_weight(state: dict[str, torch.Tensor], conv: str) -> torch.Tensor:
    g = state[f"{conv}.parametrizations.weight.original0"]
    v = state[f"{conv}.parametrizations.weight.original1"]
    return g * v / torch.linalg.vector_norm(v, dim=(1, 2, 3), keepdim=True)


def _set_weight(state: dict[str, torch.Tensor], conv: str, weight: torch.Tensor) -> None:
    state[f"{conv}.parametrizations.weight.original1"] = weight
    state[f"{conv}.parametrizations.weight.original0"] = torch.linalg.vector_norm(
        weight, dim=(1, 2, 3), keepdim=True
    )


def start_as_identity(model: SCN) -> None:
    """Zero the tail of a restoration network so that it starts as output = input.

    With the architecture's unit-gain tail, an untrained restoration SCN adds a residual of
    RMS ~6 (in [0, 1] units: the pyramid sums grow the features through the blocks); the
    first Adam steps then blow the loss up to 20-30 before it recovers. Starting from the
    identity (ReZero / Fixup style) trains from the degraded input's PSNR instead. With weight
    norm only the gain g is zeroed: g gets a gradient at once, the direction v from step 2.
    """
    if model.shuffle is not None:
        raise ConfigError("start_as_identity is for restoration networks (no upscaling)")
    zero_conv(model.tail)


def zero_conv(conv: torch.nn.Module) -> None:
    """Make a convolution output zero: its weight (with weight norm, the gain g) and bias."""
    with torch.no_grad():
        if hasattr(conv, "parametrizations"):
            conv.parametrizations.weight.original0.zero_()
        else:
            conv.weight.zero_()
        conv.bias.zero_()


def fresh_blocks(model: SCN, fresh: list[str]) -> list[int]:
    """Residual blocks that an init file did not cover at all, when it covered others.

    These are the blocks a deeper network has beyond the shallower model it starts from.
    Empty when every block is fresh (nothing was copied into the body) or none is.
    """
    fresh_set = set(fresh)
    names = list(model.state_dict())
    blocks = range(len(model.blocks))
    new = [i for i in blocks if all(n in fresh_set for n in names if n.startswith(f"blocks.{i}."))]
    return new if len(new) < len(blocks) else []


def start_blocks_as_identity(model: SCN, blocks: list[int]) -> None:
    """Zero the last body convolution of the given residual blocks: each adds nothing.

    Used when a deeper network starts from a shallower one's weights (e.g. `base` from a
    trained `small`, Net2DeeperNet style): the copied blocks keep their function and the new
    ones start as identities, so training begins at the shallower model's quality instead of
    behind it. The body's residual is zero, so the scale-wise convolution over it is zero too
    (its 1x1 convolutions have zero bias). With weight norm only the gain g is zeroed.
    """
    for i in blocks:
        zero_conv(model.blocks[i].body[-1])
