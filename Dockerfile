# The triage service, CPU only, with the base model inside (it ships in a Python package).
# Not built in the project's own environment (no Docker engine there); kept exact and simple.
FROM python:3.11-slim

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
# The CPU wheel of torch first, pinned, so nothing pulls a CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY claims ./claims
COPY schemas ./schemas
COPY training ./training
COPY serving ./serving
RUN pip install ".[postgres]" \
    && useradd --create-home --uid 10001 claims \
    && mkdir -p /data && chown claims /data

USER claims
EXPOSE 8000
# Mount the data directory (store, registry, job logs) at /data, or point CLAIMS_DATABASE_URL
# at PostgreSQL. The registry's champion serves; without one the service answers from the base
# model and /readyz says "degraded". CLAIMS_MODEL_DIR pins a checkpoint instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["claims", "serve", "--host", "0.0.0.0", "--port", "8000"]
