"""Reading what an exported ONNX file says about itself (no PyTorch needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from scn_deploy.arch.config import ModelSpec
from scn_deploy.errors import ConfigError, ModelFileError


def read_onnx_metadata(path: str | os.PathLike[str]) -> tuple[ModelSpec, int, dict[str, str]]:
    """(spec, num_scales, all metadata) of an exported file, read with onnxruntime only."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ONNX file")
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelFileError(f"{path}: not a valid ONNX model ({exc})") from exc
    return metadata_from_session(sess, path)


def metadata_from_session(sess, path: Path) -> tuple[ModelSpec, int, dict[str, str]]:
    """The same, from an already open `onnxruntime.InferenceSession`."""
    return parse_metadata(dict(sess.get_modelmeta().custom_metadata_map), path)


def parse_metadata(meta: dict[str, str], path: Path) -> tuple[ModelSpec, int, dict[str, str]]:
    """(spec, num_scales, meta) from an export's metadata properties, however they were read
    (ONNX Runtime's session, OpenVINO's runtime info)."""
    if "scn_spec" not in meta:
        raise ModelFileError(f"{path}: an ONNX model, but not one exported by scn-deploy")
    try:
        spec = ModelSpec.from_dict(json.loads(meta["scn_spec"]))
        return spec, int(meta["scn_num_scales"]), meta
    except (json.JSONDecodeError, KeyError, ValueError, ConfigError) as exc:
        raise ModelFileError(f"{path}: scn-deploy metadata is invalid: {exc}") from exc
