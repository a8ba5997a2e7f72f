"""Issue 16, done when: in headless Chromium, an editor changes the 1000's closing hour and
marks a cell "not through this channel", sees the preview of the changed answers and
publishes; within seconds the assistant gives the new hour and the new "non" through both Rasa
instances and both action servers of the production topology (conftest `prod`: nginx,
PostgreSQL, Redis); the editor rolls back and the old answers return. No process restarts. A
viewer cannot open the editor. Screenshots in tests/artifacts/ (UPDATE_SCREENSHOTS=1: also
docs/screenshots/)."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from actions import fiche_versions
from harness.console import running_console, staff_user
from harness.project import ROOT
from tests.conftest import skip_without_chromium

pytestmark = [
    pytest.mark.servers,
    pytest.mark.model,
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.redis,
    skip_without_chromium,
]

ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
MONDAY_10H = "2026-11-30T10:00:00+11:00"
CELL = "procedures.changement_offre.cells.telephone"
NEW_ANSWER = "le changement d'offre ne se fait plus par téléphone : écrivez-nous ou passez en agence."
# The time the action servers take to see a publication: they check every 3 s (FICHE_CHECK_SECONDS).
WITHIN = 20.0
HOURS_QUESTION = "à quelle heure ferme le 1000 ?"
OFFER_QUESTION = "je peux changer d'offre par téléphone ?"


def plain(text: str) -> str:
    return re.sub(r"\*\*|__", "", text)


def ask(prod, instance: int, question: str) -> str:
    sender = f"fiche-{instance}-{secrets.token_hex(4)}"
    replies = prod.say(sender, question, base=prod.rasa_url(instance))
    return plain("\n".join(r.get("text") or "" for r in replies))


def answers_everywhere(prod) -> list[tuple[str, str]]:
    """The two answers through each Rasa instance, twice each: nginx balances the action
    calls over the two action servers, so both of them answer."""
    return [(ask(prod, i, HOURS_QUESTION), ask(prod, i, OFFER_QUESTION)) for i in (0, 1, 0, 1)]


def until(check: Callable[[], bool], what: str, within: float = WITHIN) -> float:
    """Seconds until `check()` holds; fails after `within`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within, f"not within {within:.0f} s: {what}"
        time.sleep(0.5)
    return time.monotonic() - start


def old_answers(pairs: list[tuple[str, str]]) -> bool:
    return all(
        "15h45" in hours and "16h30" not in hours and offer.lower().startswith("oui, par téléphone")
        for hours, offer in pairs
    )


def new_answers(pairs: list[tuple[str, str]]) -> bool:
    return all(
        "16h30" in hours
        and "15h45" not in hours
        and offer.lower().startswith("non, pas par téléphone")
        and "ne se fait plus par téléphone" in offer
        and "(version 2)" in offer
        for hours, offer in pairs
    )


def pids(prod) -> list[int]:
    return [p.pid for p in [*prod.topology.actions, *prod.topology.rasa] if p is not None]


def test_an_editor_updates_the_fiche_live_on_both_instances_then_rolls_back(prod, browser, tmp_path):
    prod.clock.set(MONDAY_10H)
    editor = ("elise.editrice", secrets.token_urlsafe(12))
    viewer = ("victor.lecteur", secrets.token_urlsafe(12))
    assert staff_user(prod.database.url, editor[0], "editor", editor[1]).returncode == 0
    assert staff_user(prod.database.url, viewer[0], "viewer", viewer[1]).returncode == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    docs = os.environ.get("UPDATE_SCREENSHOTS") == "1"
    started = pids(prod)
    engine = sa.create_engine(prod.database.url)
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="fr-FR", timezone_id="Pacific/Noumea"
    )
    page = context.new_page()
    page.set_default_timeout(20000)

    def shot(step: str, doc_name: str = "") -> None:
        if docs and doc_name:  # the docs show what is on screen, not the whole long page
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS_SHOTS / f"{doc_name}.png"))
        page.screenshot(path=str(ARTIFACTS / f"fiche-{step}.png"), full_page=True)

    def servers_on(version: int) -> bool:
        page.goto(console.url + "/fiche")
        rows = page.locator("#servers tbody tr").all_inner_texts()
        names = {row.split("\t")[0].strip(): row for row in rows}
        return all(
            name in names and f"\t{version}\t" in names[name] and "à jour" in names[name]
            for name in ("actions-1", "actions-2")
        )

    try:
        with running_console(prod.database.url, tmp_path / "console.log", port=prod.console_port) as console:
            assert old_answers(answers_everywhere(prod)), answers_everywhere(prod)

            page.goto(console.url + "/fiche")
            page.fill("input[name=name]", editor[0])
            page.fill("input[name=password]", editor[1])
            page.click("button:has-text('Se connecter')")
            page.wait_for_url(console.url + "/fiche")
            until(lambda: servers_on(1), "both action servers report version 1")

            # the change: the 1000 closes at 16h30; changing an offer no longer by phone
            page.fill('input[name="phone_services.1000.closes"]', "16:30")
            page.select_option(f'select[name="{CELL}.status"]', "unavailable")
            page.click('button:has-text("Voir l\'aperçu")')
            page.wait_for_url(console.url + "/fiche/apercu")
            error = page.locator(f'.field-error[data-field="{CELL}.answer"]')
            assert "ne convient pas" in error.inner_text(), (
                "the struck cell's answer still says 'via le 1000'"
            )
            shot("01-error-next-to-the-field", "fiche-erreur")
            page.fill(f'textarea[name="{CELL}.answer"]', NEW_ANSWER)
            page.click('button:has-text("Voir l\'aperçu")')
            page.wait_for_url(console.url + "/fiche/apercu")
            diff = page.locator("#diff").inner_text()
            assert "15:45" in diff and "16:30" in diff and "pas par ce canal" in diff
            changed = page.locator("article.answer-change")
            assert changed.count() > 10
            phone = changed.filter(
                has_text="Changement d'option ou d'offre — par téléphone, depuis la Nouvelle-Calédonie"
            )
            assert phone.locator(".before del").first.inner_text().startswith("Oui, par téléphone")
            assert phone.locator(".after ins").first.inner_text().startswith("Non, pas par téléphone")
            assert page.locator(".after ins", has_text="16h30").count() > 0
            shot("02-preview", "fiche-apercu")

            page.fill(
                "textarea[name=reason]", "Le 1000 ferme à 16h30 ; plus de changement d'offre par téléphone"
            )
            page.click("button:has-text('Publier la version 2')")
            page.wait_for_url(console.url + "/fiche")
            assert "Version 2 publiée" in page.locator(".flash").first.inner_text()
            published_at = time.monotonic()

            # live on both action servers within seconds, whichever Rasa instance is asked
            until(lambda: servers_on(2), "both action servers serve version 2")
            until(lambda: new_answers(answers_everywhere(prod)), "the new answers through both instances")
            live_after = time.monotonic() - published_at
            shot("03-published", "fiche")

            # one action: back to version 1, and the old answers return
            page.click("button:has-text('Rétablir la version 1')")
            page.wait_for_url(console.url + "/fiche")
            assert "Version 1 rétablie" in page.locator(".flash").first.inner_text()
            until(lambda: servers_on(1), "both action servers serve version 1 again")
            until(lambda: old_answers(answers_everywhere(prod)), "the old answers through both instances")
            history = page.locator("#history").inner_text()
            assert "retour en arrière" in history and "publication" in history and editor[0] in history

            # a viewer cannot open the editor
            other = browser.new_context(locale="fr-FR")
            view = other.new_page()
            view.goto(console.url + "/login")
            view.fill("input[name=name]", viewer[0])
            view.fill("input[name=password]", viewer[1])
            view.click("button:has-text('Se connecter')")
            view.wait_for_url(console.url + "/conversations")
            assert view.locator("nav >> text=Fiche").count() == 0
            refused = view.goto(console.url + "/fiche")
            assert refused is not None and refused.status == 403
            other.close()
    finally:
        context.close()
        with engine.connect() as conn:
            still = fiche_versions.published_number(conn)
        if still not in (None, 1):  # the session's other tests expect the document's answers
            fiche_versions.rollback(engine, 1, "test", "fin du test")
        engine.dispose()
        prod.clock.clear()
    assert pids(prod) == started, "no process was restarted"
    print(f"new answers on both instances {live_after:.1f} s after the publication")
