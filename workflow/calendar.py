"""Working days by the Chinese calendar (法定节假日 and 调休 working weekends), per company.

`chinese_calendar` knows the State Council's holiday notices (the years it covers); a company
adds its own closing days and extra working days (`WORK_HOLIDAYS` / `WORK_DAYS` in the
environment, ISO dates separated by commas). Deadlines are counted in China time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import chinese_calendar

CHINA = ZoneInfo("Asia/Shanghai")
DURATION = re.compile(r"(\d{1,3})(d|cd)")
MAX_SCAN = 400  # days: a deadline further away than this is a definition error anyway


@dataclass(frozen=True)
class Duration:
    """`2d`: two working days (工作日); `30cd`: thirty calendar days (自然日)."""

    days: int
    working: bool = True

    def __str__(self) -> str:
        return f"{self.days}{'d' if self.working else 'cd'}"


def parse_duration(text: str) -> Duration | None:
    """`2d` / `30cd` → Duration; None when the text is not one."""
    match = DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    return Duration(int(match.group(1)), match.group(2) == "d")


@dataclass(frozen=True)
class WorkCalendar:
    """The official calendar, with the company's own extra holidays and working days."""

    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    workdays: frozenset[dt.date] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, holidays: str | None = "", workdays: str | None = "") -> WorkCalendar:
        return cls(frozenset(_dates(holidays)), frozenset(_dates(workdays)))

    def is_workday(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # a year the package does not know yet: Mon–Fri
            return day.weekday() < 5

    def add_working_days(self, day: dt.date, count: int) -> dt.date:
        """The `count`-th working day after `day` (0: `day` itself)."""
        current = day
        left = count
        for _ in range(MAX_SCAN):
            if left <= 0:
                return current
            current += dt.timedelta(days=1)
            if self.is_workday(current):
                left -= 1
        return current

    def after(self, start: dt.datetime, duration: Duration) -> dt.datetime:
        """`start` plus `duration`: working days keep the clock time (China time), on the
        n-th working day after the start's day; calendar days are plain days."""
        if not duration.working:
            return start + dt.timedelta(days=duration.days)
        local = start.astimezone(CHINA)
        day = self.add_working_days(local.date(), duration.days)
        return dt.datetime.combine(day, local.timetz()).astimezone(dt.UTC)


def start_of_day_after(day: dt.date) -> dt.datetime:
    """The moment a date has passed (midnight after it, China time), in UTC."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), CHINA).astimezone(dt.UTC)


def _dates(text: str | None) -> Iterable[dt.date]:
    for part in (text or "").replace(";", ",").split(","):
        if part.strip():
            yield dt.date.fromisoformat(part.strip())


_current = WorkCalendar()


def configure(calendar: WorkCalendar) -> None:
    """Set the company calendar (create_app does, from the settings)."""
    global _current
    _current = calendar


def current() -> WorkCalendar:
    return _current
