"""Adjusters' corrections: stored once per feedback_id, durably, before they are acknowledged."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import AwareDatetime

from claims.store import FeedbackConflict, Store, UnknownPrediction
from schemas.feedback import FeedbackItem, FeedbackList, FeedbackRecord
from serving.auth import Adjuster
from serving.dependencies import Models, StoreDep
from serving.models import ModelService
from serving.responses import SECURED, Problem, documented, invalid_field

router = APIRouter(
    prefix="/v1",
    tags=["feedback"],
    dependencies=[Adjuster],
    responses=SECURED | documented(413),
)


@router.post(
    "/feedback",
    response_model=FeedbackRecord,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": FeedbackRecord, "description": "Already stored: the same item again."},
        409: {"model": Problem, "description": "The feedback_id is taken by another item."},
    },
)
def submit_feedback(
    item: FeedbackItem, response: Response, models: Models, store: StoreDep
) -> FeedbackRecord:
    record, created = record_feedback(item, models, store)
    if not created:
        response.status_code = status.HTTP_200_OK
    return record


def record_feedback(
    item: FeedbackItem, models: ModelService, store: Store
) -> tuple[FeedbackRecord, bool]:
    """Checks the labels against the served tasks and stores the item once: the API's and the
    console's corrections both go through here. Raises HTTPException (422, 409)."""
    known = models.labels
    for task, label in item.labels.items():
        if task not in known:
            raise invalid_field(["labels", task], f"unknown task; the tasks are {sorted(known)}")
        if label not in known[task]:
            raise invalid_field(
                ["labels", task], f"unknown label {label!r}; the labels are {known[task]}"
            )
    try:
        return store.add_feedback(item)
    except UnknownPrediction as error:
        raise invalid_field(["prediction_id"], f"no prediction {item.prediction_id!r}") from error
    except FeedbackConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error
    except ValueError as error:
        raise invalid_field(["claim_id"], str(error)) from error


@router.get("/feedback", response_model=FeedbackList)
def list_feedback(
    store: StoreDep,
    claim_id: str | None = None,
    task: str | None = None,
    adjuster_id: str | None = None,
    since: AwareDatetime | None = Query(
        None, description="Received at or after, ISO 8601 with a time zone."
    ),
    until: AwareDatetime | None = Query(None, description="Received before, with a time zone."),
    confirmed: bool | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**31 - 1),
) -> FeedbackList:
    """Oldest first."""
    items = store.list_feedback(
        claim_id=claim_id,
        task=task,
        adjuster_id=adjuster_id,
        since=since,
        until=until,
        confirmed=confirmed,
        limit=limit,
        offset=offset,
    )
    return FeedbackList(items=items)
