"""`scn eval` and scn_deploy.evaluate: protocols, JSON schema, models, errors (small images)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scn_deploy.cli import app
from scn_deploy.degrade import bicubic_degrade, imresize, modcrop
from scn_deploy.evaluate import EvalRequest, RequestError, evaluate
from scn_deploy.imageio import read_image, write_image
from scn_deploy.metrics import psnr, ssim

runner = CliRunner()

RUN_KEYS = {"task", "scales", "tta", "results"}
RESULT_KEYS = {"dataset", "images", "psnr_y", "ssim_y", "psnr_rgb", "seconds"}


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def colour_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two RGB crops (odd sizes, so modcrop matters) and one gray crop of real photographs."""
    from skimage import data

    folder = tmp_path_factory.mktemp("sets") / "Mini"
    astro = data.astronaut()
    write_image(folder / "a.png", astro[40:107, 180:253])  # 67x73
    write_image(folder / "b.png", astro[300:350, 100:161])  # 50x61
    write_image(folder / "c.png", data.camera()[200:251, 220:279])  # gray 51x59
    return folder


@pytest.fixture(scope="module")
def gray_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage import data

    folder = tmp_path_factory.mktemp("sets") / "Gray"
    cam = data.camera()
    write_image(folder / "01.png", cam[:48, :56])
    write_image(folder / "02.png", cam[300:340, 260:312])
    return folder


def _model(tmp_path: Path, name: str, **spec_args: object) -> Path:
    torch = pytest.importorskip("torch")
    from scn_deploy.arch import preset_spec
    from scn_deploy.arch.scn import build_network
    from scn_deploy.modelfile import save_model

    spec = preset_spec("tiny", **spec_args)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return save_model(tmp_path / f"{name}.safetensors", model, spec)


def _eval(*args: str) -> tuple[int, str, dict | None]:
    """Run `scn eval ARGS --json-file tmp`; returns (exit code, all output, JSON or None)."""
    res = runner.invoke(app, ["eval", *args])
    doc = None
    if "--json-file" in args:
        path = Path(args[args.index("--json-file") + 1])
        doc = json.loads(path.read_text()) if path.exists() else None
    return res.exit_code, res.output, doc


# -- JSON schema and the baselines -------------------------------------------------------------


def test_json_schema_and_bicubic_equals_hand_run(colour_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, text, doc = _eval(
        "--data", str(colour_dir), "--task", "sr", "--scale", "3", "--method", "bicubic",
        "--json-file", str(out),
    )  # fmt: skip
    assert code == 0, text
    assert doc is not None and set(doc) == RUN_KEYS | {"scale", "method"}
    assert doc["task"] == "sr" and doc["scale"] == 3 and doc["method"] == "bicubic"
    assert doc["scales"] is None and doc["tta"] is False
    (res,) = doc["results"]
    assert set(res) == RESULT_KEYS
    assert res["dataset"] == "Mini" and res["images"] == 3
    assert "Mini" in text and "PSNR-Y" in text

    # The same protocol by hand: modcrop, bicubic LR from RGB, imresize back, Y, crop = scale.
    ps, ss, prgb = [], [], []
    for name in ("a.png", "b.png", "c.png"):
        hr = modcrop(read_image(colour_dir / name), 3)
        sr = imresize(bicubic_degrade(hr, 3), 3.0)
        assert sr.dtype == np.uint8 and sr.shape == hr.shape
        ps.append(psnr(sr, hr, crop_border=3))
        ss.append(ssim(sr, hr, crop_border=3))
        prgb.append(psnr(sr, hr, crop_border=3, y_channel=False))
    assert res["psnr_y"] == pytest.approx(np.mean(ps), abs=1e-12)
    assert res["ssim_y"] == pytest.approx(np.mean(ss), abs=1e-12)
    assert res["psnr_rgb"] == pytest.approx(np.mean(prgb), abs=1e-12)


def test_identity_denoise_matches_analytic_psnr(tmp_path: Path) -> None:
    from skimage import data

    folder = tmp_path / "Big"
    cam = data.camera()
    write_image(folder / "x.png", cam[:256, :256])
    write_image(folder / "y.png", cam[256:, 256:])
    sigma = 25.0
    result = evaluate(EvalRequest(data=[folder], task="denoise", level=sigma, method="identity"))
    (r,) = result.results
    # Not clipped, not quantised: the PSNR of the noisy input is 20 log10(255 / sigma).
    assert r.psnr_y == pytest.approx(20 * math.log10(255 / sigma), abs=0.1)
    assert r.psnr_rgb is None  # a gray set has no RGB number
    assert 0.0 < r.ssim_y < 1.0
    doc = result.to_dict()
    assert doc["sigma"] == 25 and doc["method"] == "identity" and "scale" not in doc
    # Deterministic per seed; another seed gives other noise.
    again = evaluate(EvalRequest(data=[folder], task="denoise", level=sigma, method="identity"))
    assert again.results[0].psnr_y == r.psnr_y
    other = evaluate(
        EvalRequest(data=[folder], task="denoise", level=sigma, method="identity", seed=5)
    )
    assert other.results[0].psnr_y != r.psnr_y


def test_bm3d_baseline_follows_the_denoise_protocol(gray_dir: Path, colour_dir: Path) -> None:
    """`--method bm3d` denoises the protocol's own noisy image (same seed per image) told the
    true sigma, and clearly beats the noisy input on gray and colour images."""
    bm3d = pytest.importorskip("bm3d")
    from scn_deploy.evaluate import denoise_pair

    result = runner.invoke(
        app,
        ["eval", "--data", str(gray_dir), "--task", "denoise", "--sigma", "25", "--method", "bm3d"],
    )
    assert result.exit_code == 0, result.output
    res = evaluate(EvalRequest(data=[gray_dir], task="denoise", level=25.0, method="bm3d"))
    noisy_in = evaluate(EvalRequest(data=[gray_dir], task="denoise", level=25.0, method="identity"))
    assert res.results[0].psnr_y > noisy_in.results[0].psnr_y + 5
    # The same numbers by hand: image i of the folder gets seed i.
    first = sorted(gray_dir.iterdir())[0]
    clean, noisy = denoise_pair(read_image(first), 25.0, 0)
    by_hand = np.clip(np.rint(bm3d.bm3d(noisy, sigma_psd=25 / 255) * 255), 0, 255)
    # BM3D's compiled library is not bit-reproducible from call to call (seen: 0.0015 dB apart
    # on a 48x56 crop); other noise (seed 1) moves the result by far more than this tolerance.
    assert res.results[0].per_image[0].psnr_y == pytest.approx(
        psnr(by_hand.astype(np.uint8), clean), abs=0.02
    )
    _, other_noise = denoise_pair(read_image(first), 25.0, 1)
    other = np.clip(np.rint(bm3d.bm3d(other_noise, sigma_psd=25 / 255) * 255), 0, 255)
    assert abs(psnr(other.astype(np.uint8), clean) - res.results[0].per_image[0].psnr_y) > 0.02
    colour = evaluate(EvalRequest(data=[colour_dir], task="denoise", level=15.0, method="bm3d"))
    noisy_c = evaluate(
        EvalRequest(data=[colour_dir], task="denoise", level=15.0, method="identity")
    )
    assert colour.results[0].psnr_rgb > noisy_c.results[0].psnr_rgb + 3
    doc = colour.to_dict()
    assert doc["method"] == "bm3d" and doc["sigma"] == 15


def test_bm3d_is_for_denoising_only(colour_dir: Path) -> None:
    with pytest.raises(RequestError, match="its baselines: identity"):
        EvalRequest(data=[colour_dir], task="deblock", level=10, method="bm3d").validate()


def test_identity_deblock_psnr_increases_with_quality(colour_dir: Path) -> None:
    values = []
    for q in (10, 30, 60, 90):
        res = evaluate(EvalRequest(data=[colour_dir], task="deblock", level=q, method="identity"))
        (r,) = res.results
        assert r.psnr_rgb is None  # deblocking is measured on the gray (Y) image only
        values.append((r.psnr_y, r.ssim_y))
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(values))


def test_colour_jpeg_protocol(colour_dir: Path, tmp_path: Path) -> None:
    """--colour encodes the RGB image itself (4:2:0) and scores Y and RGB against it."""
    from scn_deploy.degrade import jpeg_compress
    from scn_deploy.metrics import psnr

    doc_path = tmp_path / "c.json"
    code, text, doc = _eval(
        "--data", str(colour_dir), "--task", "deblock", "--quality", "15", "--method",
        "identity", "--colour", "--json-file", str(doc_path),
    )  # fmt: skip
    assert code == 0, text
    assert doc is not None and doc["colour"] is True
    want_y, want_rgb = [], []
    for name in ("a", "b", "c"):
        ref = read_image(colour_dir / f"{name}.png")
        coded = jpeg_compress(ref, 15)
        want_y.append(psnr(coded, ref, crop_border=0, y_channel=True))
        want_rgb.append(psnr(coded, ref, crop_border=0, y_channel=False))
    (r,) = doc["results"]
    assert r["psnr_y"] == pytest.approx(np.mean(want_y), abs=1e-9)
    assert r["psnr_rgb"] == pytest.approx(np.mean(want_rgb), abs=1e-9)
    # Not the Y protocol: chroma subsampling costs RGB PSNR, and the numbers differ.
    (gray,) = evaluate(
        EvalRequest(data=[colour_dir], task="deblock", level=15, method="identity")
    ).results
    assert gray.psnr_rgb is None and gray.psnr_y != pytest.approx(r["psnr_y"], abs=1e-3)
    assert "colour" not in json.dumps(
        evaluate(
            EvalRequest(data=[colour_dir], task="deblock", level=15, method="identity")
        ).to_dict()
    )
    with pytest.raises(RequestError, match="--colour applies to --task deblock"):
        EvalRequest(data=[colour_dir], task="sr", level=2, method="bicubic", colour=True).validate()


def test_save_images_and_given_inputs(colour_dir: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    code, text, doc = _eval(
        "--data", str(colour_dir), "--task", "sr", "--scale", "2", "--method", "bicubic",
        "--save-images", str(saved), "--json-file", str(tmp_path / "a.json"),
    )  # fmt: skip
    assert code == 0, text
    hr = modcrop(read_image(colour_dir / "a.png"), 2)
    assert np.array_equal(
        read_image(saved / "Mini" / "a.png"), imresize(bicubic_degrade(hr, 2), 2.0)
    )
    assert sorted(p.name for p in (saved / "Mini").iterdir()) == ["a.png", "b.png", "c.png"]

    # Given LR inputs (matched by stem, in inputs/<dataset>/) reproduce the synthetic run.
    lr_dir = tmp_path / "lr" / "Mini"
    for name in ("a", "b", "c"):
        img = modcrop(read_image(colour_dir / f"{name}.png"), 2)
        write_image(lr_dir / f"{name}.bmp", bicubic_degrade(img, 2))
    code, text, doc2 = _eval(
        "--data", str(colour_dir), "--task", "sr", "--scale", "2", "--method", "bicubic",
        "--inputs", str(tmp_path / "lr"), "--json-file", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert code == 0, text
    assert doc is not None and doc2 is not None
    assert doc2["results"][0]["psnr_y"] == doc["results"][0]["psnr_y"]
    (lr_dir / "c.bmp").unlink()
    code, text, _ = _eval(
        "--data", str(colour_dir), "--task", "sr", "--scale", "2", "--method", "bicubic",
        "--inputs", str(tmp_path / "lr"),
    )  # fmt: skip
    assert code == 1 and "c.png" in text and "no degraded input" in text


# -- models ------------------------------------------------------------------------------------


def test_tiny_models_for_every_task(colour_dir: Path, gray_dir: Path, tmp_path: Path) -> None:
    sr2 = _model(tmp_path, "sr2", task="sr", scale=2)
    code, text, doc = _eval(
        "--data", str(colour_dir), "--data", str(gray_dir), "--model", str(sr2), "--task", "sr",
        "--scale", "2", "--scales", "2", "--tta", "--json-file", str(tmp_path / "sr.json"),
    )  # fmt: skip
    assert code == 0, text
    assert doc is not None and set(doc) == RUN_KEYS | {"scale", "model", "engine", "precision"}
    assert doc["model"] == str(sr2) and doc["scales"] == 2 and doc["tta"] is True
    assert [r["dataset"] for r in doc["results"]] == ["Mini", "Gray"]
    assert doc["results"][1]["psnr_rgb"] is None and doc["results"][0]["psnr_rgb"] > 0
    assert all(set(r) == RESULT_KEYS and r["psnr_y"] > 10 for r in doc["results"])

    # A conditioned gray denoiser gets the sigma; its restored images can be saved.
    den = _model(tmp_path, "den", task="denoise", channels=1, level_range=(0.0, 75.0))
    code, text, doc = _eval(
        "--data", str(gray_dir), "--model", str(den), "--task", "denoise", "--sigma", "30",
        "--save-images", str(tmp_path / "den"), "--json-file", str(tmp_path / "den.json"),
    )  # fmt: skip
    assert code == 0, text
    assert doc is not None and doc["sigma"] == 30 and doc["scales"] == 3
    assert read_image(tmp_path / "den" / "Gray" / "02.png").shape == (40, 52)
    code, text, _ = _eval(
        "--data", str(gray_dir), "--model", str(den), "--task", "denoise", "--sigma", "80"
    )
    assert code == 1 and "outside" in text

    # A fixed-quality RGB deblocker on the gray (Y) protocol; colour files become Y.
    deb = _model(tmp_path, "deb", task="deblock", quality=20)
    code, text, doc = _eval(
        "--data", str(colour_dir), "--model", str(deb), "--task", "deblock", "--quality", "20",
        "--scales", "1", "--json-file", str(tmp_path / "deb.json"),
    )  # fmt: skip
    assert code == 0, text
    assert doc is not None and doc["quality"] == 20 and doc["results"][0]["psnr_rgb"] is None
    code, text, _ = _eval(
        "--data", str(colour_dir), "--model", str(deb), "--task", "deblock", "--quality", "40"
    )
    assert code == 1 and "fixed quality of 20" in text


def test_mismatched_model_is_a_clean_error(colour_dir: Path, tmp_path: Path) -> None:
    sr2 = _model(tmp_path, "sr2", task="sr", scale=2)
    code, text, _ = _eval(
        "--data", str(colour_dir), "--model", str(sr2), "--task", "sr", "--scale", "3"
    )
    assert code == 1
    assert "x2 super-resolution model" in text and "--scale 3" in text
    code, text, _ = _eval(
        "--data", str(colour_dir), "--model", str(sr2), "--task", "denoise", "--sigma", "25"
    )
    assert code == 1 and "cannot be evaluated with --task denoise" in text
    assert "Traceback" not in text


# -- errors ------------------------------------------------------------------------------------


def test_data_errors(colour_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "EmptySet"
    empty.mkdir()
    base = ["--task", "sr", "--scale", "2", "--method", "bicubic"]
    code, text, _ = _eval("--data", str(colour_dir), "--data", str(empty), *base)
    assert code == 1 and "EmptySet" in text and "no images" in text
    code, text, _ = _eval("--data", str(tmp_path / "Nowhere"), *base)
    assert code == 1 and "Nowhere" in text

    broken = tmp_path / "Broken"
    write_image(broken / "fine.png", np.zeros((16, 16, 3), np.uint8))
    (broken / "zz_bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    code, text, _ = _eval("--data", str(broken), *base)
    assert code == 1 and "zz_bad.png" in text and "Traceback" not in text

    small = tmp_path / "Small"
    write_image(small / "tiny.png", np.zeros((9, 9, 3), np.uint8))
    code, text, _ = _eval(
        "--data", str(small), "--task", "sr", "--scale", "4", "--method", "bicubic"
    )
    assert code == 1 and "tiny.png" in text and "Traceback" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "sr", "--scale", "2"], "either a model"),
        (["--task", "sr", "--scale", "2", "--method", "bicubic", "--model", "x"], "either"),
        (["--task", "sr", "--method", "bicubic"], "needs --scale"),
        (["--task", "denoise", "--method", "identity"], "needs --sigma"),
        (["--task", "deblock", "--method", "identity", "--sigma", "5"], "does not apply"),
        (["--task", "denoise", "--sigma", "15", "--method", "bicubic"], "does not apply"),
        (["--task", "sr", "--scale", "2", "--method", "bicubic", "--tta"], "apply to a model"),
    ],
)
def test_usage_errors_exit_2(colour_dir: Path, args: list[str], message: str) -> None:
    code, text, _ = _eval("--data", str(colour_dir), *args)
    assert code == 2, text
    assert message in text


def test_request_validation_in_the_library(colour_dir: Path) -> None:
    with pytest.raises(RequestError, match="--quality must be"):
        evaluate(EvalRequest(data=[colour_dir], task="deblock", level=0, method="identity"))
    with pytest.raises(RequestError, match="given twice"):
        evaluate(EvalRequest(data=[colour_dir, colour_dir], task="sr", level=2, method="bicubic"))


def test_tables_script_renders_methods_and_models(colour_dir: Path, tmp_path: Path) -> None:
    """benchmarks/tables.py turns eval JSON (baseline and model runs alike) into markdown."""
    from benchmarks import tables

    bic = tmp_path / "bic.json"
    code, text, _ = _eval(
        "--data", str(colour_dir), "--task", "sr", "--scale", "2", "--method", "bicubic",
        "--json-file", str(bic),
    )  # fmt: skip
    assert code == 0, text
    model_run = {
        "task": "sr", "scale": 2, "model": "models/sr-x2.safetensors", "scales": 3, "tta": True,
        "results": [{"dataset": "Mini", "images": 3, "psnr_y": 35.0, "ssim_y": 0.95,
                     "psnr_rgb": 33.0, "seconds": 1.0}],
    }  # fmt: skip
    (tmp_path / "model.json").write_text(json.dumps(model_run))
    runs = tables.load_runs([bic, tmp_path / "model.json"])
    md = tables.markdown_tables(runs, {("sr", "bicubic", "Mini"): {2: {"psnr_y": 30.0}}})
    lines = md.splitlines()
    assert "| dataset | method | x2 |" in lines
    assert "| Mini | sr-x2, 3 scales, x8 TTA | 35.00 / 0.9500 |" in lines
    assert "| Mini | bicubic (published) | 30.00 |" in lines
    x3_run = {**model_run, "scale": 3, "model": "sr-x3"}
    merged = tables.markdown_tables([*runs, x3_run], {}, merge_sr_zoo=True).splitlines()
    assert "| Mini | sr-xN, 3 scales, x8 TTA | 35.00 / 0.9500 | 35.00 / 0.9500 |" in merged
    with pytest.raises(ValueError, match="two results"):
        tables.markdown_tables(runs + runs[:1])


def test_json_prints_one_object_on_stdout(colour_dir: Path, tmp_path: Path) -> None:
    """--json: the document on stdout, instead of the table; --json-file writes the same."""
    file = tmp_path / "r.json"
    args = ["--data", str(colour_dir), "--task", "sr", "--scale", "2", "--method", "bicubic"]
    res = runner.invoke(app, ["eval", *args, "--json", "--json-file", str(file)])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout.strip())
    assert printed == json.loads(file.read_text())
    assert printed["method"] == "bicubic" and printed["results"][0]["psnr_y"] > 20


def test_eval_zoo_check_flags_metrics_that_moved(tmp_path: Path) -> None:
    """`benchmarks/eval_zoo.py --check` compares re-measured results with the stored ones."""
    from benchmarks.eval_zoo import compare

    def doc(path: Path, psnr: float, ssim: float | None, sets=("Set5",)) -> Path:
        rows = [{"dataset": d, "psnr_y": psnr, "ssim_y": ssim, "seconds": 1.0} for d in sets]
        path.write_text(json.dumps({"results": rows}))
        return path

    stored = doc(tmp_path / "a.json", 30.0, 0.9)
    assert compare(stored, doc(tmp_path / "b.json", 30.009, 0.90009), 0.01) == []
    assert len(compare(stored, doc(tmp_path / "c.json", 30.02, 0.9), 0.01)) == 1
    assert len(compare(stored, doc(tmp_path / "d.json", 30.0, 0.9003), 0.01)) == 1
    assert len(compare(stored, doc(tmp_path / "e.json", 30.0, None), 0.01)) == 1
    assert len(compare(stored, doc(tmp_path / "f.json", 30.0, 0.9, ("Set14",)), 0.01)) == 2
