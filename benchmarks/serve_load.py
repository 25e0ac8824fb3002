"""Load test of `scn serve`: N concurrent clients x M requests of one image, on loopback.

    python benchmarks/serve_load.py                       # starts `scn serve --fast` itself
    python benchmarks/serve_load.py --clients 8 --requests 25 --workers 2
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --token T   # a running one

Each client posts a synthetic photo-like WxH PNG (default 512x512) to /v1/upscale?scale=2
with fast=true, one request after the other. Reported: responses by status, throughput
(output MP/s and requests/s over the run's wall time, 200s only), p50 / p95 latency, the
server's resident memory (its /metrics) after the first 10 responses and after the run,
and `scn bench --size HxW` MP/s for the same model, engine and precision, taken before the
server starts and after it stopped (with --url: on this machine, while the server is idle),
with the ratio to their mean: on a shared machine, one bench run alone varied by 20% today.
Bounded: at most --requests per client and --max-seconds in all. One JSON object on stdout
(--json-file: also a file).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
#: Responses after which the server's first memory reading is taken.
RSS_AFTER = 10


def photo_like(height: int, width: int) -> bytes:
    """A deterministic photo-like PNG (smooth shading plus grain), as `scn bench` makes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 127 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    grain = np.random.default_rng(1).normal(0, 12, (height, width, 3))
    pixels = np.clip(base[..., None] + grain, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int | None, queue: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scn_deploy.cli", "serve", "--fast", "--port", str(port)]
    cmd += ["--queue", str(queue)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(client, url: str, seconds: float = 300.0) -> None:
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if client.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not get ready in {seconds:.0f} s")


def resident_mb(client, url: str) -> float | None:
    text = client.get(f"{url}/metrics").text
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1]) / 2**20
    return None


def bench_mp_per_s(model: str, engine: str, precision: str, size: str) -> float:
    cmd = [sys.executable, "-m", "scn_deploy.cli", "bench", "--model", model, "--size", size]
    cmd += ["--engine", engine, "--precision", precision, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout)["image"]["mp_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start `scn serve --fast`)")
    parser.add_argument("--token", default=os.environ.get("SCN_TOKEN"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="per client")
    parser.add_argument("--size", default="512x512", help="HxW of the posted image")
    parser.add_argument("--workers", type=int, help="for the server this starts")
    parser.add_argument("--queue", type=int, default=16, help="for the server this starts")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--no-bench", action="store_true", help="skip the scn bench reference")
    parser.add_argument("--json-file", type=Path)
    args = parser.parse_args()

    import httpx

    height, width = (int(v) for v in args.size.lower().split("x"))
    image = photo_like(height, width)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    before = None
    if not args.no_bench:
        before = bench_mp_per_s("sr-x2-fast", "auto", "auto", args.size)
    server = None
    url = args.url
    if url is None:
        port = free_port()
        server = start_server(port, args.workers, args.queue)
        url = f"http://127.0.0.1:{port}"
    control = httpx.Client(headers=headers, timeout=60)
    try:
        wait_ready(control, url)
        info = control.get(f"{url}/v1/info").json()
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        served: dict[str, str] = {}
        lock = threading.Lock()
        rss: dict[str, float | None] = {}
        deadline = time.monotonic() + args.max_seconds

        def client_loop() -> None:
            with httpx.Client(headers=headers, timeout=args.max_seconds) as client:
                for _ in range(args.requests):
                    if time.monotonic() > deadline:
                        return
                    started = time.perf_counter()
                    response = client.post(f"{url}/v1/upscale?scale=2&fast=true", content=image)
                    seconds = time.perf_counter() - started
                    with lock:
                        statuses[response.status_code] += 1
                        if response.status_code == 200:
                            latencies.append(seconds)
                            served.setdefault("model", response.headers["x-scn-model"])
                            served.setdefault("engine", response.headers["x-scn-engine"])
                            served.setdefault("precision", response.headers["x-scn-precision"])
                        first_rss = sum(statuses.values()) == RSS_AFTER
                    if first_rss:
                        rss["after_10"] = resident_mb(control, url)
                    if response.status_code == 429:
                        time.sleep(float(response.headers.get("retry-after", "1")))

        threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        rss["after_run"] = resident_mb(control, url)
    finally:
        control.close()
        if server is not None:
            server.terminate()
            server.wait(30)
    ok = statuses.get(200, 0)
    out_mp = height * width * 4 / 1e6
    report: dict[str, object] = {
        "url": url,
        "workers": info["workers"],
        "queue": info["queue"],
        "clients": args.clients,
        "requests_per_client": args.requests,
        "size": args.size,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "wall_seconds": round(wall, 2),
        "requests_per_s": round(ok / wall, 3),
        "mp_per_s": round(ok * out_mp / wall, 3),
        "p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "p95_seconds": (
            round(statistics.quantiles(latencies, n=20)[18], 3) if len(latencies) >= 20 else None
        ),
        "rss_mb_after_10": rss.get("after_10"),
        "rss_mb_after_run": rss.get("after_run"),
        **served,
    }
    if before is not None and served:
        after = bench_mp_per_s(served["model"], served["engine"], served["precision"], args.size)
        bench = (before + after) / 2
        report["bench_mp_per_s_before"] = round(before, 3)
        report["bench_mp_per_s_after"] = round(after, 3)
        report["bench_mp_per_s"] = round(bench, 3)
        report["ratio_to_bench"] = round(float(report["mp_per_s"]) / bench, 3)  # type: ignore[arg-type]
    text = json.dumps(report)
    print(text)
    if args.json_file is not None:
        args.json_file.write_text(text + "\n")


if __name__ == "__main__":
    main()
