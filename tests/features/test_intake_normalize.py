"""`normalize` picks the adapter by channel, and decodes JSON sent as text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from features.errors import (
    InvalidTicketError,
    PayloadTooLargeError,
    UnknownChannelError,
)
from features.intake import MAX_RAW_JSON_BYTES, normalize, normalize_api
from features.schema import Channel

CHAT = {"id": "c-1", "turns": [{"role": "customer", "text": "Refund please"}]}
PORTAL = {"subject": "Export broken", "description": "Nothing happens."}
ALERT = {"alerts": [{"labels": {"alertname": "DiskFull", "severity": "critical"}}]}
API = {"id": "T-1", "subject": "Login fails", "body": "SSO loops."}
EMAIL = b"From: ana@example.com\r\nSubject: Printer\r\n\r\nIt is offline.\r\n"


@pytest.mark.parametrize(
    ("channel", "payload", "expected"),
    [
        pytest.param("email", EMAIL, Channel.EMAIL, id="email"),
        pytest.param("chat", CHAT, Channel.CHAT, id="chat"),
        pytest.param("portal", PORTAL, Channel.PORTAL, id="portal"),
        pytest.param("alert", ALERT, Channel.ALERT, id="alert"),
        pytest.param("api", API, Channel.API, id="api"),
        pytest.param(" Chat ", CHAT, Channel.CHAT, id="case-and-spaces-ignored"),
    ],
)
def test_each_channel_goes_to_its_adapter(
    channel: str, payload: Any, expected: Channel
) -> None:
    assert normalize(channel, payload).channel is expected


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(json.dumps, id="text"),
        pytest.param(lambda value: json.dumps(value).encode(), id="bytes"),
    ],
)
def test_json_sent_as_text_or_bytes_is_decoded_first(encode: Any) -> None:
    assert normalize("alert", encode(ALERT)).severity == "critical"


def test_given_ticket_id_reaches_the_adapter() -> None:
    assert normalize("portal", PORTAL, ticket_id="T-77").id == "T-77"
    assert normalize("api", API, ticket_id="T-78").id == "T-78"


@pytest.mark.parametrize(
    "channel",
    [
        pytest.param("fax", id="unknown-name"),
        pytest.param("", id="empty"),
        pytest.param(None, id="not-a-string"),
        pytest.param(["chat"], id="a-list"),
    ],
)
def test_unknown_channel_is_refused_listing_the_known_ones(channel: Any) -> None:
    with pytest.raises(UnknownChannelError) as caught:
        normalize(channel, CHAT)

    assert caught.value.problems[0].field == "channel"
    for known in ("email", "chat", "portal", "alert", "api"):
        assert known in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param('{"turns": [', id="truncated"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf"),
        pytest.param("[" * 100_000, id="nested-too-deeply"),
        pytest.param("1" * 5_000, id="integer-too-long-to-convert"),
    ],
)
def test_invalid_json_is_refused_naming_the_payload(payload: str | bytes) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize("chat", payload)

    assert caught.value.problems[0].field == "payload"


def test_json_over_the_size_limit_is_refused_naming_the_limit() -> None:
    payload = json.dumps({**PORTAL, "description": "x" * MAX_RAW_JSON_BYTES})

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize("portal", payload)

    assert str(MAX_RAW_JSON_BYTES) in str(caught.value)


def test_api_ticket_may_name_its_own_channel() -> None:
    assert normalize_api({**API, "channel": "email"}).channel is Channel.EMAIL


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"subject": "no id"}, "id", id="id-missing"),
        pytest.param({**API, "channel": "fax"}, "channel", id="unknown-channel"),
        pytest.param({**API, "priority": "P1"}, "priority", id="unknown-field"),
        pytest.param([API], "payload", id="not-an-object"),
    ],
)
def test_invalid_api_ticket_is_refused_naming_the_field(
    payload: Any, field: str
) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize("api", payload)

    assert field in [problem.field for problem in caught.value.problems]
