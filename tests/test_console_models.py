"""The console's models page: admins only, and every switch confirmed before it happens."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.auth import Role
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.helpers import renamed_checkpoint
from tests.test_console import csrf_of, sign_in
from tests.test_feedback_api import LINEAGE


def test_an_admin_promotes_and_rolls_back_after_confirming(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = Store.from_settings(DataSettings(data_dir=data))
    keys = {role: store.create_key(f"{role.value}-m", role)[1] for role in Role}
    registry = Registry.from_settings(DataSettings(data_dir=data), store)
    first = registry.register(trained_checkpoint, LINEAGE).version
    second_copy = renamed_checkpoint(trained_checkpoint, tmp_path / "second", "sp-000000000002")
    second = registry.register(second_copy, LINEAGE).version
    registry.promote(first, "initial")
    app = create_app(ServiceSettings(data_dir=data, auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client, keys[Role.adjuster])
        assert client.get("/console/models").status_code == 403
        client.cookies.clear()

        sign_in(client, keys[Role.admin])
        page = client.get("/console/models").text
        assert f"Promote {second}" in page and f"Promote {first}" not in page
        form = {"csrf_token": csrf_of(page), "action": "promote", "version": second}
        assert client.post("/console/models/switch", data=form).status_code == 422  # no reason
        form["reason"] = "better on the feedback slice"
        asked = client.post("/console/models/switch", data=form)
        assert asked.status_code == 200 and f"Promote {second}?" in asked.text
        assert registry.champion() == first  # nothing changes before the confirmation
        done = client.post(
            "/console/models/switch", data={**form, "confirmed": "yes"}, follow_redirects=False
        )
        assert done.status_code == 303
        assert registry.champion() == second
        assert "(console: admin-m)" in registry.pointer().reason  # type: ignore[union-attr]
        page = client.get("/console/models").text
        assert f"<strong>{second}</strong>" in page

        back = {"csrf_token": csrf_of(page), "action": "rollback", "reason": "regression"}
        assert "Roll back to the champion" in client.post("/console/models/switch", data=back).text
        assert registry.champion() == second
        client.post("/console/models/switch", data={**back, "confirmed": "yes"})
        assert registry.champion() == first
        forged = {**back, "csrf_token": "forged", "confirmed": "yes"}
        assert client.post("/console/models/switch", data=forged).status_code == 403
