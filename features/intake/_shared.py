"""Helpers every intake adapter uses: collecting problems, ids, text, times."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from typing import Any, NoReturn

from features.errors import FieldProblem, InvalidTicketError, PayloadTooLargeError
from features.schema import MAX_ID_CHARS, Ticket, parse_ticket

log = logging.getLogger(__name__)

# Subjects an adapter derives from free text (a chat's first turn, an alert's
# summary) are cut here; the schema's subject limit is for subjects people typed.
MAX_DERIVED_SUBJECT_CHARS = 120

# A payload with hundreds of bad fields makes an unreadable 422; the first few
# are enough to fix the sender.
MAX_PROBLEMS_LISTED = 20
# RFC 5321's limit on a forward path: longer is not a usable address.
MAX_ADDRESS_CHARS = 320

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._@+=-]+")
# Deliberately loose (no quoted local parts, a dot in the domain): it tells an
# address from a name or a typo, it does not validate deliverability.
_ADDRESS = re.compile(r"[^@\s\\\"<>()\[\],;:]+@[\w-]+(\.[\w-]+)+")
_WHITESPACE = re.compile(r"\s+")


class Problems:
    """Collects every invalid field of one payload, then raises them together."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._items: list[FieldProblem] = []
        self._all_sizes = True

    def add(
        self, field: str, message: str, limit: str | None = None, *, size: bool = False
    ) -> None:
        """Record one problem; `size` marks an over-the-limit one (HTTP 413)."""
        self._items.append(FieldProblem(field, message, limit))
        self._all_sizes = self._all_sizes and size

    def raise_if_any(self) -> None:
        """Raise the collected problems, if any, as one error."""
        if not self._items:
            return
        listed = self._items[:MAX_PROBLEMS_LISTED]
        hidden = len(self._items) - len(listed)
        if hidden:
            listed.append(FieldProblem("payload", f"{hidden} more problems not listed"))
        error_type = PayloadTooLargeError if self._all_sizes else InvalidTicketError
        raise error_type(listed, channel=self.channel)


def fail(
    channel: str,
    field: str,
    message: str,
    limit: str | None = None,
    *,
    cause: BaseException | None = None,
) -> NoReturn:
    """Raise a single invalid-field problem at once, chained to `cause`."""
    error = InvalidTicketError([FieldProblem(field, message, limit)], channel=channel)
    if cause is not None:
        raise error from cause
    raise error


def type_name(value: object) -> str:
    """The JSON-ish name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def require_object(payload: object, channel: str) -> dict[str, Any]:
    """The payload itself, if it is a JSON object; otherwise a clear error."""
    if not isinstance(payload, dict):
        fail(channel, "payload", f"expected a JSON object, got {type_name(payload)}")
    return payload


def optional_text(
    data: dict[str, Any], key: str, problems: Problems, *, field: str | None = None
) -> str | None:
    """`data[key]` if it is a string; None when absent or null."""
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.add(field or key, f"expected a string, got {type_name(value)}")
    return None


def optional_identifier(
    data: dict[str, Any], key: str, problems: Problems, *, field: str | None = None
) -> str | None:
    """An id given as a string or an integer (JSON callers send both)."""
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    problems.add(field or key, f"expected a string or integer, got {type_name(value)}")
    return None


def optional_time(
    data: dict[str, Any], key: str, problems: Problems, *, field: str | None = None
) -> datetime | None:
    """An ISO 8601 time string parsed to a datetime; None when absent.

    A time without an offset is taken as UTC, as the schema does, so times from
    one payload always compare.
    """
    value = optional_text(data, key, problems, field=field)
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.add(field or key, f"not an ISO 8601 time: {value[:40]!r}")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def looks_like_address(text: str) -> bool:
    """Whether `text` has the shape of an email address (name@example.com)."""
    return len(text) <= MAX_ADDRESS_CHARS and bool(_ADDRESS.fullmatch(text))


def content_id(channel: str, *parts: str) -> str:
    """A stable id from the content, for payloads that carry none."""
    digest = hashlib.sha256()
    for part in parts:
        # surrogatepass: ids must never fail on text the schema will refuse later.
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return f"{channel}-{digest.hexdigest()[:32]}"


def sanitize_id(raw: str) -> str | None:
    """A raw external id made safe for URLs and logs, within the id limit."""
    cleaned = _UNSAFE_ID_CHARS.sub("-", raw.strip().strip("<>")).strip("-")
    if not cleaned:
        return None
    if len(cleaned) <= MAX_ID_CHARS:
        return cleaned
    # Keep a readable prefix; the hash keeps long ids that share it distinct.
    suffix = hashlib.sha256(cleaned.encode()).hexdigest()[:16]
    return f"{cleaned[: MAX_ID_CHARS - len(suffix) - 1]}-{suffix}"


def shorten(text: str, max_chars: int = MAX_DERIVED_SUBJECT_CHARS) -> str:
    """One line of at most `max_chars`, cut at a word boundary when possible."""
    line = _WHITESPACE.sub(" ", text).strip()
    if len(line) <= max_chars:
        return line
    cut = line[: max_chars - 1]
    word_end = cut.rfind(" ")
    if word_end > max_chars // 2:
        cut = cut[:word_end]
    return cut.rstrip() + "…"


def build_ticket(fields: dict[str, Any], channel: str) -> Ticket:
    """Validate the adapter's fields through `parse_ticket`, dropping unset ones.

    Every limit lives in the schema, so adapters never check sizes the schema
    already checks.
    """
    data = {key: value for key, value in fields.items() if value is not None}
    try:
        ticket = parse_ticket(data, channel=channel)
    except InvalidTicketError as err:
        log.debug(
            "ticket rejected",
            extra={"channel": channel, "fields": [p.field for p in err.problems]},
        )
        raise
    log.debug(
        "ticket normalised",
        extra={
            "ticket_id": ticket.id,
            "channel": channel,
            "subject_chars": len(ticket.subject),
            "body_chars": len(ticket.body),
            "attachment_count": len(ticket.attachments),
        },
    )
    return ticket
