"""The FastAPI application: models are loaded once at start-up, then every route reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from claims.features import FeatureError
from serving.limits import BodySizeLimit
from serving.models import ModelService
from serving.routes import status as status_routes
from serving.routes import triage as triage_routes
from serving.settings import ServiceSettings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.models = ModelService.start(settings)
        yield

    app = FastAPI(
        title="Claims Specialist",
        version="0.1.0",
        summary="Triage of first notices of loss by an insurer's own fine-tuned model.",
        lifespan=lifespan,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(status_routes.router)
    app.include_router(triage_routes.router)

    @app.exception_handler(FeatureError)
    async def unreadable_field(request: Request, error: FeatureError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": ["body", "attributes"], "msg": str(error)}]},
        )

    return app
