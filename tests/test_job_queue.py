"""Jobs that belong to the cluster: a job's owner and command are in the store, jobs ready to
start wait there as a queue that any replica's worker takes from when it has a free slot. On
SQLite and on PostgreSQL (where CLAIMS_TEST_DATABASE_URL names a server)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from claims.store import Store
from claims.store.store import alembic_config


def test_a_job_keeps_its_owner_and_command_in_the_store(store: Store) -> None:
    job = store.create_job("score", owner_key="key-1", command=["score", "in.csv"]).job_id
    assert store.job_owner(job) == "key-1"
    assert store.job_command(job) == ["score", "in.csv"]
    anonymous = store.create_job("score", owner_key="").job_id  # made without keys
    assert store.job_owner(anonymous) == "" and store.job_command(anonymous) is None
    store.update_job(anonymous, command=["score", "other.csv", "--explain"])
    assert store.job_command(anonymous) == ["score", "other.csv", "--explain"]
    assert [j.job_id for j in store.jobs(kind="score", owner_key="key-1")] == [job]
    assert [j.job_id for j in store.jobs(kind="score", owner_key="")] == [anonymous]
    assert store.job_owner("job-unknown") is None


def test_jobs_from_before_the_migration_have_no_owner_and_no_command(database_url: str) -> None:
    """Only an admin reads them, as when their owner was not recorded."""
    Store(database_url).close()
    command.downgrade(alembic_config(database_url), "0007")
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO jobs (job_id, kind, state, progress, message, created_at, "
                    "updated_at) VALUES ('job-old', 'score', 'succeeded', 1.0, '', :at, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
    finally:
        engine.dispose()
    store = Store(database_url)  # upgrades to head
    try:
        old = store.job("job-old")
        assert old is not None and old.state == "succeeded"
        assert store.job_owner("job-old") is None and store.job_command("job-old") is None
    finally:
        store.close()
