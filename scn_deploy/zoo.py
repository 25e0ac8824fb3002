"""The shipped model zoo (`models/`): names, default choices per task, and lookup.

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
from scn_deploy.tasks import task_named

if TYPE_CHECKING:
    from scn_deploy.modelset import ModelChoice

# Explicit list: which zoo name serves which request (no file-name scanning).
DEFAULT_NAMES: dict[tuple[str, int, bool], str] = {
    ("sr", 2, False): "sr-x2",
    ("sr", 3, False): "sr-x3",
    ("sr", 4, False): "sr-x4",
    ("denoise", 1, False): "denoise",
    ("denoise", 1, True): "denoise-gray",
    ("deblock", 1, False): "deblock",
    ("deblock", 1, True): "deblock-gray",
}
# The fast tier (`--fast`): SR models at about 1/8 of the default models' compute, restoration
# models with the default body at half resolution (space_to_depth 2: 1/4 of the compute).
FAST_NAMES: dict[tuple[str, int, bool], str] = {
    ("sr", 2, False): "sr-x2-fast",
    ("sr", 3, False): "sr-x3-fast",
    ("sr", 4, False): "sr-x4-fast",
    ("denoise", 1, False): "denoise-fast",
    ("denoise", 1, True): "denoise-gray-fast",
    ("deblock", 1, False): "deblock-fast",
    ("deblock", 1, True): "deblock-gray-fast",
}
# SR models fine-tuned on deblocked JPEG inputs: they upscale the files `scn upscale` deblocks
# first (`--deblock`), beside the default model of the same scale.
JPEG_NAMES: dict[int, str] = {2: "sr-x2-jpeg"}
_SR_NAMES = [name for (task, _, _), name in DEFAULT_NAMES.items() if task == "sr"]
ZOO_NAMES = tuple(
    dict.fromkeys(
        [
            *_SR_NAMES,
            *[FAST_NAMES[key] for key in FAST_NAMES if key[0] == "sr"],
            *JPEG_NAMES.values(),
            *[name for key, name in DEFAULT_NAMES.items() if key[0] != "sr"],
            *[name for key, name in FAST_NAMES.items() if key[0] != "sr"],
        ]
    )
)


def jpeg_companion(scale: int) -> Path | None:
    """The installed zoo model that upscales JPEG inputs at this scale, if any."""
    name = JPEG_NAMES.get(scale)
    return zoo_path(name) if name is not None and zoo_path(name).exists() else None


def zoo_deblockers() -> tuple[Path | None, Path | None]:
    """The installed zoo deblocking models that clean JPEG inputs before SR: (colour, gray).

    The fast tier's (deblock-fast, deblock-gray-fast) when installed, else the default ones.
    Measured on the compressed-input protocol (Set14 x2, sr-x2 after it, `scn eval --task sr
    --jpeg Q`): +0.10 / +0.08 / +0.04 / -0.003 dB PSNR-Y at q30 / 50 / 75 / 90 over the
    default deblock model, at a quarter of its compute (docs/inference.md)."""
    found = []
    for gray in (False, True):
        key = ("deblock", 1, gray)
        paths = [zoo_path(names[key]) for names in (FAST_NAMES, DEFAULT_NAMES) if key in names]
        found.append(next((p for p in paths if p.exists()), None))
    return found[0], found[1]


def gray_companion(
    model: str | os.PathLike[str] | None, task: str, model_path: Path, *, fast: bool = False
) -> Path | None:
    """The zoo's gray variant (of the fast tier with ``fast``) that serves gray inputs beside
    the zoo's colour default, if any (None when a model was given: it serves every input)."""
    name = (FAST_NAMES if fast else DEFAULT_NAMES).get((task, 1, True))
    if model is not None or name is None or not zoo_path(name).exists():
        return None
    from scn_deploy.modelset import spec_of

    return zoo_path(name) if spec_of(model_path).channels == 3 else None


def choose_models(
    model: str | os.PathLike[str] | None,
    *,
    task: str,
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
    upscales = spec.task_info.upscales
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
    name: str
    path: Path
    spec: ModelSpec
    results: dict[str, Any]


def zoo_path(name: str) -> Path:
    return models_dir() / f"{name}.safetensors"


def tier_of(spec: ModelSpec) -> str:
    """'fast' for a model of the fast tier (the `fast` or `half` preset, or any body at reduced
    resolution), else 'standard'."""
    fast = spec.preset in ("fast", "half") or spec.arch.space_to_depth > 1
    return "fast" if fast else "standard"


def resolve_model(
    model: str | os.PathLike[str] | None,
    *,
    task: str,
    scale: int = 1,
    gray: bool = False,
    fast: bool = False,
) -> Path:
    """A model file path from a path, a zoo name, or (None) the zoo default for the task.

    ``fast`` picks the fast tier's model for the task and scale instead of the default."""
    if fast and model is not None:
        raise ConfigError("--fast picks the zoo's fast model: leave out --model (or --fast)")
    if model is not None:
        path = Path(model)
        if path.suffix.lower() in (".safetensors", ".onnx") or path.exists():
            return path
        candidate = zoo_path(str(model))
        if candidate.exists():
            return candidate
        raise ConfigError(
            f"no model file or zoo model named {model!r} (zoo: {', '.join(available_names())})"
        )
    level = scale if task_named(task).upscales else 1
    names = FAST_NAMES if fast else DEFAULT_NAMES
    preferred = names.get((task, level, gray))
    # The other colour variant serves when the preferred one is not installed: a colour model
    # takes gray images replicated to RGB, a gray model restores RGB channel by channel.
    other = names.get((task, level, not gray))
    candidates = [n for n in (preferred, other) if n is not None]
    if not candidates:
        tier = "the fast tier" if fast else "the zoo"
        raise ConfigError(f"{tier} has no model for task={task} scale={scale}")
    for name in candidates:
        if zoo_path(name).exists():
            return zoo_path(name)
    if fast:
        installed = [n for n in FAST_NAMES.values() if zoo_path(n).exists()]
        raise ConfigError(
            f"the fast {_describe(task, scale)} model {candidates[0]!r} is not installed at "
            f"{zoo_path(candidates[0])} (fast models installed: {', '.join(installed) or 'none'})"
        )
    raise ConfigError(
        f"zoo model {candidates[0]!r} is not installed at {zoo_path(candidates[0])}; pass "
        f"--model FILE (available: {', '.join(available_names()) or 'none'})"
    )


def _describe(task: str, scale: int) -> str:
    return f"x{scale}" if task_named(task).upscales else task


def available_names() -> list[str]:
    return [name for name in ZOO_NAMES if zoo_path(name).exists()]


def list_zoo() -> list[ZooEntry]:
    entries = []
    for name in available_names():
        path = zoo_path(name)
        results_path = path.with_suffix(".json")
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        entries.append(ZooEntry(name, path, read_spec(path), results))
    return entries
