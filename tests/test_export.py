"""`scn export`: verified ONNX for 1/4/9 scales, SR and restore heads, metadata, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from scn_deploy.arch import preset_spec  # noqa: E402
from scn_deploy.arch.scn import build_network  # noqa: E402
from scn_deploy.cli import app  # noqa: E402
from scn_deploy.engines import EngineOptions, load_engine  # noqa: E402
from scn_deploy.errors import ModelFileError  # noqa: E402
from scn_deploy.exporting.metadata import read_onnx_metadata  # noqa: E402
from scn_deploy.modelfile import save_model  # noqa: E402

runner = CliRunner()


def _model(tmp_path: Path, spec) -> Path:
    torch.manual_seed(0)
    model = build_network(spec.arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_model(tmp_path / "m.safetensors", model, spec)


@pytest.mark.parametrize("scales", [1, 4, 9])
@pytest.mark.parametrize(
    "spec",
    [
        preset_spec("tiny", task="sr", scale=4, num_scales=3),
        preset_spec("tiny", task="denoise", level_range=(0.0, 75.0), num_scales=3),
        preset_spec(
            "tiny", task="deblock", level_range=(10.0, 90.0), num_scales=3, space_to_depth=2
        ),
    ],
    ids=["sr4", "denoise-cond", "deblock-half"],
)
def test_export_cli_parity_and_engine(tmp_path: Path, spec, scales: int) -> None:
    path = _model(tmp_path, spec)
    out = tmp_path / "m.onnx"
    res = runner.invoke(
        app, ["export", "--model", str(path), "--scales", str(scales), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "max abs error" in res.output
    from scn_deploy.atomic import file_mode

    assert out.stat().st_mode & 0o777 == file_mode()  # not mkstemp's 0600
    meta_spec, n, meta = read_onnx_metadata(out)
    assert n == scales and meta_spec.to_dict() == spec.to_dict()
    assert len(meta["scn_source_sha256"]) == 64
    # The ONNX engine gives the torch engine's result on an unseen size.
    onnx_eng = load_engine(out)
    torch_eng = load_engine(path, EngineOptions(engine="torch", num_scales=scales))
    x = np.random.default_rng(0).random((1, 3, 21, 34), dtype=np.float32)
    level = np.full((1, 1, 21, 34), 0.1, np.float32) if spec.conditioned else None
    assert np.abs(onnx_eng.infer(x, level) - torch_eng.infer(x, level)).max() < 1e-4


def test_corrupt_and_foreign_onnx_give_clean_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ModelFileError):
        load_engine(bad)
    with pytest.raises(ModelFileError, match="no such"):
        load_engine(tmp_path / "missing.onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), foreign)
    with pytest.raises(ModelFileError, match="not one exported by scn-deploy"):
        load_engine(foreign)


def test_export_of_a_bad_model_file_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nope")
    res = runner.invoke(app, ["export", "--model", str(bad), "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code == 1 and "error" in res.output
    assert not (tmp_path / "x.onnx").exists()
