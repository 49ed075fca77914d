"""Serving benchmark: single-claim requests over loopback, with and without micro-batching.

    python benchmarks/serving.py --model runs/specialist        # 1, 8, 32 and 128 clients

The service runs as `claims serve` in its own process (development mode: no keys), pinned to
the checkpoint; closed-loop clients post one claim at a time for `--seconds` per level after a
warm-up, both modes on the same claims in one run. Reports throughput and p50/p99 latency,
writes benchmarks/results/serving-<machine>.json and regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmark_docs import RESULTS, render  # noqa: E402
from throughput import machine, quick_model  # noqa: E402

from claims.synthetic import generate_claims  # noqa: E402

LEVELS = (1, 8, 32, 128)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(
    model: Path, micro_batching: bool, data_dir: Path
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {
        **os.environ,
        "CLAIMS_MICRO_BATCHING": str(micro_batching).lower(),
        "CLAIMS_DATA_DIR": str(data_dir),
        "CLAIMS_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "claims",
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--no-auth",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the service did not start")
        time.sleep(0.3)


async def drive(url: str, claims: list[dict], clients: int, seconds: float) -> dict:
    """Closed loop: each client sends its next claim as soon as the last is answered."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        stop = time.perf_counter() + seconds

        async def one_client(offset: int) -> None:
            nonlocal errors
            index = offset
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await client.post("/v1/triage", json=claims[index % len(claims)])
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                index += clients

        began = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
    values = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "claims_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 1) if len(values) else None,
        "p99_ms": round(float(np.percentile(values, 99)), 1) if len(values) else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    arguments = parser.parse_args()
    model = arguments.model or quick_model(arguments.work)
    frame = generate_claims(512, seed=91).drop(columns=["claim_type", "severity", "siu_referral"])
    claims = json.loads(frame.to_json(orient="records"))
    for claim in claims:  # the columns the claim schema does not name are attributes
        claim["attributes"] = {"region": claim.pop("region")}
    levels: dict[str, list[dict]] = {}
    for mode in ("one_at_a_time", "micro_batching"):
        with tempfile.TemporaryDirectory() as data_dir:
            process, url = start_service(model, mode == "micro_batching", Path(data_dir))
            try:
                asyncio.run(drive(url, claims, 8, 3.0))  # warm-up
                levels[mode] = []
                for clients in LEVELS:
                    result = asyncio.run(drive(url, claims, clients, arguments.seconds))
                    levels[mode].append(result)
                    print(mode, result, flush=True)
            finally:
                process.terminate()
                process.wait(timeout=60)
    description, kind = machine()
    at_32 = {mode: next(r for r in rows if r["clients"] == 32) for mode, rows in levels.items()}
    result = {
        "machine": description,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "seconds_per_level": arguments.seconds,
        "levels": levels,
        "speedup_at_32_clients": round(
            at_32["micro_batching"]["claims_per_second"]
            / at_32["one_at_a_time"]["claims_per_second"],
            2,
        ),
        "p99_ms_at_32_clients": at_32["micro_batching"]["p99_ms"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"serving-{kind}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    render()
    print(f"wrote {path} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
