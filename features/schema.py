"""The one `Ticket` every channel is normalised into, with its limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from features.errors import (
    FieldProblem,
    InvalidTicketError,
    PayloadTooLargeError,
    UnknownChannelError,
)

MAX_ID_CHARS = 128
MAX_SUBJECT_CHARS = 1_000
MAX_BODY_CHARS = 50_000
MAX_ATTACHMENTS = 50
MAX_METADATA_KEYS = 64


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    PORTAL = "portal"
    ALERT = "alert"
    API = "api"


class AccountTier(StrEnum):
    STRATEGIC = "strategic"
    ENTERPRISE = "enterprise"
    BUSINESS = "business"
    STARTER = "starter"
    FREE = "free"


class Attachment(BaseModel):
    """What is known of an attachment; its content is never kept."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    size_bytes: int = Field(default=0, ge=0)


class Ticket(BaseModel):
    """A support ticket after intake, whatever channel it came from."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    channel: Channel
    subject: str = Field(default="", max_length=MAX_SUBJECT_CHARS)
    body: str = Field(default="", max_length=MAX_BODY_CHARS)
    requester: str | None = Field(default=None, max_length=320)
    account_id: str | None = Field(default=None, max_length=128)
    account_tier: AccountTier | None = None
    product: str | None = Field(default=None, max_length=128)
    region: str | None = Field(default=None, max_length=64)
    severity: str | None = Field(
        default=None, max_length=32, description="Alert severity (critical, ...)."
    )
    service: str | None = Field(
        default=None, max_length=128, description="Affected service, from alerts."
    )
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source_system: str | None = Field(default=None, max_length=128)
    attachments: list[Attachment] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator(
        "subject",
        "body",
        "id",
        "requester",
        "account_id",
        "product",
        "region",
        "severity",
        "service",
        "source_system",
    )
    @classmethod
    def _check_utf8(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(
                f"not valid UTF-8 text (character at position {err.start})"
            ) from err
        return value.replace("\x00", "")

    @field_validator("attachments")
    @classmethod
    def _check_attachments(cls, value: list[Attachment]) -> list[Attachment]:
        if len(value) > MAX_ATTACHMENTS:
            raise ValueError(
                f"too many: {len(value)} attachments, at most {MAX_ATTACHMENTS}"
            )
        return value

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(
                f"too many: {len(value)} keys, at most {MAX_METADATA_KEYS}"
            )
        return value

    @field_validator("created_at")
    @classmethod
    def _assume_utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _check_has_text(self) -> Ticket:
        if not self.subject and not self.body:
            raise ValueError("a ticket needs a subject or a body; both are empty")
        return self


def parse_ticket(data: Any, channel: str | None = None) -> Ticket:
    """Validate a mapping into a `Ticket`, reporting every invalid field.

    Raises:
        UnknownChannelError: the channel is not one of `Channel`.
        PayloadTooLargeError: the only problems are sizes over their limits.
        InvalidTicketError: anything else, every problem listed.
    """
    if not isinstance(data, dict):
        problem = FieldProblem(
            "ticket", f"expected an object, got {type(data).__name__}"
        )
        raise InvalidTicketError([problem], channel=channel)

    raw_channel = data.get("channel")
    known = [member.value for member in Channel]
    if raw_channel is not None and raw_channel not in known:
        problem = FieldProblem(
            "channel", f"unknown channel {str(raw_channel)[:40]!r}", ", ".join(known)
        )
        raise UnknownChannelError([problem], channel=channel)

    try:
        return Ticket.model_validate(data)
    except ValidationError as err:
        raise ticket_error(problems_from_errors(err.errors()), channel) from err


def ticket_error(
    problems: list[FieldProblem], channel: str | None = None
) -> InvalidTicketError:
    """The right error class for a list of problems: 400, 413 or 422."""
    if any(p.message.startswith("unknown channel") for p in problems):
        return UnknownChannelError(problems, channel=channel)
    if problems and all(p.message.startswith("too ") for p in problems):
        return PayloadTooLargeError(problems, channel=channel)
    return InvalidTicketError(problems, channel=channel)


def problems_from_errors(errors: Sequence[Any]) -> list[FieldProblem]:
    """Turn pydantic's error dicts into field problems with the limit spelled out."""
    problems = []
    for item in errors:
        # Whole-model checks have no location; the only one is "no text".
        where = ".".join(str(part) for part in item["loc"]) or "body"
        context = item.get("ctx") or {}
        if item["type"] == "string_too_long":
            limit = f"{context.get('max_length')} characters"
            problems.append(FieldProblem(where, "too long", limit))
        elif item["type"] == "enum" and where.endswith("channel"):
            known = ", ".join(member.value for member in Channel)
            problems.append(FieldProblem(where, "unknown channel", known))
        elif item["type"] == "string_unicode":
            problems.append(FieldProblem(where, "not valid UTF-8 text"))
        elif item["type"] == "missing":
            problems.append(FieldProblem(where, "required field is missing"))
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(FieldProblem(where, message))
    return problems


def ticket_from_row(row: dict[str, Any]) -> Ticket:
    """A `Ticket` from a table row (parquet, CSV, JSONL): extra columns ignored.

    Missing values (None, NaN) count as absent; JSON text in `attachments` or
    `metadata` columns is decoded. Raises like `parse_ticket`.
    """
    import json
    import math

    data: dict[str, Any] = {}
    for name in Ticket.model_fields:
        if name not in row:
            continue
        value = row[name]
        if hasattr(value, "item") and not isinstance(value, list | dict | str):
            value = value.item()  # numpy scalars
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if name in ("attachments", "metadata") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                problem = FieldProblem(name, "not valid JSON text")
                raise InvalidTicketError([problem]) from None
        if name == "id" and not isinstance(value, str):
            value = str(value)
        data[name] = value
    return parse_ticket(data)
