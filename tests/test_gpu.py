"""The CUDA paths through the real libraries: run only where a GPU is (marker `gpu`).

They have never run in this project's CI (no GPU); the fakes in test_gpu_fakes.py check
the same logic on the CPU. Exactness is compared with TF32 off; fp16 is judged in dB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scn_deploy.engines import EngineOptions, load_engine  # noqa: E402
from scn_deploy.engines.registry import can_run, resolve_device  # noqa: E402
from scn_deploy.restore import RestoreOptions, Restorer  # noqa: E402
from scn_deploy.zoo import zoo_path  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(autouse=True)
def _no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20)))


def test_device_auto_chooses_cuda() -> None:
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize(("precision", "min_db"), [("fp32", 80.0), ("fp16", 45.0)])
def test_torch_on_cuda_matches_the_cpu(precision: str, min_db: float) -> None:
    model = zoo_path("sr-x2")
    x = np.random.default_rng(0).random((1, 3, 96, 80), dtype=np.float32)
    cpu = load_engine(model, EngineOptions(engine="torch", device="cpu")).infer(x)
    gpu = load_engine(
        model, EngineOptions(engine="torch", device="cuda", precision=precision)
    ).infer(x)
    assert _psnr(gpu, cpu) > min_db


def test_onnx_runtime_cuda_matches_the_cpu() -> None:
    if not can_run("onnx", "cuda"):
        pytest.skip("ONNX Runtime has no CUDA provider here")
    model = zoo_path("sr-x2")
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    cpu = load_engine(model, EngineOptions(engine="onnx", device="cpu")).infer(x)
    gpu = load_engine(model, EngineOptions(engine="onnx", device="cuda")).infer(x)
    assert _psnr(gpu, cpu) > 60.0


def test_tiles_under_the_cuda_budget_equal_the_whole_image(photo_rgb: np.ndarray) -> None:
    engine = load_engine(zoo_path("sr-x2"), EngineOptions(engine="torch", device="cuda"))
    image = photo_rgb[:300, :260]
    whole = Restorer(engine, RestoreOptions(tile=0)).restore(image)
    tiled = Restorer(engine, RestoreOptions(tile="auto", memory_budget=64 << 20))
    assert len(tiled.plan(300, 260)) > 1
    assert _psnr(tiled.restore(image), whole) > 50.0


def test_upscale_command_on_cuda(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    import json

    from typer.testing import CliRunner

    from scn_deploy.cli import app
    from scn_deploy.imageio import write_image

    src = tmp_path / "in.png"
    write_image(src, photo_rgb[:128, :128])
    res = CliRunner().invoke(
        app, ["upscale", str(src), "--scale", "2", "-o", str(tmp_path / "out"), "--json"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["device"].startswith("cuda") and summary["processed"] == 1
