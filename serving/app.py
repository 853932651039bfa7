"""The HTTP API (FastAPI) and the Ray Serve application that serves it.

`create_api(backend, ...)` builds the FastAPI app over any `Backend`; the
Ray Serve ingress builds it in its replica over deployment handles. Errors from the
Switchboard tree map to status codes in `_error_response`, and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from features.errors import (
    FieldProblem,
    InvalidInputError,
    InvalidTicketError,
    PayloadTooLargeError,
    SwitchboardError,
    UnknownChannelError,
)
from features.schema import Ticket, problems_from_errors, ticket_error
from serving.auth import AuthError, KeyRing, Scope, ScopeError
from serving.case_routes import CaseNotFoundError, case_routes
from serving.dashboard import dashboard_routes
from serving.decision import Decision
from serving.metrics import ServiceMetrics
from serving.outcomes import LazyStore, outcome_routes
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
STREAM_CHUNK_TICKETS = 16


class Backend(Protocol):
    async def route(
        self, tickets: list[Ticket], request_id: str
    ) -> list[dict[str, Any]]: ...
    async def model_info(self) -> dict[str, Any]: ...
    async def reload(self) -> dict[str, Any]: ...
    async def rules_info(self) -> dict[str, Any]: ...
    async def drift_status(self) -> dict[str, Any]: ...
    async def force_drift(
        self, target: str, actor: str, reason: str, via: str | None
    ) -> dict[str, Any]: ...
    async def drift_metrics(self) -> bytes: ...
    async def apply_event(self, event: Any) -> dict[str, Any]: ...


class DuplexStreamingResponse(StreamingResponse):
    """A streaming response whose body generator still reads the request.

    Starlette's StreamingResponse listens for a client disconnect by calling
    `receive()`, which would race the generator for the request's body chunks
    and stall both; here only the generator reads them.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.stream_response(send)
        if self.background is not None:
            await self.background()


class BatchRequest(BaseModel):
    tickets: list[Ticket] = Field(description="Normalised tickets to route.")


class BatchResponse(BaseModel):
    decisions: list[Decision]


class DriftForce(BaseModel):
    """An operator's force of the drift state; kept in the audit log."""

    state: Literal["model", "drift", "auto"] = Field(
        description=(
            "`drift` routes every ticket by rules, `model` lets the model route "
            "whatever the checks say, `auto` hands the state back to the checks."
        )
    )
    actor: str = Field(
        min_length=1, max_length=200, description="The person forcing it."
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why.")


def create_api(backend: Backend, settings: ServingSettings, keys: KeyRing) -> FastAPI:
    """The FastAPI app over `backend` (deployment handles, or in-process cores)."""
    api = FastAPI(
        title="Switchboard",
        version="0.1.0",
        description="Governed support-ticket routing: model proposals, rule fallback.",
    )
    metrics = ServiceMetrics()
    api.state.metrics = metrics
    api.state.store = LazyStore(settings)
    outcomes, process_gauges = outcome_routes(settings, keys, metrics, api.state.store)
    api.include_router(outcomes)
    api.include_router(case_routes(backend, keys, api.state.store))
    api.include_router(dashboard_routes())

    def authorize(key: str | None, scope: Scope) -> None:
        keys.authenticate(key, scope)

    api.add_middleware(
        MeasuredRequests, metrics=metrics, max_bytes=settings.max_request_bytes
    )

    @api.exception_handler(SwitchboardError)
    async def on_switchboard_error(_: Request, err: SwitchboardError) -> Response:
        return _error_response(err)

    @api.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, err: RequestValidationError) -> Response:
        errors = []
        for item in err.errors():
            loc = tuple(item.get("loc", ()))
            errors.append({**item, "loc": loc[1:] if loc[:1] == ("body",) else loc})
        return _error_response(ticket_error(problems_from_errors(errors)))

    @api.post("/v1/route", response_model=Decision, tags=["routing"])
    async def route(
        ticket: Ticket,
        x_api_key: str | None = Header(default=None),
        x_request_id: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Route one normalised ticket; `id`, `channel`, `subject`, `body` suffice.

        A client retrying with the same `X-Request-ID` gets one stored decision.
        """
        authorize(x_api_key, "route")
        decisions = await backend.route([ticket], _request_id(x_request_id))
        metrics.record_decisions(decisions)
        return decisions[0]

    @api.post("/v1/route/batch", response_model=BatchResponse, tags=["routing"])
    async def route_batch(
        batch: BatchRequest,
        x_api_key: str | None = Header(default=None),
        x_request_id: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Route many tickets in one call (up to SWITCHBOARD_MAX_BATCH_TICKETS)."""
        authorize(x_api_key, "route")
        if len(batch.tickets) > settings.max_batch_tickets:
            problem = FieldProblem(
                "tickets",
                f"{len(batch.tickets)} tickets in one batch",
                f"{settings.max_batch_tickets} tickets",
            )
            raise PayloadTooLargeError([problem])
        decisions = await backend.route(batch.tickets, _request_id(x_request_id))
        metrics.record_decisions(decisions)
        return {"decisions": decisions}

    @api.post(
        "/v1/intake/{channel}",
        response_model=Decision,
        tags=["routing"],
        openapi_extra={
            "requestBody": {
                "content": {
                    "message/rfc822": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}},
                },
                "required": True,
            }
        },
    )
    async def intake(
        channel: str,
        request: Request,
        x_api_key: str | None = Header(default=None),
        x_request_id: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Route a raw payload: email (message/rfc822), alert, chat or portal JSON."""
        from features.intake import normalize

        authorize(x_api_key, "route")
        raw = await request.body()
        payload: Any = raw
        if channel != "email":
            try:
                payload = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as err:
                problem = FieldProblem("body", f"not valid JSON: {err}")
                raise InvalidTicketError([problem], channel=channel) from err
        ticket = normalize(channel, payload)
        decisions = await backend.route([ticket], _request_id(x_request_id))
        metrics.record_decisions(decisions)
        return decisions[0]

    @api.post(
        "/v1/route/stream",
        tags=["routing"],
        response_class=StreamingResponse,
        openapi_extra={
            "requestBody": {
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                "required": True,
            }
        },
    )
    async def route_stream(
        request: Request,
        x_api_key: str | None = Header(default=None),
        x_request_id: str | None = Header(default=None),
    ) -> StreamingResponse:
        """NDJSON tickets in, NDJSON decisions out as they are made.

        A line that is not a valid ticket answers with an error object naming
        its line number and problems; the stream goes on.
        """
        authorize(x_api_key, "route")
        request_id = _request_id(x_request_id)

        async def decisions() -> AsyncIterator[bytes]:
            async for chunk in _ndjson_chunks(request, STREAM_CHUNK_TICKETS):
                parsed = _parse_lines(chunk)
                tickets = [item for item in parsed if isinstance(item, Ticket)]
                made = await backend.route(tickets, request_id) if tickets else []
                metrics.record_decisions(made)
                decided = iter(made)
                # Answers keep the order of the lines they answer.
                for item in parsed:
                    answer = next(decided) if isinstance(item, Ticket) else item
                    yield (json.dumps(answer) + "\n").encode()

        return DuplexStreamingResponse(decisions(), media_type="application/x-ndjson")

    @api.get("/v1/model", tags=["model"])
    async def model(x_api_key: str | None = Header(default=None)) -> dict[str, Any]:
        """The model version serving, its thresholds and state."""
        authorize(x_api_key, "route")
        info = await backend.model_info()
        metrics.set_model(info)
        return info

    @api.post("/v1/admin/reload", tags=["admin"])
    async def reload(x_api_key: str | None = Header(default=None)) -> dict[str, Any]:
        """Look up the champion now and swap it in if it changed."""
        authorize(x_api_key, "admin")
        info = await backend.reload()
        metrics.set_model(info)
        return info

    @api.get("/v1/drift", tags=["drift"])
    async def drift(x_api_key: str | None = Header(default=None)) -> dict[str, Any]:
        """Drift state (model or drift), why, the last check and its evidence."""
        authorize(x_api_key, "route")
        return await backend.drift_status()

    @api.post("/v1/admin/drift", tags=["admin"])
    async def force_drift(
        force: DriftForce, x_api_key: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """Pin the drift state, or hand it back to the checks; audited."""
        caller = keys.authenticate(x_api_key, "admin")
        return await backend.force_drift(
            force.state, force.actor, force.reason, caller.name
        )

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        """Ready when rules are loaded; the model is optional, its state shown."""
        try:
            rules = await backend.rules_info()
            model_info = await backend.model_info()
        except Exception as err:  # a dead router means not ready, not a 500
            log.warning("readiness check failed", extra={"error": type(err).__name__})
            return JSONResponse({"ready": False, "error": type(err).__name__}, 503)
        metrics.set_model(model_info)
        body = {
            "ready": True,
            "rules": rules,
            "model": {
                "state": model_info.get("state"),
                "model_version": model_info.get("model_version"),
            },
        }
        return JSONResponse(body)

    @api.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        await asyncio.to_thread(process_gauges.refresh)
        exported = metrics.export() + await _drift_metrics(backend)
        return Response(exported, media_type="text/plain; version=0.0.4")

    return api


async def _drift_metrics(backend: Backend) -> bytes:
    """The drift monitor's metrics; none (logged) when it does not answer."""
    try:
        return await backend.drift_metrics()
    except Exception as err:  # a scrape must not fail with the monitor
        log.warning("drift metrics unavailable", extra={"error": type(err).__name__})
        return b""


class MeasuredRequests:
    """ASGI middleware: the body size limit, a 500 for any bug, and metrics.

    Plain ASGI rather than Starlette's BaseHTTPMiddleware, which runs every
    request through a task group and memory streams of its own: on two cores
    that was a visible share of the ingress's CPU per request.
    """

    def __init__(self, app: Any, *, metrics: ServiceMetrics, max_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        is_started = False

        async def send_noting_status(message: Any) -> None:
            nonlocal status, is_started
            if message["type"] == "http.response.start":
                status, is_started = int(message["status"]), True
            await send(message)

        length = _header(scope, b"content-length")
        try:
            if length and length.isdigit() and int(length) > self.max_bytes:
                problem = FieldProblem(
                    "body", f"request of {length} bytes", f"{self.max_bytes} bytes"
                )
                response = _error_response(PayloadTooLargeError([problem]))
                await response(scope, receive, send_noting_status)
                return
            try:
                await self.app(scope, receive, send_noting_status)
            except Exception:  # a bug must still answer, and be counted
                log.exception("request failed", extra={"path": scope.get("path")})
                if is_started:  # too late for a 500: the status line is out
                    raise
                failed = JSONResponse({"error": "internal_error"}, status_code=500)
                await failed(scope, receive, send_noting_status)
        finally:
            endpoint = _endpoint_label(scope)
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _error_response(err: SwitchboardError) -> JSONResponse:
    if isinstance(err, UnknownChannelError):
        status = 400
    elif isinstance(err, PayloadTooLargeError):
        status = 413
    elif isinstance(err, InvalidTicketError | InvalidInputError):
        status = 422
    elif isinstance(err, AuthError):
        status = 401
    elif isinstance(err, ScopeError):
        status = 403
    elif isinstance(err, CaseNotFoundError):
        status = 404
    else:
        status = 503
    body: dict[str, Any] = {"error": type(err).__name__, "message": str(err)}
    if isinstance(err, InvalidTicketError | InvalidInputError):
        body["problems"] = [
            {"field": p.field, "message": p.message, "limit": p.limit}
            for p in err.problems
        ]
    headers = {"WWW-Authenticate": API_KEY_HEADER} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _ndjson_chunks(
    request: Request, size: int
) -> AsyncIterator[list[tuple[int, str]]]:
    """(line number, text) groups of up to `size` lines, as the body arrives.

    The body is read only as fast as decisions are made (backpressure).
    """
    buffer, number, chunk = b"", 0, []
    async for piece in request.stream():
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            number += 1
            if line.strip():
                chunk.append((number, line.decode("utf-8", "replace")))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
            chunk = []
    if buffer.strip():
        chunk.append((number + 1, buffer.decode("utf-8", "replace")))
    if chunk:
        yield chunk


def _parse_lines(chunk: list[tuple[int, str]]) -> list[Ticket | dict[str, Any]]:
    """Each line as a ticket, or as the error object that answers it."""
    from features.schema import parse_ticket

    parsed: list[Ticket | dict[str, Any]] = []
    for number, text in chunk:
        try:
            parsed.append(parse_ticket(json.loads(text)))
        except ValueError as err:
            parsed.append({"line": number, "error": "InvalidJSON", "message": str(err)})
        except InvalidTicketError as err:
            problems = [
                {"field": p.field, "message": p.message, "limit": p.limit}
                for p in err.problems
            ]
            parsed.append(
                {"line": number, "error": type(err).__name__, "problems": problems}
            )
    return parsed


def _request_id(header: str | None) -> str:
    """The caller's X-Request-ID (bounded), or a fresh one."""
    if header and header.strip():
        return header.strip()[:128]
    return f"http-{uuid.uuid4()}"


def _endpoint_label(scope: Any) -> str:
    route = scope.get("route")
    return getattr(route, "path", "unmatched")
