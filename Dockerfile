# scn-deploy runtime image: ONNX Runtime (CPU) + the ONNX zoo from export/, no PyTorch, no compilers.
#
#   docker build -t scn-deploy .                                   # from the registries
#   docker build --build-arg BASE=scn-base:local --network none .  # offline, from ./wheelhouse
#
# When the build context holds wheelhouse/*.whl (the project's wheel and its runtime
# dependencies for the base image's Python), installation is offline (--no-index) from those
# wheels only; otherwise pip installs from the package registry.
ARG BASE=python:3.11.10-slim-bookworm

FROM ${BASE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY wheelhouse/ /tmp/wheelhouse/
COPY pyproject.toml README.md /tmp/src/
COPY scn_deploy /tmp/src/scn_deploy
RUN set -eu; \
    python3 -m venv /opt/scn/venv; \
    if ls /tmp/wheelhouse/scn_deploy-*.whl >/dev/null 2>&1; then \
        /opt/scn/venv/bin/pip install --no-index --find-links /tmp/wheelhouse scn-deploy; \
    else \
        /opt/scn/venv/bin/pip install /tmp/src; \
    fi; \
    rm -rf /tmp/wheelhouse /tmp/src; \
    (useradd --create-home --uid 10001 scn 2>/dev/null || \
     (echo 'scn:x:10001:10001::/home/scn:/bin/sh' >> /etc/passwd && mkdir -p /home/scn && chown 10001 /home/scn))
COPY models/ /opt/scn/models/
COPY export/ /opt/scn/export/
ENV PATH=/opt/scn/venv/bin:$PATH \
    SCN_MODELS=/opt/scn/models \
    SCN_EXPORT=/opt/scn/export \
    HOME=/home/scn
USER 10001
WORKDIR /data
ENTRYPOINT ["scn"]
CMD ["--help"]
