"""Every shipped zoo model loads, matches its card, has its ONNX export, and beats its input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from scn_deploy.degrade import bicubic_degrade, imresize
from scn_deploy.engines import EngineOptions, load_engine
from scn_deploy.exporting.cache import export_dir
from scn_deploy.exporting.metadata import read_onnx_metadata
from scn_deploy.metrics import psnr
from scn_deploy.restore import Restorer, to_dtype
from scn_deploy.zoo import list_zoo

ENTRIES = list_zoo()


def test_the_zoo_ships_an_sr_x2_model() -> None:
    assert "sr-x2" in [e.name for e in ENTRIES]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_zoo_model_matches_card_and_export(entry) -> None:
    card = entry.path.with_suffix(".md")
    assert card.exists(), f"{entry.name} has no model card"
    results = json.loads(entry.path.with_suffix(".json").read_text())
    assert results["description"] == entry.spec.describe()
    assert entry.spec.training.get("steps", 0) > 0
    onnx_engine = load_engine(entry.path, EngineOptions(engine="onnx"))  # the committed export
    assert onnx_engine.spec.to_dict() == entry.spec.to_dict()
    # Every committed export of this model was made from this very file (none is stale).
    digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    exports = sorted(export_dir().glob(f"{entry.name}-s*.onnx"))
    assert exports
    for path in exports:
        assert read_onnx_metadata(path)[2]["scn_source_sha256"] == digest, f"{path} is stale"


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_zoo_export_reproduces_torch(entry) -> None:
    """The committed fp32 export gives PyTorch's output (what a re-export would give)."""
    pytest.importorskip("torch")
    onnx_engine = load_engine(entry.path, EngineOptions(engine="onnx"))
    torch_engine = load_engine(entry.path, EngineOptions(engine="torch"))
    spec = entry.spec
    x = np.random.default_rng(0).random((1, spec.channels, 37, 29), dtype=np.float32)
    level = np.full((1, 1, 37, 29), 0.1, np.float32) if spec.conditioned else None
    assert np.abs(onnx_engine.infer(x, level) - torch_engine.infer(x, level)).max() < 1e-4


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if e.spec.task.upscales], ids=lambda e: e.name
)
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_sr_zoo_model_beats_bicubic(entry, engine: str, photo_rgb: np.ndarray) -> None:
    if engine == "torch":
        pytest.importorskip("torch")
    s = entry.spec.scale
    hr = photo_rgb[96 : 96 + 120, 160 : 160 + 120]
    lr = bicubic_degrade(hr, s)
    out = to_dtype(
        Restorer(load_engine(entry.path, EngineOptions(engine=engine))).restore(lr), np.uint8
    )
    baseline = imresize(lr, scale=s)
    gain = psnr(out, hr, crop_border=s) - psnr(baseline, hr, crop_border=s)
    assert gain > 0.5, f"{entry.name} ({engine}) gains only {gain:.2f} dB over bicubic"


RESTORE_ENTRIES = [e for e in ENTRIES if not e.spec.task.upscales]


@pytest.mark.parametrize("entry", RESTORE_ENTRIES, ids=lambda e: e.name)
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_restore_zoo_model_improves_its_input(entry, engine: str, photo_rgb: np.ndarray) -> None:
    """A denoiser beats its noisy input at two sigmas, a deblocker its JPEG at two qualities,
    each told the level (a conditioned model runs every level with one set of weights)."""
    if engine == "torch":
        pytest.importorskip("torch")
    from scn_deploy.degrade import jpeg_compress
    from scn_deploy.metrics import rgb_to_y

    spec = entry.spec
    crop = photo_rgb[96 : 96 + 120, 160 : 160 + 120]
    clean = crop if spec.channels == 3 else np.rint(rgb_to_y(crop)).astype(np.uint8)
    restorer = Restorer(load_engine(entry.path, EngineOptions(engine=engine)))
    levels = (15.0, 50.0) if spec.task.name == "denoise" else (10, 40)
    for level in levels:
        if spec.task.name == "denoise":
            rng = np.random.default_rng(int(level))
            degraded = (clean / 255.0 + rng.normal(0, level / 255, clean.shape)).astype(np.float32)
            before = psnr(np.clip(np.rint(degraded * 255), 0, 255).astype(np.uint8), clean)
        else:
            degraded = jpeg_compress(clean, int(level))
            before = psnr(degraded, clean)
        out = to_dtype(restorer.restore(degraded, float(level)), np.uint8)
        gain = psnr(out, clean) - before
        assert gain > 0.3, f"{entry.name} ({engine}) at {level}: only {gain:+.2f} dB"


def test_scn_models_shows_the_shipped_cards_headline_psnr() -> None:
    """`scn models` reads the card results that benchmarks/zoo_card.py writes."""
    from typer.testing import CliRunner

    from scn_deploy.cli import app

    rows = json.loads(CliRunner().invoke(app, ["models", "--json"]).stdout)
    for row in rows:
        card = json.loads(Path(row["path"]).with_suffix(".json").read_text())
        headline = next(
            e
            for e in card["evaluations"]
            if row["name"] in (e["model"], e.get("jpeg_model"))  # sr-x2-jpeg: the JPEG path
        )
        assert not headline["tta"]
        sr = f" JPEG q{headline['jpeg']}" if "jpeg" in headline else ""
        level = {"sr": sr, "denoise": f" sigma {headline.get('sigma', 0):g}"}.get(
            row["task"], f" q{headline.get('quality', 0):g}"
        )
        colour = " colour" if headline.get("colour") else ""  # the colour JPEG protocol
        expected = {r["dataset"] + colour + level: r["psnr_y"] for r in headline["results"]}
        assert row["psnr"] == pytest.approx(expected) and expected


def test_zoo_default_falls_back_to_the_other_colour_variant(tmp_path: Path, monkeypatch) -> None:
    """`scn denoise` with only `denoise-gray` installed uses it (and vice versa); a task with no
    installed model is a clear error naming what is installed."""
    import shutil

    from scn_deploy.errors import ConfigError
    from scn_deploy.zoo import resolve_model

    monkeypatch.setenv("SCN_MODELS", str(tmp_path))
    with pytest.raises(ConfigError, match=r"not installed.*available: none"):
        resolve_model(None, task="denoise")
    src = Path(__file__).resolve().parent.parent / "models" / "sr-x2.safetensors"
    shutil.copy(src, tmp_path / "denoise-gray.safetensors")  # only the name matters here
    assert resolve_model(None, task="denoise").name == "denoise-gray.safetensors"
    assert resolve_model(None, task="denoise", gray=True).name == "denoise-gray.safetensors"
    shutil.copy(src, tmp_path / "denoise.safetensors")
    assert resolve_model(None, task="denoise").name == "denoise.safetensors"
    assert resolve_model(None, task="denoise", gray=True).name == "denoise-gray.safetensors"
    (tmp_path / "denoise-gray.safetensors").unlink()
    assert resolve_model(None, task="denoise", gray=True).name == "denoise.safetensors"
    with pytest.raises(ConfigError, match="available: denoise"):
        resolve_model(None, task="deblock")


@pytest.mark.skipif(
    "denoise-gray" not in [e.name for e in ENTRIES], reason="needs the shipped gray denoiser"
)
def test_colour_photo_through_the_gray_denoiser(
    tmp_path: Path, photo_rgb: np.ndarray, monkeypatch
) -> None:
    """With only denoise-gray installed, `scn denoise` restores a colour photo channel by
    channel, says so (unless --quiet), and writes a colour image that beats the noisy one."""
    import shutil

    from typer.testing import CliRunner

    from scn_deploy.cli import app
    from scn_deploy.imageio import read_image, write_image

    zoo, exports = tmp_path / "zoo", tmp_path / "export"
    zoo.mkdir()
    exports.mkdir()
    model = next(e.path for e in ENTRIES if e.name == "denoise-gray")
    shutil.copy(model, zoo)
    shutil.copy(model.parent.parent / "export" / "denoise-gray-s3.onnx", exports)
    monkeypatch.setenv("SCN_MODELS", str(zoo))
    monkeypatch.setenv("SCN_EXPORT", str(exports))  # runs without PyTorch: the shipped export
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    clean = photo_rgb[100:164, 180:244]
    rng = np.random.default_rng(0)
    noisy = np.clip(np.rint(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)
    write_image(tmp_path / "noisy.png", noisy)
    res = CliRunner().invoke(app, ["denoise", str(tmp_path / "noisy.png"), "--sigma", "25"])
    assert res.exit_code == 0, res.output
    assert "channel by channel" in res.output
    written = sorted(p for p in tmp_path.iterdir() if p.name != "noisy.png")
    assert len(written) == 1
    out = read_image(written[0])
    assert out.shape == clean.shape
    assert psnr(out, clean) > psnr(noisy, clean) + 3
    quiet = CliRunner().invoke(
        app, ["denoise", str(tmp_path / "noisy.png"), "--sigma", "25", "--quiet", "--overwrite"]
    )
    assert quiet.exit_code == 0 and "channel by channel" not in quiet.output


@pytest.mark.skipif(
    not {"denoise", "denoise-gray"} <= {e.name for e in ENTRIES},
    reason="needs the shipped colour and gray denoisers",
)
def test_scn_denoise_sends_gray_images_to_the_gray_model(
    tmp_path: Path, photo_rgb: np.ndarray
) -> None:
    """With both variants installed, one `scn denoise` run restores a colour file with the
    colour model and a gray file with the gray one: the colour model on a replicated gray image
    sees the same noise in R, G and B (never seen in training) and does far worse."""
    from typer.testing import CliRunner

    from scn_deploy.cli import app
    from scn_deploy.imageio import read_image, write_image
    from scn_deploy.metrics import rgb_to_y
    from scn_deploy.restore import Restorer

    clean_rgb = photo_rgb[100:164, 180:244]
    clean_gray = np.rint(rgb_to_y(clean_rgb)).astype(np.uint8)
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, clean in (("rgb", clean_rgb), ("gray", clean_gray)):
        noisy = np.clip(np.rint(clean + rng.normal(0, 25, clean.shape)), 0, 255).astype(np.uint8)
        write_image(inputs / f"{name}.png", noisy)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["denoise", str(inputs), "--sigma", "25", "-o", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert "channel by channel" not in res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert Path(summary["model"]).name == "denoise.safetensors"
    assert Path(summary["gray_model"]).name == "denoise-gray.safetensors"
    (rgb_out,) = out.glob("rgb*")
    (gray_out,) = out.glob("gray*")
    by_colour = to_dtype(
        Restorer(load_engine(zoo_path_of("denoise"), EngineOptions(engine="onnx"))).restore(
            read_image(inputs / "gray.png"), 25.0
        ),
        np.uint8,
    )
    gray_psnr = psnr(read_image(gray_out), clean_gray)
    print("gray file:", gray_psnr, "through the colour model:", psnr(by_colour, clean_gray))
    assert read_image(rgb_out).shape == clean_rgb.shape
    noisy_rgb_psnr = psnr(read_image(inputs / "rgb.png"), clean_rgb)
    assert psnr(read_image(rgb_out), clean_rgb) > noisy_rgb_psnr + 3
    assert gray_psnr > psnr(by_colour, clean_gray) + 2
    assert gray_psnr > psnr(read_image(inputs / "gray.png"), clean_gray) + 3


def zoo_path_of(name: str) -> Path:
    return next(e.path for e in ENTRIES if e.name == name)


def test_each_zoo_entry_is_declared_as_its_file_says() -> None:
    """One entry per model: every model file in models/ is declared once, and its declared
    task, scale, colour and tier are what the file itself says."""
    from scn_deploy.paths import models_dir
    from scn_deploy.zoo import ZOO, tier_of, zoo_model, zoo_model_named

    files = sorted(p.stem for p in models_dir().glob("*.safetensors"))
    assert files and set(files) <= {m.name for m in ZOO}
    for entry in ENTRIES:
        declared = zoo_model_named(entry.name)
        assert declared is not None and declared.path == entry.path
        spec = entry.spec
        assert declared.task == spec.task and declared.scale == spec.scale, entry.name
        assert declared.gray == (spec.channels == 1) and declared.tier == tier_of(spec)
        assert declared.card.exists() and declared.results_path.exists()
        lookup = zoo_model(
            spec.task, spec.scale, gray=declared.gray, tier=declared.tier, role=declared.role
        )
        assert lookup is declared


def test_scn_info_takes_zoo_names_like_every_model_option() -> None:
    from typer.testing import CliRunner

    from scn_deploy.cli import app
    from scn_deploy.info import summarize_file

    by_name = {e.name: e for e in ENTRIES}
    for name in ("sr-x2", "denoise-gray-fast"):
        res = CliRunner().invoke(app, ["info", name, "--json"])
        assert res.exit_code == 0, res.output
        shown = json.loads(res.stdout)
        assert shown["source"] == str(by_name[name].path)
        assert shown["config"] == by_name[name].spec.to_dict()
        assert shown["params"] == summarize_file(by_name[name].path).params > 0
    table = CliRunner().invoke(app, ["info", "sr-x3"])
    assert table.exit_code == 0 and "super-resolution x3" in table.stdout
    res = CliRunner().invoke(app, ["info", "sr-x9"])
    assert res.exit_code == 1 and "no model file or zoo model named 'sr-x9'" in res.output
    assert "sr-x2" in res.output  # the installed names are listed


def test_a_model_of_another_task_names_the_command_that_runs_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scn_deploy.cli import app
    from scn_deploy.errors import ConfigError
    from scn_deploy.tasks import DENOISING
    from scn_deploy.zoo import resolve_task_model

    path, spec = resolve_task_model(None, task="denoise", fast=True)
    assert path.stem == "denoise-fast" and spec.task is DENOISING
    with pytest.raises(ConfigError, match=r"is a denoising, sigma .* model: use `scn denoise`"):
        resolve_task_model("denoise-gray", task="sr")
    res = CliRunner().invoke(app, ["upscale", str(tmp_path / "x.png"), "--model", "deblock"])
    assert res.exit_code == 2 and "use `scn deblock`" in res.output
