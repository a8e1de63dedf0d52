"""UTC date handling and the inclusive date-range spec used by backfills."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, model_validator

from models.errors import InputError


def utc_today() -> date:
    return datetime.now(UTC).date()


def parse_date(text: str | date, *, name: str = "date") -> date:
    """Parse `YYYY-MM-DD` strictly, naming the parameter and value on error."""
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(f"invalid {name} {text!r}: expected a UTC date as YYYY-MM-DD") from None


def day_start(day: date) -> datetime:
    """00:00 UTC of `day` as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_bounds_ms(day: date) -> tuple[int, int]:
    """[start, end) of a UTC day in epoch milliseconds."""
    start = int(day_start(day).timestamp() * 1000)
    return start, start + 86_400_000


def is_closed(day: date, *, now: datetime | None = None) -> bool:
    """A day is closed once its last millisecond lies in the past."""
    now = now or datetime.now(UTC)
    return day_start(day) + timedelta(days=1) <= now


def check_range(start: date, end: date) -> None:
    """Raise ValueError for a reversed range or one ending in the future (UTC)."""
    if end < start:
        raise ValueError(f"reversed date range: start {start} is after end {end}")
    today = utc_today()
    if end > today:
        raise ValueError(f"end date {end} is in the future (today is {today} UTC)")


class DateRange(BaseModel):
    """An inclusive range of UTC days, refused if reversed or in the future."""

    model_config = ConfigDict(frozen=True)

    start: date
    end: date

    @model_validator(mode="after")
    def _check(self) -> DateRange:
        check_range(self.start, self.end)
        return self

    def days(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def __len__(self) -> int:
        return (self.end - self.start).days + 1
