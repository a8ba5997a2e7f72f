"""Live handoff end to end, in Chromium (conftest `live_desk`): a customer in the website widget asks for a person
during opening hours (the action server's clock fixed on a Monday at 10h), a staff member on
the console's live desk sees the conversation arrive without reloading, takes it, replies;
the customer sees the reply, answers, the answer reaches the desk; the staff member hands
back and the assistant answers again. Real servers: the action server, Rasa (HTTP API on,
behind a token), the console, the chat page."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from harness.project import ROOT
from tests.conftest import skip_without_chromium

pytestmark = [pytest.mark.servers, pytest.mark.model, pytest.mark.browser, skip_without_chromium]

ARTIFACTS = ROOT / "tests" / "artifacts"
TIMEOUT_MS = 30_000
MONDAY_10H = "2026-11-30T10:00:00+11:00"


def test_a_person_takes_over_and_hands_back(live_desk, browser):
    from playwright.sync_api import expect

    chat_url, console_url, servers, staff = (
        live_desk.chat_url,
        live_desk.console_url,
        live_desk.servers,
        live_desk.staff,
    )
    live_desk.clock.set(MONDAY_10H)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    staff_context = browser.new_context(
        locale="fr-FR", timezone_id="Pacific/Noumea", viewport={"width": 1200, "height": 900}
    )
    staff_context.set_default_timeout(TIMEOUT_MS)
    desk = staff_context.new_page()
    customer_context = browser.new_context(locale="fr-FR", viewport={"width": 1000, "height": 760})
    customer_context.set_default_timeout(TIMEOUT_MS)
    chat = customer_context.new_page()
    errors: list[str] = []
    for page in (desk, chat):
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        # the staff member logs in and says they are present on the desk
        desk.goto(console_url + "/direct")
        desk.fill("input[name=name]", staff[0])
        desk.fill("input[name=password]", staff[1])
        desk.click("button:has-text('Se connecter')")
        desk.goto(console_url + "/direct")
        desk.click("button:has-text('Me mettre présent(e)')")
        expect(desk.locator(".desk-presence")).to_contain_text("Vous êtes présent(e)")
        expect(desk.locator("#desk-queue")).to_contain_text("Personne n'attend.")
        desk.evaluate("window.__sameDocument = true")  # gone if the page reloads

        # the customer asks for a person in the widget
        chat.goto(chat_url)
        expect(chat.locator(".cc-status")).to_have_text("En ligne")
        expect(chat.locator(".cc-bot .cc-bubble").first).to_contain_text("assistant automatique")
        chat.locator(".cc-input").fill("je voudrais parler à un conseiller s'il vous plaît")
        chat.locator(".cc-send").click()
        waiting = chat.locator(".cc-bot .cc-bubble").filter(
            has_text="je transmets la conversation à un conseiller"
        )
        expect(waiting).to_have_count(1)
        expect(waiting.locator("xpath=..").locator(".cc-button")).to_have_text(["Revenir à l'assistant"])

        # it arrives in the desk's queue without a reload
        expect(desk.locator("#desk-queue")).to_contain_text("je voudrais parler à un conseiller")
        assert desk.evaluate("window.__sameDocument === true")
        desk.screenshot(path=str(ARTIFACTS / "handoff-1-queue.png"), full_page=True)
        desk.click("#desk-queue button:has-text('Prendre en charge')")
        conversation = desk.locator(".desk-conversation")
        expect(conversation).to_have_count(1)

        # the customer is told, with the staff member's first name
        expect(chat.locator(".cc-notice")).to_have_text(["Un conseiller a rejoint la conversation : Marie."])
        reply = conversation.locator("textarea[name=text]")
        reply.fill("Bonjour, je suis Marie. Quel est le souci avec votre ligne ?")
        conversation.locator("button:has-text('Envoyer')").click()
        expect(reply).to_have_value("")
        agent = chat.locator(".cc-agent")
        expect(agent).to_have_count(1)
        expect(agent.locator(".cc-author")).to_have_text("Marie (conseiller)")
        expect(agent.locator(".cc-bubble")).to_have_text(
            "Bonjour, je suis Marie. Quel est le souci avec votre ligne ?"
        )

        # the customer's answer reaches the desk (no reload); the assistant does not answer it
        bot_answers = chat.locator(".cc-bot .cc-bubble").count()
        desk.evaluate("window.__sameDocument = true")
        chat.locator(".cc-input").fill("je n'ai plus de réseau depuis ce matin, code PUK ?")
        chat.locator(".cc-send").click()
        expect(conversation).to_contain_text("je n'ai plus de réseau depuis ce matin")
        assert desk.evaluate("window.__sameDocument === true")
        chat.wait_for_timeout(1500)
        assert chat.locator(".cc-bot .cc-bubble").count() == bot_answers
        expect(chat.locator(".cc-typing")).to_be_hidden()  # no "Chat Cagou écrit…" for a person
        chat.screenshot(path=str(ARTIFACTS / "handoff-2-widget.png"))
        desk.screenshot(path=str(ARTIFACTS / "handoff-3-desk.png"), full_page=True)

        # hand back: the customer is told, and the assistant answers the next message
        desk.click('button:has-text("Rendre la main à l\'assistant")')
        expect(desk.locator("main")).to_contain_text("Aucune conversation en cours.")
        expect(chat.locator(".cc-notice")).to_have_count(2)
        expect(chat.locator(".cc-notice").last).to_contain_text("C'est de nouveau l'assistant automatique")
        chat.locator(".cc-input").fill("code PUK ?")
        chat.locator(".cc-send").click()
        expect(chat.locator(".cc-bot .cc-bubble").filter(has_text="Code PUK :")).to_have_count(1)
        assert errors == []
    finally:
        staff_context.close()
        customer_context.close()

    # the transcript is whole: every customer message is stored, the staff's too
    with closing(sqlite3.connect(servers.tracker_db)) as db:
        rows = db.execute("SELECT data FROM events WHERE type_name IN ('user', 'bot') ORDER BY id").fetchall()
    texts = [json.loads(data).get("text") for (data,) in rows]
    assert "je n'ai plus de réseau depuis ce matin, code PUK ?" in texts
    assert "Bonjour, je suis Marie. Quel est le souci avec votre ligne ?" in texts
