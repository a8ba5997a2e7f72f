"""Masking of customers' phone numbers and email addresses, and text normalisation for search."""

from __future__ import annotations

import re
import unicodedata

PHONE_MASK = "‹téléphone masqué›"
EMAIL_MASK = "‹email masqué›"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# 6 digits or more, with an optional +687 / 00 33 / (+687) prefix, grouped by any spaces
# (no-break and narrow no-break ones too, doubled), dots, dashes or parentheses ("+33 (0)6"),
# and found even when glued to a word ("au0612345678", "tel:78.12.34"): New Caledonian
# numbers have 6 digits, French ones 10. The services' 4-digit numbers (1000, 1016...),
# amounts and dates (slashes) are left alone.
_SEP = r"[\s.\-()]{0,3}"
PHONE = re.compile(rf"(?<!\d)(?:\(?(?:\+|00)\s*)?\(?\d(?:{_SEP}\d){{5,}}\)?(?!\d)")


def pii_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, mask) of every email and phone number, in order, not overlapping."""
    spans = [(m.start(), m.end(), EMAIL_MASK) for m in EMAIL.finditer(text)]
    for m in PHONE.finditer(text):
        if not any(s < m.end() and m.start() < e for s, e, _ in spans):
            spans.append((m.start(), m.end(), PHONE_MASK))
    return sorted(spans)


def mask(text: str) -> str:
    if not text:
        return ""
    out, pos = [], 0
    for start, end, placeholder in pii_spans(text):
        out.append(text[pos:start])
        out.append(placeholder)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def fold(text: str) -> str:
    """Lower case without accents, spaces collapsed: 'Résilier' and 'resilier' match."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().split())
