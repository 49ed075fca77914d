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

Under overload the work is bounded: the lanes admit at most `max_backlog` claims that wait for
or are in a pass, and none that the pace of recent passes could not answer within the timeout;
a request beyond is refused at once (`Overloaded`: 503 with Retry-After) rather than queued to
time out. A claim whose caller has gone (its deadline passed, or its client disconnected) is
dropped before its pass, and one whose caller left during the pass is not recorded as served.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from claims.model.features import FeatureError
from schemas.claim import Claim
from schemas.triage import TriageResult
from serving.observability import ServiceMetrics

Runner = Callable[[Sequence[Claim]], list[TriageResult]]
Recorder = Callable[[Sequence[Claim], list[TriageResult]], None]
Queued = tuple[Claim, asyncio.Future[TriageResult], float]  # the claim, its answer, its deadline
T = TypeVar("T")
PACE_WEIGHT = 0.2  # of the latest pass in the running estimate of seconds per claim
# The share of the timeout a new claim's wait may fill: the rest is its own pass, the gathering
# of its batch and the recording of its answer.
ADMISSION_SHARE = 0.75


class InferenceTimeout(RuntimeError):
    """The model did not answer in time; the caller gets 504."""


class Overloaded(RuntimeError):
    """More work than the lanes can take or answer in time: the caller gets 503 at once, and
    `retry_after` seconds, about what the backlog takes to clear."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
        self,
        run: Runner,
        timeout: float,
        then: Recorder | None = None,
        lanes: int = 1,
        max_backlog: int = 1024,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.run = run
        self.then = then
        self.timeout = timeout
        self.lanes = lanes
        self.max_backlog = max_backlog
        self.metrics = metrics
        self.backlog = 0  # claims admitted that have not been through their pass yet
        self.seconds_per_claim: float | None = None  # of recent passes, in one lane
        self._threads = ThreadPoolExecutor(
            max_workers=lanes,
            thread_name_prefix="inference",
            initializer=torch.set_num_threads,
            initargs=(max(1, torch.get_num_threads() // lanes),),
        )

    async def __call__(self, claims: Sequence[Claim]) -> list[TriageResult]:
        """A request's claims in one pass of their own. Cancelled (timeout, client gone) before
        its lane takes it up, the pass never runs; during the pass, nothing is recorded."""
        self.admit(len(claims))
        try:
            return await asyncio.wait_for(self._answer(claims), self.timeout)
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.timeout:g} s") from error
        finally:
            self.release(len(claims))

    async def _answer(self, claims: Sequence[Claim]) -> list[TriageResult]:
        results = await self.infer(claims)
        await self.record(claims, results)
        return results

    def admit(self, count: int) -> None:
        """Counts `count` claims into the backlog, or raises Overloaded: past `max_backlog`, or
        when the backlog would take the lanes longer than the timeout at the pace of recent
        passes. Work arriving at an idle service is always admitted."""
        if self.backlog == 0:
            self.backlog = count
            return
        if self.backlog + count > self.max_backlog:
            reason = f"{self.backlog} claims are waiting, the most this service queues"
        elif (self.expected_seconds(self.backlog + count) or 0.0) > self._admissible_wait:
            reason = (
                f"{self.backlog} claims are waiting, more than it answers in {self.timeout:g} s"
            )
        else:
            self.backlog += count
            return
        self.shed("queue_full", count)
        raise Overloaded(f"overloaded: {reason}; retry later", self.retry_after())

    def release(self, count: int) -> None:
        """`count` admitted claims are through their pass, or dropped before it."""
        self.backlog = max(0, self.backlog - count)

    @property
    def full(self) -> bool:
        """Whether a single claim would be refused now."""
        if self.backlog == 0:
            return False
        expected = self.expected_seconds(self.backlog + 1) or 0.0
        return self.backlog + 1 > self.max_backlog or expected > self._admissible_wait

    @property
    def _admissible_wait(self) -> float:
        return ADMISSION_SHARE * self.timeout

    def expected_seconds(self, claims: int) -> float | None:
        """How long the lanes take over `claims` at the pace of recent passes; None before the
        first pass."""
        if self.seconds_per_claim is None:
            return None
        return claims * self.seconds_per_claim / self.lanes

    def retry_after(self) -> int:
        """Whole seconds until the backlog is likely through, at least one."""
        return max(1, math.ceil(self.expected_seconds(self.backlog) or 1.0))

    def shed(self, reason: str, count: int = 1) -> None:
        if self.metrics is not None and count:
            self.metrics.shed.labels(reason).inc(count)

    async def infer(self, claims: Sequence[Claim]) -> list[TriageResult]:
        """The pass alone, in a free lane; `record` before answering."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._timed_pass, claims)

    def _timed_pass(self, claims: Sequence[Claim]) -> list[TriageResult]:
        started = time.perf_counter()
        results = self.run(claims)
        if claims:
            pace = (time.perf_counter() - started) / len(claims)
            last = self.seconds_per_claim
            self.seconds_per_claim = pace if last is None else last + PACE_WEIGHT * (pace - last)
            if self.metrics is not None:
                self.metrics.computed.inc(len(claims))
        return results

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
        """The claim's answer, once recorded. Raises Overloaded at once when the lanes cannot
        take it; its deadline is the timeout from now."""
        self.runner.admit(1)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TriageResult] = loop.create_future()
        self._queue.put_nowait((claim, future, loop.time() + self.runner.timeout))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.runner.timeout)
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.runner.timeout:g} s") from error
        finally:
            future.cancel()  # settled: nothing; else (timeout, client gone) it is dropped

    async def _work(self) -> None:
        """One lane: gather a batch, run it, hand its answers to recording, and again."""
        expected = 1  # claims in this lane's last batch: the clients that may come back
        while True:
            async with self._gathering:
                batch = await self._gather(expected)
            expected = len(batch)
            try:
                answered = await self._infer(batch)
            finally:
                self.runner.release(len(batch))
            late = [item for item, _ in answered if item[1].done()]  # their callers left
            self.runner.shed("late", len(late))
            answered = [(item, result) for item, result in answered if not item[1].done()]
            if answered:  # recorded while the next pass runs
                recording = asyncio.create_task(self._record(answered))
                self._recordings.add(recording)
                recording.add_done_callback(self._recordings.discard)

    async def _gather(self, expected: int) -> list[Queued]:
        """A batch of live claims: those whose callers left are dropped as they come."""
        loop = asyncio.get_running_loop()
        batch: list[Queued] = []
        while not batch:
            batch = self._live([await self._queue.get()])
        deadline = loop.time() + (self.max_wait if expected > 1 else 0.0)
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch += self._live([self._queue.get_nowait()])
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
                batch += self._live([await asyncio.wait_for(self._queue.get(), wait)])
            except TimeoutError:
                break
        return self._live(batch)  # some may have left while it gathered

    def _live(self, items: list[Queued]) -> list[Queued]:
        """The items still worth a pass; those whose caller gave up at its deadline or went
        away are dropped, and leave the backlog."""
        now = asyncio.get_running_loop().time()
        live = []
        for item in items:
            _, future, deadline = item
            if not future.done() and now < deadline:
                live.append(item)
                continue
            self.runner.shed("deadline" if now >= deadline else "client_gone")
            _settle(future, error=InferenceTimeout(f"no answer within {self.runner.timeout:g} s"))
            self.runner.release(1)
        return live

    async def _infer(self, batch: list[Queued]) -> list[tuple[Queued, TriageResult]]:
        """Each claim with its result; a claim that failed has its answer already."""
        try:
            results = await self.runner.infer([claim for claim, _, _ in batch])
        except FeatureError as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return []
            answered = []
            for item in batch:  # one claim's bad field must not fail its neighbours
                answered += await self._infer([item])
            return answered
        except Exception as error:
            for _, future, _ in batch:
                _settle(future, error=error)
            return []
        return list(zip(batch, results, strict=True))

    async def _record(self, answered: list[tuple[Queued, TriageResult]]) -> None:
        """One transaction for the batch; if it fails, one per claim, so that a claim the store
        refuses fails alone and its neighbours are still recorded and answered."""
        try:
            await self.runner.record(
                [claim for (claim, _, _), _ in answered], [result for _, result in answered]
            )
        except Exception as error:
            if len(answered) == 1:
                _settle(answered[0][0][1], error=error)
                return
            for item in answered:
                await self._record([item])
            return
        for (_, future, _), result in answered:
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
