"""Architecture and model configuration: the data a model file carries.

`SCNConfig` describes the network alone (what `build_network` needs). `ModelSpec` adds what
the network was trained *for* (task, scale, noise level or JPEG quality, conditioning) and a
training summary. Both are plain dataclasses that round-trip through JSON, so a model file's
metadata is enough to rebuild and run the network.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from scn_deploy.errors import ConfigError
from scn_deploy.tasks import Task, task_named

RESAMPLE_MODES = ("bilinear", "avgpool", "conv")
BOUNDARY_RULES = ("replicate", "zero")
MAX_EVAL_SCALES = 12


@dataclass(frozen=True)
class SCNConfig:
    """Hyper-parameters of one scale-wise convolutional network.

    Attributes:
        num_blocks: residual blocks with scale-wise convolution.
        num_features: residual units (channels between blocks).
        width_multiplier: expansion inside the block body (wide activation, WDSR-A style).
        num_scales: pyramid scales used in training (and by default at inference).
        scale_ratio: size ratio between neighbouring pyramid levels, in (0, 1); stored as a
            float, used as the nearest small fraction (1/2, 2/3, 3/4 ...) so that pyramid
            sizes are exact integer arithmetic (ceil(size * ratio), never zero).
        scale_kernel: the scale-wise convolution kernel size 2k+1 (k >= 1).
        resample: how features move between scales: "bilinear" (default, any ratio),
            "avgpool" (average pooling down, nearest up; integer 1/ratio only) or "conv"
            (strided convolution down, transposed convolution up; integer 1/ratio only).
        boundary: at the pyramid's ends a missing neighbour is replaced by the same-scale term
            ("replicate", as the reference code does) or dropped ("zero").
        weight_norm: weight normalisation on every convolution (reference default).
        in_channels / out_channels: image channels (1 gray or 3 RGB).
        upscale: 1 for restoration (denoise/deblock: the net predicts a residual on the
            input), 2/3/4 for super-resolution (pixel shuffle + 5x5 global skip conv).
        cond_channels: 0, or 1 for an extra input channel carrying a noise-level / quality
            map (FFDNet-style conditioning: one network serves every level).
        image_mean: subtracted from the [0, 1] input before the network, added back after.
        space_to_depth: 1, or a factor f (2, 4) for restoration networks: the body runs on the
            pixel-unshuffled image (f*f times the channels at 1/f the height and width, the
            conditioning map averaged to that resolution) and its residual is pixel-shuffled
            back, FFDNet-style: about 1/f**2 of the body's compute. Inputs are replicate-padded
            to a multiple of f and the padding cropped. Written to model files only when > 1.
    """

    num_blocks: int = 8
    num_features: int = 32
    width_multiplier: float = 4.0
    num_scales: int = 3
    scale_ratio: float = 0.5
    scale_kernel: int = 3
    resample: str = "bilinear"
    boundary: str = "replicate"
    weight_norm: bool = True
    in_channels: int = 3
    out_channels: int = 3
    upscale: int = 1
    cond_channels: int = 0
    image_mean: float = 0.5
    space_to_depth: int = 1

    def __post_init__(self) -> None:
        self.validate()

    # -- derived values -------------------------------------------------------------
    @property
    def ratio_fraction(self) -> Fraction:
        return Fraction(self.scale_ratio).limit_denominator(16)

    @property
    def scale_reach(self) -> int:
        """k in the kernel size 2k+1: how many neighbouring scales on each side."""
        return self.scale_kernel // 2

    @property
    def hidden_features(self) -> int:
        return int(self.num_features * self.width_multiplier)

    @property
    def cross_scale(self) -> bool:
        """Whether the network has cross-scale weights (a single-scale model has none)."""
        return self.num_scales > 1

    @property
    def integer_step(self) -> int | None:
        """1/ratio when it is an integer (needed by the avgpool and conv resampling modes)."""
        inv = 1 / self.ratio_fraction
        return int(inv) if inv.denominator == 1 else None

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"invalid SCN config: {msg}")

        if self.num_blocks < 1:
            raise bad(f"num_blocks must be >= 1, got {self.num_blocks}")
        if self.num_features < 1:
            raise bad(f"num_features must be >= 1, got {self.num_features}")
        if self.width_multiplier <= 0 or self.hidden_features < 1:
            raise bad(
                f"width_multiplier must give >= 1 hidden feature, got {self.width_multiplier}"
            )
        if not 1 <= self.num_scales <= MAX_EVAL_SCALES:
            raise bad(f"num_scales must be in 1..{MAX_EVAL_SCALES}, got {self.num_scales}")
        if not 0.0 < self.scale_ratio < 1.0:
            raise bad(f"scale_ratio must be in (0, 1), got {self.scale_ratio}")
        if self.scale_kernel < 3 or self.scale_kernel % 2 == 0:
            raise bad(f"scale_kernel must be odd and >= 3 (2k+1, k>=1), got {self.scale_kernel}")
        if self.resample not in RESAMPLE_MODES:
            raise bad(f"resample must be one of {RESAMPLE_MODES}, got {self.resample!r}")
        if self.resample != "bilinear" and self.integer_step is None:
            raise bad(
                f"resample={self.resample!r} needs 1/scale_ratio to be an integer "
                f"(got ratio {self.ratio_fraction}); use resample='bilinear'"
            )
        if self.boundary not in BOUNDARY_RULES:
            raise bad(f"boundary must be one of {BOUNDARY_RULES}, got {self.boundary!r}")
        if self.in_channels not in (1, 3) or self.out_channels not in (1, 3):
            raise bad("in_channels and out_channels must be 1 or 3")
        if self.upscale not in (1, 2, 3, 4):
            raise bad(f"upscale must be 1, 2, 3 or 4, got {self.upscale}")
        if self.upscale == 1 and self.in_channels != self.out_channels:
            raise bad("a restoration network (upscale=1) needs in_channels == out_channels")
        if self.cond_channels not in (0, 1):
            raise bad(f"cond_channels must be 0 or 1, got {self.cond_channels}")
        if self.space_to_depth not in (1, 2, 4):
            raise bad(f"space_to_depth must be 1, 2 or 4, got {self.space_to_depth}")
        if self.space_to_depth > 1 and self.upscale != 1:
            raise bad("space_to_depth is for restoration networks (upscale 1)")

    def replace(self, **changes: Any) -> SCNConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.space_to_depth == 1:  # files written before the option stay byte-identical
            del data["space_to_depth"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SCNConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown SCN config keys: {sorted(unknown)}")
        return cls(**data)


#: What a model's inputs can be (`ModelSpec.input_kind`).
INPUT_KINDS = ("clean", "jpeg")


@dataclass
class ModelSpec:
    """Everything a model file says about its network, besides the weights.

    Attributes:
        task: the `Task` (written as its name, "sr", "denoise" or "deblock", in model files
            and ONNX metadata; a name given here is looked up).
        arch: the network configuration.
        preset: the preset the architecture came from, if any.
        sigma: fixed Gaussian noise level (0-255 units) of a non-conditioned denoiser.
        quality: fixed JPEG quality of a non-conditioned deblocker.
        level_range: (low, high) of sigma or quality for a conditioned model.
        training: free-form training summary (data, steps, batch, patch, hardware, time...).
        version: scn-deploy version that wrote the file.
        input_kind: what the model's inputs are: "clean" (the task's own degradation, e.g.
            bicubic LR images for SR) or "jpeg" (SR trained end to end on JPEG-coded LR
            images: JPEG inputs go to it as they are, without the deblocking stage).
        jpeg_qualities: for an SR model of JPEG inputs (the zoo's `sr-xN-jpeg`): the JPEG
            qualities (low, high) it serves; a JPEG of another quality is upscaled by the
            standard model instead (after the same deblocking). None: every quality.
    """

    task: Task
    arch: SCNConfig
    preset: str | None = None
    sigma: float | None = None
    quality: int | None = None
    level_range: tuple[float, float] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    input_kind: str = "clean"
    jpeg_qualities: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.task, str):
            self.task = task_named(self.task)
        if isinstance(self.level_range, list):
            self.level_range = (float(self.level_range[0]), float(self.level_range[1]))
        if isinstance(self.jpeg_qualities, list):
            self.jpeg_qualities = (int(self.jpeg_qualities[0]), int(self.jpeg_qualities[1]))
        self.validate()

    @property
    def scale(self) -> int:
        return self.arch.upscale

    @property
    def conditioned(self) -> bool:
        return self.arch.cond_channels > 0

    @property
    def channels(self) -> int:
        return self.arch.in_channels

    @property
    def task_info(self) -> Task:
        """`task` (its older name, from when `task` was the task's name)."""
        return self.task

    def validate(self) -> None:
        upscales = self.task.upscales
        if upscales and self.arch.upscale == 1:
            raise ConfigError("an sr model needs upscale 2, 3 or 4")
        if not upscales and self.arch.upscale != 1:
            raise ConfigError(f"a {self.task} model must have upscale 1")
        if upscales and self.conditioned:
            raise ConfigError("sr models are not conditioned")
        if self.conditioned and self.level_range is None:
            raise ConfigError("a conditioned model needs level_range (sigma or quality range)")
        if not self.conditioned and self.level_range is not None:
            raise ConfigError("level_range is only meaningful for conditioned models")
        if self.input_kind not in INPUT_KINDS:
            raise ConfigError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        if self.input_kind == "jpeg" and not upscales:
            raise ConfigError('input_kind "jpeg" is for SR models (deblockers take JPEGs anyway)')
        if self.jpeg_qualities is not None:
            low, high = self.jpeg_qualities
            if not upscales or not 1 <= low <= high <= 100:
                got = self.jpeg_qualities
                raise ConfigError(f"jpeg_qualities is (low, high) in 1..100 for SR models: {got}")

    def serves_jpeg_quality(self, quality: int) -> bool:
        """Whether this model upscales JPEGs of ``quality`` (`jpeg_qualities`)."""
        if self.jpeg_qualities is None:
            return True
        return self.jpeg_qualities[0] <= quality <= self.jpeg_qualities[1]

    def condition_value(self, level: float) -> float:
        """The value of the conditioning map for a noise sigma (0-255) or a JPEG quality.

        See `Task.condition_value`.
        """
        return self.task.condition_value(level)

    def describe(self) -> str:
        return self.task.describe(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task.name,
            "arch": self.arch.to_dict(),
            "preset": self.preset,
            "sigma": self.sigma,
            "quality": self.quality,
            "level_range": list(self.level_range) if self.level_range else None,
            "training": self.training,
            "version": self.version,
            # written only when not the default, so older files stay byte-identical
            **({"input_kind": self.input_kind} if self.input_kind != "clean" else {}),
            **({"jpeg_qualities": list(self.jpeg_qualities)} if self.jpeg_qualities else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        try:
            arch = SCNConfig.from_dict(dict(data["arch"]))
            return cls(
                task=task_named(data["task"]),
                arch=arch,
                preset=data.get("preset"),
                sigma=data.get("sigma"),
                quality=data.get("quality"),
                level_range=data.get("level_range"),
                training=dict(data.get("training") or {}),
                version=str(data.get("version", "")),
                input_kind=str(data.get("input_kind", "clean")),
                jpeg_qualities=data.get("jpeg_qualities"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed model config: {exc}") from exc
