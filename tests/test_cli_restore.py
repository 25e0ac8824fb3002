"""`scn upscale | denoise | deblock | models` end to end, through Typer's CliRunner.

The runtime is tested as shipped: the zoo's models through their ONNX exports on the engine
`--engine auto` picks (no torch needed). Only the fixed-sigma model, which the zoo does not
have, is built with torch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from scn_deploy.cli import app
from scn_deploy.engines.registry import choose_engine
from scn_deploy.exporting.cache import export_dir
from scn_deploy.imageio import load_image
from scn_deploy.metrics import psnr
from scn_deploy.restore import EngineOptions
from scn_deploy.zoo import zoo_path

runner = CliRunner()

ONNX = EngineOptions(engine="onnx", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def models() -> dict[str, Path]:
    """The zoo's fast models, as shipped (sr x2, colour denoiser and deblocker)."""
    return {
        "sr": zoo_path("sr-x2-fast"),
        "denoise": zoo_path("denoise-fast"),
        "deblock": zoo_path("deblock-fast"),
    }


@pytest.fixture(scope="module")
def fixed_sigma_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A denoiser trained for one sigma (25): the zoo has none, so one is built (torch)."""
    torch = pytest.importorskip("torch")
    from scn_deploy.arch import preset_spec
    from scn_deploy.arch.scn import build_network
    from scn_deploy.modelfile import save_model

    spec = preset_spec("tiny", task="denoise", sigma=25.0)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "dn25.safetensors"
    return save_model(path, build_network(spec.arch).eval(), spec)


def _zoo(folder: Path, names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A zoo folder holding copies of these shipped models, made the zoo (`SCN_MODELS`);
    their ONNX exports stay the shipped ones (`SCN_EXPORT`)."""
    monkeypatch.setenv("SCN_EXPORT", str(export_dir()))
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.safetensors").write_bytes(zoo_path(name).read_bytes())
    monkeypatch.setenv("SCN_MODELS", str(folder))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()[100:164, 150:230]  # 64x80 RGB


def _save(path: Path, array: np.ndarray, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- folders, naming, JSON ---------------------------------------------------------------------


def test_upscale_folder_recursive_json(tmp_path: Path, models, photo) -> None:
    src = tmp_path / "in"
    _save(src / "a.png", photo)
    _save(src / "sub" / "b.jpg", photo[:40, :48, 1], quality=90)  # gray JPEG
    (src / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    res = _invoke("upscale", src, "-r", "-o", out, "--model", models["sr"], "--tile", 32, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # exactly one JSON line on stdout
    assert res.stdout.count("\n") == 1
    assert summary["processed"] == 2 and summary["failed"] == []
    # the text file is listed as skipped (not silently left out, not failed)
    assert [Path(s["path"]).name for s in summary["skipped_files"]] == ["readme.txt"]
    assert summary["engine"] == choose_engine(models["sr"], "cpu")
    assert summary["model"] == str(models["sr"])
    assert summary["overlap"] and summary["seconds"] > 0
    assert _files(out) == ["a_x2.png", "sub/b_x2.png"]
    assert sorted(summary["outputs"]) == [str(out / "a_x2.png"), str(out / "sub" / "b_x2.png")]
    assert load_image(out / "a_x2.png").pixels.shape == (128, 160, 3)
    gray = load_image(out / "sub" / "b_x2.png")
    assert gray.pixels.shape == (80, 96)  # gray in, gray out

    # run again: existing outputs are skipped and reported; --overwrite replaces them
    res = _invoke("upscale", src, "-r", "-o", out, "--model", models["sr"], "--json")
    assert res.exit_code == 0
    again = json.loads(res.stdout)
    assert again["processed"] == 0 and again["skipped"] == 3  # 2 outputs exist + readme.txt
    assert "output exists" in res.stderr
    res = _invoke("upscale", src, "-o", out, "--model", models["sr"], "--overwrite", "--json")
    assert json.loads(res.stdout)["processed"] == 1  # not recursive: only a.png


def test_dry_run_writes_nothing(tmp_path: Path, models, photo) -> None:
    _save(tmp_path / "in" / "a.png", photo)
    out = tmp_path / "out"
    res = _invoke(
        "denoise", tmp_path / "in", "-o", out, "--model", models["denoise"], "--sigma", 10,
        "--dry-run", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["dry_run"] and summary["outputs"] == [str(out / "a_denoised.png")]
    assert "would write" in res.stderr
    assert not out.exists()


def test_in_place_outputs_and_format(tmp_path: Path, models, photo) -> None:
    src = _save(tmp_path / "a.png", photo)
    res = _invoke("upscale", src, "--model", models["sr"], "--format", "jpg", "--outscale", 1.5)
    assert res.exit_code == 0, res.output
    out = load_image(tmp_path / "a_x1.5.jpg")
    assert out.format == "JPEG" and out.pixels.shape == (96, 120, 3)
    # a single file input and an -o file name: exactly that file, format from its extension
    res = _invoke("upscale", src, "--model", models["sr"], "-o", tmp_path / "big.webp")
    assert res.exit_code == 0 and load_image(tmp_path / "big.webp").format == "WEBP"


# -- seams through the whole command -----------------------------------------------------------


def test_tiled_deblock_matches_whole_and_states_quality(tmp_path: Path, models) -> None:
    """A quality-30 JPEG of a photo (150x227, not a multiple of the alignment), deblocked
    whole and in 96-px tiles: the same picture, and closer to the original than the JPEG."""
    from skimage import data

    clean = data.chelsea()[:150, :227]
    jpeg = _save(tmp_path / "in" / "chelsea.jpg", clean, quality=30)
    outputs = {}
    for tile in (0, 96):
        out = tmp_path / f"t{tile}"
        res = _invoke("deblock", jpeg, "-o", out, "--model", models["deblock"], "--tile", tile)
        assert res.exit_code == 0, res.output
        assert "estimated JPEG quality 30" in res.stderr
        outputs[tile] = load_image(out / "chelsea_deblocked.png").pixels
    diff = np.abs(outputs[0].astype(int) - outputs[96])
    assert (diff <= 1).mean() >= 0.999 and diff.max() <= 2
    assert psnr(outputs[0], clean) > psnr(load_image(jpeg).pixels, clean) + 0.5


# -- images as users have them -----------------------------------------------------------------


def test_alpha_is_upscaled_bicubic_and_reattached(tmp_path: Path, models, photo) -> None:
    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    src = _save(tmp_path / "rgba.png", np.dstack([photo, alpha]))
    res = _invoke("upscale", src, "--model", models["sr"], "-o", tmp_path / "out")
    assert res.exit_code == 0, res.output
    out = load_image(tmp_path / "out" / "rgba_x2.png")
    assert out.alpha is not None and out.pixels.shape == (128, 160, 3)
    expected = cv2.resize(alpha, (160, 128), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out.alpha, expected)


def test_16bit_gray_palette_and_exif(tmp_path: Path, models, photo) -> None:
    src = tmp_path / "in"
    src.mkdir()
    deep = (photo.astype(np.uint16) * 257)[..., ::-1]
    cv2.imwrite(str(src / "deep.png"), np.ascontiguousarray(deep))  # 16-bit RGB
    _save(src / "gray.tif", photo[..., 0])
    Image.fromarray(photo).quantize(16).save(src / "pal.png")
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    im.save(src / "turned.jpg", exif=exif.tobytes(), quality=95)
    out = tmp_path / "out"
    res = _invoke("denoise", src, "-o", out, "--model", models["denoise"], "--sigma", 5)
    assert res.exit_code == 0, res.output
    deep_out = load_image(out / "deep_denoised.png")
    assert deep_out.pixels.dtype == np.uint16 and deep_out.pixels.shape == (64, 80, 3)
    # 16-bit in, 16-bit out with 16-bit precision (not 8-bit values scaled up)
    assert (deep_out.pixels % 257 != 0).any()
    assert load_image(out / "gray_denoised.png").pixels.shape == (64, 80)
    pal = load_image(out / "pal_denoised.png")
    assert pal.pixels.shape == (64, 80, 3) and pal.alpha is None
    turned = load_image(out / "turned_denoised.png")
    assert turned.pixels.shape == (80, 64, 3)  # upright
    assert "EXIF orientation 6 applied" in res.stderr
    assert Image.open(out / "turned_denoised.png").getexif().get(0x0112) is None


# -- errors ------------------------------------------------------------------------------------


def test_bad_files_are_reported_and_the_rest_processed(tmp_path: Path, models, photo) -> None:
    src = tmp_path / "in"
    _save(src / "good.png", photo)
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    _save(src / "cut.jpg", photo, quality=90)
    data = (src / "cut.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    out = tmp_path / "out"
    res = _invoke(
        "upscale", src, text, tmp_path / "missing.png", "-o", out, "--model", models["sr"],
        "--json",
    )  # fmt: skip
    assert res.exit_code == 1
    summary = json.loads(res.stdout)
    failed = {Path(f["path"]).name: f["error"] for f in summary["failed"]}
    assert set(failed) == {"corrupt.png", "cut.jpg", "notes.txt", "missing.png"}
    assert "file not found" in failed["missing.png"]
    assert "truncated" in failed["cut.jpg"]
    assert "not an image" in failed["notes.txt"]
    for name in failed:
        assert name in res.stderr  # reported by name on stderr too
    assert summary["processed"] == 1 and _files(out) == ["good_x2.png"]  # nothing partial


def test_max_pixels_refused(tmp_path: Path, models, photo) -> None:
    src = _save(tmp_path / "a.png", photo)
    res = _invoke("upscale", src, "--model", models["sr"], "--max-pixels", 1000)
    assert res.exit_code == 1 and "above the limit" in res.stderr
    assert _files(tmp_path) == ["a.png"]


def test_interrupt_and_crash_leave_no_partial_output(
    tmp_path: Path, models, photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from scn_deploy.restore import Restorer

    src = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        _save(src / name, photo)
    calls = []
    original = Restorer.restore

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Restorer, "restore", interrupted)
    res = _invoke("upscale", src, "-o", tmp_path / "out", "--model", models["sr"])
    assert res.exit_code == 130
    assert _files(tmp_path / "out") == ["a_x2.png"]  # the finished file, whole; nothing else
    assert load_image(tmp_path / "out" / "a_x2.png").pixels.shape == (128, 160, 3)
    monkeypatch.setattr(Restorer, "restore", original)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    res = _invoke("upscale", src, "-o", tmp_path / "out2", "--model", models["sr"])
    assert res.exit_code == 1 and "No space left on device" in res.stderr
    assert _files(tmp_path / "out2") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upscale", "--tile", "big"], "--tile must be"),
        (["upscale", "--scale", "5"], "--scale must be 2, 3 or 4"),
        (["upscale", "--scale", "3"], "upscales x2, not x3"),
        (["upscale", "--device", "gpu"], "--device must be"),
        (["denoise"], "give --sigma"),
        (["denoise", "--sigma", "300"], "255"),
        (["denoise25", "--sigma", "50"], "trained for a fixed sigma of 25"),
        (["deblock_as_sr"], "use `scn deblock`"),
        (["upscale", "--model", "no-such-model"], "no model file or zoo model"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, models, photo, args, message, request) -> None:
    src = _save(tmp_path / "a.png", photo)
    command, *rest = args
    models = dict(models)
    if command == "denoise25":
        models["denoise25"] = request.getfixturevalue("fixed_sigma_model")
    model = {"upscale": "sr", "denoise": "denoise", "denoise25": "denoise25"}.get(command)
    command = {"denoise25": "denoise", "deblock_as_sr": "upscale"}.get(command, command)
    model_args = ["--model", models[model or "deblock"]] if "--model" not in rest else []
    res = _invoke(command, src, *model_args, *rest)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert _files(tmp_path) == ["a.png"]


def test_deblock_without_quality_needs_a_jpeg(tmp_path: Path, models, photo) -> None:
    src = _save(tmp_path / "a.png", photo)
    res = _invoke("deblock", src, "--model", models["deblock"])
    assert res.exit_code == 1 and "give --quality" in res.stderr
    res = _invoke("deblock", src, "--model", models["deblock"], "--quality", 40, "--quiet")
    assert res.exit_code == 0 and res.stderr == ""
    assert load_image(tmp_path / "a_deblocked.png").pixels.shape == photo.shape


# -- scn models, help --------------------------------------------------------------------------


def test_models_lists_the_zoo(tmp_path: Path, models, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = zoo_path("sr-x2").read_bytes()
    monkeypatch.setenv("SCN_MODELS", str(tmp_path))
    res = _invoke("models")
    assert res.exit_code == 0 and "no zoo models" in res.stdout
    (tmp_path / "sr-x2.safetensors").write_bytes(shipped)
    (tmp_path / "sr-x2.json").write_text(
        json.dumps({"task": "sr", "results": [{"dataset": "Set5", "psnr_y": 33.5}]})
    )
    res = _invoke("models", "--json")
    rows = json.loads(res.stdout)
    assert rows[0]["name"] == "sr-x2" and rows[0]["setting"] == "x2"
    assert rows[0]["psnr"] == {"Set5": 33.5}
    res = _invoke("models")
    assert "sr-x2" in res.stdout and "33.50" in res.stdout


def test_every_option_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name in ("upscale", "denoise", "deblock", "models"):
        command = group.commands[name]  # type: ignore[attr-defined]
        assert command.help
        for param in command.params:
            assert getattr(param, "help", None), f"scn {name}: {param.name} has no help"
    res = _invoke("upscale", "--help")
    assert res.exit_code == 0 and "--tile-overlap" in res.stdout


def test_outputs_of_one_run_are_readable_by_pillow(tmp_path: Path, models, photo) -> None:
    """Encoded bytes are complete files (the encode thread writes them whole)."""
    src = _save(tmp_path / "a.png", photo)
    res = _invoke("upscale", src, "--model", models["sr"], "--format", "tiff")
    assert res.exit_code == 0
    data = (tmp_path / "a_x2.tif").read_bytes()
    assert Image.open(io.BytesIO(data)).size == (160, 128)


# -- the fast tier -----------------------------------------------------------------------------


def _fast_zoo(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zoo of the fast x2 model (what --fast picks) beside the standard one, no other."""
    _zoo(folder, ["sr-x2-fast", "sr-x2"], monkeypatch)


def test_upscale_fast_uses_the_fast_model_and_says_so(
    tmp_path: Path, models, photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_zoo(tmp_path / "zoo", monkeypatch)
    src = _save(tmp_path / "in" / "a.png", photo)
    res = _invoke("upscale", src, "--scale", "2", "--fast", "-o", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["model_name"] == "sr-x2-fast" and doc["tier"] == "fast"
    assert Image.open(tmp_path / "out" / "a_x2.png").size == (160, 128)
    assert "with sr-x2-fast (fast tier)" in res.stderr
    # without --fast the standard model serves the same scale
    res = _invoke("upscale", src, "--scale", "2", "-o", tmp_path / "std", "--json")
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["model_name"] == "sr-x2" and doc["tier"] == "standard"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "3", "--fast"], "fast x3 model 'sr-x3-fast' is not installed"),
        (["--scale", "2", "--fast", "--model", "sr-x2"], "leave out --model"),
    ],
)
def test_upscale_fast_usage_errors(
    tmp_path: Path, models, photo, monkeypatch: pytest.MonkeyPatch, args, message
) -> None:
    _fast_zoo(tmp_path / "zoo", monkeypatch)
    src = _save(tmp_path / "a.png", photo)
    res = _invoke("upscale", src, *args, "-o", tmp_path / "out")
    assert res.exit_code == 2 and message in " ".join(res.output.split())
    assert not (tmp_path / "out").exists()


def test_restore_api_fast(tmp_path: Path, models, photo, monkeypatch: pytest.MonkeyPatch) -> None:
    from scn_deploy.errors import ConfigError
    from scn_deploy.restore import restore

    _fast_zoo(tmp_path / "zoo", monkeypatch)
    fast = restore(photo, task="sr", scale=2, fast=True, engine=ONNX)
    standard = restore(photo, task="sr", scale=2, engine=ONNX)
    assert fast.shape == standard.shape == (128, 160, 3)
    assert np.abs(fast - standard).max() > 0.01  # two different networks
    # ... both the zoo's x2 models as shipped
    assert np.abs(fast - restore(photo, model=zoo_path("sr-x2-fast"), engine=ONNX)).max() == 0
    with pytest.raises(ConfigError, match="fast denoise model 'denoise-fast' is not installed"):
        restore(photo, task="denoise", level=25, fast=True)


def _fast_restoration_zoo(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard and fast (space_to_depth 2) denoisers, colour and gray; no deblockers."""
    _zoo(folder, ["denoise", "denoise-gray", "denoise-fast", "denoise-gray-fast"], monkeypatch)


def test_denoise_fast_uses_the_fast_models_colour_and_gray(
    tmp_path: Path, photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_restoration_zoo(tmp_path / "zoo", monkeypatch)
    _save(tmp_path / "in" / "a.png", photo)
    _save(tmp_path / "in" / "g.png", photo[..., 0])
    res = _invoke(
        "denoise", tmp_path / "in", "--sigma", "25", "--fast", "-o", tmp_path / "out", "--json"
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["model_name"] == "denoise-fast" and doc["tier"] == "fast"
    assert Path(doc["gray_model"]).stem == "denoise-gray-fast"
    assert Image.open(tmp_path / "out" / "a_denoised.png").size == (80, 64)
    assert Image.open(tmp_path / "out" / "g_denoised.png").mode == "L"
    res = _invoke("denoise", tmp_path / "in", "--sigma", "25", "-o", tmp_path / "std", "--json")
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["model_name"] == "denoise" and doc["tier"] == "standard"
    assert Path(doc["gray_model"]).stem == "denoise-gray"
    fast = np.asarray(Image.open(tmp_path / "out" / "a_denoised.png"), dtype=int)
    assert np.abs(fast - np.asarray(Image.open(tmp_path / "std" / "a_denoised.png"))).max() > 0


def test_restore_api_fast_restoration(tmp_path: Path, photo, monkeypatch) -> None:
    from scn_deploy.restore import restore

    _fast_restoration_zoo(tmp_path, monkeypatch)
    gray = photo[..., 1]
    fast = restore(gray, task="denoise", level=25, fast=True, engine=ONNX)
    standard = restore(gray, task="denoise", level=25, engine=ONNX)
    assert fast.shape == standard.shape == gray.shape
    assert np.abs(fast - standard).max() > 0.001


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("denoise", ["--sigma", "25", "--fast", "--model", "denoise"], "leave out --model"),
        ("deblock", ["--quality", "20", "--fast"], "fast deblock model 'deblock-fast' is not"),
    ],
)
def test_restoration_fast_usage_errors(
    tmp_path: Path, photo, monkeypatch: pytest.MonkeyPatch, command, args, message
) -> None:
    _fast_restoration_zoo(tmp_path / "zoo", monkeypatch)
    src = _save(tmp_path / "a.png", photo)
    res = _invoke(command, src, *args, "-o", tmp_path / "out")
    assert res.exit_code == 2 and message in " ".join(res.output.split())
    assert not (tmp_path / "out").exists()


def test_models_shows_tier_cost_and_speed(
    tmp_path: Path, models, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fast_zoo(tmp_path, monkeypatch)
    speed = {"mp_per_s": 6.5, "engine": "openvino", "precision": "bf16", "host": "a CPU"}
    (tmp_path / "sr-x2-fast.json").write_text(
        json.dumps({"name": "sr-x2-fast", "gflop_per_output_mp": 50.2, "speed": speed})
    )
    rows = {r["name"]: r for r in json.loads(_invoke("models", "--json").stdout)}
    assert rows["sr-x2-fast"]["tier"] == "fast" and rows["sr-x2"]["tier"] == "standard"
    assert rows["sr-x2-fast"]["gflop_per_output_mp"] == 50.2
    assert rows["sr-x2-fast"]["speed"]["mp_per_s"] == 6.5 and rows["sr-x2"]["speed"] is None
    res = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    line = next(x for x in res.stdout.splitlines() if "sr-x2-fast" in x)
    assert "fast" in line and "50" in line and "6.50 (openvino bf16)" in line
    assert "a CPU" in " ".join(res.stdout.split())
