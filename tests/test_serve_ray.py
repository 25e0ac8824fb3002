"""`scn serve --cluster ray`: the service as a Ray Serve application on a local Ray instance
(two engine replicas of one CPU each): same bytes as `scn upscale`, both replicas used, jobs
with progress, hostile input, and SIGTERM finishing the request in flight. Skipped without
Ray Serve (`pip install 'scn-deploy[ray]'`)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray.serve")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from tests.test_serve import free_port, png_bytes, request_in_flight  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40:200, 120:280])


@pytest.fixture(scope="module")
def ray_server():
    port = free_port()
    cmd = [sys.executable, "-m", "scn_deploy.cli", "serve", "--cluster", "ray", "--fast"]
    cmd += ["--port", str(port), "--replicas", "2", "--cpus-per-replica", "1", "--tile", "256"]
    # its own session: a signal for it must not reach the Ray processes it started
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < end, "the Ray Serve application did not get ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_ray_replicas_answer_the_bytes_scn_upscale_writes(ray_server, photo, tmp_path) -> None:
    url, _ = ray_server
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "photo.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scn_deploy.cli", "upscale", str(folder), "-o", str(out)]
    done = subprocess.run([*cmd, "--scale", "2", "--fast", "-q"], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    expected = (out / "photo_x2.png").read_bytes()
    body = (folder / "photo.png").read_bytes()

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{url}/v1/upscale?scale=2&fast=true", content=body, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, range(6)))
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.content == expected
        assert response.headers["x-scn-model"] == "sr-x2-fast"
    hosts = {r.headers["x-scn-host"] for r in responses}
    assert len(hosts) == 2, hosts  # both engine replicas restored
    driver = {f"{os.uname().nodename}:{os.getpid()}"}
    assert not hosts & driver


def test_ray_job_reports_progress_and_returns_the_result(ray_server) -> None:
    url, _ = ray_server
    pixels = (np.random.default_rng(1).random((720, 960, 3)) * 255).astype(np.uint8)
    response = httpx.post(f"{url}/v1/jobs/upscale?scale=2&fast=true", content=png_bytes(pixels))
    assert response.status_code == 202, response.text
    job = response.json()["id"]
    seen = []
    end = time.monotonic() + 120
    while True:
        status = httpx.get(f"{url}/v1/jobs/{job}", timeout=10).json()
        seen.append(status["progress"])
        if status["status"] in ("done", "failed"):
            break
        assert time.monotonic() < end, status
        time.sleep(0.05)
    assert status["status"] == "done", status
    assert any(0 < p < 1 for p in seen), (status["tiles"], seen)  # progress from the replica
    result = httpx.get(f"{url}/v1/jobs/{job}/result", timeout=30)
    assert result.status_code == 200
    assert result.headers["x-scn-size"] == "1920x1440"


def test_ray_video_job_runs_on_a_replica(ray_server, tmp_path) -> None:
    pytest.importorskip("av")
    from tests.video_clips import Clip, make_clip

    url, _ = ray_server
    clip = make_clip(tmp_path / "clip.mp4", Clip(frames=12, audio=True)).read_bytes()
    response = httpx.post(f"{url}/v1/jobs/upscale?scale=2&fast=true", content=clip, timeout=60)
    assert response.status_code == 202, response.text
    job = response.json()["id"]
    end = time.monotonic() + 120
    while (status := httpx.get(f"{url}/v1/jobs/{job}", timeout=10).json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < end, status
        time.sleep(0.05)
    assert status["status"] == "done" and status["frames"] == 12, status
    result = httpx.get(f"{url}/v1/jobs/{job}/result", timeout=30)
    assert result.headers["content-type"] == "video/mp4"
    assert result.headers["x-scn-host"] != f"{os.uname().nodename}:{os.getpid()}"


def test_ray_deleted_job_stops_on_its_replica(ray_server, photo) -> None:
    url, _ = ray_server
    pixels = (np.random.default_rng(2).random((1440, 1920, 3)) * 255).astype(np.uint8)
    response = httpx.post(f"{url}/v1/jobs/upscale?scale=2&fast=true", content=png_bytes(pixels))
    job = response.json()["id"]
    end = time.monotonic() + 60
    while httpx.get(f"{url}/v1/jobs/{job}", timeout=10).json()["progress"] == 0:
        assert time.monotonic() < end
        time.sleep(0.05)
    deleted = time.monotonic()
    assert httpx.delete(f"{url}/v1/jobs/{job}", timeout=10).json()["status"] == "deleted"
    while "scn_workers_busy 0" not in httpx.get(f"{url}/metrics", timeout=5).text:
        assert time.monotonic() - deleted < 10, "the cancelled job still holds its worker"
        time.sleep(0.05)
    body = png_bytes(photo)

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{url}/v1/upscale?scale=2&fast=true", content=body, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(post, range(6)))
    assert all(r.status_code == 200 for r in responses)
    # the replica that ran the job takes requests again at once (a replica runs one request
    # at a time: had the job gone on there, about 10 s more, the other would answer all)
    assert len({r.headers["x-scn-host"] for r in responses}) == 2
    assert time.monotonic() - deleted < 8


def test_ray_bad_input_is_a_4xx_and_the_service_goes_on(ray_server, photo) -> None:
    url, _ = ray_server
    for body, query, status in (
        (b"not an image", "scale=2", 400),
        (png_bytes(photo)[:200], "scale=2", 400),
        (png_bytes(photo), "scale=5", 400),
    ):
        response = httpx.post(f"{url}/v1/upscale?{query}&fast=true", content=body, timeout=60)
        assert response.status_code == status, response.text
        assert response.json()["error"]
    ok = httpx.post(f"{url}/v1/upscale?scale=2&fast=true", content=png_bytes(photo), timeout=60)
    assert ok.status_code == 200


def test_ray_sigterm_finishes_the_request_in_flight_and_exits_0(ray_server) -> None:
    url, proc = ray_server
    thread, result = request_in_flight(url)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    thread.join(60)
    code = proc.wait(30)
    elapsed = time.monotonic() - sent
    response = result["response"]
    assert response.status_code == 200, response.text
    assert code == 0 and elapsed < 10, (code, elapsed)
