"""Business-hours calendars: exact working time across weekends, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.calendar import (
    TWENTY_FOUR_SEVEN,
    BusinessCalendar,
    Calendar,
    after_hours,
    excluding,
    parse_interval,
    union,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS_8_TO_18 = {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


@pytest.fixture
def office() -> BusinessCalendar:
    # 2026-12-02 is a Wednesday.
    return BusinessCalendar(
        "office", "Europe/Berlin", WEEKDAYS_8_TO_18, holidays=[date(2026, 12, 2)]
    )


def test_working_time_skips_the_weekend(office: BusinessCalendar) -> None:
    friday_5pm = berlin(2026, 12, 4, 17, 0)
    monday_9am = berlin(2026, 12, 7, 9, 0)

    assert office.working_seconds(friday_5pm, monday_9am) == 2 * 3600


def test_due_time_runs_over_the_weekend(office: BusinessCalendar) -> None:
    due = office.add_working_time(berlin(2026, 12, 4, 17, 0), 2 * 3600)

    assert due == berlin(2026, 12, 7, 9, 0)
    assert due.tzinfo == UTC


def test_due_time_at_closing_is_closing_not_next_opening(
    office: BusinessCalendar,
) -> None:
    assert office.add_working_time(berlin(2026, 12, 4, 17, 0), 3600) == berlin(
        2026, 12, 4, 18, 0
    )


def test_a_holiday_is_closed_all_day(office: BusinessCalendar) -> None:
    tuesday_5pm = berlin(2026, 12, 1, 17, 0)

    assert office.add_working_time(tuesday_5pm, 2 * 3600) == berlin(2026, 12, 3, 9, 0)
    assert office.working_seconds(tuesday_5pm, berlin(2026, 12, 3, 8, 0)) == 3600
    assert not office.is_open(berlin(2026, 12, 2, 12, 0))


def test_due_time_across_spring_forward_keeps_local_opening_hours(
    office: BusinessCalendar,
) -> None:
    # Europe/Berlin moves from UTC+1 to UTC+2 on Sunday 2027-03-28.
    friday_5pm_cet = berlin(2027, 3, 26, 17, 0)

    due = office.add_working_time(friday_5pm_cet, 2 * 3600)

    assert due == berlin(2027, 3, 29, 9, 0)
    assert due == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
    assert (due - friday_5pm_cet) == timedelta(days=2, hours=15)


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        pytest.param(date(2027, 3, 28), 23, id="spring-forward-day-has-23-hours"),
        pytest.param(date(2026, 10, 25), 25, id="fall-back-day-has-25-hours"),
        pytest.param(date(2026, 11, 1), 24, id="ordinary-day-has-24-hours"),
    ],
)
def test_a_whole_local_day_follows_the_dst_change(day: date, hours: int) -> None:
    sundays = BusinessCalendar("sundays", "Europe/Berlin", {"sun": ["00:00-24:00"]})
    start = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)

    elapsed = sundays.working_seconds(start, start + timedelta(days=2))

    assert elapsed == hours * 3600


def test_an_opening_in_the_dst_gap_moves_forward_by_the_gap() -> None:
    night = BusinessCalendar("night", "Europe/Berlin", {"sun": ["02:30-04:00"]})

    opens = night.next_open(datetime(2027, 3, 27, 12, 0, tzinfo=UTC))

    # 02:30 does not exist that night; it reads as 03:30 CEST.
    assert opens == berlin(2027, 3, 28, 3, 30)
    assert night.working_seconds(opens, opens + timedelta(hours=2)) == 30 * 60


def test_working_time_runs_on_across_midnight() -> None:
    late = BusinessCalendar(
        "late", "Europe/Berlin", {"mon": ["22:00-24:00"], "tue": ["00:00-02:00"]}
    )

    due = late.add_working_time(berlin(2026, 11, 30, 22, 0), 3 * 3600)

    assert due == berlin(2026, 12, 1, 1, 0)
    assert late.is_open(berlin(2026, 12, 1, 0, 0))


def test_several_intervals_a_day_skip_the_break() -> None:
    split = BusinessCalendar(
        "split", "America/New_York", {"mon": ["09:00-12:30", "13:30-18:00"]}
    )
    new_york = ZoneInfo("America/New_York")
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=new_york)

    assert split.add_working_time(noon, 3600) == datetime(
        2026, 11, 30, 14, 0, tzinfo=new_york
    )
    assert not split.is_open(datetime(2026, 11, 30, 13, 0, tzinfo=new_york))


def test_is_open_includes_opening_and_excludes_closing(
    office: BusinessCalendar,
) -> None:
    assert office.is_open(berlin(2026, 12, 4, 8, 0))
    assert not office.is_open(berlin(2026, 12, 4, 18, 0))
    assert not office.is_open(berlin(2026, 12, 5, 12, 0))


def test_next_open_from_the_weekend_is_monday_morning(
    office: BusinessCalendar,
) -> None:
    assert office.next_open(berlin(2026, 12, 5, 12, 0)) == berlin(2026, 12, 7, 8, 0)
    assert office.next_open(berlin(2026, 12, 4, 9, 0)) == berlin(2026, 12, 4, 9, 0)


def test_end_before_start_counts_no_working_time(office: BusinessCalendar) -> None:
    assert office.working_seconds(berlin(2026, 12, 7, 12), berlin(2026, 12, 7, 9)) == 0


def test_naive_datetimes_are_refused(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="needs a timezone"):
        office.working_seconds(datetime(2026, 12, 7, 9), berlin(2026, 12, 7, 12))


def test_twenty_four_seven_counts_wall_clock_time() -> None:
    saturday = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)

    assert TWENTY_FOUR_SEVEN.add_working_time(saturday, 900) == saturday + timedelta(
        minutes=15
    )
    assert TWENTY_FOUR_SEVEN.working_seconds(
        saturday, saturday + timedelta(days=2)
    ) == (2 * 86400)
    assert TWENTY_FOUR_SEVEN.is_open(saturday)


def test_after_hours_is_open_exactly_when_the_calendar_is_closed(
    office: BusinessCalendar,
) -> None:
    night = after_hours(office)
    friday_6pm = berlin(2026, 12, 4, 18, 0)

    assert night.is_open(friday_6pm)
    assert not night.is_open(berlin(2026, 12, 4, 12, 0))
    # Friday 18:00 to Monday 08:00.
    assert night.working_seconds(friday_6pm, berlin(2026, 12, 7, 12)) == 62 * 3600


def test_a_calendar_with_its_after_hours_runs_like_24x7(
    office: BusinessCalendar,
) -> None:
    always = union("covered", office, after_hours(office))
    start = berlin(2026, 12, 4, 17, 0)

    assert always.working_seconds(start, start + timedelta(days=3)) == 3 * 86400
    assert always.add_working_time(start, 5 * 3600) == start + timedelta(hours=5)


def test_excluded_periods_stop_the_clock(office: BusinessCalendar) -> None:
    paused = excluding(
        office, [(berlin(2026, 12, 7, 9, 0), berlin(2026, 12, 7, 10, 30))]
    )
    monday_8am = berlin(2026, 12, 7, 8, 0)

    assert paused.working_seconds(monday_8am, berlin(2026, 12, 7, 12)) == 2.5 * 3600
    assert paused.add_working_time(monday_8am, 2 * 3600) == berlin(2026, 12, 7, 11, 30)
    assert not paused.is_open(berlin(2026, 12, 7, 9, 30))


@pytest.mark.parametrize(
    ("hours", "timezone", "message"),
    [
        pytest.param(
            WEEKDAYS_8_TO_18, "Europe/Berln", "unknown IANA timezone", id="tz"
        ),
        pytest.param({"mon": ["8-18"]}, "UTC", "must look like", id="malformed"),
        pytest.param({"mon": ["18:00-08:00"]}, "UTC", "end after", id="backwards"),
        pytest.param({"mon": ["08:60-09:00"]}, "UTC", "not a time", id="bad-minute"),
        pytest.param(
            {"mon": ["08:00-12:00", "11:00-13:00"]}, "UTC", "overlap", id="overlap"
        ),
        pytest.param({"monday": ["08:00-12:00"]}, "UTC", "unknown weekdays", id="day"),
        pytest.param({}, "UTC", "never open", id="never-open"),
        pytest.param(
            {
                day: ["00:00-24:00"]
                for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
            "UTC",
            "never closed",
            id="always-open",
        ),
    ],
)
def test_invalid_calendars_are_refused(
    hours: dict[str, list[str]], timezone: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar("bad", timezone, hours)


def test_parse_interval_reads_midnight_as_the_end_of_the_day() -> None:
    assert parse_interval("22:00-24:00") == (22 * 60, 24 * 60)


_OFFICE = BusinessCalendar(
    "office", "Europe/Berlin", WEEKDAYS_8_TO_18, holidays=[date(2027, 3, 29)]
)
_LONDON_DESK = BusinessCalendar("desk", "Europe/London", {"sat": ["10:00-14:00"]})
# The office, plus whenever the London desk is closed, less two pauses: a
# calendar built from every combinator.
_COMPOSED = excluding(
    union("covered", _OFFICE, after_hours(_LONDON_DESK)),
    [
        (datetime(2027, 3, 26, 12, tzinfo=UTC), datetime(2027, 3, 27, 11, tzinfo=UTC)),
        (datetime(2027, 3, 30, 7, tzinfo=UTC), datetime(2027, 3, 30, 9, tzinfo=UTC)),
    ],
)
# Around the spring-forward weekend, with a holiday on the Monday after it.
_MOMENTS = st.datetimes(
    min_value=datetime(2027, 3, 20),
    max_value=datetime(2027, 4, 5),
    timezones=st.just(UTC),
)


@pytest.mark.parametrize(
    "calendar",
    [pytest.param(_OFFICE, id="business"), pytest.param(_COMPOSED, id="composed")],
)
@settings(max_examples=150, deadline=None)
@given(start=_MOMENTS, seconds=st.integers(min_value=0, max_value=5 * 36_000))
def test_due_time_is_the_earliest_instant_with_that_much_working_time(
    calendar: Calendar, start: datetime, seconds: int
) -> None:
    due = calendar.add_working_time(start, seconds)

    assert calendar.working_seconds(start, due) == seconds
    if seconds:
        before = due - timedelta(microseconds=1)
        assert calendar.working_seconds(start, before) < seconds
        assert calendar.is_open(before)
