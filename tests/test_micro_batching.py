"""Concurrent single-claim requests share forward passes, answer as if alone, and time out;
every pass runs in one of the service's inference lanes."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.batching import in_passing_thread
from serving.settings import ServiceSettings
from serving.triage_service import TriageService

CLAIMS = [
    {"claim_id": f"MB-{i}", "description": text}
    for i, text in enumerate(
        [
            "Rear-ended at a red light, bumper and tail light damaged.",
            "Pipe burst under the kitchen sink and flooded the floor.",
            "Employee slipped on a wet floor at the warehouse and hurt a wrist.",
            "Hail broke two skylights during last night's storm.",
        ]
        * 8
    )
]


def batch_sizes(client: TestClient) -> tuple[float, float]:
    text = client.get("/metrics").text
    total = float(re.search(r"^claims_inference_batch_size_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^claims_inference_batch_size_count (\S+)$", text, re.M).group(1))
    return total, count


def test_concurrent_requests_share_passes_and_answer_as_if_alone(
    trained_checkpoint: Path,
) -> None:
    # the quick model sends most answers to review, and each is explained: several passes'
    # worth a claim, which a busy 2-core machine must not mistake for overload
    settings = ServiceSettings(
        model_dir=trained_checkpoint, micro_batch_wait_ms=20, inference_timeout=120
    )
    with TestClient(create_app(settings)) as client:
        alone = {c["claim_id"]: client.post("/v1/triage", json=c).json() for c in CLAIMS[:4]}
        before = batch_sizes(client)
        answers: dict[str, dict] = {}

        def ask(claim: dict) -> None:
            answers[claim["claim_id"]] = client.post("/v1/triage", json=claim).json()

        threads = [threading.Thread(target=ask, args=(claim,)) for claim in CLAIMS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        claims_scored, passes = (a - b for a, b in zip(batch_sizes(client), before, strict=True))
    assert claims_scored == len(CLAIMS) and passes < len(CLAIMS) / 2  # shared, not one by one
    for claim_id, single in alone.items():
        for task, prediction in single["predictions"].items():
            assert answers[claim_id]["predictions"][task]["probabilities"] == pytest.approx(
                prediction["probabilities"],
                abs=1e-5,  # fp32: a claim's neighbours do not change its answer
            )
    assert len({a["prediction_id"] for a in answers.values()}) == len(CLAIMS)


def test_the_service_runs_its_passes_in_as_many_lanes_as_set(trained_checkpoint: Path) -> None:
    settings = ServiceSettings(model_dir=trained_checkpoint, inference_lanes=2)
    with TestClient(create_app(settings)) as client:
        before = batch_sizes(client)
        threads = [
            threading.Thread(target=client.post, args=("/v1/triage",), kwargs={"json": claim})
            for claim in CLAIMS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        lanes = {t.name for t in threading.enumerate() if t.name.startswith("inference")}
        claims_scored, _ = (a - b for a, b in zip(batch_sizes(client), before, strict=True))
    assert len(lanes) == 2 and claims_scored == len(CLAIMS)


@pytest.mark.parametrize("micro_batching", [True, False])
def test_a_model_slower_than_the_timeout_gets_504(
    trained_checkpoint: Path, micro_batching: bool
) -> None:
    settings = ServiceSettings(
        model_dir=trained_checkpoint, inference_timeout=0.0005, micro_batching=micro_batching
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/triage", json=CLAIMS[0])
    assert response.status_code == 504 and "within" in response.json()["detail"]


def arrivals(
    gap: float, max_wait: float, spacing: float, count: int, together: int = 1
) -> list[int]:
    """The sizes of the batches that `count` requests are run in: the first `together` at once,
    the rest `spacing` seconds apart."""
    sizes: list[int] = []

    def run(items: list) -> list:
        sizes.append(len(items))
        return list(items)

    async def scenario() -> None:
        service = TriageService(
            run, lambda *_: None, 30, micro_batch=64, gap=gap, max_wait=max_wait
        )
        await service.start()
        asked = []
        for item in range(count):
            asked.append(asyncio.create_task(service.triage([item])))
            if item >= together - 1:
                await asyncio.sleep(spacing)
        assert await asyncio.gather(*asked) == [[n] for n in range(count)]  # each its own answer
        await service.close()

    asyncio.run(scenario())
    return sizes


def test_each_arrival_keeps_a_micro_batch_open_for_the_next() -> None:
    assert arrivals(gap=0.3, max_wait=5.0, spacing=0.02, count=8, together=2) == [2, 6]


def test_a_micro_batch_waits_for_as_many_claims_as_the_last_one_held() -> None:
    """The last pass's clients come back, but not at once: a gap between two of them must not
    split them (with a gap alone this was [3, 1, 1, 1])."""
    assert arrivals(gap=0.01, max_wait=5.0, spacing=0.05, count=6, together=3) == [3, 3]


def test_a_micro_batch_closes_at_its_longest_wait_or_on_a_quiet_gap() -> None:
    assert len(arrivals(gap=0.3, max_wait=0.05, spacing=0.02, count=10, together=2)) >= 3
    # Requests 2 and 3: the batch waits for a second claim, as the first batch held two, then
    # closes on the gap. Request 4 waits for company that never comes, up to the longest wait.
    assert arrivals(gap=0.01, max_wait=0.5, spacing=0.2, count=5, together=2) == [2, 2, 1]


def test_a_lone_client_does_not_wait_for_company() -> None:
    """Only a batch after one with company waits: here nobody else ever asks."""
    assert arrivals(gap=0.3, max_wait=5.0, spacing=0.02, count=4) == [1, 1, 1, 1]


@pytest.mark.parametrize("lanes", [1, 2])
def test_passes_run_in_their_lanes_on_their_share_of_threads_and_recording_elsewhere(
    lanes: int,
) -> None:
    """A thread per pass would leave an OpenMP team per thread, and slow every pass; lanes that
    together hold more threads than torch's would do the same."""
    passes: dict[int, int] = {}
    recordings: set[int] = set()

    def run(items: list) -> list:
        passes[threading.get_ident()] = torch.get_num_threads()
        return list(items)

    def then(items: list, results: list) -> None:
        recordings.add(threading.get_ident())

    async def scenario() -> None:
        service = TriageService(run, then, 30, lanes=lanes)
        await asyncio.gather(*(service.triage([n]) for n in range(20)))
        await service.close()

    asyncio.run(scenario())
    assert 1 <= len(passes) <= lanes and passes.keys().isdisjoint(recordings)
    assert set(passes.values()) == {max(1, torch.get_num_threads() // lanes)}


def test_with_two_lanes_a_batch_gathers_and_runs_while_the_last_one_runs() -> None:
    """The first pass holds its lane until the second has started in the other; with one lane
    the second could not start, and the first would fail after 5 s."""
    second_started = threading.Event()
    sizes: list[int] = []

    def run(items: list) -> list:
        sizes.append(len(items))
        if len(sizes) == 1:
            assert second_started.wait(timeout=5), "the second batch waited for the first pass"
        else:
            second_started.set()
        return list(items)

    async def scenario() -> list[list[int]]:
        service = TriageService(
            run, lambda *_: None, 30, lanes=2, micro_batch=64, gap=0.05, max_wait=0.5
        )
        await service.start()
        first = asyncio.create_task(service.triage([0]))
        await asyncio.sleep(0.1)  # its pass has started and holds its lane
        answers = await asyncio.gather(first, *(service.triage([n]) for n in (1, 2, 3)))
        await service.close()
        return answers

    assert asyncio.run(scenario()) == [[0], [1], [2], [3]]
    assert sizes == [1, 3]  # the three that came during the first pass went together


def test_the_next_pass_runs_while_the_last_batch_is_recorded() -> None:
    """Recording waits on the store; the inference thread need not wait with it. An answer is
    still sent only once it is recorded."""
    second_pass = threading.Event()
    recorded: list[int] = []

    def run(items: list) -> list:
        if items == [1]:
            second_pass.set()
        return list(items)

    def then(items: list, results: list) -> None:
        if items == [0]:
            assert second_pass.wait(timeout=5), "the second pass waited for the first recording"
        recorded.extend(items)

    async def scenario() -> list[list[int]]:
        service = TriageService(run, then, 30, micro_batch=64)
        await service.start()
        first = asyncio.create_task(service.triage([0]))
        await asyncio.sleep(0.2)  # its pass is over, its recording waits
        assert not first.done()
        answers = await asyncio.gather(first, service.triage([1]))
        await service.close()
        return answers

    assert asyncio.run(scenario()) == [[0], [1]]
    assert sorted(recorded) == [0, 1]


def test_a_passing_thread_ends_with_its_work() -> None:
    async def scenario() -> threading.Thread:
        return await in_passing_thread(threading.current_thread)

    thread = asyncio.run(scenario())
    thread.join(timeout=5)
    assert thread is not threading.main_thread() and not thread.is_alive()


def test_the_loaded_models_are_kept_from_the_collector_while_serving(
    trained_checkpoint: Path,
) -> None:
    with TestClient(create_app(ServiceSettings(model_dir=trained_checkpoint))) as client:
        assert client.post("/v1/triage", json=CLAIMS[0]).status_code == 200
        assert gc.get_freeze_count() > 100_000  # the models' objects: no full collection walks them
    assert gc.get_freeze_count() == 0
