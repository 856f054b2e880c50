"""Numbers as people read them: hours to two decimals, money as currency from cents."""

from __future__ import annotations

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def format_hours(hours: float) -> str:
    return f"{hours:,.2f} h"


def format_money(cents: int, currency: str = "usd") -> str:
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    amount = f"{cents / 100:,.2f}"
    return f"{symbol}{amount}" if symbol else f"{amount} {currency.upper()}"


def format_percent(share: float, digits: int = 3) -> str:
    """`share` is a fraction (0.999 -> '99.900 %')."""
    return f"{share * 100:.{digits}f} %"


def format_minutes(minutes: float) -> str:
    return f"{minutes:,.1f} min"
