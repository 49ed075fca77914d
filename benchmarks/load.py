"""Load test: a steady rate of requests over loopback for ten minutes, memory watched.

    python benchmarks/load.py --model runs/specialist --rate 20 --minutes 10

The service runs as `claims serve` with keys on, pinned to the checkpoint. An open loop sends
`--rate` requests a second at fixed intervals (nine single-claim triages for each feedback
item), whatever the answers' latency. Every ten seconds it records requests, errors, p50/p99
latency and the service's resident memory. Passes when no request fails and memory is flat:
the last minute's resident memory within 10% of the second minute's (the first is warm-up).
Writes benchmarks/results/load-<machine>.json and regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not this folder: benchmarks/serving.py would shadow `serving`
sys.path.append(str(ROOT / "benchmarks"))

from benchmark_docs import keep  # noqa: E402
from common import claim_requests, machine, provenance, quick_model, start_service  # noqa: E402

from claims.store import Store  # noqa: E402
from claims.store.data_settings import DataSettings  # noqa: E402
from schemas.auth import Role  # noqa: E402

WINDOW_SECONDS = 10.0


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def steady_load(
    url: str, key: str, claims: list[dict], rate: float, seconds: float, pid: int
) -> list[dict]:
    headers = {"Authorization": f"Bearer {key}"}
    windows: list[dict] = []
    current: dict = {"latencies": [], "errors": 0, "statuses": {}}
    pending: set[asyncio.Task] = set()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def one(number: int) -> None:
            claim = claims[number % len(claims)]
            started = time.perf_counter()
            try:
                if number % 10 == 9:
                    response = await client.post(
                        "/v1/feedback",
                        json={
                            "feedback_id": f"load-{number}",
                            "claim_id": claim["claim_id"],
                            "labels": {"severity": "medium"},
                            "reason_code": "load-test",
                            "adjuster_id": "load",
                            "confirmed": False,
                        },
                    )
                else:
                    response = await client.post("/v1/triage", json=claim)
                status = response.status_code
            except httpx.HTTPError as error:
                status = type(error).__name__
            window = current
            window["statuses"][str(status)] = window["statuses"].get(str(status), 0) + 1
            if status in (200, 201):
                window["latencies"].append(time.perf_counter() - started)
            else:
                window["errors"] += 1

        began = time.perf_counter()
        window_end = began + WINDOW_SECONDS
        number = 0
        while (now := time.perf_counter()) < began + seconds:
            if now >= window_end:
                windows.append(_close(current, now - began, pid))
                current = {"latencies": [], "errors": 0, "statuses": {}}
                window_end += WINDOW_SECONDS
            task = asyncio.create_task(one(number))
            pending.add(task)
            task.add_done_callback(pending.discard)
            number += 1
            await asyncio.sleep(max(0.0, began + number / rate - time.perf_counter()))
        await asyncio.gather(*pending)
        windows.append(_close(current, time.perf_counter() - began, pid))
    return windows


def _close(window: dict, at: float, pid: int) -> dict:
    latencies = np.array(window["latencies"]) * 1000
    return {
        "at_seconds": round(at, 1),
        "answered": len(latencies),
        "errors": window["errors"],
        "statuses": window["statuses"],
        "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
        "resident_mib": round(resident_mib(pid), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    arguments = parser.parse_args()
    model = arguments.model or quick_model(arguments.work)
    claims = claim_requests(512, seed=93)
    with tempfile.TemporaryDirectory() as data_dir:
        _, key = Store.from_settings(DataSettings(data_dir=Path(data_dir))).create_key(
            "load-test", Role.adjuster
        )
        process, url = start_service(model, Path(data_dir), auth="true")
        try:
            windows = asyncio.run(
                steady_load(url, key, claims, arguments.rate, arguments.minutes * 60, process.pid)
            )
        finally:
            process.terminate()
            process.wait(timeout=60)
    per_minute = int(60 / WINDOW_SECONDS)
    second_minute = np.mean([w["resident_mib"] for w in windows[per_minute : 2 * per_minute]])
    last_minute = np.mean([w["resident_mib"] for w in windows[-per_minute:]])
    kind = machine()[1]
    result = {
        **provenance(),
        "rate_per_second": arguments.rate,
        "minutes": arguments.minutes,
        "requests": sum(w["answered"] + w["errors"] for w in windows),
        "errors": sum(w["errors"] for w in windows),
        "resident_mib_second_minute": round(float(second_minute), 1),
        "resident_mib_last_minute": round(float(last_minute), 1),
        "memory_growth": round(float(last_minute / second_minute - 1), 4),
        "windows": windows,
    }
    result["passed"] = result["errors"] == 0 and abs(result["memory_growth"]) <= 0.10
    path = keep("load", kind, result)
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, indent=2))
    print(f"wrote {path} and docs/benchmarks.md")


if __name__ == "__main__":
    main()
