# The triage service, CPU only, with the base model inside (it ships in a Python package).
# Not built in the project's own environment (no Docker engine there); kept exact and simple.
# The base image is pinned by digest (linux/amd64, which the locked torch wheel is built for).
# This digest is the one a public record reports having checked against Docker Hub for
# python:3.11-slim-bookworm in August 2026; the project's environment cannot reach Docker Hub,
# so check it (`docker buildx imagetools inspect python:3.11-slim-bookworm`) when you bump it.
# A digest that does not exist fails the build: it never falls back to an unpinned image.
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    CLAIMS_DATA_DIR=/data

WORKDIR /app
# LightGBM (the boosted partner) links the system's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
# Every package at the version and sha256 in requirements-serve.lock (`make lock` writes it with
# requirements.lock, the same versions): torch's CPU wheel from PyTorch's CPU index, the rest
# from PyPI. Then the project itself, which may bring nothing else.
COPY requirements-serve.lock ./
RUN pip install --require-hashes --no-deps \
        --extra-index-url https://download.pytorch.org/whl/cpu -r requirements-serve.lock
COPY pyproject.toml README.md ./
COPY claims ./claims
COPY schemas ./schemas
COPY training ./training
COPY serving ./serving
# The data directory holds claim narratives: the service's user alone reads it.
RUN pip install --no-deps --no-build-isolation . \
    && pip check \
    && useradd --create-home --uid 10001 claims \
    && mkdir -p /data && chown claims /data && chmod 0700 /data

USER claims
EXPOSE 8000
# Mount the data directory (store, registry, job logs) at /data, or point CLAIMS_DATABASE_URL
# at PostgreSQL. The registry's champion serves; without one the service answers from the base
# model and /readyz says "degraded". CLAIMS_MODEL_DIR pins a checkpoint instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["claims", "serve", "--host", "0.0.0.0", "--port", "8000"]
