"""Named architecture presets and the helper that turns a preset + task into a config."""

from __future__ import annotations

from dataclasses import dataclass

from scn_deploy.arch.config import ModelSpec, SCNConfig
from scn_deploy.errors import ConfigError
from scn_deploy.tasks import TASKS


@dataclass(frozen=True)
class Preset:
    """Size of a network: depth, width and expansion. Everything else comes from the task."""

    num_blocks: int
    num_features: int
    width_multiplier: float
    note: str
    boundary: str = "replicate"
    space_to_depth: int = 1


PRESETS: dict[str, Preset] = {
    "tiny": Preset(2, 12, 2.0, "tests and smoke runs (< 50k parameters)"),
    "fast": Preset(
        4, 16, 4.0, "the fast tier: 1/8 of small's compute, zero boundary", boundary="zero"
    ),
    "half": Preset(
        8,
        32,
        4.0,
        "the fast restoration tier: small's body at half resolution (space_to_depth 2), "
        "zero boundary; denoise/deblock only",
        boundary="zero",
        space_to_depth=2,
    ),
    "small": Preset(8, 32, 4.0, "the paper's setting for most experiments; the CPU default"),
    "base": Preset(16, 32, 4.0, "the reference code's default (WDSR x2 size: 1,190,100 params)"),
    "paper": Preset(64, 64, 4.0, "the paper's SR benchmark models (GPU only)"),
}

DEFAULT_NUM_SCALES = 3


def preset_config(
    preset: str,
    *,
    task: str,
    scale: int = 2,
    channels: int = 3,
    num_scales: int = DEFAULT_NUM_SCALES,
    scale_ratio: float = 0.5,
    conditioned: bool = False,
    **overrides: object,
) -> SCNConfig:
    """The `SCNConfig` of a named preset for a task.

    Args:
        preset: one of `PRESETS`.
        task: "sr", "denoise" or "deblock".
        scale: upscaling factor for "sr" (ignored otherwise).
        channels: 1 (gray) or 3 (RGB), in and out.
        num_scales: pyramid scales.
        scale_ratio: ratio between pyramid levels.
        conditioned: add the noise-level / quality input channel (denoise/deblock only).
        overrides: any `SCNConfig` field, applied last (e.g. num_blocks=5).
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    upscales = TASKS[task].upscales
    if upscales and conditioned:
        raise ConfigError("super-resolution models are not conditioned")
    p = PRESETS[preset]
    if upscales and p.space_to_depth > 1:
        raise ConfigError(f"preset {preset!r} is for denoise/deblock models")
    fields: dict[str, object] = {
        "num_blocks": p.num_blocks,
        "num_features": p.num_features,
        "width_multiplier": p.width_multiplier,
        "boundary": p.boundary,
        "num_scales": num_scales,
        "scale_ratio": scale_ratio,
        "in_channels": channels,
        "out_channels": channels,
        "upscale": scale if upscales else 1,
        "cond_channels": 1 if conditioned else 0,
    }
    if p.space_to_depth > 1:
        fields["space_to_depth"] = p.space_to_depth
    fields.update(overrides)
    return SCNConfig(**fields)  # type: ignore[arg-type]


def preset_spec(
    preset: str,
    *,
    task: str,
    scale: int = 2,
    channels: int = 3,
    num_scales: int = DEFAULT_NUM_SCALES,
    scale_ratio: float = 0.5,
    sigma: float | None = None,
    quality: int | None = None,
    level_range: tuple[float, float] | None = None,
    **overrides: object,
) -> ModelSpec:
    """A `ModelSpec` for an untrained network of a preset (what `scn info --preset` shows)."""
    from scn_deploy import __version__

    arch = preset_config(
        preset,
        task=task,
        scale=scale,
        channels=channels,
        num_scales=num_scales,
        scale_ratio=scale_ratio,
        conditioned=level_range is not None,
        **overrides,
    )
    return ModelSpec(
        task=TASKS[task],
        arch=arch,
        preset=preset,
        sigma=sigma if TASKS[task].level_name == "sigma" else None,
        quality=quality if TASKS[task].level_name == "quality" else None,
        level_range=level_range,
        version=__version__,
    )
