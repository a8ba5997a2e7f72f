"""SituationExtractor: where the customer is (abroad or not) and which language they write.

- Entity `etranger`: a place outside New Caledonia named in the message ("à Sydney", "au
  Japon", "en métropole", "à l'étranger"). Countries come from Babel's French territory names
  (CLDR, maintained), cities from spaCy's LOC entities after a locative preposition; places of
  New Caledonia never count. The slot `etranger` is filled from it, so it holds for the rest
  of the conversation.
- `language` in the parse data: the language of the message (py3langid, whose model ships
  inside the package), "fr" unless another language is clearly recognised.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

ABROAD_ENTITY = "etranger"
LANGUAGE_KEY = "language"

# Places of New Caledonia: a customer there is not abroad, whatever spaCy calls them.
NC_PLACES = {
    "nouvelle caledonie", "caledonie", "nc", "noumea", "dumbea", "paita", "mont dore", "kone", "koumac",
    "bourail", "lifou", "mare", "ouvea", "thio", "ile des pins", "la foa", "poindimie", "canala",
    "houailou", "voh", "pouembout", "hienghene", "poum", "yate", "kouaoua", "ponerihouen", "touho",
    "sarramea", "farino", "moindou", "boulouparis", "pouebo", "kaala gomen", "ouegoa", "belep", "tiga",
    "grande terre", "brousse", "iles loyaute", "province sud", "province nord", "magenta", "ducos",
    "anse vata", "baie des citrons", "riviere salee", "tontouta", "gallieni", "cocotiers", "nepoui",
    "we", "tadine", "kaala", "pouembout", "nouville", "vallee du tir", "motor pool", "ouen toro",
}
# Words that spaCy's small model sometimes tags as places in our messages.
NOT_PLACES = {"opt", "mobilis", "puk", "sim", "pro", "agence", "service", "client", "sav", "messenger"}

# Ways of saying "outside New Caledonia" without naming a place.
ABROAD_PHRASES = re.compile(
    r"\b(?:a|en|depuis|de|vers) l ?etranger\b|\bhors (?:de (?:la )?)?(?:nouvelle )?caledonie\b"
    r"|\bhors du (?:territoire|pays|caillou)\b|\ben metropole\b|\bdepuis la metropole\b"
    r"|\boverseas\b|\babroad\b"
)
# spaCy places count only after a locative preposition ("à Sydney", "depuis Tokyo").
LOCATIVE = {"a", "au", "aux", "en", "depuis", "de", "d", "vers", "pour", "dans", "sur", "from", "in", "to"}

LANGUAGES = ["fr", "en", "es", "de", "it", "pt", "nl", "zh", "ja", "ko", "ru", "id", "vi", "th"]
# Below this many letters or this probability, a message is taken as French (our customers'
# language): "code PUK ?" must not become Indonesian.
MIN_LETTERS = 12
MIN_PROBABILITY = 0.90


def fold(text: Text) -> Text:
    """Lower case, no accents, punctuation as spaces (for matching names and phrases)."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9+]+", " ", text).strip()


@lru_cache(maxsize=None)
def _countries(locale: Text) -> Dict[Text, Text]:
    """Folded country names in `locale` (fr, en) -> display name, New Caledonia excluded."""
    from babel import Locale

    names: Dict[Text, Text] = {}
    for code, name in Locale(locale).territories.items():
        if code.isalpha() and len(code) == 2 and code != "NC":
            names.setdefault(fold(name), name)
    for place in NC_PLACES:
        names.pop(place, None)
    return names


@lru_cache(maxsize=1)
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(LANGUAGES)
    return identifier


def detect_language(text: Text) -> Text:
    letters = sum(c.isalpha() for c in text)
    if letters < MIN_LETTERS:
        return "fr"
    language, probability = _language_identifier().classify(text)
    return language if language != "fr" and probability >= MIN_PROBABILITY else "fr"


def _country_mentions(folded: Text, language: Text) -> Iterable[Text]:
    words = folded.split()
    # English names only in English messages: "Chad", "Jordan" or "Turkey" are not places in French.
    countries = {**_countries("en"), **_countries("fr")} if language == "en" else _countries("fr")
    for size in (4, 3, 2, 1):
        for i in range(len(words) - size + 1):
            candidate = " ".join(words[i:i + size])
            if candidate in countries and (size > 1 or len(candidate) > 3):
                yield countries[candidate]


def abroad_places(text: Text, doc: Any = None, language: Text = "fr") -> List[Text]:
    """Places outside New Caledonia named in `text` (spaCy `doc` of the same text, if any)."""
    folded = fold(text)
    found: List[Text] = []
    if ABROAD_PHRASES.search(folded):
        found.append("l'étranger")
    found += list(_country_mentions(folded, language))
    if doc is not None:
        for ent in getattr(doc, "ents", ()):
            name = fold(ent.text)
            if ent.label_ not in ("LOC", "GPE") or not name or name in NC_PLACES or name in NOT_PLACES:
                continue
            if not ent.text[:1].isupper() or ent.start == 0:
                continue
            before = fold(doc[ent.start - 1].text)
            if before in LOCATIVE and not any(fold(f) == name for f in found):
                found.append(ent.text)
    return found


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class SituationExtractor(GraphComponent):
    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SituationExtractor":
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            language = detect_language(text)
            places = abroad_places(text, message.get("text_spacy_doc"), language)
            if places:
                entities = list(message.get(ENTITIES) or [])
                entities.append({
                    "entity": ABROAD_ENTITY, "value": places[0], "start": 0, "end": len(text),
                    "confidence": 1.0, "extractor": self.__class__.__name__,
                })
                message.set(ENTITIES, entities, add_to_output=True)
            message.set(LANGUAGE_KEY, language, add_to_output=True)
        return messages
