"""`scn info`: human and JSON output, presets and model files, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scn_deploy.cli import app

torch = pytest.importorskip("torch")
runner = CliRunner()


def test_info_preset_json_has_published_wdsr_count() -> None:
    res = runner.invoke(app, ["info", "--preset", "base", "--scales", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["params"] == 1_190_100
    assert data["flops_per_mp"] > 0
    assert data["config"]["arch"]["num_blocks"] == 16


def test_info_model_file(tmp_path: Path) -> None:
    from scn_deploy.arch import preset_spec
    from scn_deploy.arch.scn import build_network, count_parameters
    from scn_deploy.modelfile import save_model

    spec = preset_spec("tiny", task="deblock", level_range=(10.0, 90.0))
    model = build_network(spec.arch)
    path = save_model(tmp_path / "m.safetensors", model, spec)
    res = runner.invoke(app, ["info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["params"] == count_parameters(model)
    assert data["config"]["task"] == "deblock"
    res = runner.invoke(app, ["info", str(path)])
    assert res.exit_code == 0 and "parameters" in res.stdout


def test_info_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model at all, just some bytes")
    res = runner.invoke(app, ["info", str(bad)])
    assert res.exit_code == 1
    assert "not a safetensors" in res.output
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["info", "--preset", "huge"])
    assert res.exit_code == 1 and "unknown preset" in res.output
