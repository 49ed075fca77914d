"""A retrain started from the console: admins only, confirmed first, one at a time, and
watched on a page that reloads itself until the job ends."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from schemas.auth import Role
from schemas.jobs import JobState
from serving.app import create_app
from serving.batch.jobs import ACTIVE
from serving.settings import ServiceSettings
from tests.test_console import csrf_of, sign_in


def test_an_admin_starts_a_retrain_once_and_watches_it_end(
    claims_csv: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = Store.from_settings(DataSettings(data_dir=data))
    keys = {role: store.create_key(f"{role.value}-r", role)[1] for role in Role}
    app = create_app(ServiceSettings(data_dir=data, auth=True, training_data=claims_csv))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client, keys[Role.adjuster])
        token = csrf_of(client.get("/console/queue").text)
        confirmed = {"csrf_token": token, "confirmed": "yes"}
        assert client.post("/console/models/retrain", data=confirmed).status_code == 403
        assert store.jobs(kind="retrain") == []
        client.cookies.clear()

        sign_in(client, keys[Role.admin])
        page = client.get("/console/models").text
        assert "No retrain yet." in page and 'action="/console/models/retrain"' in page
        confirmed = {"csrf_token": csrf_of(page), "confirmed": "yes"}
        assert client.post("/console/models/retrain", data={"confirmed": "yes"}).status_code == 403
        asked = client.post("/console/models/retrain", data={"csrf_token": csrf_of(page)})
        assert asked.status_code == 200 and "Start a retrain?" in asked.text
        assert store.jobs(kind="retrain") == []  # nothing starts before the confirmation

        # another replica's, whose process holds its lease
        elsewhere = store.create_job("retrain", message="queued", lease=("replica-b", 600))
        refused = client.post("/console/models/retrain", data=confirmed)
        assert refused.status_code == 409
        assert f"retrain job {elsewhere.job_id} is queued" in refused.text
        assert [job.job_id for job in store.jobs(kind="retrain")] == [elsewhere.job_id]
        running = client.get(f"/console/models/retrain/{elsewhere.job_id}").text
        assert '<meta http-equiv="refresh" content="5">' in running and "queued" in running
        assert "A retrain is under way" in client.get("/console/models").text
        store.update_job(elsewhere.job_id, state=JobState.failed, error="replica stopped")

        started = client.post("/console/models/retrain", data=confirmed, follow_redirects=False)
        assert started.status_code == 303
        job_id = started.headers["location"].rsplit("/", 1)[1]
        newest = store.jobs(kind="retrain")[0]
        assert newest.job_id == job_id and newest.job_id != elsewhere.job_id
        assert job_id in client.get(started.headers["location"]).text

        # the registry has no champion, so the job's own process fails: its page says why
        deadline = time.monotonic() + 180
        while app.state.launcher.status(job_id).state in ACTIVE:
            assert time.monotonic() < deadline, "the retrain process never ended"
            time.sleep(0.5)
        ended = client.get(f"/console/models/retrain/{job_id}").text
        assert "failed" in ended and "no champion" in ended
        assert '<meta http-equiv="refresh"' not in ended
        listed = client.get("/console/models").text
        assert f'href="/console/models/retrain/{job_id}"' in listed
        assert "replica stopped" in listed and "Start a retrain" in listed
        assert client.get("/console/models/retrain/job-nowhere").status_code == 404
    store.close()
