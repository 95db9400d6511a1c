"""A subscriber's time zone, from what providers tell (docs/timezones.md has the order of sources).

A connector puts what it knows in the event's subscriber part: ``timezone`` (an IANA name the
provider gives for the person: Klaviyo's profile location, HubSpot's ``hs_timezone``, a Shopify
customer's or shop's zone) and/or ``country`` (a billing or shipping address country, ISO 3166
alpha-2). A named zone replaces the stored one; a country fills a gap only, and only when the
country has a single zone in the tz database (France yes, the United States no). An event that
names neither leaves the stored zone alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pytz


@dataclass(frozen=True)
class Zone:
    name: str
    explicit: bool  # named by the provider (True) or derived from a country (False)


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def iana(value: Any) -> str | None:
    """The canonical spelling of an IANA zone name (any case), or None for anything else."""
    if not isinstance(value, str) or not value.strip():
        return None
    return _zones().get(value.strip().casefold())


def of_country(country: Any) -> str | None:
    """The zone of a country that has exactly one in the tz database (``FR`` -> ``Europe/Paris``)."""
    if not isinstance(country, str) or len(country.strip()) != 2:
        return None
    zones = pytz.country_timezones.get(country.strip().upper()) or []
    return iana(zones[0]) if len(zones) == 1 else None


def of_part(part: Mapping[str, Any]) -> Zone | None:
    """The zone an event's subscriber part gives, if any."""
    named = iana(part.get("timezone"))
    if named:
        return Zone(named, True)
    derived = of_country(part.get("country"))
    return Zone(derived, False) if derived else None


def valid(name: str) -> bool:
    """True for a name ZoneInfo can load (used to check HUB_DEFAULT_TIMEZONE)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
