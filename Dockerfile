# scn-deploy runtime image: ONNX Runtime and OpenVINO + the ONNX zoo from export/, no PyTorch,
# no compilers.
#
#   docker build -t scn-deploy .                                   # CPU, from the registries
#   docker build --build-arg BASE=scn-base:local --network none .  # offline, from ./wheelhouse
#   docker build --build-arg GPU=1 \
#     --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 -t scn-deploy:cuda .
#
# When the build context holds wheelhouse/scn_deploy-*.whl (the project's wheel and its runtime
# dependencies for the base image's Python), installation is offline (--no-index) from those
# wheels only; otherwise pip installs from the package registry.
# EXTRAS (default "openvino,serve,video": the fastest CPU engine, bf16 on CPUs with
# AVX512-BF16 / AMX, `scn serve`'s HTTP stack, and video files through PyAV) are the package
# extras installed; EXTRAS="" gives an ONNX Runtime-only image that reads images only, without
# the service.
#
#   docker run -p 8000:8000 -e SCN_TOKEN=... scn-deploy serve --host 0.0.0.0
# GPU=1 (the CUDA image for GPU runners) swaps onnxruntime for onnxruntime-gpu (its CUDA
# provider) and adds TensorRT with the CUDA runtime bindings (cuda-python) that
# `--engine tensorrt` keeps its buffers with (no PyTorch in the image); run it with
# `docker run --gpus all ... --device cuda`. Offline GPU builds need those wheels in wheelhouse/.
# A base without Python (the CUDA images) gets python3 (+ venv to build) from its package
# manager. The install runs in a build stage, so the wheelhouse never reaches a layer of the
# final image: only the virtual environment is copied over.
ARG BASE=python:3.11.10-slim-bookworm

FROM ${BASE} AS build
ARG GPU=0
ARG EXTRAS=openvino,serve,video
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DEBIAN_FRONTEND=noninteractive
COPY wheelhouse/ /tmp/wheelhouse/
COPY pyproject.toml README.md /tmp/src/
COPY scn_deploy /tmp/src/scn_deploy
RUN set -eu; \
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/scn/venv; \
    pip=/opt/scn/venv/bin/pip; \
    if ls /tmp/wheelhouse/scn_deploy-*.whl >/dev/null 2>&1; then \
        find="--no-index --find-links /tmp/wheelhouse"; src=scn-deploy; \
    else \
        find=""; src=/tmp/src; \
    fi; \
    if [ -n "$EXTRAS" ]; then src="$src[$EXTRAS]"; fi; \
    $pip install $find "$src"; \
    if [ "$GPU" = 1 ]; then \
        $pip uninstall -y onnxruntime; \
        $pip install $find "onnxruntime-gpu>=1.18" "tensorrt-cu12>=10" "cuda-python>=12"; \
    fi

FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    DEBIAN_FRONTEND=noninteractive
RUN set -eu; \
    if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends python3 && \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    (useradd --create-home --uid 10001 scn 2>/dev/null || \
     (echo 'scn:x:10001:10001::/home/scn:/bin/sh' >> /etc/passwd && mkdir -p /home/scn && chown 10001 /home/scn))
COPY --from=build /opt/scn/venv /opt/scn/venv
COPY models/ /opt/scn/models/
COPY export/ /opt/scn/export/
ENV PATH=/opt/scn/venv/bin:$PATH \
    SCN_MODELS=/opt/scn/models \
    SCN_EXPORT=/opt/scn/export \
    HOME=/home/scn
USER 10001
WORKDIR /data
EXPOSE 8000
ENTRYPOINT ["scn"]
CMD ["--help"]
