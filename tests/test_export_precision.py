"""fp16 / int8 exports, the on-the-fly export cache, TensorRT's clean refusal, `scn bench`."""

from __future__ import annotations

import json
import os
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
from scn_deploy.errors import ConfigError  # noqa: E402
from scn_deploy.exporting import cache  # noqa: E402
from scn_deploy.exporting.metadata import read_onnx_metadata  # noqa: E402
from scn_deploy.exporting.tensorrt_build import (  # noqa: E402
    TrtProfile,
    cache_key,
    tensorrt_unavailable_reason,
)
from scn_deploy.imageio import write_image  # noqa: E402
from scn_deploy.modelfile import save_model  # noqa: E402
from scn_deploy.paths import cache_dir  # noqa: E402

runner = CliRunner()


def _model(tmp_path: Path, spec, name: str = "m") -> Path:
    torch.manual_seed(0)
    model = build_network(spec.arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_model(tmp_path / f"{name}.safetensors", model, spec)


@pytest.fixture
def sr_model(tmp_path: Path) -> Path:
    return _model(tmp_path, preset_spec("tiny", task="sr", scale=2, num_scales=3))


@pytest.fixture
def calib_dir(tmp_path: Path, photo_rgb: np.ndarray) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, (y, x) in enumerate([(0, 0), (200, 100), (300, 300)]):
        write_image(folder / f"c{i}.png", photo_rgb[y : y + 160, x : x + 160])
    (folder / "notes.txt").write_text("not an image")
    return folder


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_fp16_export_is_verified_and_runs(tmp_path: Path, sr_model: Path) -> None:
    out = tmp_path / "half.onnx"
    res = runner.invoke(app, ["export", "--model", str(sr_model), "--fp16", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "fp16" in res.output and "PSNR" in res.output
    _spec, n, meta = read_onnx_metadata(out)
    assert meta["scn_precision"] == "fp16" and n == 3
    half = load_engine(out)
    full = load_engine(sr_model, EngineOptions(engine="torch"))
    assert half.precision == "fp16"
    x = np.random.default_rng(0).random((1, 3, 27, 33), dtype=np.float32)
    assert _psnr(half.infer(x), full.infer(x)) >= 50.0


def test_int8_export_calibrates_on_images_and_stays_close(
    tmp_path: Path, calib_dir: Path, photo_rgb: np.ndarray
) -> None:
    """The shipped sr-x2 (real weights: a random network says nothing about int8 error)."""
    from scn_deploy.zoo import zoo_path

    out = tmp_path / "sr-x2-s3.onnx"
    res = runner.invoke(
        app, ["export", "--model", "sr-x2", "--int8", "--calib", str(calib_dir), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    q_path = tmp_path / "sr-x2-s3-int8.onnx"
    _spec, _n, meta = read_onnx_metadata(q_path)
    assert meta["scn_precision"] == "int8" and "calib" in meta["scn_calibration"]
    ops = [n for n in __import__("onnx").load(q_path).graph.node]
    assert "QuantizeLinear" in {n.op_type for n in ops}
    q, f = load_engine(q_path), load_engine(zoo_path("sr-x2"), EngineOptions(engine="torch"))
    assert q.precision == "int8"
    x = np.ascontiguousarray(photo_rgb[440:504, 0:64].transpose(2, 0, 1)[None] / 255.0)
    x = x.astype(np.float32)
    assert _psnr(q.infer(x), f.infer(x)) > 38.0  # a real photo, not the calibration crops


def test_int8_needs_calibration_images(tmp_path: Path, sr_model: Path) -> None:
    res = runner.invoke(app, ["export", "--model", str(sr_model), "--int8"])
    assert res.exit_code == 2 and "--calib" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(
        app,
        [
            "export",
            "--model",
            str(sr_model),
            "--int8",
            "--calib",
            str(empty),
            "-o",
            str(tmp_path / "x.onnx"),
        ],
    )
    assert res.exit_code == 1 and "error" in res.output
    assert not (tmp_path / "x-int8.onnx").exists() and not (tmp_path / "m-s3-int8.onnx").exists()


def test_missing_scales_are_exported_into_the_cache_once(
    tmp_path: Path, sr_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_EXPORT", str(tmp_path / "no-exports"))
    monkeypatch.setenv("SCN_CACHE", str(tmp_path / "cache"))
    eng = load_engine(sr_model, EngineOptions(engine="onnx", num_scales=5))
    assert eng.num_scales == 5 and Path(eng.source).parent == tmp_path / "cache" / "export"
    first = os.stat(eng.source).st_mtime_ns
    again = load_engine(sr_model, EngineOptions(engine="onnx", num_scales=5))
    assert again.source == eng.source and os.stat(again.source).st_mtime_ns == first
    # A changed model file never reuses the stale export.
    other = _model(tmp_path, preset_spec("tiny", task="sr", scale=2, num_scales=4), "m2")
    other.replace(sr_model)
    assert load_engine(sr_model, EngineOptions(engine="onnx", num_scales=5)).source != eng.source


def test_without_torch_a_missing_export_says_what_to_install(
    tmp_path: Path, sr_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_EXPORT", str(tmp_path / "no-exports"))
    monkeypatch.setenv("SCN_CACHE", str(tmp_path / "cache"))
    real = cache.importlib.util.find_spec
    monkeypatch.setattr(
        cache.importlib.util, "find_spec", lambda n: None if n == "torch" else real(n)
    )
    with pytest.raises(ConfigError, match=r"pip install 'scn-deploy\[torch\]'"):
        cache.onnx_for(sr_model, 4)
    with pytest.raises(ConfigError, match="--int8 --calib"):
        cache.onnx_for(sr_model, 3, precision="int8")


@pytest.mark.skipif(tensorrt_unavailable_reason() is None, reason="TensorRT is usable here")
def test_tensorrt_is_refused_cleanly_without_a_gpu(tmp_path: Path, sr_model: Path) -> None:
    res = runner.invoke(
        app, ["export", "--model", str(sr_model), "--trt", "-o", str(tmp_path / "t.onnx")]
    )
    assert res.exit_code == 1 and "cannot use TensorRT" in res.output
    with pytest.raises(ConfigError):
        load_engine(tmp_path / "t.onnx", EngineOptions(engine="tensorrt", device="cuda"))


def test_tensorrt_profiles_and_cache_keys() -> None:
    p = TrtProfile.for_tile(3, 2, 128)
    assert p.fits((2, 3, 200, 256)) and p.fits((6, 3, 64, 64))
    assert not p.fits((7, 3, 64, 64)) and not p.fits((1, 3, 8, 8))
    with pytest.raises(ConfigError):
        TrtProfile.explicit(3, 1, (64, 64), (32, 32), (128, 128))
    keys = {
        cache_key(b"onnx", "10.0", "H100", prec, prof)
        for prec in ("fp32", "fp16")
        for prof in (p, TrtProfile.for_tile(3, 1, 128))
    }
    assert len(keys) == 4


@pytest.mark.gpu
@pytest.mark.skipif(tensorrt_unavailable_reason() is not None, reason="needs TensorRT and a GPU")
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_engine_matches_torch_on_gpu(tmp_path: Path, sr_model: Path, fp16: bool) -> None:
    """`scn export --trt` builds the engine once; `--engine tensorrt` with the same tile loads
    it from the (test-private) cache. TensorRT's fp32 runs TF32 convolutions by default, so
    agreement with torch's fp32 on the CPU is judged in dB, not at 1e-3."""
    out = tmp_path / "t.onnx"
    args = ["export", "--model", str(sr_model), "--trt", "--tile", "64", "-o", str(out)]
    res = runner.invoke(app, [*args, *(["--fp16"] if fp16 else [])])
    assert res.exit_code == 0, res.output
    engines = sorted((cache_dir() / "tensorrt").glob("*.engine"))
    precision = "fp16" if fp16 else "fp32"
    trt_eng = load_engine(
        out, EngineOptions(engine="tensorrt", device="cuda", precision=precision, tile=64)
    )
    assert sorted((cache_dir() / "tensorrt").glob("*.engine")) == engines  # no rebuild
    ref = load_engine(sr_model, EngineOptions(engine="torch", device="cpu"))
    x = np.random.default_rng(0).random((2, 3, 61, 47), dtype=np.float32)
    got, want = trt_eng.infer(x), ref.infer(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    psnr = 10 * np.log10(1.0 / float(np.mean((got - want) ** 2)))
    assert psnr > (45.0 if fp16 else 55.0), psnr


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_bench_json_has_the_documented_fields(
    tmp_path: Path, sr_model: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_CACHE", str(tmp_path / "cache"))
    res = runner.invoke(
        app,
        [
            "bench",
            "--model",
            str(sr_model),
            "--engine",
            engine,
            "--tile",
            "32",
            "--repeat",
            "1",
            "--size",
            "40x70",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    for key in (
        "engine",
        "device",
        "precision",
        "tile",
        "mp_per_s",
        "ms_per_tile",
        "peak_rss_mb",
        "gflops",
        "gemm_peak_gflops",
    ):
        assert key in doc
    assert doc["engine"] == engine and doc["mp_per_s"] > 0 and doc["gemm_peak_gflops"] > 1
    assert doc["gflops"] == pytest.approx(doc["gflop_per_output_mp"] * doc["mp_per_s"])
    # the whole image runs as `scn upscale` would by default: one tile, it fits the budget
    assert doc["image"]["size"] == [40, 70] and doc["image"]["plan"] == "whole image"
    assert doc["image"]["mp_per_s"] > 0


def test_bench_rejects_bad_options(sr_model: Path) -> None:
    res = runner.invoke(app, ["bench", "--model", str(sr_model), "--tile", "4"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["bench", "--model", str(sr_model), "--size", "big"])
    assert res.exit_code == 2


def test_bench_vs_reports_both_models_and_their_ratio(tmp_path: Path, sr_model: Path) -> None:
    """`scn bench --model A --vs B` times both the same way in one run."""
    import shutil

    other = shutil.copy(sr_model, tmp_path / "other.safetensors")
    out = tmp_path / "vs.json"
    res = runner.invoke(
        app,
        [
            "bench",
            "--model",
            str(sr_model),
            "--vs",
            str(other),
            "--engine",
            "torch",
            "--tile",
            "32",
            "--repeat",
            "1",
            "--json-file",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    first, second = doc["rows"]
    assert (
        Path(first["model"]).name == sr_model.name
        and Path(second["model"]).name == "other.safetensors"
    )
    assert doc["speedup"] == pytest.approx(first["mp_per_s"] / second["mp_per_s"])
    assert first["gflop_per_output_mp"] == pytest.approx(second["gflop_per_output_mp"])
    assert "speedup" in res.stdout
    res = runner.invoke(app, ["bench", "--model", str(sr_model), "--vs", str(other), "--compare"])
    assert res.exit_code == 2
