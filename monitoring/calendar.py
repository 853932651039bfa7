"""Business-hours calendars: when an SLA clock runs.

A calendar is a sequence of open intervals in time. `BusinessCalendar` has
weekly opening hours in one IANA timezone (several intervals a day allowed)
and holidays as dates in that zone; `TWENTY_FOUR_SEVEN` is always open. Both
answer the same four questions: how much working time lies between two
instants, when a given amount of working time from an instant runs out, and
whether (or when next) the calendar is open.

Calendars compose: `union` is open when any part is, `after_hours` is open
when a calendar is closed, and `excluding` removes periods (an SLA clock's
pauses). The questions are answered once, over the open intervals, so every
calendar gives exact answers, to the microsecond.

Opening hours are local wall-clock times, so a day's length follows the
zone: 00:00-24:00 on a spring-forward day is 23 hours. A boundary that falls
in a DST gap moves forward by the gap (02:30 on a spring-forward night is
03:30); an ambiguous one (a fall-back night) is its first occurrence.

Everything returned is in UTC; every datetime given must be timezone-aware.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TWENTY_FOUR_SEVEN_NAME = "24x7"

MINUTES_PER_DAY = 24 * 60
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)

Interval = tuple[datetime, datetime]


class Calendar(ABC):
    """When a clock runs: open intervals, and working time measured over them."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def open_intervals(self, since: datetime) -> Iterator[Interval]:
        """Open intervals in UTC, in time order, not overlapping, from `since`.

        Every interval ends after `since`; the first may start before it. The
        stream is endless unless the calendar closes for good.
        """

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """Open time between two instants; zero when `end` is not after `start`."""
        _require_aware(start, end)
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        for opens, closes in self.open_intervals(start):
            if opens >= end:
                break
            total += min(closes, end) - max(opens, start)
        return total

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """`working_time` in seconds; 0.0 when `end` is not after `start`."""
        return self.working_time(start, end).total_seconds()

    def add_working_time(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant by which `seconds` of open time have passed.

        This is the due time of a target of `seconds` started at `start`. A
        target that runs out exactly at closing time is due at closing time,
        not at the next opening.

        Raises:
            ValueError: `seconds` is negative, or the calendar closes for
                good before that much open time has passed.
        """
        _require_aware(start)
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        remaining = timedelta(seconds=seconds)
        if not remaining:
            return start.astimezone(UTC)
        for opens, closes in self.open_intervals(start):
            opens = max(opens, start)
            if remaining <= closes - opens:
                return (opens + remaining).astimezone(UTC)
            remaining -= closes - opens
        raise ValueError(
            f"calendar {self.name} closes for good before {seconds} s of working "
            f"time from {start.isoformat()} have passed"
        )

    def is_open(self, at: datetime) -> bool:
        """Whether the clock runs at this instant (opening instant included)."""
        _require_aware(at)
        for opens, _closes in self.open_intervals(at):
            return opens <= at
        return False

    def next_open(self, at: datetime) -> datetime:
        """`at` itself if open then, else the next opening, in UTC.

        Raises:
            ValueError: the calendar never opens again.
        """
        _require_aware(at)
        for opens, _closes in self.open_intervals(at):
            return max(opens, at).astimezone(UTC)
        raise ValueError(f"calendar {self.name} never opens after {at.isoformat()}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class TwentyFourSevenCalendar(Calendar):
    """Always open: working time is wall-clock time."""

    def __init__(self, name: str = TWENTY_FOUR_SEVEN_NAME) -> None:
        super().__init__(name)

    def open_intervals(self, since: datetime) -> Iterator[Interval]:
        yield since.astimezone(UTC), _END_OF_TIME


TWENTY_FOUR_SEVEN = TwentyFourSevenCalendar()


class BusinessCalendar(Calendar):
    """Weekly opening hours in one timezone, closed on holidays.

    Args:
        name: How policies refer to it, e.g. "business_eu".
        timezone: IANA timezone the hours and holidays are in.
        hours: Weekday ("mon" ... "sun") to its opening intervals as
            "HH:MM-HH:MM" texts; "24:00" ends an interval at midnight. A
            weekday not given is closed.
        holidays: Dates, in the calendar's zone, closed all day.

    Raises:
        ValueError: an unknown timezone or weekday, a malformed or
            overlapping interval, or a week that is never open or never
            closed (use `TWENTY_FOUR_SEVEN` for the latter).
    """

    def __init__(
        self,
        name: str,
        timezone: str,
        hours: Mapping[str, Sequence[str]],
        holidays: Iterable[date] = (),
    ) -> None:
        super().__init__(name)
        self.timezone = timezone
        self.zone = load_zone(timezone)
        self.holidays = frozenset(holidays)
        self._hours = _weekly_hours(hours)

    def open_intervals(self, since: datetime) -> Iterator[Interval]:
        day = since.astimezone(self.zone).date()
        # Ends: the week is open somewhere and holidays are finitely many.
        while True:
            for opens, closes in self._day_intervals(day):
                if closes > since:
                    yield opens, closes
            day += timedelta(days=1)

    def _day_intervals(self, day: date) -> list[Interval]:
        if day in self.holidays:
            return []
        intervals = []
        previous = None
        for start_minute, end_minute in self._hours[day.weekday()]:
            opens = self._instant(day, start_minute)
            closes = self._instant(day, end_minute)
            # Boundaries shifted out of a DST gap can overtake the next one;
            # clamping keeps the day's intervals ordered and disjoint.
            if previous is not None:
                opens = max(opens, previous)
            closes = max(closes, opens)
            if closes > opens:
                intervals.append((opens, closes))
            previous = closes
        return intervals

    def _instant(self, day: date, minute: int) -> datetime:
        local = datetime.combine(day, time()) + timedelta(minutes=minute)
        # fold=0: a gap time reads with the offset before the gap (so it
        # moves forward), an ambiguous time is its first occurrence.
        return local.replace(tzinfo=self.zone).astimezone(UTC)


def union(name: str, *calendars: Calendar) -> Calendar:
    """A calendar open whenever any of `calendars` is open."""
    return _Union(name, calendars)


def after_hours(calendar: Calendar) -> Calendar:
    """A calendar open exactly when `calendar` is closed."""
    return _AfterHours(calendar)


def excluding(calendar: Calendar, periods: Iterable[Interval]) -> Calendar:
    """`calendar` with `periods` (aware start, end) closed, e.g. SLA pauses."""
    return _Excluding(calendar, periods)


def load_zone(timezone: str) -> ZoneInfo:
    """The IANA timezone of this name.

    Raises:
        ValueError: no such zone in the system's (or tzdata's) database.
    """
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(
            f"unknown IANA timezone {timezone!r}; use a name such as "
            "Europe/Berlin or America/New_York"
        ) from err


def parse_interval(text: str) -> tuple[int, int]:
    """Minutes after midnight of an "HH:MM-HH:MM" text; "24:00" ends the day.

    Raises:
        ValueError: not that form, a time out of range, or an end not after
            the start.
    """
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"opening hours {text!r} must look like 08:00-18:00")
    start, end = (_parse_clock(part.strip(), text) for part in parts)
    if end <= start:
        raise ValueError(f"opening hours {text!r} must end after they start")
    if start == MINUTES_PER_DAY:
        raise ValueError(f"opening hours {text!r} cannot start at 24:00")
    return start, end


def _weekly_hours(
    hours: Mapping[str, Sequence[str]],
) -> dict[int, list[tuple[int, int]]]:
    unknown = sorted(set(hours) - set(WEEKDAYS))
    if unknown:
        raise ValueError(
            f"unknown weekdays {', '.join(unknown)}; use {', '.join(WEEKDAYS)}"
        )
    weekly = {}
    for number, weekday in enumerate(WEEKDAYS):
        intervals = sorted(parse_interval(text) for text in hours.get(weekday, ()))
        for (_, end), (start, _) in pairwise(intervals):
            if start < end:
                raise ValueError(f"{weekday}: opening hours overlap")
        weekly[number] = intervals

    open_minutes = sum(end - start for day in weekly.values() for start, end in day)
    if open_minutes == 0:
        raise ValueError("the calendar is never open; give hours for some weekday")
    if open_minutes == 7 * MINUTES_PER_DAY:
        raise ValueError(
            f"the calendar is never closed; use the built-in "
            f"{TWENTY_FOUR_SEVEN_NAME!r} calendar instead"
        )
    return weekly


def _parse_clock(text: str, whole: str) -> int:
    hour, _, minute = text.partition(":")
    if not (hour.isdigit() and minute.isdigit() and len(minute) == 2):
        raise ValueError(f"opening hours {whole!r} must look like 08:00-18:00")
    minutes = int(hour) * 60 + int(minute)
    if int(minute) >= 60 or minutes > MINUTES_PER_DAY:
        raise ValueError(f"opening hours {whole!r}: {text} is not a time of day")
    return minutes


def _require_aware(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"datetime {moment.isoformat()} needs a timezone")


class _Union(Calendar):
    def __init__(self, name: str, parts: Sequence[Calendar]) -> None:
        super().__init__(name)
        self._parts = tuple(parts)

    def open_intervals(self, since: datetime) -> Iterator[Interval]:
        streams = [part.open_intervals(since) for part in self._parts]
        heads = [next(stream, None) for stream in streams]
        covered_until: datetime | None = None
        while True:
            live = [(head, index) for index, head in enumerate(heads) if head]
            if not live:
                return
            (opens, closes), index = min(live)
            heads[index] = next(streams[index], None)
            # Pieces already covered are trimmed rather than merged: merging
            # would wait for the end of an interval that may never come.
            if covered_until is not None:
                if closes <= covered_until:
                    continue
                opens = max(opens, covered_until)
            yield opens, closes
            if closes == _END_OF_TIME:
                return
            covered_until = closes


class _AfterHours(Calendar):
    def __init__(self, calendar: Calendar) -> None:
        super().__init__(f"after hours of {calendar.name}")
        self._calendar = calendar

    def open_intervals(self, since: datetime) -> Iterator[Interval]:
        cursor = since.astimezone(UTC)
        for opens, closes in self._calendar.open_intervals(since):
            if opens > cursor:
                yield cursor, opens
            cursor = max(cursor, closes)
            if cursor == _END_OF_TIME:
                return
        yield cursor, _END_OF_TIME


class _Excluding(Calendar):
    def __init__(self, calendar: Calendar, periods: Iterable[Interval]) -> None:
        super().__init__(calendar.name)
        self._calendar = calendar
        given = list(periods)
        _require_aware(*(moment for period in given for moment in period))
        self._periods = sorted((start, end) for start, end in given if end > start)

    def open_intervals(self, since: datetime) -> Iterator[Interval]:
        # A cut can leave a piece of the first interval before `since`.
        for opens, closes in self._pieces(since):
            if closes > since:
                yield opens, closes

    def _pieces(self, since: datetime) -> Iterator[Interval]:
        periods = self._periods
        first = 0
        for opens, closes in self._calendar.open_intervals(since):
            while first < len(periods) and periods[first][1] <= opens:
                first += 1
            index = first
            while opens < closes and index < len(periods):
                start, end = periods[index]
                if start >= closes:
                    break
                if start > opens:
                    yield opens, start
                opens = max(opens, end)
                index += 1
            if opens >= _END_OF_TIME:
                return
            if opens < closes:
                yield opens, closes
