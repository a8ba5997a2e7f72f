"""Is a phone service open at a given instant, in Nouméa time, counting New Caledonia's
public holidays (from the maintained `holidays` library, France subdivision NC)."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo

import holidays

from actions.fiche import DAY_NAMES, PhoneService, hour_text

NOUMEA = ZoneInfo("Pacific/Noumea")


def now_noumea() -> datetime:
    return datetime.now(NOUMEA)


@lru_cache(maxsize=None)
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", subdiv="NC", years=year, language="fr")


def holiday_name(day: date) -> Optional[str]:
    return _holidays(day.year).get(day)


def to_noumea(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("un instant sans fuseau horaire est ambigu")
    return instant.astimezone(NOUMEA)


def is_open(service: PhoneService, instant: datetime) -> bool:
    if service.always_open:
        return True
    local = to_noumea(instant)
    return (
        local.isoweekday() in service.days
        and holiday_name(local.date()) is None
        and service.opens <= local.time().replace(tzinfo=None) < service.closes
    )


def next_opening(service: PhoneService, instant: datetime) -> datetime:
    """The next instant (Nouméa time) at which a closed service opens."""
    local = to_noumea(instant)
    for offset in range(0, 15):
        day = local.date() + timedelta(days=offset)
        opening = datetime.combine(day, service.opens, tzinfo=NOUMEA)
        if day.isoweekday() in service.days and holiday_name(day) is None and opening > local:
            return opening
    raise ValueError(f"le {service.number} n'ouvre pas dans les 15 prochains jours")


def when_text(opening: datetime, instant: datetime) -> str:
    """'aujourd'hui à 7h30', 'demain à 7h45', 'lundi 30/11 à 7h30'."""
    local = to_noumea(instant)
    delta = (opening.date() - local.date()).days
    if delta == 0:
        day = "aujourd'hui"
    elif delta == 1:
        day = "demain"
    else:
        day = f"{DAY_NAMES[opening.isoweekday() - 1]} {opening.strftime('%d/%m')}"
    return f"{day} à {hour_text(opening.time())}"
