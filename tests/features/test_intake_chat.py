"""Chat transcripts into tickets: the customer's words, invalid shapes named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from features.errors import InvalidTicketError, PayloadTooLargeError
from features.intake._shared import MAX_DERIVED_SUBJECT_CHARS
from features.intake.chat import MAX_CHAT_TURNS, normalize_chat
from features.schema import MAX_BODY_CHARS, Channel


def transcript(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": "chat-8812",
        "turns": [
            {
                "role": "bot",
                "text": "Hi! How can I help?",
                "at": "2024-06-04T09:00:00Z",
            },
            {
                "role": "customer",
                "text": "I was charged twice for my subscription",
                "at": "2024-06-04T09:00:05Z",
            },
            {"role": "agent", "text": "Sorry to hear that, checking now."},
            {"role": "customer", "text": "Both charges are on 3 June."},
        ],
        "customer": {"email": "ana@example.com", "name": "Ana", "id": 991},
        "account_id": "ACME-1",
        "product": "billing",
        "source": "intercom",
    }
    payload.update(overrides)
    return payload


def test_transcript_becomes_a_ticket_from_the_customer_turns() -> None:
    ticket = normalize_chat(transcript())

    assert ticket.channel is Channel.CHAT
    assert ticket.id == "chat-8812"
    assert ticket.subject == "I was charged twice for my subscription"
    assert ticket.body == (
        "I was charged twice for my subscription\nBoth charges are on 3 June."
    )
    assert ticket.requester == "ana@example.com"
    assert ticket.account_id == "ACME-1"
    assert ticket.product == "billing"
    assert ticket.source_system == "intercom"
    assert ticket.created_at == datetime(2024, 6, 4, 9, 0, 0, tzinfo=UTC)


def test_agent_and_bot_turns_are_left_out_of_the_body_but_counted() -> None:
    ticket = normalize_chat(transcript())

    assert "How can I help" not in ticket.body
    assert "checking now" not in ticket.body
    assert ticket.metadata["turn_count"] == 4
    assert ticket.metadata["customer_turns"] == 2
    assert ticket.metadata["agent_turns"] == 1
    assert ticket.metadata["bot_turns"] == 1
    assert ticket.metadata["customer_id"] == "991"


def test_long_first_turn_is_shortened_for_the_subject_at_a_word() -> None:
    text = "my dashboard " * 40
    ticket = normalize_chat(transcript(turns=[{"role": "customer", "text": text}]))

    assert len(ticket.subject) <= MAX_DERIVED_SUBJECT_CHARS
    assert ticket.subject.endswith("dashboard…")
    assert ticket.body == text.strip()


def test_transcript_without_id_gets_a_stable_content_id() -> None:
    payload = transcript(id=None)

    assert normalize_chat(payload).id == normalize_chat(payload).id
    assert normalize_chat(payload).id.startswith("chat-")
    assert normalize_chat(payload, ticket_id="T-9").id == "T-9"


def test_account_id_comes_from_the_customer_when_not_given_at_the_top() -> None:
    payload = transcript(account_id=None, customer={"account_id": "ACME-2"})

    assert normalize_chat(payload).account_id == "ACME-2"


def test_started_at_wins_over_the_first_turn_time() -> None:
    payload = transcript(started_at="2024-06-04T08:59:00+02:00")

    assert normalize_chat(payload).created_at == datetime(2024, 6, 4, 6, 59, tzinfo=UTC)


def test_unknown_keys_are_ignored() -> None:
    assert normalize_chat(transcript(widget={"theme": "dark"})).id == "chat-8812"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"id": "x"}, "turns", id="turns-missing"),
        pytest.param(transcript(turns={"0": "hi"}), "turns", id="turns-not-a-list"),
        pytest.param(transcript(turns=[]), "turns", id="no-turns"),
        pytest.param(transcript(turns=["hello"]), "turns.0", id="turn-not-an-object"),
        pytest.param(
            transcript(
                turns=[{"role": "customer", "text": "a"}] * 3 + [{"role": "customer"}]
            ),
            "turns.3.text",
            id="turn-without-text",
        ),
        pytest.param(
            transcript(turns=[{"role": "customer", "text": 12}]),
            "turns.0.text",
            id="text-not-a-string",
        ),
        pytest.param(
            transcript(turns=[{"role": "manager", "text": "hi"}]),
            "turns.0.role",
            id="unknown-role",
        ),
        pytest.param(
            transcript(turns=[{"role": "customer", "text": "hi", "at": "noon"}]),
            "turns.0.at",
            id="bad-time",
        ),
        pytest.param(
            transcript(turns=[{"role": "bot", "text": "Hi!"}]),
            "turns",
            id="no-customer-turn",
        ),
        pytest.param(
            transcript(turns=[{"role": "customer", "text": "  "}]),
            "turns",
            id="customer-turn-blank",
        ),
        pytest.param(transcript(customer="ana"), "customer", id="customer-not-object"),
        pytest.param(
            transcript(customer={"email": ["a@b.c"]}),
            "customer.email",
            id="customer-email-not-string",
        ),
        pytest.param(transcript(id=1.5), "id", id="id-not-string-or-int"),
        pytest.param(transcript(started_at=20240604), "started_at", id="bad-start"),
        pytest.param(["not", "an", "object"], "payload", id="payload-a-list"),
    ],
)
def test_invalid_transcript_is_refused_naming_the_field(
    payload: Any, field: str
) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize_chat(payload)

    assert field in [problem.field for problem in caught.value.problems]
    assert f"{field}:" in str(caught.value)


def test_every_invalid_turn_is_listed_not_only_the_first() -> None:
    turns = [{"role": "customer"}, {"role": "customer", "text": None}, {"text": "x"}]

    with pytest.raises(InvalidTicketError) as caught:
        normalize_chat(transcript(turns=turns))

    fields = [problem.field for problem in caught.value.problems]
    assert fields == ["turns.0.text", "turns.1.text", "turns.2.role"]


def test_too_many_turns_is_refused_as_too_large_naming_the_limit() -> None:
    turns = [{"role": "customer", "text": "hi"}] * (MAX_CHAT_TURNS + 1)

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_chat(transcript(turns=turns))

    assert "turns" in str(caught.value)
    assert f"{MAX_CHAT_TURNS} turns" in str(caught.value)


def test_body_over_the_schema_limit_is_refused_as_too_large() -> None:
    turns = [{"role": "customer", "text": "x" * (MAX_BODY_CHARS // 2)}] * 3

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_chat(transcript(turns=turns))

    assert "body" in str(caught.value)
    assert str(MAX_BODY_CHARS) in str(caught.value)
