"""What routes take from the application: the models, the store and the job launcher."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from claims.store import Store
from serving.batch.jobs import JobLauncher
from serving.models import ModelService


def get_models(request: Request) -> ModelService:
    return request.app.state.models


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_launcher(request: Request) -> JobLauncher:
    return request.app.state.launcher


Models = Annotated[ModelService, Depends(get_models)]
StoreDep = Annotated[Store, Depends(get_store)]
Launcher = Annotated[JobLauncher, Depends(get_launcher)]
