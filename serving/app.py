"""The FastAPI application: models are loaded once at start-up, then every route reads them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from claims.features import FeatureError
from claims.store import Store
from serving.jobs import JobLauncher
from serving.limits import BodySizeLimit
from serving.models import ModelService
from serving.routes import batch_jobs, feedback, registry, retraining, triage
from serving.routes import status as status_routes
from serving.settings import ServiceSettings

log = logging.getLogger("claims.serving")


async def follow_champion(models: ModelService, interval: float) -> None:
    """Looks at the registry's champion every `interval` seconds and switches when it changes."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(models.reload)
        except Exception:  # the loop must outlive any one bad look
            log.exception("reloading the champion failed")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store = Store.from_settings(settings)
        app.state.models = models = ModelService.start(settings)
        app.state.launcher = launcher = JobLauncher(settings, store)
        for job_id in launcher.resume_scoring():
            log.warning("resumed batch job %s, interrupted by a restart", job_id)
        follower = (
            None
            if models.pinned
            else asyncio.create_task(follow_champion(models, settings.reload_interval))
        )
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            store.close()

    app = FastAPI(
        title="Claims Specialist",
        version="0.1.0",
        summary="Triage of first notices of loss by an insurer's own fine-tuned model.",
        lifespan=lifespan,
    )
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger={batch_jobs.router.prefix: settings.max_upload_bytes},
    )
    app.include_router(status_routes.router)
    for routes in (triage, batch_jobs, feedback, retraining, registry):
        app.include_router(routes.router)

    @app.exception_handler(FeatureError)
    async def unreadable_field(request: Request, error: FeatureError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": ["body", "attributes"], "msg": str(error)}]},
        )

    return app
