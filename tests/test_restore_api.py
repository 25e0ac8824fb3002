"""The Python API under the CLI: engines behind one interface, Restorer, TTA, colour handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scn_deploy.arch import preset_spec  # noqa: E402
from scn_deploy.arch.scn import build_network  # noqa: E402
from scn_deploy.engines import EngineOptions, load_engine  # noqa: E402
from scn_deploy.errors import ConfigError  # noqa: E402
from scn_deploy.modelfile import save_model  # noqa: E402
from scn_deploy.restore import RestoreOptions, Restorer, restore, to_dtype  # noqa: E402


def _model_file(tmp_path: Path, spec, seed: int = 0, symmetric: bool = False) -> Path:
    torch.manual_seed(seed)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p))
            if symmetric and p.ndim == 4 and "original1" in name:
                # Make every kernel invariant to flips and transposition (dihedral symmetric).
                sym = p + p.flip(-1) + p.flip(-2) + p.flip(-1, -2)
                p.copy_(sym + sym.transpose(-1, -2))
    return save_model(tmp_path / f"m{seed}.safetensors", model, spec)


def test_torch_engine_and_restorer_shapes(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    path = _model_file(tmp_path, preset_spec("tiny", task="sr", scale=3))
    eng = load_engine(path, EngineOptions(engine="torch"))
    assert eng.name == "torch" and eng.num_scales == 3
    out = Restorer(eng).restore(photo_rgb[:40, :30])
    assert out.shape == (120, 90, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    gray = Restorer(eng).restore(photo_rgb[:20, :10, 0])
    assert gray.shape == (60, 30)


def test_gray_model_restores_rgb_channel_by_channel(tmp_path: Path, photo_rgb) -> None:
    path = _model_file(
        tmp_path, preset_spec("tiny", task="denoise", channels=1, level_range=(0.0, 75.0))
    )
    r = Restorer(load_engine(path))
    rgb = r.restore(photo_rgb[:16, :16], level=25)
    per_channel = np.stack([r.restore(photo_rgb[:16, :16, c], level=25) for c in range(3)], -1)
    assert np.abs(rgb - per_channel).max() < 1e-4
    with pytest.raises(ConfigError, match="sigma"):
        r.restore(photo_rgb[:16, :16])
    with pytest.raises(ConfigError, match="outside the range"):
        r.restore(photo_rgb[:16, :16], level=90)


def test_tta_is_invariant_for_a_symmetric_model(tmp_path: Path, photo_rgb) -> None:
    """With dihedral-symmetric kernels the network commutes with flips/rotations, so x8 TTA
    must return exactly the plain output (up to float rounding)."""
    spec = preset_spec("tiny", task="denoise", num_scales=1, quality=None)
    path = _model_file(tmp_path, spec, symmetric=True)
    eng = load_engine(path)
    img = photo_rgb[100:132, 200:232]
    plain = Restorer(eng).restore(img)
    tta = Restorer(eng, RestoreOptions(tta=True)).restore(img)
    assert np.abs(plain - tta).max() < 1e-5
    # ...whereas a generic model's TTA output differs from its plain output.
    eng2 = load_engine(_model_file(tmp_path, spec, seed=1))
    diff = Restorer(eng2, RestoreOptions(tta=True)).restore(img) - Restorer(eng2).restore(img)
    assert np.abs(diff).max() > 1e-4


def test_restore_one_call_and_quantise(tmp_path: Path, photo_rgb) -> None:
    path = _model_file(tmp_path, preset_spec("tiny", task="sr", scale=2))
    out = restore(photo_rgb[:8, :8], model=path)
    assert to_dtype(out, np.uint8).dtype == np.uint8
    assert to_dtype(out, np.uint16).max() <= 65535
    with pytest.raises(ConfigError, match="no model file or zoo model"):
        restore(photo_rgb[:8, :8], model="no-such-model")


def test_unknown_engine(tmp_path: Path) -> None:
    path = _model_file(tmp_path, preset_spec("tiny", task="sr", scale=2))
    with pytest.raises(ConfigError, match="unknown engine"):
        load_engine(path, EngineOptions(engine="magic"))
