"""What the customer asks, read from the tracker: the topics of the message (one per clause
for a compound message), the channel and services of each, and the signs that a procedure
question really concerns a mobile line. Pure functions of the parse data and the slots, so
that the action stays a short sequence of decisions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from actions.answers import TOPIC_ANSWERS
from actions.fiche import CHANNELS, PROCEDURES
from actions.hours import asked_moment

FACT_TOPICS = set(PROCEDURES) | set(TOPIC_ANSWERS)
FOLLOW_UP = "preciser_canal"
# A request for a person names one (folded text): "un conseiller", "un humain", "quelqu'un",
# "pas un robot", "me rappeler"... DIET also puts "des conseils pour un mariage" or
# "explique-moi le code civil" there; without such a word, the assistant asks instead.
PERSON_WORDS = re.compile(
    r"\b(conseil+(?:er|e|ere|ers|eres)|humains?|humaines?|personnes?|quelqu ?un|qqn|qq1|agents?|"
    r"operat(?:eur|rice)s?|interlocut\w*|responsable|robots?|bot|vraie?s?|reel+e?s?|relation|"
    r"transfer\w*|passez|passer|rappel\w*|recontact\w*|chair|equipe|collaborat\w*|"
    r"human|person|people|someone|somebody|advisor|adviser|representative|real)\b"
)


def asks_for_person(text: str) -> bool:
    return bool(PERSON_WORDS.search(fold(text)))


# Intents that only arrive as a payload of ours, never typed: no NLU examples, no held-out.
PAYLOAD_INTENTS = frozenset({"demarrer", "retour_assistant", "rappel", "avis_utile", "avis_inutile"})
# A clause's own classifier must be this sure before its topic is answered on its own.
CLAUSE_CONFIDENCE = 0.45
# On a message DIET could not classify (long stories), the best clause must be this sure, or a
# clause that asks a question this sure; DIET's hesitant first choice is taken when the second
# classifier gives it at least this.
RESCUE_CONFIDENCE = 0.6
QUESTION_CONFIDENCE = 0.45
AGREEMENT_CONFIDENCE = 0.3
# ... or DIET's second choice when the second classifier gives it at least this.
SECOND_CHOICE_CONFIDENCE = 0.6
QUESTION = re.compile(
    r"^(comment|quel|quelle|quels|quelles|ou|combien|est ce|est il|qui|pourquoi|quand|peut on|puis je|je peux|on peut|"
    r"pouvez vous|pourriez vous|il faut|faut il|que faire|que dois je|how|what|where|can|is|do)\b"
)
MAIN_SERVICES = ("1000", "1016")

# Signs that a message is about a mobile line: a procedure word plus one of these is ours,
# whatever else it names ("j'ai perdu mon sac avec mon téléphone dedans"). Words that other
# trades use too ("forfait de ski", "numéro d'un taxi", "abonnement au bus") are not signs.
LINE_WORDS = re.compile(
    r"\b(telephone|telephones|tel|tels|portable|portables|mobile|mobiles|smartphone|smartphones|iphone|"
    r"cellulaire|gsm|ligne|lignes|sim|puce|puk|mobilis|4g|5g|sms|texto|flotte|"
    r"phone|phones|cellphone|line|lines|call|calls|number|telefono|telefon|handy|movil)\b"  # other languages
)
# Other operators: a question about their lines is not ours, whatever words it shares with ours.
OTHER_OPERATORS = re.compile(
    r"\b(free|bouygues|sfr|orange|digicel|vodafone|telstra|optus|vini|spark|t mobile|verizon|lycamobile|"
    r"lebara|ooredoo|vodafone|airtel|movistar|o2|proximus|swisscom|telecom (?:italia|fiji)|smartfren)\b"
)
# Signs that the customer addresses us (for contacts and hours: "vos horaires", "votre mail").
US_WORDS = re.compile(
    r"\b(vous|vos|votre|tu|ton|ta|tes|te|t|opt|mobilis|service client\w*|10\d\d|you|your)\b"
)
# A message that continues the last topic rather than opening one: "et le samedi ?", "même
# vers le 1016 ?", "et avec l'appli ?".
FOLLOW_UP_MARKER = re.compile(
    r"^(?:(?:bon|ok|okay|d accord|daccord|merci|super|ah|et donc|alors|mais)\s+)?"
    r"(?:et|ou|meme|pareil|aussi|sinon|du coup|puis|plutot|et si|et pour|et en|et par|et avec|et le|et la|et les)\b"
)
FOLLOW_UP_WORDS = 8
OUT_OF_SCOPE = "out_of_scope"
# The second classifier's confidence in "off-topic" above which a fact is not given unasked.
OFF_TOPIC_CONFIDENCE = 0.5
DIET_SURE = 0.9
# ... or whatever DIET says, when the second classifier is this sure that it is off-topic.
OFF_TOPIC_SURE = 0.75
# Below this, a classifier is unsure of its topic.
UNSURE = 0.6
OTHER = re.compile(r"\bl ?autre\b")


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", (text or "").lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9@+]+", " ", text).strip()


@dataclass
class Topic:
    intent: str
    channel: str | None = None
    services: list[str] = field(default_factory=list)

    def as_slot(self) -> dict[str, Any]:
        return asdict(self)


def entity_values(
    entities: Iterable[dict[str, Any]], name: str, start: int = 0, end: int = 10**9
) -> list[str]:
    values = []
    for entity in entities:
        inside = entity.get("start", start) >= start and entity.get("end", end) <= end
        if entity.get("entity") == name and inside and str(entity.get("value")) not in values:
            values.append(str(entity.get("value")))
    return values


NEGATION = re.compile(r"\b(pas|plus|sans|jamais|ni)\b")


def make_topic(
    intent: str, entities: Sequence[dict[str, Any]], start: int = 0, end: int = 10**9, text: str = ""
) -> Topic:
    channels = [c for c in entity_values(entities, "canal", start, end) if c in CHANNELS]
    # Two channels: "je ne peux pas me déplacer, par internet ?" asks for the last one;
    # "par téléphone ou en agence ?" for both, so the overview.
    channel = channels[-1] if channels and (len(channels) == 1 or NEGATION.search(fold(text))) else None
    services = entity_values(entities, "service", start, end)
    if intent in SERVICE_TOPICS and channel == "agence" and not services:
        services, channel = ["1016"], None  # the agency's hours, number, email are those of the 1016
    return Topic(intent, channel, services)


# Topics whose answer depends on the service named: a follow-up naming another service keeps
# the topic ("et l'agence entreprise ?" after the hours of the 1000).
SERVICE_TOPICS = {
    "horaires",
    "contact_telephone",
    "contact_email",
    "info_service",
    "cout_appel_service_client",
}


def asks_hours_at(text: str, now: datetime | None) -> bool:
    """A day or time named with a word of reaching someone or of opening: a question of hours."""
    return now is not None and bool(ASKS_HOURS.search(fold(text))) and asked_moment(text, now) is not None


def clause_topics(parse: dict[str, Any], now: datetime | None = None) -> list[Topic]:
    """The topics of a compound message, in order, when its clauses ask two things or more."""
    entities = parse.get("entities") or []
    topics: list[Topic] = []
    for clause in parse.get("clauses") or []:
        intent = clause.get("intent")
        if asks_hours_at(clause.get("text", ""), now) and intent != "horaires":
            intent = "horaires"  # "... et qui appeler en cas de panne le week-end ?"
        elif clause.get("confidence", 0) < CLAUSE_CONFIDENCE:
            continue
        topic = make_topic(intent, entities, clause.get("start", 0), clause.get("end", 10**9))
        if intent == FOLLOW_UP and topics and topic.channel:
            if topics[-1].channel is None:
                topics[-1].channel = topic.channel  # "la résiliation, par mail ?"
            else:
                topic = Topic(topics[-1].intent, topic.channel)  # "PUK par téléphone ? sinon par internet ?"
        if topic.intent in FACT_TOPICS and topic not in topics:
            topics.append(topic)
    return topics if len(topics) > 1 else []


def rescued_topic(parse: dict[str, Any]) -> Topic | None:
    """For a message DIET could not place (or took for small talk): the question it holds.

    The last clause that asks something of ours if its classifier is fairly sure ("...long
    story. Comment obtenir le code ?"), else the surest clause if it is sure; for a message of
    one clause, DIET's first choice when the second classifier agrees with it."""
    entities = parse.get("entities") or []
    clauses = [c for c in parse.get("clauses") or [] if c.get("intent") in FACT_TOPICS]
    questions = [
        c
        for c in clauses
        if c.get("confidence", 0) >= QUESTION_CONFIDENCE and QUESTION.search(fold(c["text"]))
    ]
    sure = [c for c in clauses if c.get("confidence", 0) >= RESCUE_CONFIDENCE]
    best = questions[-1] if questions else max(sure, key=lambda c: c["confidence"]) if sure else None
    if best is not None:
        return make_topic(best["intent"], entities, best.get("start", 0), best.get("end", 10**9))
    second = parse.get("second_opinion") or {}
    ranking = [r for r in parse.get("intent_ranking") or [] if r.get("name") != "nlu_fallback"]
    if (parse.get("intent") or {}).get("name") == "nlu_fallback" and ranking and not parse.get("clauses"):
        names = [r.get("name") for r in ranking[:2]]
        confidence = second.get("confidence", 0)
        if second.get("name") in FACT_TOPICS and (
            (names[0] == second["name"] and confidence >= AGREEMENT_CONFIDENCE)
            or (second["name"] in names and confidence >= SECOND_CHOICE_CONFIDENCE)
        ):
            return make_topic(second["name"], entities)
    return None


# A channel named with no topic before it: the contacts of that channel.
CHANNEL_CONTACTS = {
    "courrier": "contact_email",
    "telephone": "contact_telephone",
    "agence": "contact_adresse",
}


def follow_up_topic(
    channel: str | None, last_topic: str | None, last_services: Sequence[str]
) -> Topic | None:
    """A channel named alone ("et par mail ?") for the last topic, whatever it was."""
    if last_topic in PROCEDURES:
        return Topic(last_topic, channel)
    if channel is None:
        return Topic(last_topic, None, list(last_services)) if last_topic in FACT_TOPICS else None
    if last_topic is None:
        return Topic(CHANNEL_CONTACTS[channel])
    agency = last_topic == "contact_adresse" or "1016" in last_services
    if last_topic in (
        "contact_adresse",
        "contact_email",
        "contact_telephone",
        "contact_general",
        "horaires",
        "info_service",
        "contact_etranger",
    ):
        if channel == "agence" and last_topic != "contact_adresse":
            return Topic(last_topic, None, ["1016"])  # "et celui de l'agence ?"
        return Topic(CHANNEL_CONTACTS[channel], None, ["1016"] if agency else list(last_services))
    return Topic(last_topic, None, list(last_services))  # the other topics answer every channel at once


def is_follow_up(text: str) -> bool:
    """Short and opening like a follow-up ("et le samedi ?", "même vers le 1016 ?")."""
    folded = fold(text)
    return len(folded.split()) <= FOLLOW_UP_WORDS and bool(FOLLOW_UP_MARKER.search(folded))


def other_service(text: str, services: Sequence[str], last_services: Sequence[str]) -> list[str]:
    """ "et l'autre numéro ?" after one of the two main services: the other one."""
    if services or not OTHER.search(fold(text)):
        return list(services)
    last = [s for s in last_services if s in MAIN_SERVICES]
    return [s for s in MAIN_SERVICES if s not in last] if len(last) == 1 else list(services)


def needs_scope_check(
    topics: Sequence[Topic],
    text: str,
    unknown_nouns: Sequence[str],
    second_opinion: dict[str, Any] | None = None,
    diet_confidence: float = 0.0,
    has_moment: bool = False,
) -> bool:
    """Whether to ask "is it about a Mobilis line?" before answering with a fact.

    Yes for a question that names something we never talk about ("passeport", "crèche",
    "alarme", "musée") and nothing of a mobile line (nor, for contacts and hours, of us); and
    for one that the second classifier takes for off-topic, DIET is not sure of, and names no
    mobile line."""
    if not topics:
        return False
    folded = fold(text)
    if all(t.intent == "horaires" for t in topics) and has_moment and not unknown_nouns:
        return False  # "vendredi soir vers 20h c'est fermé ?" is an hours question
    if OTHER_OPERATORS.search(folded) and not re.search(r"\b(mobilis|opt)\b", folded):
        return True
    if LINE_WORDS.search(folded):
        return False
    second = second_opinion or {}
    off_topic = second.get("name") == OUT_OF_SCOPE and second.get("confidence", 0) >= OFF_TOPIC_CONFIDENCE
    if (
        len(topics) == 1
        and off_topic
        and (diet_confidence < DIET_SURE or second["confidence"] >= OFF_TOPIC_SURE)
    ):
        return True
    # Both classifiers unsure, and not of the same topic, about a message that names nothing of
    # ours and does not address us: ask rather than guess.
    unsure = diet_confidence < UNSURE and (
        second.get("name") != topics[0].intent or second.get("confidence", 0) < UNSURE
    )
    if len(topics) == 1 and unsure and not US_WORDS.search(folded):
        return True
    if not unknown_nouns:
        return False
    return not (all(t.intent not in PROCEDURES for t in topics) and US_WORDS.search(folded))


# Words of a question about opening hours or reaching someone (with a day or time named).
ASKS_HOURS = re.compile(
    r"\b(ouvert|ouverts|ouvre|ouvrez|ferme|fermez|fermes|appeler|appelle|joindre|joignable|"
    r"repond|repondez|dispo|disponible|horaires?|heures?|coup de fil|quelqu un|numero|open|closed)\b"
)


# A price asked about a procedure or a service ("les frais si on résilie avant la fin ?",
# "combien pour une carte SIM de remplacement ?"): the fiche gives no price.
PRICE = re.compile(
    r"\b(prix|tarifs?|tarification|cout|coute|coutent|couter|frais|remises?|reductions?|promos?|promotions?|"
    r"cher|chere|euros?|xpf|cfp|combien(?! de (?:temps|jours?|heures?|minutes?|lignes?)))\b"
)
PRICED_TOPICS = set(PROCEDURES) | {"contact_telephone", "info_service", "suivi_conso"}


def with_price_question(topics: list[Topic], text: str) -> list[Topic]:
    """The topics, followed by "what the fiche does not say" when a price is asked about them."""
    if (
        topics
        and PRICE.search(fold(text))
        and any(t.intent in PRICED_TOPICS for t in topics)
        and not any(t.intent in ("guide_tarifaire", "cout_appel_service_client") for t in topics)
    ):
        return [*topics, Topic("guide_tarifaire")]
    return topics
