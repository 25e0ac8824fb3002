"""`--cluster ray`: a local Ray instance gives the local CLI's bytes; bad files are reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("ray")

from scn_deploy.cli import app
from scn_deploy.imageio import write_image

runner = CliRunner()


def test_ray_path_equals_local_path_and_reports_bad_files(
    tmp_path: Path, photo_rgb: np.ndarray
) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.png", photo_rgb[:48, :64])
    write_image(src / "sub" / "g.png", photo_rgb[200:240, 100:150, 1])
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (src / "notes.txt").write_text("ignored")
    common = ["upscale", str(src), "--scale", "2", "--engine", "onnx", "-r", "--json", "-q"]
    local = runner.invoke(app, [*common, "-o", str(tmp_path / "local")])
    on_ray = runner.invoke(
        app, [*common, "-o", str(tmp_path / "ray"), "--cluster", "ray", "--actors", "1"]
    )
    assert local.exit_code == 1 and on_ray.exit_code == 1, on_ray.output
    doc_local = json.loads(local.stdout.strip().splitlines()[-1])
    doc_ray = json.loads(on_ray.stdout.strip().splitlines()[-1])
    assert doc_ray["processed"] == doc_local["processed"] == 2
    assert [f["path"] for f in doc_ray["failed"]] == [str(src / "bad.png")]
    for name in ("a_x2.png", "sub/g_x2.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    assert not list((tmp_path / "ray").rglob(".*.tmp"))


def test_ray_options_need_the_ray_cluster(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    write_image(tmp_path / "a.png", photo_rgb[:32, :32])
    res = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "--scale", "2", "--actors", "2"])
    assert res.exit_code == 2 and "--cluster ray" in res.output


def test_url_inputs_and_outputs_on_ray(tmp_path: Path, photo_rgb: np.ndarray) -> None:
    """file:// URLs go through the same pyarrow filesystem code as s3:// or gs://."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_image(src / "a.png", photo_rgb[:40, :56])
    write_image(src / "sub" / "b.png", photo_rgb[100:140, 200:236])
    (src / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    local = runner.invoke(
        app,
        [
            "upscale",
            str(src),
            "--scale",
            "2",
            "--engine",
            "onnx",
            "-r",
            "-q",
            "-o",
            str(tmp_path / "local"),
        ],
    )
    assert local.exit_code == 1
    args = [
        "upscale",
        f"file://{src}",
        "--scale",
        "2",
        "--engine",
        "onnx",
        "-r",
        "--json",
        "-q",
        "-o",
        f"file://{tmp_path / 'out'}",
        "--cluster",
        "ray",
        "--actors",
        "1",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert sorted(doc["outputs"]) == [
        f"file://{tmp_path / 'out' / 'a_x2.png'}",
        f"file://{tmp_path / 'out' / 'sub' / 'b_x2.png'}",
    ]
    assert [f["path"] for f in doc["failed"]] == [f"file://{src / 'bad.jpg'}"]
    for name in ("a_x2.png", "sub/b_x2.png"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    # A second run skips what exists; URL inputs without Ray are a usage error.
    again = json.loads(runner.invoke(app, args).stdout.strip().splitlines()[-1])
    assert again["processed"] == 0 and again["skipped"] == 2
    res = runner.invoke(app, ["upscale", f"file://{src}", "--scale", "2", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--cluster ray" in res.output


def test_each_ray_actor_loads_each_companion_model_once(
    tmp_path: Path, photo_rgb: np.ndarray
) -> None:
    """An actor keeps one model set for its life: over a folder of colour and gray PNGs and
    JPEGs it loads the SR model and each deblocking model (colour, gray) exactly once, as
    the local run does."""
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        crop = photo_rgb[40 * i : 40 * i + 40, 48:104]
        write_image(src / f"c{i}.png", crop)
        write_image(src / f"g{i}.png", crop[..., 1])
        cv2.imwrite(str(src / f"cj{i}.jpg"), crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 40])
        cv2.imwrite(str(src / f"gj{i}.jpg"), crop[..., 1], [cv2.IMWRITE_JPEG_QUALITY, 40])
    common = ["upscale", str(src), "--scale", "2", "--engine", "onnx", "--json", "-q"]
    docs = {}
    for where, extra in (("local", []), ("ray", ["--cluster", "ray", "--actors", "1"])):
        res = runner.invoke(app, [*common, "-o", str(tmp_path / where), *extra])
        assert res.exit_code == 0, res.output
        docs[where] = json.loads(res.stdout.strip().splitlines()[-1])
    for doc in docs.values():
        assert doc["processed"] == 8 and len(doc["deblocked"]) == 4
        names = [Path(p).name for p in doc["loaded"]]
        assert sorted(names) == sorted(set(names)), names  # nothing loaded twice
        assert names[0] == "sr-x2.safetensors"
        assert {"deblock-fast.safetensors", "deblock-gray-fast.safetensors"} <= set(names)
    for name in ("c0_x2.png", "gj1_x2.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
