"""Liveness, readiness and the model that serves: what operators and load balancers ask."""

from __future__ import annotations

from fastapi import APIRouter, Request

from schemas.service import ActiveModel, Liveness, Readiness
from serving.auth import Triage
from serving.dependencies import Models
from serving.observability import fallback_code
from serving.responses import SECURED

router = APIRouter()


@router.get("/healthz", response_model=Liveness, tags=["status"])
def healthz() -> Liveness:
    return Liveness()


@router.get("/readyz", response_model=Readiness, tags=["status"])
def readyz(models: Models, request: Request) -> Readiness:
    """`degraded` still serves (from the base model), so it answers 200 with the reason's code:
    anyone may ask, so the full reason, which names paths and errors, is for keys only
    (`GET /v1/models/active`)."""
    readiness = models.readiness()
    if readiness.reason is not None:
        readiness.reason = fallback_code(readiness.reason)
    readiness.auth = "enabled" if request.app.state.auth.enabled else "disabled"
    return readiness


@router.get(
    "/v1/models/active",
    response_model=ActiveModel,
    tags=["models"],
    dependencies=[Triage],
    responses=SECURED,
)
def active_model(models: Models) -> ActiveModel:
    return models.active()
