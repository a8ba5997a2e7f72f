"""Out of hours, the callback request with the trained model and the real servers (conftest
`live_desk`): the action server's clock on a Saturday, a customer of the website widget (socket.io protocol,
as the widget speaks it) asks for a person, accepts the offer, answers the form (a wrong
number, a question asked instead of the answer, the right number, the subject); the request
is in the console's /rappels. Another customer cancels the form: nothing is recorded."""

from __future__ import annotations

from contextlib import closing

import pytest

from actions.answers import FEEDBACK_QUESTION
from actions.markdown import plain
from harness.console import StaffClient
from harness.socketio_client import Widget

pytestmark = [pytest.mark.servers, pytest.mark.model]

SATURDAY_10H = "2026-11-28T10:00:00+11:00"


def ask_all(widget: Widget, session: str, text: str, count: int) -> list[str]:
    """Sends `text`; returns the texts of the next `count` bot messages."""
    widget.say(text, session)
    return [widget.next("bot_uttered")["text"] for _ in range(count)]


def test_a_callback_request_out_of_hours(live_desk):
    servers, console_url = live_desk.servers, live_desk.console_url
    live_desk.clock.set(SATURDAY_10H)
    with closing(Widget(servers.rasa_url, origin=live_desk.origin)) as widget:
        session = widget.session()
        offer = widget.ask("je voudrais parler à un conseiller", session)
        assert "fermé en ce moment" in offer["text"] and "1012" in offer["text"]
        assert "Voulez-vous en laisser une ?" in offer["text"]
        assert [q["payload"] for q in offer["quick_replies"]] == ["/rappel", "/deny"]

        assert ask_all(widget, session, "oui", 1) == [
            "Pour la demande de rappel : quel est votre nom ? (« annuler » pour arrêter)"
        ]
        (contact_question,) = ask_all(widget, session, "Jean Dupont", 1)
        assert contact_question.startswith("À quel numéro calédonien (6 chiffres)")
        wrong, again = ask_all(widget, session, "06 12 34 56 78", 2)
        assert wrong.startswith("Ce n'est ni un numéro calédonien à 6 chiffres") and again == contact_question
        answer, again = ask_all(widget, session, "au fait c'est quoi le code PUK ?", 2)
        assert "Code PUK" in answer and again == contact_question
        assert ask_all(widget, session, "78 12 34", 1) == [
            "En une phrase, quel est l'objet de votre demande ?"
        ]
        (recorded,) = ask_all(widget, session, "Ma ligne ne capte plus depuis hier soir", 1)
        assert recorded.startswith("Merci Jean Dupont, votre demande de rappel est enregistrée.")
        assert "au 78 12 34 dès la réouverture (lundi 30/11 à 7h30)" in recorded
        # the form is over: the assistant answers questions again
        assert "Code PUK" in widget.ask("code PUK ?", session)["text"]

    staff = StaffClient(console_url)
    assert staff.login(*live_desk.staff).status_code == 303
    page = staff.get("/rappels").text
    assert "Jean Dupont" in page and "78 12 34" in page and "Ma ligne ne capte plus depuis hier soir" in page


def test_a_callback_request_cancelled(live_desk):
    servers, console_url = live_desk.servers, live_desk.console_url
    live_desk.clock.set(SATURDAY_10H)
    with closing(Widget(servers.rasa_url, origin=live_desk.origin)) as widget:
        session = widget.session()
        widget.ask("je veux parler à quelqu'un", session)
        (question,) = ask_all(widget, session, "/rappel", 1)  # the offer's button
        assert question.startswith("Pour la demande de rappel")
        assert ask_all(widget, session, "annuler", 1) == [
            "Demande de rappel annulée. Je reste à votre disposition pour vos questions."
        ]
        assert "Code PUK" in widget.ask("code PUK ?", session)["text"]
        # a question instead of accepting the offer: answered, and the offer lapses
        widget.ask("je veux parler à un conseiller", session)
        hours, question = ask_all(widget, session, "quels sont vos horaires ?", 2)
        assert "Service Clientèle, au 1000" in plain(hours) and question == FEEDBACK_QUESTION
        assert "Je reste à votre disposition" not in widget.ask("oui", session)["text"]
    staff = StaffClient(console_url)
    staff.login(*live_desk.staff)
    assert staff.get("/rappels").text.count("<tr>") == 2  # the header and the first test's request
