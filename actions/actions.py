"""Rasa custom actions: read the conversation, ask actions.answers, send the reply.

One action, `action_repondre`, answers every question about the fiche: it reads the topics
of the message (several for a compound message), the customer's situation (abroad, the
moment asked about, the language) and the context of the conversation (last topic and
service), checks that a procedure question concerns a mobile line, and sends one reply.
The fiche is loaded once, when the action server imports this module.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import answers, callback, feedback, handoff, live_fiche, markdown
from actions.answers import Context, Reply
from actions.fiche import PROCEDURES, Fiche
from actions.hours import (
    Moment,
    asked_moment,
    asks_holidays,
    asks_nights,
    is_open,
    moment_pointed_back,
    now_noumea,
)
from actions.understanding import (
    ASKS_HOURS,
    FACT_TOPICS,
    FOLLOW_UP,
    FOLLOW_UP_WORDS,
    LINE_WORDS,
    OTHER_OPERATORS,
    SERVICE_TOPICS,
    US_WORDS,
    Topic,
    asks_for_person,
    clause_topics,
    entity_values,
    fold,
    follow_up_topic,
    is_follow_up,
    make_topic,
    needs_scope_check,
    other_service,
    rescued_topic,
    with_price_question,
)
from console.config import retention_days

# The fiche file is read and validated when the server starts: a malformed one stops it,
# naming the field. Published versions are read from the database afterwards.
live_fiche.live()
# The privacy notice of the first message: the retention the console applies (same setting)
# and the page that says it in full (web/serve.py serves /confidentialite).
RETENTION_DAYS = retention_days(os.environ.get("CHAT_CAGOU_RETENTION_DAYS"))
PRIVACY_URL = os.environ.get("CHAT_CAGOU_PRIVACY_URL", "").strip() or None

# Intents that cannot be offered as a clarification choice.
NOT_SUGGESTED = {"nlu_fallback", FOLLOW_UP, "out_of_scope", "affirm", "deny"}
# Intents under which a message may still hold one of our questions ("merci, et par mail ?").
RESCUABLE = {"nlu_fallback", "affirm", "deny", *answers.SMALL_TALK}
# Topics whose answer depends on the moment asked about.
TIMED_TOPICS = {"horaires", "contact_telephone", "info_service"}
# Words that say where the customer is ("je suis en métropole"), not only where they call from.
PRESENCE = re.compile(
    r"\b(je suis|suis|j habite|je vis|je reside|je me trouve|je pars|je serai|actuellement|"
    r"en ce moment|en deplacement|en mission|en vacances|en voyage|i m|i am)\b"
)
# The place SituationExtractor gives for "à l'étranger", "depuis l'étranger" (no place named).
GENERIC_ABROAD = "l'étranger"
# Words that ask for a number or a call: "je suis au Japon, quel numéro ?" asks for the number
# from abroad; "je suis au Japon" alone continues the last topic.
ASKS_TO_CALL = re.compile(r"\b(numero|num|appeler|appelle|joindre|contacter|telephoner|tel|telephone|call)\b")
# Below this confidence, DIET's topic yields to "a day or time + reaching someone" (the hours).
HOURS_OVER_CONFIDENCE = 0.9
# DIET confidence above which a message in another language is taken as one of our questions.
FOREIGN_FACT_CONFIDENCE = 0.5
FOREIGN_SURE = 0.8
CUSTOMER_SERVICE = re.compile(
    r"\b(customer service|support|kundendienst|servicio al cliente|atencion al cliente)\b"
)


def latest_intent(tracker: Tracker) -> str:
    """The intent of the last message; a turn without one (no parse data) is not understood."""
    return (tracker.latest_message.get("intent") or {}).get("name") or "nlu_fallback"


@dataclass(frozen=True)
class Turn:
    """The customer's last message, read once per turn: its text, its intent as served, the
    instant of the turn and the moment it asks about (dateparser is the costly part)."""

    tracker: Tracker
    text: str
    intent: str
    now: datetime
    moment: Moment | None
    # the published fiche when the turn began (actions/live_fiche.py): one version per answer
    fiche: Fiche

    @classmethod
    def read(cls, tracker: Tracker, now: datetime) -> Turn:
        text = tracker.latest_message.get("text") or ""
        intent = latest_intent(tracker)
        if text and not any(c.isalnum() for c in text):
            intent = "nlu_fallback"  # emojis or punctuation alone: whatever DIET guessed, ask again
        moment = asked_moment(text, now) or moment_pointed_back(text, earlier_user_texts(tracker), now)
        return cls(tracker, text, intent, now, moment, live_fiche.current())

    @property
    def parse(self) -> dict[str, Any]:
        return self.tracker.latest_message

    @property
    def confidence(self) -> float:
        return (self.parse.get("intent") or {}).get("confidence", 0.0)


def send(dispatcher: CollectingDispatcher, reply: Reply) -> None:
    """Sends a reply, its numbers, addresses and links as Markdown links (actions/markdown.py)."""
    dial_numbers = live_fiche.current().dial_numbers()
    dispatcher.utter_message(
        text=markdown.with_links(reply.text, dial_numbers), buttons=reply.buttons or None
    )


def held_by_a_person(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """A person answers this conversation (actions/handoff.py): the assistant stays silent,
    with the marker the input guard recognises. On Messenger the thread decides: a standby
    message (the page inbox holds the thread) is never answered, and any other message means
    the bot holds the thread again (given back, taken back, or never passed)."""
    if (tracker.latest_message.get("metadata") or {}).get("standby"):
        dispatcher.utter_message(json_message=handoff.HELD)
        return True
    current = handoff.state(tracker)
    if current in (None, handoff.INBOX) or handoff.expired(tracker, time.time()):
        return False
    dispatcher.utter_message(json_message=handoff.HELD)
    return True


def back_to_bot_events(tracker: Tracker) -> list[EventType]:
    return [SlotSet(handoff.SLOT, None)] if handoff.state(tracker) else []


async def hand_over(
    dispatcher: CollectingDispatcher, tracker: Tracker, now: datetime, after_failure: bool = False
) -> list[EventType]:
    """A person for the customer: the live desk (widget) or the page inbox (Messenger) while the
    service is open, else today's contacts. REST always gets the contacts."""
    channel = tracker.get_latest_input_channel()
    fiche = live_fiche.current()
    if is_open(fiche.phones["1000"], now):
        if channel == handoff.MESSENGER_CHANNEL:
            send(dispatcher, answers.handed_to_inbox(fiche, now, after_failure))
            dispatcher.utter_message(json_message=handoff.PASS_TO_INBOX)
            return [SlotSet(handoff.SLOT, handoff.INBOX)]
        if channel == handoff.DESK_CHANNEL and await handoff.desk_available():
            send(dispatcher, answers.waiting_for_person(fiche, now, after_failure))
            return [SlotSet(handoff.SLOT, handoff.WAITING)]
    reply = answers.handoff_answer(fiche, now, after_failure=after_failure, abroad=is_abroad(tracker))
    if channel in (handoff.DESK_CHANNEL, handoff.MESSENGER_CHANNEL) and not is_open(
        fiche.phones["1000"], now
    ):
        # out of hours, where a person can call back: offer a callback request (actions/callback.py)
        send(dispatcher, answers.callback_offer(reply))
        return [SlotSet(callback.OFFER, True)]
    send(dispatcher, reply)
    return []


class Clocked:
    """Mixin for actions that need the current time; tests replace `clock` with a fixed instant."""

    clock: Callable = staticmethod(now_noumea)


def is_abroad(tracker: Tracker, topics: list[Topic] | None = None) -> bool:
    """The customer is outside New Caledonia: said now or earlier in the conversation. Not when
    the only sign is "depuis l'étranger" in a question about calling from abroad ("numéro
    depuis l'étranger et numéro de nuit ?"): that is the topic, not where the customer is."""
    places = entity_values(tracker.latest_message.get("entities") or [], "etranger")
    earlier = tracker.get_slot("etranger")
    if (
        topics
        and places
        and all(p == GENERIC_ABROAD for p in places)
        and earlier in (None, GENERIC_ABROAD)
        and any(t.intent == "contact_etranger" for t in topics)
        and len(topics) > 1
        and not PRESENCE.search(fold(tracker.latest_message.get("text") or ""))
    ):
        return False
    return bool(earlier or places)


def earlier_user_texts(tracker: Tracker, count: int = 3) -> list[str]:
    """The customer's `count` messages before the last one, the latest first."""
    texts: list[str] = []
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            texts.append(event.get("text") or "")
            if len(texts) > count:
                break
    return texts[1:]


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


class ActionRepondre(Clocked, Action):
    def name(self) -> str:
        return "action_repondre"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if held_by_a_person(dispatcher, tracker):
            return []
        events = back_to_bot_events(tracker)  # a Messenger thread back with the bot
        return events + await self.respond(dispatcher, tracker)

    async def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        turn = Turn.read(tracker, self.clock())
        if tracker.get_slot(callback.OFFER):
            # the answer to "Voulez-vous laisser une demande de rappel ?"
            if turn.intent == "affirm":
                return [SlotSet(callback.OFFER, None), FollowupAction(callback.FORM)]
            if turn.intent == "deny":
                send(dispatcher, Reply(answers.CALLBACK_DECLINED))
                return [SlotSet(callback.OFFER, None)]
            # anything else: the offer lapses, the message is answered as usual
            return [SlotSet(callback.OFFER, None), *await self.respond_to(dispatcher, turn)]
        return await self.respond_to(dispatcher, turn)

    async def respond_to(self, dispatcher: CollectingDispatcher, turn: Turn) -> list[EventType]:
        tracker = turn.tracker
        pending = tracker.get_slot("en_attente")
        if turn.intent in ("affirm", "deny") and pending:
            return self.yes_no(dispatcher, turn, pending)
        if turn.intent in ("affirm", "deny") and feedback.awaited(tracker):
            return feedback.record(dispatcher, tracker, "utile" if turn.intent == "affirm" else "inutile")

        topics = with_price_question(self.topics(turn), turn.text)
        if turn.parse.get("language", "fr") != "fr":
            return self.other_language(dispatcher, turn, topics)
        if not topics:
            return await self.not_understood(dispatcher, turn)
        if tracker.get_slot("sujet") is None and needs_scope_check(
            topics,
            turn.text,
            turn.parse.get("unknown_nouns") or [],
            turn.parse.get("second_opinion"),
            turn.confidence,
            turn.moment is not None,
        ):
            send(dispatcher, answers.scope_question())
            return [SlotSet("en_attente", [t.as_slot() for t in topics])]
        return self.answer(dispatcher, turn, topics)

    # --- reading the question ------------------------------------------------------------

    def topics(self, turn: Turn) -> list[Topic]:
        tracker, parse, text, intent, moment = turn.tracker, turn.parse, turn.text, turn.intent, turn.moment
        compound = clause_topics(parse, turn.now)
        if compound:
            return compound
        last_topic = tracker.get_slot("sujet") or tracker.get_slot("procedure")
        last_services = [tracker.get_slot("service")] if tracker.get_slot("service") else []
        named = make_topic(intent, parse.get("entities") or [], text=text)
        follow = last_topic is not None and is_follow_up(text)

        if follow and intent not in PROCEDURES and last_topic in SERVICE_TOPICS:
            services = named.services or (
                ["1016"] if named.channel == "agence" else other_service(text, [], last_services)
            )
            if services:  # "et l'agence entreprise ?", "même vers le 1016 ?", "et l'autre numéro ?"
                return [Topic(last_topic, None, services)]
        if follow and intent not in PROCEDURES and moment:
            return [Topic("horaires", None, named.services or last_services)]  # "et le samedi ?"
        confidence = turn.confidence
        if (
            moment
            and ASKS_HOURS.search(fold(text))
            and intent not in ("horaires", "out_of_scope")
            and (intent not in FACT_TOPICS or confidence < HOURS_OVER_CONFIDENCE or intent in TIMED_TOPICS)
        ):
            # "mardi midi je peux passer un coup de fil ?", "le 1er janvier le service client est joignable ?"
            return [Topic("horaires", None, named.services or (last_services if follow else []))]
        followed = follow_up_topic(named.channel, last_topic, last_services) if named.channel else None
        if follow and intent not in PROCEDURES and followed:
            # "et pour leur écrire par la poste ?", whatever the NLU took it for
            return [followed]
        if self.says_only_where(tracker, intent, text, last_topic):
            # "je suis à Sydney en ce moment": the last answer again, with the number from abroad
            return [Topic(last_topic, None, last_services) if last_topic else Topic("contact_etranger")]
        if intent in FACT_TOPICS:
            named.intent = intent
            named.services = other_service(text, named.services, last_services)
            return [named]
        if intent == FOLLOW_UP or (
            intent == "nlu_fallback" and last_topic and len(text.split()) <= FOLLOW_UP_WORDS
        ):
            # a channel named alone, or a short follow-up the NLU cannot place: the last topic
            topic = follow_up_topic(named.channel, last_topic, last_services)
            if topic is not None or intent == FOLLOW_UP:
                return [topic] if topic else []
        if intent in RESCUABLE:
            rescued = rescued_topic(parse)
            if rescued:
                return [rescued]
        return []

    @staticmethod
    def says_only_where(tracker: Tracker, intent: str | None, text: str, last_topic: str | None) -> bool:
        """The message names a place abroad and asks nothing we could place: after a topic,
        or alone in a few words ("je suis à Sydney")."""
        if not entity_values(tracker.latest_message.get("entities") or [], "etranger"):
            return False
        if last_topic is None and (intent == "out_of_scope" or len(text.split()) > FOLLOW_UP_WORDS):
            return False
        if intent in ("out_of_scope", "nlu_fallback", "greet"):
            return True
        return intent == "contact_etranger" and not ASKS_TO_CALL.search(fold(text))

    @staticmethod
    def context(turn: Turn, topic: Topic, topics: list[Topic] | None = None) -> Context:
        timed = topic.intent in TIMED_TOPICS
        return Context(
            instant=turn.now,
            abroad=is_abroad(turn.tracker, topics),
            services=topic.services,
            moment=turn.moment if timed else None,
            nights=timed and asks_nights(turn.text),
            holidays=timed and asks_holidays(turn.text),
        )

    # --- answering -----------------------------------------------------------------------

    def reply_for(self, turn: Turn, topic: Topic, topics: list[Topic] | None = None) -> Reply:
        ctx = self.context(turn, topic, topics)
        if topic.intent in PROCEDURES:
            return answers.procedure_answer(turn.fiche, topic.intent, topic.channel, ctx.abroad)
        if topic.intent in TIMED_TOPICS and ctx.moment and topic.intent != "horaires":
            return answers.hours_answer(turn.fiche, ctx)  # "le 1016 le samedi ?": the hours that day
        return answers.TOPIC_ANSWERS[topic.intent](turn.fiche, ctx)

    def answer(self, dispatcher: CollectingDispatcher, turn: Turn, topics: list[Topic]) -> list[EventType]:
        reply = answers.combine(turn.fiche, [self.reply_for(turn, t, topics) for t in topics])
        send(dispatcher, reply)
        return self.remember(topics) + feedback.ask(dispatcher, turn.tracker, topics[-1].intent, reply)

    @staticmethod
    def remember(topics: list[Topic]) -> list[EventType]:
        last = topics[-1]
        events: list[EventType] = [SlotSet("sujet", last.intent), SlotSet("en_attente", None)]
        procedures = [t.intent for t in topics if t.intent in PROCEDURES]
        if procedures:
            events.append(SlotSet("procedure", procedures[-1]))
        services = [s for t in topics for s in t.services]
        if services:
            events.append(SlotSet("service", services[-1]))
        return events

    def yes_no(
        self, dispatcher: CollectingDispatcher, turn: Turn, pending: list[dict[str, Any]]
    ) -> list[EventType]:
        """The answer to "Votre question concerne-t-elle une ligne mobile Mobilis Pro ?"."""
        if turn.intent == "deny":
            send(dispatcher, answers.out_of_scope())
            return [SlotSet("en_attente", None)]
        return self.answer(dispatcher, turn, [Topic(**t) for t in pending])

    def other_language(
        self, dispatcher: CollectingDispatcher, turn: Turn, topics: list[Topic]
    ) -> list[EventType]:
        tracker, intent, confidence = turn.tracker, turn.intent, turn.confidence
        recognised = (
            [t for t in topics if t.intent in FACT_TOPICS] if confidence >= FOREIGN_FACT_CONFIDENCE else []
        )
        if not recognised and intent == "out_of_scope":
            rescued = rescued_topic(tracker.latest_message)  # "Do you speak English? I have a complaint"
            recognised, intent = ([rescued], rescued.intent) if rescued else ([], intent)
        fact = (
            answers.combine(turn.fiche, [self.reply_for(turn, t) for t in recognised]) if recognised else None
        )
        # Ours if it names a phone or a line, or if DIET is sure: "Where can I rent a car?" is not.
        text = fold(turn.text)
        names_ours = bool(
            LINE_WORDS.search(text) or CUSTOMER_SERVICE.search(text)
        ) and not OTHER_OPERATORS.search(text)
        in_scope = (
            intent != "out_of_scope"
            and (
                names_ours
                or bool(US_WORDS.search(text))
                or confidence >= FOREIGN_SURE
                or bool(recognised and not topics)
            )
        ) or names_ours  # DIET knows little of other languages: a phone or a line named is ours

        if not in_scope:
            recognised, fact = [], None
        ctx = Context(instant=turn.now, abroad=is_abroad(tracker))
        send(dispatcher, answers.other_language_answer(turn.fiche, ctx, fact, in_scope))
        return self.remember(recognised) if recognised else []

    async def not_understood(self, dispatcher: CollectingDispatcher, turn: Turn) -> list[EventType]:
        tracker, intent = turn.tracker, turn.intent
        if intent in answers.SMALL_TALK:
            send(dispatcher, Reply(answers.SMALL_TALK[intent]))
            return []
        if intent in ("affirm", "deny"):
            send(dispatcher, Reply(answers.ASK_QUESTION if intent == "affirm" else answers.NOTHING_ELSE))
            return []
        if intent == "out_of_scope":
            send(dispatcher, answers.out_of_scope())
            return []
        if intent == FOLLOW_UP:
            send(dispatcher, answers.which_procedure())
            return []
        if consecutive_fallbacks(tracker) >= 2:
            return await hand_over(dispatcher, tracker, turn.now, after_failure=True)
        ranking = tracker.latest_message.get("intent_ranking") or []
        candidates = [r.get("name") for r in ranking if r.get("name") not in NOT_SUGGESTED]
        send(dispatcher, answers.clarify_answer(candidates))
        return []


class ActionTransfertHumain(Clocked, Action):
    def name(self) -> str:
        return "action_transfert_humain"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if held_by_a_person(dispatcher, tracker):
            return []  # already waiting for, or talking with, a person
        text = tracker.latest_message.get("text") or ""
        if text and not text.startswith("/") and not asks_for_person(text):
            # DIET's guess names no person ("des conseils pour un mariage"): ask, don't hand over
            ranking = tracker.latest_message.get("intent_ranking") or []
            candidates = [r.get("name") for r in ranking if r.get("name") not in NOT_SUGGESTED]
            send(dispatcher, answers.clarify_answer([c for c in candidates if c != "demander_humain"]))
            return []
        return back_to_bot_events(tracker) + await hand_over(dispatcher, tracker, self.clock())


class ActionAccueil(Action):
    """The first message of a conversation (the widget's first open, Messenger's Get Started)."""

    def name(self) -> str:
        return "action_accueil"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if held_by_a_person(dispatcher, tracker):
            return []
        send(dispatcher, answers.welcome(RETENTION_DAYS, PRIVACY_URL))
        return []


class ActionRetourAssistant(Action):
    """The customer's "Revenir à l'assistant", or Messenger's inbox giving the thread back."""

    def name(self) -> str:
        return "action_retour_assistant"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        send(dispatcher, Reply(answers.BACK_WITH_ASSISTANT))
        return [SlotSet(handoff.SLOT, None)]
