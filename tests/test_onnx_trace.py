"""The forward pass traces to ONNX with dynamic batch/height/width (parity on unseen sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from scn_deploy.arch import preset_spec  # noqa: E402
from scn_deploy.arch.scn import build_network  # noqa: E402
from scn_deploy.exporting.metadata import read_onnx_metadata  # noqa: E402
from scn_deploy.exporting.onnx_export import export_onnx  # noqa: E402

UNSEEN_SIZES = [(37, 23), (5, 64)]  # export traces at 24x20


@pytest.mark.parametrize(
    "spec,num_scales",
    [
        (preset_spec("tiny", task="sr", scale=2, num_scales=3), 3),
        (preset_spec("tiny", task="sr", scale=3, num_scales=3, scale_ratio=2 / 3), 5),
        (preset_spec("tiny", task="denoise", channels=1, level_range=(0.0, 75.0)), 4),
        (preset_spec("tiny", task="deblock", quality=20, resample="avgpool"), 3),
    ],
    ids=["sr2", "sr3-ratio2/3", "denoise-cond-gray", "deblock-avgpool"],
)
def test_onnx_parity_on_unseen_sizes(tmp_path: Path, spec, num_scales: int) -> None:
    torch.manual_seed(0)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = export_onnx(model, spec, tmp_path / "m.onnx", num_scales=num_scales)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in UNSEEN_SIZES:
        x = torch.rand(2, spec.arch.in_channels, h, w)
        feeds = {"image": x.numpy()}
        cond = None
        if spec.conditioned:
            cond = torch.full((2, 1, h, w), 0.1)
            feeds["level"] = cond.numpy()
        with torch.no_grad():
            ref = model(x, cond, num_scales=num_scales).numpy()
        got = sess.run(None, feeds)[0]
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() < 1e-4
    meta_spec, n, _ = read_onnx_metadata(path)
    assert meta_spec.to_dict() == spec.to_dict()
    assert n == num_scales
