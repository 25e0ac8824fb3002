"""`scn info`: human and JSON output, presets and model files, clean errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scn_deploy.cli import app

runner = CliRunner()
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="counts an untrained network: needs torch"
)


@needs_torch
def test_info_preset_json_has_published_wdsr_count() -> None:
    res = runner.invoke(app, ["info", "--preset", "base", "--scales", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["params"] == 1_190_100
    assert data["flops_per_mp"] > 0
    assert data["config"]["arch"]["num_blocks"] == 16


@needs_torch
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


@needs_torch
def test_info_conditioned_preset_takes_the_tasks_range() -> None:
    """--conditioned describes the preset with the range the zoo's models are trained over."""
    from scn_deploy.tasks import TASKS

    for name in ("denoise", "deblock"):
        args = ["info", "--preset", "tiny", "--task", name, "--conditioned", "--json"]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        level_range = tuple(json.loads(res.stdout)["config"]["level_range"])
        assert level_range == TASKS[name].conditioned_range


def test_info_super_resolution_presets_are_not_conditioned() -> None:
    res = runner.invoke(app, ["info", "--preset", "tiny", "--task", "sr", "--conditioned"])
    assert res.exit_code == 1 and "super-resolution models are not conditioned" in res.output
