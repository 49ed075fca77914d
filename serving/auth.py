"""API keys, roles and a rate per key: every route but /healthz and /readyz needs a live key.

A key goes in `Authorization: Bearer <key>` or `X-API-Key: <key>`. 401 without a valid key,
403 when its role does not allow the route, 429 past the key's rate. Keys are looked up in the
store (hashed) and remembered for a few seconds, so a revocation takes effect that fast.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from claims.store import Store
from schemas.auth import ApiKeyInfo, Role

bearer = HTTPBearer(auto_error=False, description="An API key from `claims keys create`.")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute, in bursts of up to a tenth."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 10.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, key_id: str) -> float:
        """0 when the request may go ahead (and is counted), else seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Authenticator:
    def __init__(
        self, store: Store, *, enabled: bool, per_minute: int, remember_seconds: float = 5.0
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.limiter = RateLimiter(per_minute)
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


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def require(role: Role) -> Callable[..., Awaitable[ApiKeyInfo | None]]:
    """A dependency that lets a request through only with a key whose role allows `role`.

    Async, so that a remembered key costs the event loop no hop to a worker thread: under load
    each hop waits for the GIL behind the inference thread. Only a lookup in the store goes to
    a thread."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        header_key: Annotated[str | None, Depends(api_key_header)],
    ) -> ApiKeyInfo | None:
        auth: Authenticator = request.app.state.auth
        if not auth.enabled:
            return None
        key = credentials.credentials if credentials else header_key
        if not key:
            raise _unauthorised("an API key is required: Authorization: Bearer <key>")
        known, info = auth.remembered(key)
        if not known:
            info = await run_in_threadpool(auth.identify, key)
        if info is None:
            raise _unauthorised("the API key is not valid, or was revoked")
        request.state.key_id = info.key_id
        if not info.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"the key's role {info.role.value} may not do this: it needs {role.value}",
            )
        wait = auth.limiter.wait_needed(info.key_id)
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="rate limit of this key reached",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        return info

    return check


Triage = Depends(require(Role.triage))
Adjuster = Depends(require(Role.adjuster))
Admin = Depends(require(Role.admin))
