# syntax=docker/dockerfile:1.7
# One Dockerfile for the three services, built from the repository root with the workspace lock:
#
#   docker build --target sse-edge        -t event-handler/sse-edge .
#   docker build --target collector       -t event-handler/collector .
#   docker build --target alert-evaluator -t event-handler/alert-evaluator .
#
# Each image holds one service's virtualenv (its locked dependencies and nothing of the dev group),
# no source tree and no uv, and runs as an unprivileged user on a read-only root filesystem.
# tests/deploy/test_dockerfile.py checks this file offline: stages, COPY sources, the uv command
# against uv.lock, entry modules, ports and the user the manifests expect.

ARG PYTHON_IMAGE=python:3.11-slim-trixie
# The same uv as the Makefile's UV_VERSION, so the image resolves the lock exactly as `make` does.
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# The workspace: lock, root pyproject.toml, every member (.dockerignore keeps only pyproject.toml and
# src/ of each). Sources change more often than the lock; the uv cache mount keeps re-syncs fast.
FROM ${PYTHON_IMAGE} AS workspace
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
COPY tools tools

# One virtualenv per service. --no-editable installs the workspace packages themselves (not links
# to /src), so the runtime stage copies /app/.venv alone. --frozen: the lock is the truth.
FROM workspace AS sse-edge-venv
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package sse-edge

FROM workspace AS collector-venv
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package collector

FROM workspace AS alert-evaluator-venv
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package alert-evaluator

# What every service image shares: the same Python as the build stage (the venv's interpreter
# links to it), an unprivileged user (UID 10001, the runAsUser of k8s/), no bytecode writes (the
# venv is compiled at build time and the root filesystem is read-only).
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 eventhandler \
    && useradd --system --uid 10001 --gid eventhandler --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin eventhandler
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001

FROM runtime AS sse-edge
COPY --from=sse-edge-venv /app/.venv /app/.venv
EXPOSE 8000
CMD ["python", "-m", "sse_edge"]

FROM runtime AS collector
COPY --from=collector-venv /app/.venv /app/.venv
EXPOSE 8001
CMD ["python", "-m", "collector"]

FROM runtime AS alert-evaluator
COPY --from=alert-evaluator-venv /app/.venv /app/.venv
EXPOSE 8002
CMD ["python", "-m", "alert_evaluator"]
