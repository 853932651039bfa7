"""Web-form submissions from the customer portal normalised into a `Ticket`.

Forms differ per product, so any key the adapter does not know is kept as a
custom field, under `metadata["custom_fields"]`, alongside an explicit
`custom_fields` object. Custom values must be flat (strings, numbers, booleans,
null, or arrays of those): a form field never needs more, and flat values keep
the metadata small and searchable.
"""

from __future__ import annotations

from typing import Any

from features.intake._shared import (
    Problems,
    build_ticket,
    content_id,
    looks_like_address,
    optional_identifier,
    optional_text,
    optional_time,
    require_object,
    type_name,
)
from features.schema import Ticket

CHANNEL = "portal"
MAX_CUSTOM_FIELDS = 32
MAX_CUSTOM_VALUE_CHARS = 2_000
MAX_CUSTOM_LIST_ITEMS = 50

_KNOWN_KEYS = frozenset(
    {
        "id",
        "subject",
        "title",
        "description",
        "message",
        "email",
        "category",
        "product",
        "account",
        "account_id",
        "region",
        "priority_requested",
        "submitted_at",
        "attachments",
        "custom_fields",
        "source",
    }
)
_SCALARS = (str, int, float, bool, type(None))


def normalize_portal(
    payload: dict[str, Any], *, ticket_id: str | None = None
) -> Ticket:
    """Turn a portal form submission into a `Ticket`.

    Args:
        payload: the form as JSON: "subject" (or "title"), "description" (or
            "message"), "email", "category", "product", "account" (an id, or
            `{"id", "tier"}`), "account_id", "region", "priority_requested",
            "submitted_at", "attachments" (`[{"filename", "content_type",
            "size_bytes"}]`), "source", "custom_fields"; any other key is a
            custom field.
        ticket_id: overrides the submission's own "id".

    Raises:
        PayloadTooLargeError: custom fields or texts over their limits.
        InvalidTicketError: any other invalid field, each one named, or neither
            a subject nor a description.
    """
    data = require_object(payload, CHANNEL)
    problems = Problems(CHANNEL)
    subject = _first_text(data, ("subject", "title"), problems)
    description = _first_text(data, ("description", "message"), problems)
    requester = _read_email(data, problems)
    account_id, account_tier = _read_account(data, problems)
    own_id = optional_identifier(data, "id", problems)
    fields: dict[str, Any] = {
        "channel": CHANNEL,
        "subject": subject,
        "body": description,
        "requester": requester,
        "account_id": account_id,
        "account_tier": account_tier,
        "product": optional_text(data, "product", problems),
        "region": optional_text(data, "region", problems),
        "source_system": optional_text(data, "source", problems),
        "created_at": optional_time(data, "submitted_at", problems),
        "attachments": _read_attachments(data, problems),
    }
    metadata = _read_metadata(data, problems)
    if not (subject or "").strip() and not (description or "").strip():
        problems.add("description", "a portal ticket needs a subject or a description")
    problems.raise_if_any()

    texts = (subject or "", description or "", requester or "")
    fields["id"] = ticket_id or own_id or content_id(CHANNEL, *texts)
    fields["metadata"] = metadata
    return build_ticket(fields, CHANNEL)


def _first_text(
    data: dict[str, Any], keys: tuple[str, ...], problems: Problems
) -> str | None:
    """The first of `keys` that holds text (`subject`, else `title`)."""
    for key in keys:
        value = optional_text(data, key, problems)
        if value and value.strip():
            return value
    return None


def _read_email(data: dict[str, Any], problems: Problems) -> str | None:
    email = optional_text(data, "email", problems)
    if email is None or not email.strip():
        return None
    email = email.strip()
    if not looks_like_address(email):
        problems.add("email", "not an email address (expected name@example.com)")
        return None
    return email


def _read_account(
    data: dict[str, Any], problems: Problems
) -> tuple[str | None, str | None]:
    """`account` as an id or as `{"id", "tier"}`; `account_id` as an alias."""
    account = data.get("account")
    if isinstance(account, dict):
        account_id = optional_identifier(account, "id", problems, field="account.id")
        tier = optional_text(account, "tier", problems, field="account.tier")
        return account_id, tier.strip().lower() if tier else None
    if account is None:
        return optional_identifier(data, "account_id", problems), None
    return optional_identifier(data, "account", problems), None


def _read_attachments(data: dict[str, Any], problems: Problems) -> list[dict[str, Any]]:
    """Attachment descriptions; the portal stores the files, we keep metadata."""
    raw = data.get("attachments")
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add("attachments", f"expected an array, got {type_name(raw)}")
        return []

    attachments = []
    for index, item in enumerate(raw):
        where = f"attachments.{index}"
        if not isinstance(item, dict):
            problems.add(where, f"expected an object, got {type_name(item)}")
            continue
        filename = optional_text(item, "filename", problems, field=f"{where}.filename")
        content_type = optional_text(
            item, "content_type", problems, field=f"{where}.content_type"
        )
        size = item.get("size_bytes", 0)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            problems.add(f"{where}.size_bytes", "expected a non-negative integer")
            size = 0
        attachment = {
            "filename": filename or f"attachment-{index + 1}",
            "size_bytes": size,
        }
        if content_type:
            attachment["content_type"] = content_type
        attachments.append(attachment)
    return attachments


def _read_metadata(data: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """Category, requested priority and custom fields: kept, not interpreted."""
    metadata: dict[str, Any] = {}
    for key in ("category", "priority_requested"):
        value = optional_text(data, key, problems)
        if value is not None and _check_custom_value(value, key, problems):
            metadata[key] = value
    custom = _read_custom_fields(data, problems)
    if custom:
        metadata["custom_fields"] = custom
    return metadata


def _read_custom_fields(data: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The `custom_fields` object merged with the keys the adapter does not know."""
    explicit = data.get("custom_fields")
    if explicit is not None and not isinstance(explicit, dict):
        problems.add("custom_fields", f"expected an object, got {type_name(explicit)}")
        explicit = None
    candidates = [
        (f"custom_fields.{key}", str(key), value)
        for key, value in (explicit or {}).items()
    ]
    candidates += [
        (str(key), str(key), value)
        for key, value in data.items()
        if key not in _KNOWN_KEYS
    ]
    if len(candidates) > MAX_CUSTOM_FIELDS:
        problems.add(
            "custom_fields",
            f"too many custom fields: {len(candidates)}",
            f"{MAX_CUSTOM_FIELDS} fields",
            size=True,
        )
        return {}

    custom = {}
    for where, name, value in candidates:
        if _check_custom_value(value, where, problems):
            custom[name] = value
    return custom


def _check_custom_value(value: object, where: str, problems: Problems) -> bool:
    """Whether `value` is flat and within limits; records why when it is not."""
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > MAX_CUSTOM_LIST_ITEMS:
        limit = f"{MAX_CUSTOM_LIST_ITEMS} items"
        problems.add(where, f"too many items: {len(value)}", limit, size=True)
        return False
    if not all(isinstance(item, _SCALARS) for item in items):
        problems.add(
            where, "expected a string, number, boolean, null or an array of them"
        )
        return False
    if any(
        isinstance(item, str) and len(item) > MAX_CUSTOM_VALUE_CHARS for item in items
    ):
        limit = f"{MAX_CUSTOM_VALUE_CHARS} characters"
        problems.add(where, "too long", limit, size=True)
        return False
    return True
