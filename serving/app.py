"""The FastAPI application: models are loaded once at start-up, then every route reads them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from claims.model.features import FeatureError
from claims.store import Store
from serving.auth import Authenticator, KeyGate, Triage
from serving.batch.jobs import JobLauncher
from serving.batching import InferenceTimeout, Overloaded, in_passing_thread
from serving.console import admin as console_admin
from serving.console import plots as console_plots
from serving.console import routes as console
from serving.console.sessions import Sessions
from serving.limits import BodySizeLimit
from serving.models import ModelService
from serving.observability import RequestObservability, ServiceMetrics, configure_logging
from serving.predictions import record
from serving.printable_urls import PrintableURLs
from serving.responses import invalid_field, unprocessable
from serving.routes import batch_jobs, feedback, registry, retraining, review, triage
from serving.routes import status as status_routes
from serving.settings import ServiceSettings
from serving.shedding import OverloadShedding
from serving.triage_service import TriageService

log = logging.getLogger("claims.serving")
RETENTION_INTERVAL_SECONDS = 3600.0
NO_AUTH_WARNING = (
    "\n" + "!" * 78 + "\n!! AUTHENTICATION IS OFF (--no-auth): anyone who can reach this port may "
    "triage,\n!! read feedback, retrain and promote models. For development only.\n" + "!" * 78
)


async def follow_champion(models: ModelService, interval: float) -> None:
    """Looks at the registry's champion every `interval` seconds and switches when it changes."""
    while True:
        await asyncio.sleep(interval)
        try:
            await in_passing_thread(models.reload)
        except Exception:  # the loop must outlive any one bad look
            log.exception("reloading the champion failed")


async def keep_retention(launcher: JobLauncher, interval: float) -> None:
    """Deletes what is past its retention at start-up, then every `interval` seconds."""
    while True:
        try:
            emptied, forgotten = await in_passing_thread(launcher.forget_old)
            if emptied or forgotten:
                log.info(
                    "retention: files of %d batch jobs and %d predictions deleted",
                    emptied,
                    forgotten,
                )
        except Exception:  # the loop must outlive any one bad pass
            log.exception("deleting what is past its retention failed")
        await asyncio.sleep(interval)


async def recover_jobs(launcher: JobLauncher, interval: float) -> None:
    """Takes over, at start-up and then every `interval` seconds, the jobs whose lease lapsed
    (their process died, here or on another replica), then starts queued jobs while this
    replica has a free slot."""
    while True:
        try:
            for job_id, outcome in await in_passing_thread(launcher.recover):
                log.warning(
                    "job %s %s here: its process stopped renewing its lease", job_id, outcome
                )
            for job_id in await in_passing_thread(launcher.start_queued):
                log.info("job %s started here, from the queue", job_id)
        except Exception:  # the loop must outlive any one bad pass
            log.exception("taking over jobs whose lease lapsed failed")
        await asyncio.sleep(interval)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()  # after uvicorn has set up its own
        app.state.metrics = metrics
        app.state.store = store = Store.from_settings(settings)
        app.state.auth = Authenticator(
            store,
            enabled=settings.auth,
            per_minute=settings.rate_limit_per_minute,
            failed_per_minute=settings.failed_keys_per_minute,
        )
        if not settings.auth:
            log.warning(NO_AUTH_WARNING)
        if "CLAIMS_AUTH" in os.environ:
            log.warning("CLAIMS_AUTH is ignored: only `claims serve --no-auth` turns keys off")
        app.state.console_sessions = Sessions()
        start_models = partial(ModelService.start, settings, store)
        app.state.models = models = await in_passing_thread(start_models)
        app.state.launcher = launcher = JobLauncher(settings, store)
        app.state.triage = triage_service = TriageService.from_settings(
            settings,
            models.triage,
            partial(record, store, metrics),
            metrics,
            explained=partial(models.triage, explain=True),
        )
        await triage_service.start()
        recovery = asyncio.create_task(recover_jobs(launcher, settings.job_lease_renew_seconds))
        follower = (
            None
            if models.pinned
            else asyncio.create_task(follow_champion(models, settings.reload_interval))
        )
        retention = asyncio.create_task(keep_retention(launcher, RETENTION_INTERVAL_SECONDS))
        try:
            yield
        finally:
            for task in (retention, recovery):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            launcher.close()
            await triage_service.close()  # answers what is queued first
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            store.close()
            gc.unfreeze()  # the models were frozen at start-up; a process may start another app

    app = FastAPI(
        title="Claims Specialist",
        version="0.1.0",
        summary="Triage of first notices of loss by an insurer's own fine-tuned model.",
        lifespan=lifespan,
        openapi_url=None,  # served below, behind a key
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(PrintableURLs)  # a NUL in a parameter would fail PostgreSQL's query
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger={batch_jobs.router.prefix: settings.max_upload_bytes},
    )
    app.add_middleware(OverloadShedding)  # a refusal under overload costs no routing or body
    # before the size limit and any body parsing: a request without a key reads no body
    app.add_middleware(KeyGate, enabled=settings.auth, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(RequestObservability, metrics=metrics)  # outermost: sees 413s too
    app.include_router(status_routes.router)
    app.include_router(console.router)
    app.include_router(console_admin.router)
    app.include_router(console_plots.router)
    for routes in (triage, batch_jobs, feedback, retraining, registry, review):
        app.include_router(routes.router)

    @app.get("/metrics", include_in_schema=False, dependencies=[Triage])
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format; the active model is read at every scrape."""
        predictor = request.app.state.models.serving.predictor
        metrics.set_active_model(predictor.source, predictor.model_version)
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Triage])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    if not settings.auth:  # a browser cannot send the key, so the page is for development

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    app.add_exception_handler(RequestValidationError, unprocessable)  # type: ignore[arg-type]

    @app.exception_handler(InferenceTimeout)
    async def too_slow(request: Request, error: InferenceTimeout) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_504_GATEWAY_TIMEOUT, content={"detail": str(error)}
        )

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, error: Overloaded) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": str(error)},
            headers={"Retry-After": str(error.retry_after)},
        )

    @app.exception_handler(FeatureError)
    async def unreadable_field(request: Request, error: FeatureError) -> Response:
        return await http_exception_handler(request, invalid_field(["attributes"], str(error)))

    return app
