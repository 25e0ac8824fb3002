"""Where things live: the data root (`SCN_DATA`, else `../shared/data` beside the checkout),
the model zoo (`SCN_MODELS`) and the user cache (`SCN_CACHE`)."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path | None:
    """The benchmark/training data root, or None when there is none.

    Order: the `SCN_DATA` environment variable, then `../shared/data` next to the project
    checkout (the layout this project is developed in), then `./shared/data` relative to the
    current directory's parent.
    """
    env = os.environ.get("SCN_DATA")
    if env:
        return Path(env).expanduser()
    for candidate in (
        _PACKAGE_ROOT.parent / "shared" / "data",
        Path.cwd().parent / "shared" / "data",
    ):
        if candidate.is_dir():
            return candidate
    return None


def models_dir() -> Path:
    """The model zoo folder: $SCN_MODELS, else `models/` of the checkout, else ./models."""
    env = os.environ.get("SCN_MODELS")
    if env:
        return Path(env).expanduser()
    bundled = _PACKAGE_ROOT / "models"
    if bundled.is_dir():
        return bundled
    return Path.cwd() / "models"


def cache_dir() -> Path:
    """The user cache: on-the-fly exports, compiled engines, measured receptive fields.
    $SCN_CACHE, else $XDG_CACHE_HOME/scn-deploy, else ~/.cache/scn-deploy."""
    if "SCN_CACHE" in os.environ:
        return Path(os.environ["SCN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scn-deploy"
