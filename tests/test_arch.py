"""The SCN architecture: shapes on odd sizes, scales, ratios, kernels, resampling, counts."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from fractions import Fraction  # noqa: E402

from scn_deploy.arch import PRESETS, SCNConfig, preset_config  # noqa: E402
from scn_deploy.arch.facts import flops_per_output_megapixel  # noqa: E402
from scn_deploy.arch.scn import (  # noqa: E402
    SCN,
    build_network,
    count_parameters,
    pyramid_sizes,
)
from scn_deploy.errors import ConfigError  # noqa: E402

ODD_SIZES = [(1, 1), (1, 17), (13, 7), (31, 2)]


def _measured_flops(cfg: SCNConfig, num_scales: int | None = None, size: int = 128) -> float:
    """Convolution FLOPs per output megapixel, measured: the oracle of the analytic count.

    Measured by running the network on the meta device (no compute) on a `size` x `size`
    input and counting every convolution's MACs; resampling is not counted (< 1%).
    """
    macs = 0

    def hook(module: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.ConvTranspose2d):
            per_in = module.out_channels // module.groups * math.prod(module.kernel_size)
            macs += _inp[0].numel() * per_in
        else:
            assert isinstance(module, nn.Conv2d)
            per_out = module.in_channels // module.groups * math.prod(module.kernel_size)
            macs += out.numel() * per_out

    with torch.device("meta"):
        model = SCN(cfg)
        handles = [
            m.register_forward_hook(hook)
            for m in model.modules()
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        ]
        size = size * cfg.space_to_depth
        x = torch.empty(1, cfg.in_channels, size, size)
        cond = torch.empty(1, 1, size, size) if cfg.cond_channels else None
        with torch.no_grad():
            model(x, cond, num_scales=num_scales or cfg.num_scales)
    for h in handles:
        h.remove()
    out_mp = (size * cfg.upscale) ** 2 / 1e6
    return 2.0 * macs / out_mp


def _run(cfg: SCNConfig, h: int, w: int, n: int | None = None, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_network(cfg).eval()
    x = torch.rand(batch, cfg.in_channels, h, w)
    cond = torch.full((batch, 1, h, w), 0.1) if cfg.cond_channels else None
    with torch.no_grad():
        return model(x, cond, num_scales=n)


@pytest.mark.parametrize(
    "task,scale", [("sr", 2), ("sr", 3), ("sr", 4), ("denoise", 1), ("deblock", 1)]
)
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shapes_tiny_odd_sizes(task: str, scale: int, channels: int) -> None:
    cfg = preset_config(
        "tiny", task=task, scale=scale, channels=channels, num_scales=3, conditioned=task != "sr"
    )
    for h, w in ODD_SIZES:
        y = _run(cfg, h, w)
        assert y.shape == (2, channels, h * scale, w * scale)
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("preset", ["small", "base", "paper"])
def test_forward_shapes_larger_presets(preset: str) -> None:
    cfg = preset_config(preset, task="sr", scale=3, num_scales=2)
    y = _run(cfg, 9, 5, batch=1)
    assert y.shape == (1, 3, 27, 15)
    cfg = preset_config(preset, task="denoise", num_scales=2)
    assert _run(cfg, 5, 11, batch=1).shape == (1, 3, 5, 11)


def test_pyramid_sizes_are_ceil_and_never_zero() -> None:
    assert pyramid_sizes(13, 7, 4, Fraction(1, 2)) == [(13, 7), (7, 4), (4, 2), (2, 1)]
    assert pyramid_sizes(1, 1, 12, Fraction(1, 2)) == [(1, 1)] * 12
    assert pyramid_sizes(12, 9, 3, Fraction(2, 3)) == [(12, 9), (8, 6), (6, 4)]
    assert pyramid_sizes(16, 5, 3, Fraction(3, 4)) == [(16, 5), (12, 4), (9, 3)]


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
def test_evaluate_with_more_or_fewer_scales_than_trained(n: int) -> None:
    cfg = preset_config("tiny", task="sr", scale=2, num_scales=3)
    y = _run(cfg, 19, 23, n=n)
    assert y.shape == (2, 3, 38, 46)
    assert torch.isfinite(y).all()


def _perturbed(cfg: SCNConfig, seed: int = 3) -> SCN:
    """A network with non-trivial weights everywhere (fresh init zeroes all biases)."""
    model = build_network(cfg).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_more_scales_change_the_output() -> None:
    """Extra scales really take part in the computation (not silently ignored)."""
    model = _perturbed(preset_config("tiny", task="sr", scale=2, num_scales=3, num_blocks=5))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        outs = [model(x, num_scales=n) for n in (1, 3, 6)]
    assert (outs[0] - outs[1]).abs().max() > 1e-4
    assert (outs[1] - outs[2]).abs().max() > 1e-5


@pytest.mark.parametrize("kernel", [3, 5])
def test_pruning_unreachable_scales_is_exact(kernel: int) -> None:
    """Scales beyond k * num_blocks + 1 cannot reach the finest scale: skipping them is exact."""
    cfg = preset_config("tiny", task="sr", scale=2, num_scales=3, scale_kernel=kernel)
    model = _perturbed(cfg)
    reach = cfg.scale_reach * cfg.num_blocks + 1
    assert model.effective_scales(12) == reach
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        pruned = model(x, num_scales=reach + 3)
        model.prune_scales = False
        full = model(x, num_scales=reach + 3)
        fewer = model(x, num_scales=reach - 1)
    assert torch.equal(pruned, full)
    assert (full - fewer).abs().max() > 1e-5


@pytest.mark.parametrize("ratio", [0.5, 2 / 3, 0.75])
@pytest.mark.parametrize("kernel", [3, 5])
def test_ratios_and_scale_kernels(ratio: float, kernel: int) -> None:
    cfg = preset_config(
        "tiny", task="sr", scale=2, num_scales=4, scale_ratio=ratio, scale_kernel=kernel
    )
    assert cfg.scale_reach == kernel // 2
    for h, w in [(17, 10), (1, 3)]:
        assert _run(cfg, h, w).shape == (2, 3, 2 * h, 2 * w)


def test_scale_kernel_5_has_two_cross_convs_each_side() -> None:
    cfg = preset_config("tiny", task="denoise", num_scales=3, scale_kernel=5)
    block = build_network(cfg).blocks[0]
    assert sorted(block.scale_conv.cross.keys()) == ["coarser1", "coarser2", "finer1", "finer2"]


@pytest.mark.parametrize("mode", ["bilinear", "avgpool", "conv"])
@pytest.mark.parametrize("boundary", ["replicate", "zero"])
def test_resampling_modes_and_boundaries(mode: str, boundary: str) -> None:
    cfg = preset_config("tiny", task="sr", scale=2, num_scales=3, resample=mode, boundary=boundary)
    for h, w in [(15, 9), (1, 1), (2, 7)]:
        y = _run(cfg, h, w, n=5)
        assert y.shape == (2, 3, 2 * h, 2 * w)
        assert torch.isfinite(y).all()


def test_integer_only_modes_reject_fractional_ratio() -> None:
    with pytest.raises(ConfigError, match="integer"):
        preset_config("tiny", task="sr", scale=2, resample="avgpool", scale_ratio=2 / 3)


def test_boundary_rules_differ() -> None:
    base = preset_config("tiny", task="denoise", num_scales=3)
    torch.manual_seed(0)
    a = build_network(base).eval()
    b = build_network(base.replace(boundary="zero")).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (a(x) - b(x)).abs().max() > 1e-6


def test_single_scale_is_a_wdsr_baseline() -> None:
    cfg = preset_config("base", task="sr", scale=2, num_scales=1)
    with torch.device("meta"):
        model = build_network(cfg)
    # The published parameter count of WDSR-A x2 (16 blocks, 32 units, x4, weight norm).
    assert count_parameters(model) == 1_190_100
    assert all(block.scale_conv is None for block in model.blocks)
    with pytest.raises(ConfigError, match="single-scale"):
        _run(preset_config("tiny", task="sr", scale=2, num_scales=1), 8, 8, n=2)


@pytest.mark.parametrize("preset,limit", [("tiny", 50_000)])
def test_tiny_is_tiny(preset: str, limit: int) -> None:
    for task in ("sr", "denoise"):
        cfg = preset_config(preset, task=task, scale=4, conditioned=task != "sr")
        assert count_parameters(SCN(cfg)) < limit


def test_parameter_counts_of_presets() -> None:
    counts = {}
    for name in PRESETS:
        if PRESETS[name].space_to_depth > 1:
            continue  # restoration only (test_space_to_depth_*)
        with torch.device("meta"):
            counts[name] = count_parameters(
                build_network(preset_config(name, task="sr", scale=2, num_scales=3))
            )
    # Multi-scale adds two weight-normalised 1x1 convs per block: 2 * (32*32 + 32 + 32).
    assert counts["base"] == 1_190_100 + 16 * 2 * (32 * 32 + 64)
    assert counts["small"] == pytest.approx(0.615e6, rel=0.01)
    assert counts["tiny"] < counts["small"] < counts["base"] < counts["paper"]


def test_flops_count_matches_hand_computation() -> None:
    cfg = preset_config("base", task="sr", scale=2, num_scales=1)
    flops = flops_per_output_megapixel(cfg)
    assert _measured_flops(cfg, size=64) == pytest.approx(flops, rel=1e-9)
    # Per LR pixel MACs: head 3*32*9 + 16 blocks * 2 * 32*128*9 + tail 32*12*9 + skip 3*12*25.
    macs_per_lr_pixel = 3 * 32 * 9 + 16 * 2 * 32 * 128 * 9 + 32 * 12 * 9 + 3 * 12 * 25
    expected = 2 * macs_per_lr_pixel / 4 * 1e6  # 4 output pixels per LR pixel
    assert flops == pytest.approx(expected, rel=1e-9)
    # More scales cost more, but the pyramid adds at most ~1/(1-r^2) = 4/3 for r = 1/2.
    multi = flops_per_output_megapixel(cfg.replace(num_scales=4))
    assert flops < multi < flops * 1.45


def test_conditioned_model_requires_map() -> None:
    cfg = preset_config("tiny", task="denoise", conditioned=True)
    model = build_network(cfg).eval()
    with pytest.raises(ConfigError, match="conditioned"):
        model(torch.rand(1, 3, 8, 8))
    # The map really conditions the output.
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        a = model(x, torch.full((1, 1, 8, 8), 0.05))
        b = model(x, torch.full((1, 1, 8, 8), 0.2))
    assert (a - b).abs().max() > 1e-5


def test_initial_restore_net_is_near_identity() -> None:
    """Restore head predicts a residual on the input; zero-init biases keep outputs close."""
    cfg = preset_config("tiny", task="denoise")
    x = torch.rand(1, 3, 12, 12)
    torch.manual_seed(0)
    with torch.no_grad():
        y = build_network(cfg).eval()(x)
    assert y.shape == x.shape


@pytest.mark.parametrize(
    "bad",
    [
        {"num_scales": 0},
        {"num_scales": 13},
        {"scale_ratio": 1.0},
        {"scale_kernel": 4},
        {"scale_kernel": 1},
        {"resample": "bicubic"},
        {"boundary": "wrap"},
        {"in_channels": 2},
        {"upscale": 5},
    ],
)
def test_invalid_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ConfigError):
        SCNConfig(**bad)


def test_config_json_round_trip() -> None:
    cfg = preset_config("small", task="sr", scale=3, scale_ratio=2 / 3, scale_kernel=5)
    assert SCNConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        SCNConfig.from_dict({**cfg.to_dict(), "bogus": 1})


@pytest.mark.parametrize("task", ["denoise", "deblock"])
@pytest.mark.parametrize("channels", [1, 3])
def test_space_to_depth_forward_on_odd_sizes(task: str, channels: int) -> None:
    cfg = preset_config("tiny", task=task, channels=channels, num_scales=3, conditioned=True)
    cfg = cfg.replace(space_to_depth=2)
    for h, w in [*ODD_SIZES, (37, 50)]:
        y = _run(cfg, h, w)
        assert y.shape == (2, channels, h, w)
        assert torch.isfinite(y).all()


def test_space_to_depth_runs_the_body_at_half_resolution() -> None:
    """The body sees pixel-unshuffled input: 4x the channels at half the size, and the
    conditioning map at the body's resolution; the output is a residual on the input."""
    cfg = preset_config("tiny", task="denoise", channels=1, conditioned=True, num_scales=2)
    half = cfg.replace(space_to_depth=2)
    model = build_network(half).eval()
    assert model.head.in_channels == 1 * 4 + 1
    seen: list[tuple[int, ...]] = []
    model.head.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        a = model(torch.rand(1, 1, 20, 15), torch.full((1, 1, 20, 15), 0.1))
    assert seen == [(1, 5, 10, 8)]
    assert a.shape == (1, 1, 20, 15)
    # Compute: the same body at a quarter of the pixels.
    full_flops = flops_per_output_megapixel(preset_config("small", task="denoise"))
    half_flops = flops_per_output_megapixel(preset_config("half", task="denoise"))
    assert half_flops < full_flops / 3
    assert half_flops == pytest.approx(full_flops / 4, rel=0.05)


def test_space_to_depth_serialises_only_when_used() -> None:
    cfg = preset_config("half", task="deblock", channels=1, conditioned=True)
    assert cfg.space_to_depth == 2 and cfg.to_dict()["space_to_depth"] == 2
    assert SCNConfig.from_dict(cfg.to_dict()) == cfg
    plain = preset_config("small", task="deblock")
    assert "space_to_depth" not in plain.to_dict()  # older model files stay byte-identical
    with pytest.raises(ConfigError):
        preset_config("half", task="sr", scale=2)
    with pytest.raises(ConfigError):
        SCNConfig(space_to_depth=3)
    with pytest.raises(ConfigError):
        SCNConfig(upscale=2, space_to_depth=2)


@pytest.mark.parametrize("preset", ["tiny", "fast", "half"])
@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"scale_kernel": 5},
        {"resample": "conv"},
        {"resample": "avgpool"},
        {"scale_ratio": 2 / 3},
    ],
)
@pytest.mark.parametrize("num_scales", [1, 3, 5])
def test_analytic_flops_match_the_counted_ones(preset: str, variant: dict, num_scales: int) -> None:
    """`arch.facts` counts FLOPs from the config alone (no torch at run time); counting every
    convolution of a real forward pass agrees (ratio 2/3: within the ceil rounding of a
    256-pixel input's pyramid)."""
    task = "denoise" if preset == "half" else "sr"
    cfg = preset_config(
        preset, task=task, scale=3, num_scales=num_scales, conditioned=task != "sr", **variant
    )
    measured = _measured_flops(cfg, num_scales, size=256)
    assert flops_per_output_megapixel(cfg, num_scales) == pytest.approx(measured, rel=3e-3)
