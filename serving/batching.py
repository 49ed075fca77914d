"""Micro-batching: concurrent single-claim requests share one forward pass.

On a CPU a forward pass over 32 claims costs less than half of 32 passes over one (the fixed
cost of a pass is shared, and larger matrices multiply faster), so while one batch runs the
requests that arrive queue up and go together in the next, in the next free lane
(`InferenceLanes`). When a pass ends, its clients' next requests arrive together but not at
once, and a batch closed on the first of them would leave the rest a whole pass behind. So a
batch waits, up to `max_wait`, until it holds as many claims as its lane's last one did; past
that, each arrival keeps it open `gap` longer, up to `max_wait` in all. A lone client's request
runs at once, as it would one at a time. A batch's answers are recorded while the next pass
runs, and sent once recorded.

Under overload the work is bounded: the lanes admit at most `max_backlog` claims that wait for
or are in a pass, and none that the pace of recent passes could not answer in the time a claim
may wait, and a batch holds no more claims than that pace answers before its first caller's
deadline (an explained answer costs many passes' worth); a request beyond is refused at once
(`Overloaded`: 503 with Retry-After) rather than queued to time out. A claim whose caller has
gone (its deadline passed, or its client disconnected) is dropped before its pass, and one whose
caller left during the pass is not recorded as served. `serving/triage_service.py` puts these
together behind one timeout.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from schemas.claim import Claim
from schemas.triage import TriageResult
from serving.observability import ServiceMetrics

Runner = Callable[[Sequence[Claim]], list[TriageResult]]
Pass = Callable[[Sequence[Claim]], Awaitable[list[TriageResult]]]
Recording = Callable[[Sequence[Claim], list[TriageResult]], Awaitable[None]]
Queued = tuple[Claim, asyncio.Future[TriageResult], float]  # the claim, its answer, its deadline
T = TypeVar("T")
PACE_WEIGHT = 0.2  # of the latest pass in the running estimate of seconds per claim
# How many mean deviations above the mean pace the lanes plan with: passes of a mix of claims
# (an explained answer costs many passes' worth) vary, and planning with the mean alone makes
# every slower pass late (the estimator of TCP's retransmission timeout, RFC 6298)
PACE_CAUTION = 2.0
# The share of the time its first caller has left that a batch's pass may take: the rest is for
# recording the answers and sending them.
PASS_SHARE = 0.8


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

    Small passes keep several cores busy poorly, so lanes of fewer cores each can serve more
    claims a second, but only with enough requests in flight to fill them all; one lane is the
    default (docs/serving-experiments.md). Never more threads than torch's share in all: each
    thread that runs a pass keeps its own team of torch's OpenMP workers, and once the teams
    hold more workers than there are cores, libgomp puts them to sleep between operations and
    every pass runs slower. Recording the answers runs on another thread, off the lanes.

    The lanes also keep the count of claims admitted (`admit`, `release`) and the pace of
    recent passes, which together say whether there is room for more.
    """

    def __init__(
        self,
        run: Runner,
        metrics: ServiceMetrics,
        *,
        lanes: int,
        max_backlog: int,
        wait_budget: float,
    ) -> None:
        """`wait_budget`: the most seconds a newly admitted claim may wait for its pass."""
        self.run = run
        self.metrics = metrics
        self.lanes = lanes
        self.max_backlog = max_backlog
        self.wait_budget = wait_budget
        self.backlog = 0  # claims admitted whose callers still wait for an answer
        self.seconds_per_claim: float | None = None  # of recent passes, in one lane
        self.pace_deviation = 0.0  # the mean deviation of recent passes from that pace
        self._threads = ThreadPoolExecutor(
            max_workers=lanes,
            thread_name_prefix="inference",
            initializer=torch.set_num_threads,
            initargs=(max(1, torch.get_num_threads() // lanes),),
        )

    @property
    def full(self) -> bool:
        """Whether a single claim would be refused now."""
        return self._refusal(1) is not None

    def _refusal(self, count: int) -> str | None:
        """Why `count` more claims would be refused: past `max_backlog`, or when the backlog
        would take the lanes longer than the wait budget at the pace of recent passes. Work
        arriving at an idle service is always taken."""
        if self.backlog == 0:
            return None
        if self.backlog + count > self.max_backlog:
            return f"{self.backlog} claims are waiting, the most this service queues"
        if (self.expected_seconds(self.backlog + count) or 0.0) > self.wait_budget:
            return (
                f"{self.backlog} claims are waiting, more than it answers in {self.wait_budget:g} s"
            )
        return None

    def admit(self, count: int) -> None:
        """Counts `count` claims into the backlog, or raises Overloaded when they would be
        refused now."""
        reason = self._refusal(count)
        if reason is not None:
            self.metrics.shed.labels("queue_full").inc(count)
            raise Overloaded(f"overloaded: {reason}; retry later", self.retry_after())
        self.backlog += count

    def release(self, count: int) -> None:
        """`count` admitted claims are answered, or their callers have given up."""
        self.backlog = max(0, self.backlog - count)

    @property
    def cautious_pace(self) -> float | None:
        """Seconds a claim, as slow as recent passes are likely to run; None before the
        first pass."""
        if self.seconds_per_claim is None:
            return None
        return self.seconds_per_claim + PACE_CAUTION * self.pace_deviation

    def expected_seconds(self, claims: int) -> float | None:
        """How long the lanes may take over `claims` at the cautious pace of recent passes;
        None before the first pass."""
        pace = self.cautious_pace
        return None if pace is None else claims * pace / self.lanes

    def claims_within(self, seconds: float) -> int | None:
        """The most claims one pass answers in `seconds` at the cautious pace of recent passes
        (at least one); None before the first pass."""
        pace = self.cautious_pace
        return None if pace is None else max(1, math.floor(seconds / pace))

    def retry_after(self) -> int:
        """Whole seconds until the backlog is likely through, at least one."""
        return max(1, math.ceil(self.expected_seconds(self.backlog) or 1.0))

    async def infer(self, claims: Sequence[Claim], run: Runner | None = None) -> list[TriageResult]:
        """One pass in a free lane, by `run` (default: the lanes' model). Cancelled before a
        lane takes it up, it never runs."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._timed_pass, claims, run or self.run)

    def _timed_pass(self, claims: Sequence[Claim], run: Runner) -> list[TriageResult]:
        started = time.perf_counter()
        results = run(claims)
        elapsed = time.perf_counter() - started
        self.metrics.busy.inc(elapsed)
        if claims:
            pace = elapsed / len(claims)
            last = self.seconds_per_claim
            if last is None:
                self.seconds_per_claim = pace
            else:
                deviation = abs(pace - last) - self.pace_deviation
                self.pace_deviation += PACE_WEIGHT * deviation
                self.seconds_per_claim = last + PACE_WEIGHT * (pace - last)
            self.metrics.computed.inc(len(claims))
        return results

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
    """Gathers single claims into batches for `run` (a batch of claims to their results),
    `lanes` batches at a time: while one batch's pass runs, the next gathers for a free lane.
    Each batch's answers go through `then` (recording) while the next pass runs, and are
    answered once through it."""

    def __init__(
        self,
        run: Pass,
        max_batch: int,
        gap: float,
        max_wait: float,
        *,
        then: Recording,
        metrics: ServiceMetrics,
        lanes: int = 1,
        claims_within: Callable[[float], int | None] | None = None,
    ) -> None:
        self.run = run
        self.claims_within = claims_within
        self.then = then
        self.max_batch = max_batch
        self.gap = gap
        self.max_wait = max_wait
        self.metrics = metrics
        self.lanes = lanes
        self._queue: asyncio.Queue[Queued] = asyncio.Queue()
        self._gathering = asyncio.Lock()  # two gathering batches would split the arrivals
        self._workers: list[asyncio.Task[None]] = []
        self._recordings: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"micro-batcher-{lane}")
            for lane in range(self.lanes)
        ]

    async def stop(self) -> None:
        """Answers what is queued, then stops: part of a graceful shutdown."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await asyncio.gather(*self._recordings)

    async def submit(self, claim: Claim, deadline: float) -> TriageResult:
        """The claim's answer, once through `then`. Past `deadline` (the event loop's clock) it
        is dropped before its pass and answered with TimeoutError; a caller that gives up
        (cancels) has it dropped too, or, once in its pass, left out of `then`."""
        future: asyncio.Future[TriageResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((claim, future, deadline))
        try:
            return await future
        finally:
            future.cancel()  # settled: nothing; else the caller gave up and it is dropped

    async def _work(self) -> None:
        """One lane: gather a batch, run it, hand its answers to `then`, and again."""
        expected = 1  # claims in this lane's last batch: the clients that may come back
        while True:
            async with self._gathering:
                batch = await self._gather(expected)
            expected = len(batch)
            answered = await self._run(batch)
            waiting = [(item, result) for item, result in answered if not item[1].done()]
            if len(waiting) < len(answered):  # the others' callers left during the pass
                self.metrics.shed.labels("late").inc(len(answered) - len(waiting))
            if waiting:  # recorded while the next pass runs
                recording = asyncio.create_task(self._record(waiting))
                self._recordings.add(recording)
                recording.add_done_callback(self._recordings.discard)

    async def _gather(self, expected: int) -> list[Queued]:
        """A batch of live claims: those whose callers left are dropped as they come."""
        loop = asyncio.get_running_loop()
        batch: list[Queued] = []
        while not batch:
            batch = self._live([await self._queue.get()])
        deadline = loop.time() + (self.max_wait if expected > 1 else 0.0)
        while len(batch) < self._room(batch):
            if not self._queue.empty():
                batch += self._live([self._queue.get_nowait()])
                continue
            # The gap alone is not enough: answers go out only once recorded, so the first
            # client back can come more than a gap before the rest, and passes split in two
            # (docs/serving-experiments.md).
            left = deadline - loop.time()
            wait = left if len(batch) < expected else min(self.gap, left)
            if wait <= 0:
                break
            try:
                batch += self._live([await asyncio.wait_for(self._queue.get(), wait)])
            except TimeoutError:
                break
        return self._live(batch)  # some may have left while it gathered

    def _room(self, batch: list[Queued]) -> int:
        """The most claims the batch may hold: a pass over more, at the pace of recent passes,
        would answer its first caller after the deadline, and every claim in it would be
        computed for nothing."""
        if self.claims_within is None:
            return self.max_batch
        left = min(deadline for _, _, deadline in batch) - asyncio.get_running_loop().time()
        fits = self.claims_within(PASS_SHARE * left)
        return self.max_batch if fits is None else min(self.max_batch, fits)

    def _live(self, items: list[Queued]) -> list[Queued]:
        """The items still worth a pass; those whose caller gave up at its deadline or went
        away are dropped."""
        now = asyncio.get_running_loop().time()
        live = []
        for item in items:
            _, future, deadline = item
            if not future.done() and now < deadline:
                live.append(item)
                continue
            self.metrics.shed.labels("deadline" if now >= deadline else "client_gone").inc()
            _settle(future, error=TimeoutError())
        return live

    async def _run(self, batch: list[Queued]) -> list[tuple[Queued, TriageResult]]:
        """Each claim with its result; a claim that failed has its answer already. A batch
        whose pass fails runs again claim by claim, so that one claim's fault (a field the
        model cannot read) fails it alone and its neighbours are answered."""
        try:
            results = await self.run([claim for claim, _, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return []
            answered = []
            for item in batch:
                answered += await self._run([item])
            return answered
        return list(zip(batch, results, strict=True))

    async def _record(self, answered: list[tuple[Queued, TriageResult]]) -> None:
        """One `then` for the batch; if it fails, one per claim, so that a claim the store
        refuses fails alone and its neighbours are still recorded and answered."""
        try:
            await self.then(
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
    elif result is not None:
        future.set_result(result)
    else:
        raise ValueError("a future is settled with its result or its error")
