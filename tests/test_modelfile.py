"""Model files: self-describing round trip and clean errors for bad files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from scn_deploy.arch import preset_spec  # noqa: E402
from scn_deploy.arch.scn import build_network  # noqa: E402
from scn_deploy.errors import ModelFileError  # noqa: E402
from scn_deploy.modelfile import load_model, read_spec, save_model  # noqa: E402

SPECS = [
    preset_spec("tiny", task="sr", scale=3, num_scales=4, scale_ratio=2 / 3),
    preset_spec("tiny", task="denoise", channels=1, level_range=(0.0, 75.0)),
    preset_spec("tiny", task="deblock", quality=10, resample="conv"),
]


def _trained_like(spec):
    torch.manual_seed(0)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_round_trip_is_bit_identical(tmp_path: Path, spec) -> None:
    spec.training = {"steps": 12, "data": ["T91"]}
    model = _trained_like(spec)
    path = save_model(tmp_path / "m.safetensors", model, spec)
    loaded, spec2 = load_model(path)
    assert spec2.to_dict() == spec.to_dict()
    x = torch.rand(2, spec.arch.in_channels, 13, 9)
    cond = torch.full((2, 1, 13, 9), 0.1) if spec.conditioned else None
    with torch.no_grad():
        assert torch.equal(model(x, cond), loaded(x, cond))
    assert not list(tmp_path.glob("*.tmp")), "no temp files left behind"


def test_half_precision_file_is_smaller_and_close(tmp_path: Path) -> None:
    spec = preset_spec("tiny", task="sr", scale=2)
    model = _trained_like(spec)
    full = save_model(tmp_path / "f.safetensors", model, spec)
    half = save_model(tmp_path / "h.safetensors", model, spec, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        diff = (model(x) - load_model(half)[0](x)).abs().max()
    assert diff < 5e-3


def test_read_spec_needs_no_weights(tmp_path: Path) -> None:
    spec = SPECS[1]
    path = save_model(tmp_path / "m.safetensors", _trained_like(spec), spec)
    assert read_spec(path).describe() == "denoising, sigma 0-75 (conditioned)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path: Path) -> None:
    spec = SPECS[0]
    path = save_model(tmp_path / "m.safetensors", _trained_like(spec), spec)
    data = path.read_bytes()
    for cut in (4, 100, len(data) - 10):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            load_model(bad)


def test_garbage_and_foreign_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ModelFileError, match="not a safetensors"):
        load_model(garbage)
    # A valid safetensors file that is not ours.
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(ModelFileError, match="not an scn-deploy model"):
        load_model(foreign)


def test_bad_metadata_and_mismatched_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    spec = SPECS[0]
    bad_meta = tmp_path / "badmeta.safetensors"
    save_file(
        {"w": torch.zeros(3)},
        str(bad_meta),
        metadata={"format": "scn-deploy", "spec": json.dumps({"task": "teleport"})},
    )
    with pytest.raises(ModelFileError, match="invalid"):
        load_model(bad_meta)
    mismatch = tmp_path / "mismatch.safetensors"
    save_file(
        {"w": torch.zeros(3)},
        str(mismatch),
        metadata={"format": "scn-deploy", "spec": spec.to_json()},
    )
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(mismatch)


def test_header_length_lies(tmp_path: Path) -> None:
    bad = tmp_path / "lie.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ModelFileError, match="bad header length"):
        read_spec(bad)
