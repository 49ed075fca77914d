"""The console's models page, for admins: the registry's versions with their lineage and the
gate's report; promotion and rollback, each confirmed on a page of its own before it
switches what serves; and retraining, started (once confirmed) and then watched on a page
that refreshes itself while the job runs. All go through the API's own routes' code."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from pydantic import ValidationError

from schemas.auth import Role
from serving.batch.jobs import ACTIVE, RETRAIN
from serving.console.routes import ConsoleSession, Refused, posted, redirect, render, signed_in
from serving.routes.registry import Switch, promote, rollback
from serving.routes.retraining import retraining_status, start_retraining

router = APIRouter(prefix="/console/models", include_in_schema=False)

RECENT_RETRAINS = 5  # listed on the models page, newest first
REFRESH_SECONDS = 5  # how often a running retrain's page reloads itself


def admin_only(request: Request, session: ConsoleSession, page: str = "The models page") -> None:
    """Refused (403) unless the session's key is an admin's, as the API's admin routes are."""
    if not session.role.allows(Role.admin):
        raise Refused(
            render(
                request,
                "error.html",
                session,
                status.HTTP_403_FORBIDDEN,
                message=f"{page} needs the role {Role.admin.value}; this session's "
                f"key is {session.role.value}.",
            )
        )


@router.get("")
async def models_page(request: Request) -> Response:
    try:
        session = await signed_in(request)
        admin_only(request, session)
    except Refused as refused:
        return refused.response
    return _page(request, session)


def _page(
    request: Request, session: ConsoleSession, error: str | None = None, status_code: int = 200
) -> Response:
    models = request.app.state.models
    pointer = models.registry.pointer()
    launcher = request.app.state.launcher
    retrains = [
        launcher.status(job.job_id) or job
        for job in request.app.state.store.jobs(kind=RETRAIN)[:RECENT_RETRAINS]
    ]
    return render(
        request,
        "models.html",
        session,
        status_code,
        active=models.active(),
        versions=list(reversed(models.registry.versions())),
        can_roll_back=bool(pointer and pointer.previous),
        error=error,
        retrains=retrains,
        retraining=any(job.state in ACTIVE for job in retrains),
    )


@router.post("/switch")
async def switch(request: Request) -> Response:
    """`action` promote (with `version`) or rollback, and a `reason`. Without `confirmed`
    the confirmation page is answered and nothing changes."""
    try:
        session, form = await posted(request)
        admin_only(request, session)
    except Refused as refused:
        return refused.response
    action, version = form.get("action"), form.get("version", "")
    if action not in ("promote", "rollback") or (action == "promote" and not version):
        return _page(request, session, "Choose a version to promote, or roll back.", 422)
    given = form.get("reason", "").strip()
    if not given:
        return _page(request, session, "Give a reason: the registry records it.", 422)
    try:
        reason = Switch(reason=f"{given} (console: {session.name})")
    except ValidationError as error:
        return _page(request, session, f"reason: {error.errors()[0]['msg']}", 422)
    if form.get("confirmed") != "yes":
        return render(
            request, "confirm.html", session, action=action, version=version, reason=given
        )
    models = request.app.state.models
    try:
        if action == "promote":
            promote(version, reason, models)
        else:
            rollback(reason, models)
    except HTTPException as error:
        return _page(request, session, str(error.detail), error.status_code)
    return redirect("/console/models")


@router.post("/retrain")
async def retrain(request: Request) -> Response:
    """Without `confirmed` the confirmation page is answered and nothing starts; with it, the
    job starts as `POST /v1/retrain` starts it, and its page is shown."""
    try:
        session, form = await posted(request)
        admin_only(request, session)
    except Refused as refused:
        return refused.response
    if form.get("confirmed") != "yes":
        return render(request, "confirm.html", session, action="retrain")
    try:
        job = start_retraining(request.app.state.launcher)
    except HTTPException as error:
        return _page(request, session, str(error.detail), error.status_code)
    return redirect(f"/console/models/retrain/{job.job_id}")


@router.get("/retrain/{job_id}")
async def retrain_job(request: Request, job_id: str) -> Response:
    """The job's state and progress; the page reloads itself until the job has ended."""
    try:
        session = await signed_in(request)
        admin_only(request, session)
    except Refused as refused:
        return refused.response
    try:
        job = retraining_status(job_id, request.app.state.launcher)
    except HTTPException as error:
        return render(request, "error.html", session, error.status_code, message=str(error.detail))
    refresh = REFRESH_SECONDS if job.state in ACTIVE else None
    return render(request, "retrain.html", session, job=job, refresh=refresh)
