"""`scn serve`: the HTTP API in process (Starlette's TestClient), one real uvicorn process
for SIGTERM, and the web page in headless Chromium (skipped without it).

The images are small and the models the fast tier's, so that the file stays quick on 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient

from scn_deploy.serve import ServeConfig, create_app
from scn_deploy.serve.workers import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
FAST_X2 = (("sr", 2),)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo_crop() -> np.ndarray:
    """A crop of a real photograph (scikit-image's astronaut), Set5-like content."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[60:156, 150:246])


@pytest.fixture(scope="module")
def photo_png(photo_crop: np.ndarray) -> bytes:
    return png_bytes(photo_crop)


def wait_ready(client: TestClient, seconds: float = 120.0) -> None:
    end = time.monotonic() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < end, client.get("/readyz").json()
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client():
    config = ServeConfig(workers=1, queue=4, fast=True, preload=FAST_X2, max_pixels=4_000_000)
    with TestClient(create_app(config)) as c:
        wait_ready(c)
        yield c


@pytest.fixture
def blocked_pool(client: TestClient):
    """The worker held at its next request until the test releases it; counts the requests
    the worker actually restores."""
    pool: WorkerPool = client.app.state.service.pool
    release = threading.Event()
    ran: list[object] = []
    original = pool._restore

    def held(models, work):
        ran.append(work)
        release.wait(30)
        return original(models, work)

    pool._restore = held
    yield release, ran
    release.set()
    pool._restore = original


def test_upscale_matches_scn_upscale(client: TestClient, photo_crop, tmp_path: Path) -> None:
    """A photo (PNG) and its JPEG posted for x2 fast give the bytes `scn upscale` writes."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo_crop).save(folder / "photo.png")
    Image.fromarray(photo_crop).save(folder / "jpeg.jpg", quality=40)  # another output name
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scn_deploy.cli", "upscale", str(folder), "-o", str(out)]
    done = subprocess.run(
        [*cmd, "--scale", "2", "--fast", "-q"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    for name in ("photo.png", "jpeg.jpg"):
        response = client.post(
            "/v1/upscale?scale=2&fast=true", content=(folder / name).read_bytes()
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-scn-model"] == "sr-x2-fast"
        assert response.headers["content-disposition"] == 'inline; filename="image_x2.png"'
        for header in ("x-scn-engine", "x-scn-precision", "x-scn-seconds"):
            assert response.headers[header]
        expected = (out / f"{Path(name).stem}_x2.png").read_bytes()
        assert response.content == expected, name
    jpeg = client.post("/v1/upscale?scale=2&fast=true", content=(folder / "jpeg.jpg").read_bytes())
    assert jpeg.headers["x-scn-deblocked-quality"] == "40"


def test_a_jpeg_names_the_model_that_upscaled_it(photo_crop) -> None:
    """The standard tier upscales a deblocked JPEG of quality 10-85 with sr-x2-jpeg (the
    zoo's JPEG model) and says so; a q95 JPEG goes to sr-x2."""
    config = ServeConfig(workers=1, preload=(("sr", 2),))
    with TestClient(create_app(config)) as c:
        wait_ready(c)
        for quality, model in ((40, "sr-x2-jpeg"), (95, "sr-x2")):
            buf = io.BytesIO()
            Image.fromarray(photo_crop).save(buf, "JPEG", quality=quality)
            response = c.post("/v1/upscale?scale=2", content=buf.getvalue())
            assert response.status_code == 200, response.text
            assert response.headers["x-scn-model"] == model, quality
            assert response.headers["x-scn-deblocked-quality"] == str(quality)


def test_multipart_upload_and_format(client: TestClient, photo_png: bytes) -> None:
    raw = client.post("/v1/upscale?scale=2&fast=true", content=photo_png)
    files = {"image": ("photo.png", photo_png, "image/png")}
    form = client.post("/v1/upscale?scale=2&fast=true", files=files)
    assert form.status_code == 200 and form.content == raw.content
    jpg = client.post("/v1/upscale?scale=2&fast=true&format=jpg&jpeg_quality=80", content=photo_png)
    assert jpg.status_code == 200 and jpg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpg.content)).size == (192, 192)


def test_gray_alpha_and_16_bit_keep_their_layout(client: TestClient, photo_crop) -> None:
    """Gray stays gray, alpha is kept (resized), 16 bits stay 16 bits, as in the files."""
    gray = photo_crop[:40, :40, 1]
    rgba = np.dstack([photo_crop[:40, :40], np.full((40, 40), 200, np.uint8)])
    deep = photo_crop[:40, :40, 0].astype(np.uint16) * 257
    results = {}
    for pixels, mode in ((gray, "L"), (rgba, "RGBA"), (deep, "I;16")):
        response = client.post("/v1/upscale?scale=2&fast=true", content=png_bytes(pixels))
        assert response.status_code == 200, response.text
        results[mode] = Image.open(io.BytesIO(response.content))
        assert results[mode].size == (80, 80) and results[mode].mode == mode
    alpha = np.asarray(results["RGBA"])[..., 3].astype(int)
    assert np.abs(alpha - 200).max() <= 1


def bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("route", "body", "status", "words"),
    [
        ("upscale?scale=2", b"this is text, not an image", 400, "not an image"),
        ("upscale?scale=2", "truncated", 400, "truncated"),
        ("upscale?scale=2", "1x1", 400, "smallest size"),
        ("upscale?scale=2", bomb_header(20000, 20000), 413, "above the limit"),
        ("upscale?scale=2&colour=red", "photo", 400, "unknown parameter colour"),
        ("upscale?scale=abc", "photo", 400, "scale must be an integer"),
        ("upscale?scale=5", "photo", 400, "scale must be in 2..4"),
        ("upscale?scale=2&fast=maybe", "photo", 400, "fast must be true or false"),
        ("upscale?scale=2&model=../../etc/passwd", "photo", 400, "installed zoo models"),
        ("upscale?scale=2&format=gif", "photo", 400, "format must be"),
        ("denoise?sigma=500", "photo", 400, "sigma must be in 0..255"),
        ("denoise", "photo", 400, "give sigma"),
        ("deblock?quality=0", "photo", 400, "quality must be in 1..100"),
        ("deblock", "photo", 400, "not a JPEG"),
        ("sharpen", "photo", 404, "no route"),
        ("upscale?scale=2", b"", 400, "no image"),
    ],
)
def test_hostile_input_gets_a_json_error_and_the_server_goes_on(
    client: TestClient, photo_png: bytes, route: str, body, status: int, words: str
) -> None:
    data = (
        {
            "truncated": photo_png[: len(photo_png) // 2],
            "1x1": png_bytes(np.zeros((1, 1, 3), np.uint8)),
            "photo": photo_png,
        }.get(body, body)
        if isinstance(body, str)
        else body
    )
    response = client.post(f"/v1/{route}", content=data)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and words in error["error"], error
    ok = client.post("/v1/upscale?scale=2&fast=true", content=photo_png)
    assert ok.status_code == 200


def test_oversize_body_is_413() -> None:
    config = ServeConfig(workers=1, fast=True, preload=FAST_X2, max_body_bytes=1000)
    with TestClient(create_app(config)) as c:
        response = c.post("/v1/upscale?scale=2", content=b"x" * 5000)
        assert response.status_code == 413 and "limit of 1,000" in response.json()["error"]
        files = {"image": ("a.png", b"x" * 5000, "image/png")}
        assert c.post("/v1/upscale?scale=2", files=files).status_code == 413


def test_token_required() -> None:
    config = ServeConfig(workers=1, fast=True, preload=FAST_X2, token="s3cret")
    with TestClient(create_app(config)) as c:
        wait_ready(c)  # /readyz and /healthz are open to probes
        assert c.get("/healthz").status_code == 200
        image = png_bytes(np.full((16, 16, 3), 128, np.uint8))
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = c.post("/v1/upscale?scale=2", content=image, headers=headers)
            assert response.status_code == 401 and "Bearer" in response.json()["error"]
            assert response.headers["www-authenticate"] == "Bearer"
        assert c.get("/metrics").status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert c.post("/v1/upscale?scale=2", content=image, headers=good).status_code == 200


def test_queue_full_is_429_with_retry_after(client: TestClient, photo_png, blocked_pool) -> None:
    release, ran = blocked_pool
    ids = []
    for _ in range(1 + 4):  # one held by the worker, four in the queue
        response = client.post("/v1/jobs/upscale?scale=2&fast=true", content=photo_png)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
        while not ran:  # the first is taken by the worker before the queue fills
            time.sleep(0.01)
    full = client.post("/v1/upscale?scale=2&fast=true", content=photo_png)
    assert full.status_code == 429 and "queue is full" in full.json()["error"]
    assert int(full.headers["retry-after"]) >= 1
    assert "scn_queue_depth 4" in client.get("/metrics").text
    release.set()
    for job_id in ids:
        while client.get(f"/v1/jobs/{job_id}").json()["status"] != "done":
            time.sleep(0.02)


def test_jobs_status_progress_result_and_expiry(photo_png: bytes) -> None:
    config = ServeConfig(workers=1, fast=True, preload=FAST_X2, job_ttl=0.5)
    with TestClient(create_app(config)) as c:
        wait_ready(c)
        direct = c.post("/v1/upscale?scale=2", content=photo_png)
        submitted = c.post("/v1/jobs/upscale?scale=2", content=photo_png)
        assert submitted.status_code == 202
        job = submitted.json()
        assert submitted.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "running") and job["eta_seconds"] is not None
        while job["status"] in ("queued", "running"):
            time.sleep(0.02)
            job = c.get(f"/v1/jobs/{job['id']}").json()
        assert job["status"] == "done" and job["progress"] == 1.0
        assert job["tiles"]["done"] == job["tiles"]["total"] >= 1
        result = c.get(job["result"])
        assert result.status_code == 200 and result.content == direct.content
        time.sleep(0.7)  # past the TTL
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 404
        assert c.get("/v1/jobs/nonsense/result").status_code == 404


def test_large_job_results_wait_in_a_file_removed_with_the_job(photo_png: bytes) -> None:
    config = ServeConfig(workers=1, fast=True, preload=FAST_X2)
    with TestClient(create_app(config)) as c:
        wait_ready(c)
        jobs = c.app.state.service.jobs
        jobs.spill_bytes = 1000  # every result here is larger
        direct = c.post("/v1/upscale?scale=2", content=photo_png)
        ids = []
        for _ in range(2):
            job = c.post("/v1/jobs/upscale?scale=2", content=photo_png).json()
            while job["status"] in ("queued", "running"):
                time.sleep(0.02)
                job = c.get(f"/v1/jobs/{job['id']}").json()
            ids.append(job["id"])
        files = [jobs.get(i).result_file for i in ids]
        assert all(f is not None and f.stat().st_size == len(direct.content) for f in files)
        assert jobs.get(ids[0]).result.body == b""  # not held in memory
        result = c.get(f"/v1/jobs/{ids[0]}/result")
        assert result.status_code == 200 and result.content == direct.content
        assert result.headers["x-scn-model"] == "sr-x2-fast"
        c.delete(f"/v1/jobs/{ids[0]}")
        assert not files[0].exists() and files[1].exists()
    assert not files[1].exists() and not files[1].parent.exists()  # removed at shutdown


def test_job_delete_cancels_a_queued_job(client: TestClient, photo_png, blocked_pool) -> None:
    release, ran = blocked_pool
    first = client.post("/v1/jobs/upscale?scale=2&fast=true", content=photo_png).json()
    while not ran:
        time.sleep(0.01)
    second = client.post("/v1/jobs/upscale?scale=2&fast=true", content=photo_png).json()
    assert second["status"] == "queued" and second["queue_position"] == 0
    assert client.delete(f"/v1/jobs/{second['id']}").json()["status"] == "deleted"
    release.set()
    while client.get(f"/v1/jobs/{first['id']}").json()["status"] != "done":
        time.sleep(0.02)
    time.sleep(0.1)
    assert len(ran) == 1  # the deleted job never ran


def test_disconnected_client_is_not_run(client: TestClient, photo_png, blocked_pool) -> None:
    """A request whose client goes away while it is queued is dropped, not restored."""
    release, ran = blocked_pool
    holder = client.post("/v1/jobs/upscale?scale=2&fast=true", content=photo_png).json()
    while not ran:
        time.sleep(0.01)
    sent: list[dict] = []

    async def call() -> None:
        messages = [{"type": "http.request", "body": photo_png, "more_body": False}]
        leaves = time.monotonic() + 0.3  # the client leaves while the request waits

        async def receive() -> dict:
            if messages:
                return messages.pop(0)
            if time.monotonic() < leaves:
                await asyncio.sleep(leaves - time.monotonic())
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/upscale",
            "raw_path": b"/v1/upscale",
            "query_string": b"scale=2&fast=true",
            "headers": [(b"content-length", str(len(photo_png)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "root_path": "",
            "state": {},
        }
        await client.app(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 499
    release.set()
    while client.get(f"/v1/jobs/{holder['id']}").json()["status"] != "done":
        time.sleep(0.02)
    time.sleep(0.2)
    assert len(ran) == 1  # only the job: the disconnected request was cancelled in the queue
    assert 'route="/v1/upscale",status="499"' in client.get("/metrics").text


def test_timeout_follows_measured_speed(photo_png: bytes) -> None:
    """With a margin far below 1, the deadline set from the measured speed after the first
    tile passes: 504 (before the other tiles run), and the server goes on."""
    from scn_deploy.restorer import RestoreOptions

    tiles = RestoreOptions(tile=64, extrapolate_level=True)
    config = ServeConfig(workers=1, fast=True, preload=FAST_X2, timeout_margin=1e-6, restore=tiles)
    with TestClient(create_app(config)) as c:
        wait_ready(c)
        pixels = np.zeros((256, 256, 3), np.uint8)
        response = c.post("/v1/upscale?scale=2", content=png_bytes(pixels))
        assert response.status_code == 504 and "measured speed" in response.json()["error"]
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/upscale?scale=2", content=png_bytes(pixels[:32, :32])).status_code == 200


def test_metrics_and_info(client: TestClient, photo_png: bytes) -> None:
    assert client.post("/v1/upscale?scale=2&fast=true", content=photo_png).status_code == 200
    text = client.get("/metrics").text
    for name in (
        'scn_requests_total{route="/v1/upscale",status="200"}',
        'scn_request_seconds_bucket{route="/v1/upscale",le="+Inf"}',
        "scn_request_seconds_sum",
        "scn_megapixels_restored_total",
        "scn_queue_depth",
        "scn_workers_busy",
        "scn_ready 1",
        "process_resident_memory_bytes",
    ):
        assert name in text, name
    (line,) = [ln for ln in text.splitlines() if ln.startswith("scn_megapixels_restored_total ")]
    megapixels = float(line.split()[1])
    assert megapixels >= 192 * 192 / 1e6
    info = client.get("/v1/info").json()
    assert info["tasks"] == ["upscale", "denoise", "deblock"] and "sr-x2-fast" in info["models"]


def test_page_is_self_contained(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    for external in ("http://", "https://", "//fonts", "<link"):
        assert external not in html, external
    for control in ('id="file"', 'id="task"', 'id="scale"', 'id="fast"', 'id="slider"'):
        assert control in html


def test_serve_help_lists_every_option() -> None:
    from typer.testing import CliRunner

    from scn_deploy.cli import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--host", "--port", "--token", "--workers", "--queue", "--max-pixels",
        "--max-body-bytes", "--fast", "--engine", "--precision", "--timeout-margin", "--job-ttl",
        "--tile", "--cluster", "--address", "--replicas", "--cpus-per-replica",
        "--gpus-per-replica",
    ):  # fmt: skip
        assert option in result.output, option


def test_cluster_ray_without_ray_says_what_to_install(monkeypatch) -> None:
    from typer.testing import CliRunner

    from scn_deploy.cli import app

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    result = CliRunner().invoke(app, ["serve", "--cluster", "ray"])
    assert result.exit_code == 1
    assert "pip install 'scn-deploy[ray]'" in result.output


def test_ray_options_need_cluster_ray() -> None:
    from typer.testing import CliRunner

    from scn_deploy.cli import app

    result = CliRunner().invoke(app, ["serve", "--replicas", "2"])
    assert result.exit_code == 2
    assert "--cluster ray" in result.output
    both = CliRunner().invoke(app, ["serve", "--cluster", "ray", "--workers", "2"])
    assert both.exit_code == 2 and "--replicas" in both.output


# -- a real server ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scn_deploy.cli", "serve", "--port", str(port), "--fast"]
    return subprocess.Popen(
        [*cmd, "--workers", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
    )


def wait_http_ready(port: int, proc: subprocess.Popen, seconds: float = 180.0) -> None:
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not get ready")


def request_in_flight(url: str) -> tuple[threading.Thread, dict]:
    """A 512x512 x2 request posted from a thread; returns once a worker is restoring it.
    ``result["response"]`` holds its response when the thread ends."""
    import httpx

    image = png_bytes((np.random.default_rng(0).random((512, 512, 3)) * 255).astype(np.uint8))
    result: dict[str, httpx.Response] = {}

    def post() -> None:
        result["response"] = httpx.post(f"{url}/v1/upscale?scale=2", content=image, timeout=120)

    thread = threading.Thread(target=post)
    thread.start()
    while "scn_workers_busy 1" not in httpx.get(f"{url}/metrics", timeout=5).text:
        assert thread.is_alive(), "the request ended before SIGTERM"
        time.sleep(0.01)
    return thread, result


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_and_exits_0() -> None:
    import httpx

    port = free_port()
    proc = start_server(port)
    try:
        wait_http_ready(port, proc)
        url = f"http://127.0.0.1:{port}"
        thread, result = request_in_flight(url)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"{url}/healthz", timeout=5)
        thread.join(60)
        code = proc.wait(15)
        elapsed = time.monotonic() - sent
        response = result["response"]
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == (1024, 1024)
        assert code == 0 and elapsed < 10, (code, elapsed)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the web page in headless Chromium -------------------------------------------------------------
def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
    messages separated by NUL bytes on file descriptors 3 and 4), no client library."""

    def __init__(self, browser: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._events, events_write = os.pipe()
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{events_write}'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, browser, *flags, "about:blank"],
            pass_fds=(commands_read, events_write),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(events_write)
        self._buffer = b""
        self._next = 0
        self.session: str | None = None

    def call(self, method: str, timeout: float = 120.0, **params: object) -> dict:
        import json

        self._next += 1
        message: dict[str, object] = {"id": self._next, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    assert "error" not in reply, reply
                    return reply["result"]
            assert time.monotonic() < end, f"no reply to {method}"
            chunk = os.read(self._events, 1 << 20)
            assert chunk, "Chromium closed the pipe"
            self._buffer += chunk

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def evaluate(self, expression: str, timeout: float = 120.0) -> object:
        result = self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands)
        os.close(self._events)


@pytest.mark.slow
def test_web_page_in_headless_chromium(tmp_path: Path, photo_crop: np.ndarray) -> None:
    """In headless Chromium, the page restores a photo x2 through the job API (upload,
    progress), shows the before/after comparison and offers the PNG for download. The
    screenshot goes to docs/images/serve.png with SCN_UPDATE_SCREENSHOT=1."""
    import base64

    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed")
    port = free_port()
    proc = start_server(port)
    tools = None
    try:
        wait_http_ready(port, proc)
        tools = DevTools(browser, tmp_path / "profile")
        tools.open(f"http://127.0.0.1:{port}/")
        tools.call("Emulation.setDeviceMetricsOverride", width=900, height=940,
                   deviceScaleFactor=1, mobile=False)  # fmt: skip
        end = time.monotonic() + 60
        ready = "document.readyState === 'complete' && typeof selftest === 'function'"
        while not tools.evaluate(ready):
            assert time.monotonic() < end
            time.sleep(0.1)
        photo = base64.b64encode(png_bytes(photo_crop)).decode()
        verdict = tools.evaluate(f'selftest("{photo}")')
        assert verdict == "PASS", verdict
        shot = base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"])
        assert Image.open(io.BytesIO(shot)).size == (900, 940)
        if os.environ.get("SCN_UPDATE_SCREENSHOT") == "1":
            (ROOT / "docs" / "images" / "serve.png").write_bytes(shot)
    finally:
        if tools is not None:
            tools.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_the_server_caps_malloc_arenas_unless_the_environment_does(monkeypatch) -> None:
    """glibc's per-thread arenas grew the server by 10% over a load test before levelling
    off; two arenas kept it flat (benchmarks/serve_load.py): capped at start, unless the
    user's MALLOC_ARENA_MAX says otherwise."""
    import platform

    from scn_deploy.serve.app import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    if platform.libc_ver()[0] == "glibc":
        assert limit_malloc_arenas() is True
