"""Portal web forms into tickets: known fields mapped, custom fields kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from features.errors import InvalidTicketError, PayloadTooLargeError
from features.intake.portal import (
    MAX_CUSTOM_FIELDS,
    MAX_CUSTOM_VALUE_CHARS,
    normalize_portal,
)
from features.schema import AccountTier, Channel


def form(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": 5521,
        "subject": "Cannot export reports",
        "description": "The CSV export button does nothing since the update.",
        "email": "ana@example.com",
        "category": "reporting",
        "product": "analytics",
        "account": {"id": "ACME-1", "tier": "Enterprise"},
        "priority_requested": "high",
        "submitted_at": "2024-06-04T09:00:00Z",
        "attachments": [
            {"filename": "screen.png", "content_type": "image/png", "size_bytes": 2048}
        ],
        "custom_fields": {"browser": "Firefox 126", "affected_users": 12},
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not None}


def test_form_becomes_a_portal_ticket_with_its_fields_mapped() -> None:
    ticket = normalize_portal(form())

    assert ticket.channel is Channel.PORTAL
    assert ticket.id == "5521"
    assert ticket.subject == "Cannot export reports"
    assert ticket.body == "The CSV export button does nothing since the update."
    assert ticket.requester == "ana@example.com"
    assert ticket.product == "analytics"
    assert ticket.account_id == "ACME-1"
    assert ticket.account_tier is AccountTier.ENTERPRISE
    assert ticket.created_at == datetime(2024, 6, 4, 9, 0, tzinfo=UTC)
    assert ticket.attachments[0].filename == "screen.png"
    assert ticket.attachments[0].size_bytes == 2048


def test_category_priority_and_custom_fields_go_to_metadata() -> None:
    ticket = normalize_portal(form(page_url="https://app.example.com/reports"))

    assert ticket.metadata == {
        "category": "reporting",
        "priority_requested": "high",
        "custom_fields": {
            "browser": "Firefox 126",
            "affected_users": 12,
            "page_url": "https://app.example.com/reports",
        },
    }


@pytest.mark.parametrize(
    ("aliases", "subject", "body"),
    [
        pytest.param(
            {"subject": None, "title": "T", "description": None, "message": "M"},
            "T",
            "M",
            id="title-and-message",
        ),
        pytest.param(
            {"subject": "  ", "title": "T"}, "T", None, id="blank-subject-uses-title"
        ),
        pytest.param({"subject": None}, "", None, id="description-only"),
    ],
)
def test_title_and_message_are_read_when_subject_or_description_are_not_given(
    aliases: dict[str, Any], subject: str, body: str | None
) -> None:
    ticket = normalize_portal(form(**aliases))

    assert ticket.subject == subject
    assert ticket.body == (body or form()["description"])


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        pytest.param({"account": "ACME-9"}, "ACME-9", id="account-as-string"),
        pytest.param({"account": 77}, "77", id="account-as-integer"),
        pytest.param({"account": None, "account_id": "ACME-3"}, "ACME-3", id="alias"),
    ],
)
def test_account_may_be_given_as_an_id(account: dict[str, Any], expected: str) -> None:
    ticket = normalize_portal(form(**account))

    assert ticket.account_id == expected
    assert ticket.account_tier is None


def test_form_without_id_gets_a_stable_content_id() -> None:
    payload = form(id=None)

    assert normalize_portal(payload).id == normalize_portal(payload).id
    assert normalize_portal(payload).id.startswith("portal-")
    assert normalize_portal(payload, ticket_id="T-1").id == "T-1"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(form(subject=None, description=None), "description", id="no-text"),
        pytest.param(form(subject=3), "subject", id="subject-not-string"),
        pytest.param(form(description=["a"]), "description", id="description-list"),
        pytest.param(form(email="ana at example"), "email", id="bad-email"),
        pytest.param(form(email=42), "email", id="email-not-string"),
        pytest.param(form(account={"id": ["x"]}), "account.id", id="account-id-list"),
        pytest.param(form(account=[1]), "account", id="account-list"),
        pytest.param(
            form(account={"id": "A", "tier": "platinum"}), "account_tier", id="tier"
        ),
        pytest.param(form(submitted_at="June 4th"), "submitted_at", id="bad-time"),
        pytest.param(form(attachments={"a": 1}), "attachments", id="attachments-dict"),
        pytest.param(form(attachments=["a.png"]), "attachments.0", id="attachment-str"),
        pytest.param(
            form(attachments=[{"filename": "a", "size_bytes": -1}]),
            "attachments.0.size_bytes",
            id="negative-size",
        ),
        pytest.param(
            form(custom_fields=["browser"]), "custom_fields", id="custom-not-object"
        ),
        pytest.param(
            form(custom_fields={"os": {"name": "linux"}}),
            "custom_fields.os",
            id="custom-nested",
        ),
        pytest.param(form(widget={"a": 1}), "widget", id="flat-custom-nested"),
        pytest.param(form(category=7), "category", id="category-not-string"),
        pytest.param("subject=hi", "payload", id="payload-a-string"),
    ],
)
def test_invalid_form_is_refused_naming_the_field(payload: Any, field: str) -> None:
    with pytest.raises(InvalidTicketError) as caught:
        normalize_portal(payload)

    assert field in [problem.field for problem in caught.value.problems]


def test_too_many_custom_fields_is_refused_as_too_large() -> None:
    custom = {f"field_{number}": "x" for number in range(MAX_CUSTOM_FIELDS + 1)}

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_portal(form(custom_fields=custom))

    assert "custom_fields" in str(caught.value)
    assert f"{MAX_CUSTOM_FIELDS} fields" in str(caught.value)


def test_custom_value_over_its_limit_is_refused_as_too_large() -> None:
    custom = {"notes": "x" * (MAX_CUSTOM_VALUE_CHARS + 1)}

    with pytest.raises(PayloadTooLargeError) as caught:
        normalize_portal(form(custom_fields=custom))

    assert "custom_fields.notes" in str(caught.value)
    assert str(MAX_CUSTOM_VALUE_CHARS) in str(caught.value)
