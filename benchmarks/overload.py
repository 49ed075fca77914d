"""Overload: the service's capacity, then ten times that offered for a minute.

    python -m benchmarks.overload --model runs/specialist

The service runs as `claims serve` with keys on, pinned to the checkpoint, with a short
inference timeout (`--timeout`, CLAIMS_INFERENCE_TIMEOUT) and a rate limit out of the way. First
its capacity: `--clients` connections each post the next single-claim triage as soon as the
last is answered, for `--capacity-seconds`; capacity is the claims a second answered 200. Then
an open loop offers `--overload` times that rate for `--seconds`, at fixed intervals, each
request on a kept-alive connection of its own, whatever the answers. Reported: goodput (200s a
second) against capacity, the share of the claims computed (the service's
claims_computed_total) that were delivered, p99 latency of the answered requests (every status)
against the timeout, and whether every acknowledged prediction_id is in the store once the
service has stopped.

Passes when goodput is at least 90% of capacity, at least 95% of the claims computed are
delivered, p99 stays under twice the timeout, and nothing acknowledged is lost. The load
generator is a minimal HTTP/1.1 client on asyncio streams (uvloop where installed), so that on
a small machine it takes as little CPU from the service as it can. It runs on the same machine
but, as clients of a real service would, not on the service's cores: the generator is pinned to
one core and the service to the others, for the capacity and the overload alike, so the
generator's work at ten times the rate is not charged to the service (`--shared-cpus` lets both
run on every core, as before). Loopback only. Writes benchmarks/results/overload-<machine>.json
(overload-<machine>-shared-cpus.json) and regenerates docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from benchmarks.benchmark_docs import keep
from benchmarks.common import claim_requests, machine, provenance, quick_model, start_service
from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role

ROOT = Path(__file__).resolve().parents[1]

PREDICTION_ID = re.compile(rb'"prediction_id":"([^"]+)"')
MAX_CONNECTIONS = 4096  # the open loop's own bound: past it a request counts as not sent
BUSY = "claims_inference_busy_seconds_total"


class Connection:
    """One kept-alive HTTP/1.1 connection: a request written, its answer read, in turn."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        status, body, _ = await self.exchange_with_head(request)
        return status, body

    async def exchange_with_head(self, request: bytes) -> tuple[int, bytes, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        body = await self.reader.readexactly(int(length[1])) if length else b""
        return status, body, head

    def close(self) -> None:
        self.writer.close()


def request_bytes(host: str, key: str, claim: dict) -> bytes:
    body = json.dumps(claim).encode()
    return (
        f"POST /v1/triage HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Tally:
    """What the client saw: statuses, latencies and the prediction_ids acknowledged."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []  # of every answer
        self.ok_latencies: list[float] = []
        self.acknowledged: list[str] = []

    def add(self, status: int | str, seconds: float, body: bytes = b"") -> None:
        self.statuses[str(status)] += 1
        if isinstance(status, int):
            self.latencies.append(seconds)
        if status == 200:
            self.ok_latencies.append(seconds)
            found = PREDICTION_ID.search(body)
            if found:
                self.acknowledged.append(found[1].decode())


async def closed_loop(
    host: str, port: int, requests: list[bytes], clients: int, seconds: float
) -> Tally:
    """`clients` connections, each sending its next request as soon as the last is answered;
    after a 503 a client waits as Retry-After asks (a second at most), as a well-behaved client
    would, rather than spin on refusals that take the service's CPU."""
    tally = Tally()
    stop = time.perf_counter() + seconds

    async def client(number: int) -> None:
        connection = await Connection.open(host, port)
        sent = number
        try:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                status, body, head = await connection.exchange_with_head(
                    requests[sent % len(requests)]
                )
                tally.add(status, time.perf_counter() - started, body)
                sent += clients
                if status == 503:
                    after = re.search(rb"(?i)\r\nretry-after:\s*(\d+)", head)
                    await asyncio.sleep(min(1.0, float(after[1]) if after else 1.0))
        finally:
            connection.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return tally


async def open_loop(
    host: str, port: int, requests: list[bytes], rate: float, seconds: float, patience: float
) -> tuple[Tally, float, int]:
    """Request k goes at start + k / rate on a free connection (a new one when none is), for
    `seconds`; then the answers still due are awaited, `patience` seconds at most. Returns
    the tally, the seconds the sending took and the connections opened."""
    tally = Tally()
    idle: list[Connection] = []
    opened = 0
    pending: set[asyncio.Task] = set()

    async def one(request: bytes) -> None:
        nonlocal opened
        started = time.perf_counter()
        connection = idle.pop() if idle else None
        try:
            if connection is not None:
                try:
                    status, body = await connection.exchange(request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    connection.close()  # the service closed it while idle: once more, anew
                    connection = None
            if connection is None:
                opened += 1
                connection = await Connection.open(host, port)
                status, body = await connection.exchange(request)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            tally.add(type(error).__name__, time.perf_counter() - started)
            if connection is not None:
                connection.close()
            return
        tally.add(status, time.perf_counter() - started, body)
        idle.append(connection)

    began = time.perf_counter()
    number = 0
    while (now := time.perf_counter()) < began + seconds:
        due = int((now - began) * rate) + 1
        while number < due:  # catch up after a late wake-up: the rate is kept, not the gaps
            if len(pending) >= MAX_CONNECTIONS:
                tally.add("not_sent", 0.0)
            else:
                task = asyncio.create_task(one(requests[number % len(requests)]))
                pending.add(task)
                task.add_done_callback(pending.discard)
            number += 1
        await asyncio.sleep(max(0.0, began + number / rate - time.perf_counter()))
    sending = time.perf_counter() - began
    if pending:
        await asyncio.wait(pending, timeout=patience)
    for task in pending:
        task.cancel()
    for connection in idle:
        connection.close()
    return tally, sending, opened


def metric(url: str, key: str, name: str) -> float:
    """A counter of the service's /metrics, 0 before its first increment."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


def shed_claims(url: str, key: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    return {
        reason: float(value)
        for reason, value in re.findall(r'^claims_shed_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    }


def percentile_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 1) if values else None


def run(arguments: argparse.Namespace) -> dict:
    model = arguments.model or quick_model(arguments.work)
    claims = claim_requests(512, seed=97)
    made = provenance()  # the machine as it is, before the generator is pinned to a core
    cores = sorted(os.sched_getaffinity(0))
    pinned = not arguments.shared_cpus and len(cores) > 1
    with tempfile.TemporaryDirectory() as data_dir:
        store = Store.from_settings(DataSettings(data_dir=Path(data_dir)))
        _, key = store.create_key("overload", Role.triage)
        store.close()
        process, url = start_service(
            model,
            Path(data_dir),
            cpus=set(cores[1:]) if pinned else None,
            auth="true",
            rate_limit_per_minute="100000000",
            inference_timeout=str(arguments.timeout),
        )
        if pinned:
            os.sched_setaffinity(0, {cores[0]})  # the generator, off the service's cores
        host, port = url.removeprefix("http://").split(":")
        requests = [request_bytes(host, key, claim) for claim in claims]
        try:
            asyncio.run(closed_loop(host, int(port), requests, 8, 5.0))  # warm-up
            busy_before = metric(url, key, BUSY)
            capacity_tally = asyncio.run(
                closed_loop(
                    host, int(port), requests, arguments.clients, arguments.capacity_seconds
                )
            )
            capacity = capacity_tally.statuses["200"] / arguments.capacity_seconds
            # one lane, the default: the share of the phase it spent in passes
            capacity_busy = (metric(url, key, BUSY) - busy_before) / arguments.capacity_seconds
            rate = arguments.overload * capacity
            computed_before = metric(url, key, "claims_computed_total")
            busy_before = metric(url, key, BUSY)
            shed_before = shed_claims(url, key)
            tally, sending, connections = asyncio.run(
                open_loop(
                    host, int(port), requests, rate, arguments.seconds, 3 * arguments.timeout + 30
                )
            )
            time.sleep(1.0)  # the last recordings
            computed = metric(url, key, "claims_computed_total") - computed_before
            overload_busy = (metric(url, key, BUSY) - busy_before) / sending
            shed = {
                reason: count - shed_before.get(reason, 0.0)
                for reason, count in shed_claims(url, key).items()
            }
        finally:
            process.terminate()
            process.wait(timeout=60)
        store = Store.from_settings(DataSettings(data_dir=Path(data_dir)))
        try:
            lost = [pid for pid in tally.acknowledged if store.prediction(pid) is None]
        finally:
            store.close()
    delivered = tally.statuses["200"]
    goodput = delivered / sending
    result = {
        **made,
        "inference_timeout_s": arguments.timeout,
        "cores": {
            "service": len(cores) - 1 if pinned else len(cores),
            "load_generator": 1 if pinned else len(cores),
            "shared": not pinned,
        },
        "capacity": {
            "clients": arguments.clients,
            "seconds": arguments.capacity_seconds,
            "claims_per_second": round(capacity, 1),
            "lane_busy_share": round(capacity_busy, 3),
            "statuses": dict(capacity_tally.statuses),
            "p50_ms": percentile_ms(capacity_tally.ok_latencies, 50),
            "p99_ms": percentile_ms(capacity_tally.ok_latencies, 99),
        },
        "overload": {
            "times_capacity": arguments.overload,
            "offered_per_second": round(rate, 1),
            "sent_per_second": round(sum(tally.statuses.values()) / sending, 1),
            "seconds": round(sending, 1),
            "requests": sum(tally.statuses.values()),
            "connections_opened": connections,
            "statuses": dict(tally.statuses),
            "goodput_per_second": round(goodput, 1),
            "lane_busy_share": round(overload_busy, 3),
            "goodput_share_of_capacity": round(goodput / capacity, 3),
            "claims_computed": int(computed),
            "claims_delivered": delivered,
            "delivered_share_of_computed": round(delivered / computed, 3) if computed else None,
            "shed_by_service": {reason: int(count) for reason, count in shed.items()},
            "p50_ms": percentile_ms(tally.latencies, 50),
            "p99_ms": percentile_ms(tally.latencies, 99),
            "p99_ms_of_200": percentile_ms(tally.ok_latencies, 99),
            "acknowledged": len(tally.acknowledged),
            "acknowledged_missing_from_store": len(lost),
        },
    }
    overload = result["overload"]
    result["goals"] = {
        "goodput_at_least_90_percent_of_capacity": overload["goodput_share_of_capacity"] >= 0.9,
        "at_least_95_percent_of_computed_delivered": (
            overload["delivered_share_of_computed"] or 0.0
        )
        >= 0.95,
        "p99_under_twice_the_timeout": (overload["p99_ms"] or 0.0) < 2000 * arguments.timeout,
        "nothing_acknowledged_lost": not lost and len(tally.acknowledged) == delivered,
    }
    result["passed"] = all(result["goals"].values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint; default: a quick one")
    parser.add_argument("--timeout", type=float, default=2.0, help="CLAIMS_INFERENCE_TIMEOUT")
    parser.add_argument("--clients", type=int, default=32, help="for the capacity")
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--overload", type=float, default=10.0, help="times the capacity")
    parser.add_argument("--seconds", type=float, default=60.0, help="of overload")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "throughput")
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="the service and the load generator on every core, not on cores of their own",
    )
    parser.add_argument("--note", help="what the reader should know of this run")
    arguments = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = run(arguments)
    if arguments.note:
        result["note"] = arguments.note
    name = machine()[1] + ("-shared-cpus" if result["cores"]["shared"] else "")
    path = keep("overload", name, result)  # and redraws docs/benchmarks.md
    print(json.dumps({k: v for k, v in result.items() if k != "command"}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
