"""The store's tables, as the ORM maps them and as the migrations must create them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from schemas.language import LANGUAGE_TAG_CHARS

# Stable constraint names, the same on every backend, so later migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_CHARS = 128  # schemas.feedback.Identifier and Claim.claim_id allow no more
REASON_CODE_CHARS = 64


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend: SQLite keeps no zone, so UTC is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} has no timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Prediction(Base):
    """One triage answer; the claim and the result are their Pydantic models' JSON."""

    __tablename__ = "predictions"

    prediction_id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    claim_id: Mapped[str] = mapped_column(String(ID_CHARS), index=True)
    claim: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(String)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The language the claim was read as, and whether it was given or detected; None in
    # answers recorded before languages were read.
    language: Mapped[str | None] = mapped_column(String(LANGUAGE_TAG_CHARS))
    language_source: Mapped[str | None] = mapped_column(String(16))


class FeedbackLabel(Base):
    """One corrected task of a feedback item: a row each, so filtering by task needs no JSON."""

    __tablename__ = "feedback_labels"

    feedback_id: Mapped[str] = mapped_column(ForeignKey("feedback.feedback_id"), primary_key=True)
    task: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True, index=True)
    label: Mapped[str] = mapped_column(String(ID_CHARS))


class Feedback(Base):
    """An adjuster's correction; `seq` orders items that arrive in the same microsecond."""

    __tablename__ = "feedback"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feedback_id: Mapped[str] = mapped_column(String(ID_CHARS), unique=True)
    prediction_id: Mapped[str | None] = mapped_column(ForeignKey("predictions.prediction_id"))
    claim_id: Mapped[str] = mapped_column(String(ID_CHARS), index=True)
    reason_code: Mapped[str] = mapped_column(String(REASON_CODE_CHARS))
    adjuster_id: Mapped[str] = mapped_column(String(ID_CHARS), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    confirmed: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str | None] = mapped_column(String)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    labels: Mapped[list[FeedbackLabel]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=FeedbackLabel.task
    )


# At most one retrain queued or running, across every replica that shares the store.
_ONE_ACTIVE = text("kind = 'retrain' AND state IN ('queued', 'running')")
# Every replica looks for lapsed leases every few seconds: among the active jobs only.
_ACTIVE = text("state IN ('queued', 'running')")


class Job(Base):
    """A background job's last known state; `result` is JSON. A partial unique index lets the
    database, not a check before the insert, refuse a second active retrain. A queued job that
    no one holds and whose `command` is known waits for a replica with a free slot to claim it;
    the process doing the job's work holds its lease (`lease_owner`) and renews it; once
    `lease_expires_at` has passed, any replica may claim the job (claims/store/leases.py)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "uq_jobs_one_active_retrain",
            "kind",
            unique=True,
            sqlite_where=_ONE_ACTIVE,
            postgresql_where=_ONE_ACTIVE,
        ),
        Index(
            "ix_jobs_active_lease",
            "lease_expires_at",
            sqlite_where=_ACTIVE,
            postgresql_where=_ACTIVE,
        ),
    )

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String, index=True)
    state: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(ID_CHARS))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # times a replica claimed it after its lease lapsed: a job whose process dies every time
    # is failed rather than started again for ever
    takeovers: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # the API key that created it ("" when keys were off); None for a retrain, or a job from
    # before owners were kept, which only an admin may read
    owner_key: Mapped[str | None] = mapped_column(String(32))
    # the `claims` command line that does its work, as a JSON list: any replica can start it
    command: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    """An API key: its public id, and the sha256 of the whole key (the secret is never kept)."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(ID_CHARS))
    role: Mapped[str] = mapped_column(String(16))
    key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReviewTask(Base):
    """A task whose low confidence sent an answer to review: the queue's task filter."""

    __tablename__ = "review_tasks"

    prediction_id: Mapped[str] = mapped_column(
        ForeignKey("review_items.prediction_id"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True, index=True)


class ReviewItem(Base):
    """An answer that needs a person: on the review queue until its claim has confirmed
    feedback. One adjuster may hold it (`claimed_by`) until `claimed_until`."""

    __tablename__ = "review_items"

    prediction_id: Mapped[str] = mapped_column(
        ForeignKey("predictions.prediction_id"), primary_key=True
    )
    claim_id: Mapped[str] = mapped_column(String(ID_CHARS), index=True)
    route: Mapped[str] = mapped_column(String(ID_CHARS), index=True)
    line_of_business: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(ID_CHARS))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tasks: Mapped[list[ReviewTask]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by=ReviewTask.task
    )


class ModelVersionRecord(Base):
    """A registered version: its checkpoint is the folder of the same name on the shared data
    path; `metrics` and `lineage` (where it came from, its gate report) are their models' JSON."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    strategy: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(16))
    parent_version: Mapped[str | None] = mapped_column(String(ID_CHARS), index=True)
    metrics: Mapped[str] = mapped_column(Text)
    lineage: Mapped[str] = mapped_column(Text)


class ChampionEvent(Base):
    """Every promotion and rollback. The champion is the row of the highest generation, so the
    pointer and its log cannot disagree, and two switches at once cannot take one generation:
    the key refuses the second, which reads the new champion and tries again."""

    __tablename__ = "champion_events"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    previous_version: Mapped[str | None] = mapped_column(String(ID_CHARS))
    reason: Mapped[str] = mapped_column(Text)
    previous: Mapped[str] = mapped_column(Text)  # JSON list: the champions a rollback restores
