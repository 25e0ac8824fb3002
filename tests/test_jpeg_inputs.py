"""JPEG inputs to super-resolution: --deblock auto|off|Q in `scn upscale`, `scn eval --jpeg`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from scn_deploy.errors import ConfigError
from scn_deploy.jpeg_input import DeblockSetting, quality_to_apply

runner = CliRunner()


# -- deciding what to do (no torch) ------------------------------------------------------------


def test_deblock_setting_parses_auto_off_and_a_quality() -> None:
    assert DeblockSetting.parse("auto").mode == "auto"
    assert DeblockSetting.parse("OFF").mode == "off"
    assert DeblockSetting.parse("40") == DeblockSetting("fixed", 40)
    assert DeblockSetting.parse(75) == DeblockSetting("fixed", 75)
    assert str(DeblockSetting.parse("40")) == "40" and str(DeblockSetting()) == "auto"
    for bad in ("0", "101", "high", ""):
        with pytest.raises(ConfigError, match="--deblock"):
            DeblockSetting.parse(bad)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()[100:164, 150:230]  # 64x80 RGB


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return path


def test_quality_to_apply_estimates_jpegs_and_leaves_lossless_inputs(
    tmp_path: Path, photo: np.ndarray
) -> None:
    jpeg = _write_jpeg(tmp_path / "a.jpg", photo, 35)
    auto = DeblockSetting()
    decided = quality_to_apply(auto, jpeg, "JPEG")
    assert (decided.quality, decided.source) == (35, "estimated")
    assert "estimated JPEG quality 35" in decided.describe()
    assert quality_to_apply(auto, tmp_path / "a.png", "PNG").quality is None
    assert quality_to_apply(DeblockSetting("off"), jpeg, "JPEG").quality is None
    given = quality_to_apply(DeblockSetting("fixed", 60), tmp_path / "a.png", "PNG")
    assert (given.quality, given.source) == (60, "given")
    assert quality_to_apply(DeblockSetting("fixed", 100), jpeg, "JPEG").quality is None
    # quality 100 tables: nothing to remove
    top = _write_jpeg(tmp_path / "top.jpg", photo, 100)
    assert quality_to_apply(auto, top, "JPEG").quality is None


# -- scn upscale end to end (tiny models in a zoo folder) --------------------------------------


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from scn_deploy.arch import preset_spec
    from scn_deploy.arch.scn import build_network
    from scn_deploy.modelfile import save_model

    folder = tmp_path_factory.mktemp("zoo")
    specs = {
        "sr-x2": preset_spec("tiny", task="sr", scale=2),
        "deblock": preset_spec("tiny", task="deblock", level_range=(10.0, 90.0)),
    }
    for name, spec in specs.items():
        torch.manual_seed(0)
        model = build_network(spec.arch).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn_like(p))
        save_model(folder / f"{name}.safetensors", model, spec)
    return folder


def _upscale(*args: object) -> tuple[int, str, dict | None]:
    from scn_deploy.cli import app

    res = runner.invoke(app, ["upscale", *[str(a) for a in args], "--scale", "2", "--json"])
    lines = res.stdout.strip().splitlines()
    doc = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return res.exit_code, res.output, doc


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_upscale_deblocks_jpegs_first_and_reports_it(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_MODELS", str(zoo))
    jpeg = _write_jpeg(tmp_path / "in" / "a.jpg", photo, 30)
    Image.fromarray(photo).save(tmp_path / "in" / "b.png")
    code, text, doc = _upscale(tmp_path / "in", "-o", tmp_path / "auto")
    assert code == 0, text
    assert doc is not None and doc["deblocked"] == [
        {"path": str(jpeg), "quality": 30, "source": "estimated"}
    ]
    assert any("deblocked as estimated JPEG quality 30" in n["note"] for n in doc["notes"])
    code, text, doc = _upscale(tmp_path / "in", "-o", tmp_path / "off", "--deblock", "off")
    assert code == 0 and doc is not None and doc["deblocked"] == []
    # the JPEG's output changes, the PNG's is byte for byte what it was without deblocking
    a_auto, a_off = _read(tmp_path / "auto" / "a_x2.png"), _read(tmp_path / "off" / "a_x2.png")
    assert a_auto.shape == a_off.shape == (128, 160, 3) and not np.array_equal(a_auto, a_off)
    assert (tmp_path / "auto" / "b_x2.png").read_bytes() == (
        tmp_path / "off" / "b_x2.png"
    ).read_bytes()


def test_deblock_quality_for_a_png_that_was_a_jpeg(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_MODELS", str(zoo))
    was_jpeg = cv2.imdecode(
        cv2.imencode(".jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 40])[1], 1
    )[..., ::-1]
    rgba = np.dstack([was_jpeg, np.linspace(0, 255, 80, dtype=np.uint8)[None].repeat(64, 0)])
    src = tmp_path / "c.png"
    Image.fromarray(rgba, "RGBA").save(src)
    code, text, doc = _upscale(src, "-o", tmp_path / "q", "--deblock", "40")
    assert code == 0, text
    assert doc is not None and doc["deblocked"][0]["quality"] == 40
    assert doc["deblocked"][0]["source"] == "given"
    code, _, _ = _upscale(src, "-o", tmp_path / "plain", "--deblock", "off")
    given, plain = _read(tmp_path / "q" / "c_x2.png"), _read(tmp_path / "plain" / "c_x2.png")
    assert given.shape == plain.shape == (128, 160, 4)
    assert np.array_equal(given[..., 3], plain[..., 3])  # alpha is not deblocked
    assert not np.array_equal(given[..., :3], plain[..., :3])


def test_deblocked_upscale_is_seamless_when_tiled(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_MODELS", str(zoo))
    jpeg = _write_jpeg(tmp_path / "a.jpg", photo, 25)
    _upscale(jpeg, "-o", tmp_path / "whole", "--tile", "0", "--engine", "torch")
    code, text, _ = _upscale(jpeg, "-o", tmp_path / "tiled", "--tile", "24", "--engine", "torch")
    assert code == 0, text
    whole = _read(tmp_path / "whole" / "a_x2.png").astype(int)
    tiled = _read(tmp_path / "tiled" / "a_x2.png").astype(int)
    assert np.abs(whole - tiled).max() <= 1


def test_bad_deblock_values_are_usage_errors(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCN_MODELS", str(zoo))
    jpeg = _write_jpeg(tmp_path / "a.jpg", photo, 25)
    code, text, _ = _upscale(jpeg, "-o", tmp_path / "o", "--deblock", "strong")
    assert code == 2 and "--deblock must be auto, off or a JPEG quality" in text
    assert not (tmp_path / "o").exists()


def test_without_a_deblocking_model_jpegs_are_upscaled_as_they_are(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    only_sr = tmp_path / "zoo"
    only_sr.mkdir()
    (only_sr / "sr-x2.safetensors").write_bytes((zoo / "sr-x2.safetensors").read_bytes())
    monkeypatch.setenv("SCN_MODELS", str(only_sr))
    jpeg = _write_jpeg(tmp_path / "a.jpg", photo, 25)
    code, text, doc = _upscale(jpeg, "-o", tmp_path / "o")
    assert code == 0, text
    assert doc is not None and doc["deblocked"] == []
    assert any("no deblocking model is installed" in n["note"] for n in doc["notes"])
    code, text, _ = _upscale(jpeg, "-o", tmp_path / "o2", "--deblock", "30")
    assert code == 1 and "needs the zoo's deblock" in text


# -- scn eval --jpeg ---------------------------------------------------------------------------


def torch_no_grad():
    import torch

    return torch.no_grad()


def test_eval_jpeg_protocol(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scn_deploy.engines.options import EngineOptions
    from scn_deploy.errors import ConfigError
    from scn_deploy.evaluate import EvalRequest, RequestError, evaluate, jpeg_compress, sr_pair
    from scn_deploy.metrics import psnr

    monkeypatch.setenv("SCN_MODELS", str(zoo))
    folder = tmp_path / "Mini"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    base = {"data": [folder], "task": "sr", "level": 2, "jpeg": 30}
    bicubic = evaluate(EvalRequest(**base, method="bicubic")).to_dict()
    hr, lr = sr_pair(photo, 2)
    from scn_deploy.degrade import imresize

    expected = psnr(imresize(jpeg_compress(lr, 30), 2.0), hr, crop_border=2)
    assert bicubic["jpeg"] == 30 and bicubic["results"][0]["psnr_y"] == pytest.approx(expected)
    torch = EngineOptions(engine="torch")
    auto = evaluate(EvalRequest(**base, model="sr-x2", engine=torch)).to_dict()
    off = evaluate(EvalRequest(**base, model="sr-x2", engine=torch, deblock="off")).to_dict()
    assert auto["deblock"] == "auto (quality 30)" and off["deblock"] == "off"
    assert auto["results"][0]["psnr_y"] != off["results"][0]["psnr_y"]
    clean = evaluate(EvalRequest(data=[folder], task="sr", level=2, model="sr-x2")).to_dict()
    assert "jpeg" not in clean and "deblock" not in clean
    for bad in ({"task": "deblock", "level": 20}, {"deblock": "maybe"}):
        request = EvalRequest(**{**base, "model": "sr-x2", **bad})
        with pytest.raises(RequestError):
            request.validate()
    with pytest.raises(ConfigError, match="no SR model for JPEG inputs"):  # none installed
        evaluate(EvalRequest(**base, model="sr-x2", engine=torch, jpeg_model=True))


def test_eval_jpeg_model_serves_its_qualities(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scn eval --jpeg-model` upscales with the zoo's sr-x2-jpeg where it serves the quality
    and says so; elsewhere the given model does, as in `scn upscale`."""
    import shutil

    from scn_deploy.engines.options import EngineOptions
    from scn_deploy.evaluate import EvalRequest, evaluate
    from scn_deploy.modelfile import load_model, save_model

    with_jpeg = tmp_path / "zoo"
    shutil.copytree(zoo, with_jpeg)
    model, spec = load_model(zoo / "sr-x2.safetensors")
    with torch_no_grad():
        for p in model.parameters():
            p.mul_(0.5)  # another model than sr-x2
    spec.jpeg_qualities = (10, 80)
    save_model(with_jpeg / "sr-x2-jpeg.safetensors", model, spec)
    monkeypatch.setenv("SCN_MODELS", str(with_jpeg))
    folder = tmp_path / "Mini"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    torch = EngineOptions(engine="torch")
    psnr = {}
    for quality in (30, 90):
        base = {"data": [folder], "task": "sr", "level": 2, "jpeg": quality, "engine": torch}
        for jpeg_model in (False, True):
            doc = evaluate(EvalRequest(**base, model="sr-x2", jpeg_model=jpeg_model)).to_dict()
            psnr[quality, jpeg_model] = doc["results"][0]["psnr_y"]
            if jpeg_model:
                expected = "sr-x2-jpeg" if quality == 30 else "sr-x2-jpeg (not for q90: sr-x2)"
                assert doc["jpeg_model"] == expected
            else:
                assert "jpeg_model" not in doc
    assert psnr[30, True] != psnr[30, False]
    assert psnr[90, True] == psnr[90, False]


def test_restore_api_removes_a_known_jpeg_quality_first(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scn_deploy.jpeg_quality import estimate_jpeg_quality
    from scn_deploy.restore import EngineOptions, restore, to_dtype

    monkeypatch.setenv("SCN_MODELS", str(zoo))
    path = _write_jpeg(tmp_path / "a.jpg", photo, 30)
    image = np.asarray(Image.open(path))
    quality = estimate_jpeg_quality(path).quality
    deblocked = restore(
        image, task="sr", scale=2, jpeg_quality=quality, engine=EngineOptions(engine="torch")
    )
    plain = restore(image, task="sr", scale=2, engine=EngineOptions(engine="torch"))
    assert deblocked.shape == plain.shape == (128, 160, 3)
    assert not np.array_equal(to_dtype(deblocked, np.uint8), to_dtype(plain, np.uint8))
    # the same as scn upscale on the file
    code, text, _ = _upscale(path, "-o", tmp_path / "cli", "--engine", "torch", "--tile", "0")
    assert code == 0, text
    cli = _read(tmp_path / "cli" / "a_x2.png").astype(int)
    assert np.abs(cli - to_dtype(deblocked, np.uint8).astype(int)).max() <= 1


def test_deblocked_jpegs_go_to_the_zoo_jpeg_model(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the zoo's default SR model, a deblocked JPEG is upscaled by sr-x2-jpeg when it is
    installed; PNGs, --model and --deblock off keep the default model."""
    import shutil

    torch = pytest.importorskip("torch")
    from scn_deploy.modelfile import load_model, save_model

    with_jpeg = tmp_path / "zoo"
    shutil.copytree(zoo, with_jpeg)
    model, spec = load_model(zoo / "sr-x2.safetensors")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    save_model(with_jpeg / "sr-x2-jpeg.safetensors", model, spec)
    monkeypatch.setenv("SCN_MODELS", str(with_jpeg))
    jpeg = _write_jpeg(tmp_path / "in" / "a.jpg", photo, 30)
    Image.fromarray(photo).save(tmp_path / "in" / "b.png")
    code, text, doc = _upscale(tmp_path / "in", "-o", tmp_path / "out")
    assert code == 0, text
    assert doc is not None and doc["jpeg_model"] == str(with_jpeg / "sr-x2-jpeg.safetensors")
    assert doc["model_name"] == "sr-x2"
    monkeypatch.setenv("SCN_MODELS", str(zoo))
    code, text, doc = _upscale(tmp_path / "in", "-o", tmp_path / "plain")
    assert doc is not None and doc["jpeg_model"] is None
    out, plain = tmp_path / "out", tmp_path / "plain"
    assert not np.array_equal(_read(out / "a_x2.png"), _read(plain / "a_x2.png"))
    assert (out / "b_x2.png").read_bytes() == (plain / "b_x2.png").read_bytes()
    monkeypatch.setenv("SCN_MODELS", str(with_jpeg))
    code, text, doc = _upscale(
        jpeg, "-o", tmp_path / "m", "--model", with_jpeg / "sr-x2.safetensors"
    )
    assert doc is not None and doc["jpeg_model"] is None and doc["deblocked"]


def test_jpeg_inputs_are_cleaned_by_the_fast_deblockers_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deblock-fast measured better than deblock as the pre-deblocker and costs 1/4: it is
    preferred; the default models serve when the fast ones are missing."""
    from scn_deploy.zoo import zoo_deblockers

    monkeypatch.setenv("SCN_MODELS", str(tmp_path))
    assert zoo_deblockers() == (None, None)
    for name in ("deblock", "deblock-gray"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    assert zoo_deblockers() == (
        tmp_path / "deblock.safetensors",
        tmp_path / "deblock-gray.safetensors",
    )
    (tmp_path / "deblock-fast.safetensors").write_bytes(b"x")
    colour, gray = zoo_deblockers()
    assert colour == tmp_path / "deblock-fast.safetensors"
    assert gray == tmp_path / "deblock-gray.safetensors"


def test_a_jpeg_model_trained_end_to_end_gets_the_jpeg_as_it_is(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An sr-x2-jpeg whose file says `input_kind` "jpeg" (trained on JPEG-coded LR images)
    upscales the decoded JPEG directly: no deblocking model is loaded, and the output equals
    that model run on the decoded pixels."""
    import shutil

    from scn_deploy.engines import EngineOptions
    from scn_deploy.modelfile import load_model, read_spec, save_model
    from scn_deploy.restore import ModelSet, to_dtype
    from scn_deploy.zoo import choose_models

    with_jpeg = tmp_path / "zoo"
    shutil.copytree(zoo, with_jpeg)
    model, spec = load_model(zoo / "sr-x2.safetensors")
    spec.input_kind = "jpeg"
    save_model(with_jpeg / "sr-x2-jpeg.safetensors", model, spec)
    assert read_spec(with_jpeg / "sr-x2-jpeg.safetensors").input_kind == "jpeg"
    assert "input_kind" not in read_spec(zoo / "sr-x2.safetensors").to_dict()  # old files
    monkeypatch.setenv("SCN_MODELS", str(with_jpeg))
    jpeg = _write_jpeg(tmp_path / "in" / "a.jpg", photo, 30)
    code, text, doc = _upscale(jpeg, "-o", tmp_path / "out", "--engine", "torch")
    assert code == 0, text
    assert doc is not None and doc["jpeg_model"] == str(with_jpeg / "sr-x2-jpeg.safetensors")
    assert doc["deblocked"] and [Path(p).name for p in doc["loaded"]] == [
        "sr-x2.safetensors",
        "sr-x2-jpeg.safetensors",
    ]
    models = ModelSet(choose_models(None, task="sr", scale=2), EngineOptions(engine="torch"))
    decoded = _read(jpeg)
    restorer, given = models.for_input(decoded, 30)
    assert given is decoded and restorer.spec.input_kind == "jpeg"
    expected = to_dtype(restorer.restore(decoded), np.uint8)
    assert np.array_equal(_read(tmp_path / "out" / "a_x2.png"), expected)


def test_a_jpeg_model_serves_only_its_jpeg_qualities(
    tmp_path: Path, zoo: Path, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An sr-x2-jpeg whose file says `jpeg_qualities` (10, 80) upscales a q30 JPEG; a q90
    one goes to the standard model, after the same deblocking."""
    import shutil

    from scn_deploy.engines import EngineOptions
    from scn_deploy.errors import ConfigError
    from scn_deploy.modelfile import load_model, read_spec, save_model
    from scn_deploy.restore import ModelSet
    from scn_deploy.zoo import choose_models

    with_jpeg = tmp_path / "zoo"
    shutil.copytree(zoo, with_jpeg)
    model, spec = load_model(zoo / "sr-x2.safetensors")
    spec.jpeg_qualities = (10, 80)
    save_model(with_jpeg / "sr-x2-jpeg.safetensors", model, spec)
    assert read_spec(with_jpeg / "sr-x2-jpeg.safetensors").jpeg_qualities == (10, 80)
    assert "jpeg_qualities" not in read_spec(zoo / "sr-x2.safetensors").to_dict()
    monkeypatch.setenv("SCN_MODELS", str(with_jpeg))
    models = ModelSet(choose_models(None, task="sr", scale=2), EngineOptions(engine="torch"))
    jpeg_model, standard = models.restorer_for(3, jpeg=True), models.primary()
    assert jpeg_model is not standard
    for quality, expected in ((30, jpeg_model), (80, jpeg_model), (90, standard)):
        decoded = _read(_write_jpeg(tmp_path / f"q{quality}.jpg", photo, quality))
        restorer, given = models.for_input(decoded, quality)
        assert restorer is expected, quality
        assert given.dtype == np.float32  # deblocked first either way
    spec.jpeg_qualities = (10, 120)
    with pytest.raises(ConfigError, match="jpeg_qualities"):
        spec.validate()
