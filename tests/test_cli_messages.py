"""What a newcomer meets: messages print what they say, every readable type is read from
folders too, `scn export` without --model exports the whole zoo."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import scn_deploy
from scn_deploy.cli import app
from scn_deploy.cli.app import err, fail
from scn_deploy.cli.progress import RichReporter
from scn_deploy.imageio import IMAGE_EXTENSIONS

runner = CliRunner()
HINT = re.compile(r"pip install '?scn-deploy\[(\w+)\]'?")


def _install_hints() -> set[str]:
    """Every `pip install 'scn-deploy[EXTRA]'` that the package can print."""
    root = Path(scn_deploy.__file__).parent
    found = {m.group(0) for f in root.rglob("*.py") for m in HINT.finditer(f.read_text())}
    assert len(found) >= 3  # torch, gpu, ray, openvino, baselines ...
    return found


def test_every_install_hint_keeps_its_extra() -> None:
    """rich reads "[torch]" as markup: escaped, the extra survives in errors and notes."""
    reporter = RichReporter(quiet=False)
    for hint in _install_hints():
        extra = HINT.match(hint).group(1)
        with err.capture() as captured:
            fail(f"needs more: {hint}")
        assert f"scn-deploy[{extra}]" in captured.get(), hint
        with reporter.progress.console.capture() as captured:
            reporter.note(Path("a [b].png"), hint)
            reporter.failed(Path("x.png"), hint)
        text = captured.get()
        assert text.count(f"scn-deploy[{extra}]") == 2 and "a [b].png" in text


def test_torch_free_export_names_the_torch_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    monkeypatch.delitem(sys.modules, "scn_deploy.exporting.onnx_export", raising=False)
    res = runner.invoke(app, ["export", "--model", "sr-x2"])
    assert res.exit_code == 1
    assert "pip install 'scn-deploy[torch]'" in res.output


def test_a_folder_of_every_readable_type_gets_an_output_each(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8))
    folder = tmp_path / "in"
    folder.mkdir()
    for ext in sorted(IMAGE_EXTENSIONS):
        image = {".pgm": rgb.convert("L"), ".pbm": rgb.convert("1")}.get(ext, rgb)
        fmt = {".jpe": "JPEG", ".jfif": "JPEG", ".pnm": "PPM"}.get(ext)
        image.save(folder / f"img-{ext[1:]}{ext}", format=fmt)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0")
    args = ["denoise", str(folder), "--sigma", "25", "--engine", "onnx"]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "out"), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["processed"] == len(IMAGE_EXTENSIONS) and not summary["failed"]
    assert len(list((tmp_path / "out").iterdir())) == len(IMAGE_EXTENSIONS)
    skipped = summary["skipped_files"]
    assert [Path(s["path"]).name for s in skipped] == ["notes.txt"]  # hidden files ignored
    assert "not an image" in skipped[0]["reason"]


def test_export_without_model_exports_the_zoo_then_refuses_trt(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from scn_deploy.engines.registry import installed
    from scn_deploy.zoo import available_names

    if installed("tensorrt"):
        pytest.skip("TensorRT is installed: --trt would build engines")
    out = tmp_path / "exports"
    res = runner.invoke(app, ["export", "--scales", "2", "-o", str(out), "--trt"])
    written = sorted(p.name for p in out.glob("*.onnx"))
    assert written == sorted(f"{name}-s2.onnx" for name in available_names())
    assert res.exit_code == 1
    assert "ONNX files are written" in res.output and "TensorRT" in res.output
    res = runner.invoke(app, ["export", "-o", str(tmp_path / "one.onnx")])
    assert res.exit_code == 2 and "folder" in res.output


def test_restoration_commands_share_one_declaration_of_the_common_options() -> None:
    """upscale, denoise and deblock take every `Common` option, from the one declaration."""
    import typer.main

    from scn_deploy.cli.restoring import Common

    group = typer.main.get_command(app)
    common = {f.name for f in dataclasses.fields(Common)}
    for name in ("upscale", "denoise", "deblock"):
        command = group.get_command(None, name)  # type: ignore[attr-defined]
        params = {p.name: p for p in command.params}
        assert common <= set(params), name
        assert params["inputs"].param_type_name == "argument"
        assert command.params[0].name == "inputs"
        # Same option strings and help in every command: they come from one place.
        shown = {k: (tuple(p.opts), getattr(p, "help", None)) for k, p in params.items()}
        if name == "upscale":
            reference = shown
        else:
            assert {k: shown[k] for k in common} == {k: reference[k] for k in common}
    source = Path(scn_deploy.__file__).parent / "cli"
    for module in ("upscale.py", "denoise.py", "deblock.py"):
        assert "tile_overlap" not in (source / module).read_text(), module


def test_common_options_become_the_library_option_groups(tmp_path: Path) -> None:
    from scn_deploy.cli.restoring import Common, Engine, Precision

    common = Common(
        inputs=[tmp_path],
        out=tmp_path / "out",
        tile="128",
        tile_memory=64,
        engine=Engine.onnx,
        precision=Precision.fp32,
        scales=2,
        max_pixels=0,
    )
    engine = common.engine_options()
    assert (engine.engine, engine.precision, engine.num_scales) == ("onnx", "fp32", 2)
    restore = common.restore_options()
    assert (restore.tile, restore.memory_budget, restore.extrapolate_level) == (128, 64 << 20, True)
    files = common.file_options()
    assert (files.out, files.max_pixels, files.fmt) == (tmp_path / "out", None, None)
    assert common.cluster_options() is None
