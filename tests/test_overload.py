"""Under overload the work is bounded: past the bound a request gets 503 with Retry-After at
once, and work whose caller has gone (its deadline passed, its client disconnected) is dropped
before its forward pass and never recorded as served; a recording failure fails only the claim
at fault."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from serving.app import create_app
from serving.batching import InferenceLanes, InferenceTimeout, Overloaded
from serving.observability import ServiceMetrics
from serving.settings import ServiceSettings
from serving.triage_service import TriageService
from tests.helpers import free_port

CLAIM = {
    "claim_id": "OV-0",
    "description": "Rear-ended at a red light, bumper and tail light damaged.",
    "attributes": {"region": "north"},
}


class Lane:
    """A model stand-in that answers each claim with itself, and holds its first pass until
    `release` is set: the lane is busy, as under load."""

    def __init__(self, hold_first: bool = True, seconds: float = 0.0) -> None:
        self.release = threading.Event()
        self.passes: list[list] = []
        self.recorded: list = []
        self.hold_first = hold_first
        self.seconds = seconds

    def run(self, items: Sequence) -> list:
        self.passes.append(list(items))
        if "unreadable" in items:
            raise ValueError("the model cannot read a claim")
        if self.hold_first and len(self.passes) == 1:
            assert self.release.wait(timeout=10)
        time.sleep(self.seconds * len(items))
        return list(items)

    def record(self, items: Sequence, results: list) -> None:
        if any(item == "refused" for item in items):
            raise RuntimeError("the store refused a claim")
        self.recorded += list(items)

    @property
    def computed(self) -> list:
        return [item for one in self.passes for item in one]


async def until(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_past_the_bound_a_claim_is_refused_at_once_with_a_retry_after() -> None:
    lane = Lane()

    async def scenario() -> None:
        service = TriageService(lane.run, lane.record, 30, max_backlog=4, micro_batch=16)
        await service.start()
        first = asyncio.create_task(service.triage(["busy"]))
        await until(lambda: lane.passes)  # the lane holds its pass
        waiting = [asyncio.create_task(service.triage([f"w{n}"])) for n in range(3)]
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        with pytest.raises(Overloaded) as refused:
            await service.triage(["one too many"])
        assert time.perf_counter() - started < 0.05
        assert refused.value.retry_after >= 1
        with pytest.raises(Overloaded):  # a request's claims in a pass of their own, too
            await service.triage(["b1", "b2"])
        lane.release.set()
        assert await asyncio.gather(first, *waiting) == [["busy"], ["w0"], ["w1"], ["w2"]]
        await service.close()
        assert service.lanes.backlog == 0

    asyncio.run(scenario())
    assert "one too many" not in lane.computed and "b1" not in lane.computed


def test_a_claim_the_recent_pace_cannot_answer_in_time_is_refused_at_once() -> None:
    lane = Lane(hold_first=False, seconds=0.05)  # 20 claims a second

    async def scenario() -> None:
        service = TriageService(lane.run, lane.record, 0.5, max_backlog=1000, micro_batch=4)
        await service.start()
        await service.triage(["first"])  # sets the pace
        asked = [asyncio.create_task(service.triage([n])) for n in range(40)]
        answers = await asyncio.gather(*asked, return_exceptions=True)
        await service.close()
        refused = [a for a in answers if isinstance(a, Overloaded)]
        answered = [a for a in answers if isinstance(a, list)]
        assert 0 < len(answered) <= 8 and len(refused) == 40 - len(answered)

    asyncio.run(scenario())


def test_the_lanes_plan_with_the_pace_of_slow_passes_when_passes_vary() -> None:
    """A mix of claims (some explained, many passes' worth each) makes passes vary: planned at
    the mean pace, every pass slower than the mean ran past its claims' deadlines."""
    steady = Lane(hold_first=False, seconds=0.03)
    costs = iter([0.01, 0.05] * 10)

    def alternating(items: Sequence) -> list:
        time.sleep(next(costs) * len(items))
        return list(items)

    async def paces() -> tuple[InferenceLanes, InferenceLanes]:
        planned = []
        for run in (steady.run, alternating):
            lanes = InferenceLanes(run, ServiceMetrics(), lanes=1, max_backlog=99, wait_budget=1)
            for _ in range(20):
                await lanes.infer(["a", "b"])
            lanes.close()
            planned.append(lanes)
        return planned[0], planned[1]

    even, uneven = asyncio.run(paces())
    assert even.cautious_pace == pytest.approx(0.03, rel=0.3)
    assert uneven.seconds_per_claim == pytest.approx(0.03, rel=0.3)
    assert uneven.cautious_pace is not None and uneven.cautious_pace >= 0.045
    assert uneven.claims_within(1.0) <= 22 < even.claims_within(1.0)  # type: ignore[operator]
    busy = even.metrics.registry.get_sample_value("claims_inference_busy_seconds_total")
    assert busy == pytest.approx(20 * 2 * 0.03, rel=0.3)  # the lane's seconds in its passes


def test_claims_whose_deadline_passed_are_dropped_before_their_pass_and_not_recorded() -> None:
    """With no bound the service went on computing and recording 300 claims already answered
    504, for 14 s."""
    lane = Lane()

    async def scenario() -> None:
        service = TriageService(lane.run, lane.record, 0.2, micro_batch=16)
        await service.start()
        first = asyncio.create_task(service.triage(["busy"]))
        await until(lambda: lane.passes)
        late = [asyncio.create_task(service.triage([f"late{n}"])) for n in range(5)]
        for outcome in await asyncio.gather(*late, return_exceptions=True):
            assert isinstance(outcome, InferenceTimeout)
        lane.release.set()
        with pytest.raises(InferenceTimeout):
            await first  # its pass outlived its deadline too
        assert await service.triage(["after"]) == ["after"]
        await service.close()
        assert service.lanes.backlog == 0

    asyncio.run(scenario())
    assert lane.computed == ["busy", "after"]
    assert lane.recorded == ["after"]  # "busy" was computed, but nobody was there to answer


def test_a_batch_holds_no_more_claims_than_its_pass_answers_before_the_deadline() -> None:
    """Claims that waited behind a slow pass went into one batch whose pass outlived all their
    deadlines: every one computed, none delivered (the overload benchmark's "late")."""
    lane = Lane(seconds=0.05)

    async def scenario() -> None:
        service = TriageService(lane.run, lane.record, 1.0, max_backlog=1000, micro_batch=64)
        await service.start()
        first = asyncio.create_task(service.triage(["busy"]))
        await until(lambda: lane.passes)
        waiting = [asyncio.create_task(service.triage([n])) for n in range(20)]
        await asyncio.sleep(0.5)  # half their time gone, and the pace is slow
        lane.release.set()
        await asyncio.gather(first, *waiting, return_exceptions=True)
        await service.close()

    asyncio.run(scenario())
    late = [claim for claim in lane.computed if claim not in lane.recorded]
    assert len(lane.recorded) >= 3  # "busy", then claims in passes that fit
    assert len(late) <= 1  # at most a pass of one that the pace misjudged; 20 before


def test_a_claim_whose_client_left_is_dropped_before_its_pass() -> None:
    lane = Lane()

    async def scenario() -> None:
        service = TriageService(lane.run, lane.record, 30, micro_batch=16)
        await service.start()
        first = asyncio.create_task(service.triage(["busy"]))
        await until(lambda: lane.passes)
        gone = asyncio.create_task(service.triage(["gone"]))
        stays = asyncio.create_task(service.triage(["stays"]))
        await asyncio.sleep(0.01)
        gone.cancel()  # what the route does when its client disconnects
        lane.release.set()
        assert await asyncio.gather(first, stays) == [["busy"], ["stays"]]
        await service.close()
        assert service.lanes.backlog == 0

    asyncio.run(scenario())
    assert "gone" not in lane.computed and "gone" not in lane.recorded


def test_a_request_cancelled_before_its_lane_is_free_never_runs() -> None:
    lane = Lane()

    async def scenario() -> None:
        service = TriageService(lane.run, lane.record, 0.2)
        first = asyncio.create_task(service.triage(["busy"]))
        await until(lambda: lane.passes)
        with pytest.raises(InferenceTimeout):
            await service.triage(["late1", "late2"])
        lane.release.set()
        with pytest.raises(InferenceTimeout):
            await first
        await service.close()
        assert service.lanes.backlog == 0

    asyncio.run(scenario())
    assert lane.computed == ["busy"] and lane.recorded == []


def test_a_recording_failure_fails_only_the_claim_at_fault() -> None:
    """One transaction per micro-batch: the claim the store refused failed all its neighbours."""
    lane = Lane(hold_first=False)

    async def scenario() -> list:
        service = TriageService(lane.run, lane.record, 30, micro_batch=16, gap=0.05, max_wait=0.5)
        await service.start()
        await service.triage(["warm"])  # the next batch waits for company
        names = ["a", "b", "refused", "c"]
        answers = await asyncio.gather(
            *(service.triage([name]) for name in names), return_exceptions=True
        )
        await service.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers[:2] == [["a"], ["b"]] and answers[3] == ["c"]
    assert isinstance(answers[2], RuntimeError)
    assert [len(one) for one in lane.passes] == [1, 4]  # they did share a pass
    assert sorted(lane.recorded) == ["a", "b", "c", "warm"]


def test_a_failed_pass_fails_only_the_claim_at_fault() -> None:
    """A shared pass that fails runs again claim by claim, whatever the failure."""
    lane = Lane(hold_first=False)

    async def scenario() -> list:
        service = TriageService(lane.run, lane.record, 30, micro_batch=16, gap=0.05, max_wait=0.5)
        await service.start()
        await service.triage(["warm"])  # the next batch waits for company
        answers = await asyncio.gather(
            *(service.triage([name]) for name in ["a", "unreadable", "b"]),
            return_exceptions=True,
        )
        await service.close()
        assert service.lanes.backlog == 0
        return answers

    answers = asyncio.run(scenario())
    assert answers[0] == ["a"] and answers[2] == ["b"] and isinstance(answers[1], ValueError)
    assert [len(one) for one in lane.passes] == [1, 3, 1, 1, 1]
    assert sorted(lane.recorded) == ["a", "b", "warm"]


# --- Through HTTP, with the real model ----------------------------------------------------


def held(app: object, release: threading.Event) -> list[list[str]]:
    """Holds the app's first forward pass until `release` is set; returns the claim ids of
    every pass the model ran."""
    lanes = app.state.triage.lanes  # type: ignore[attr-defined]
    model = lanes.run
    passes: list[list[str]] = []

    def run(claims: Sequence) -> list:
        passes.append([claim.claim_id for claim in claims])
        if len(passes) == 1:
            assert release.wait(timeout=30)
        return model(claims)

    lanes.run = run
    return passes


def test_the_service_answers_503_with_retry_after_past_its_queue_bound(
    trained_checkpoint: Path,
) -> None:
    settings = ServiceSettings(model_dir=trained_checkpoint, max_queued_claims=3)
    release = threading.Event()
    with TestClient(create_app(settings)) as client:
        passes = held(client.app, release)
        answers: dict[str, int] = {}

        def ask(claim_id: str) -> None:
            answers[claim_id] = client.post("/v1/triage", json={**CLAIM, "claim_id": claim_id})

        threads = [threading.Thread(target=ask, args=(f"OV-{n}",)) for n in range(3)]
        for thread in threads:
            thread.start()
            time.sleep(0.2)  # in order: the first holds the lane, two wait
        started = time.perf_counter()
        refused = client.post("/v1/triage", json={**CLAIM, "claim_id": "OV-refused"})
        seconds = time.perf_counter() - started
        batch = client.post("/v1/triage/batch", json={"claims": [CLAIM, CLAIM]})
        # refused before routing: the body is never read, so not even parsed
        unread = client.post(
            "/v1/triage", content=b"{not json", headers={"content-type": "application/json"}
        )
        release.set()
        for thread in threads:
            thread.join()
        metrics = client.get("/metrics").text
    assert refused.status_code == 503 and seconds < 0.5
    assert int(refused.headers["Retry-After"]) >= 1
    assert "retry later" in refused.json()["detail"]
    assert batch.status_code == 503 and "Retry-After" in batch.headers
    assert unread.status_code == 503
    assert {answer.status_code for answer in answers.values()} == {200}
    assert "OV-refused" not in {claim_id for one in passes for claim_id in one}
    assert re.search(r'^claims_shed_total\{reason="queue_full"\} 3\.0$', metrics, re.M)


@contextmanager
def served(app: object) -> Iterator[str]:
    """The app under a real uvicorn in a thread, on loopback, so a client can really
    disconnect and uvicorn logs what it logs in production; yields host:port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def live_app(trained_checkpoint: Path, tmp_path: Path) -> Iterator[tuple[object, str]]:
    settings = ServiceSettings(model_dir=trained_checkpoint, data_dir=tmp_path / "data")
    app = create_app(settings)
    with served(app) as address:
        yield app, address


def wait_for(condition: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def client_gone_count(app: object) -> float:
    metrics = app.state.metrics  # type: ignore[attr-defined]
    return metrics.requests.labels("POST", "/v1/triage", "499")._value.get()


@pytest.mark.parametrize("micro_batching", [True, False])
def test_a_claim_whose_client_disconnected_is_never_computed_or_recorded(
    live_app: tuple[object, str], tmp_path: Path, micro_batching: bool
) -> None:
    import httpx

    app, address = live_app
    if not micro_batching:
        app.state.triage.batcher = None  # type: ignore[attr-defined]
    lanes = app.state.triage.lanes  # type: ignore[attr-defined]
    release = threading.Event()
    passes = held(app, release)
    first = threading.Thread(
        target=httpx.post,
        args=(f"http://{address}/v1/triage",),
        kwargs={"json": {**CLAIM, "claim_id": "OV-busy"}, "timeout": 60},
    )
    first.start()
    wait_for(lambda: passes)  # its pass holds the lane
    body = json.dumps({**CLAIM, "claim_id": "OV-gone"}).encode()
    host, port = address.split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(
            b"POST /v1/triage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_for(lambda: lanes.backlog == 2)  # read, and waiting for the lane
    wait_for(lambda: client_gone_count(app) == 1)  # the service saw it leave
    release.set()
    first.join()
    after = httpx.post(f"http://{address}/v1/triage", json={**CLAIM, "claim_id": "OV-after"})
    assert after.status_code == 200
    computed = {claim_id for one in passes for claim_id in one}
    assert {"OV-busy", "OV-after"} <= computed and "OV-gone" not in computed
    store = Store.from_settings(DataSettings(data_dir=tmp_path / "data"))
    try:
        assert set(store.latest_claims(["OV-gone", "OV-busy", "OV-after"])) == {
            "OV-busy",
            "OV-after",
        }
    finally:
        store.close()
