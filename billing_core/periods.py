"""Billing periods are calendar months in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from billing_core.errors import InvalidRequest

MINUTES_PER_DAY = 1440
EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class BillingPeriod:
    start: datetime  # inclusive, UTC midnight on the 1st
    end: datetime  # exclusive: the next period's start

    @property
    def key(self) -> str:
        return f"{self.start.year:04d}-{self.start.month:02d}"

    @property
    def start_minute(self) -> int:
        return minute_of(self.start)

    @property
    def end_minute(self) -> int:
        return minute_of(self.end)

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def end_day(self) -> date:
        """Exclusive."""
        return self.end.date()

    def contains(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    def is_open(self, *, now: datetime, grace: timedelta) -> bool:
        """A period takes late usage until its end plus a grace, then it is closed for good."""
        return now < self.end + grace

    def previous(self) -> BillingPeriod:
        return period_containing(self.start - timedelta(microseconds=1))

    def next(self) -> BillingPeriod:
        return period_containing(self.end)

    def shifted(self, months: int) -> BillingPeriod:
        """The period `months` months later (earlier when negative)."""
        index = self.start.year * 12 + self.start.month - 1 + months
        return period_containing(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC))


def period_containing(ts: datetime) -> BillingPeriod:
    ts = ts.astimezone(UTC)
    start = datetime(ts.year, ts.month, 1, tzinfo=UTC)
    end = datetime(ts.year + (ts.month == 12), ts.month % 12 + 1, 1, tzinfo=UTC)
    return BillingPeriod(start=start, end=end)


def parse_period_key(key: str) -> BillingPeriod:
    """'2026-11' -> that month's period."""
    try:
        year_text, month_text = key.split("-")
        return period_containing(datetime(int(year_text), int(month_text), 1, tzinfo=UTC))
    except ValueError as exc:
        raise ValueError(f"period must look like YYYY-MM, got {key!r}") from exc


def minute_of(ts: datetime) -> int:
    """The UTC minute slot a timestamp falls in, as minutes since the Unix epoch."""
    return int(ts.timestamp() // 60)


def day_of_minute(minute: int) -> date:
    return EPOCH_DAY + timedelta(days=minute // MINUTES_PER_DAY)


def minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def period_from_field(value: str, *, field: str = "period") -> BillingPeriod:
    """A `YYYY-MM` value a caller gave, or InvalidRequest naming the field."""
    try:
        period = parse_period_key(value)
    except ValueError:
        raise InvalidRequest(field, f"must look like YYYY-MM, got {value!r}") from None
    if period.key != value:
        raise InvalidRequest(field, f"must look like YYYY-MM, got {value!r}")
    return period
