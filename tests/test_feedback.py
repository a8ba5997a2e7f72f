""" "Cette réponse vous a-t-elle aidé ?" (actions/feedback.py): when it is asked, what a 👍 / 👎
records and answers. Actions run with CollectingDispatcher and Tracker fixtures."""

from __future__ import annotations

from actions import answers
from actions.actions import ActionRepondre
from actions.feedback import ActionEnregistrerAvis
from channels.guard import neutralise_command
from console.feedback import click_note
from tests.conftest import make_tracker, run_action

WEB, MESSENGER, REST = "socketio", "facebook", "rest"


def canal(value):
    return [{"entity": "canal", "value": value}]


def answer(intent, entities=None, slots=None, channel=WEB, text=""):
    return run_action(ActionRepondre(), make_tracker(intent, entities, slots, text=text, channel=channel))


def slot(events, name):
    return [e["value"] for e in events if e.get("event") == "slot" and e.get("name") == name]


def test_a_factual_answer_on_the_widget_asks_with_the_topic_in_the_payloads():
    dispatcher, events = answer("code_puk", canal("agence"))
    first, question = dispatcher.messages
    assert "pièce d'identité" in first["text"]
    assert question["text"] == answers.FEEDBACK_QUESTION
    payloads = [q["payload"] for q in question["quick_replies"]]
    assert payloads == ['/avis_utile{"avis_sujet":"code_puk"}', '/avis_inutile{"avis_sujet":"code_puk"}']
    assert [q["title"] for q in question["quick_replies"]] == ["👍 Oui", "👎 Non"]
    assert slot(events, "avis_demandes") == [["code_puk"]]


def test_messenger_is_asked_too_rest_is_not():
    dispatcher, _ = answer("horaires", channel=MESSENGER)
    assert dispatcher.messages[-1]["text"] == answers.FEEDBACK_QUESTION
    dispatcher, events = answer("horaires", channel=REST)
    assert len(dispatcher.messages) == 1 and slot(events, "avis_demandes") == []


def test_once_per_topic_of_a_conversation():
    dispatcher, events = answer("resiliation", canal("courrier"), slots={"avis_demandes": ["resiliation"]})
    assert len(dispatcher.messages) == 1 and slot(events, "avis_demandes") == []
    dispatcher, events = answer("horaires", slots={"avis_demandes": ["resiliation"]})
    assert dispatcher.messages[-1]["text"] == answers.FEEDBACK_QUESTION
    assert slot(events, "avis_demandes") == [["resiliation", "horaires"]]


def test_not_after_small_talk_a_clarification_or_an_answer_that_offers_a_choice():
    for intent in ("greet", "thanks", "nlu_fallback", "out_of_scope"):
        dispatcher, _ = answer(intent, text="bonjour")
        assert all(m.get("text") != answers.FEEDBACK_QUESTION for m in dispatcher.messages), intent
    # all channels of a procedure: its channel buttons are the question; the choice gets asked
    dispatcher, _ = answer("code_puk")
    assert len(dispatcher.messages) == 1 and dispatcher.messages[0]["buttons"]


def test_a_thumb_up_is_recorded_with_its_topic_and_thanked():
    entities = [{"entity": "avis_sujet", "value": "code_puk"}]
    dispatcher, events = run_action(
        ActionEnregistrerAvis(), make_tracker("avis_utile", entities, {"sujet": "horaires"}, channel=WEB)
    )
    assert slot(events, "avis") == [{"sujet": "code_puk", "note": "utile"}]
    assert dispatcher.messages[0]["text"] == answers.FEEDBACK_THANKS


def test_a_thumb_down_offers_to_rephrase_or_a_person():
    dispatcher, events = run_action(
        ActionEnregistrerAvis(), make_tracker("avis_inutile", [], {"sujet": "horaires"}, channel=MESSENGER)
    )
    # no topic in the payload (an old client): the last topic answered
    assert slot(events, "avis") == [{"sujet": "horaires", "note": "inutile"}]
    message = dispatcher.messages[0]
    assert "reformuler" in message["text"] and "conseiller" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/demander_humain"]


def test_an_unknown_topic_in_the_payload_is_not_recorded_as_a_topic():
    entities = [{"entity": "avis_sujet", "value": "<script>"}]
    _, events = run_action(ActionEnregistrerAvis(), make_tracker("avis_utile", entities, {"sujet": None}))
    assert slot(events, "avis") == [{"sujet": None, "note": "utile"}]


def test_the_payloads_pass_the_channel_guard_and_the_console_reads_them():
    for button in answers.feedback_buttons("resiliation"):
        assert neutralise_command(button["payload"]) == button["payload"]
    assert [click_note(b["payload"]) for b in answers.feedback_buttons("horaires")] == ["utile", "inutile"]
    # a typed command that looks like one is not a payload of ours
    assert neutralise_command('/avis_utile{"avis_sujet":"x"}') == 'avis_utile{"avis_sujet":"x"}'


def test_a_typed_yes_or_no_right_after_the_question_answers_it():
    asked = [
        {"event": "user", "text": "vous êtes ouverts ?"},
        {"event": "bot", "text": "**En ce moment, ouvert : ...**"},
        {"event": "bot", "text": answers.FEEDBACK_QUESTION},
    ]
    for intent, note in (("affirm", "utile"), ("deny", "inutile")):
        tracker = make_tracker(intent, slots={"sujet": "horaires"}, events=asked, text="oui", channel=WEB)
        dispatcher, events = run_action(ActionRepondre(), tracker)
        assert slot(events, "avis") == [{"sujet": "horaires", "note": note}]
        assert dispatcher.messages[0]["text"] in (answers.FEEDBACK_THANKS, answers.FEEDBACK_SORRY)
    # once the conversation moved on, "oui" is not an answer to it any more
    later = [*asked, {"event": "user", "text": "merci"}, {"event": "bot", "text": "Avec plaisir !"}]
    _, events = run_action(ActionRepondre(), make_tracker("affirm", events=later, text="oui", channel=WEB))
    assert slot(events, "avis") == []
