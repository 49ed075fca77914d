"""The path of a claim through the service, in one object that routes are given: admission to
the inference lanes, the micro-batcher, recording of the answers, and the one timeout.

A request's claims are admitted (or refused at once with `Overloaded`), answered by the model
in a lane, recorded, and returned, all within `timeout` of their admission; past it the caller
gets `InferenceTimeout`. A single claim shares its pass with those that arrive with it when
micro-batching is on (serving/batching.py); more claims run in a pass of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from schemas.claim import Claim
from schemas.triage import TriageResult
from serving.batching import InferenceLanes, InferenceTimeout, MicroBatcher, Runner
from serving.observability import ServiceMetrics
from serving.settings import ServiceSettings

Recorder = Callable[[Sequence[Claim], list[TriageResult]], None]
# The share of the timeout a new claim's wait may fill: the rest is its own pass, the gathering
# of its batch and the recording of its answer.
ADMISSION_SHARE = 0.75


class TriageService:
    """Claims in, recorded answers out, within one timeout. `run` is the model (a batch of
    claims to their results, on a lane's thread); `record` keeps the answers (on a thread of its
    own) before they are returned. `micro_batch`, the most claims in a shared pass, turns
    micro-batching on; `gap` and `max_wait` are how long a shared pass waits for company."""

    def __init__(
        self,
        run: Runner,
        timeout: float,
        *,
        record: Recorder | None = None,
        lanes: int = 1,
        max_backlog: int = 1024,
        micro_batch: int | None = None,
        gap: float = 0.0,
        max_wait: float = 0.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.timeout = timeout
        self.recorder = record
        metrics = metrics if metrics is not None else ServiceMetrics()
        self.lanes = InferenceLanes(
            run,
            metrics,
            lanes=lanes,
            max_backlog=max_backlog,
            wait_budget=ADMISSION_SHARE * timeout,
        )
        self.batcher = (
            None
            if micro_batch is None
            else MicroBatcher(
                self.lanes.infer,
                micro_batch,
                gap,
                max_wait,
                then=self.record,
                metrics=metrics,
                lanes=lanes,
            )
        )

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, run: Runner, record: Recorder, metrics: ServiceMetrics
    ) -> TriageService:
        return cls(
            run,
            settings.inference_timeout,
            record=record,
            lanes=settings.inference_lanes,
            max_backlog=settings.max_queued_claims,
            micro_batch=settings.micro_batch_max if settings.micro_batching else None,
            gap=settings.micro_batch_wait_ms / 1000,
            max_wait=settings.micro_batch_max_wait_ms / 1000,
            metrics=metrics,
        )

    async def start(self) -> None:
        if self.batcher is not None:
            await self.batcher.start()

    async def close(self) -> None:
        """Answers what is queued, then lets the lanes' threads end: a graceful shutdown."""
        if self.batcher is not None:
            await self.batcher.stop()
        self.lanes.close()

    async def triage(self, claims: Sequence[Claim]) -> list[TriageResult]:
        """A request's claims in one pass of their own. Cancelled (client gone) before its lane
        takes it up, the pass never runs; during the pass, nothing is recorded."""
        async with self._admitted(len(claims)):
            results = await self.lanes.infer(claims)
            await self.record(claims, results)
            return results

    async def triage_one(self, claim: Claim) -> TriageResult:
        """One claim's answer, from a pass shared with the claims that arrive with it when
        micro-batching is on."""
        if self.batcher is None:
            return (await self.triage([claim]))[0]
        async with self._admitted(1) as deadline:
            return await self.batcher.submit(claim, deadline)

    async def record(self, claims: Sequence[Claim], results: list[TriageResult]) -> None:
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder, claims, results)

    @asynccontextmanager
    async def _admitted(self, count: int) -> AsyncIterator[float]:
        """`count` claims in the backlog until their answer, or Overloaded at once; yields
        their deadline on the event loop's clock, the timeout from now."""
        self.lanes.admit(count)
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                yield deadline
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.timeout:g} s") from error
        finally:
            self.lanes.release(count)
