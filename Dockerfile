# Reasoning-tree explorer: CPU image by default.
#   docker build -t reasoning-explorer .
#   docker run -p 127.0.0.1:7860:7860 -v explorer-data:/data reasoning-explorer
# The server listens on 0.0.0.0 inside the container, so it asks for a login: put `username:password` lines in
# /data/auth (the volume) first. To serve without a login on purpose, override the command with `--no-auth`.
# GPU variant: build on an NVIDIA CUDA runtime base with Python 3.11 instead of python:3.11-slim
# (docker build --build-arg BASE=<a CUDA 12 runtime image with python3.11> .), then
# `docker run --gpus all ...`; the app picks CUDA + bfloat16 by itself when torch sees a GPU.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    REASONING_DATA_DIR=/data \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

RUN useradd --create-home --uid 1000 explorer \
    && mkdir -p /data /app \
    && chown explorer:explorer /data /app

WORKDIR /app

# Requirements first, so code changes do not reinstall torch. For a CPU-only torch build, point pip at a
# CPU wheel index with --build-arg PIP_EXTRA_INDEX_URL=...; the default pulls torch's standard build.
ARG PIP_EXTRA_INDEX_URL=
COPY requirements.txt ./
RUN python -m pip install --upgrade pip \
    && python -m pip install -r requirements.txt

COPY --chown=explorer:explorer . .

USER explorer
VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
CMD ["python", "app.py", "serve", "--host", "0.0.0.0", "--port", "7860", "--auth-file", "/data/auth"]
