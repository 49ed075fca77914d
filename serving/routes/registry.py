"""The registry's versions, and the promotions and rollbacks that switch what serves."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from claims.store.registry import RegistryError
from schemas.registry import ModelVersion
from schemas.service import ActiveModel
from serving.auth import Admin, Triage
from serving.dependencies import Models
from serving.responses import SECURED, documented

router = APIRouter(
    prefix="/v1/models", tags=["models"], responses=SECURED | documented(404, 409, 413)
)


class Switch(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Recorded in the registry.")


class VersionList(BaseModel):
    items: list[ModelVersion]


@router.get("", response_model=VersionList, dependencies=[Triage])
def list_versions(models: Models) -> VersionList:
    return VersionList(items=models.registry.versions())


@router.get("/{version}", response_model=ModelVersion, dependencies=[Triage])
def show_version(version: str, models: Models) -> ModelVersion:
    try:
        return models.registry.get(version)
    except RegistryError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from error


@router.post("/{version}/promote", response_model=ActiveModel, dependencies=[Admin])
def promote(version: str, switch: Switch, models: Models) -> ActiveModel:
    """Make a version the champion and switch to it before answering."""
    try:
        models.registry.promote(version, switch.reason)
    except RegistryError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from error
    models.reload()
    return models.active()


@router.post("/rollback", response_model=ActiveModel, dependencies=[Admin])
def rollback(switch: Switch, models: Models) -> ActiveModel:
    try:
        models.registry.rollback(switch.reason)
    except RegistryError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error
    models.reload()
    return models.active()
