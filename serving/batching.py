"""Micro-batching: concurrent single-claim requests share one forward pass.

On a CPU a forward pass over 32 claims costs less than half of 32 passes over one (the fixed
cost of a pass is shared, and larger matrices multiply faster), so while one batch runs the
requests that arrive queue up and go together in the next, in the next free lane
(`InferenceLanes`). When a pass ends, its clients' next requests arrive together but not at
once, and a batch closed on the first of them would leave the rest a whole pass behind. So a
batch waits, up to `max_wait`, until it holds as many claims as its lane's last one did; past
that, each arrival keeps it open `gap` longer, up to `max_wait` in all. A lone client's request
runs at once, as it would one at a time. A batch's answers are recorded while the next pass
runs, and sent once recorded. A request waits at most `timeout` for its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from claims.features import FeatureError
from schemas.claim import Claim
from schemas.triage import TriageResult

Runner = Callable[[Sequence[Claim]], list[TriageResult]]
Recorder = Callable[[Sequence[Claim], list[TriageResult]], None]
Queued = tuple[Claim, asyncio.Future[TriageResult]]
T = TypeVar("T")


class InferenceTimeout(RuntimeError):
    """The model did not answer in time; the caller gets 504."""


class InferenceLanes:
    """Forward passes run on `lanes` threads of their own, one pass per lane at a time, and
    torch's threads are shared out among the lanes.

    Small passes keep two cores busy poorly: on the 2-core CPU, passes of 16 claims in two lanes
    of one core each served 1.16 to 1.3 times the claims a second of one lane of both cores, in
    one process. In the service that pays only with enough requests in flight to fill both
    lanes (at 32 clients, not at 8 or 1: docs/serving-experiments.md), so one lane is the
    default. Never more threads than torch's share in all: each thread that runs a pass keeps
    its own team of torch's OpenMP workers, and once the teams hold more workers than there are
    cores, libgomp puts them to sleep between operations and every pass runs about a quarter
    slower (1.56 of 2 cores busy instead of 1.99). `then` (recording the answers) runs on
    another thread, off the lanes.
    """

    def __init__(
        self, run: Runner, timeout: float, then: Recorder | None = None, lanes: int = 1
    ) -> None:
        self.run = run
        self.then = then
        self.timeout = timeout
        self.lanes = lanes
        self._threads = ThreadPoolExecutor(
            max_workers=lanes,
            thread_name_prefix="inference",
            initializer=torch.set_num_threads,
            initargs=(max(1, torch.get_num_threads() // lanes),),
        )

    async def __call__(self, claims: Sequence[Claim]) -> list[TriageResult]:
        try:
            return await asyncio.wait_for(self._answer(claims), self.timeout)
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.timeout:g} s") from error

    async def _answer(self, claims: Sequence[Claim]) -> list[TriageResult]:
        results = await self.infer(claims)
        await self.record(claims, results)
        return results

    async def infer(self, claims: Sequence[Claim]) -> list[TriageResult]:
        """The pass alone, in a free lane; `record` before answering."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.run, claims)

    async def record(self, claims: Sequence[Claim], results: list[TriageResult]) -> None:
        if self.then is not None:
            await asyncio.to_thread(self.then, claims, results)

    def close(self) -> None:
        """Lets the lanes' threads end, and their OpenMP teams with them; passes under way
        finish first."""
        self._threads.shutdown(wait=True, cancel_futures=True)


async def in_passing_thread(work: Callable[[], T]) -> T:
    """Runs `work` (loading a model: its passes too) on a thread that ends with it, so that the
    OpenMP team it leaves behind ends too; see `InferenceLanes`."""
    passing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loading")
    try:
        return await asyncio.get_running_loop().run_in_executor(passing, work)
    finally:
        passing.shutdown(wait=False)


class MicroBatcher:
    """Gathers batches for the lanes of `runner`, one batch at a time: while one lane's pass
    runs, the next batch gathers for a free lane."""

    def __init__(self, runner: InferenceLanes, max_batch: int, gap: float, max_wait: float) -> None:
        self.runner = runner
        self.max_batch = max_batch
        self.gap = gap
        self.max_wait = max_wait
        self._queue: asyncio.Queue[Queued] = asyncio.Queue()
        self._gathering = asyncio.Lock()  # two gathering batches would split the arrivals
        self._lanes: list[asyncio.Task[None]] = []
        self._recordings: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._lanes = [
            asyncio.create_task(self._work(), name=f"micro-batcher-{lane}")
            for lane in range(self.runner.lanes)
        ]

    async def stop(self) -> None:
        """Answers what is queued, then stops: part of a graceful shutdown."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)
        await asyncio.gather(*self._recordings)

    async def triage(self, claim: Claim) -> TriageResult:
        future: asyncio.Future[TriageResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((claim, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.runner.timeout)
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.runner.timeout:g} s") from error

    async def _work(self) -> None:
        """One lane: gather a batch, run it, hand its answers to recording, and again."""
        expected = 1  # claims in this lane's last batch: the clients that may come back
        while True:
            async with self._gathering:
                batch = await self._gather(expected)
            expected = len(batch)
            answered = await self._infer(batch)
            if answered:  # recorded while the next pass runs
                recording = asyncio.create_task(self._record(answered))
                self._recordings.add(recording)
                recording.add_done_callback(self._recordings.discard)

    async def _gather(self, expected: int) -> list[Queued]:
        loop = asyncio.get_running_loop()
        batch = [await self._queue.get()]
        deadline = loop.time() + (self.max_wait if expected > 1 else 0.0)
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            # The gap alone is not enough: answers go out only once recorded, so the first
            # client back can come more than a gap before the rest, and passes split in two
            # (16 clients on the 2-core CPU: 153 against 182 claims/s,
            # docs/serving-experiments.md).
            left = deadline - loop.time()
            wait = left if len(batch) < expected else min(self.gap, left)
            if wait <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), wait))
            except TimeoutError:
                break
        return batch

    async def _infer(self, batch: list[Queued]) -> list[tuple[Queued, TriageResult]]:
        """Each claim with its result; a claim that failed has its answer already."""
        try:
            results = await self.runner.infer([claim for claim, _ in batch])
        except FeatureError as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return []
            answered = []
            for item in batch:  # one claim's bad field must not fail its neighbours
                answered += await self._infer([item])
            return answered
        except Exception as error:
            for _, future in batch:
                _settle(future, error=error)
            return []
        return list(zip(batch, results, strict=True))

    async def _record(self, answered: list[tuple[Queued, TriageResult]]) -> None:
        results = [result for _, result in answered]
        try:
            await self.runner.record([claim for (claim, _), _ in answered], results)
        except Exception as error:
            for (_, future), _ in answered:
                _settle(future, error=error)
            return
        for (_, future), result in answered:
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[TriageResult],
    result: TriageResult | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():  # its caller gave up (timeout) or went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
