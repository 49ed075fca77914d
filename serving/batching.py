"""Micro-batching: concurrent single-claim requests share one forward pass.

On a CPU a forward pass over 32 claims costs little more than over one, so while one batch runs
the requests that arrive queue up and go together in the next. A request waits at most
`max_wait` for company when the service is idle, and at most `timeout` for its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence

from claims.features import FeatureError
from schemas.claim import Claim
from schemas.triage import TriageResult

Runner = Callable[[Sequence[Claim]], list[TriageResult]]
Recorder = Callable[[Sequence[Claim], list[TriageResult]], None]


class InferenceTimeout(RuntimeError):
    """The model did not answer in time; the caller gets 504."""


class SerialRunner:
    """One forward pass at a time: on a few cores, parallel passes only fight for them.
    `then` (recording the answers) runs after the pass, outside the lock, so the next pass
    need not wait for it."""

    def __init__(self, run: Runner, timeout: float, then: Recorder | None = None) -> None:
        self.run = run
        self.then = then
        self.timeout = timeout
        self._lock = threading.Lock()

    def _locked(self, claims: Sequence[Claim]) -> list[TriageResult]:
        with self._lock:
            results = self.run(claims)
        if self.then is not None:
            self.then(claims, results)
        return results

    async def __call__(self, claims: Sequence[Claim]) -> list[TriageResult]:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._locked, claims), self.timeout)
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.timeout:g} s") from error


class MicroBatcher:
    def __init__(self, serial: SerialRunner, max_batch: int, max_wait: float) -> None:
        self.serial = serial
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: asyncio.Queue[tuple[Claim, asyncio.Future[TriageResult]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        """Answers what is queued, then stops: part of a graceful shutdown."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def triage(self, claim: Claim) -> TriageResult:
        future: asyncio.Future[TriageResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((claim, future))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.serial.timeout)
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.serial.timeout:g} s") from error

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            await self._answer(batch)

    async def _answer(self, batch: list[tuple[Claim, asyncio.Future[TriageResult]]]) -> None:
        claims = [claim for claim, _ in batch]
        try:
            results = await self.serial(claims)
        except FeatureError as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return
            for item in batch:  # one claim's bad field must not fail its neighbours
                await self._answer([item])
            return
        except Exception as error:
            for _, future in batch:
                _settle(future, error=error)
            return
        for (_, future), result in zip(batch, results, strict=True):
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
