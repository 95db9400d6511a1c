"""Money and time in canonical form: ``{"minor": int, "currency": "USD"}`` and RFC 3339 UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

# ISO 4217 minor-unit exponents that differ from 2. Everything else has 2.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def money(minor: int | None, currency: str | None) -> dict[str, Any] | None:
    """Money from integer minor units (Stripe, Chargebee). Currency is upper-cased."""
    if minor is None or currency is None:
        return None
    return {"minor": int(minor), "currency": str(currency).upper()}


def money_from_decimal(amount: str | int | float | Decimal | None, currency: str | None) -> dict[str, Any] | None:
    """Money from a decimal string (Shopify ``"29.99"``), using the currency's real exponent."""
    if amount in (None, "") or not currency:
        return None
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal amount: {amount!r}") from exc
    minor = (value * (Decimal(10) ** exponent(currency))).to_integral_value()
    return {"minor": int(minor), "currency": str(currency).upper()}


def to_major(value: dict[str, Any]) -> float:
    """Major units as a float (only for APIs that demand it, e.g. Klaviyo ``value``)."""
    return float(Decimal(value["minor"]) / (Decimal(10) ** exponent(value["currency"])))


def rfc3339(moment: datetime) -> str:
    """``2026-01-01T00:00:00Z`` (seconds precision unless the value has microseconds)."""
    moment = moment.astimezone(timezone.utc)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _from_epoch(seconds: float) -> str:
    try:
        return rfc3339(datetime.fromtimestamp(seconds, tz=timezone.utc))
    except (OverflowError, OSError) as exc:  # far outside the calendar: a malformed payload
        raise ValueError(f"timestamp out of range: {seconds!r}") from exc


def from_unix(seconds: int | float | str | None) -> str | None:
    if seconds in (None, ""):
        return None
    return _from_epoch(float(seconds))


def from_millis(millis: int | float | str | None) -> str | None:
    if millis in (None, ""):
        return None
    return _from_epoch(float(millis) / 1000.0)


def parse_time(value: Any) -> datetime:
    """An aware datetime from an RFC 3339/ISO string (any offset; naive means UTC) or epoch seconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"timestamp out of range: {value!r}") from exc
    text = str(value).strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def from_iso(value: str | None) -> str | None:
    """RFC 3339 UTC from an ISO string with any offset."""
    if value in (None, ""):
        return None
    return rfc3339(parse_time(value))


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


_MONTHS_PER = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


def monthly(amount_minor: int, interval: str | None, interval_count: int | None = 1) -> int:
    """Normalize an amount per billing interval to a month: year/12, week*52/12, day*365/12."""
    months = _MONTHS_PER.get((interval or "month").lower())
    if months is None:
        raise ValueError(f"unknown billing interval {interval!r}")
    return round(amount_minor / (months * max(int(interval_count or 1), 1)))
