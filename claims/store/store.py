"""The durable store: predictions, adjusters' feedback and background jobs, in SQLite or PostgreSQL.

One `Store` is shared by the service's threads, and a retrain subprocess may open the same
database at once. SQLite copes through WAL (readers never wait), a busy timeout, and write
transactions that take the write lock when they begin (`BEGIN IMMEDIATE`), so a transaction
that has read never fails on upgrading its lock; PostgreSQL copes on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
import uuid
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    make_url,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from claims.store.activity import ActivityQueries
from claims.store.data_settings import DataSettings
from claims.store.files import make_private, private_sqlite_file
from claims.store.leases import ACTIVE_STATES, JobLeases, LeaseLost, database_now
from claims.store.orm import (
    ApiKey,
    Feedback,
    FeedbackLabel,
    Job,
    Prediction,
    ReviewItem,
    ReviewTask,
)
from claims.store.review import ReviewQueries, review_rows
from claims.store.settled import SettledQueries
from schemas.auth import ApiKeyInfo, Role
from schemas.claim import Claim
from schemas.feedback import FeedbackItem, FeedbackRecord, PredictionRecord
from schemas.jobs import JobState, JobStatus
from schemas.triage import TriageResult

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Bound parameters per IN clause: far below SQLite's and PostgreSQL's limits.
IN_CHUNK = 500
# Any constant: PostgreSQL sessions that migrate take this advisory lock in turn.
MIGRATION_LOCK_KEY = 0x636C61696D73
# Execution option that makes a SQLite transaction take the write lock as it begins.
_IMMEDIATE = "claims_sqlite_immediate"


KEY_PREFIX = "csk_"  # so a leaked key is recognisable in code and logs


class FeedbackConflict(ValueError):
    """The feedback_id is already stored with different content."""


class UnknownPrediction(LookupError):
    """The feedback names a prediction_id that the store does not hold."""


class ActiveJobExists(RuntimeError):
    """A job of a kind that runs one at a time (a retrain) is already queued or running."""


class JobCapReached(RuntimeError):
    """As many jobs of a kind as its caps allow are queued or running, in the whole cluster."""


@dataclass(frozen=True)
class JobCaps:
    """How many active jobs of one kind the cluster takes: in all, and for one owner key."""

    total: int
    per_owner: int


# pg_advisory_xact_lock's key for counting active jobs against their caps: any fixed number
# that no other lock of this database uses
JOB_CAPS_LOCK = 0x636C6A62


class StoreError(RuntimeError):
    """The database refused a write of claims. Its own message is left out: PostgreSQL's
    DETAIL quotes the failing row (a narrative, personal fields) and would reach the logs."""


def alembic_config(url: str | None = None) -> Config:
    """Alembic's settings without an alembic.ini: the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Store(ReviewQueries, ActivityQueries, SettledQueries, JobLeases):
    """Every read and write of the product's durable state; the schema is migrated on opening."""

    def __init__(self, url: str) -> None:
        self._engine = _create_engine(url)
        writer = self._engine.execution_options(**{_IMMEDIATE: True})
        self._reading = sessionmaker(self._engine, expire_on_commit=False)
        self._writing = sessionmaker(writer, expire_on_commit=False)
        try:
            with writer.begin() as connection:
                _migrate(connection)
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: DataSettings) -> Store:
        make_private(settings.data_dir)  # it holds claims: the store, job files, the registry
        return cls(settings.store_url)

    def close(self) -> None:
        self._engine.dispose()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def reading(self) -> Session:
        """A session for the reads of records kept beside this class's (the registry's)."""
        return self._reading()

    def writing(self) -> AbstractContextManager[Session]:
        """A write transaction, committed on leaving: on SQLite it holds the write lock from
        its first statement, so a read inside it is not stale by the time it writes."""
        return self._writing.begin()

    # Predictions

    def record_predictions(self, records: Sequence[PredictionRecord]) -> None:
        rows = [
            Prediction(
                prediction_id=record.prediction_id,
                claim_id=record.claim.claim_id,
                claim=record.claim.model_dump_json(),
                result=record.result.model_dump_json(),
                model_version=record.model_version,
                source=record.source,
                created_at=_aware(record.created_at, "created_at"),
                **_language_columns(record.result),
            )
            for record in records
        ]
        try:
            with self._writing.begin() as session:
                session.add_all(rows)
                session.flush()  # the predictions first: the queue's rows refer to them
                session.add_all(review_rows(records))
        except DBAPIError as error:
            raise _told_safely(error, f"recording {len(rows)} predictions") from None

    def prediction(self, prediction_id: str) -> PredictionRecord | None:
        if not _storable(prediction_id):
            return None
        with self._reading() as session:
            row = session.get(Prediction, prediction_id)
            return None if row is None else _prediction_record(row)

    def latest_claims(self, claim_ids: Iterable[str]) -> dict[str, Claim]:
        """The claim as last predicted, for the ids that were: what a retrain learns from."""
        ids = [claim_id for claim_id in dict.fromkeys(claim_ids) if _storable(claim_id)]
        newest_first = func.row_number().over(
            partition_by=Prediction.claim_id,
            order_by=(Prediction.created_at.desc(), Prediction.prediction_id.desc()),
        )
        claims: dict[str, Claim] = {}
        with self._reading() as session:
            for start in range(0, len(ids), IN_CHUNK):
                ranked = (
                    select(Prediction.claim_id, Prediction.claim, newest_first.label("recency"))
                    .where(Prediction.claim_id.in_(ids[start : start + IN_CHUNK]))
                    .subquery()
                )
                rows = session.execute(
                    select(ranked.c.claim_id, ranked.c.claim).where(ranked.c.recency == 1)
                )
                for claim_id, claim in rows:
                    claims[claim_id] = Claim.model_validate_json(claim)
        return claims

    def forget_predictions(self, before: datetime) -> tuple[int, int]:
        """Deletes the predictions recorded before `before`, and with them the claims' text.

        The feedback that named one is kept, its labels, reason, adjuster and claim id as they
        were, but no longer linked to the deleted prediction. Returns (predictions deleted,
        feedback items unlinked)."""
        old = select(Prediction.prediction_id).where(
            Prediction.created_at < _aware(before, "before")
        )
        unlink = update(Feedback).where(Feedback.prediction_id.in_(old)).values(prediction_id=None)
        forget = delete(Prediction).where(Prediction.created_at < before)
        off_queue = [
            delete(ReviewTask).where(ReviewTask.prediction_id.in_(old)),
            delete(ReviewItem).where(ReviewItem.prediction_id.in_(old)),
        ]
        unchecked = {"synchronize_session": False}  # no objects of these rows are loaded
        with self._writing.begin() as session:
            for statement in off_queue:
                session.execute(statement, execution_options=unchecked)
            # an UPDATE's or DELETE's result is a CursorResult, which SQLAlchemy types as Result
            unlinked = session.execute(unlink, execution_options=unchecked).rowcount  # type: ignore[attr-defined]
            deleted = session.execute(forget, execution_options=unchecked).rowcount  # type: ignore[attr-defined]
        return deleted, unlinked

    # Feedback

    def add_feedback(self, item: FeedbackItem) -> tuple[FeedbackRecord, bool]:
        """Store a correction once, durably: `(record, created)`; a resend is answered as stored.

        Raises UnknownPrediction, FeedbackConflict (the id is stored with other content), or
        ValueError (the prediction is for another claim than the one named).
        """
        try:
            with self._writing.begin() as session:
                stored = _feedback_by_id(session, item.feedback_id)
                if stored is not None:
                    return _same_or_conflict(item, stored), False
                row = _new_feedback(session, item)
                session.add(row)
                session.flush()
                record = _feedback_record(row)
        except IntegrityError:
            # Another writer stored this feedback_id between our read and our insert.
            with self._reading() as session:
                stored = _feedback_by_id(session, item.feedback_id)
            if stored is None:
                raise
            return _same_or_conflict(item, stored), False
        return record, True

    def list_feedback(
        self,
        *,
        claim_id: str | None = None,
        task: str | None = None,
        adjuster_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        confirmed: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[FeedbackRecord]:
        """Oldest first; `since` is inclusive and `until` exclusive, so windows tile."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit ({limit}) and offset ({offset}) must not be negative")
        if not _storable(claim_id, task, adjuster_id):
            return []  # nothing stored can match
        conditions: list[ColumnElement[bool]] = []
        if claim_id is not None:
            conditions.append(Feedback.claim_id == claim_id)
        if task is not None:
            conditions.append(Feedback.labels.any(FeedbackLabel.task == task))
        if adjuster_id is not None:
            conditions.append(Feedback.adjuster_id == adjuster_id)
        if since is not None:
            conditions.append(Feedback.received_at >= _aware(since, "since"))
        if until is not None:
            conditions.append(Feedback.received_at < _aware(until, "until"))
        if confirmed is not None:
            conditions.append(Feedback.confirmed == confirmed)
        return self._feedback(conditions, limit=limit, offset=offset)

    def confirmed_corrections(self) -> list[FeedbackRecord]:
        """Every confirmed item, oldest first, so that a replay lets the newest win."""
        return self._feedback([Feedback.confirmed.is_(True)])

    # Jobs

    def create_job(
        self,
        kind: str,
        message: str = "",
        lease: tuple[str, float] | None = None,
        owner_key: str | None = None,
        command: Sequence[str] | None = None,
        caps: JobCaps | None = None,
    ) -> JobStatus:
        """A new queued job; `lease` (owner, seconds): the lease its creator holds from the
        start, so that no other replica claims it before its work begins. `owner_key`: the API
        key it belongs to ("" when keys are off); `command`: the `claims` command that does its
        work, once known. `caps`: raises JobCapReached rather than go past them; the count and
        the insert are one transaction that replicas take one at a time (an advisory lock on
        PostgreSQL, the write lock on SQLite), so replicas asked at once cannot each go past."""
        now = datetime.now(UTC)
        row = Job(
            job_id=f"job-{uuid.uuid4().hex}",
            kind=kind,
            state=JobState.queued.value,
            progress=0.0,
            message=message,
            created_at=now,
            updated_at=now,
            owner_key=owner_key,
            command=None if command is None else json.dumps(list(command)),
        )
        try:
            with self._writing.begin() as session:
                if caps is not None:
                    _check_caps(session, kind, owner_key, caps)
                if lease is not None:
                    row.lease_owner = lease[0]
                    row.lease_expires_at = database_now(session) + timedelta(seconds=lease[1])
                session.add(row)
        except IntegrityError as error:
            # uq_jobs_one_active_retrain: the database refused a second active retrain, however
            # many replicas asked at once
            raise ActiveJobExists(f"a {kind} job is already queued or running") from error
        return _job_status(row)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        progress: float | None = None,
        message: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        owner: str | None = None,
        command: Sequence[str] | None = None,
    ) -> JobStatus:
        """Change the fields given (None leaves one as it is); LookupError for an unknown job.
        With `owner`, only while `owner` holds the job's lease, else LeaseLost: a process that
        lost its job cannot overwrite what the one that took it over reports."""
        with self._writing.begin() as session:
            row = session.get(Job, job_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no job {job_id!r}")
            if owner is not None and row.lease_owner != owner:
                raise LeaseLost(f"job {job_id} is now held by {row.lease_owner}")
            if state is not None:
                row.state = JobState(state).value
            if progress is not None:
                row.progress = progress
            if message is not None:
                row.message = message
            if result is not None:
                row.result = json.dumps(result)
            if error is not None:
                row.error = error
            if command is not None:
                row.command = json.dumps(list(command))
            row.updated_at = datetime.now(UTC)
            return _job_status(row)  # validates (progress in [0, 1]) before the commit

    def job(self, job_id: str) -> JobStatus | None:
        if not _storable(job_id):
            return None
        with self._reading() as session:
            row = session.get(Job, job_id)
            return None if row is None else _job_status(row)

    def jobs(
        self,
        kind: str | None = None,
        states: Collection[JobState] | None = None,
        owner_key: str | None = None,
    ) -> list[JobStatus]:
        """Newest first; with `owner_key`, only the jobs of that key ("" those made without
        keys)."""
        query = select(Job).order_by(Job.created_at.desc(), Job.job_id.desc())
        if kind is not None:
            query = query.where(Job.kind == kind)
        if states is not None:
            query = query.where(Job.state.in_([JobState(state).value for state in states]))
        if owner_key is not None:
            query = query.where(Job.owner_key == owner_key)
        with self._reading() as session:
            return [_job_status(row) for row in session.scalars(query)]

    def job_owner(self, job_id: str) -> str | None:
        """The API key that created the job ("" when keys were off); None when none is recorded
        (a retrain, a job from before owners were kept) or there is no such job."""
        if not _storable(job_id):
            return None
        with self._reading() as session:
            return session.scalar(select(Job.owner_key).where(Job.job_id == job_id))

    def job_command(self, job_id: str) -> list[str] | None:
        """The `claims` command that does the job's work; None until it is known (an upload in
        flight), for a job run by hand, or from before commands were kept."""
        with self._reading() as session:
            stored = session.scalar(select(Job.command).where(Job.job_id == job_id))
        return None if stored is None else [str(part) for part in json.loads(stored)]

    # API keys

    def create_key(self, name: str, role: Role) -> tuple[ApiKeyInfo, str]:
        """(the key as listed, the key itself): the only time the key is seen."""
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            key_id=key_id,
            name=name,
            role=Role(role).value,
            key_sha256=_digest(key),
            created_at=datetime.now(UTC),
        )
        with self._writing.begin() as session:
            session.add(row)
        return _key_info(row), key

    def api_keys(self) -> list[ApiKeyInfo]:
        with self._reading() as session:
            rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at))
            return [_key_info(row) for row in rows]

    def revoke_key(self, key_id: str) -> ApiKeyInfo:
        with self._writing.begin() as session:
            row = session.get(ApiKey, key_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no API key {key_id!r}")
            row.revoked_at = row.revoked_at or datetime.now(UTC)
            return _key_info(row)

    def authenticate(self, key: str) -> ApiKeyInfo | None:
        """The key's record if it is a live key, else None; compared in constant time."""
        if not key.startswith(KEY_PREFIX) or key.count("_") < 2:
            return None
        key_id = key[len(KEY_PREFIX) :].split("_", 1)[0]
        if not _storable(key_id):
            return None
        with self._reading() as session:
            row = session.get(ApiKey, key_id)
        if row is None or row.revoked_at is not None:
            return None
        return _key_info(row) if hmac.compare_digest(row.key_sha256, _digest(key)) else None

    def _feedback(
        self, conditions: list[ColumnElement[bool]], limit: int | None = None, offset: int = 0
    ) -> list[FeedbackRecord]:
        query = (
            select(Feedback)
            .where(*conditions)
            .order_by(Feedback.received_at, Feedback.seq)
            .limit(limit)
            .offset(offset)
        )
        with self._reading() as session:
            return [_feedback_record(row) for row in session.scalars(query)]


def _told_safely(error: DBAPIError, doing: str) -> StoreError:
    """The error's kind and code (sqlstate), never its text."""
    original = error.orig
    code = getattr(original, "sqlstate", None) or getattr(original, "sqlite_errorname", None)
    kind = type(original).__name__ if original is not None else type(error).__name__
    return StoreError(f"the store failed {doing}: {kind}" + (f" ({code})" if code else ""))


def _storable(*values: str | None) -> bool:
    """Whether text can be compared with what the store holds: PostgreSQL refuses NUL in a
    parameter, and a row stored here never holds one, so a lookup for it finds nothing."""
    return not any(value is not None and "\x00" in value for value in values)


def _digest(key: str) -> str:
    """Keys are 256 random bits: a plain sha256 cannot be reversed or guessed."""
    return hashlib.sha256(key.encode()).hexdigest()


def _key_info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        name=row.name,
        role=Role(row.role),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _create_engine(url: str) -> Engine:
    """`hide_parameters`: a database error's message would otherwise carry the statement's
    bound values, a claim's narrative among them, into every log line that reports it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    if parsed.database not in (None, "", ":memory:"):
        private_sqlite_file(Path(parsed.database))  # claim narratives: 0600, in a 0700 folder
    engine = create_engine(parsed, hide_parameters=True)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver would emit BEGIN only before DML; SQLAlchemy emits it instead (_begin_sqlite),
    # so reads are repeatable and DDL is transactional.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """WAL mode is kept in the file, so only the first connection to a new file switches it.
    While another connection holds a write lock on it, SQLite answers "database is locked" at
    once, past the busy timeout (seen with a few processes opening a new file at once), so the
    switch retries up to that timeout itself."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _migrate(connection: Connection) -> None:
    """`alembic upgrade head`, one process at a time: the first creates, the others find head."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
    # On SQLite the transaction began IMMEDIATE: it already holds the database's write lock.
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _aware(value: datetime, name: str) -> datetime:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value


def _language_columns(result: TriageResult) -> dict[str, str | None]:
    """The language an answer read its claim as, in columns of its own: queries count by it."""
    if result.language is None:
        return {"language": None, "language_source": None}
    return {"language": result.language.tag, "language_source": result.language.source}


def _prediction_record(row: Prediction) -> PredictionRecord:
    return PredictionRecord(
        prediction_id=row.prediction_id,
        claim=Claim.model_validate_json(row.claim),
        result=TriageResult.model_validate_json(row.result),
        model_version=row.model_version,
        source=row.source,
        created_at=row.created_at,
    )


def _feedback_by_id(session: Session, feedback_id: str) -> FeedbackRecord | None:
    row = session.scalar(select(Feedback).where(Feedback.feedback_id == feedback_id))
    return None if row is None else _feedback_record(row)


def _new_feedback(session: Session, item: FeedbackItem) -> Feedback:
    """The row for a new item, its claim and model version taken from the prediction it names."""
    claim_id, model_version = item.claim_id, None
    if item.prediction_id is not None:
        prediction = session.get(Prediction, item.prediction_id)
        if prediction is None:
            raise UnknownPrediction(f"no prediction {item.prediction_id!r}")
        if claim_id is not None and claim_id != prediction.claim_id:
            raise ValueError(
                f"prediction {item.prediction_id!r} is for claim {prediction.claim_id!r}, "
                f"not claim {claim_id!r}"
            )
        claim_id, model_version = prediction.claim_id, prediction.model_version
    return Feedback(
        feedback_id=item.feedback_id,
        prediction_id=item.prediction_id,
        claim_id=claim_id,
        reason_code=item.reason_code,
        adjuster_id=item.adjuster_id,
        note=item.note,
        confirmed=item.confirmed,
        model_version=model_version,
        received_at=datetime.now(UTC),
        labels=[FeedbackLabel(task=task, label=label) for task, label in item.labels.items()],
    )


def _same_or_conflict(item: FeedbackItem, stored: FeedbackRecord) -> FeedbackRecord:
    """The stored record if `item` is a resend of it (claim_id may be left to the prediction)."""
    fields = set(FeedbackItem.model_fields) - {"claim_id"}
    same = item.model_dump(include=fields) == stored.model_dump(include=fields)
    if not same or item.claim_id not in (None, stored.claim_id):
        raise FeedbackConflict(
            f"feedback {item.feedback_id!r} is already stored with different content"
        )
    return stored


def _feedback_record(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord(
        feedback_id=row.feedback_id,
        prediction_id=row.prediction_id,
        claim_id=row.claim_id,
        labels={label.task: label.label for label in row.labels},
        reason_code=row.reason_code,
        adjuster_id=row.adjuster_id,
        note=row.note,
        confirmed=row.confirmed,
        model_version=row.model_version,
        received_at=row.received_at,
    )


def _job_status(row: Job) -> JobStatus:
    return JobStatus(
        job_id=row.job_id,
        kind=row.kind,
        state=JobState(row.state),
        progress=row.progress,
        message=row.message,
        created_at=row.created_at,
        updated_at=row.updated_at,
        result=None if row.result is None else json.loads(row.result),
        error=row.error,
    )


def over_caps(kind: str, active: int, mine: int, caps: JobCaps) -> str | None:
    """Why one more job of `kind` would pass its caps, with `active` of them queued or running
    and `mine` of those the same key's; None if it would not."""
    if active >= caps.total:
        return (
            f"{active} {kind} jobs are queued or running, the most the service takes at once: "
            "try again when one has finished"
        )
    if mine >= caps.per_owner:
        return (
            f"this key has {mine} {kind} jobs queued or running, the most a key may: "
            "try again when one has finished"
        )
    return None


def _check_caps(session: Session, kind: str, owner_key: str | None, caps: JobCaps) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(JOB_CAPS_LOCK)))
    active = and_(Job.kind == kind, Job.state.in_(ACTIVE_STATES))
    count = select(func.count()).select_from(Job).where(active)
    total = session.scalar(count) or 0
    mine = session.scalar(count.where(Job.owner_key == (owner_key or ""))) or 0
    if (reason := over_caps(kind, total, mine, caps)) is not None:
        raise JobCapReached(reason)
