"""Console sessions: an API key of role adjuster or admin, exchanged for a random session id
in a cookie. The key stays on the server and is checked again at every request, as the API
checks it, so a revoked key ends its sessions and the key's rate limit still applies.

Sessions live in the service's memory: a restart signs everyone out, which `claims serve`
(one process) allows. Each has a CSRF token that every form must carry back.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from schemas.auth import ApiKeyInfo, Role

IDLE_SECONDS = 30 * 60  # signed out after this long without a request
LONGEST_SECONDS = 8 * 3600  # and after a working day, however busy
MAX_SESSIONS = 10_000


@dataclass
class ConsoleSession:
    key: str | None  # None with keys off (`claims serve --no-auth`)
    name: str
    role: Role
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    started: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def expired(self, now: float) -> bool:
        return now - self.seen > IDLE_SECONDS or now - self.started > LONGEST_SECONDS

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf.encode(), token.encode())


class Sessions:
    def __init__(self) -> None:
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def start(self, key: str | None, info: ApiKeyInfo | None) -> tuple[str, ConsoleSession]:
        """A new session for a key already checked (None, None: keys are off)."""
        session = ConsoleSession(
            key=key,
            name=info.name if info else "development",
            role=info.role if info else Role.admin,
        )
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._forget_expired()
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The live session, its idle clock restarted; None if unknown or expired."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expired(now):
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _forget_expired(self) -> None:
        """Drops the expired sessions, and if none has, the one idle longest: sign-ins cannot
        grow the table without bound."""
        now = time.monotonic()
        for session_id, session in list(self._sessions.items()):
            if session.expired(now):
                del self._sessions[session_id]
        if len(self._sessions) >= MAX_SESSIONS:
            idlest = min(self._sessions, key=lambda session_id: self._sessions[session_id].seen)
            del self._sessions[idlest]
