"""The path of a claim through the service, in one object that routes are given: admission to
the inference lanes, the micro-batcher, recording of the answers, and the one timeout.

A request's claims are admitted (or refused at once with `Overloaded`), answered by the model
in a lane, recorded, and returned, all within `timeout` of their admission; past it the caller
gets `InferenceTimeout`. A lone claim shares its pass with those that arrive with it when
micro-batching is on (serving/batching.py); more claims run in a pass of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial

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
    own) before they are returned. `explained` is `run` with every answer explained, for
    requests that ask for it. `micro_batch`, the most claims in a shared pass, turns
    micro-batching on; `gap` and `max_wait` are how long a shared pass waits for company."""

    def __init__(
        self,
        run: Runner,
        record: Recorder,
        timeout: float,
        *,
        lanes: int = 1,
        max_backlog: int = 1024,
        micro_batch: int | None = None,
        gap: float = 0.0,
        max_wait: float = 0.0,
        metrics: ServiceMetrics | None = None,
        explained: Runner | None = None,
    ) -> None:
        self.record = record
        self.explained = explained or run
        self.timeout = timeout
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
                then=partial(asyncio.to_thread, record),  # type: ignore[call-arg]  # mypy misreads partial(to_thread)
                metrics=metrics,
                lanes=lanes,
                claims_within=self.lanes.claims_within,
            )
        )

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        run: Runner,
        record: Recorder,
        metrics: ServiceMetrics,
        explained: Runner | None = None,
    ) -> TriageService:
        return cls(
            run,
            record,
            settings.inference_timeout,
            lanes=settings.inference_lanes,
            max_backlog=settings.max_queued_claims,
            micro_batch=settings.micro_batch_max if settings.micro_batching else None,
            gap=settings.micro_batch_wait_ms / 1000,
            max_wait=settings.micro_batch_max_wait_ms / 1000,
            metrics=metrics,
            explained=explained,
        )

    async def start(self) -> None:
        if self.batcher is not None:
            await self.batcher.start()

    async def close(self) -> None:
        """Answers what is queued, then lets the lanes' threads end: a graceful shutdown."""
        if self.batcher is not None:
            await self.batcher.stop()
        self.lanes.close()

    async def triage(self, claims: Sequence[Claim], explain: bool = False) -> list[TriageResult]:
        """The claims' answers, once recorded. A lone claim shares its pass with the claims that
        arrive with it when micro-batching is on; more run in a pass of their own, and so do
        claims whose every answer is to be explained (`explain`), not only those needing review.

        Raises Overloaded at once when the lanes have no room for them, and InferenceTimeout
        when they are not answered within the timeout. Cancelled (the client gone) before its
        pass, a claim is never computed; during it, it is not recorded."""
        self.lanes.admit(len(claims))
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                if self.batcher is not None and len(claims) == 1 and not explain:
                    return [await self.batcher.submit(claims[0], deadline)]
                results = await self.lanes.infer(claims, self.explained if explain else None)
                await asyncio.to_thread(self.record, claims, results)
                return results
        except TimeoutError as error:
            raise InferenceTimeout(f"no answer within {self.timeout:g} s") from error
        finally:
            self.lanes.release(len(claims))
