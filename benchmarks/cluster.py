"""Cluster: requests a second with 1, 2 and 3 replicas sharing one PostgreSQL, and how long a
promotion takes to reach every replica.

    python -m benchmarks.cluster --database-url postgresql+psycopg://postgres@127.0.0.1:5432/claims

Every replica is a `claims serve` with keys on that follows the registry's champion (no
`--model`), all of them on one data path and one database, as `deploy/` runs them. The model
is registered and promoted once, through `claims models register`. For each replica count,
`--clients` closed-loop clients post single-claim triages for `--seconds`, each client to the
replicas in turn (a load balancer's round robin); reported are the claims a second answered 200,
their p50 and p99, and the errors. Then, with every replica up, a second version is promoted
through the first replica's API while the clients keep posting, and the seconds until every
replica serves it (`GET /v1/models/active`) are measured, with the answers' errors across the
switch. Each replica runs torch on `--threads-per-replica` threads (1: as a pod limited to one
core would); on one machine the replicas share its cores, so past its core count more replicas
add processes, not cores, which the figures say. The database must be empty or throwaway: the
benchmark registers versions in it. Writes benchmarks/results/cluster-<machine>.json and
regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from benchmarks.benchmark_docs import keep
from benchmarks.common import CLAIMS, claim_requests, machine, provenance, quick_model
from benchmarks.common import start_service as start_replica
from claims.model.checkpoint import MANIFEST
from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role

ROOT = Path(__file__).resolve().parents[1]
SWITCH_VERSION = "sp-c1u5te000002"


def register(model: Path, environment: dict[str, str], *, promote: bool) -> None:
    command = [*CLAIMS, "models", "register", str(model), "--reason", "cluster benchmark"]
    subprocess.run([*command, *(["--promote"] if promote else [])], env=environment, check=True)


def renamed(model: Path, folder: Path, version: str) -> Path:
    """The same weights under another version: a promotion the replicas must pick up."""
    copy = Path(shutil.copytree(model, folder))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["model_version"] = version
    (copy / MANIFEST).write_text(json.dumps(manifest))
    return copy


async def round_robin(
    urls: list[str], key: str, claims: list[dict], clients: int, seconds: float
) -> tuple[Counter[int | str], list[float], Counter[str]]:
    """Statuses, the latencies of the 200s and the versions that answered them."""
    statuses: Counter[int | str] = Counter()
    latencies: list[float] = []
    versions: Counter[str] = Counter()
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {key}"}

    async def client(number: int) -> None:
        sent = number
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            while time.perf_counter() < stop:
                url = urls[sent % len(urls)]
                started = time.perf_counter()
                try:
                    response = await http.post(f"{url}/v1/triage", json=claims[sent % len(claims)])
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
                else:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - started)
                        versions[response.json()["served_by"]["model_version"]] += 1
                sent += clients

    await asyncio.gather(*(client(n) for n in range(clients)))
    return statuses, latencies, versions


def serving(urls: list[str], key: str) -> list[str | None]:
    """The registry version each replica serves."""
    headers = {"Authorization": f"Bearer {key}"}
    return [
        httpx.get(f"{url}/v1/models/active", headers=headers).json()["registry_version"]
        for url in urls
    ]


def switch(
    urls: list[str], keys: dict[str, str], claims: list[dict], clients: int, limit: float
) -> dict:
    """Promotes SWITCH_VERSION through the first replica while clients post; the seconds until
    every replica serves it, and the answers across the switch."""

    async def during() -> tuple[float | None, tuple]:
        load = asyncio.create_task(round_robin(urls, keys["triage"], claims, clients, limit))
        await asyncio.sleep(2.0)
        started = time.perf_counter()
        promoted = await asyncio.to_thread(
            httpx.post,
            f"{urls[0]}/v1/models/{SWITCH_VERSION}/promote",
            json={"reason": "cluster benchmark: the switch"},
            headers={"Authorization": f"Bearer {keys['admin']}"},
            timeout=60,
        )
        promoted.raise_for_status()
        reached = None
        while time.perf_counter() - started < limit:
            if set(await asyncio.to_thread(serving, urls, keys["triage"])) == {SWITCH_VERSION}:
                reached = time.perf_counter() - started
                break
            await asyncio.sleep(0.1)
        return reached, await load

    reached, (statuses, _, versions) = asyncio.run(during())
    return {
        "seconds_until_every_replica_serves_it": None if reached is None else round(reached, 2),
        "statuses": {str(code): n for code, n in statuses.items()},
        "versions_answering": dict(versions),
    }


def run(arguments: argparse.Namespace) -> dict:
    made = provenance()
    model = arguments.model or quick_model(arguments.work)
    claims = claim_requests(512, seed=53)
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        environment = {
            **os.environ,
            "CLAIMS_DATA_DIR": str(data_dir),
            "CLAIMS_DATABASE_URL": arguments.database_url,
        }
        register(model, environment, promote=True)
        register(renamed(model, Path(folder) / "copy", SWITCH_VERSION), environment, promote=False)
        store = Store.from_settings(
            DataSettings(data_dir=data_dir, database_url=arguments.database_url)
        )
        keys = {role: store.create_key(f"cluster-{role}", role)[1] for role in Role}
        store.close()
        replicas: list[tuple[subprocess.Popen, str]] = []
        rounds = []
        try:
            for count in range(1, arguments.replicas + 1):
                replicas.append(
                    start_replica(
                        None,
                        data_dir,
                        threads=arguments.threads_per_replica,
                        database_url=arguments.database_url,
                        rate_limit_per_minute="100000000",
                        reload_interval=str(arguments.reload_interval),
                    )
                )
                urls = [url for _, url in replicas]
                asyncio.run(round_robin(urls, keys[Role.triage], claims, 4, 3.0))  # warm-up
                statuses, latencies, _ = asyncio.run(
                    round_robin(
                        urls, keys[Role.triage], claims, arguments.clients, arguments.seconds
                    )
                )
                rounds.append(
                    {
                        "replicas": count,
                        "claims_per_second": round(statuses[200] / arguments.seconds, 1),
                        "p50_ms": _ms(latencies, 50),
                        "p99_ms": _ms(latencies, 99),
                        "errors": sum(n for code, n in statuses.items() if code != 200),
                    }
                )
            switched = switch(
                [url for _, url in replicas],
                {"triage": keys[Role.triage], "admin": keys[Role.admin]},
                claims,
                arguments.clients,
                arguments.reload_interval * 4 + 10,
            )
        finally:
            for process, _ in replicas:
                process.terminate()
            for process, _ in replicas:
                process.wait(timeout=60)
    return {
        **made,
        "clients": arguments.clients,
        "seconds": arguments.seconds,
        "reload_interval_s": arguments.reload_interval,
        "threads_per_replica": arguments.threads_per_replica,
        "rounds": rounds,
        "switch": switched,
    }


def _ms(latencies: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(latencies) * 1000, q)), 1) if latencies else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="an empty, throwaway PostgreSQL")
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16, help="closed-loop, round robin")
    parser.add_argument("--seconds", type=float, default=20.0, help="a round")
    parser.add_argument("--reload-interval", type=float, default=5.0, help="CLAIMS_RELOAD_...")
    parser.add_argument(
        "--threads-per-replica",
        type=int,
        default=1,
        help="torch's threads in each replica, as a one-core pod's limit would set them",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    parser.add_argument("--note", help="what the reader should know of this run")
    arguments = parser.parse_args()
    result = run(arguments)
    if arguments.note:
        result["note"] = arguments.note
    print(json.dumps(result, indent=2))
    print(keep("cluster", machine()[1], result))  # and redraws docs/benchmarks.md


if __name__ == "__main__":
    main()
