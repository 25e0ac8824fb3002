"""Training configuration: one dataclass, loadable from TOML, stored in every checkpoint."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scn_deploy.arch.config import INPUT_KINDS
from scn_deploy.errors import ConfigError
from scn_deploy.tasks import TASKS, task_named

#: What `--precision` takes ("auto": see `resolve_precision`).
TRAIN_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: str) -> tuple[str, str]:
    """The precision a run trains in, and why: ``auto`` is bf16 autocast on a CPU that
    computes bf16 natively (AVX512-BF16 or AMX: measured 2.0x fp32 for the small preset with
    channels_last on an AVX512-BF16 AMD EPYC, 2.9x on an AMX Xeon; docs/training.md), fp32 on
    CPUs without it (emulated bf16 is slower) and on CUDA (not measured there yet). Master
    weights and the optimizer state stay fp32 either way; autocast only runs the
    convolutions in bf16."""
    if precision != "auto":
        return precision, "as asked"
    if device.startswith("cuda"):
        return "fp32", "auto: bf16 training is not measured on CUDA yet"
    from scn_deploy.cpu import native_bf16

    if native_bf16():
        return "bf16", "auto: this CPU computes bf16 natively"
    return "fp32", "auto: this CPU has no native bf16"


@dataclass
class TrainConfig:
    """Everything `scn train` needs. Defaults follow the paper's recipe (Sec. 4.1).

    The learning rate is halved every `lr_halve_every` steps from `lr_halve_start` on; by
    default these are 62.5% and 7.5% of `steps`, the paper's "halves every 3 epochs after the
    25th" of 40 epochs, expressed in steps. `lr_warmup` > 0 ramps it linearly from lr/N up
    to lr over the first N steps (it softens Adam's first full-size steps; on sr-x4's ninth
    run it did not stop a continuation's initial validation drop, see models/sr-x4.md).
    `loss` is the paper's L1 or L2 (MSE, what PSNR measures:
    a short L2 fine-tune of an L1-trained model is a common last step for PSNR).
    """

    task: str = "sr"
    out: str = "runs/train"
    data: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    input_kind: str = "clean"
    val: list[str] = field(default_factory=list)
    val_count: int = 5
    val_crop: int = 192
    val_every: int = 500
    scale: int = 2
    sigma: float | None = None
    sigma_range: tuple[float, float] | None = None
    quality: int | None = None
    quality_range: tuple[int, int] | None = None
    gray: bool = False
    preset: str = "small"
    arch: dict[str, Any] = field(default_factory=dict)
    num_scales: int = 3
    scale_ratio: float = 0.5
    init: str | None = None
    steps: int = 2000
    batch: int = 16
    patch: int = 48
    lr: float = 1e-3
    lr_halve_start: int | None = None
    lr_halve_every: int | None = None
    lr_warmup: int = 0
    loss: str = "l1"
    device: str = "cpu"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    workers: int = 0
    seed: int = 0
    val_seed: int | None = None
    log_every: int = 10
    ckpt_every: int = 100
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        for name in ("sigma_range", "quality_range"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, tuple(value))
        self.validate()

    @property
    def level_range(self) -> tuple[float, float] | None:
        name = task_named(self.task).level_name
        rng = getattr(self, f"{name}_range") if name else None
        return None if rng is None else (float(rng[0]), float(rng[1]))

    @property
    def fixed_level(self) -> float | None:
        """The one level of a fixed-level denoiser or deblocker (--sigma / --quality)."""
        name = task_named(self.task).level_name
        value = getattr(self, name) if name else None
        return None if value is None else float(value)

    @property
    def held_out_seed(self) -> int:
        """Seed that picks the held-out validation images: `val_seed`, else `seed`."""
        return self.seed if self.val_seed is None else self.val_seed

    @property
    def halve_start(self) -> int:
        return self.lr_halve_start if self.lr_halve_start is not None else int(0.625 * self.steps)

    @property
    def halve_every(self) -> int:
        every = self.lr_halve_every if self.lr_halve_every is not None else int(0.075 * self.steps)
        return max(1, every)

    def lr_factor(self, step: int) -> float:
        """Multiplier of the base learning rate at a (0-based) step."""
        warm = min(1.0, (step + 1) / self.lr_warmup) if self.lr_warmup > 0 else 1.0
        if step < self.halve_start:
            return warm
        return warm * 0.5 ** ((step - self.halve_start) // self.halve_every + 1)

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"invalid training config: {msg}")

        if self.task not in TASKS:
            raise bad(f"task must be sr, denoise or deblock, got {self.task!r}")
        task = TASKS[self.task]
        if task.upscales and self.scale not in (2, 3, 4):
            raise bad(f"--scale must be 2, 3 or 4, got {self.scale}")
        name = task.level_name
        if name and (getattr(self, name) is None) == (getattr(self, f"{name}_range") is None):
            raise bad(f"{self.task} needs exactly one of --{name} or --{name}-range")
        if self.sigma_range and not 0 <= self.sigma_range[0] < self.sigma_range[1] <= 255:
            raise bad(f"sigma range must satisfy 0 <= A < B <= 255, got {self.sigma_range}")
        if self.quality_range and not 1 <= self.quality_range[0] < self.quality_range[1] <= 100:
            raise bad(f"quality range must satisfy 1 <= A < B <= 100, got {self.quality_range}")
        if self.steps < 1 or self.batch < 1 or self.patch < 8:
            raise bad("steps and batch must be >= 1 and patch >= 8")
        if self.patch % task.patch_multiple:
            raise bad(
                f"{self.task} patches must be a multiple of {task.patch_multiple} (the JPEG "
                "block size)"
            )
        if self.inputs and not task.upscales:
            raise bad("--inputs (given degraded LR images) is for --task sr")
        if self.input_kind != "clean" and not self.inputs:
            raise bad("--input-kind describes the --inputs folders: give --inputs too")
        if self.input_kind not in INPUT_KINDS:
            raise bad(f"--input-kind must be one of {', '.join(INPUT_KINDS)}")
        if self.precision not in TRAIN_PRECISIONS:
            raise bad(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise bad("fp16 training needs --device cuda (use fp32 or bf16 on CPU)")
        if self.lr <= 0:
            raise bad("lr must be positive")
        if self.loss not in ("l1", "l2"):
            raise bad(f"loss must be l1 or l2, got {self.loss!r}")
        if self.lr_warmup < 0:
            raise bad("lr_warmup must be >= 0 (0: no warm-up)")
        if self.snapshot_every < 0:
            raise bad("snapshot_every must be >= 0 (0: no snapshots)")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("sigma_range", "quality_range"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training config keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read training config {path}: {exc}") from exc
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)
