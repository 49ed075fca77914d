"""Liveness, readiness and the model that serves: what operators and load balancers ask."""

from __future__ import annotations

from fastapi import APIRouter, Request

from schemas.service import ActiveModel, Liveness, Readiness
from serving.models import ModelService

router = APIRouter()


def model_service(request: Request) -> ModelService:
    return request.app.state.models


@router.get("/healthz", response_model=Liveness, tags=["status"])
def healthz() -> Liveness:
    return Liveness()


@router.get("/readyz", response_model=Readiness, tags=["status"])
def readyz(request: Request) -> Readiness:
    """`degraded` still serves (from the base model), so it answers 200 with the reason."""
    return model_service(request).readiness()


@router.get("/v1/models/active", response_model=ActiveModel, tags=["models"])
def active_model(request: Request) -> ActiveModel:
    return model_service(request).active()
