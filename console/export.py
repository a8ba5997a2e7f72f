"""Relabelled customer messages as Rasa NLU training data (YAML, format 3.1)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from console.domain import plain_text
from console.indexer import NOUMEA
from console.masking import fold, mask, pii_spans


def _clean(segment: str) -> str:
    """Free text of an example: masked, without the brackets of Rasa's markup."""
    return mask(segment).replace("[", "(").replace("]", ")")


def annotated_example(
    text: str,
    entities: Iterable[dict[str, Any]],
    known_entities: set[str],
    known_texts: set[tuple[str, str]] | None = None,
) -> str:
    """The message as a training example: the predicted entities kept as `[text](entity)`
    annotations, phone numbers and emails masked (an entity overlapping one is dropped).

    With `known_texts` ((entity, folded text) pairs of the training data), only an entity whose
    text the training data already annotates so is kept: staff relabel intents, not entities,
    so a wrong entity prediction must not slip into the training data."""
    pii = pii_spans(text)
    spans: list[tuple[int, int, str]] = []
    for entity in entities or []:
        start, end, name = entity.get("start"), entity.get("end"), entity.get("entity")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            continue
        if name not in known_entities or not text[start:end].strip():
            continue
        if known_texts is not None and (name, fold(text[start:end])) not in known_texts:
            continue
        if any(s < end and start < e for s, e, _ in pii) or any(s < end and start < e for s, e, _ in spans):
            continue
        spans.append((start, end, name))
    out, pos = [], 0
    for start, end, name in sorted(spans):
        out.append(_clean(text[pos:start]))
        out.append(f"[{' '.join(_clean(text[start:end]).split())}]({name})")
        pos = end
    out.append(_clean(text[pos:]))
    return " ".join("".join(out).split())  # one line: each example is a line of the YAML


# Shown on the export's pages and written at the top of the file: masking is not enough
REVIEW_WARNING = (
    "ATTENTION : relisez chaque exemple avant de le committer et retirez les noms, numéros "
    "et toute donnée personnelle que le masquage n'a pas reconnus."
)


def build_export(
    labels: list[dict[str, Any]], existing: dict[str, set[str]], intents: list[str]
) -> tuple[str, int, int]:
    """(yaml text, examples written, examples left out).

    Left out: those already in data/ and intents no longer in the domain. When one text was
    labelled twice, the latest label wins: two intents for one text would fail validation.
    """
    latest: dict[str, dict[str, Any]] = {}
    for label in sorted(labels, key=lambda entry: entry["created_at"]):
        latest[fold(plain_text(label["example"]))] = label
    by_intent: dict[str, list[str]] = {}
    skipped = len(labels) - len(latest)
    for key, label in latest.items():
        if not key or key in existing or label["intent"] not in intents:
            skipped += 1
            continue
        by_intent.setdefault(label["intent"], []).append(label["example"])
    written = sum(len(v) for v in by_intent.values())
    now = datetime.now(NOUMEA).strftime("%d/%m/%Y %H:%M")
    lines = [
        f"# Exporté de la console Chat Cagou le {now} (heure de Nouméa) : {written} exemple(s).",
        f"# {skipped} message(s) réétiqueté(s) non repris (déjà dans data/, doublon ou intention inconnue).",
        f"# {REVIEW_WARNING}",
        "# Numéros et emails reconnus sont masqués ; pas les noms, adresses, numéros de contrat",
        "# ou de client écrits autrement. À relire, puis à ajouter dans data/nlu/.",
        'version: "3.1"',
    ]
    if not by_intent:
        lines.append("nlu: []")
    else:
        lines.append("nlu:")
        for intent in sorted(by_intent, key=intents.index):
            lines.append(f"- intent: {intent}")
            lines.append("  examples: |")
            lines += [f"    - {example}" for example in sorted(set(by_intent[intent]))]
    return "\n".join(lines) + "\n", written, skipped
