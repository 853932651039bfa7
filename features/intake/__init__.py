"""Intake: one adapter per channel, each turning a raw payload into a `Ticket`.

`normalize` picks the adapter by channel name; the adapters can also be called
directly. Every adapter ends in `parse_ticket`, so the schema's limits are
enforced in one place, and every failure is an `InvalidTicketError` (or one of
its subclasses) naming the field, never another exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from features.errors import FieldProblem, PayloadTooLargeError, UnknownChannelError
from features.intake._shared import fail, require_object
from features.intake.alertmanager import normalize_alertmanager
from features.intake.chat import normalize_chat
from features.intake.email import normalize_email
from features.intake.portal import normalize_portal
from features.schema import Channel, Ticket, parse_ticket

__all__ = [
    "MAX_RAW_JSON_BYTES",
    "normalize",
    "normalize_alertmanager",
    "normalize_api",
    "normalize_chat",
    "normalize_email",
    "normalize_portal",
]

# Raw JSON handed to `normalize` as bytes or text; the same bound as a raw email.
MAX_RAW_JSON_BYTES = 2 * 1024 * 1024


def normalize_api(payload: dict[str, Any], *, ticket_id: str | None = None) -> Ticket:
    """Validate a ticket that API callers have already normalised.

    The payload is a `Ticket` as JSON; "channel" defaults to "api" (a caller
    relaying, say, an email it parsed itself may say "email").

    Raises:
        InvalidTicketError: (or a subclass) as `parse_ticket` does.
    """
    data = require_object(payload, Channel.API.value)
    fields = {"channel": Channel.API.value, **data}
    if ticket_id:
        fields["id"] = ticket_id
    return parse_ticket(fields, channel=Channel.API.value)


_ADAPTERS: dict[str, Callable[..., Ticket]] = {
    Channel.EMAIL.value: normalize_email,
    Channel.CHAT.value: normalize_chat,
    Channel.PORTAL.value: normalize_portal,
    Channel.ALERT.value: normalize_alertmanager,
    Channel.API.value: normalize_api,
}


def normalize(
    channel: str,
    payload: bytes | str | dict[str, Any] | list[Any],
    *,
    ticket_id: str | None = None,
) -> Ticket:
    """Normalise a raw payload from `channel` into a validated `Ticket`.

    Args:
        channel: "email", "chat", "portal", "alert" (Alertmanager webhook) or
            "api"; case and surrounding spaces are ignored.
        payload: raw RFC 5322 bytes or text for "email"; for the others a
            decoded JSON object, or its JSON text or bytes.
        ticket_id: the id to give the ticket, instead of the payload's own.

    Raises:
        UnknownChannelError: `channel` is not one listed above.
        PayloadTooLargeError: the payload or one of its fields is over a limit.
        InvalidTicketError: anything else wrong with the payload, by field.
    """
    name = channel.strip().lower() if isinstance(channel, str) else ""
    adapter = _ADAPTERS.get(name)
    if adapter is None:
        shown = (
            repr(channel[:40]) if isinstance(channel, str) else type(channel).__name__
        )
        known = ", ".join(_ADAPTERS)
        problem = FieldProblem("channel", f"unknown channel {shown}; known: {known}")
        raise UnknownChannelError([problem])

    if name != Channel.EMAIL.value:
        payload = _decode_json(payload, name)
    return adapter(payload, ticket_id=ticket_id)


def _decode_json(payload: object, channel: str) -> Any:
    """JSON text or bytes decoded; anything else is left for the adapter."""
    if not isinstance(payload, str | bytes | bytearray):
        return payload
    if len(payload) > MAX_RAW_JSON_BYTES:
        unit = "characters" if isinstance(payload, str) else "bytes"
        problem = FieldProblem(
            "payload",
            f"JSON payload is {len(payload)} {unit}",
            f"{MAX_RAW_JSON_BYTES} bytes",
        )
        raise PayloadTooLargeError([problem], channel=channel)
    try:
        return json.loads(payload)
    except RecursionError as err:
        fail(channel, "payload", "JSON is nested too deeply to read", cause=err)
    except ValueError as err:
        # JSONDecodeError and UnicodeDecodeError both say where it went wrong.
        fail(channel, "payload", f"not valid JSON: {err}", cause=err)
