"""Decision store fixtures: one store per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server on 127.0.0.1:5432 (trust auth, database
`test`); each gets its own schema, dropped with CASCADE afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitoring.store import DecisionRecord, DecisionStore
from serving.decision import Decision, QueueScore

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DECIDED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

RecordFactory = Callable[..., DecisionRecord]


@dataclass(frozen=True)
class Backend:
    """Where one test's store lives."""

    name: str
    url: str
    schema: str | None

    def table(self, name: str) -> str:
        """The table's name as raw SQL must write it."""
        return f'"{self.schema}".{name}' if self.schema else name

    def open(self, **options: Any) -> DecisionStore:
        return DecisionStore(self.url, schema=self.schema, **options)


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as err:
        engine.dispose()
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {err.orig}")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_backend(postgres_engine: sa.Engine) -> Iterator[Backend]:
    schema = f"test_store_{uuid.uuid4().hex[:12]}"
    yield Backend("postgresql", POSTGRES_URL, schema)
    with postgres_engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path / 'decisions.db'}", None)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgresql", marks=pytest.mark.integration),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def store(backend: Backend) -> Iterator[DecisionStore]:
    opened = backend.open()
    yield opened
    opened.close()


@pytest.fixture
def make_record() -> RecordFactory:
    """Builds records from real `Decision`s, numbered so each is distinct."""
    return build_record


def build_record(
    number: int,
    *,
    request_id: str | None = None,
    ticket_id: str | None = None,
    path: str = "http",
    **fields: Any,
) -> DecisionRecord:
    """Record `number`: ticket T-<n>, request req-<n>, unless told otherwise."""
    values: dict[str, Any] = {
        "decision_id": f"dec-{number:05d}",
        "ticket_id": ticket_id or f"T-{number:05d}",
        "queue": "billing",
        "priority": "p3",
        "mode": "auto",
        "confidence": 0.91,
        "top_queues": [QueueScore(queue="billing", probability=0.91)],
        "model_name": "switchboard-router",
        "model_version": "7",
        "rule_set_version": "2026.11",
        "reasons": ["model confident for billing"],
        "latency_ms": 12.5,
        "decided_at": DECIDED_AT + timedelta(seconds=number),
        **fields,
    }
    decision = Decision(**values)
    return DecisionRecord.from_decision(
        decision,
        request_id=request_id or f"req-{number:05d}",
        channel="email",
        path=path,  # type: ignore[arg-type]
        text=f"ticket text {number}",
    )
