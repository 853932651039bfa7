from __future__ import annotations

import pytest

from features.errors import (
    InvalidTicketError,
    PayloadTooLargeError,
    UnknownChannelError,
)
from features.schema import MAX_BODY_CHARS, MAX_SUBJECT_CHARS, Ticket, parse_ticket


def _ticket(**changes):
    data = {"id": "T-1", "channel": "email", "subject": "Refund", "body": "Please help"}
    data.update(changes)
    return data


def test_minimal_ticket_needs_only_id_channel_subject_and_body():
    ticket = parse_ticket(_ticket())

    assert isinstance(ticket, Ticket)
    assert ticket.created_at.tzinfo is not None
    assert ticket.attachments == []


def test_body_over_the_limit_is_payload_too_large_naming_field_and_limit():
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_ticket(_ticket(body="x" * (MAX_BODY_CHARS + 1)))

    assert caught.value.problems[0].field == "body"
    assert str(MAX_BODY_CHARS) in str(caught.value)


def test_subject_over_the_limit_names_the_subject():
    with pytest.raises(PayloadTooLargeError, match="subject"):
        parse_ticket(_ticket(subject="s" * (MAX_SUBJECT_CHARS + 1)))


def test_unknown_channel_lists_the_known_ones():
    with pytest.raises(UnknownChannelError) as caught:
        parse_ticket(_ticket(channel="fax"))

    assert "channel" in str(caught.value)
    assert "email" in str(caught.value)


@pytest.mark.parametrize(
    "missing", [pytest.param("id", id="id"), pytest.param("channel", id="channel")]
)
def test_missing_required_field_is_named(missing):
    data = _ticket()
    del data[missing]

    with pytest.raises(InvalidTicketError) as caught:
        parse_ticket(data)

    assert [p.field for p in caught.value.problems] == [missing]


def test_every_invalid_field_is_listed_not_only_the_first():
    with pytest.raises(InvalidTicketError) as caught:
        parse_ticket(_ticket(id="", account_tier="platinum", attachments="nope"))

    fields = {problem.field for problem in caught.value.problems}
    assert {"id", "account_tier", "attachments"} <= fields


def test_lone_surrogate_is_rejected_as_invalid_utf8():
    with pytest.raises(InvalidTicketError, match="UTF-8"):
        parse_ticket(_ticket(body="broken \ud800 text"))


def test_ticket_without_subject_or_body_is_rejected():
    with pytest.raises(InvalidTicketError, match="subject or a body"):
        parse_ticket(_ticket(subject=" ", body=""))


def test_unexpected_field_is_rejected_by_name():
    with pytest.raises(InvalidTicketError, match="colour"):
        parse_ticket(_ticket(colour="red"))


def test_non_object_payload_is_invalid():
    with pytest.raises(InvalidTicketError, match="expected an object"):
        parse_ticket(["not", "a", "ticket"])
