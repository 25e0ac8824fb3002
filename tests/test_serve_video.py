"""Videos in `scn serve`: a job restores a posted clip as `scn upscale clip.mp4` does (same
frames, audio kept, same container), with frame progress; the synchronous routes and bad
videos get 4xx errors naming the problem."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient

from scn_deploy.serve import ServeConfig, create_app
from scn_deploy.video.formats import sniff_container
from tests.test_serve import FAST_X2, wait_ready
from tests.video_clips import Clip, decoded_rgb, make_clip, packets_of


@pytest.fixture(scope="module")
def client():
    config = ServeConfig(workers=1, queue=4, fast=True, preload=FAST_X2)
    with TestClient(create_app(config)) as c:
        wait_ready(c)
        yield c


def run_job(client: TestClient, query: str, body: bytes) -> tuple[dict, list[float]]:
    submitted = client.post(f"/v1/jobs/{query}", content=body)
    assert submitted.status_code == 202, submitted.text
    job, seen = submitted.json(), []
    end = time.monotonic() + 120
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < end, job
        time.sleep(0.02)
        job = client.get(f"/v1/jobs/{job['id']}").json()
        seen.append(job["progress"])
    return job, seen


def test_video_job_gives_the_frames_scn_upscale_writes(client, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    source = make_clip(tmp_path / "in" / "clip.mp4", Clip(frames=24, gop=6, audio=True))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scn_deploy.cli", "upscale", str(source.parent), "-o", str(out)]
    done = subprocess.run(
        [*cmd, "--scale", "2", "--fast", "-q"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    job, seen = run_job(client, "upscale?scale=2&fast=true", source.read_bytes())
    assert job["status"] == "done", job
    assert job["frames"] == 24 and (job["width"], job["height"]) == (128, 96)
    assert any(0 < p < 1 for p in seen), seen  # frame progress while it ran
    result = client.get(job["result"])
    assert result.status_code == 200
    assert result.headers["content-type"] == "video/mp4"
    assert result.headers["x-scn-frames"] == "24"
    assert result.headers["content-disposition"] == 'inline; filename="video_x2.mp4"'
    served = tmp_path / "served.mp4"
    served.write_bytes(result.content)
    expected = decoded_rgb(out / "clip_x2.mp4")
    got = decoded_rgb(served)
    assert len(got) == len(expected) == 24
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert packets_of(served, "audio") == packets_of(source, "audio")  # audio copied


def test_matroska_keeps_its_container(client, tmp_path: Path) -> None:
    source = make_clip(tmp_path / "clip.mkv", Clip(frames=4, container="matroska"))
    assert sniff_container(source.read_bytes()) == ".mkv"
    job, _ = run_job(client, "upscale?scale=2&fast=true", source.read_bytes())
    assert job["status"] == "done", job
    result = client.get(job["result"])
    assert result.headers["content-type"] == "video/x-matroska"
    assert sniff_container(result.content) == ".mkv"


def test_video_errors_are_4xx_naming_the_problem(client, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", Clip(frames=4)).read_bytes()
    direct = client.post("/v1/upscale?scale=2&fast=true", content=clip)
    assert direct.status_code == 400 and "/v1/jobs/upscale" in direct.json()["error"]
    formatted = client.post("/v1/jobs/upscale?scale=2&fast=true&format=jpg", content=clip)
    assert formatted.status_code == 400 and "container" in formatted.json()["error"]
    no_sigma = client.post("/v1/jobs/denoise?fast=true", content=clip)
    assert no_sigma.status_code == 400 and "sigma" in no_sigma.json()["error"]
    truncated = client.post("/v1/jobs/upscale?scale=2&fast=true", content=clip[: len(clip) // 3])
    assert truncated.status_code == 400, truncated.text
    assert "upload" in truncated.json()["error"] and "/tmp" not in truncated.json()["error"]
    fake = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200
    assert client.post("/v1/jobs/upscale?scale=2", content=fake).status_code == 400
    ok, _ = run_job(client, "upscale?scale=2&fast=true", clip)  # the service goes on
    assert ok["status"] == "done"


def test_sniff_container_reads_bytes_not_names() -> None:
    assert sniff_container(b"\x00\x00\x00\x20ftypqt  " + b"\x00" * 8) == ".mov"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == ".avi"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x9f\x42\x82\x84webm") == ".webm"
    assert sniff_container(b"\x89PNG\r\n\x1a\n") is None
    assert sniff_container(b"") is None
