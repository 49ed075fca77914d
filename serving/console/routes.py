"""The console's pages: sign-in, the review queue, a claim with its explanation and the
correction form. Every form carries the session's CSRF token; every page is answered with
headers that keep it out of frames, caches and other origins' reach."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from claims.store import ReviewHeld, Store
from claims.store.review import AGE_BANDS
from schemas.auth import Role
from schemas.feedback import FeedbackItem
from schemas.language import UNDETERMINED, LanguageReading
from schemas.review import PredictionDetail
from serving.auth import Authenticator, Refusal
from serving.console.sessions import ConsoleSession, Sessions
from serving.console.similar import CANDIDATES as SIMILAR_CANDIDATES
from serving.console.similar import similar_settled
from serving.routes.feedback import record_feedback
from serving.routes.review import prediction_detail

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def language_shown(reading: LanguageReading | None) -> str:
    """`pt-BR (given)`, `pt (detected)`: what an adjuster needs to know of the claim's language;
    `unknown` for an answer recorded before the service read languages."""
    if reading is None:
        return "unknown"
    tag = "undetermined" if reading.tag == UNDETERMINED else reading.tag
    return f"{tag} ({reading.source})"


templates.env.filters["language"] = language_shown
router = APIRouter(prefix="/console", include_in_schema=False)

SESSION_COOKIE = "claims_console"
SIGN_IN_COOKIE = "claims_console_sign_in"  # the sign-in form's CSRF token, before a session
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PAGE_SIZE = 25
HOLD_MINUTES = 30
REASON_CODES = (
    "confirmed",
    "misclassified",
    "missing_information",
    "new_information",
    "data_entry_error",
    "other",
)
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions


def _secure(request: Request) -> bool:
    """Cookies are Secure except on a loopback address, where a developer runs plain HTTP."""
    return (request.url.hostname or "").strip("[]") not in LOOPBACK


def render(
    request: Request,
    template: str,
    session: ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"session": session, **context}, status_code=status_code
    )
    response.headers.update(HEADERS)
    return response


def redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
    response.headers.update(HEADERS)
    return response


def _sign_in_again() -> RedirectResponse:
    response = redirect("/console/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


class Refused(Exception):
    """A page that cannot be shown: answered with `response`."""

    def __init__(self, response: Response) -> None:
        self.response = response


async def signed_in(request: Request) -> ConsoleSession:
    """The request's live session, its key checked again as the API checks keys."""
    session_id = request.cookies.get(SESSION_COOKIE)
    session = sessions(request).get(session_id)
    if session is None:
        raise Refused(_sign_in_again())
    auth: Authenticator = request.app.state.auth
    if auth.enabled and session.key is not None:
        client = request.client.host if request.client else ""
        admitted = await auth.admit(session.key, client)
        if isinstance(admitted, Refusal):
            if admitted.status_code == status.HTTP_401_UNAUTHORIZED:
                sessions(request).end(session_id)
                raise Refused(_sign_in_again())
            raise Refused(
                render(
                    request, "error.html", session, admitted.status_code, message=admitted.detail
                )
            )
    return session


async def posted(request: Request) -> tuple[ConsoleSession, dict[str, str]]:
    """A signed-in form post whose CSRF token is the session's."""
    session = await signed_in(request)
    form = {name: value for name, value in (await request.form()).items() if isinstance(value, str)}
    if not session.csrf_matches(form.get("csrf_token")):
        raise Refused(
            render(
                request,
                "error.html",
                session,
                status.HTTP_403_FORBIDDEN,
                message="The form's CSRF token is missing or out of date: reload the page.",
            )
        )
    return session, form


def _store(request: Request) -> Store:
    return request.app.state.store


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    try:
        await signed_in(request)
    except Refused as refused:
        return refused.response
    return redirect("/console/queue")


@router.get("/console.css")
def stylesheet() -> FileResponse:
    return FileResponse(HERE / "console.css", media_type="text/css")


@router.get("/sign-in")
def sign_in_form(request: Request) -> HTMLResponse:
    return _sign_in_page(request)


def _sign_in_page(
    request: Request, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    auth: Authenticator = request.app.state.auth
    response = render(
        request, "sign_in.html", None, status_code, csrf=token, error=error, keys=auth.enabled
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=600,
        path="/console/sign-in",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    token, expected = form.get("csrf_token"), request.cookies.get(SIGN_IN_COOKIE)
    if not isinstance(token, str) or not expected or not secrets.compare_digest(token, expected):
        return _sign_in_page(request, "The form was out of date: sign in again.", 403)
    auth: Authenticator = request.app.state.auth
    key = form.get("key")
    info = None
    if auth.enabled:
        if not isinstance(key, str) or not key.strip():
            return _sign_in_page(request, "Enter your API key.", 422)
        client = request.client.host if request.client else ""
        admitted = await auth.admit(key.strip(), client)
        if isinstance(admitted, Refusal):
            return _sign_in_page(request, admitted.detail, admitted.status_code)
        if not admitted.role.allows(Role.adjuster):
            return _sign_in_page(
                request,
                f"The key's role {admitted.role.value} may not use the console: "
                f"it needs {Role.adjuster.value}.",
                status.HTTP_403_FORBIDDEN,
            )
        info = admitted
    session_id, _ = sessions(request).start(
        key.strip() if info and isinstance(key, str) else None, info
    )
    response = redirect("/console/queue")
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/console/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    try:
        await posted(request)
    except Refused as refused:
        return refused.response
    sessions(request).end(request.cookies.get(SESSION_COOKIE))
    return _sign_in_again()


@dataclass
class Filters:
    route: str | None
    task: str | None
    line_of_business: str | None
    age: str | None
    page: int

    @classmethod
    def of(cls, request: Request) -> Filters:
        query = request.query_params

        def given(name: str) -> str | None:
            return query.get(name) or None

        age = given("age")
        page = query.get("page", "1")
        return cls(
            route=given("route"),
            task=given("task"),
            line_of_business=given("line_of_business"),
            age=age if age in dict(AGE_BANDS) else None,
            page=max(1, int(page)) if page.isdigit() and len(page) < 7 else 1,
        )

    def query(self, **changes: object) -> str:
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v not in (None, "", 1)})


def _age_bounds(band: str | None) -> dict[str, Any]:
    if band is None:
        return {}
    names = [name for name, _ in AGE_BANDS]
    index = names.index(band)
    low = AGE_BANDS[index - 1][1] if index else None
    return {"min_age": low, "max_age": AGE_BANDS[index][1]}


@router.get("/queue")
async def queue(request: Request) -> Response:
    try:
        session = await signed_in(request)
    except Refused as refused:
        return refused.response
    filters = Filters.of(request)
    store = _store(request)
    items, total = store.review_queue(
        route=filters.route,
        task=filters.task,
        line_of_business=filters.line_of_business,
        **_age_bounds(filters.age),
        limit=PAGE_SIZE,
        offset=(filters.page - 1) * PAGE_SIZE,
    )
    return render(
        request,
        "queue.html",
        session,
        items=items,
        total=total,
        counts=store.review_counts(),
        filters=filters,
        tasks=sorted(request.app.state.models.labels),
        bands=[name for name, _ in AGE_BANDS],
        pages=max(1, -(-total // PAGE_SIZE)),
        done=request.query_params.get("done"),
    )


def _detail_or_404(
    request: Request, session: ConsoleSession, prediction_id: str
) -> PredictionDetail:
    detail = prediction_detail(_store(request), prediction_id)
    if detail is None:
        raise Refused(
            render(
                request,
                "error.html",
                session,
                404,
                message="No such answer: it may have been deleted when its retention ran out.",
            )
        )
    return detail


@router.get("/claims/{prediction_id}")
async def claim_page(request: Request, prediction_id: str) -> Response:
    try:
        session = await signed_in(request)
        detail = _detail_or_404(request, session, prediction_id)
    except Refused as refused:
        return refused.response
    return await _claim(request, session, detail)


async def _claim(
    request: Request,
    session: ConsoleSession,
    detail: PredictionDetail,
    errors: list[str] | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    similar = await run_in_threadpool(similar_settled, _store(request), detail.claim)
    return render(
        request,
        "claim.html",
        session,
        status_code,
        detail=detail,
        segments=highlighted(detail),
        fields=claim_fields(detail),
        labels=request.app.state.models.labels,
        reason_codes=REASON_CODES,
        errors=errors or [],
        form=form or {},
        nonce=(form or {}).get("nonce") or secrets.token_urlsafe(16),
        held_by_other=_held_by_other(detail, session),
        similar=similar,
        candidates=SIMILAR_CANDIDATES,
    )


def _held_by_other(detail: PredictionDetail, session: ConsoleSession) -> str | None:
    hold = detail.review.held_by
    return hold.adjuster_id if hold is not None and hold.adjuster_id != session.name else None


@dataclass
class Segment:
    text: str
    direction: str | None = None  # "up" or "down": the phrase raised or lowered a label
    note: str = ""


def highlighted(detail: PredictionDetail) -> list[Segment]:
    """The narrative cut into plain text and the explanation's phrases, each phrase marked
    with what it did to each task's label."""
    text = detail.claim.description
    explanation = detail.result.explanation
    marks: dict[tuple[int, int], list[tuple[str, str, float]]] = {}
    if explanation is not None:
        for task, explained in explanation.tasks.items():
            for phrase in explained.phrases:
                marks.setdefault((phrase.start, phrase.end), []).append(
                    (task, explained.label, phrase.weight)
                )
    segments, at = [], 0
    for (start, end), effects in sorted(marks.items()):
        if start < at or end > len(text):
            continue  # overlaps a phrase already marked
        if start > at:
            segments.append(Segment(text[at:start]))
        total = sum(weight for _, _, weight in effects)
        note = "; ".join(
            f"{task} {label} {weight * 100:+.0f} pts" for task, label, weight in effects
        )
        segments.append(Segment(text[start:end], "up" if total > 0 else "down", note))
        at = end
    if at < len(text):
        segments.append(Segment(text[at:]))
    return segments


def claim_fields(detail: PredictionDetail) -> list[tuple[str, str]]:
    claim = detail.claim.model_dump(exclude={"description", "attributes"}, exclude_none=True)
    shown = [(name, str(value)) for name, value in claim.items()]
    return shown + [(name, str(value)) for name, value in detail.claim.attributes.items()]


@router.post("/claims/{prediction_id}/hold")
async def hold(request: Request, prediction_id: str) -> Response:
    return await _held_or_released(
        request,
        prediction_id,
        lambda store, adjuster: store.hold_review(prediction_id, adjuster, HOLD_MINUTES),
        then=f"/console/claims/{prediction_id}",
    )


@router.post("/claims/{prediction_id}/release")
async def release(request: Request, prediction_id: str) -> Response:
    return await _held_or_released(
        request,
        prediction_id,
        lambda store, adjuster: store.release_review(prediction_id, adjuster),
        then="/console/queue",
    )


async def _held_or_released(
    request: Request,
    prediction_id: str,
    change: Callable[[Store, str], object],
    then: str,
) -> Response:
    """A change to who holds the claim, by the signed-in adjuster; 409 on the claim's page when
    another holds it or it has left the queue."""
    try:
        session, _ = await posted(request)
        detail = _detail_or_404(request, session, prediction_id)
    except Refused as refused:
        return refused.response
    try:
        change(_store(request), session.name)
    except (LookupError, ReviewHeld) as error:
        return await _claim(request, session, detail, [str(error)], status.HTTP_409_CONFLICT)
    return redirect(then)


@router.post("/claims/{prediction_id}/feedback")
async def correct(request: Request, prediction_id: str) -> Response:
    """One feedback item for every task, confirmed or corrected, written as the API writes it;
    its id comes from the form, so a form sent twice is stored once."""
    try:
        session, form = await posted(request)
        detail = _detail_or_404(request, session, prediction_id)
    except Refused as refused:
        return refused.response
    holder = _held_by_other(detail, session)
    if holder is not None:
        message = f"{holder} is working on this claim: it cannot be corrected until released."
        return await _claim(request, session, detail, [message], status.HTTP_409_CONFLICT, form)
    labels = {
        task: form[f"label.{task}"]
        for task in detail.result.predictions
        if form.get(f"label.{task}")
    }
    try:
        item = FeedbackItem(
            feedback_id=f"console-{form.get('nonce', '')}",
            prediction_id=prediction_id,
            labels=labels,
            reason_code=form.get("reason_code", ""),
            adjuster_id=session.name,
            note=form.get("note") or None,
            confirmed=form.get("confirmed") == "on",
        )
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in error.errors()]
        return await _claim(request, session, detail, problems, 422, form)
    try:
        record_feedback(item, request.app.state.models, _store(request))
    except HTTPException as error:
        return await _claim(
            request, session, detail, [_said(error.detail)], error.status_code, form
        )
    if detail.review.held_by is not None:
        # the hold may have run out and someone else taken it: theirs to release
        with contextlib.suppress(LookupError, ReviewHeld):
            _store(request).release_review(prediction_id, session.name)
    return redirect(f"/console/queue?{urlencode({'done': detail.claim.claim_id})}")


def _said(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in detail)
    return str(detail)
