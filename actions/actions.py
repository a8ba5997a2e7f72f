"""Rasa custom actions: read the conversation, ask actions.answers, send the reply.

The fiche is loaded once, when the action server imports this module.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import answers
from actions.fiche import CHANNELS, PROCEDURES, load_fiche
from actions.hours import now_noumea

FICHE = load_fiche()

# Intents that cannot be offered as a clarification choice.
NOT_SUGGESTED = {"nlu_fallback", "preciser_canal"}


def latest_entities(tracker: Tracker, entity: str) -> List[str]:
    return [str(e.get("value")) for e in tracker.latest_message.get("entities", []) if e.get("entity") == entity]


def latest_channel(tracker: Tracker) -> Optional[str]:
    return next((c for c in latest_entities(tracker, "canal") if c in CHANNELS), None)


def latest_intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message.get("intent") or {}).get("name")


def send(dispatcher: CollectingDispatcher, reply: answers.Reply) -> None:
    dispatcher.utter_message(text=reply.text, buttons=reply.buttons or None)


class Clocked:
    """Mixin for actions that need the current time; tests replace `clock` with a fixed instant."""

    clock: Callable = staticmethod(now_noumea)


class ActionRepondreProcedure(Action):
    """A procedure of the matrix, for the channel named now or for every channel.

    A channel named alone ("et par mail ?") applies to the procedure asked last.
    """

    def name(self) -> Text:
        return "action_repondre_procedure"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        intent = latest_intent(tracker)
        procedure = intent if intent in PROCEDURES else tracker.get_slot("procedure")
        if procedure not in PROCEDURES:
            send(dispatcher, answers.which_procedure())
            return []
        send(dispatcher, answers.procedure_answer(FICHE, procedure, latest_channel(tracker)))
        return [SlotSet("procedure", procedure)]


class ActionHoraires(Clocked, Action):
    def name(self) -> Text:
        return "action_horaires"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        services = latest_entities(tracker, "service")
        if latest_channel(tracker) == "agence" and not services:
            services = ["1016"]
        send(dispatcher, answers.hours_answer(FICHE, self.clock(), services))
        return []


class ActionRepondreInfo(Clocked, Action):
    """Contacts, consumption follow-up, restoration delay, cost of calls, tariff guide."""

    def name(self) -> Text:
        return "action_repondre_info"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        intent = latest_intent(tracker)
        answer = answers.INFO_ANSWERS.get(intent)
        if answer is None:
            send(dispatcher, answers.clarify_answer([]))
        elif intent == "contact_telephone":
            send(dispatcher, answer(FICHE, self.clock(), latest_entities(tracker, "service")))
        else:
            send(dispatcher, answer(FICHE, self.clock()))
        return []


class ActionTransfertHumain(Clocked, Action):
    def name(self) -> Text:
        return "action_transfert_humain"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        send(dispatcher, answers.handoff_answer(FICHE, self.clock()))
        return []


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many of the customer's last messages in a row the NLU could not classify."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if (event.get("parse_data") or {}).get("intent", {}).get("name") != "nlu_fallback":
            break
        count += 1
    return count


class ActionClarifier(Clocked, Action):
    """First failure: offer the two most likely topics. Second in a row: hand over to a human."""

    def name(self) -> Text:
        return "action_clarifier"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        if consecutive_fallbacks(tracker) >= 2:
            send(dispatcher, answers.handoff_answer(FICHE, self.clock(), after_failure=True))
            return []
        ranking = tracker.latest_message.get("intent_ranking") or []
        candidates = [r.get("name") for r in ranking if r.get("name") not in NOT_SUGGESTED]
        send(dispatcher, answers.clarify_answer(candidates))
        return []
