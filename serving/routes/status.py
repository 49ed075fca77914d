"""Liveness, readiness and the model that serves: what operators and load balancers ask."""

from __future__ import annotations

from fastapi import APIRouter

from schemas.service import ActiveModel, Liveness, Readiness
from serving.dependencies import Models

router = APIRouter()


@router.get("/healthz", response_model=Liveness, tags=["status"])
def healthz() -> Liveness:
    return Liveness()


@router.get("/readyz", response_model=Readiness, tags=["status"])
def readyz(models: Models) -> Readiness:
    """`degraded` still serves (from the base model), so it answers 200 with the reason."""
    return models.readiness()


@router.get("/v1/models/active", response_model=ActiveModel, tags=["models"])
def active_model(models: Models) -> ActiveModel:
    return models.active()
