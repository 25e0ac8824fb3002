"""The three restoration tasks as data: one `Task` each for super-resolution, denoising and JPEG
deblocking. A task owns what differs between them: its degradation (the published protocol,
shared by evaluation, validation, training batches and int8 calibration), its level (sigma or
JPEG quality: name, bounds, conditioning value, the one level check), the output suffix and the
evaluation border crop. Code asks the task instead of branching on its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scn_deploy.errors import ConfigError

if TYPE_CHECKING:
    from scn_deploy.arch.config import ModelSpec


@dataclass(frozen=True)
class LevelCheck:
    """What a level (sigma or quality) means for one model.

    `level` is what to condition the model on (None: nothing, or not known yet); `problem` is
    None, "fixed" (a non-conditioned model trained for another level), "missing" (a
    conditioned model and no level) or "outside" (beyond the trained range: the model
    extrapolates); `message` says it in words."""

    level: float | None
    problem: str | None = None
    message: str = ""


@dataclass(frozen=True)
class Task:
    """One restoration task.

    Attributes:
        name: "sr", "denoise" or "deblock" (what model files and `--task` say).
        title: in words ("super-resolution", ...).
        command: the `scn` command that runs its models.
        level_name: "sigma" / "quality" for the tasks with a level (also the option name and
            the `ModelSpec` field of a fixed-level model), None for super-resolution.
        level_bounds: the values a level can take.
        typical_level: the level used where one has to be picked (validation, speed runs).
        suffix: output-name suffix (super-resolution: "_x<scale>", see `output_suffix`).
        baselines: the methods `scn eval --method` runs for the task (bicubic upscaling, the
            degraded input itself, BM3D given the true sigma).
        level_from_file: the level can be read off an input file when none is given (a
            JPEG's quality, from its quantisation tables).
        patch_multiple: training patches are a multiple of this (JPEG's 8x8 blocks).
        integer_levels: levels are whole numbers (JPEG qualities).
    """

    name: str
    title: str
    command: str
    level_name: str | None = None
    level_bounds: tuple[float, float] | None = None
    typical_level: float | None = None
    suffix: str = ""
    baselines: tuple[str, ...] = ()
    level_from_file: bool = False
    patch_multiple: int = 1
    integer_levels: bool = False

    @property
    def upscales(self) -> bool:
        return self.name == "sr"

    @property
    def level_key(self) -> str:
        """What the degradation's level is called in evaluation requests and results: the
        scale for super-resolution, else `level_name`."""
        return self.level_name or "scale"

    @property
    def flag(self) -> str:
        """The command-line option of the level ("--sigma", "--quality")."""
        if self.level_name is None:
            raise ConfigError(f"{self.title} has no level")
        return f"--{self.level_name}"

    # -- the level ------------------------------------------------------------------------------
    def condition_value(self, level: float) -> float:
        """The conditioning map's value for a level: sigma / 255 (FFDNet's convention) for
        denoising, (100 - quality) / 100 for deblocking, so stronger degradation is larger."""
        if self.name == "denoise":
            return float(level) / 255.0
        if self.name == "deblock":
            return (100.0 - float(level)) / 100.0
        raise ConfigError("only denoise and deblock models take a conditioning level")

    def fixed_level(self, spec: ModelSpec) -> float | None:
        """The level a non-conditioned model was trained for, if it says."""
        value = getattr(spec, self.level_name) if self.level_name else None
        return None if value is None else float(value)

    def pick_level(self, fixed: float | None, level_range: tuple[float, float] | None) -> float:
        """The level to validate at: the fixed one, else `typical_level` when the range
        holds it, else the middle of the range (rounded for JPEG qualities)."""
        if fixed is not None:
            return float(fixed)
        assert self.typical_level is not None and level_range is not None
        lo, hi = level_range
        if lo <= self.typical_level <= hi:
            return self.typical_level
        middle = (lo + hi) / 2
        return float(round(middle)) if self.integer_levels else middle

    def draw_level(self, rng: np.random.Generator, level_range: tuple[float, float]) -> float:
        """A level drawn for one training patch of a blind model: uniform over the range
        (JPEG qualities: integers, both ends included)."""
        lo, hi = level_range
        if self.integer_levels:
            return float(rng.integers(int(lo), int(hi) + 1))
        return float(rng.uniform(lo, hi))

    def check_level(
        self, spec: ModelSpec, level: float | None, *, source: str = "this model"
    ) -> LevelCheck:
        """The one level check: is `level` (None: not given) usable with this model?"""
        if self.level_name is None or not spec.conditioned:
            fixed = self.fixed_level(spec) if self.level_name else None
            if level is not None and fixed is not None and float(level) != fixed:
                return LevelCheck(
                    None,
                    "fixed",
                    f"{source} was trained for a fixed {self.level_name} of {fixed:g} (not "
                    f"conditioned); {self.level_name} {level:g} needs a conditioned model (or "
                    f"leave {self.flag} out)",
                )
            return LevelCheck(None)
        if level is None:
            lo, hi = self.level_bounds or (0, 0)
            return LevelCheck(
                None,
                "missing",
                f"{source} is conditioned on the {self.level_name}: give {self.flag} "
                f"({lo:g}-{hi:g})",
            )
        lo, hi = spec.level_range or (level, level)
        if not lo <= level <= hi:
            return LevelCheck(
                float(level),
                "outside",
                f"{self.level_name} {level:g} is outside the range {source} was trained for "
                f"({lo:g}-{hi:g})",
            )
        return LevelCheck(float(level))

    def describe(self, spec: ModelSpec) -> str:
        """A model of this task in words ("denoising, sigma 0-75 (conditioned)")."""
        if self.upscales:
            return f"{self.title} x{spec.scale}"
        if spec.level_range is not None:
            lo, hi = spec.level_range
            return f"{self.title}, {self.level_name} {lo:g}-{hi:g} (conditioned)"
        value = self.fixed_level(spec)
        return f"{self.title}, {self.level_name} {value:g}" if value is not None else self.title

    # -- files and scores -----------------------------------------------------------------------
    def output_suffix(self, scale: int = 1, outscale: float | None = None) -> str:
        """The default suffix of an output file name."""
        if not self.upscales:
            return self.suffix
        return f"_x{outscale:g}" if outscale is not None else f"_x{scale}"

    def eval_crop(self, scale: int) -> int:
        """Border pixels shaved before scoring: the scale for super-resolution, none else."""
        return scale if self.upscales else 0

    # -- the degradation ------------------------------------------------------------------------
    def degrade(
        self, clean: np.ndarray, level: float, rng: np.random.Generator | int | None = None
    ) -> np.ndarray:
        """The task's published degradation of a clean uint8 image (HxW or HxWxC).

        sr: MATLAB-style bicubic down-scaling by `level` (the scale) of the image cropped to
        a multiple of it, uint8. denoise: `clean / 255 + N(0, level / 255)` in float64, not
        clipped, not quantised (DnCNN's protocol; `rng` a Generator or a seed). deblock: the
        JPEG at quality `level` decoded again, uint8 (a colour image with 4:2:0 chroma)."""
        from scn_deploy.degrade import add_gaussian_noise, bicubic_degrade, jpeg_compress

        if clean.dtype != np.uint8:
            raise ValueError(f"degrade: expected a uint8 image, got {clean.dtype}")
        if self.name == "sr":
            return bicubic_degrade(clean, int(level))
        if self.name == "denoise":
            return add_gaussian_noise(clean.astype(np.float64) / 255.0, float(level), rng=rng)
        return jpeg_compress(clean, int(level))


SUPER_RESOLUTION = Task("sr", "super-resolution", "upscale", baselines=("bicubic",))
DENOISING = Task(
    "denoise",
    "denoising",
    "denoise",
    level_name="sigma",
    level_bounds=(0.0, 255.0),
    typical_level=25.0,
    suffix="_denoised",
    baselines=("identity", "bm3d"),
)
DEBLOCKING = Task(
    "deblock",
    "JPEG deblocking",
    "deblock",
    level_name="quality",
    level_bounds=(1.0, 100.0),
    typical_level=20.0,
    suffix="_deblocked",
    baselines=("identity",),
    level_from_file=True,
    patch_multiple=8,
    integer_levels=True,
)
TASKS: dict[str, Task] = {t.name: t for t in (SUPER_RESOLUTION, DENOISING, DEBLOCKING)}
TASK_NAMES = tuple(TASKS)


def task_named(name: str) -> Task:
    """The task of a name ("sr", "denoise", "deblock")."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"task must be one of {TASK_NAMES}, got {name!r}") from None
