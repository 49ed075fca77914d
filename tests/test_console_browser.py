"""The console in a real browser: `claims serve` in its own process with keys on, and
Debian's Chromium driven by Playwright, by mouse and by keyboard alone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from claims.data.synthetic import generate_claims
from claims.store import Store
from claims.store.data_settings import DataSettings
from claims.store.registry import Registry
from schemas.auth import Role
from schemas.language import LanguageReading
from serving.console.routes import language_shown
from tests.helpers import renamed_checkpoint, running_service
from tests.test_feedback_api import LINEAGE

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip(
        "chromium is not installed: `apt-get install chromium` (.ci/run installs it)",
        allow_module_level=True,
    )
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LABELS = ("low", "medium", "high", "severe")  # each starts with its own letter: typeahead
RETRAINED = "sp-000000000002"  # a registered copy of the champion, as a retrain would leave


@pytest.fixture(scope="module")
def service(
    trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str], list[dict]]]:
    """The service (keys on, the tuned model), its keys, and the answers that need review."""
    data_dir = tmp_path_factory.mktemp("console-live")
    settings = DataSettings(data_dir=data_dir)
    store = Store.from_settings(settings)
    keys = {role.value: store.create_key(f"{role.value}-e2e", role)[1] for role in Role}
    # the service follows the registry: the champion serves, and a retrained copy waits
    registry = Registry.from_settings(settings, store)
    champion = registry.register(trained_checkpoint, LINEAGE).version
    registry.promote(champion, "initial")
    copy = renamed_checkpoint(
        trained_checkpoint, tmp_path_factory.mktemp("retrained") / "c", RETRAINED
    )
    retrained = LINEAGE.model_copy(update={"origin": "retrained", "parent_version": champion})
    assert registry.register(copy, retrained).version == RETRAINED
    store.close()
    frame = generate_claims(12, seed=8).drop(columns=["claim_type", "severity", "siu_referral"])
    claims = [
        {"claim_id": row["claim_id"], "description": row["description"],
         "attributes": {"region": row["region"]}}
        for row in frame.to_dict(orient="records")
    ]  # fmt: skip
    with running_service(data_dir, auth=True) as (_, url):
        answers = httpx.post(
            f"{url}/v1/triage/batch",
            json={"claims": claims},
            headers={"Authorization": f"Bearer {keys['triage']}"},
            timeout=120,
        ).json()["results"]
        review = [answer for answer in answers if answer["decision"]["needs_review"]]
        assert len(review) >= 3, "the tests need three answers that need review"
        yield url, keys, review


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()  # a fresh profile each test
    yield context.new_page()
    context.close()


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/console")
    page.fill("#key", key)
    page.click("button:has-text('Sign in')")


def feedback_on(url: str, key: str, claim_id: str) -> list[dict]:
    response = httpx.get(
        f"{url}/v1/feedback",
        params={"claim_id": claim_id},
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.json()["items"]


def another_label(answer: dict) -> str:
    return next(label for label in LABELS if label != answer["predictions"]["severity"]["label"])


@pytest.mark.slow
def test_an_adjuster_corrects_a_claim_and_it_leaves_the_queue(
    service: tuple[str, dict[str, str], list[dict]], page: Page
) -> None:
    url, keys, review = service
    answer = review[0]
    claim_id = answer["claim_id"]
    sign_in(page, url, keys["adjuster"])
    queue = page.locator("table.queue")
    for waiting in review:
        assert queue.get_by_role("link", name=waiting["claim_id"], exact=True).count() == 1
    queue.get_by_role("link", name=claim_id, exact=True).click()
    language = LanguageReading.model_validate(answer["language"])
    assert page.inner_text("#language") == language_shown(language)  # as the answer said
    marks = page.locator("#narrative mark")
    assert marks.count() >= 1, "the explanation's phrases are highlighted"
    assert marks.first.get_attribute("data-effect")
    label = another_label(answer)
    page.select_option("#label\\.severity", label)
    page.select_option("#reason_code", "misclassified")
    page.fill("#note", "photos show more damage")
    page.click("button:has-text('Save feedback')")
    assert f"Feedback on claim {claim_id} stored" in page.inner_text("main")
    assert queue.get_by_role("link", name=claim_id, exact=True).count() == 0
    [stored] = feedback_on(url, keys["adjuster"], claim_id)
    assert stored["prediction_id"] == answer["prediction_id"]
    assert stored["labels"]["severity"] == label and stored["reason_code"] == "misclassified"
    assert stored["adjuster_id"] == "adjuster-e2e" and stored["confirmed"] is True


@pytest.mark.slow
def test_a_triage_key_cannot_sign_in(
    service: tuple[str, dict[str, str], list[dict]], page: Page
) -> None:
    url, keys, _ = service
    sign_in(page, url, keys["triage"])
    assert "may not use the console" in page.inner_text("#sign-in-error")
    page.goto(f"{url}/console/queue")
    assert page.url.endswith("/console/sign-in")


@pytest.mark.slow
def test_a_form_without_its_csrf_token_is_refused(
    service: tuple[str, dict[str, str], list[dict]], page: Page
) -> None:
    url, keys, review = service
    answer = review[1]
    sign_in(page, url, keys["adjuster"])
    page.goto(f"{url}/console/claims/{answer['prediction_id']}")
    page.evaluate("document.querySelector('#correction [name=csrf_token]').remove()")
    page.select_option("#reason_code", "misclassified")
    page.click("button:has-text('Save feedback')")
    assert "CSRF token is missing" in page.inner_text("main")
    assert feedback_on(url, keys["adjuster"], answer["claim_id"]) == []


def tab_to(page: Page, matches: str, presses: int = 150) -> None:
    """Presses Tab until the focused element satisfies the JavaScript test `matches`."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"(e => {matches})(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached an element where {matches}")


@pytest.mark.slow
def test_a_correction_by_keyboard_alone(
    service: tuple[str, dict[str, str], list[dict]], page: Page
) -> None:
    url, keys, review = service
    answer = review[2]
    claim_id = answer["claim_id"]
    page.goto(f"{url}/console")
    # the key field takes focus by itself (autofocus), once the page has been rendered
    page.wait_for_function("document.activeElement && document.activeElement.id === 'key'")
    page.keyboard.type(keys["adjuster"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/queue")
    tab_to(page, f"e.tagName === 'A' && e.textContent.trim() === {claim_id!r}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/claims/{answer['prediction_id']}")
    label = another_label(answer)
    tab_to(page, "e.id === 'label.severity'")
    page.keyboard.type(label[0])  # a select's typeahead
    tab_to(page, "e.id === 'reason_code'")
    page.keyboard.type("mis")
    tab_to(page, "e.id === 'note'")
    page.keyboard.type("by keyboard")
    tab_to(page, "e.tagName === 'BUTTON' && e.textContent.includes('Save feedback')")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/queue?done=*")
    [stored] = feedback_on(url, keys["adjuster"], claim_id)
    assert stored["labels"]["severity"] == label
    assert (stored["reason_code"], stored["note"]) == ("misclassified", "by keyboard")


@pytest.mark.slow
def test_an_admin_promotes_a_retrained_model_and_new_answers_show_it(
    service: tuple[str, dict[str, str], list[dict]], page: Page
) -> None:
    url, keys, review = service
    sign_in(page, url, keys["admin"])
    page.click("nav >> text=Models")
    assert RETRAINED not in page.inner_text("#active-version")
    version = page.locator(f"#version-{RETRAINED}")
    assert "retrained" in version.inner_text()
    version.get_by_label("Reason").fill("retrained on the adjusters' corrections")
    version.get_by_role("button", name=f"Promote {RETRAINED}").click()
    assert f"Promote {RETRAINED}?" in page.inner_text("#confirm-question")
    page.click("button:has-text('Yes, promote')")
    page.wait_for_url("**/console/models")
    assert RETRAINED in page.inner_text("#active-version")

    answer = httpx.post(
        f"{url}/v1/triage",
        json={"claim_id": "CLM-AFTER", "description": "Kitchen fire from stove, smoke damage."},
        headers={"Authorization": f"Bearer {keys['triage']}"},
    ).json()
    page.goto(f"{url}/console/claims/{answer['prediction_id']}")
    assert f"Model {RETRAINED}" in page.inner_text("p.versions")
    page.goto(f"{url}/console/claims/{review[0]['prediction_id']}")
    assert f"Model {RETRAINED}" not in page.inner_text("p.versions")  # answered before
