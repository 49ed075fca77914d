"""Nothing acknowledged is lost: the service is killed with SIGKILL during a burst of feedback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SENDERS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def service(data_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    """`claims serve` in its own process, as an operator starts it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "claims", "serve", "--port", str(port)],
        env={**os.environ, "CLAIMS_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "the service exited during start-up"
            assert time.monotonic() < deadline, "the service did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.slow
def test_every_acknowledged_correction_survives_a_sigkill(data_dir: Path) -> None:
    port = free_port()
    acknowledged: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def send(sender: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for number in range(10_000):
                if stop.is_set():
                    return
                feedback_id = f"fb-{sender}-{number}"
                item = {
                    "feedback_id": feedback_id,
                    "claim_id": f"CLM-{number}",
                    "labels": {"severity": "high"},
                    "reason_code": "burst",
                    "adjuster_id": f"adj-{sender}",
                    "confirmed": True,
                }
                try:
                    response = client.post("/v1/feedback", json=item)
                except httpx.TransportError:
                    return  # the service is gone: this item was never acknowledged
                if response.status_code == 201:
                    with lock:
                        acknowledged.add(feedback_id)

    with service(data_dir, port) as process:
        senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
        for sender in senders:
            sender.start()
        while len(acknowledged) < 200:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
        process.wait()
        stop.set()
        for sender in senders:
            sender.join()

    with service(data_dir, port):
        stored: list[str] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                page = client.get(
                    "/v1/feedback", params={"limit": 1000, "offset": len(stored)}
                ).json()["items"]
                if not page:
                    break
                stored += [item["feedback_id"] for item in page]
    assert len(acknowledged) >= 200
    assert acknowledged <= set(stored)
    assert len(stored) == len(set(stored))
