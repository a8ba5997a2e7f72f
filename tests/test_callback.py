"""Out of hours, the callback request (actions/callback.py): the offer, the form's
validation (wrong number, a question instead of an answer, "annuler") and the record,
with CollectingDispatcher and Tracker fixtures. The form with the trained model and the
console's list: tests/test_callback_e2e.py."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import answers, callback
from actions.actions import ActionRepondre, ActionTransfertHumain
from actions.callback import (
    ActionAskRappelContact,
    ActionEnregistrerRappel,
    ValidateRappelForm,
    contact_value,
    name_value,
    phone_number,
)
from actions.hours import NOUMEA
from tests.conftest import make_tracker, run_action

SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=NOUMEA)
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=NOUMEA)


def clocked(action_class, when):
    action = action_class()
    action.clock = lambda: when
    return action


def slots(events):
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("78 12 34", "78 12 34"),
        ("781234", "78 12 34"),
        ("+687 78.12.34", "78 12 34"),
        ("00687781234", "78 12 34"),
        ("(78) 12-34", "78 12 34"),
        ("78\u00a012\u00a034", "78 12 34"),
        ("78 12 3", None),
        ("0612345678", None),  # a French mobile: 10 digits
        ("12 34 56 7", None),
        ("appelez-moi", None),
    ],
)
def test_new_caledonian_numbers(text, expected):
    assert phone_number(text) == expected


def test_contact_is_a_number_or_an_email():
    assert contact_value(" Jean.Dupont@Example.NC ") == "jean.dupont@example.nc"
    assert contact_value("jean.dupont@") is None
    assert contact_value("26 87 70") == "26 87 70"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Jean Dupont", True),
        ("Marie-Hélène N'Guyen", True),
        ("Wamytan", True),
        ("J", False),
        ("007", False),
        ("jean@x.nc", False),
    ],
)
def test_names(text, ok):
    assert (name_value(text) is not None) is ok


# --- the offer ------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["socketio", "facebook"])
def test_out_of_hours_a_person_is_offered_a_callback(channel):
    tracker = make_tracker("demander_humain", channel=channel)
    dispatcher, events = run_action(clocked(ActionTransfertHumain, SATURDAY), tracker)
    (message,) = dispatcher.messages
    assert "fermé en ce moment ; réouverture lundi 30/11 à 7h30" in message["text"]
    assert "1012" in message["text"]  # the always-open line, as today
    assert message["text"].endswith(answers.CALLBACK_OFFER)
    assert [b["payload"] for b in message["buttons"]] == ["/rappel", "/deny"]
    assert slots(events) == {"offre_rappel": True}


def test_rest_keeps_todays_contacts_without_an_offer():
    tracker = make_tracker("demander_humain", channel="rest")
    dispatcher, events = run_action(clocked(ActionTransfertHumain, SATURDAY), tracker)
    assert "demande de rappel" not in dispatcher.messages[0]["text"] and slots(events) == {}


def test_yes_to_the_offer_starts_the_form():
    tracker = make_tracker("affirm", slots={"offre_rappel": True}, text="oui", channel="socketio")
    dispatcher, events = run_action(clocked(ActionRepondre, SATURDAY), tracker)
    assert dispatcher.messages == []
    assert {"event": "followup", "name": "rappel_form"} in [
        {k: e.get(k) for k in ("event", "name")} for e in events
    ]
    assert slots(events) == {"offre_rappel": None}


def test_no_to_the_offer():
    tracker = make_tracker("deny", slots={"offre_rappel": True}, text="non merci", channel="socketio")
    dispatcher, events = run_action(clocked(ActionRepondre, SATURDAY), tracker)
    assert dispatcher.messages[0]["text"] == answers.CALLBACK_DECLINED
    assert slots(events) == {"offre_rappel": None}


def test_a_question_instead_is_answered_and_the_offer_lapses():
    tracker = make_tracker(
        "code_puk", slots={"offre_rappel": True}, text="et le code PUK ?", channel="socketio"
    )
    dispatcher, events = run_action(clocked(ActionRepondre, SATURDAY), tracker)
    assert "Code PUK" in dispatcher.messages[0]["text"]
    assert slots(events)["offre_rappel"] is None


# --- the form -------------------------------------------------------------------------------


def validate(slot, value, intent="nlu_fallback", confidence=0.5):
    tracker = make_tracker(intent, text=value, channel="socketio")
    tracker.latest_message["intent"]["confidence"] = confidence
    tracker.slots.update({"requested_slot": slot, slot: value})
    dispatcher = CollectingDispatcher()
    method = getattr(ValidateRappelForm(), f"validate_{slot}")
    result = asyncio.run(method(value, dispatcher, tracker, {}))
    return result, [m.get("text") for m in dispatcher.messages]


def test_a_valid_answer_is_kept_as_written():
    assert validate("rappel_nom", "Jean Dupont") == ({"rappel_nom": "Jean Dupont"}, [])
    assert validate("rappel_contact", "+687 78 12 34") == ({"rappel_contact": "78 12 34"}, [])
    subject = "Ma ligne ne capte plus depuis hier soir"
    assert validate("rappel_sujet", subject, "support_technique", 0.99) == ({"rappel_sujet": subject}, [])


def test_a_wrong_number_is_refused_with_a_clear_message():
    assert validate("rappel_contact", "06 12 34 56 78") == (
        {"rappel_contact": None},
        [answers.CALLBACK_BAD_CONTACT],
    )
    assert validate("rappel_nom", "12345") == ({"rappel_nom": None}, [answers.CALLBACK_BAD_NAME])
    assert validate("rappel_sujet", "ok") == ({"rappel_sujet": None}, [answers.CALLBACK_BAD_SUBJECT])


@pytest.mark.parametrize("slot", callback.FIELDS)
@pytest.mark.parametrize("text", ["annuler", "Non merci", "stop"])
def test_cancel_at_any_question(slot, text):
    result, messages = validate(slot, text, "deny" if text != "annuler" else "nlu_fallback")
    assert messages == [answers.CALLBACK_CANCELLED]
    assert result["requested_slot"] is None
    assert all(result[field] is None for field in callback.FIELDS)


def test_a_question_inside_the_form_is_answered_then_asked_again():
    result, messages = validate("rappel_contact", "c'est quoi le code PUK ?", "code_puk", 0.97)
    assert result["rappel_contact"] is None and "requested_slot" not in result
    assert len(messages) == 1 and "Code PUK" in messages[0]


@pytest.mark.parametrize("text", ["06 12 34 56 78", "+33 6 12 34 56 78", "jean.dupont@", "jean@gmail"])
def test_a_wrong_number_or_email_is_refused_even_when_the_classifier_is_sure(text):
    # the classifier reads numbers as questions about our services (info_service 0.99)
    result, messages = validate("rappel_contact", text, "info_service", 0.99)
    assert result == {"rappel_contact": None}
    assert messages == [answers.CALLBACK_BAD_CONTACT]


def test_the_form_asks_in_french():
    dispatcher, _ = run_action(ActionAskRappelContact(), make_tracker("nlu_fallback"))
    assert dispatcher.messages[0]["text"] == answers.CALLBACK_QUESTIONS["rappel_contact"]


def test_the_request_is_recorded_and_the_answers_cleared():
    tracker = make_tracker(
        "nlu_fallback",
        slots={
            "rappel_nom": "Jean Dupont",
            "rappel_contact": "78 12 34",
            "rappel_sujet": "Ma ligne est coupée",
        },
    )
    dispatcher, events = run_action(clocked(ActionEnregistrerRappel, SATURDAY), tracker)
    text = dispatcher.messages[0]["text"]
    assert text.startswith("Merci Jean Dupont, votre demande de rappel est enregistrée.")
    assert "au 78 12 34 dès la réouverture (lundi 30/11 à 7h30)" in text
    recorded = slots(events)
    assert recorded["rappel_demande"] == {
        "nom": "Jean Dupont",
        "contact": "78 12 34",
        "sujet": "Ma ligne est coupée",
        "demande_le": "2026-11-28T10:00:00+11:00",
    }
    assert all(recorded[field] is None for field in callback.FIELDS)


def test_a_cancelled_form_records_nothing():
    tracker = make_tracker("deny", slots={"rappel_nom": None, "rappel_contact": None, "rappel_sujet": None})
    dispatcher, events = run_action(ActionEnregistrerRappel(), tracker)
    assert dispatcher.messages == [] and events == []
