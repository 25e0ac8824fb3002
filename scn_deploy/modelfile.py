"""Self-describing model files: one `.safetensors` file = weights + JSON `ModelSpec`.

The safetensors header metadata holds `{"format": "scn-deploy", "spec": <ModelSpec JSON>}`.
`read_spec` parses the header with the standard library only (no torch needed), so the
inference runtime and `scn info` can describe a file without PyTorch installed.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scn_deploy.arch.config import ModelSpec
from scn_deploy.atomic import atomic_write
from scn_deploy.errors import ConfigError, ModelFileError

if TYPE_CHECKING:
    import torch

    from scn_deploy.arch.scn import SCN

FORMAT_TAG = "scn-deploy"
_MAX_HEADER = 100 * 1024 * 1024


def read_header(path: Path) -> dict[str, Any]:
    """Parse and sanity-check a safetensors header (8-byte length + JSON)."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) < 8:
                raise ModelFileError(f"{path}: file too short to be a model (truncated?)")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len == 0 or header_len > _MAX_HEADER or 8 + header_len > size:
                raise ModelFileError(
                    f"{path}: not a safetensors model file (bad header length; corrupt, "
                    "truncated or a different format)"
                )
            header = json.loads(fh.read(header_len))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not a safetensors model file (unreadable header)") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a safetensors model file (header is not an object)")
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            data_end = max(data_end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ModelFileError(f"{path}: malformed tensor entry {name!r}") from exc
    if 8 + header_len + data_end > size:
        raise ModelFileError(
            f"{path}: truncated model file ({size} bytes, header promises "
            f"{8 + header_len + data_end})"
        )
    return header


def read_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """The `ModelSpec` stored in a model file, without loading the weights or torch."""
    path = Path(path)
    meta = read_header(path).get("__metadata__") or {}
    if meta.get("format") != FORMAT_TAG or "spec" not in meta:
        raise ModelFileError(
            f"{path}: a safetensors file, but not an scn-deploy model (no scn-deploy metadata)"
        )
    try:
        return ModelSpec.from_dict(json.loads(meta["spec"]))
    except (json.JSONDecodeError, ConfigError) as exc:
        raise ModelFileError(f"{path}: model metadata is invalid: {exc}") from exc


def save_model(
    path: str | os.PathLike[str],
    model: SCN,
    spec: ModelSpec,
    *,
    half: bool = False,
) -> Path:
    """Write weights + spec atomically (temp file in the same folder, then rename).

    Args:
        half: store float16 weights (halves the file; check the PSNR cost before shipping).
    """
    import torch
    from safetensors.torch import save

    from scn_deploy import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec.version = spec.version or __version__
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT_TAG, "spec": spec.to_json()}
    atomic_write(path, save(tensors, metadata=metadata))
    return path


def load_state(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], ModelSpec]:
    """Float32 tensors and the spec of a model file."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    spec = read_spec(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read weights: {exc}") from exc
    return {k: v.to(torch.float32) for k, v in state.items()}, spec


def load_model(path: str | os.PathLike[str], *, device: str = "cpu") -> tuple[SCN, ModelSpec]:
    """Rebuild the network from a model file alone; returns (model in eval mode, spec)."""
    from scn_deploy.arch.scn import build_network

    state, spec = load_state(path)
    model = build_network(spec.arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelFileError(
            f"{path}: weights do not match the stored architecture ({' '.join(first[:2])})"
        ) from exc
    return model.to(device).eval(), spec
