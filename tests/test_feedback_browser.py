"""Readable answers and "Cette réponse vous a-t-elle aidé ?" end to end, in Chromium (conftest
`live_desk`: the action server on a test clock, Rasa, the console on the same tracker store,
the chat page). With UPDATE_SCREENSHOTS=1 the widget's screenshot goes to docs/screenshots/. The customer gets a Markdown answer rendered as a bold first line, a list and
links; answers 👍 to one answer and 👎 to another; a staff member sees both in the console's
insights (satisfaction per topic) and finds the conversation under "réponses jugées inutiles"."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from harness.project import ROOT
from tests.conftest import skip_without_chromium
from tests.test_webchat_browser import shot

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.browser, skip_without_chromium]

ARTIFACTS = ROOT / "tests" / "artifacts"
TIMEOUT_MS = 30_000
MONDAY_10H = "2026-11-30T10:00:00+11:00"


def useful_and_given(page) -> tuple[int, int]:
    """The insights' "(N 👍 sur M avis)": the 👍 and the opinions given in the period."""
    found = re.search(r"\((\d+) 👍 sur (\d+) avis\)", page.locator("body").inner_text())
    assert found, "the insights show the satisfaction"
    return int(found.group(1)), int(found.group(2))


def test_answers_render_and_feedback_reaches_the_insights(live_desk, browser):
    from playwright.sync_api import expect

    live_desk.clock.set(MONDAY_10H)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="fr-FR", viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    chat = context.new_page()
    staff = browser.new_context(locale="fr-FR", viewport={"width": 1200, "height": 900})
    staff.set_default_timeout(TIMEOUT_MS)
    console = staff.new_page()
    console.goto(live_desk.console_url + "/insights")
    console.fill("input[name=name]", live_desk.staff[0])
    console.fill("input[name=password]", live_desk.staff[1])
    console.click("button:has-text('Se connecter')")
    console.goto(live_desk.console_url + "/insights")
    before = useful_and_given(console)
    errors: list[str] = []
    chat.on("pageerror", lambda error: errors.append(str(error)))
    try:
        chat.goto(live_desk.chat_url)
        expect(chat.locator(".cc-status")).to_have_text("En ligne")
        expect(chat.locator(".cc-bot .cc-bubble").first).to_contain_text("assistant automatique")

        # a chip: the procedure on every channel, as Markdown rendered (bold sentence, list, links)
        chat.locator(".cc-button", has_text="Code PUK").click()
        overview = chat.locator(".cc-bot .cc-bubble").filter(has_text="pas par téléphone").last
        expect(overview.locator("strong").first).to_have_text(
            re.compile(r"^Code PUK : en agence .* ; pas par téléphone\.$")
        )
        expect(overview.locator("ul.cc-list li")).to_have_count(3)
        expect(overview.locator("a[href='https://www.opt.nc']").first).to_be_visible()
        assert "**" not in overview.inner_text() and "](" not in overview.inner_text()
        # its channel buttons are the question: no "did this help?" yet
        expect(chat.locator(".cc-bubble", has_text="Cette réponse vous a-t-elle aidé ?")).to_have_count(0)

        # the agency chosen: the answer, then the question with 👍 / 👎
        chat.locator(".cc-button", has_text="En agence").last.click()
        expect(chat.locator(".cc-bot .cc-bubble strong", has_text="Oui, en agence")).to_have_count(1)
        question = chat.locator(".cc-message", has_text="Cette réponse vous a-t-elle aidé ?")
        expect(question).to_have_count(1)
        expect(question.locator(".cc-button")).to_have_text(["👍 Oui", "👎 Non"])
        question.locator(".cc-button", has_text="👍 Oui").click()
        expect(chat.locator(".cc-bot .cc-bubble", has_text="Merci pour votre avis")).to_have_count(1)

        # hours: a tel: link in the answer; 👎 offers to rephrase or a person
        chat.locator(".cc-input").fill("vous êtes ouverts là ?")
        chat.locator(".cc-send").click()
        hours = chat.locator(".cc-bot .cc-bubble").filter(has_text="En ce moment, ouvert").last
        expect(hours.locator("a[href='tel:1000']").first).to_be_visible()
        expect(question).to_have_count(2)
        question.last.locator(".cc-button", has_text="👎 Non").click()
        sorry = chat.locator(".cc-message", has_text="ne vous ait pas aidé")
        expect(sorry.locator(".cc-button")).to_have_text(["Parler à un conseiller"])
        shot(chat, "feedback", "widget-feedback")

        # a staff member reads the insights (one 👍 and two opinions more than before: other
        # tests share the servers) and the conversations judged useless
        console.goto(live_desk.console_url + "/insights")
        expect(console.locator("body")).to_contain_text(f"({before[0] + 1} 👍 sur {before[1] + 2} avis)")
        expect(console.locator("body")).to_contain_text("code PUK")
        expect(console.locator("body")).to_contain_text("horaires")
        console.screenshot(path=str(ARTIFACTS / "feedback-insights.png"), full_page=True)
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            shutil.copy(
                ARTIFACTS / "feedback-insights.png", ROOT / "docs" / "screenshots" / "insights-feedback.png"
            )
        console.goto(live_desk.console_url + "/conversations?avis=inutile")
        expect(console.locator("body")).to_contain_text("vous êtes ouverts là ?")
        assert errors == []
    finally:
        context.close()
        staff.close()
