"""Who may call the service: API keys, each with one role."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel


class Role(StrEnum):
    """Each role may do what the ones before it may: triage < adjuster < admin."""

    triage = "triage"
    adjuster = "adjuster"
    admin = "admin"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


class ApiKeyInfo(BaseModel):
    """A key as listed: never its secret, which only its creator sees, once."""

    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
