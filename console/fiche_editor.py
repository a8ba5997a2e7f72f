"""The fiche editor of the console (/fiche, issue 16): the published version as form fields,
the submitted form back to a fiche (checked by the start-up loader, field by field), what
changed, and the assistant's answers before and after, produced by the real answer functions.

A field is named by its dotted path in the fiche's YAML ("phone_services.1000.closes",
"procedures.code_puk.cells.telephone.status"); the form keeps the published version's
structure (the editor changes values, not which services or procedures exist).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from actions import answers, markdown
from actions.answers import Context
from actions.fiche import CHANNELS, DAY_NAMES, PROCEDURES, STATUSES, Fiche, FicheError, dial_form, parse_fiche
from actions.fiche_versions import dump

NOUMEA = ZoneInfo("Pacific/Noumea")
# The document's identity is not edited: every version is a change of the 26/07/2021 fiche.
READ_ONLY = ("source.",)
# The tel: form of the number from abroad follows the number (the loader checks they agree).
DERIVED = {"abroad.dial": "abroad.number"}
STATUS_LABELS = {
    "available": "disponible",
    "restricted": "sous conditions",
    "unavailable": "pas par ce canal (barré)",
}
LONG_TEXT = ("answer", "fiche", "text", "price", "note", "address")
SECTIONS = {
    "agency": "Agence",
    "postal": "Adresse postale",
    "phone_services": "Services téléphoniques (jours 1 = lundi … 7 = dimanche, heures de Nouméa)",
    "abroad": "Depuis l'étranger",
    "emails": "Adresses e-mail",
    "website": "Site, formulaire, forum",
    "contact_form": "Site, formulaire, forum",
    "chat": "Chat",
    "forum": "Site, formulaire, forum",
    "consumption": "Suivi de la consommation",
    "customer_service_calls": "Appels au service client",
    "restoration": "Rétablissement du service",
    "tariff_guide": "Guide tarifaire",
    "channels": "Canaux (colonnes de la fiche)",
    "procedures": "Procédures × canaux",
}


KEY_LABELS = {
    "name": "nom",
    "number": "numéro",
    "days": "jours",
    "opens": "ouverture",
    "closes": "fermeture",
    "always_open": "24h/24",
    "note": "note",
    "address": "adresse",
    "price": "prix",
    "agence": "agence",
    "service_clientele": "service clientèle",
    "status": "statut",
    "fiche": "texte de la fiche",
    "answer": "réponse de l'assistant",
    "label": "intitulé",
    "channel": "canal",
    "current_month": "mois en cours",
    "text": "texte",
    "site": "site",
    "messenger": "Messenger",
    "telephone": "téléphone",
    "courrier": "courrier, mail ou internet",
    "website": "site web",
    "contact_form": "formulaire de contact",
    "forum": "forum",
    "customer_service_calls": "prix des appels au service client",
    "tariff_guide": "lien du guide tarifaire",
}


def label_of(path: str, raw: Mapping[str, Any]) -> str:
    """'procedures.code_puk.cells.telephone.status' -> 'Code PUK — Par téléphone — statut'."""
    parts = path.split(".")
    words = [KEY_LABELS.get(p, p) for p in parts]
    if parts[0] == "procedures" and len(parts) > 2:
        procedure = str(raw["procedures"][parts[1]].get("label", parts[1]))
        if parts[2] == "cells" and len(parts) == 5:
            return f"{procedure} — {raw['channels'].get(parts[3], parts[3])} — {words[4]}"
        return f"{procedure} — {words[-1]}"
    if parts[0] == "consumption" and len(parts) == 3:
        return f"moyen {int(parts[1]) + 1} — {words[2]}"
    if parts[0] == "phone_services" and len(parts) == 3:
        return f"{parts[1]} — {words[2]}"
    if parts[0] in ("agency", "postal", "abroad", "emails", "chat", "restoration", "channels"):
        return words[-1]  # the section says which
    return " — ".join(words)


@dataclass
class Field:
    path: str
    kind: str  # text, textarea, time, days, bool, int, status
    value: Any
    label: str = ""
    error: str = ""

    @property
    def section(self) -> str:
        return SECTIONS.get(self.path.split(".")[0], self.path.split(".")[0])


def kind_of(path: str, value: Any) -> str:
    last = path.rsplit(".", 1)[-1]
    if path.startswith("phone_services.") and last == "days":
        return "days"
    if last in ("opens", "closes"):
        return "time"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if last == "status":
        return "status"
    if last in LONG_TEXT:
        return "textarea"
    return "text"


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list) and path.rsplit(".", 1)[-1] != "days":
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}.{i}")
    else:
        yield path, node


def editable(path: str) -> bool:
    return not path.startswith(READ_ONLY) and path not in DERIVED


def fields_of(raw: Mapping[str, Any]) -> list[Field]:
    """Every editable value of a fiche, in the file's order."""
    return [Field(p, kind_of(p, v), v, label_of(p, raw)) for p, v in _leaves(raw) if editable(p)]


def values_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(_leaves(raw))


def _set(raw: Any, path: str, value: Any) -> None:
    keys = path.split(".")
    node = raw
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def _convert(kind: str, values: Sequence[str]) -> Any:
    """A form value as the fiche holds it; ValueError with a French message if it cannot be."""
    text = values[-1].strip() if values else ""
    if kind == "bool":
        return text in ("1", "on", "true")
    if kind == "days":
        try:
            days = sorted({int(v) for v in values})
        except ValueError:
            raise ValueError("jours invalides") from None
        if not days:
            raise ValueError("cochez au moins un jour")
        return days
    if kind == "int":
        if not re.fullmatch(r"\d{1,4}", text):
            raise ValueError("un nombre entier est attendu")
        return int(text)
    if kind == "status" and text not in STATUSES:
        raise ValueError("statut inconnu")
    if kind == "time" and re.fullmatch(r"\d{2}:\d{2}:\d{2}", text):
        text = text[:5]  # some browsers send seconds
    return text


def _error_paths(message: str) -> list[str]:
    """The fields a loader error names: 'consumption[1].note' -> 'consumption.1.note'."""
    return [re.sub(r"\[(\d+)\]", r".\1", p) for p in re.findall(r"'([\w.\[\]]+)'", message)]


def _target(message: str, by_path: Mapping[str, Field], changed: set[str]) -> Field | None:
    """The field to show a loader error next to: the first one it names that the editor
    changed, else the first one it names."""
    named = [by_path[p] for p in _error_paths(message) if p in by_path]
    return next((f for f in named if f.path in changed), named[0] if named else None)


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0]


def _french(error: FicheError, target: Field | None = None) -> str:
    """The loader's message without its prefix; next to a field, without that field's name."""
    text = str(error).removeprefix("fiche: ")
    if target is not None:  # the loader writes 'consumption[1].note', the form consumption.1.note
        text = re.sub(r"\[(\d+)\]", r".\1", text).replace(f"'{target.path}' ", "", 1)
    return text[:1].upper() + text[1:]


@dataclass
class Submission:
    raw: dict[str, Any]
    fields: list[Field]
    errors: list[str] = field(default_factory=list)  # not tied to one field

    @property
    def ok(self) -> bool:
        return not self.errors and not any(f.error for f in self.fields)

    @property
    def content(self) -> str:
        return dump(self.raw)


def read_form(published: Mapping[str, Any], form: Mapping[str, Sequence[str]]) -> Submission:
    """The submitted form as a fiche, checked by the start-up loader. The loader stops at the
    first error: to give every faulty field its message at once, the field it names is put
    back to its published value and the loader runs again, until the rest passes."""
    raw = copy.deepcopy(dict(published))
    fields = fields_of(published)
    base = values_of(published)
    for f in fields:
        try:
            f.value = _convert(f.kind, form.get(f.path, []))
        except ValueError as exc:
            f.error = str(exc)
            continue
        _set(raw, f.path, f.value)
    _derive(raw)
    submission = Submission(raw, fields)
    by_path = {f.path: f for f in fields}
    changed = {f.path for f in fields if not f.error and f.value != base.get(f.path)}
    work = copy.deepcopy(raw)
    for f in fields:
        if f.error:
            _set(work, f.path, base[f.path])
    for _ in range(len(fields) + 1):
        try:
            parse_fiche(copy.deepcopy(work))
            break
        except FicheError as exc:
            target = _target(str(exc), by_path, changed)
            if target is None:
                submission.errors.append(_french(exc))
                break
            target.error = target.error or _french(exc, target)
            # put back what made it fail: the field, or (unchanged itself, like the answer of a
            # cell whose status changed) the changed fields beside it
            back = (
                [target.path]
                if target.path in changed
                else [p for p in changed if _parent(p) == _parent(target.path)]
            )
            if not back:
                break
            for path in back:
                changed.discard(path)
                _set(work, path, base[path])
            _derive(work)
    return submission


def _derive(raw: dict[str, Any]) -> None:
    for derived, source in DERIVED.items():
        number = values_of(raw).get(source)
        if isinstance(number, str):
            _set(raw, derived, dial_form(number))


def fields_with_values(published: Mapping[str, Any], content: str) -> list[Field]:
    """The form filled with a version's content (to edit a preview again)."""
    values = values_of(yaml.safe_load(content))
    return [Field(f.path, f.kind, values.get(f.path, f.value), f.label) for f in fields_of(published)]


# --- what changed -----------------------------------------------------------------------------


def shown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, list):
        return ", ".join(DAY_NAMES[d - 1] for d in value if isinstance(d, int) and 1 <= d <= 7)
    if value in STATUS_LABELS:
        return STATUS_LABELS[value]
    return "" if value is None else str(value)


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(field, before, after) of every value that differs."""
    old, new = values_of(before), values_of(after)
    paths = list(old) + [p for p in new if p not in old]
    return [(p, shown_value(old.get(p)), shown_value(new.get(p))) for p in paths if old.get(p) != new.get(p)]


# --- the answers that change ------------------------------------------------------------------

# Instants the answers are shown at: the hours decide what the assistant says (open or closed,
# which service). A Monday of the present calendar that is not a holiday in New Caledonia.
INSTANTS = (
    ("un lundi à 10h", datetime(2026, 11, 30, 10, 0, tzinfo=NOUMEA)),
    ("un lundi à 16h", datetime(2026, 11, 30, 16, 0, tzinfo=NOUMEA)),
    ("un dimanche à 22h", datetime(2026, 12, 6, 22, 0, tzinfo=NOUMEA)),
)
WHERE = ((False, "depuis la Nouvelle-Calédonie"), (True, "depuis l'étranger"))


def answer_catalogue(fiche: Fiche) -> dict[str, str]:
    """Every answer the assistant composes from the fiche, by a readable name: each procedure
    on each channel and on all of them, each information topic at three instants, from New
    Caledonia and from abroad. The text as the customer reads it."""
    result: dict[str, str] = {}
    for abroad, where in WHERE:
        for procedure in PROCEDURES:
            label = fiche.procedures[procedure].label
            for channel in (None, *CHANNELS):
                on = fiche.channels[channel] if channel else "tous les canaux"
                reply = answers.procedure_answer(fiche, procedure, channel, abroad)
                result[f"{label} — {on.lower()}, {where}"] = markdown.plain(reply.text)
        for moment, instant in INSTANTS:
            for topic, answer in answers.TOPIC_ANSWERS.items():
                reply = answer(fiche, Context(instant=instant, abroad=abroad))
                name = answers.TOPIC_TITLES.get(topic, topic)
                result[f"{name} — {moment}, {where}"] = markdown.plain(reply.text)
    return result


@dataclass(frozen=True)
class AnswerChange:
    name: str
    before: list[tuple[str, bool]]  # (line, changed)
    after: list[tuple[str, bool]]


def changed_answers(before: Fiche, after: Fiche) -> list[AnswerChange]:
    """The answers that differ, line by line (a line absent from the other side is marked).
    The source line is left out: it names the version, so it always changes."""
    old, new = answer_catalogue(before), answer_catalogue(after)
    changes = []
    for name, text in new.items():
        a = [line for line in old.get(name, "").split("\n") if line != before.source_text]
        b = [line for line in text.split("\n") if line != after.source_text]
        if a != b:
            changes.append(
                AnswerChange(
                    name, [(line, line not in b) for line in a], [(line, line not in a) for line in b]
                )
            )
    return changes
