"""What the customer asks, read from the tracker: the topics of the message (one per clause
for a compound message), the channel and services of each, and the signs that a procedure
question really concerns a mobile line. Pure functions of the parse data and the slots, so
that the action stays a short sequence of decisions."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

from actions.answers import TOPIC_ANSWERS
from actions.fiche import CHANNELS, PROCEDURES

FACT_TOPICS = set(PROCEDURES) | set(TOPIC_ANSWERS)
FOLLOW_UP = "preciser_canal"
# A clause's own classifier must be this sure before its topic is answered on its own.
CLAUSE_CONFIDENCE = 0.45
# On a message DIET could not classify (long stories), the best clause must be this sure.
RESCUE_CONFIDENCE = 0.6
MAIN_SERVICES = ("1000", "1016")

# Signs that a message is about a mobile line: a procedure word plus one of these is ours.
LINE_WORDS = re.compile(
    r"\b(telephone|tel|tels|tele|portable|portables|mobile|mobiles|smartphone|iphone|samsung|huawei|xiaomi|oppo|"
    r"android|cellulaire|gsm|ligne|lignes|sim|puce|puk|pin|forfait|forfaits|mobilis|opt|numero|num|4g|5g|reseau|"
    r"appel|appels|sms|texto|data|abonnement mobile|flotte|carte sim)\b"
)
# Signs that the customer addresses us (for contacts and hours: "vos horaires", "votre mail").
US_WORDS = re.compile(r"\b(vous|vos|votre|tu|ton|ta|tes|te|t|opt|mobilis|agence|service client\w*|10\d\d)\b")
OTHER = re.compile(r"\bl ?autre\b")


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", (text or "").lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9@+]+", " ", text).strip()


@dataclass
class Topic:
    intent: str
    channel: Optional[str] = None
    services: List[str] = field(default_factory=list)

    def as_slot(self) -> Dict[str, Any]:
        return asdict(self)


def entity_values(entities: Iterable[Dict[str, Any]], name: str, start: int = 0, end: int = 10**9) -> List[str]:
    values = []
    for entity in entities:
        inside = entity.get("start", start) >= start and entity.get("end", end) <= end
        if entity.get("entity") == name and inside and str(entity.get("value")) not in values:
            values.append(str(entity.get("value")))
    return values


def make_topic(intent: str, entities: Sequence[Dict[str, Any]], start: int = 0, end: int = 10**9) -> Topic:
    channel = next((c for c in entity_values(entities, "canal", start, end) if c in CHANNELS), None)
    services = entity_values(entities, "service", start, end)
    if intent == "horaires" and channel == "agence" and not services:
        services = ["1016"]  # the agency's hours are those of its number
    return Topic(intent, channel, services)


def clause_topics(parse: Dict[str, Any]) -> List[Topic]:
    """The topics of a compound message, in order, when its clauses ask two things or more."""
    entities = parse.get("entities") or []
    topics: List[Topic] = []
    for clause in parse.get("clauses") or []:
        if clause.get("confidence", 0) < CLAUSE_CONFIDENCE:
            continue
        intent = clause.get("intent")
        topic = make_topic(intent, entities, clause.get("start", 0), clause.get("end", 10**9))
        if intent == FOLLOW_UP and topics and topic.channel and topics[-1].channel is None:
            topics[-1].channel = topic.channel  # "la résiliation, et par mail ?"
        elif intent in FACT_TOPICS and not any(t.intent == intent for t in topics):
            topics.append(topic)
    return topics if len(topics) > 1 else []


def rescued_topic(parse: Dict[str, Any]) -> Optional[Topic]:
    """For a message DIET could not classify: the most confident clause, if it is sure enough."""
    clauses = [c for c in parse.get("clauses") or [] if c.get("intent") in FACT_TOPICS]
    if not clauses:
        return None
    best = max(clauses, key=lambda c: c.get("confidence", 0))
    if best.get("confidence", 0) < RESCUE_CONFIDENCE:
        return None
    return make_topic(best["intent"], parse.get("entities") or [], best.get("start", 0), best.get("end", 10**9))


def follow_up_topic(channel: Optional[str], last_topic: Optional[str], last_services: Sequence[str]) -> Optional[Topic]:
    """A channel named alone ("et par mail ?") for the last topic, whatever it was."""
    if last_topic in PROCEDURES:
        return Topic(last_topic, channel)
    if last_topic is None or channel is None:
        return None
    agency = last_topic == "contact_adresse" or "1016" in last_services
    if channel == "courrier":
        return Topic("contact_email", None, ["1016"] if agency else list(last_services))
    if channel == "telephone":
        return Topic("contact_telephone", None, ["1016"] if agency else list(last_services))
    return Topic("contact_adresse")


def other_service(text: str, services: Sequence[str], last_services: Sequence[str]) -> List[str]:
    """"et l'autre numéro ?" after one of the two main services: the other one."""
    if services or not OTHER.search(fold(text)):
        return list(services)
    last = [s for s in last_services if s in MAIN_SERVICES]
    return [s for s in MAIN_SERVICES if s not in last] if len(last) == 1 else list(services)


def needs_scope_check(topics: Sequence[Topic], text: str, unknown_nouns: Sequence[str]) -> bool:
    """A procedure or contact question that names something we never talk about
    ("passeport", "crèche", "alarme", "musée") and nothing of a mobile line or of us."""
    if not unknown_nouns or not topics:
        return False
    folded = fold(text)
    if LINE_WORDS.search(folded):
        return False
    if all(t.intent not in PROCEDURES for t in topics) and US_WORDS.search(folded):
        return False
    return True
