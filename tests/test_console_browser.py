"""The console in headless Chromium, as staff use it: log in, filter the low-confidence
conversations, open one, relabel a message, download the export, which `rasa data validate`
then accepts. Screenshots go to tests/artifacts/; with UPDATE_SCREENSHOTS=1 docs/console.md's
pictures in docs/screenshots/ are taken again too."""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import uuid

import pytest
import sqlalchemy as sa

from console.domain import plain_text, training_examples
from console.indexer import intent_and_confidence
from console.masking import fold, mask
from harness.console import PHONE, produce_conversations, running_console, staff_user, validate_export
from harness.project import ROOT
from tests.conftest import skip_without_chromium
from tests.test_console import age

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.browser, skip_without_chromium]

ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SHOTS = ROOT / "docs" / "screenshots"


def least_confident(db_url: str, senders: dict) -> dict:
    """Our customer message that the model was least sure of, read from the tracker store (one
    that data/nlu does not hold already, so that the export takes it)."""
    in_data = training_examples(ROOT / "data")
    engine = sa.create_engine(db_url)
    found = []
    with engine.connect() as conn:
        for kind, sender in senders.items():
            if kind == "old":
                continue  # aged: it would sit on a later page
            for event_id, data in conn.execute(
                sa.text("SELECT id, data FROM events WHERE sender_id = :s AND type_name = 'user'"),
                {"s": sender},
            ):
                data = json.loads(data)
                if fold(data["text"]) in in_data:
                    continue
                intent, confidence = intent_and_confidence(data["parse_data"])
                found.append(
                    dict(
                        sender=sender,
                        event_id=event_id,
                        text=data["text"],
                        intent=intent,
                        confidence=confidence,
                    )
                )
    engine.dispose()
    return min(found, key=lambda m: m["confidence"])


@pytest.fixture(scope="module")
def console(servers, tmp_path_factory):
    db_url = f"sqlite:///{servers.tracker_db}"
    senders = produce_conversations(servers.say, "browser-" + uuid.uuid4().hex[:8])
    admin = ("admin-" + uuid.uuid4().hex[:4], secrets.token_urlsafe(12))
    assert staff_user(db_url, admin[0], "admin", admin[1]).returncode == 0
    # one conversation made old, so that the purge page has something to count (nothing is purged here)
    engine = sa.create_engine(db_url)
    age(engine, senders["old"], 200)
    engine.dispose()
    workdir = tmp_path_factory.mktemp("console-browser")
    with running_console(db_url, workdir / "console.log") as running:
        yield running.url, admin, senders, workdir, db_url, running.conversation_path


def test_staff_journey_in_chromium(console, browser):
    url, (name, password), senders, workdir, db_url, conversation_path = console
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    docs = os.environ.get("UPDATE_SCREENSHOTS") == "1"
    if docs:
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        viewport={"width": 1280, "height": 860},
        locale="fr-FR",
        timezone_id="Pacific/Noumea",
        accept_downloads=True,
    )
    page = context.new_page()
    page.set_default_timeout(15000)

    def shot(step: str, doc_name: str = "") -> None:
        page.screenshot(path=str(ARTIFACTS / f"console-{step}.png"), full_page=True)
        if docs and doc_name:
            shutil.copy(ARTIFACTS / f"console-{step}.png", DOCS_SHOTS / f"{doc_name}.png")

    try:
        # no page without login
        page.goto(url + "/conversations")
        assert page.url.startswith(url + "/login")
        shot("01-login", "login")
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", password)
        page.click("button:has-text('Se connecter')")
        page.wait_for_url(url + "/conversations")
        shot("02-conversations", "conversations")

        # the low-confidence conversations: the threshold just above our least confident message,
        # whatever the model of the day predicted
        target = least_confident(db_url, senders)
        threshold = f"{math.ceil((target['confidence'] + 0.005) * 100) / 100:.2f}"
        page.fill("input[name=below]", threshold)
        page.click("button:has-text('Filtrer')")
        page.wait_for_url(f"**/conversations?*below={threshold}*")
        confidences = page.locator("table.list tbody tr td.num .conf").all_inner_texts()
        assert confidences and all(float(c) <= float(threshold) for c in confidences), (
            threshold,
            confidences,
        )
        assert PHONE not in page.content()
        shot("03-low-confidence", "conversations-filtered")

        # open it
        path = conversation_path(target["sender"])
        page.locator(f'a[href="{path}"]').first.click()
        page.wait_for_url(f"**{path}")
        assert PHONE not in page.content()
        message = page.locator(f"article#m{target['event_id']}")
        assert f"{target['confidence']:.2f}" in message.inner_text()
        shot("04-conversation")

        # relabel its least confident message
        intent = "out_of_scope" if target["intent"] != "out_of_scope" else "greet"
        message.locator("select[name=intent]").select_option(intent)
        message.locator("button:has-text('Réétiqueter')").click()
        page.wait_for_load_state()
        assert f"Réétiqueté en {intent}" in page.locator(f"article#m{target['event_id']}").inner_text()
        page.fill("input[name=tag]", "erreur NLU")
        page.click("form.addtag button")
        page.wait_for_load_state()
        page.fill("textarea[name=text]", "Message non compris : ajouté à l'export pour l'entraînement.")
        page.click("button:has-text('Ajouter la note')")
        page.wait_for_load_state()
        shot("05-relabelled", "conversation")

        # download the export
        page.click("nav >> text=Réétiquetages")
        page.wait_for_url(url + "/labels")
        shot("06-labels", "labels")
        with page.expect_download() as waiting:
            page.click("text=Télécharger l'export")
        download = waiting.value
        exported = ARTIFACTS / "console_export.yml"
        download.save_as(str(exported))
        text = exported.read_text(encoding="utf-8")
        assert f"- intent: {intent}" in text and PHONE not in text
        assert fold(mask(target["text"]).replace("[", "(").replace("]", ")")) in fold(plain_text(text))

        # the other pages, for the record
        page.click("nav >> text=Statistiques")
        page.wait_for_url(url + "/insights")
        assert page.locator("svg.chart rect").count() > 0
        shot("07-insights", "insights")
        page.click("nav >> text=Administration")
        page.wait_for_url(url + "/admin")
        shot("08-admin", "admin")
        page.fill("input[name=days]", "90")
        page.click("button:has-text('Compter')")
        page.wait_for_url("**/admin/purge?days=90")
        shot("09-purge-preview", "purge")
    finally:
        context.close()

    checked = validate_export(text, workdir)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
