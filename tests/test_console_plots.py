"""The console's plots: the store's activity series on SQLite and PostgreSQL, and the page
that draws them, whose figures must be the store's."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.orm import Feedback
from schemas.auth import Role
from serving.app import create_app
from serving.settings import ServiceSettings
from tests.test_console import sign_in
from tests.test_review_store import needing_review
from tests.test_store import a_prediction, an_item

TODAY = date(2026, 3, 11)  # a Wednesday


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def received_on(store: Store, day: date, *feedback_ids: str) -> None:
    """Feedback is stamped when it arrives; the series need it on other days."""
    with store.writing() as session:
        session.execute(
            update(Feedback)
            .where(Feedback.feedback_id.in_(feedback_ids))
            .values(received_at=at(day))
        )


def seeded(store: Store, today: date = TODAY) -> None:
    """Today: two SIU answers that need review and one fast-tracked; yesterday one fast-tracked;
    eleven days ago one more, outside a week. Severity, answered "low" by v1: three confirmed
    labels agree, one disagrees; an unconfirmed disagreement, a label for a task the answer
    did not predict and feedback naming no answer do not count. v2: one agrees, yesterday."""
    yesterday = today - timedelta(days=1)
    store.record_predictions(
        [
            needing_review("pr-1", "C-1", route="siu").model_copy(update={"created_at": at(today)}),
            needing_review("pr-2", "C-2", route="siu").model_copy(update={"created_at": at(today)}),
            a_prediction("pr-3", "C-3", created_at=at(today, 1)),
            a_prediction("pr-4", "C-4", created_at=at(yesterday, 23)),
            a_prediction("pr-5", "C-5", created_at=at(today - timedelta(days=11))),
            a_prediction("pr-6", "C-6", version="v2", created_at=at(yesterday)),
        ]
    )
    agree = {"labels": {"severity": "low"}, "confirmed": True}
    for number, prediction in enumerate(("pr-1", "pr-2", "pr-3"), 1):
        store.add_feedback(an_item(f"fb-agree-{number}", prediction_id=prediction, **agree))
    store.add_feedback(an_item("fb-disagree", prediction_id="pr-4", confirmed=True))
    store.add_feedback(an_item("fb-unsure", prediction_id="pr-4", confirmed=False))
    store.add_feedback(
        an_item(
            "fb-other-task", prediction_id="pr-4", labels={"claim_type": "theft"}, confirmed=True
        )
    )
    store.add_feedback(an_item("fb-no-answer", claim_id="C-9", confirmed=True))
    store.add_feedback(an_item("fb-v2", prediction_id="pr-6", **agree))
    received_on(store, today, "fb-agree-1", "fb-agree-2", "fb-agree-3", "fb-disagree")
    received_on(store, today, "fb-unsure", "fb-other-task", "fb-no-answer")
    received_on(store, yesterday, "fb-v2")


def test_the_series_count_what_the_store_holds_by_day(store: Store) -> None:
    seeded(store)
    activity = store.activity(7, "day", today=TODAY)
    assert (activity.since, activity.until) == (TODAY - timedelta(days=6), TODAY + timedelta(1))
    assert len(activity.starts()) == 7 and activity.starts()[-1] == TODAY
    yesterday = TODAY - timedelta(days=1)
    assert [(v.start, v.route, v.answers, v.needed_review) for v in activity.volumes] == [
        (yesterday, "fast_track", 2, 0),
        (TODAY, "fast_track", 1, 0),
        (TODAY, "siu", 2, 2),
    ]
    assert [
        (a.start, a.task, a.model_version, a.compared, a.agreed) for a in activity.agreement
    ] == [
        (yesterday, "severity", "v2", 1, 1),
        (TODAY, "severity", "v1", 4, 3),
    ]


def test_weekly_buckets_start_on_monday_and_hold_every_day_of_their_week(store: Store) -> None:
    seeded(store)
    activity = store.activity(14, "week", today=TODAY)
    monday = TODAY - timedelta(days=TODAY.weekday())
    assert activity.starts() == [monday - timedelta(days=14), monday - timedelta(7), monday]
    assert [(v.start, v.route, v.answers) for v in activity.volumes] == [
        (monday - timedelta(days=14), "fast_track", 1),  # eleven days ago: a Saturday
        (monday, "fast_track", 3),
        (monday, "siu", 2),
    ]
    assert [(a.model_version, a.compared, a.agreed) for a in activity.agreement] == [
        ("v1", 4, 3),
        ("v2", 1, 1),
    ]


def test_the_plots_page_shows_the_stores_figures_to_admins_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store.from_settings(DataSettings(data_dir=data))
    keys = {role: store.create_key(f"{role.value}-p", role)[1] for role in Role}
    today = datetime.now(UTC).date()
    seeded(store, today)
    store.close()
    app = create_app(ServiceSettings(data_dir=data, auth=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client, keys[Role.adjuster])
        refused = client.get("/console/plots")
        assert refused.status_code == 403 and "The plots page needs the role admin" in refused.text
        client.cookies.clear()

        sign_in(client, keys[Role.admin])
        assert 'href="/console/plots"' in client.get("/console/queue").text
        page = client.get("/console/plots", params={"days": 7})
        assert page.status_code == 200
        html = page.text
        totals = html.split('id="agreement-totals"')[1].split("</table>")[0]
        assert squeezed(
            '<th scope="row">severity</th><td>v1</td><td>3</td><td>4</td><td>75%</td>'
        ) in squeezed(totals)
        assert squeezed(
            '<th scope="row">severity</th><td>v2</td><td>1</td><td>1</td><td>100%</td>'
        ) in squeezed(totals)
        volumes = squeezed(html.split('id="volumes-table"')[1].split("</table>")[0])
        # routes fast_track, siu; all; needed review; review rate
        assert (
            f'<th scope="row">{today}</th><td>1</td><td>2</td><td>3</td><td>2</td><td>67%</td>'
            in volumes
        )
        yesterday = today - timedelta(days=1)
        assert (
            f'<th scope="row">{yesterday}</th><td>2</td><td>0</td><td>2</td><td>0</td><td>0%</td>'
            in volumes
        )
        assert volumes.count('<th scope="row">') == 7  # every day, the empty ones too
        volume_svg = html.split('id="volumes"')[1].split("</svg>")[0]
        assert volume_svg.count("<rect") == 3  # (yesterday, fast_track), (today, each route)
        assert f"{today:%d %b}: 2 to siu" in volume_svg
        assert "of 4 agree (75%)" in html.split('id="agreement-severity"')[1].split("</svg>")[0]

        weekly = client.get("/console/plots", params={"days": 30, "bucket": "week"}).text
        assert "by week from Monday" in weekly
        for bad, field in (({"days": "0"}, "days"), ({"bucket": "hour"}, "bucket")):
            response = client.get("/console/plots", params=bad)
            assert response.status_code == 422 and f"{field}:" in response.text


def squeezed(html: str) -> str:
    return re.sub(r">\s+<", "><", html)
