"""Streaming through real Redis Streams (127.0.0.1:6379) and NDJSON files.

Each test uses its own stream names and deletes them afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from features.sample_data import generate_frame
from monitoring.store import DecisionStore

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
TICKET_COLUMNS = ["id", "channel", "subject", "body"]


@pytest.fixture
def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.ping()
    return client


@pytest.fixture
def streams(redis_client):
    prefix = f"switchboard-test-{uuid.uuid4().hex[:8]}"
    names = {
        "source": f"{prefix}:tickets",
        "sink": f"{prefix}:decisions",
        "group": "routers",
    }
    yield names
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)


def _tickets(count: int, seed: int) -> list[dict]:
    frame = generate_frame(count, seed=seed)[TICKET_COLUMNS]
    # Unique ids per test run: the store keeps one decision per (ticket, message).
    frame["id"] = [f"{row}-{uuid.uuid4().hex[:6]}" for row in frame["id"]]
    return frame.to_dict(orient="records")


def _publish(client, stream: str, payloads: list[str]) -> list[str]:
    pipe = client.pipeline()
    for payload in payloads:
        pipe.xadd(stream, {"ticket": payload})
    return pipe.execute()


def _consumer(settings, names, name: str, *extra: str) -> subprocess.Popen:
    source = f"{REDIS_URL}?stream={names['source']}&group={names['group']}"
    sink = f"{REDIS_URL}?stream={names['sink']}"
    env = {**os.environ, **_env(settings)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.cli",
            "stream",
            "--source",
            source,
            "--sink",
            sink,
            "--consumer-name",
            name,
            "--idle-timeout-ms",
            "3000",
            "--stop-when-idle",
            "10",
            *extra,
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape_until(port: int, wanted: str, timeout_s: float = 120) -> str:
    import httpx

    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        if wanted in text:
            return text
        time.sleep(0.3)
    raise AssertionError(
        f"metrics never showed {wanted!r}; last scrape:\n{text[-2000:]}"
    )


def _env(settings) -> dict[str, str]:
    values = {"SWITCHBOARD_HOME": str(settings.home)}
    if settings.database_url:
        values["SWITCHBOARD_DATABASE_URL"] = settings.database_url
    if settings.database_schema:
        values["SWITCHBOARD_DATABASE_SCHEMA"] = settings.database_schema
    return values


@pytest.fixture
def pg_settings(champion_settings):
    """The champion's registry with a decision store in its own PostgreSQL schema."""
    import sqlalchemy as sa

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = f"sb_stream_{uuid.uuid4().hex[:8]}"
    yield champion_settings.model_copy(
        update={"database_url": url, "database_schema": schema}
    )
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def test_five_thousand_messages_through_three_consumers_with_one_killed(
    pg_settings, streams, redis_client
):
    tickets = _tickets(5000, seed=41)
    redis_client.xgroup_create(
        streams["source"], streams["group"], id="0", mkstream=True
    )
    _publish(redis_client, streams["source"], [json.dumps(t) for t in tickets])
    consumers = [_consumer(pg_settings, streams, f"c{i}") for i in range(3)]

    # Kill one consumer as soon as it holds pending work.
    deadline = time.monotonic() + 180
    victim = "c0-0"
    while time.monotonic() < deadline:
        pending = {
            c["name"]: c["pending"]
            for c in redis_client.xinfo_consumers(streams["source"], streams["group"])
        }
        if pending.get(victim, 0) > 0:
            break
        time.sleep(0.2)
    consumers[0].send_signal(signal.SIGKILL)
    for process in consumers[1:]:
        process.wait(timeout=900)

    store = DecisionStore(pg_settings.database_url, schema=pg_settings.database_schema)
    stored = list(store.iter_decisions())
    by_ticket = {}
    for decision in stored:
        by_ticket.setdefault(decision["ticket_id"], []).append(decision)
    assert len(by_ticket) == 5000
    assert all(len(found) == 1 for found in by_ticket.values())
    summary = redis_client.xpending(streams["source"], streams["group"])
    assert summary["pending"] == 0
    assert redis_client.xlen(streams["sink"]) >= 5000
    store.close()


def test_poison_messages_reach_the_dead_letter_stream_and_are_acknowledged(
    champion_settings, streams, redis_client
):
    good = [json.dumps(t) for t in _tickets(20, seed=42)]
    poison = ["{not json", json.dumps({"id": "P-1", "channel": "fax", "subject": "x"})]
    _publish(redis_client, streams["source"], good + poison)

    port = _free_port()
    process = _consumer(
        champion_settings,
        streams,
        "solo",
        "--max-batch",
        "8",
        "--metrics-port",
        str(port),
    )
    metrics = _scrape_until(
        port, 'switchboard_stream_dead_letters_total{consumer="0"} 2.0'
    )
    _, errors = process.communicate(timeout=300)

    assert process.returncode == 0, errors[-3000:]
    assert 'switchboard_stream_decided_total{consumer="0"} 20.0' in metrics
    assert "switchboard_stream_consumer_lag" in metrics

    dead = redis_client.xrange(streams["source"] + ":dead-letters")
    assert len(dead) == 2
    assert any("channel" in fields["error"] for _, fields in dead)
    assert redis_client.xlen(streams["sink"]) == 20
    assert redis_client.xpending(streams["source"], streams["group"])["pending"] == 0


def test_several_consumer_processes_from_one_command_share_the_group(
    champion_settings, streams, redis_client
):
    tickets = _tickets(120, seed=43)
    _publish(redis_client, streams["source"], [json.dumps(t) for t in tickets])

    process = _consumer(champion_settings, streams, "pair", "--consumers", "2")
    _, errors = process.communicate(timeout=300)

    assert process.returncode == 0, errors[-3000:]

    names = {
        c["name"] for c in redis_client.xinfo_consumers(streams["source"], "routers")
    }
    assert names == {"pair-0", "pair-1"}
    emitted = {
        json.loads(fields["decision"])["ticket_id"]
        for _, fields in redis_client.xrange(streams["sink"])
    }
    assert emitted == {t["id"] for t in tickets}


def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(
    champion_settings, streams, redis_client
):
    tickets = _tickets(400, seed=44)
    _publish(redis_client, streams["source"], [json.dumps(t) for t in tickets])
    process = _consumer(champion_settings, streams, "term", "--max-batch", "16")
    deadline = time.monotonic() + 120
    while redis_client.xlen(streams["sink"]) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)

    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=120)

    assert code == 0
    assert redis_client.xpending(streams["source"], streams["group"])["pending"] == 0
    assert 0 < redis_client.xlen(streams["sink"]) < 400


def test_ndjson_file_in_and_file_out_with_dead_letters_beside_the_sink(
    champion_settings, tmp_path
):
    tickets = _tickets(30, seed=45)
    source = tmp_path / "tickets.ndjson"
    source.write_text("\n".join([*map(json.dumps, tickets), "{broken"]) + "\n")
    sink = tmp_path / "out" / "decisions.ndjson"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.cli",
            "stream",
            "--source",
            str(source),
            "--sink",
            str(sink),
        ],
        env={**os.environ, **_env(champion_settings)},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    decisions = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [d["ticket_id"] for d in decisions] == [t["id"] for t in tickets]
    dead = (tmp_path / "out" / "decisions.dead-letters.ndjson").read_text().splitlines()
    assert len(dead) == 1
    assert json.loads(dead[0])["message_id"].endswith(":31")


def test_a_context_event_on_the_stream_reroutes_an_open_ticket(
    champion_settings, tmp_path
):
    from features.scenarios import context_scenarios

    ticket = context_scenarios()["expansion_unpaid_invoice_hold"].ticket
    event = {
        "type": "context_event",
        "event_id": "ev-stream-1",
        "kind": "invoice_paid",
        "account_id": ticket["account_id"],
    }
    source = tmp_path / "mixed.ndjson"
    source.write_text(json.dumps(ticket) + "\n" + json.dumps(event) + "\n")
    sink = tmp_path / "decisions.ndjson"
    env = {
        **os.environ,
        **_env(champion_settings),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'decisions.db'}",
        "SWITCHBOARD_CONTEXT_STORE_URL": f"sqlite:///{tmp_path / 'context.db'}",
    }

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.cli",
            "stream",
            "--source",
            str(source),
            "--sink",
            str(sink),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    first, again = [json.loads(line) for line in sink.read_text().splitlines()]
    assert (first["ticket_id"], first["queue"]) == (ticket["id"], "collections")
    assert (again["ticket_id"], again["queue"]) == (ticket["id"], "revenue_operations")
    assert again["decision_id"] != first["decision_id"]
