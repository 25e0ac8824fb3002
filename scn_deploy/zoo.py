"""The shipped model zoo (`models/`): one entry per model, the lookups built from them, and
resolving a `--model` value (a file or a zoo name) or the zoo's choice for a request.

Layout: `models/<name>.safetensors` (self-describing weights) and `models/<name>.md` (the
model card), optionally `models/<name>.json` (measured benchmark results for `scn models`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scn_deploy.arch.config import ModelSpec
from scn_deploy.errors import ConfigError
from scn_deploy.modelfile import read_spec
from scn_deploy.paths import models_dir
from scn_deploy.tasks import DEBLOCKING, DENOISING, SUPER_RESOLUTION, Task, task_named

if TYPE_CHECKING:
    from scn_deploy.modelset import ModelChoice

TIERS = ("standard", "fast")
#: What a zoo model is for: "default" serves requests of its task, scale, tier and colour;
#: "jpeg" upscales the JPEG inputs `scn upscale` deblocks first, beside the default model.
ROLES = ("default", "jpeg")


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo, as declared (what its file says is read by `list_zoo`).

    Attributes:
        name: the zoo name (`--model NAME`), also the stem of its files.
        task: what it restores.
        scale: the upscaling factor (1 for denoising and deblocking).
        tier: "standard", or "fast" (`--fast`: SR models at about 1/8 of the standard
            models' compute, restoration models with the standard body at half resolution,
            space_to_depth 2, 1/4 of the compute).
        gray: a 1-channel model (serves gray inputs beside the colour one).
        role: see `ROLES`.
    """

    name: str
    task: Task
    scale: int = 1
    tier: str = "standard"
    gray: bool = False
    role: str = "default"

    def __post_init__(self) -> None:
        if self.tier not in TIERS or self.role not in ROLES:
            raise ConfigError(f"zoo entry {self.name}: tier {self.tier!r}, role {self.role!r}")

    @property
    def path(self) -> Path:
        """The model file."""
        return zoo_path(self.name)

    @property
    def card(self) -> Path:
        """The model card (Markdown)."""
        return self.path.with_suffix(".md")

    @property
    def results_path(self) -> Path:
        """Measured benchmark results (JSON), when recorded."""
        return self.path.with_suffix(".json")

    @property
    def installed(self) -> bool:
        return self.path.exists()


# The zoo, in the order `scn models` lists it. An explicit list: no file-name scanning.
ZOO: tuple[ZooModel, ...] = (
    ZooModel("sr-x2", SUPER_RESOLUTION, 2),
    ZooModel("sr-x3", SUPER_RESOLUTION, 3),
    ZooModel("sr-x4", SUPER_RESOLUTION, 4),
    ZooModel("sr-x2-fast", SUPER_RESOLUTION, 2, tier="fast"),
    ZooModel("sr-x3-fast", SUPER_RESOLUTION, 3, tier="fast"),
    ZooModel("sr-x4-fast", SUPER_RESOLUTION, 4, tier="fast"),
    # Upscales JPEG inputs (`scn upscale --deblock auto|Q`): after the deblocking stage, or
    # the JPEG as it is when its file says it was trained on them (`input_kind` "jpeg").
    ZooModel("sr-x2-jpeg", SUPER_RESOLUTION, 2, role="jpeg"),
    ZooModel("denoise", DENOISING),
    ZooModel("denoise-gray", DENOISING, gray=True),
    ZooModel("deblock", DEBLOCKING),
    ZooModel("deblock-gray", DEBLOCKING, gray=True),
    ZooModel("denoise-fast", DENOISING, tier="fast"),
    ZooModel("denoise-gray-fast", DENOISING, tier="fast", gray=True),
    ZooModel("deblock-fast", DEBLOCKING, tier="fast"),
    ZooModel("deblock-gray-fast", DEBLOCKING, tier="fast", gray=True),
)
ZOO_NAMES = tuple(m.name for m in ZOO)
_BY_NAME: dict[str, ZooModel] = {m.name: m for m in ZOO}
_BY_REQUEST: dict[tuple[Task, int, bool, str, str], ZooModel] = {
    (m.task, m.scale, m.gray, m.tier, m.role): m for m in ZOO
}
assert len(_BY_NAME) == len(_BY_REQUEST) == len(ZOO), "two zoo entries share a name or a role"


def zoo_model_named(name: str) -> ZooModel | None:
    """The zoo entry of a name, if the zoo declares one."""
    return _BY_NAME.get(name)


def zoo_model(
    task: Task | str,
    scale: int = 1,
    *,
    gray: bool = False,
    tier: str = "standard",
    role: str = "default",
) -> ZooModel | None:
    """The zoo entry that serves a request (declared; it may not be installed)."""
    return _BY_REQUEST.get((task_named(task), scale, gray, tier, role))


def zoo_path(name: str) -> Path:
    return models_dir() / f"{name}.safetensors"


def _installed(entry: ZooModel | None) -> Path | None:
    return entry.path if entry is not None and entry.installed else None


def jpeg_companion(scale: int) -> Path | None:
    """The installed zoo model that upscales JPEG inputs at this scale, if any."""
    return _installed(zoo_model(SUPER_RESOLUTION, scale, role="jpeg"))


def zoo_deblockers() -> tuple[Path | None, Path | None]:
    """The installed zoo deblocking models that clean JPEG inputs before SR: (colour, gray).

    The fast tier's (deblock-fast, deblock-gray-fast) when installed, else the standard ones.
    Measured on the compressed-input protocol (Set14 x2, sr-x2 after it, `scn eval --task sr
    --jpeg Q`): +0.10 / +0.08 / +0.04 / -0.003 dB PSNR-Y at q30 / 50 / 75 / 90 over the
    standard deblock model, at a quarter of its compute (docs/inference.md)."""
    found = []
    for gray in (False, True):
        tiers = [zoo_model(DEBLOCKING, gray=gray, tier=tier) for tier in ("fast", "standard")]
        found.append(next((p for p in map(_installed, tiers) if p is not None), None))
    return found[0], found[1]


def gray_companion(
    model: str | os.PathLike[str] | None,
    task: Task | str,
    model_path: Path,
    *,
    fast: bool = False,
) -> Path | None:
    """The zoo's gray variant (of the fast tier with ``fast``) that serves gray inputs beside
    the zoo's colour default, if any (None when a model was given: it serves every input)."""
    gray = _installed(zoo_model(task, gray=True, tier=TIERS[fast]))
    if model is not None or gray is None:
        return None
    from scn_deploy.modelset import spec_of

    return gray if spec_of(model_path).channels == 3 else None


def choose_models(
    model: str | os.PathLike[str] | None,
    *,
    task: Task | str,
    scale: int = 1,
    gray: bool = False,
    fast: bool = False,
    deblock: bool = True,
) -> ModelChoice:
    """The models of a restoration: the primary (`resolve_model`) and its companions from the
    zoo (see `scn_deploy.modelset`). The gray companion and the JPEG model serve only beside
    the zoo's default models (a given model serves every input); SR gets the zoo's deblocking
    models for JPEG inputs unless ``deblock`` is False."""
    from scn_deploy.modelset import ModelChoice, spec_of

    path = resolve_model(model, task=task, scale=scale, gray=gray, fast=fast)
    spec = spec_of(path)
    upscales = spec.task.upscales
    jpeg_model = None
    if upscales and model is None and not fast:
        jpeg_model = jpeg_companion(spec.scale)
    return ModelChoice(
        model=path,
        gray_model=gray_companion(model, task, path, fast=fast),
        jpeg_model=jpeg_model,
        deblockers=zoo_deblockers() if upscales and deblock else (None, None),
    )


@dataclass
class ZooEntry:
    """An installed zoo model: its path, what its file says and its recorded results."""

    name: str
    path: Path
    spec: ModelSpec
    results: dict[str, Any]


def tier_of(spec: ModelSpec) -> str:
    """'fast' for a model of the fast tier (the `fast` or `half` preset, or any body at reduced
    resolution), else 'standard'."""
    fast = spec.preset in ("fast", "half") or spec.arch.space_to_depth > 1
    return TIERS[fast]


def model_path(model: str | os.PathLike[str]) -> Path:
    """The file of a `--model` value: a path to a model file, or a zoo name."""
    path = Path(model)
    if path.suffix.lower() in (".safetensors", ".onnx") or path.exists():
        return path
    entry = zoo_model_named(str(model))
    if entry is not None and entry.installed:
        return entry.path
    raise ConfigError(
        f"no model file or zoo model named {model!r} (zoo: {', '.join(available_names())})"
    )


def resolve_model(
    model: str | os.PathLike[str] | None,
    *,
    task: Task | str,
    scale: int = 1,
    gray: bool = False,
    fast: bool = False,
) -> Path:
    """A model file path from a path, a zoo name, or (None) the zoo default for the task.

    ``fast`` picks the fast tier's model for the task and scale instead of the default."""
    if fast and model is not None:
        raise ConfigError("--fast picks the zoo's fast model: leave out --model (or --fast)")
    if model is not None:
        return model_path(model)
    task = task_named(task)
    level = scale if task.upscales else 1
    tier = TIERS[fast]
    # The other colour variant serves when the preferred one is not installed: a colour model
    # takes gray images replicated to RGB, a gray model restores RGB channel by channel.
    candidates = [
        entry
        for entry in (zoo_model(task, level, gray=g, tier=tier) for g in (gray, not gray))
        if entry is not None
    ]
    if not candidates:
        where = "the fast tier" if fast else "the zoo"
        raise ConfigError(f"{where} has no model for task={task.name} scale={scale}")
    for entry in candidates:
        if entry.installed:
            return entry.path
    wanted = candidates[0]
    if fast:
        installed = [m.name for m in ZOO if m.tier == "fast" and m.installed]
        raise ConfigError(
            f"the fast {_describe(task, scale)} model {wanted.name!r} is not installed at "
            f"{wanted.path} (fast models installed: {', '.join(installed) or 'none'})"
        )
    raise ConfigError(
        f"zoo model {wanted.name!r} is not installed at {wanted.path}; pass "
        f"--model FILE (available: {', '.join(available_names()) or 'none'})"
    )


def resolve_task_model(
    model: str | os.PathLike[str] | None,
    *,
    task: Task | str,
    scale: int = 1,
    fast: bool = False,
) -> tuple[Path, ModelSpec]:
    """`resolve_model` for a command of ``task``, with what the model is: raises ConfigError
    when the model restores another task (naming the command that runs it)."""
    from scn_deploy.modelset import spec_of

    task = task_named(task)
    path = resolve_model(model, task=task, scale=scale, fast=fast)
    spec = spec_of(path)
    if spec.task != task:
        raise ConfigError(f"{path} is a {spec.describe()} model: use `scn {spec.task.command}`")
    return path, spec


def _describe(task: Task, scale: int) -> str:
    return f"x{scale}" if task.upscales else task.name


def available_names() -> list[str]:
    return [m.name for m in ZOO if m.installed]


def list_zoo() -> list[ZooEntry]:
    entries = []
    for model in ZOO:
        if not model.installed:
            continue
        results = json.loads(model.results_path.read_text()) if model.results_path.exists() else {}
        entries.append(ZooEntry(model.name, model.path, read_spec(model.path), results))
    return entries
