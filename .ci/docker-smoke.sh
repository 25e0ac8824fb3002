#!/usr/bin/env bash
# Builds the runtime Docker image offline and runs it for real (issue: Docker image for CI).
#  1. installs docker.io + debootstrap when missing, starts dockerd (no bridge, no iptables);
#  2. builds a local Debian bookworm base image (debootstrap) and a wheelhouse on the host;
#  3. docker build --network none from that base and wheelhouse;
#  4. runs the image on a folder with a good image, a short video (made here with PyAV), a
#     corrupt image and a non-image, and checks outputs, exit code 1, JSON on stdout (the
#     video's frames), non-root user, and that torch is absent;
#  5. runs `serve --host 0.0.0.0` in a container, posts the good image from inside it (dockerd
#     has no bridge: no published ports here), checks the PNG, a 4xx for the corrupt one, and
#     that SIGTERM stops it with exit code 0;
#  6. stops dockerd.
# Skips (exit 0, with a message) only when Docker cannot be installed or started here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/scn-docker.XXXXXX)
IMAGE=scn-deploy:ci
BASE=scn-base:local
DOCKERD_PID=""
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then kill "$DOCKERD_PID" 2>/dev/null || true; wait "$DOCKERD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
say() { echo "[docker-smoke] $*"; }
skip() { say "SKIPPED: $*"; exit 0; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing docker.io and debootstrap"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null) \
    || skip "cannot install docker.io/debootstrap on this machine"
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  dockerd --bridge=none --iptables=false >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log"; skip "dockerd did not start"; }
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  say "building the local base image $BASE with debootstrap"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$WORK/rootfs" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$WORK/rootfs"
fi

say "building the wheelhouse (project + core runtime dependencies)"
rm -rf wheelhouse/*.whl
python3 -m pip wheel --quiet -w wheelhouse ".[openvino,serve,video]" 2>&1 | grep -v "^WARNING: Location" || true
ls wheelhouse/scn_deploy-*.whl >/dev/null

say "docker build --network none"
start=$(date +%s)
docker build --quiet --network none --build-arg BASE="$BASE" -t "$IMAGE" . >/dev/null
say "built in $(( $(date +%s) - start )) s; image size $(( $(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000 )) MB"

mkdir -p "$WORK/data/in"
cp examples/astronaut.png "$WORK/data/in/good.png"
head -c 2000 examples/astronaut.png >"$WORK/data/in/corrupt.png"
echo "not an image" >"$WORK/data/in/notes.txt"
chmod -R a+rwX "$WORK/data"
# The clip is made with the image's own PyAV (the host's Python may have none).
docker run --rm -i --network none -v "$WORK/data:/data" -v "$PWD/tests:/tests:ro" \
  --entrypoint python3 "$IMAGE" - <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "/tests")
from video_clips import Clip, make_clip

make_clip(Path("/data/in/clip.mp4"), Clip(frames=6, audio=True))
PY

set +e
docker run --rm --network none -v "$WORK/data:/data" "$IMAGE" \
  upscale /data/in -o /data/out --scale 2 --json >"$WORK/stdout.json" 2>"$WORK/stderr.log"
code=$?
set -e
say "exit code $code"
cat "$WORK/stderr.log" | tail -5
python3 - "$WORK" "$code" <<'PY'
import json, sys, pathlib
work, code = pathlib.Path(sys.argv[1]), int(sys.argv[2])
lines = [l for l in (work / "stdout.json").read_text().splitlines() if l.strip()]
assert len(lines) == 1, f"stdout must be one JSON line, got {lines!r}"
summary = json.loads(lines[0])
assert code == 1, f"exit code {code}, expected 1 (one corrupt input)"
assert summary["processed"] == 2, summary
assert [v["frames"] for v in summary["videos"]] == [6], summary
assert summary["engine"] == "openvino", summary  # the image's fastest CPU engine
assert [f["path"].endswith("corrupt.png") for f in summary["failed"]] == [True], summary
outs = sorted(p.name for p in (work / "data" / "out").iterdir())
assert outs == ["clip_x2.mp4", "good_x2.png"], outs
print("[docker-smoke] JSON summary, outputs and exit code as expected")
PY
uid=$(docker run --rm --network none --entrypoint id "$IMAGE" -u)
[ "$uid" != "0" ] || { say "container runs as root"; exit 1; }
say "container user id $uid (non-root)"
if docker run --rm --network none --entrypoint python3 "$IMAGE" -c "import torch" 2>/dev/null; then
  say "torch is importable inside the image"; exit 1
fi
say "import torch fails inside the image, as intended"

say "scn serve in a container"
cid=$(docker run -d --network none -v "$WORK/data:/data" "$IMAGE" serve --host 0.0.0.0 --fast)
docker exec -i "$cid" python3 - <<'PY'
import json, time, urllib.error, urllib.request
base = "http://127.0.0.1:8000"
for _ in range(300):
    try:
        if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
            break
    except (urllib.error.URLError, OSError):
        time.sleep(0.5)
else:
    raise SystemExit("the service did not get ready")
def post(name):
    data = open(f"/data/in/{name}", "rb").read()
    request = urllib.request.Request(base + "/v1/upscale?scale=2", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
status, headers, body = post("good.png")
assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n", (status, body[:200])
assert headers["X-Scn-Model"] == "sr-x2-fast", dict(headers)
status, _, body = post("corrupt.png")
assert status == 400 and "truncated" in json.loads(body)["error"], (status, body)
print("[docker-smoke] serve: PNG back for the good image, 400 for the corrupt one")
PY
docker kill --signal TERM "$cid" >/dev/null
code=$(docker wait "$cid")
docker rm "$cid" >/dev/null
[ "$code" = "0" ] || { say "serve exited with $code after SIGTERM"; exit 1; }
say "serve stopped on SIGTERM with exit code 0"
say "OK"
