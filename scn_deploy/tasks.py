"""The three restoration tasks as data: one `Task` each for super-resolution, denoising and JPEG
deblocking. A task owns what differs between them: its degradation (the published protocol,
shared by evaluation, validation, training batches and int8 calibration), its level (sigma or
JPEG quality: name, bounds, conditioning value, the one level check), the output suffix and the
evaluation protocol (the reference and the degraded input of a benchmark image, how colour is
scored, the border crop, the baselines). Code asks the task instead of branching on its name:
the task names are written here and nowhere else (a repository test checks it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scn_deploy.errors import ConfigError


class ModelSpec(Protocol):
    """What a task reads of a model's spec (`scn_deploy.arch.config.ModelSpec` has it; named
    structurally here, so that this module, which the spec imports, imports nothing back)."""

    @property
    def scale(self) -> int: ...

    @property
    def conditioned(self) -> bool: ...

    level_range: tuple[float, float] | None
    sigma: float | None
    quality: int | None


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


@dataclass(frozen=True, eq=False)
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
        conditioned_range: the level range the zoo's conditioned models are trained over
            (what an untrained conditioned preset is described with, `scn info --preset`).
        eval_level_range: the levels `scn eval` accepts (low, high; high None: no bound).
        eval_in_y: evaluation reduces colour images to their rounded Y before degrading and
            scores that gray image only, unless the colour protocol is asked for (JPEG
            deblocking: the ARCNN / DnCNN Y protocol; `--colour` the FBCNN colour one).
        unquantised: the degraded image is a float image in 0-1 units, neither rounded nor
            clipped (DnCNN's noise protocol); a given 8-bit degraded file is scaled to it.

    A `Task` is compared with other tasks, never with a name: comparing one with a string
    raises TypeError, so code written for a plain task name fails loudly.
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
    conditioned_range: tuple[float, float] | None = None
    eval_level_range: tuple[float, float | None] = (0.0, None)
    eval_in_y: bool = False
    unquantised: bool = False

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            raise TypeError(
                f"a Task is compared with a task, not with the name {other!r}: ask the task "
                "(its attributes) or compare task.name"
            )
        return self is other or (isinstance(other, Task) and self.name == other.name)

    def __hash__(self) -> int:
        return hash(("Task", self.name))

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

    # -- the evaluation protocol ----------------------------------------------------------------
    def scale_of(self, level: float) -> int:
        """The upscaling factor of a request at `level` (super-resolution: the level)."""
        return int(level) if self.upscales else 1

    def model_level(self, level: float) -> float | None:
        """What a model of this task is conditioned on at `level` (None: the scale is the
        model's own)."""
        return None if self.upscales else float(level)

    def level_text(self, level: float) -> str:
        """A level in words: "x2", "sigma 25", "quality 10"."""
        if self.level_name is None:
            return f"x{level:g}"
        return f"{self.level_name} {level:g}"

    def level_problem(self, level: object) -> str | None:
        """Why `level` is not a level `scn eval` can run (None: it is)."""
        integer = self.upscales or self.integer_levels
        lo, hi = self.eval_level_range
        if integer:
            ok = isinstance(level, int) and not isinstance(level, bool)
        else:
            ok = isinstance(level, int | float) and math.isfinite(level)
        if ok and lo <= level and (hi is None or level <= hi):  # type: ignore[operator]
            return None
        kind = "an integer" if integer else "a number"
        bounds = f">= {lo:g}" if hi is None else f"in {lo:g}..{hi:g}"
        return f"--{self.level_key} must be {kind} {bounds}, got {level}"

    def colour_scored(self, colour: bool = False) -> bool:
        """Whether evaluation scores colour (PSNR over RGB beside Y); `colour`: the colour
        protocol was asked for (see `eval_in_y`)."""
        return colour or not self.eval_in_y

    def eval_reference(self, image: np.ndarray, level: float, colour: bool = False) -> np.ndarray:
        """What a benchmark image's restoration is scored against: the uint8 image cropped to
        a multiple of the scale (super-resolution's modcrop), reduced to its rounded BT.601 Y
        where the task evaluates in Y (`eval_in_y`) and the colour protocol is not asked."""
        from scn_deploy.degrade import modcrop
        from scn_deploy.metrics import y_uint8

        reference = modcrop(image, self.scale_of(level))
        return reference if self.colour_scored(colour) else y_uint8(reference)

    def eval_pair(
        self,
        image: np.ndarray,
        level: float,
        seed: int | None = None,
        colour: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(reference, degraded input) of a benchmark image: `eval_reference` and its
        published degradation (`degrade`; `seed` seeds the noise)."""
        reference = self.eval_reference(image, level, colour)
        return reference, self.degrade(reference, level, seed)

    def given_input(
        self, degraded: np.ndarray, reference: np.ndarray, level: float, colour: bool = False
    ) -> np.ndarray:
        """A given degraded 8-bit image made into what `eval_pair` would have produced (the
        task's Y, its float units); raises ValueError when it does not fit the reference
        (size: the reference's divided by the scale; gray or colour)."""
        from scn_deploy.metrics import y_uint8

        if not self.colour_scored(colour):
            degraded = y_uint8(degraded)
        scale = self.scale_of(level)
        want = (reference.shape[0] // scale, reference.shape[1] // scale)
        if degraded.shape[:2] != want:
            raise ValueError(
                f"size {degraded.shape[1]}x{degraded.shape[0]} does not match the reference "
                f"(expected {want[1]}x{want[0]})"
            )
        if degraded.ndim != reference.ndim:
            kinds = ("gray", "colour")
            raise ValueError(
                f"a {kinds[degraded.ndim == 3]} input for a {kinds[reference.ndim == 3]} "
                "reference image"
            )
        return degraded.astype(np.float64) / 255.0 if self.unquantised else degraded

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


SUPER_RESOLUTION = Task(
    "sr", "super-resolution", "upscale", baselines=("bicubic",), eval_level_range=(2.0, None)
)
DENOISING = Task(
    "denoise",
    "denoising",
    "denoise",
    level_name="sigma",
    level_bounds=(0.0, 255.0),
    typical_level=25.0,
    suffix="_denoised",
    baselines=("identity", "bm3d"),
    conditioned_range=(0.0, 75.0),
    unquantised=True,
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
    conditioned_range=(10.0, 90.0),
    eval_level_range=(1.0, 100.0),
    eval_in_y=True,
)
TASKS: dict[str, Task] = {t.name: t for t in (SUPER_RESOLUTION, DENOISING, DEBLOCKING)}
TASK_NAMES = tuple(TASKS)


def task_named(name: str | Task) -> Task:
    """The task of a name ("sr", "denoise", "deblock"); a `Task` is returned as it is."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"task must be one of {TASK_NAMES}, got {name!r}") from None
