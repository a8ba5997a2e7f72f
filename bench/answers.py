"""Readability of the answers (issue 12, item 3): how long they are, and whether their first
line holds the key fact, over every answer the assistant composes from the fiche.

The answers: every procedure on every channel and on all of them (from New Caledonia and from
abroad) and every information topic (at an opening hour and on a Sunday night, from New
Caledonia and from abroad). The key fact of each is read from the fiche, not from the answer:
for a channel, yes or no and the cell's contact (or, for a no, where it works instead); for a
procedure, the channels that work; for the hours, open or closed; for a contact, its number,
address or link. Lengths are counted on what the customer reads (the Markdown rendered).

    python -m bench.answers [PROJECT_ROOT]   # another checkout: the same figures, before/after
"""

from __future__ import annotations

import re
import statistics
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

NOUMEA = ZoneInfo("Pacific/Noumea")
INSTANTS = (datetime(2026, 11, 30, 10, 0, tzinfo=NOUMEA), datetime(2026, 12, 6, 22, 0, tzinfo=NOUMEA))
FACT = re.compile(r"[\w.-]+@[\w.-]+\w|https?://\S+\w|www\.\S+\w|\+687[ 0-9]+\d|\b10\d\d\b|Gallieni|BP \d+")


def shown(text: str) -> str:
    """What the customer reads: Markdown links as their text, no bold (old answers have none)."""
    text = re.sub(r"\[([^\]\n]*)\]\(([^)\s]*)\)", r"\1", text)
    return re.sub(r"\*\*(.+?)\*\*", r"\1", text)


def first_line(text: str) -> str:
    return next(line for line in shown(text).split("\n") if line.strip())


def _has(line: str, *facts: str) -> bool:
    folded = line.lower()
    return all(f.lower() in folded for f in facts)


def collect(answers, fiche_module, Context) -> list[tuple[str, str, bool]]:
    """(name, text, first line holds the key fact) of every answer."""
    fiche = fiche_module.load_fiche()
    rows = []
    for abroad in (False, True):
        for procedure, proc in fiche.procedures.items():
            working = [c for c in fiche_module.CHANNELS if proc.cells[c].status != "unavailable"]
            text = answers.procedure_answer(fiche, procedure, None, abroad).text
            # every channel that works named in the first line (its label's first words)
            names = [fiche.channels[c].split(" (")[0].lower() for c in working]
            rows.append((f"{procedure}/tous", text, _has(first_line(text), *names)))
            for channel in fiche_module.CHANNELS:
                cell = proc.cells[channel]
                text = answers.procedure_answer(fiche, procedure, channel, abroad).text
                line = first_line(text)
                if cell.status == "unavailable":
                    others = [fiche.channels[c].split(" (")[0].lower() for c in working]
                    ok = bool(re.match(r"\W*non\b", line, re.I)) and _has(line, *others)
                else:
                    facts = FACT.findall(cell.text(abroad))
                    ok = all(f in line for f in facts) and not re.search(r"\bnon\b", line, re.I)
                rows.append((f"{procedure}/{channel}", text, ok))
    keys = {
        "contact_telephone": lambda f, a: [f.abroad_number] if a else ["1000"],
        "contact_email": lambda f, a: [f.email_service_clientele],
        "contact_adresse": lambda f, a: [f.agency_address],
        "contact_etranger": lambda f, a: [f.abroad_number],
        "contact_forum": lambda f, a: [f.forum],
        "contact_chat": lambda f, a: [f.chat_site],
        "contact_general": lambda f, a: [f.email_service_clientele],
        "suivi_conso": lambda f, a: [f.consumption_number],
        "delai_retablissement": lambda f, a: [f"{f.restoration_days} jours"],
        "cout_appel_service_client": lambda f, a: [f.customer_service_calls],
        "guide_tarifaire": lambda f, a: [f.tariff_guide],
        "info_service": lambda f, a: [f.abroad_number] if a else ["1000", "1016"],
    }
    for instant in INSTANTS:
        for abroad in (False, True):
            ctx = Context(instant=instant, abroad=abroad)
            for topic, answer in answers.TOPIC_ANSWERS.items():
                text = answer(fiche, ctx).text
                line = first_line(text)
                if topic == "horaires":
                    ok = bool(re.search(r"\b(ouverts?|fermés?)\b", line))
                else:
                    ok = _has(line, *keys[topic](fiche, abroad))
                rows.append((f"{topic}/{instant:%a %H}h/{'étranger' if abroad else 'NC'}", text, ok))
    return rows


def figures(root: Path) -> dict[str, float]:
    sys.path.insert(0, str(root))
    from actions import answers, fiche

    rows = collect(answers, fiche, answers.Context)
    lengths = [len(shown(text)) for _, text, _ in rows]
    firsts = [len(first_line(text)) for _, text, _ in rows]
    return {
        "answers": len(rows),
        "median_chars": statistics.median(lengths),
        "median_first_line_chars": statistics.median(firsts),
        "first_line_key_fact": sum(ok for *_, ok in rows) / len(rows),
        "misses": [name for name, _, ok in rows if not ok],
    }


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    result = figures(root)
    print(
        f"{result['answers']} answers: median {result['median_chars']:.0f} characters, first line "
        f"{result['median_first_line_chars']:.0f}; first line holds the key fact: "
        f"{result['first_line_key_fact']:.0%}"
    )
    for name in result["misses"]:
        print("  key fact not in the first line:", name)
