"""The small Markdown subset of the assistant's answers, and its plain-text form.

Answers are written in the subset that Rasa's widgets render (rasa-webchat's react-markdown,
our web/chat-cagou.js): `**bold**` for the first line, `- ` bullet lists, `[text](url)` links
with https, mailto and tel only. Each paragraph and each list is its own block, separated by
a blank line: Markdown joins lines that are not (a "• " line after a paragraph would run into
it). Messenger renders no Markdown: `plain()` gives it the same text as plain lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

BULLET = "- "
PLAIN_BULLET = "• "


def bold(line: str) -> str:
    return f"**{line}**"


def bullet(line: str) -> str:
    return BULLET + line


def is_bullet(line: str) -> bool:
    return line.startswith(BULLET)


def blocks(lines: Iterable[str]) -> str:
    """Lines -> Markdown text: consecutive bullets form one list, every other line is a
    paragraph of its own."""
    out: list[str] = []
    previous_bullet = False
    for line in lines:
        if not line:
            continue
        bulleted = is_bullet(line)
        if out:
            out.append("\n" if bulleted and previous_bullet else "\n\n")
        out.append(line)
        previous_bullet = bulleted
    return "".join(out)


def lines_of(text: str) -> list[str]:
    """The non-empty lines of a Markdown text (the inverse of `blocks`)."""
    return [line for line in text.split("\n") if line.strip()]


# --- links ----------------------------------------------------------------------------------

# What is already a link, then what becomes one. Order matters: at one position the first
# alternative wins, so an e-mail address is taken whole before the number it starts with.
_EXISTING = r"(?P<link>\[[^\]\n]*\]\([^)\s]*\))"
_URL = r"(?P<url>https?://[^\s<>()\[\]*]+)"
_EMAIL = r"(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
_WWW = r"(?P<www>www\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:/[^\s<>()\[\]*]*)?)"
_DOMAIN = r"(?P<domain>\b[a-z0-9-]+\.nc\b)"
_TRAILING = re.compile(r"[.,;:!?]+$")


def _pattern(numbers: Mapping[str, str]) -> re.Pattern[str]:
    # Known phone numbers only: a bare "1000" is a number when the fiche says so, never
    # a guess on any four digits. Longest first; not inside a word, an address or a link.
    phones = "|".join(re.escape(n) for n in sorted(numbers, key=len, reverse=True))
    number = rf"(?P<number>(?<![\w@./+-])(?:{phones})(?![\w@]|\.\w))" if phones else ""
    parts = [_EXISTING, _URL, _EMAIL, _WWW, _DOMAIN] + ([number] if number else [])
    return re.compile("|".join(parts))


_PATTERNS: dict[tuple[tuple[str, str], ...], re.Pattern[str]] = {}


def with_links(text: str, numbers: Mapping[str, str]) -> str:
    """`text` with every URL, e-mail address, web domain and known phone number as a Markdown
    link. `numbers` maps each number as written to what a tel: link dials."""
    key = tuple(sorted(numbers.items()))
    pattern = _PATTERNS.get(key) or _PATTERNS.setdefault(key, _pattern(numbers))

    def link(match: re.Match[str]) -> str:
        kind, found = match.lastgroup, match.group(0)
        if kind == "link":
            return found
        trailing = _TRAILING.search(found)
        tail = trailing.group(0) if trailing and kind != "number" else ""
        shown = found[: len(found) - len(tail)]
        if kind == "url":
            href = shown
        elif kind == "email":
            href = f"mailto:{shown}"
        elif kind == "number":
            href = f"tel:{numbers[shown]}"
        else:
            href = f"https://{shown}"
        return f"[{shown}]({href}){tail}"

    return pattern.sub(link, text)


# --- plain text (Messenger) ------------------------------------------------------------------

_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]*)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def plain(text: str) -> str:
    """The same answer as plain lines: links as their text, no bold, "• " bullets, no blank
    lines between blocks."""
    text = _LINK.sub(lambda m: m.group(1) or m.group(2), text)
    text = _BOLD.sub(r"\1", text)
    lines = [PLAIN_BULLET + line[len(BULLET) :] if is_bullet(line) else line for line in lines_of(text)]
    return "\n".join(lines)
