"""Weight averaging of model files: exact means, provenance kept, mismatches refused."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from scn_deploy.arch import preset_spec  # noqa: E402
from scn_deploy.arch.scn import build_network  # noqa: E402
from scn_deploy.errors import ModelFileError  # noqa: E402
from scn_deploy.modelfile import load_model, save_model  # noqa: E402
from scn_deploy.train.average import average_model_files, average_states  # noqa: E402


def _saved(path: Path, spec, seed: int, steps: int) -> Path:
    torch.manual_seed(seed)
    model = build_network(spec.arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    spec.training = {"steps": steps, "lr": 1e-4}
    return save_model(path, model, spec)


def test_mean_of_files_is_the_elementwise_mean(tmp_path: Path) -> None:
    spec = preset_spec("tiny", task="sr", scale=2)
    paths = [_saved(tmp_path / f"s{i}.safetensors", spec, seed=i, steps=100 * i) for i in (1, 2, 3)]
    model, out_spec = average_model_files(paths)
    states = [load_model(p)[0].state_dict() for p in paths]
    for key, value in model.state_dict().items():
        expected = (states[0][key] + states[1][key] + states[2][key]) / 3
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6)
    # provenance: the last file's summary, plus every input's
    assert out_spec.training["steps"] == 300
    assert [t["steps"] for t in out_spec.training["averaged_from"]] == [100, 200, 300]
    # the mean is a normal model file: saved and reloaded it gives the same outputs
    path = save_model(tmp_path / "mean.safetensors", model, out_spec)
    reloaded, _ = load_model(path)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model(x))


def test_mean_of_one_file_is_that_file(tmp_path: Path) -> None:
    spec = preset_spec("tiny", task="denoise", channels=1, sigma=25)
    path = _saved(tmp_path / "a.safetensors", spec, seed=0, steps=10)
    model, _ = average_model_files([path])
    for key, value in load_model(path)[0].state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_other_architecture_or_job_is_refused(tmp_path: Path) -> None:
    a = _saved(tmp_path / "a.safetensors", preset_spec("tiny", task="sr", scale=2), 0, 1)
    b = _saved(tmp_path / "b.safetensors", preset_spec("tiny", task="sr", scale=3), 1, 1)
    c = _saved(
        tmp_path / "c.safetensors", preset_spec("tiny", task="sr", scale=2, num_scales=4), 2, 1
    )
    with pytest.raises(ModelFileError, match="another architecture"):
        average_model_files([a, b])
    with pytest.raises(ModelFileError, match="another architecture"):
        average_model_files([a, c])
    with pytest.raises(ValueError, match="nothing"):
        average_model_files([])
    with pytest.raises(ModelFileError, match="shapes differ"):
        average_states([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ModelFileError, match="other tensors"):
        average_states([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
