"""Is a phone service open at a given instant, in Nouméa time, counting New Caledonia's
public holidays (from the maintained `holidays` library, France subdivision NC)."""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from actions.fiche import DAY_NAMES, PhoneService, hour_text

NOUMEA = ZoneInfo("Pacific/Noumea")


# End-to-end tests run the real action server at chosen instants: "is the service open now"
# must not depend on when CI runs. With this variable set, the file it names (when it exists)
# holds the instant, an ISO date-time with its offset; read at each turn, so that a test can
# move the clock of a running server. Logged loudly at the first read.
ENV_TEST_CLOCK = "CHAT_CAGOU_TEST_CLOCK_FILE"


def _test_now() -> datetime | None:
    path = os.environ.get(ENV_TEST_CLOCK, "").strip()
    if not path:
        return None
    _warn_test_clock(path)
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None  # no instant set: the real clock
    fixed = datetime.fromisoformat(value)
    if fixed.tzinfo is None:
        raise ValueError(f"{ENV_TEST_CLOCK}: the instant needs a time zone offset: {value!r}")
    return fixed.astimezone(NOUMEA)


@cache
def _warn_test_clock(path: str) -> None:
    logging.getLogger(__name__).warning("%s is set (%s): tests may fix the clock", ENV_TEST_CLOCK, path)


def now_noumea() -> datetime:
    return _test_now() or datetime.now(NOUMEA)


@cache
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", subdiv="NC", years=year, language="fr")


def holiday_name(day: date) -> str | None:
    return _holidays(day.year).get(day)


def to_noumea(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous: give it a time zone")
    return instant.astimezone(NOUMEA)


def is_open(service: PhoneService, instant: datetime) -> bool:
    if service.always_open:
        return True
    local = to_noumea(instant)
    opens, closes = service.span
    return (
        local.isoweekday() in service.days
        and holiday_name(local.date()) is None
        and opens <= local.time().replace(tzinfo=None) < closes
    )


def next_opening(service: PhoneService, instant: datetime) -> datetime:
    """The next instant (Nouméa time) at which a closed service opens."""
    local = to_noumea(instant)
    for offset in range(0, 15):
        day = local.date() + timedelta(days=offset)
        opening = datetime.combine(day, service.span[0], tzinfo=NOUMEA)
        if day.isoweekday() in service.days and holiday_name(day) is None and opening > local:
            return opening
    raise ValueError(f"{service.number} does not open within the next 15 days")


def when_text(opening: datetime, instant: datetime) -> str:
    """'aujourd'hui à 7h30', 'demain mardi à 7h45', 'lundi 30/11 à 7h30'. Tomorrow is named
    too: after "lundi à 16h ?" asked on a Monday, "demain" alone left the customer to work out
    which day it meant."""
    local = to_noumea(instant)
    delta = (opening.date() - local.date()).days
    if delta == 0:
        day = "aujourd'hui"
    elif delta == 1:
        day = f"demain {DAY_NAMES[opening.isoweekday() - 1]}"
    else:
        day = f"{DAY_NAMES[opening.isoweekday() - 1]} {opening.strftime('%d/%m')}"
    return f"{day} à {hour_text(opening.time())}"


# --- a day or a time the customer asks about --------------------------------------------


@dataclass(frozen=True)
class Moment:
    """An instant the customer asked about (Nouméa time). `whole_day`: a day without an hour
    ("dimanche", "le 24 septembre"); `night`: nights, weekends or "24h/24" were named."""

    instant: datetime
    whole_day: bool
    night: bool = False


# Parts of the day, as the hour they stand for (services close at 15h30/15h45).
_DAY_PARTS = (
    (re.compile(r"\bapres ?midi\b|\baprem\b"), time(14, 0)),
    (re.compile(r"\bmatin(ee)?\b|\bdu mat\b"), time(9, 0)),
    (re.compile(r"\bmidi\b"), time(12, 0)),
    (re.compile(r"\bsoir(ee)?\b"), time(19, 0)),
    (re.compile(r"\bnuit\b|\bminuit\b"), time(23, 0)),
)
_NIGHT_OR_ALWAYS = re.compile(
    r"\bnuit\b|\bsoir\b|\bweek ?end\b|24 ?h ?/? ?24|7 ?j ?/? ?7|\btout le temps\b|\bjour et nuit\b"
)
_WEEKEND = re.compile(r"\bweek ?end\b")
_TODAY = re.compile(
    r"\baujourd ?hui\b|\bce (matin|midi|soir|jour|aprem|apres ?midi)\b|\bcette (nuit|apres ?midi)\b|\bmaintenant\b"
)
# What makes a dateparser match a real date: a day, a month, a relative day or a clock time.
_DATE_WORDS = re.compile(
    r"\b(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|demain|apres ?demain|janvier|fevrier|mars|avril|mai|"
    r"juin|juillet|aout|septembre|octobre|novembre|decembre)\b|\d{1,2}:\d{2}|\b\d{1,2}/\d{1,2}\b"
)
# _DATE_WORDS without its word bounds: a message it does not match has no part that
# _DATE_WORDS matches
_MAY_HOLD_DATE = re.compile(re.sub(r"\\b", "", _DATE_WORDS.pattern))
_CLOCK_AND_SMALL_WORDS = re.compile(r"\d{1,2}:\d{2}|\b(a|vers|pour|de|le|la|les|des|au|du|ce|cet|cette)\b|\s")
# Service numbers and the number from abroad would read as years or times.
_NOT_DATES = re.compile(r"\+\d{3}[ 0-9]*|\b1[0-9]{3}\b")


def asks_nights(text: str) -> bool:
    """Nights, weekends, "24h/24", "7j/7": the always-open service is part of the answer."""
    return bool(_NIGHT_OR_ALWAYS.search(_fold(text)))


def asks_holidays(text: str) -> bool:
    return bool(re.search(r"\bferie|\bjours? de fete\b", _fold(text)))


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c)).replace("'", " ").replace("-", " ")


def _for_dateparser(text: str) -> str:
    """French clock times as dateparser reads them ("16h" -> "16:00", "1er mai" -> "1 mai")."""
    text = _NOT_DATES.sub(" ", text)
    text = re.sub(r"\b(\d{1,2}) ?h ?(\d{2})\b", r"\1:\2", text)
    text = re.sub(r"\b(\d{1,2}) ?h\b", r"\1:00", text)
    return re.sub(r"\b1er\b", "1", text)


# Names customers give to public holidays, beside the names the `holidays` library uses.
_HOLIDAY_ALIASES = {
    "nouvel an": "jour de l an",
    "premier de l an": "jour de l an",
    "jour de l an": "jour de l an",
    "noel": "noel",
    "paques": "paques",
    "pentecote": "pentecote",
    "14 juillet": "fete nationale",
    "1er mai": "fete du travail",
    "8 mai": "victoire",
    "11 novembre": "armistice",
}


@cache
def _holiday_patterns(year: int) -> tuple[tuple[date, re.Pattern[str]], ...]:
    """The year's public holidays, each with one pattern for the names customers give it
    (computed once a year: the per-message loop cost a millisecond)."""
    patterns = []
    for day, name in sorted(_holidays(year).items()):
        key = _fold(name)
        names = {key} | {alias for alias, target in _HOLIDAY_ALIASES.items() if target in key}
        significant = {
            n.replace("lundi de ", "").replace("fete de la ", "").replace("fete du ", "") for n in names
        }
        alternatives = "|".join(re.escape(n) for n in sorted(significant | names))
        patterns.append((day, re.compile(rf"\b(?:{alternatives})\b")))
    return tuple(patterns)


def _named_holiday(folded: str, today: date) -> date | None:
    """The next date of a public holiday named in the message ("Noël", "le jour de l'an", "la Toussaint")."""
    for year in (today.year, today.year + 1):
        for day, pattern in _holiday_patterns(year):
            if day >= today and pattern.search(folded):
                return day
    return None


def asked_moment(text: str, now: datetime) -> Moment | None:
    """The instant a French message asks about ("dimanche", "lundi à 16h", "le 24 septembre",
    "ce midi", "demain matin", "à Noël"), or None. Dates are read by dateparser (maintained,
    French) and holiday names by `holidays`; this function only prepares the text and resolves
    what they leave open (today's weekday, a clock time alone, parts of the day)."""
    from dateparser.search import search_dates

    local = to_noumea(now)
    folded = _fold(text)
    night = bool(_NIGHT_OR_ALWAYS.search(folded))
    prepared = _for_dateparser(folded)
    settings = {"PREFER_DATES_FROM": "future", "RELATIVE_BASE": local.replace(tzinfo=None)}
    # dateparser takes milliseconds; what it finds counts only when it holds a date word
    # (below), so a message with none anywhere is not given to it.
    found = (
        search_dates(prepared, languages=["fr"], settings=settings) or []
        if _MAY_HOLD_DATE.search(prepared)
        else []
    )
    matches = [(words, value) for words, value in found if _DATE_WORDS.search(words)]
    part = next((hour for pattern, hour in _DAY_PARTS if pattern.search(folded)), None)
    clock_match = re.search(r"\b(\d{1,2}):(\d{2})\b", prepared)
    clock = (
        time(int(clock_match.group(1)), int(clock_match.group(2)))
        if clock_match and int(clock_match.group(1)) < 24 and int(clock_match.group(2)) < 60
        else part
    )
    day = _named_holiday(folded, local.date())
    weekday = re.search(r"\b(lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche)\b", folded)
    dated = re.search(
        r"\b(janvier|fevrier|mars|avril|mai|juin|juillet|aout|septembre|octobre|novembre|decembre)\b"
        r"|\b\d{1,2}/\d{1,2}\b",
        folded,
    )
    if day is None and weekday and not dated:
        # A weekday alone is the next one, today included ("jeudi" asked on a Thursday).
        ahead = (DAY_NAMES.index(weekday.group(1)) + 1 - local.isoweekday()) % 7
        day = local.date() + timedelta(days=ahead)
    if day is None and matches:
        words, value = next(
            ((w, v) for w, v in matches if re.search(r"[a-z]|\d/", _CLOCK_AND_SMALL_WORDS.sub("", w))),
            matches[0],
        )
        # a clock time alone ("à 17h30 ?") is today
        day = value.date() if re.search(r"[a-z]|\d/", _CLOCK_AND_SMALL_WORDS.sub("", words)) else local.date()
    if day is None:
        if _WEEKEND.search(folded):
            day = local.date() + timedelta(days=(6 - local.isoweekday()) % 7)
            return Moment(datetime.combine(day, clock or time(10, 0), tzinfo=NOUMEA), clock is None, True)
        if clock is not None and (_TODAY.search(folded) or clock_match or len(folded.split()) <= 6):
            return Moment(datetime.combine(local.date(), clock, tzinfo=NOUMEA), False, night)
        return None
    if clock is None:
        return Moment(datetime.combine(day, time(10, 0), tzinfo=NOUMEA), True, night)
    return Moment(datetime.combine(day, clock, tzinfo=NOUMEA), False, night)


# "à cette heure-là", "ce jour-là", "à la même heure": the moment of an earlier message
_POINTS_BACK = re.compile(
    r"\b(cette heure la|ces heures la|ce jour la|ce moment la|cette date la|ce creneau la"
    r"|(a )?la meme heure|le meme jour|meme heure|meme jour)\b"
)


def moment_pointed_back(text: str, earlier_texts: list[str], now: datetime) -> Moment | None:
    """The moment of the customer's latest earlier message that named one, when this message
    points back to it ("et un mardi à 15h40 ?" then "et l'agence à cette heure-là ?").
    `earlier_texts`: the customer's earlier messages, the latest first (a few are enough)."""
    if not _POINTS_BACK.search(_fold(text)):
        return None
    for earlier in earlier_texts:
        moment = asked_moment(earlier, now)
        if moment is not None:
            return moment
    return None
