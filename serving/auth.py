"""API keys, roles and a rate per key: every route but /healthz and /readyz needs a live key.

A key goes in `Authorization: Bearer <key>` or `X-API-Key: <key>`. 401 without a valid key,
403 when its role does not allow the route, 429 past the key's rate (counted in claims) or, for
a client address, past its rate of keys that were not valid. Keys are looked up in the store
(hashed) and remembered for a few seconds, so a revocation takes effect that fast.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from claims.store import Store
from schemas.auth import ApiKeyInfo, Role

bearer = HTTPBearer(auto_error=False, description="An API key from `claims keys create`.")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


class RateLimiter:
    """A token bucket per name: `per_minute` a minute, in bursts of up to a tenth.

    A request is let in while the bucket holds a token, then pays what it costs (a batch pays
    a token per claim), so the bucket may go into debt: a large batch is never refused for good,
    but the key waits until its debt is paid before its next request."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 10.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, name: str, cost: float = 1.0) -> float:
        """0 when the request may go ahead (and `cost` is taken), else seconds until it may."""
        return self._take(name, cost, admit=True)

    def charge(self, name: str, cost: float) -> None:
        """Takes `cost` more from a request already let in, into debt if need be."""
        self._take(name, cost, admit=False)

    def waiting(self, name: str) -> float:
        """Seconds until `name` may go ahead (0: now), taking nothing."""
        return self._take(name, 0.0, admit=True)

    def _take(self, name: str, cost: float, *, admit: bool) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(name, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if admit and tokens < 1.0:
                self._buckets[name] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[name] = (tokens - cost, now)
            if len(self._buckets) > 100_000:  # names never seen again must not grow it forever
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        """Drops the buckets that have filled up again: they are as good as new ones."""
        for name, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.capacity:
                del self._buckets[name]


class Authenticator:
    def __init__(
        self,
        store: Store,
        *,
        enabled: bool,
        per_minute: int,
        failed_per_minute: int = 60,
        remember_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.limiter = RateLimiter(per_minute)
        self.failures = RateLimiter(failed_per_minute)
        self.remember_seconds = remember_seconds
        self._known: dict[str, tuple[ApiKeyInfo | None, float]] = {}
        self._lock = threading.Lock()

    def remembered(self, key: str) -> tuple[bool, ApiKeyInfo | None]:
        """(True, the key's info) when the key was looked up in the last few seconds."""
        with self._lock:
            remembered = self._known.get(key)
        if remembered is not None and remembered[1] > time.monotonic():
            return True, remembered[0]
        return False, None

    def identify(self, key: str) -> ApiKeyInfo | None:
        """Looks the key up in the store (a hash and a query) and remembers the answer."""
        now = time.monotonic()
        info = self.store.authenticate(key)
        with self._lock:
            if len(self._known) > 10_000:  # unknown keys must not grow it without bound
                self._known.clear()
            self._known[key] = (info, now + self.remember_seconds)
        return info

    async def admit(self, key: str, client: str) -> ApiKeyInfo | Refusal:
        """The key's info, once it is known valid and within its rate; else the refusal.

        A key not looked up lately costs a query, so a client address whose recent lookups
        failed too often gets 429 before another one: keys cannot be guessed at the store's
        expense. A key already remembered (valid or not) is answered as before."""
        known, info = self.remembered(key)
        if not known:
            wait = self.failures.waiting(client)
            if wait:
                return Refusal.too_many("too many requests with keys that are not valid", wait)
            info = await run_in_threadpool(self.identify, key)
            if info is None:
                self.failures.charge(client, 1.0)
        if info is None:
            return Refusal.unauthorised("the API key is not valid, or was revoked")
        wait = self.limiter.wait_needed(info.key_id)
        if wait:
            return Refusal.too_many("rate limit of this key reached", wait)
        return info


class Refusal:
    """An answer given before the request's body is read."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.detail = detail
        self.headers = headers

    @classmethod
    def unauthorised(cls, detail: str) -> Refusal:
        return cls(status.HTTP_401_UNAUTHORIZED, detail, {"WWW-Authenticate": "Bearer"})

    @classmethod
    def too_many(cls, detail: str, wait: float) -> Refusal:
        return cls(status.HTTP_429_TOO_MANY_REQUESTS, detail, {"Retry-After": str(math.ceil(wait))})

    async def send(self, scope: Scope, send: Send) -> None:
        """The connection is closed after the answer when the request has a body: the body is
        never read, and reading it only to throw it away is the cost the answer spares."""
        headers = Headers(scope=scope)
        body = json.dumps({"detail": self.detail}).encode()
        extra = {"connection": "close"} if _has_body(headers) else {}
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in self.headers.items()),
            *((name.encode(), value.encode()) for name, value in extra.items()),
        ]
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def presented_key(headers: Headers) -> str | None:
    """The key of `Authorization: Bearer <key>`, else of `X-API-Key`."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


class KeyGate:
    """Pure ASGI, ahead of routing and body parsing: a request without a valid key within its
    rate is answered before a byte of its body is read, so an anonymous 300 MB upload costs
    the service its headers, not a temporary file and a worker thread.

    Roles are still checked by each route's dependency (`Triage`, `Adjuster`, `Admin`), which
    finds the key's info where this gate left it. With keys off (`claims serve --no-auth`) the
    gate lets only requests addressed to an allowed host, from no other web origin, through:
    a web page cannot then drive a developer's service on a loopback port, neither by a
    cross-site POST nor by rebinding its own name to 127.0.0.1."""

    def __init__(self, app: ASGIApp, *, enabled: bool, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.enabled = enabled
        self.allowed_hosts = frozenset(host.lower().strip("[]") for host in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self.enabled:
            refusal = self._foreign(headers)
        elif scope["path"] in OPEN_PATHS or _console(scope["path"]):
            refusal = None  # the console checks its sessions' keys itself (serving/console)
        else:
            refusal = await self._admit(scope, headers)
        if refusal is not None:
            await refusal.send(scope, send)
            return
        await self.app(scope, receive, send)

    async def _admit(self, scope: Scope, headers: Headers) -> Refusal | None:
        """None once the key is valid and within its rate; its info is left in the scope."""
        key = presented_key(headers)
        if not key:
            return Refusal.unauthorised("an API key is required: Authorization: Bearer <key>")
        client = scope.get("client")
        auth: Authenticator = scope["app"].state.auth
        admitted = await auth.admit(key, client[0] if client else "")
        if isinstance(admitted, Refusal):
            return admitted
        state = scope.setdefault("state", {})
        state[KEY_STATE], state["key_id"] = admitted, admitted.key_id
        return None

    def _foreign(self, headers: Headers) -> Refusal | None:
        """Without keys: 403 unless the Host is allowed and any Origin is an allowed host."""
        host = _hostname(f"//{headers.get('host', '')}")
        if host not in self.allowed_hosts:
            return Refusal(
                status.HTTP_403_FORBIDDEN,
                f"without API keys only the hosts {sorted(self.allowed_hosts)} are served: "
                "set CLAIMS_ALLOWED_HOSTS",
                {},
            )
        origin = headers.get("origin")
        if origin is not None and _hostname(origin) not in self.allowed_hosts:
            return Refusal(
                status.HTTP_403_FORBIDDEN,
                "without API keys requests from other web origins are refused",
                {},
            )
        return None


def _hostname(address: str) -> str | None:
    """The host of a URL or `//host:port`, lower case; None when there is none (`null`)."""
    try:
        return urlsplit(address).hostname
    except ValueError:  # a malformed port or bracket
        return None


OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def _console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


KEY_STATE = "api_key"


def require(role: Role) -> Callable[..., Awaitable[ApiKeyInfo | None]]:
    """A dependency that lets a request through only with a key whose role allows `role`.

    The key itself was checked by `KeyGate` before the body was read; the two security
    parameters are here so that the OpenAPI schema says how to send it."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        header_key: Annotated[str | None, Depends(api_key_header)],
    ) -> ApiKeyInfo | None:
        auth: Authenticator = request.app.state.auth
        if not auth.enabled:
            return None
        info: ApiKeyInfo | None = getattr(request.state, KEY_STATE, None)
        if info is None:  # only a route outside the gate's reach gets here
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="an API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not info.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"the key's role {info.role.value} may not do this: it needs {role.value}",
            )
        return info

    return check


def caller(request: Request) -> ApiKeyInfo | None:
    """The key the request came with, as the gate found it; None without keys."""
    return getattr(request.state, KEY_STATE, None)


def charge_claims(request: Request, claims: int) -> None:
    """A request of `claims` claims costs its key that many requests' worth of its rate; the
    first was taken when it was let in."""
    auth: Authenticator = request.app.state.auth
    info: ApiKeyInfo | None = getattr(request.state, KEY_STATE, None)
    if auth.enabled and info is not None and claims > 1:
        auth.limiter.charge(info.key_id, claims - 1)


Triage = Depends(require(Role.triage))
Adjuster = Depends(require(Role.adjuster))
Admin = Depends(require(Role.admin))
