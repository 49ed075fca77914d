"""Metrics, structured logs and request ids: what operators need to see the service, and nothing
about the people in the claims.

- `ServiceMetrics` holds the Prometheus metrics in a registry of its own, so every app (and every
  test) counts apart; `render()` is what `GET /metrics` answers.
- `RequestObservability` is a pure-ASGI middleware: a request id for every request, its latency
  and status by route template, and one JSON log line per request.
- `JsonFormatter` and `configure_logging` write every log record as one JSON object per line;
  `redact` takes e-mail addresses, phone numbers, policy and ID numbers and names out of any text
  that must be logged, because a log line outlives the claim it describes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.triage import TriageResult
from serving import redaction_pt

try:  # FastAPI >= 0.16x keeps included routers nested; this walks their effective routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI copies every included route into app.routes
    iter_route_contexts = None  # type: ignore[assignment]

REQUEST_LOGGER = "claims.requests"
REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED = "unmatched"
OTHER_REASON = "other"

# Seconds: from a cached health check to a full batch of 256 claims on a small CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Claims per forward pass: one (POST /v1/triage) up to MAX_BATCH_CLAIMS (256).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served, for every log record written while serving it."""

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FALLBACK_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own: two apps in one process
    (tests, a reload) never clash over a metric name."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "claims_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "claims_http_request_seconds",
            "Time from the request's arrival to the end of its response, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "claims_inference_batch_size",
            "Claims per forward pass.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "claims_predictions_total",
            "Claims triaged, by the model that answered (tuned or base).",
            ["source"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "claims_fallbacks_total",
            "Claims answered by the base model instead of the specialist, by fallback code.",
            ["reason"],
            registry=self.registry,
        )
        self.computed = Counter(
            "claims_computed_total",
            "Claims through a forward pass, answered or not.",
            registry=self.registry,
        )
        self.busy = Counter(
            "claims_inference_busy_seconds_total",
            "Seconds the inference lanes spent in passes, all lanes together: over time and "
            "lanes, how saturated the service is.",
            registry=self.registry,
        )
        self.shed = Counter(
            "claims_shed_total",
            "Claims given no model answer, by reason: queue_full (refused with 503), "
            "deadline and client_gone (dropped before their pass), late (their caller left "
            "during the pass; not recorded).",
            ["reason"],
            registry=self.registry,
        )
        self.active_model = Gauge(
            "claims_active_model_info",
            "1 for the model that serves now.",
            ["source", "model_version"],
            registry=self.registry,
        )
        self._active: tuple[str, str] | None = None
        self._switching = threading.Lock()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """`route` is the route template, never the raw path, so the label set stays bounded."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_results(self, results: Sequence[TriageResult]) -> None:
        """Call once per forward pass with the results it produced."""
        if not results:
            return
        self.batch_size.observe(len(results))
        for result in results:
            served_by = result.served_by
            self.predictions.labels(served_by.source).inc()
            if served_by.fallback_reason:
                self.fallbacks.labels(fallback_code(served_by.fallback_reason)).inc()

    def set_active_model(self, source: str, version: str) -> None:
        """Only the model that serves now reads 1; the previous one's series disappears."""
        with self._switching:
            active = (source, version)
            if active == self._active:
                return
            if self._active is not None:
                self.active_model.remove(*self._active)
            self.active_model.labels(*active).set(1)
            self._active = active

    def render(self) -> tuple[bytes, str]:
        """The payload and content type that `GET /metrics` answers."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def fallback_code(reason: str) -> str:
    """The code before the first ':' ("inference_error: RuntimeError" -> "inference_error"),
    never the free text, which names paths and errors and would make a label per message."""
    code = reason.split(":", 1)[0].strip()
    return code if _FALLBACK_CODE.fullmatch(code) else OTHER_REASON


# --- Redaction -------------------------------------------------------------------------------
# Three passes: e-mail addresses; then dates (kept as they are), phone numbers and ID numbers in
# one scan, so a date is never read as a phone or an ID; then names after a cue. Portuguese and
# Brazilian shapes and cues come from `serving.redaction_pt`.

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)

_DATE = (
    r"(?<![\w.\-/])"
    r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2}))"
    r"(?![\d\-/]|[.,]\d)"
)
_NUMBER_PATTERNS = {
    "date": _DATE,
    **redaction_pt.NUMBER_PATTERNS,
    # +44 20 7946 0958, +1 (555) 123-4567, +33 6 12 34 56 78, +353 (0)1 234 5678
    "intl_phone": r"(?<![\w+])\+\d{1,3}(?:[\s.\-]?\(\d{1,4}\))?(?:[\s.\-]?\d{1,5}){1,6}(?!\w)",
    # (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567, 1-800-555-1234, 555-0100
    "us_phone": (
        r"(?<![\w.\-/])(?:(?:1[\s.\-])?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]|\d{3}[.\-])"
        r"\d{4}(?![\w\-]|[.,]\d)"
    ),
    "ssn": r"(?<![\w\-])\d{3}-\d{2}-\d{4}(?![\w\-])",
    # 020 7946 0958, 06 12 34 56 78, 030 1234567, 0171/2345678: a national number with a trunk 0
    "national_phone": (r"(?<![\w.\-/+])0\d{1,4}(?:[\s.\-/]?\d{2,8}){1,4}(?![\w\-]|[.,/]\d)"),
    # policy no. 44719, Policy #: HO-3318, ID 4471: a number after a word that names one
    "cued_id": (
        r"(?<![\w])(?P<cue>(?i:policy|pol|certificate|cert|member|account|acct|passport"
        r"|licen[cs]e|ssn|sin|nino|tax\s+id|id)(?:\s*(?i:no\.?|number|num|nr\.?|#))?"
        r"(?:\s*(?i:is))?\s*[:#]?\s*)"
        rf"(?!{_DATE})(?=(?:[A-Za-z\-/]*\d){{4}})(?P<token>[A-Za-z0-9][A-Za-z0-9\-/]*)"
        r"(?![\w\-])"
    ),
    # POL-2024-001234, HO3-1234567, 1HGCM82633A004352 (a VIN): capitals and 5+ digits
    "upper_id": r"(?<![\w\-/])(?=[A-Z0-9\-/]*[A-Z])[A-Z0-9][A-Z0-9\-/]{4,}(?![\w\-/])",
    # P123456789, pol-2024001234, AB#123456: a short prefix and 5+ digits
    "prefixed_id": r"(?<![\w\-/])[A-Za-z]{1,4}[\-#]?\d{5,}(?:-\d+)*(?![\w\-])",
    # 123456, 4417998812: six digits or more in a row, unless money ($125000)
    "digits": r"(?<![\w.,$€£\-])\d{6,}(?![\w\-]|[.,]\d)",
}
_NUMBERS = re.compile("|".join(f"(?P<{name}>{body})" for name, body in _NUMBER_PATTERNS.items()))
_MIN_PHONE_DIGITS = {"intl_phone": 7, "national_phone": 9}
_MIN_ID_DIGITS = 5

# A name is 1-3 capitalised words or initials: Smith, O'Brien, McDonald, Smith-Jones, J.
_NAME_WORD = r"(?:[A-Z]['\u2019])?[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?"
_CAPS_WORD = r"(?:[A-Z]['\u2019])?[A-Z][A-Za-z]*(?:-[A-Z][A-Za-z]+)?"
_INITIAL = r"[A-Z]\."
_NAME = rf"(?:{_INITIAL}|{_NAME_WORD})(?:\s+(?:{_INITIAL}|{_NAME_WORD})){{0,2}}"
_ANY_CASE_NAME = rf"(?:{_INITIAL}|{_CAPS_WORD})(?:,?\s+(?:{_INITIAL}|{_CAPS_WORD})){{0,2}}"
_ROLES = (
    r"claimant|co-claimant|insured|named\s+insured|policy\s*holder|driver|passenger|witness"
    r"|tenant|landlord|owner|homeowner|pedestrian|cyclist|employee|contact|caller|reporter"
    r"|spoke\s+(?:with|to)|called|named"
)
_NAMES = re.compile(
    # Mr. Smith, Dr J. Smith, Mrs O'Brien: the title goes too.
    rf"(?<![\w])(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+(?P<titled>{_ANY_CASE_NAME})(?![\w'\u2019])"
    # name: John Smith, Name: SMITH, JOHN, full name is Jane Doe: the cue stays.
    rf"|(?P<name_cue>(?<![\w])(?i:(?:full\s+|first\s+|last\s+|sur)?name)"
    rf"(?:\s*[:=]\s*|\s+(?i:is|was)\s+))(?P<named>{_ANY_CASE_NAME})(?![\w'\u2019])"
    # claimant John Smith, insured: Jane Doe, witness is Ann Lee: the role stays.
    rf"|(?P<role>(?<![\w])(?i:{_ROLES})(?:\s*[:=]\s*|\s+)(?:(?i:is|was)\s+)?)"
    rf"(?P<role_name>{_NAME})(?![\w'\u2019])"
)


def _number(match: re.Match[str]) -> str:
    kind, text = match.lastgroup, match.group()
    if kind == "date":
        return text
    if kind == "pt_cued":
        return redaction_pt.cued_number(match)
    if kind in redaction_pt.PHONE_KINDS:
        return "[phone]"
    if kind in _MIN_PHONE_DIGITS:
        digits = sum(c.isdigit() for c in text)
        return "[phone]" if digits >= _MIN_PHONE_DIGITS[kind] else text
    if kind == "us_phone":
        return "[phone]"
    if kind == "cued_id":
        return f"{match.group('cue')}[id]"
    if kind == "upper_id" and sum(c.isdigit() for c in text) < _MIN_ID_DIGITS:
        return text
    return "[id]"


def _name(match: re.Match[str]) -> str:
    if match.group("titled") is not None:
        return "[name]"
    if match.group("named") is not None:
        return f"{match.group('name_cue')}[name]"
    return f"{match.group('role')}[name]"


def redact(text: str) -> str:
    """`text` without e-mail addresses, phone numbers, policy and ID numbers, or names given after
    a cue (a title, "name:", a role such as claimant or insured); dates, amounts and ordinary words
    stay, so the line still says what happened."""
    if not text:
        return text
    text = _EMAIL.sub("[email]", text)
    text = _NUMBERS.sub(_number, text)
    return _NAMES.sub(_name, redaction_pt.redact_names(text))


# --- JSON logs -------------------------------------------------------------------------------

FIELDS = "fields"
"""The `extra` key for structured fields: `log.info("...", extra={"fields": {"job_id": j}})`.
Each becomes a top-level key of the JSON line; string values are redacted, except those named in
`UNREDACTED_FIELDS`, whose values the service itself makes."""
UNREDACTED_FIELDS = frozenset(
    {"request_id", "method", "route", "status", "duration_ms", "client", "key_id"}
)
_CORE_KEYS = frozenset({"time", "level", "logger", "message", "error", "traceback", "stack"})


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers to parse without guessing; every text the
    record carries (message, exception, string fields) passes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        current = request_id.get()
        if current is not None:
            payload["request_id"] = current
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                key = str(key)
                if key in _CORE_KEYS:
                    continue
                payload[key] = value if key in UNREDACTED_FIELDS else _redact_value(value)
        if record.exc_info and record.exc_info[0] is not None:
            kind, error = record.exc_info[0], record.exc_info[1]
            payload["error"] = f"{kind.__name__}: {redact(str(error))}"
            payload["traceback"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the root logger and uvicorn's own loggers; uvicorn's access log
    is silenced because `RequestObservability` logs each request, with its id and route.

    Call it after uvicorn has set up its logging (in the app's lifespan, or run uvicorn with
    `log_config=None`), or uvicorn's config replaces these handlers. Calling it again replaces
    the handler it installed, and a plain StreamHandler (basicConfig's) that would print every
    line twice; other handlers (pytest's capture, a file) stay."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._claims_json = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        # ours from an earlier call, or a plain basicConfig handler that would print twice
        if getattr(old, "_claims_json", False) or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        server = logging.getLogger(name)
        server.handlers.clear()
        server.propagate = True
        server.setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.setLevel(logging.CRITICAL + 1)


# --- The middleware --------------------------------------------------------------------------


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_REQUEST_ID.fullmatch(text) else None
    return None


def _candidate_routes(app: Any) -> Iterable[Any]:
    routes = getattr(app, "routes", None) or ()
    return iter_route_contexts(routes) if iter_route_contexts is not None else routes


def route_template(scope: Scope, request: Scope | None = None) -> str:
    """The template of the route that serves `scope` ("/v1/batch-jobs/{job_id}"), else
    "unmatched". `request` is a copy of the scope as it arrived, before routing changed it.

    The app's routes are matched again rather than trusting `scope["route"]` alone: a route in a
    nested router knows only its own part of the path, and a request refused before routing
    (413 from the body limit) has no `scope["route"]` at all."""
    probe = dict(request if request is not None else scope)
    partial = None
    try:
        for route in _candidate_routes(scope.get("app")):
            match, _ = route.matches(probe)
            if match is Match.FULL:
                return _template_of(route) or UNMATCHED
            if match is Match.PARTIAL and partial is None:
                partial = route
    except Exception:  # a route type we cannot probe: fall back on what routing recorded
        partial = None
    if partial is not None:
        return _template_of(partial) or UNMATCHED
    return _template_of(scope.get("route")) or UNMATCHED


def _template_of(route: Any) -> str | None:
    if route is None:
        return None
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else None


def _key_id(scope: Scope) -> str | None:
    state = scope.get("state")
    key = state.get("key_id") if isinstance(state, Mapping) else getattr(state, "key_id", None)
    return None if key is None else str(key)


class RequestObservability:
    """Pure ASGI (no BaseHTTPMiddleware), so streamed responses and background tasks keep
    working: a request id for each request, echoed in `X-Request-ID`; its latency and status
    counted by route template; one log line on "claims.requests" without body, query or
    headers."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger(REQUEST_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        arrived = dict(scope)
        status: int | None = None
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            failed = True
            raise
        finally:
            seconds = time.perf_counter() - started
            code = 500 if failed or status is None else status
            try:
                self._record(scope, arrived, rid, code, seconds)
            finally:
                request_id.reset(token)

    def _record(self, scope: Scope, arrived: Scope, rid: str, status: int, seconds: float) -> None:
        method = scope["method"]
        route = route_template(scope, arrived)
        self.metrics.observe_request(method, route, status, seconds)
        client = scope.get("client")
        fields: dict[str, Any] = {
            "request_id": rid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": client[0] if client else None,
        }
        key_id = _key_id(scope)
        if key_id is not None:
            fields["key_id"] = key_id
        self.log.info("%s %s %s", method, route, status, extra={FIELDS: fields})
