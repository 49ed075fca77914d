"""The adjuster's desk over the API: one stored answer in full, and the queue of answers that
need a person, which an adjuster may hold for a while so that no one else works the claim."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from claims.store import ReviewHeld
from schemas.review import HoldRequest, PredictionDetail, ReviewHold, ReviewQueue
from serving.auth import Adjuster
from serving.dependencies import StoreDep
from serving.responses import SECURED, Problem, documented

router = APIRouter(prefix="/v1", tags=["review"], dependencies=[Adjuster], responses=SECURED)

NOT_QUEUED: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such answer on the review queue."}
}
HELD: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Another adjuster holds the item."}
}


def prediction_detail(store: StoreDep, prediction_id: str) -> PredictionDetail | None:
    """The answer, its review state and its claim's feedback: what the console shows too."""
    record = store.prediction(prediction_id)
    if record is None:
        return None
    return PredictionDetail(
        prediction_id=record.prediction_id,
        claim=record.claim,
        result=record.result,
        model_version=record.model_version,
        policy_version=record.result.decision.policy_version,
        source=record.source,
        created_at=record.created_at,
        review=store.review_state(prediction_id),
        feedback=store.list_feedback(claim_id=record.claim.claim_id, limit=1000),
    )


@router.get(
    "/predictions/{prediction_id}",
    response_model=PredictionDetail,
    responses={404: {"model": Problem, "description": "No such answer, or it was forgotten."}},
)
def get_prediction(prediction_id: str, store: StoreDep) -> PredictionDetail:
    detail = prediction_detail(store, prediction_id)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no prediction {prediction_id!r}")
    return detail


@router.get("/review-queue", response_model=ReviewQueue)
def review_queue(
    store: StoreDep,
    route: str | None = None,
    task: str | None = Query(None, description="Only answers whose review this task asked for."),
    line_of_business: str | None = None,
    min_age_hours: float | None = Query(None, ge=0, le=1e6, description="At least this old."),
    max_age_hours: float | None = Query(None, ge=0, le=1e6, description="At most this old."),
    available_to: str | None = Query(
        None, description="An adjuster_id: leaves out what other adjusters hold."
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31 - 1),
) -> ReviewQueue:
    """Answers that need review and whose claim has no confirmed feedback yet, oldest first."""
    items, total = store.review_queue(
        route=route,
        task=task,
        line_of_business=line_of_business,
        min_age=None if min_age_hours is None else timedelta(hours=min_age_hours),
        max_age=None if max_age_hours is None else timedelta(hours=max_age_hours),
        available_to=available_to,
        limit=limit,
        offset=offset,
    )
    return ReviewQueue(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/review-queue/{prediction_id}/hold",
    response_model=ReviewHold,
    responses=NOT_QUEUED | HELD | documented(422),
)
def hold(prediction_id: str, request: HoldRequest, store: StoreDep) -> ReviewHold:
    """Holds the item for one adjuster for `minutes`; the holder may hold it again to extend."""
    try:
        return store.hold_review(prediction_id, request.adjuster_id, request.minutes)
    except LookupError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from error
    except ReviewHeld as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error


@router.delete(
    "/review-queue/{prediction_id}/hold",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_QUEUED | HELD,
)
def release(prediction_id: str, adjuster_id: str, store: StoreDep) -> Response:
    """Gives the item back to the queue; only its holder may while the hold lasts."""
    try:
        store.release_review(prediction_id, adjuster_id)
    except LookupError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from error
    except ReviewHeld as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error
    return Response(status_code=status.HTTP_204_NO_CONTENT)
