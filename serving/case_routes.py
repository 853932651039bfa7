"""HTTP endpoints for open tickets: context events in, case state in and out.

- `POST /v1/events/context` (scope `events`): a source system says a fact
  changed (an invoice paid, an entitlement restored, an incident opened or
  closed); the open tickets whose decision rested on it are decided again.
- `POST /v1/cases/{ticket_id}` (scope `feedback`): the helpdesk reports a
  status change (waiting on the customer pauses the SLA clock), the first
  response or the resolution.
- `GET /v1/cases/{ticket_id}` (scope `admin`): the case with its events,
  escalation steps and notifications, for a reviewer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.context import ContextEvent
from features.errors import FieldProblem, InvalidInputError, SwitchboardError
from features.schema import problems_from_errors
from monitoring.cases import CaseStatus, CaseStore
from monitoring.governance import GovernanceLog
from serving.auth import KeyRing
from serving.outcomes import LazyStore

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class CaseNotFoundError(SwitchboardError):
    """No case for that ticket id (HTTP 404)."""


class EventBackend(Protocol):
    async def apply_event(self, event: ContextEvent) -> dict[str, Any]: ...


class CaseUpdate(BaseModel):
    """A change the helpdesk reports; give at least one field."""

    model_config = ConfigDict(extra="forbid")

    status: CaseStatus | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    at: datetime | None = Field(
        default=None, description="When the status changed; now by default."
    )

    @field_validator("first_response_at", "resolved_at", "at")
    @classmethod
    def _assume_utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


def case_routes(backend: EventBackend, keys: KeyRing, store: LazyStore) -> APIRouter:
    """The context-event and case endpoints."""
    router = APIRouter()

    @router.post(
        "/v1/events/context",
        tags=["context"],
        openapi_extra=_body_schema(ContextEvent),
    )
    async def context_event(
        request: Request, x_api_key: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """Apply a context change: open tickets that rested on it are re-decided."""
        keys.authenticate(x_api_key, "events")
        event = _parse(await request.body(), ContextEvent, "context event")
        return await backend.apply_event(event)

    @router.post(
        "/v1/cases/{ticket_id}",
        tags=["context"],
        openapi_extra=_body_schema(CaseUpdate),
    )
    async def update_case(
        ticket_id: str, request: Request, x_api_key: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """Report a status change, the first response or the resolution."""
        caller = keys.authenticate(x_api_key, "feedback")
        update = _parse(await request.body(), CaseUpdate, "case update")
        if update.model_dump(exclude_none=True, exclude={"at"}) == {}:
            problem = FieldProblem(
                "body", "nothing to change", "status, first_response_at or resolved_at"
            )
            raise InvalidInputError([problem], subject="case update")
        cases = CaseStore(store.get())
        return await asyncio.to_thread(
            _apply_update, cases, ticket_id, update, caller.name
        )

    @router.get("/v1/cases/{ticket_id}", tags=["context"])
    async def get_case(
        ticket_id: str, x_api_key: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """The case, its events, escalation steps and notifications.

        Scope `admin`: the case holds the ticket's text and the account's
        context, which a routing key has no reason to read back.
        """
        keys.authenticate(x_api_key, "admin")
        return await asyncio.to_thread(_read_case, store, ticket_id)

    return router


def _apply_update(
    cases: CaseStore, ticket_id: str, update: CaseUpdate, actor: str
) -> dict[str, Any]:
    if cases.get(ticket_id) is None:
        raise CaseNotFoundError(_no_case(ticket_id))
    at = update.at or datetime.now(UTC)
    if update.status in {"resolved", "closed"} and update.resolved_at is not None:
        at = update.resolved_at  # one moment, not "now" beside the one given
    if update.status is not None:
        cases.set_status(ticket_id, update.status, at, actor)
    if update.first_response_at is not None:
        cases.record_first_response(ticket_id, update.first_response_at, actor)
    if update.resolved_at is not None:
        cases.record_resolved(ticket_id, update.resolved_at, actor)
    case = cases.get(ticket_id)
    assert case is not None
    return case.model_dump(mode="json")


def _read_case(store: LazyStore, ticket_id: str) -> dict[str, Any]:
    cases = CaseStore(store.get())
    case = cases.get(ticket_id)
    if case is None:
        raise CaseNotFoundError(_no_case(ticket_id))
    governance = GovernanceLog(store.get())
    return {
        "case": case.model_dump(mode="json"),
        "events": _jsonable(cases.events(ticket_id)),
        "escalations": _jsonable(cases.escalations(ticket_id)),
        "notifications": _jsonable(governance.notifications(ticket_id)),
    }


def _no_case(ticket_id: str) -> str:
    return (
        f"no case for ticket {ticket_id!r}: a case is opened when the ticket is "
        "routed with SWITCHBOARD_RECORD_DECISIONS on; route it first"
    )


def _parse(raw: bytes, model: type[M], subject: str) -> M:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        problem = FieldProblem("body", f"not valid JSON: {err}")
        raise InvalidInputError([problem], subject=subject) from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = problems_from_errors(err.errors())
        raise InvalidInputError(problems, subject=subject) from err


def _jsonable(rows: Any) -> Any:
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(rows)


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
