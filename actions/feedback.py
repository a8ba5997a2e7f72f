""" "Cette réponse vous a-t-elle aidé ?": asked after a factual answer, recorded as a slot.

Asked on the widget and on Messenger (REST clients are other programs), after an answer of
the fiche (action_repondre), never after small talk or a clarification, at most once per topic
of a conversation (slot `avis_demandes`), and not when the answer offers its own buttons (a
channel to choose: the customer's choice gets the question). The 👍 / 👎 payloads name the
topic; `action_enregistrer_avis` sets the slot `avis` = {"sujet", "note"} that the console's
insights read (console/feedback.py), thanks for a 👍 and, for a 👎, offers to rephrase or to
reach a person. A typed "oui" / "non" right after the question is taken as 👍 / 👎.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import answers
from actions.handoff import DESK_CHANNEL, MESSENGER_CHANNEL
from actions.understanding import FACT_TOPICS

ASKED = "avis_demandes"
SLOT = "avis"
ENTITY = "avis_sujet"
ASKING_CHANNELS = (DESK_CHANNEL, MESSENGER_CHANNEL)
NOTES = {"avis_utile": "utile", "avis_inutile": "inutile"}


def ask(
    dispatcher: CollectingDispatcher, tracker: Tracker, topic: str, reply: answers.Reply
) -> list[EventType]:
    """Asks after the answer `reply` to `topic` when it should; the events that remember it."""
    asked = list(tracker.get_slot(ASKED) or [])
    if tracker.get_latest_input_channel() not in ASKING_CHANNELS or topic in asked or reply.buttons:
        return []
    # Quick replies: Messenger shows them as such; the widget as buttons (OutputChannel's default).
    dispatcher.utter_message(text=answers.FEEDBACK_QUESTION, quick_replies=answers.feedback_buttons(topic))
    return [SlotSet(ASKED, [*asked, topic])]


def topic_of(tracker: Tracker) -> str | None:
    """The topic a 👍 / 👎 is about: the button's entity, else the last topic answered."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == ENTITY and entity.get("value") in FACT_TOPICS:
            return str(entity["value"])
    return tracker.get_slot("sujet")


def awaited(tracker: Tracker) -> bool:
    """The assistant's last message before this one was the question: a typed "oui" or "non"
    answers it."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return False
            seen_user = True
        elif event.get("event") == "bot" and seen_user:
            return event.get("text") == answers.FEEDBACK_QUESTION
    return False


def record(dispatcher: CollectingDispatcher, tracker: Tracker, note: str) -> list[EventType]:
    """Thanks for a 👍; for a 👎, the offer to rephrase or to reach a person. The slot `avis`."""
    reply = answers.feedback_answer(useful=note == "utile")
    dispatcher.utter_message(text=reply.text, buttons=reply.buttons or None)
    return [SlotSet(SLOT, {"sujet": topic_of(tracker), "note": note})]


class ActionEnregistrerAvis(Action):
    def name(self) -> str:
        return "action_enregistrer_avis"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        note = NOTES.get(intent or "")
        return record(dispatcher, tracker, note) if note else []
