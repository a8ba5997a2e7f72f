"""Out of hours, a callback request: the form `rappel_form` and its actions.

When a customer wants a person and the Service Clientèle is closed, the handoff answer
offers a callback (actions/actions.py `hand_over`). The form starts only if the customer
accepts (the button `/rappel`, or "oui" to the offer: slot `offre_rappel`); it asks a name,
a New Caledonian phone number (6 digits) or an email, and the subject in a sentence. Every
answer is validated here with a clear French message; "annuler" (or "non", "stop"...) ends
the form, and a question of ours asked instead of a name or a number is answered before
the form asks again. The request is the slot `rappel_demande` of the conversation (events
of the tracker store): the console lists it (/rappels), and the retention and erasure of
conversations apply to it as to everything else.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import answers, live_fiche
from actions.hours import now_noumea
from actions.understanding import FACT_TOPICS, fold

FORM = "rappel_form"
NAME, CONTACT, SUBJECT = "rappel_nom", "rappel_contact", "rappel_sujet"
FIELDS = (NAME, CONTACT, SUBJECT)
OFFER = "offre_rappel"
REQUEST = "rappel_demande"

CANCEL = re.compile(
    r"^(annuler|annule|annulez|stop|non|non merci|laisse tomber|laissez tomber|abandonner|plus besoin|rien)\b"
)
NAME_CHARS = re.compile(r"^[^\W\d_]+(?:[ '’.-]+[^\W\d_]+)*\.?$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
PHONE_SEPARATORS = re.compile(r"[\s.\-()\u00a0\u202f]")
SURE_QUESTION = 0.95


def country_code() -> str:
    """New Caledonia's calling code, from the fiche's number from abroad ("+687 ...")."""
    abroad_number = live_fiche.current().abroad_number
    found = re.match(r"\+(\d+)", abroad_number)
    if found is None:
        raise ValueError(f"the fiche's number from abroad has no country code: {abroad_number!r}")
    return found.group(1)


def phone_number(text: str) -> str | None:
    """A New Caledonian number written by a customer ("78 12 34", "+687 781234") as
    "78 12 34", or None. New Caledonia's numbers have 6 digits."""
    digits = PHONE_SEPARATORS.sub("", text)
    code = country_code()
    digits = re.sub(rf"^(\+{code}|00{code})", "", digits)
    if not re.fullmatch(r"\d{6}", digits):
        return None
    return f"{digits[:2]} {digits[2:4]} {digits[4:]}"


def attempts_a_contact(text: str) -> bool:
    """Digits with a phone number's separators, or an address with "@": an attempt at the
    number or the email asked for, right or wrong, however sure the classifier is that a
    number is a question about our services."""
    return "@" in text or bool(re.fullmatch(r"\+?[\d/]+", PHONE_SEPARATORS.sub("", text)))  # "78/12/34"


def contact_value(text: str) -> str | None:
    text = text.strip()
    if EMAIL.match(text):
        return text.lower()
    return phone_number(text)


def name_value(text: str) -> str | None:
    name = " ".join(text.split())
    if not 2 <= len(name) <= 60 or len(name.split()) > 5 or not NAME_CHARS.match(name):
        return None
    return name


def subject_value(text: str) -> str | None:
    subject = " ".join(text.split())
    return subject if 5 <= len(subject) <= answers.CALLBACK_SUBJECT_MAX else None


def wants_to_cancel(tracker: Tracker) -> bool:
    text = fold(tracker.latest_message.get("text") or "")
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    return bool(CANCEL.match(text)) or intent == "deny"


def asks_a_question(tracker: Tracker) -> bool:
    """A question of ours typed instead of the answer ("et c'est ouvert demain ?"); never a
    mistyped number or email ("06 12 34 56 78" gets "that is not a number", not our numbers)."""
    text = tracker.latest_message.get("text") or ""
    if "?" not in text and attempts_a_contact(text):
        return False
    intent = tracker.latest_message.get("intent") or {}
    ours = intent.get("name") in FACT_TOPICS
    return ours and ("?" in text or intent.get("confidence", 0.0) >= SURE_QUESTION)


class ValidateRappelForm(FormValidationAction):
    """Each answer of the callback form; a question of ours is answered, "annuler" ends it."""

    def name(self) -> str:
        return "validate_rappel_form"

    @staticmethod
    def _cancel(dispatcher: CollectingDispatcher) -> dict[str, Any]:
        """Ends the form (requested_slot None) with every answer cleared."""
        dispatcher.utter_message(text=answers.CALLBACK_CANCELLED)
        return {"requested_slot": None, OFFER: None, **dict.fromkeys(FIELDS)}

    async def _validate(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, slot: str, value: str | None, bad: str
    ) -> dict[str, Any]:
        """The name or the number: "annuler" ends the form, a question of ours is answered and
        the form asks again, a wrong answer gets `bad`."""
        if wants_to_cancel(tracker):
            return self._cancel(dispatcher)
        if value is None and asks_a_question(tracker):
            from actions.actions import ActionRepondre  # the one place that answers questions

            events = await ActionRepondre().respond(dispatcher, tracker)
            context = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
            return {**context, slot: None}  # the form asks for it again
        if value is None:
            dispatcher.utter_message(text=bad)
        return {slot: value}

    async def validate_rappel_nom(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return await self._validate(
            dispatcher, tracker, NAME, name_value(str(value or "")), answers.CALLBACK_BAD_NAME
        )

    async def validate_rappel_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return await self._validate(
            dispatcher, tracker, CONTACT, contact_value(str(value or "")), answers.CALLBACK_BAD_CONTACT
        )

    async def validate_rappel_sujet(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # a subject is naturally about our topics: never taken for a question
        subject = subject_value(str(value or ""))
        if wants_to_cancel(tracker) and len(str(value or "").split()) <= 3:
            return self._cancel(dispatcher)
        if subject is None:
            dispatcher.utter_message(text=answers.CALLBACK_BAD_SUBJECT)
        return {SUBJECT: subject}


class AskAction(Action):
    """The form's question for one slot (Rasa runs `action_ask_<slot>`)."""

    slot = ""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(text=answers.CALLBACK_QUESTIONS[self.slot])
        return []


class ActionAskRappelNom(AskAction):
    slot = NAME


class ActionAskRappelContact(AskAction):
    slot = CONTACT


class ActionAskRappelSujet(AskAction):
    slot = SUBJECT


class ActionEnregistrerRappel(Action):
    """The form is over: record the request (all three answers), or nothing if cancelled."""

    clock = staticmethod(now_noumea)

    def name(self) -> str:
        return "action_enregistrer_rappel"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        values = {field: tracker.get_slot(field) for field in FIELDS}
        if not all(values.values()):
            return []  # cancelled: the validation said so
        request = {
            "nom": values[NAME],
            "contact": values[CONTACT],
            "sujet": values[SUBJECT],
            "demande_le": self.clock().isoformat(timespec="seconds"),
        }
        dispatcher.utter_message(
            text=answers.callback_recorded(live_fiche.current(), values[NAME], values[CONTACT], self.clock())
        )
        return [SlotSet(REQUEST, request), SlotSet(OFFER, None), *[SlotSet(field, None) for field in FIELDS]]
