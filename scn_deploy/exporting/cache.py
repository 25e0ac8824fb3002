"""Where ONNX exports live, and exporting on the fly when the one asked for is missing.

Shipped exports sit in `export/` (or $SCN_EXPORT) as `NAME-sN[-fp16|-int8].onnx`. A request
for scales or a precision that `export/` lacks is exported, verified, into the user cache
($SCN_CACHE, else $XDG_CACHE_HOME/scn-deploy, else ~/.cache/scn-deploy) under a name that
includes the model file's hash, so a changed model file never reuses a stale export.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from scn_deploy.digest import file_sha256
from scn_deploy.errors import ConfigError
from scn_deploy.paths import cache_dir, models_dir


def export_dir() -> Path:
    """Where exported ONNX files live: $SCN_EXPORT, else `export/` beside `models/`."""
    return Path(os.environ.get("SCN_EXPORT", models_dir().parent / "export"))


def onnx_name(model_path: Path, num_scales: int, precision: str = "fp32") -> str:
    suffix = "" if precision == "fp32" else f"-{precision}"
    return f"{model_path.stem}-s{num_scales}{suffix}.onnx"


def _cached_path(model_path: Path, num_scales: int, precision: str) -> Path:
    digest = file_sha256(model_path)[:12]
    name = onnx_name(Path(f"{model_path.stem}-{digest}"), num_scales, precision)
    return cache_dir() / "export" / name


def find_onnx(model_path: Path, num_scales: int | None, *, precision: str = "fp32") -> Path | None:
    """The existing ONNX export of a model file (`export/`, then the user cache), or None."""
    from scn_deploy.modelfile import read_spec

    model_path = Path(model_path)
    n = num_scales or read_spec(model_path).arch.num_scales
    for candidate in (
        export_dir() / onnx_name(model_path, n, precision),
        _cached_path(model_path, n, precision),
    ):
        if candidate.exists():
            return candidate
    return None


def onnx_for(model_path: Path, num_scales: int | None, *, precision: str = "fp32") -> Path:
    """The ONNX export of a model file with the requested scales (default: as trained).

    Looks in `export/`, then the user cache; exports into the cache when PyTorch is
    installed (fp32/fp16), else raises `ConfigError` saying what to install or run.
    """
    from scn_deploy.modelfile import read_spec

    model_path = Path(model_path)
    n = num_scales or read_spec(model_path).arch.num_scales
    found = find_onnx(model_path, n, precision=precision)
    if found is not None:
        return found
    shipped = export_dir() / onnx_name(model_path, n, precision)
    if precision not in ("fp32", "fp16"):
        raise ConfigError(
            f"no {precision} export of {model_path.name} with {n} scales at {shipped}; make "
            f"one with `scn export --model {model_path} --scales {n} --int8 --calib DIR`"
        )
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None:
        raise ConfigError(
            f"no ONNX export of {model_path.name} with {n} scales ({precision}) at {shipped}. "
            "Exporting one needs PyTorch and onnx: pip install 'scn-deploy[torch]', then run "
            f"`scn export --model {model_path} --scales {n}` (or just retry: it is exported "
            "into the user cache automatically)"
        )
    from scn_deploy.exporting.onnx_export import export_model

    cached = _cached_path(model_path, n, precision)
    export_model(model_path, cached, num_scales=n, precision=precision)
    return cached
