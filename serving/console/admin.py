"""The console's models page, for admins: the registry's versions with their lineage and the
gate's report, and promotion and rollback, each confirmed on a page of its own before it
switches what serves. Both go through the API's own routes' code."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from pydantic import ValidationError

from schemas.auth import Role
from serving.console.routes import ConsoleSession, Refused, posted, redirect, render, signed_in
from serving.routes.registry import Switch, promote, rollback

router = APIRouter(prefix="/console/models", include_in_schema=False)


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
    return render(
        request,
        "models.html",
        session,
        status_code,
        active=models.active(),
        versions=list(reversed(models.registry.versions())),
        can_roll_back=bool(pointer and pointer.previous),
        error=error,
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
