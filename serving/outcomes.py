"""HTTP endpoints for what happened after routing: feedback in, metrics out.

`POST /v1/feedback` stores feedback events (scope `feedback`);
`GET /v1/metrics/process` computes the process metrics over a time range
(scope `route`, like the other read endpoints). Both open the decision store
on first use, so a service that never receives feedback never opens it from
the ingress. The same computation refreshes the Prometheus gauges, at most
once per `process_metrics_refresh_s`, when /metrics is scraped or the
process metrics are asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Header, Request

from features.errors import FieldProblem, InvalidInputError, SwitchboardError
from features.taxonomy import load_taxonomy
from monitoring.feedback import FeedbackEvent, parse_feedback_batch
from monitoring.process_metrics import (
    DIMENSIONS,
    ProcessMetrics,
    check_query,
    compute_process_metrics,
    load_process_data,
    parse_time_range,
)
from monitoring.sla import SlaPolicy, load_sla_policy
from monitoring.store import DecisionStore
from serving.auth import KeyRing
from serving.metrics import ServiceMetrics
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

_EVENT_SCHEMA = FeedbackEvent.model_json_schema()
# The body is read by hand (to validate against the taxonomy and name every
# bad field), so its schema is declared here for the OpenAPI page.
_FEEDBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {"type": "array", "items": _EVENT_SCHEMA},
                        {
                            "type": "object",
                            "properties": {
                                "events": {"type": "array", "items": _EVENT_SCHEMA}
                            },
                            "required": ["events"],
                        },
                    ]
                }
            }
        },
    }
}


class LazyStore:
    """The decision store, opened on first use and shared by the endpoints."""

    def __init__(self, settings: ServingSettings) -> None:
        self._settings = settings
        self._store: DecisionStore | None = None
        self._lock = threading.Lock()

    def get(self) -> DecisionStore:
        with self._lock:
            if self._store is None:
                from monitoring.store import open_store

                self._store = open_store(self._settings)
                log.info("decision store opened by ingress")
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class ProcessGaugeRefresher:
    """Recomputes the process-metric gauges over the trailing window, throttled."""

    def __init__(
        self, store: LazyStore, settings: ServingSettings, metrics: ServiceMetrics
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._sla = load_sla_policy(settings.sla_path)
        self._refreshed_at = -float("inf")
        self._lock = threading.Lock()

    def refresh(self, now: datetime | None = None) -> bool:
        """Recompute unless done within the refresh interval; never raises.

        Returns:
            Whether the gauges were recomputed.
        """
        with self._lock:
            interval_s = self._settings.process_metrics_refresh_s
            if time.monotonic() - self._refreshed_at < interval_s:
                return False
            self._refreshed_at = time.monotonic()
        now = now or datetime.now(UTC)
        window = timedelta(hours=self._settings.process_metrics_window_hours)
        try:
            data = load_process_data(self._store.get(), now - window, now)
            reports = [
                compute_process_metrics(data, self._sla, by=by, now=now)
                for by in DIMENSIONS
            ]
        except SwitchboardError as err:
            # /metrics must keep answering with the service's own metrics.
            log.warning(
                "process metrics not refreshed", extra={"error": type(err).__name__}
            )
            return False
        self._metrics.process.set_reports(reports, window.total_seconds())
        return True


def outcome_routes(
    settings: ServingSettings,
    keys: KeyRing,
    metrics: ServiceMetrics,
    store: LazyStore,
) -> tuple[APIRouter, ProcessGaugeRefresher]:
    """The feedback and process-metrics endpoints, and the gauge refresher."""
    taxonomy = load_taxonomy(settings.taxonomy_path)
    sla = load_sla_policy(settings.sla_path)
    refresher = ProcessGaugeRefresher(store, settings, metrics)
    router = APIRouter()

    @router.post("/v1/feedback", tags=["feedback"], openapi_extra=_FEEDBACK_BODY)
    async def feedback(
        request: Request, x_api_key: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """Store what happened after routing: one event, a list, or {"events": []}.

        Events whose `feedback_id` is already stored are reported as
        duplicates and left as they were.
        """
        caller = keys.authenticate(x_api_key, "feedback")
        events = parse_feedback_batch(_event_items(await request.body()), taxonomy)
        now = datetime.now(UTC)
        events = [
            event.model_copy(update={"occurred_at": event.occurred_at or now})
            for event in events
        ]
        stored = await asyncio.to_thread(_append, store, events, caller.name)
        log.info(
            "feedback received",
            extra={"events": len(events), "stored": len(stored), "caller": caller.name},
        )
        return _feedback_answer(events, set(stored))

    @router.get("/v1/metrics/process", tags=["metrics"], response_model=ProcessMetrics)
    async def process_metrics(
        since: str | None = None,
        until: str | None = None,
        by: str = "queue",
        bucket: str | None = None,
        x_api_key: str | None = Header(default=None),
    ) -> ProcessMetrics:
        """Process metrics over [since, until), overall and per group of `by`.

        `since` and `until` take ISO 8601 dates or times (UTC without an
        offset) or durations back from now such as 7d or 24h; by default the
        last seven days. `by` is queue, channel, mode or model_version;
        `bucket` (hour or day) sizes the time series.
        """
        keys.authenticate(x_api_key, "route")
        now = datetime.now(UTC)
        start, end = parse_time_range(since, until, now)
        check_query(by, bucket)
        report = await asyncio.to_thread(
            _compute, store, sla, start, end, by, bucket, now
        )
        await asyncio.to_thread(refresher.refresh)
        return report

    return router, refresher


def _event_items(raw: bytes) -> list[Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        problem = FieldProblem("body", f"not valid JSON: {err}")
        raise InvalidInputError([problem], subject="feedback") from err
    if isinstance(body, dict) and "events" in body:
        body = body["events"]
        if not isinstance(body, list):
            problem = FieldProblem("events", "expected a list of events")
            raise InvalidInputError([problem], subject="feedback")
    return body if isinstance(body, list) else [body]


def _feedback_answer(events: list[FeedbackEvent], stored: set[str]) -> dict[str, Any]:
    answers = [
        {
            **event.model_dump(mode="json"),
            "status": "stored" if event.feedback_id in stored else "duplicate",
        }
        for event in events
    ]
    return {
        "received": len(events),
        "stored": sum(answer["status"] == "stored" for answer in answers),
        "duplicates": sum(answer["status"] == "duplicate" for answer in answers),
        "events": answers,
    }


def _append(store: LazyStore, events: list[FeedbackEvent], sender: str) -> list[str]:
    # Opening the store (a migration check) blocks too, so it runs here.
    return store.get().append_feedback(events, sender)


def _compute(
    store: LazyStore,
    sla: SlaPolicy,
    since: datetime,
    until: datetime,
    by: str,
    bucket: str | None,
    now: datetime,
) -> ProcessMetrics:
    data = load_process_data(store.get(), since, until)
    return compute_process_metrics(data, sla, by=by, bucket=bucket, now=now)
