"""Load and validate the fiche (fiche/mobilis_pro.yml), the single source of every fact.

The action server imports this at start-up: a malformed file raises FicheError, whose
message names the offending field, and the server does not start.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "fiche" / "mobilis_pro.yml"

CHANNELS = ("telephone", "agence", "courrier")
PROCEDURES = (
    "perte_vol",
    "code_puk",
    "blocage_ligne",
    "changement_offre",
    "support_technique",
    "reclamation",
    "resiliation",
    "souscription",
)
STATUSES = ("available", "restricted", "unavailable")
DAY_NAMES = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")

_HOUR = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ]{4,}$")
# A struck cell's answer must say "not through this channel": a status changed to
# `unavailable` with the old "via le 1000" answer would give a customer a "Non — via le 1000".
_NEGATION = re.compile(r"\b(pas|non|aucune?|jamais|impossible)\b|\bn(?:e\b|')[^.]*\bplus\b", re.IGNORECASE)


Day = date  # the type, for the Fiche field named `date` that hides it in the class body


class FicheError(ValueError):
    """The fiche file is missing, unreadable or malformed; the message names the field."""


@dataclass(frozen=True)
class PhoneService:
    key: str
    name: str
    number: str
    days: tuple[int, ...] = ()
    opens: time | None = None
    closes: time | None = None
    always_open: bool = False
    note: str = ""

    @property
    def span(self) -> tuple[time, time]:
        """Opening and closing times; a service open 24/7 has none (the loader checks both)."""
        if self.opens is None or self.closes is None:
            raise ValueError(f"service '{self.key}' is open 24/7: it has no opening hours")
        return self.opens, self.closes

    @property
    def hours_text(self) -> str:
        """French description of the opening hours, e.g. 'du lundi au vendredi de 7h30 à 15h45'."""
        if self.always_open:
            return "24h/24 et 7j/7"
        opens, closes = self.span
        return f"{days_text(self.days)} de {hour_text(opens)} à {hour_text(closes)}"


@dataclass(frozen=True)
class Cell:
    status: str
    fiche: str
    answer: str
    # The same answer for a customer outside New Caledonia: the short numbers (1000, 1016,
    # 1012) do not work from abroad, the number from abroad replaces them.
    answer_abroad: str = ""

    def text(self, abroad: bool = False) -> str:
        return self.answer_abroad if abroad else self.answer


@dataclass(frozen=True)
class Procedure:
    key: str
    label: str
    cells: dict[str, Cell]


@dataclass(frozen=True)
class Consumption:
    channel: str
    current_month: bool
    number: str = ""
    note: str = ""


@dataclass(frozen=True)
class Fiche:
    title: str
    date: date
    seed_file: str
    agency_name: str
    agency_address: str
    postal_name: str
    postal_address: str
    phones: dict[str, PhoneService]
    abroad_number: str
    abroad_dial: str
    abroad_price: str
    email_agence: str
    email_service_clientele: str
    website: str
    contact_form: str
    chat_site: str
    chat_messenger: str
    forum: str
    consumption: tuple[Consumption, ...]
    customer_service_calls: str
    restoration_days: int
    restoration_text: str
    tariff_guide: str
    channels: dict[str, str]
    procedures: dict[str, Procedure]
    # Which version of the fiche (actions/fiche_versions.py): 1 is the document itself; a
    # later one was published by staff from the console on `changed_on`.
    version: int = 1
    changed_on: Day | None = None

    @property
    def date_text(self) -> str:
        return self.date.strftime("%d/%m/%Y")

    @property
    def source_text(self) -> str:
        # Short: one line under the answer; the fiche's full title is in the privacy page and the README.
        if self.version > 1 and self.changed_on is not None:
            changed = self.changed_on.strftime("%d/%m/%Y")
            return f"Source : fiche Mobilis Pro du {self.date_text}, mise à jour du {changed} (version {self.version})."
        return f"Source : fiche Mobilis Pro du {self.date_text}."

    def dial_numbers(self) -> dict[str, str]:
        """Each phone number as the answers write it -> what a tel: link dials."""
        numbers = {s.number: s.number for s in self.phones.values()}
        numbers[self.consumption_number] = self.consumption_number
        numbers[self.abroad_number] = self.abroad_dial
        return numbers

    @property
    def consumption_number(self) -> str:
        return next(c.number for c in self.consumption if c.number)

    def placeholders(self, abroad: bool = False) -> dict[str, str]:
        """Values that `answer` texts may use, so that each fact is written once. `abroad`:
        phone numbers as dialled from outside New Caledonia, hours in Nouméa time."""
        values = {
            "tel_etranger": self.abroad_number,
            "tel_1088": self.consumption_number,
            "email_service_clientele": self.email_service_clientele,
            "email_agence": self.email_agence,
            "adresse_agence": f"{self.agency_name}, {self.agency_address}",
            "adresse_postale": f"{self.postal_name}, {self.postal_address}",
            "site": self.website,
            "formulaire": self.contact_form,
        }
        for key, phone in self.phones.items():
            values[f"tel_{key}"] = self.abroad_number if abroad else phone.number
            values[f"heures_{key}"] = f"{phone.hours_text}, heure de Nouméa" if abroad else phone.hours_text
        return values


def dial_form(number: str) -> str:
    """What a tel: link dials for a number as written: "+687 26 87 70" -> "+687268770"."""
    return "+" + re.sub(r"\D", "", number)


def hour_text(value: time) -> str:
    return f"{value.hour}h{value.minute:02d}" if value.minute else f"{value.hour}h"


def days_text(days: tuple[int, ...]) -> str:
    ordered = sorted(days)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"du {DAY_NAMES[ordered[0] - 1]} au {DAY_NAMES[ordered[-1] - 1]}"
    return "le " + ", ".join(DAY_NAMES[d - 1] for d in ordered)


# --- validation helpers: each takes the dotted field path for the error message ---


def _get(mapping: Any, key: str, path: str) -> Any:
    if not isinstance(mapping, dict):
        raise FicheError(f"fiche: '{path}' doit être une table (mapping)")
    if key not in mapping or mapping[key] is None:
        raise FicheError(f"fiche: champ manquant '{_join(path, key)}'")
    return mapping[key]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _str(mapping: Any, key: str, path: str, pattern: re.Pattern | None = None) -> str:
    value = _get(mapping, key, path)
    field = _join(path, key)
    if not isinstance(value, str) or not value.strip():
        raise FicheError(f"fiche: '{field}' doit être un texte non vide")
    if pattern is not None and not pattern.match(value):
        raise FicheError(f"fiche: '{field}' a un format invalide: {value!r}")
    return value.strip()


def _url(mapping: Any, key: str, path: str) -> str:
    value = _str(mapping, key, path)
    if not value.startswith("https://"):
        raise FicheError(f"fiche: '{_join(path, key)}' doit être un lien https://: {value!r}")
    return value


def _hour(mapping: Any, key: str, path: str) -> time:
    value = _str(mapping, key, path, _HOUR)
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _phone(key: str, raw: Any, path: str) -> PhoneService:
    number = _str(raw, "number", path, _PHONE)
    if number != key:
        raise FicheError(f"fiche: '{path}.number' ({number}) ne correspond pas à la clé {key}")
    name = _str(raw, "name", path)
    if raw.get("always_open") is True:
        return PhoneService(key, name, number, always_open=True, note=str(raw.get("note", "")))
    days = _get(raw, "days", path)
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days)
    ):
        raise FicheError(f"fiche: '{path}.days' doit être une liste de jours 1 (lundi) à 7")
    opens, closes = _hour(raw, "opens", path), _hour(raw, "closes", path)
    if opens >= closes:
        raise FicheError(f"fiche: '{path}.opens' doit précéder '{path}.closes'")
    return PhoneService(key, name, number, tuple(days), opens, closes, note=str(raw.get("note", "")))


def _cell(raw: Any, path: str) -> Cell:
    status = _str(raw, "status", path)
    if status not in STATUSES:
        raise FicheError(f"fiche: '{path}.status' doit valoir {'|'.join(STATUSES)}, pas {status!r}")
    answer = _str(raw, "answer", path)
    if status == "unavailable" and not _NEGATION.search(answer):
        raise FicheError(
            f"fiche: '{path}.answer' doit dire que ce canal ne convient pas (« ne … pas », « ne … plus »,"
            " « non », « impossible ») : la case est barrée (unavailable)"
        )
    return Cell(status, _str(raw, "fiche", path), answer)


def _procedures(raw: Any) -> dict[str, Procedure]:
    if not isinstance(raw, dict):
        raise FicheError("fiche: 'procedures' doit être une table")
    missing = [p for p in PROCEDURES if p not in raw]
    if missing:
        raise FicheError(f"fiche: procédure manquante 'procedures.{missing[0]}'")
    unknown = [p for p in raw if p not in PROCEDURES]
    if unknown:
        raise FicheError(f"fiche: procédure inconnue 'procedures.{unknown[0]}'")
    result = {}
    for key in PROCEDURES:
        path = f"procedures.{key}"
        cells_raw = _get(raw[key], "cells", path)
        cells = {}
        for channel in CHANNELS:
            cells[channel] = _cell(_get(cells_raw, channel, f"{path}.cells"), f"{path}.cells.{channel}")
        result[key] = Procedure(key, _str(raw[key], "label", path), cells)
    return result


def _consumption(raw: Any) -> tuple[Consumption, ...]:
    if not isinstance(raw, list) or not raw:
        raise FicheError("fiche: 'consumption' doit être une liste non vide")
    items = []
    for i, item in enumerate(raw):
        path = f"consumption[{i}]"
        current = _get(item, "current_month", path)
        if not isinstance(current, bool):
            raise FicheError(f"fiche: '{path}.current_month' doit valoir true ou false")
        number = _str(item, "number", path, _PHONE) if "number" in item else ""
        items.append(Consumption(_str(item, "channel", path), current, number, str(item.get("note", ""))))
    if not any(c.number for c in items):
        raise FicheError("fiche: 'consumption' doit contenir un canal avec 'number'")
    return tuple(items)


def parse_fiche(raw: Any) -> Fiche:
    """Build a validated Fiche from the parsed YAML document."""
    if not isinstance(raw, dict):
        raise FicheError("fiche: le document doit être une table YAML")
    source = _get(raw, "source", "")
    try:
        fiche_date = date.fromisoformat(_str(source, "date", "source"))
    except ValueError as exc:
        raise FicheError(f"fiche: 'source.date' doit être une date AAAA-MM-JJ ({exc})") from None

    phones_raw = _get(raw, "phone_services", "")
    if not isinstance(phones_raw, dict):
        raise FicheError("fiche: 'phone_services' doit être une table")
    for required in ("1000", "1016", "1012"):
        _get(phones_raw, required, "phone_services")
    phones = {str(k): _phone(str(k), v, f"phone_services.{k}") for k, v in phones_raw.items()}

    restoration = _get(raw, "restoration", "")
    days = _get(restoration, "days", "restoration")
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise FicheError("fiche: 'restoration.days' doit être un nombre de jours positif")

    agency, postal, abroad = (_get(raw, k, "") for k in ("agency", "postal", "abroad"))
    emails, chat = _get(raw, "emails", ""), _get(raw, "chat", "")
    channels_raw = _get(raw, "channels", "")
    channels = {c: _str(channels_raw, c, "channels") for c in CHANNELS}

    fiche = Fiche(
        title=_str(source, "title", "source"),
        date=fiche_date,
        seed_file=_str(source, "seed_file", "source"),
        agency_name=_str(agency, "name", "agency"),
        agency_address=_str(agency, "address", "agency"),
        postal_name=_str(postal, "name", "postal"),
        postal_address=_str(postal, "address", "postal"),
        phones=phones,
        abroad_number=_str(abroad, "number", "abroad", _PHONE),
        abroad_dial=_str(abroad, "dial", "abroad", re.compile(r"^\+[0-9]+$")),
        abroad_price=_str(abroad, "price", "abroad"),
        email_agence=_str(emails, "agence", "emails", _EMAIL),
        email_service_clientele=_str(emails, "service_clientele", "emails", _EMAIL),
        website=_str(raw, "website", ""),
        contact_form=_url(raw, "contact_form", ""),
        chat_site=_str(chat, "site", "chat"),
        chat_messenger=_str(chat, "messenger", "chat"),
        forum=_str(raw, "forum", ""),
        consumption=_consumption(_get(raw, "consumption", "")),
        customer_service_calls=_str(raw, "customer_service_calls", ""),
        restoration_days=days,
        restoration_text=_str(restoration, "text", "restoration"),
        tariff_guide=_url(raw, "tariff_guide", ""),
        channels=channels,
        procedures=_procedures(_get(raw, "procedures", "")),
    )
    if fiche.abroad_dial != dial_form(fiche.abroad_number):
        raise FicheError("fiche: 'abroad.dial' ne correspond pas à 'abroad.number'")
    return _fill_answers(fiche)


def _fill_answers(fiche: Fiche) -> Fiche:
    """Replace {placeholders} in every answer; an unknown placeholder names its field."""
    values, abroad = fiche.placeholders(), fiche.placeholders(abroad=True)
    for proc in fiche.procedures.values():
        for channel, cell in list(proc.cells.items()):
            path = f"procedures.{proc.key}.cells.{channel}.answer"
            for _, name, _, _ in string.Formatter().parse(cell.answer):
                if name is not None and name not in values:
                    raise FicheError(f"fiche: '{path}' utilise une valeur inconnue {{{name}}}")
            proc.cells[channel] = Cell(
                cell.status, cell.fiche, cell.answer.format(**values), cell.answer.format(**abroad)
            )
    return fiche


def load_fiche(path: os.PathLike | None = None) -> Fiche:
    """Read the fiche file (CHAT_CAGOU_FICHE overrides the default path) and validate it."""
    path = Path(path or os.environ.get("CHAT_CAGOU_FICHE") or DEFAULT_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FicheError(f"fiche: impossible de lire {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FicheError(f"fiche: YAML invalide dans {path}: {exc}") from None
    return parse_fiche(raw)


def all_facts(fiche: Fiche) -> list[str]:
    """Every contact fact of the fiche (numbers, emails, links), for checks and tests."""
    facts = [p.number for p in fiche.phones.values()]
    facts += [fiche.abroad_number, fiche.consumption_number, fiche.email_agence]
    facts += [fiche.email_service_clientele, fiche.contact_form, fiche.tariff_guide, fiche.forum]
    return facts
