"""Nothing acknowledged is lost: the service is killed with SIGKILL during a burst of feedback."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, running_service

SENDERS = 8


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

    with running_service(data_dir, port=port) as (process, _):
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

    with running_service(data_dir, port=port):
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
