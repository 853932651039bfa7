"""Chat transcripts (web chat, messenger widgets) normalised into a `Ticket`.

The body is the customer's turns only. Agent and bot turns are dropped and
counted in metadata: bot greetings and menus are the same in every transcript,
and agent turns are proposed answers rather than the problem, so both would
pull the classifier toward the script instead of what the customer asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from features.intake._shared import (
    Problems,
    build_ticket,
    content_id,
    fail,
    optional_identifier,
    optional_text,
    optional_time,
    require_object,
    shorten,
    type_name,
)
from features.schema import Ticket

CHANNEL = "chat"
MAX_CHAT_TURNS = 500
ROLES = ("customer", "agent", "bot")


@dataclass(frozen=True)
class _Turn:
    role: str
    text: str
    at: datetime | None


def normalize_chat(payload: dict[str, Any], *, ticket_id: str | None = None) -> Ticket:
    """Turn a chat transcript into a `Ticket`.

    Args:
        payload: `{"id"?, "turns": [{"role", "text", "at"?}], "customer"?:
            {"email"?, "name"?, "id"?, "account_id"?}, "account_id"?,
            "product"?, "region"?, "source"?, "started_at"?}`. Other keys are
            ignored.
        ticket_id: overrides the transcript's own id.

    Raises:
        PayloadTooLargeError: more than `MAX_CHAT_TURNS` turns, or a text over
            the schema's limits.
        InvalidTicketError: any other invalid field, each one named
            (`turns.3.text`), or no customer turn with text.
    """
    data = require_object(payload, CHANNEL)
    problems = Problems(CHANNEL)
    turns = _read_turns(data, problems)
    customer = _read_customer(data, problems)
    own_id = optional_identifier(data, "id", problems)
    account_id = optional_identifier(data, "account_id", problems)
    started_at = optional_time(data, "started_at", problems)
    fields: dict[str, Any] = {
        "product": optional_text(data, "product", problems),
        "region": optional_text(data, "region", problems),
        "source_system": optional_text(data, "source", problems),
    }
    problems.raise_if_any()

    texts = [turn.text.strip() for turn in turns if turn.role == "customer"]
    texts = [text for text in texts if text]
    if not texts:
        fail(CHANNEL, "turns", "no customer turn has text; a chat ticket needs one")

    fields.update(
        id=ticket_id or own_id or content_id(CHANNEL, *texts),
        channel=CHANNEL,
        subject=shorten(texts[0]),
        body="\n".join(texts),
        requester=customer.get("email"),
        account_id=account_id or customer.get("account_id"),
        created_at=started_at or next((turn.at for turn in turns if turn.at), None),
        metadata=_metadata(turns, customer),
    )
    return build_ticket(fields, CHANNEL)


def _read_turns(data: dict[str, Any], problems: Problems) -> list[_Turn]:
    raw_turns = data.get("turns")
    if raw_turns is None:
        problems.add("turns", "required field is missing")
        return []
    if not isinstance(raw_turns, list):
        problems.add("turns", f"expected an array, got {type_name(raw_turns)}")
        return []
    if len(raw_turns) > MAX_CHAT_TURNS:
        limit = f"{MAX_CHAT_TURNS} turns"
        problems.add("turns", f"too many turns: {len(raw_turns)}", limit, size=True)
        return []

    turns = []
    for index, raw in enumerate(raw_turns):
        turn = _read_turn(raw, f"turns.{index}", problems)
        if turn is not None:
            turns.append(turn)
    return turns


def _read_turn(raw: object, where: str, problems: Problems) -> _Turn | None:
    if not isinstance(raw, dict):
        problems.add(where, f"expected an object, got {type_name(raw)}")
        return None

    role = raw.get("role")
    if not isinstance(role, str) or role not in ROLES:
        shown = repr(role[:40]) if isinstance(role, str) else type_name(role)
        expected = ", ".join(ROLES)
        problems.add(f"{where}.role", f"expected one of {expected}, got {shown}")
        role = None
    text = raw.get("text")
    if text is None:
        problems.add(f"{where}.text", "required field is missing")
    elif not isinstance(text, str):
        problems.add(f"{where}.text", f"expected a string, got {type_name(text)}")
    at = optional_time(raw, "at", problems, field=f"{where}.at")

    if role is None or not isinstance(text, str):
        return None
    return _Turn(role, text, at)


def _read_customer(data: dict[str, Any], problems: Problems) -> dict[str, str]:
    """The customer's known fields, as strings; unknown ones are ignored."""
    customer = data.get("customer")
    if customer is None:
        return {}
    if not isinstance(customer, dict):
        problems.add("customer", f"expected an object, got {type_name(customer)}")
        return {}

    known = {
        "email": optional_text(customer, "email", problems, field="customer.email"),
        "name": optional_text(customer, "name", problems, field="customer.name"),
        "id": optional_identifier(customer, "id", problems, field="customer.id"),
        "account_id": optional_identifier(
            customer, "account_id", problems, field="customer.account_id"
        ),
    }
    return {key: value for key, value in known.items() if value is not None}


def _metadata(turns: list[_Turn], customer: dict[str, str]) -> dict[str, Any]:
    """Turn counts by role, and the customer's name and id when given."""
    metadata: dict[str, Any] = {"turn_count": len(turns)}
    for role in ROLES:
        metadata[f"{role}_turns"] = sum(turn.role == role for turn in turns)
    for key in ("name", "id"):
        if key in customer:
            metadata[f"customer_{key}"] = customer[key]
    return metadata
