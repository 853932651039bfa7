"""Streaming classification: Redis Streams consumer groups, or NDJSON files.

Each consumer reads micro-batches (at most `max_batch` messages, waiting at
most `max_wait_ms` to fill one), decides them with the same policy as every
other path, writes the decisions durably to the decision store, then emits
them to the sink and acknowledges the messages in one transaction. A
message is acknowledged only after its decision is stored, so a consumer that
dies loses nothing: its pending entries are claimed by the others once idle
for `idle_timeout_ms`. The store's (ticket id, message id) key makes a
redelivery a no-op there; the sink stream is at-least-once, and a redelivered
message re-emits the decision first stored for it.

A message whose JSON has `"type": "context_event"` is a context change
(`features.context.ContextEvent`), not a ticket: the open tickets whose
decision rested on the changed source are decided again, and their new
decisions are emitted under the event's message id.

Known limitation: the NDJSON source is read by one process; only Redis
Streams spread work over several consumers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from features.context import ContextEvent
from features.errors import ConfigError, InvalidTicketError
from features.schema import Ticket, parse_ticket
from monitoring.store import RoutingPath
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = ":dead-letters"
# The "type" of a stream message that carries a context event, not a ticket.
CONTEXT_EVENT_TYPE = "context_event"
COUNTER_NAMES = ("decided", "dead_letters", "redeliveries", "batches")


@dataclass(frozen=True)
class RedisEndpoint:
    """`redis://host:port/db?stream=NAME&group=NAME`."""

    url: str
    stream: str
    group: str | None = None

    @property
    def dead_letter_stream(self) -> str:
        return self.stream + DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class FileEndpoint:
    """An NDJSON file, or `-` for stdin / stdout."""

    path: str

    @property
    def is_std(self) -> bool:
        return self.path == "-"


Endpoint = RedisEndpoint | FileEndpoint


@dataclass(frozen=True)
class StreamOptions:
    source: str
    sink: str
    consumers: int = 1
    max_batch: int = 32
    max_wait_ms: int = 200
    idle_timeout_ms: int = 30_000
    claim_every_s: float = 5.0
    poll_model_every_s: float = 30.0
    dead_letters: str | None = None
    stop_when_idle_s: float | None = None
    metrics_port: int | None = None
    consumer_prefix: str = field(default_factory=lambda: f"consumer-{os.getpid()}")


def parse_endpoint(uri: str, *, needs_group: bool) -> Endpoint:
    """A source or sink URI.

    Raises:
        ConfigError: a redis URI without `stream` (or, for a source, `group`).
    """
    if not uri.startswith(("redis://", "rediss://")):
        return FileEndpoint(uri)
    parsed = urlparse(uri)
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    stream, group = query.get("stream"), query.get("group")
    if not stream:
        raise ConfigError(f"{_redact(uri)}: add ?stream=NAME to name the Redis stream")
    if needs_group and not group:
        raise ConfigError(
            f"{_redact(uri)}: a source needs ?group=NAME (its consumer group)"
        )
    base = parsed._replace(query="").geturl()
    return RedisEndpoint(url=base, stream=stream, group=group)


@dataclass
class Counters:
    """Per-consumer counts; shared with the parent process for metrics."""

    values: dict[str, Any]

    @classmethod
    def shared(cls, context: Any) -> Counters:
        return cls({name: context.Value("q", 0) for name in COUNTER_NAMES})

    @classmethod
    def local(cls) -> Counters:
        return cls({name: _Box() for name in COUNTER_NAMES})

    def add(self, name: str, amount: int = 1) -> None:
        box = self.values[name]
        with box.get_lock():
            box.value += amount

    def snapshot(self) -> dict[str, int]:
        return {name: int(box.value) for name, box in self.values.items()}


class MessageBatchDecider:
    """Parse, decide and record one micro-batch; shared by every source."""

    def __init__(self, settings: ServingSettings, path: RoutingPath = "stream") -> None:
        from monitoring.store import open_store
        from serving.casework import CaseDesk
        from serving.engine import DecisionEngine

        self.engine = DecisionEngine(settings)
        self.store = open_store(settings)
        self.path = path
        self.desk = CaseDesk.from_settings(
            settings, self.engine.router, enricher=self.engine.enricher, blocking=True
        )
        self._model_checked = time.monotonic()

    def decide(
        self, messages: list[tuple[str, str]], poll_model_every_s: float = 30.0
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str, str]]]:
        """Decisions for (message id, raw JSON) pairs, and the dead letters.

        Returns (message id, decision) for every valid message, stored before
        this returns, and (message id, raw, error) for every invalid one.
        """
        from serving.recording import records_for

        self._follow_champion(poll_model_every_s)
        tickets: list[Ticket] = []
        ids: list[str] = []
        events: list[tuple[str, ContextEvent]] = []
        dead: list[tuple[str, str, str]] = []
        for message_id, raw in messages:
            try:
                data = json.loads(raw)
                if isinstance(data, dict) and data.get("type") == CONTEXT_EVENT_TYPE:
                    fields = {k: v for k, v in data.items() if k != "type"}
                    events.append((message_id, ContextEvent.model_validate(fields)))
                    continue
                tickets.append(parse_ticket(data))
                ids.append(message_id)
            except (ValueError, InvalidTicketError) as err:
                dead.append((message_id, raw, _short_error(err)))

        decisions, answers, contexts = self.engine.decide_detailed(tickets)
        out: list[tuple[str, dict[str, Any]]] = []
        for index, (ticket, decision, message_id) in enumerate(
            zip(tickets, decisions, ids, strict=True)
        ):
            record = records_for([ticket], [decision], message_id, self.path)
            if self.store.append(record) == 1:
                out.append((message_id, decision.model_dump(mode="json")))
                # Only a decision that was stored becomes the case's: a
                # redelivery keeps the first one, case and notifications too.
                self.desk.record_now(
                    [ticket],
                    [contexts[index]],
                    [answers[index]],
                    [decision],
                    message_id,
                )
            else:
                out.append((message_id, self._stored(ticket.id, message_id)))
        out.extend(self._apply_events(events))
        return out, dead

    def close(self) -> None:
        self.desk.close()
        self.engine.close()
        self.store.close()

    def _apply_events(
        self, events: list[tuple[str, ContextEvent]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Each event's re-decisions, emitted under the event's message id."""
        out = []
        for message_id, event in events:
            outcome = asyncio.run(self.desk.apply_event(event, via=self.path))
            for reroute in outcome.redecided:
                stored = self.store.get(reroute.decision_id)
                if stored is not None:
                    out.append((message_id, _decision_fields(stored)))
        return out

    def _stored(self, ticket_id: str, message_id: str) -> dict[str, Any]:
        # A redelivery: emit the decision recorded the first time, not a new one.
        for stored in self.store.for_ticket(ticket_id):
            if stored["request_id"] == message_id:
                return _decision_fields(stored)
        raise RuntimeError(f"decision for message {message_id} vanished from store")

    def _follow_champion(self, every_s: float) -> None:
        if time.monotonic() - self._model_checked >= every_s:
            self._model_checked = time.monotonic()
            self.engine.classifier.refresh()


def run_stream(settings: ServingSettings, options: StreamOptions) -> dict[str, int]:
    """Run until stopped (SIGTERM / SIGINT), or idle when `stop_when_idle_s` is set."""
    source = parse_endpoint(options.source, needs_group=True)
    sink = parse_endpoint(options.sink, needs_group=False)
    if isinstance(source, FileEndpoint):
        return run_ndjson(settings, options, source, sink)
    if options.consumers == 1:
        counters = Counters.local()
        _serve_metrics(options, [counters], source)
        consume_redis(
            settings,
            options,
            source,
            sink,
            f"{options.consumer_prefix}-0",
            counters,
            _stop_on_signals(),
        )
        return counters.snapshot()
    return _run_consumer_processes(settings, options, source)


def consume_redis(
    settings: ServingSettings,
    options: StreamOptions,
    source: RedisEndpoint,
    sink: Endpoint,
    name: str,
    counters: Counters,
    stop: threading.Event,
) -> None:
    """One consumer of the group: read, decide, store, emit, acknowledge."""
    import redis

    client = redis.Redis.from_url(source.url, decode_responses=True)
    sink_client = _sink_client(sink, source, client)
    assert isinstance(sink, RedisEndpoint)
    _ensure_group(client, source)
    decider = MessageBatchDecider(settings)
    last_claim = 0.0
    idle_since = time.monotonic()
    log.info(
        "stream consumer started", extra={"consumer": name, "stream": source.stream}
    )
    try:
        while not stop.is_set():
            entries: list[tuple[str, dict[str, str]]] = []
            if time.monotonic() - last_claim >= options.claim_every_s:
                last_claim = time.monotonic()
                entries = _claim_stale(client, source, name, options)
                counters.add("redeliveries", len(entries))
            if not entries:
                entries = _read_batch(client, source, name, options)
            if not entries:
                if _is_drained(client, source, options, idle_since):
                    break
                continue
            idle_since = time.monotonic()
            _process(
                decider, client, sink_client, source, sink, entries, counters, options
            )
    finally:
        decider.close()
        log.info(
            "stream consumer stopped", extra={"consumer": name, **counters.snapshot()}
        )


def run_ndjson(
    settings: ServingSettings,
    options: StreamOptions,
    source: FileEndpoint,
    sink: Endpoint,
) -> dict[str, int]:
    """NDJSON lines in, NDJSON decisions out; invalid lines to a dead-letter file."""
    if not isinstance(sink, FileEndpoint):
        raise ConfigError("an NDJSON source needs an NDJSON sink (a file or -)")
    counters = Counters.local()
    stop = _stop_on_signals()
    decider = MessageBatchDecider(settings)
    lines: queue.Queue[tuple[int, str] | None] = queue.Queue(
        maxsize=options.max_batch * 4
    )
    name = "stdin" if source.is_std else str(Path(source.path).resolve())
    reader = threading.Thread(
        target=_read_lines, args=(source, lines, stop), daemon=True
    )
    reader.start()
    dead_path = Path(options.dead_letters or _dead_letter_path(sink))
    with _open_sink(sink) as out, dead_path.open("a", encoding="utf-8") as dead_out:
        finished = False
        while not finished and not stop.is_set():
            batch, finished = _collect(lines, options)
            if not batch:
                continue
            messages = [(f"ndjson:{name}:{number}", text) for number, text in batch]
            decided, dead = decider.decide(messages, options.poll_model_every_s)
            for _, decision in decided:
                out.write(json.dumps(decision) + "\n")
            for message_id, raw, error in dead:
                dead_out.write(
                    json.dumps(
                        {
                            "message_id": message_id,
                            "error": error,
                            "payload": raw[:10_000],
                        }
                    )
                    + "\n"
                )
            out.flush()
            dead_out.flush()
            counters.add("decided", len(decided))
            counters.add("dead_letters", len(dead))
            counters.add("batches")
    decider.close()
    return counters.snapshot()


def stream_lag(source: RedisEndpoint) -> int | None:
    """Entries of the stream the group has not yet read (Redis 7's `lag`)."""
    import redis

    client = redis.Redis.from_url(source.url, decode_responses=True)
    for group in client.xinfo_groups(source.stream):
        if group["name"] == source.group:
            lag = group.get("lag")
            return int(lag) if lag is not None else None
    return None


def _process(
    decider: MessageBatchDecider,
    client: Any,
    sink_client: Any,
    source: RedisEndpoint,
    sink: RedisEndpoint,
    entries: list[tuple[str, dict[str, str]]],
    counters: Counters,
    options: StreamOptions,
) -> None:
    messages = [(message_id, _payload(fields)) for message_id, fields in entries]
    decided, dead = decider.decide(messages, options.poll_model_every_s)

    # Decisions are stored by now. Emit them, then dead-letter the poison and
    # acknowledge in one MULTI: an ack never precedes its output, and a crash
    # in between only re-emits on redelivery.
    if decided:
        out = sink_client.pipeline(transaction=True)
        for message_id, decision in decided:
            out.xadd(sink.stream, _sink_fields(message_id, decision))
        out.execute()
    pipe = client.pipeline(transaction=True)
    for message_id, raw, error in dead:
        fields = {"message_id": message_id, "error": error, "payload": raw[:10_000]}
        pipe.xadd(source.dead_letter_stream, fields)
    pipe.xack(source.stream, source.group, *[message_id for message_id, _ in entries])
    pipe.execute()

    counters.add("decided", len(decided))
    counters.add("dead_letters", len(dead))
    counters.add("batches")
    if dead:
        log.warning(
            "messages dead-lettered",
            extra={"count": len(dead), "stream": source.stream},
        )


def _read_batch(
    client: Any, source: RedisEndpoint, name: str, options: StreamOptions
) -> list[tuple[str, dict[str, str]]]:
    """Up to max_batch new entries, waiting at most max_wait_ms to fill them."""
    deadline = time.monotonic() + options.max_wait_ms / 1000
    entries: list[tuple[str, dict[str, str]]] = []
    block_ms = options.max_wait_ms
    while len(entries) < options.max_batch:
        reply = client.xreadgroup(
            source.group,
            name,
            {source.stream: ">"},
            count=options.max_batch - len(entries),
            block=max(block_ms, 1),
        )
        found = reply[0][1] if reply else []
        entries.extend(found)
        block_ms = int((deadline - time.monotonic()) * 1000)
        if not found or block_ms <= 0:
            break
    return entries


def _claim_stale(
    client: Any, source: RedisEndpoint, name: str, options: StreamOptions
) -> list[tuple[str, dict[str, str]]]:
    """Entries another consumer left pending longer than the idle timeout."""
    reply = client.xautoclaim(
        source.stream,
        source.group,
        name,
        min_idle_time=options.idle_timeout_ms,
        start_id="0-0",
        count=options.max_batch,
    )
    claimed = reply[1] if len(reply) > 1 else []
    # Entries deleted from the stream while pending come back as None.
    return [(message_id, fields) for message_id, fields in claimed if fields]


def _is_drained(
    client: Any, source: RedisEndpoint, options: StreamOptions, idle_since: float
) -> bool:
    if options.stop_when_idle_s is None:
        return False
    if time.monotonic() - idle_since < options.stop_when_idle_s:
        return False
    pending = client.xpending(source.stream, source.group)
    return int(pending["pending"]) == 0 and not stream_lag(source)


def _ensure_group(client: Any, source: RedisEndpoint) -> None:
    import redis

    try:
        client.xgroup_create(source.stream, source.group, id="0", mkstream=True)
    except redis.ResponseError as err:
        if "BUSYGROUP" not in str(err):
            raise


def _payload(fields: dict[str, str]) -> str:
    # Producers send {"ticket": "<json>"}; flat field maps are accepted too.
    if "ticket" in fields:
        return fields["ticket"]
    return json.dumps(fields)


def _sink_fields(message_id: str, decision: dict[str, Any]) -> dict[str, str]:
    return {
        "message_id": message_id,
        "ticket_id": decision["ticket_id"],
        "decision": json.dumps(decision),
    }


def _sink_client(sink: Endpoint, source: RedisEndpoint, source_client: Any) -> Any:
    import redis

    if not isinstance(sink, RedisEndpoint):
        raise ConfigError("a Redis Streams source needs a redis:// sink")
    if sink.url == source.url:
        return source_client
    return redis.Redis.from_url(sink.url, decode_responses=True)


def _run_consumer_processes(
    settings: ServingSettings, options: StreamOptions, source: RedisEndpoint
) -> dict[str, int]:
    context = multiprocessing.get_context("spawn")
    counters = [Counters.shared(context) for _ in range(options.consumers)]
    # The consumers share this machine's cores: each encodes on its share.
    threads = settings.torch_threads or max(
        1, (os.cpu_count() or 1) // options.consumers
    )
    settings = settings.model_copy(update={"torch_threads": threads})
    _serve_metrics(options, counters, source)
    processes = [
        context.Process(
            target=_consumer_main,
            args=(
                settings.model_dump(mode="json"),
                options,
                index,
                counters[index].values,
            ),
            name=f"{options.consumer_prefix}-{index}",
        )
        for index in range(options.consumers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: Any) -> None:
        for process in processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    totals = {name: 0 for name in COUNTER_NAMES}
    for counter in counters:
        for name, value in counter.snapshot().items():
            totals[name] += value
    return totals


def _serve_metrics(
    options: StreamOptions, counters: list[Counters], source: RedisEndpoint
) -> None:
    """Prometheus on `metrics_port`: throughput counters, dead letters, lag."""
    if options.metrics_port is None:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(StreamCollector(counters, source))
    start_http_server(options.metrics_port, addr="127.0.0.1", registry=registry)


class StreamCollector:
    """Reads the consumers' shared counters and the group's lag at scrape time."""

    def __init__(self, counters: list[Counters], source: RedisEndpoint) -> None:
        self.counters = counters
        self.source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        help_texts = {
            "decided": "Messages decided and stored.",
            "dead_letters": "Messages sent to the dead-letter stream.",
            "redeliveries": "Messages claimed from a consumer that went idle.",
            "batches": "Micro-batches processed.",
        }
        for name, text in help_texts.items():
            family = CounterMetricFamily(
                f"switchboard_stream_{name}", text, labels=["consumer"]
            )
            for index, counter in enumerate(self.counters):
                family.add_metric([str(index)], counter.snapshot()[name])
            yield family
        lag = GaugeMetricFamily(
            "switchboard_stream_consumer_lag",
            "Entries of the stream the consumer group has not read yet.",
            labels=["stream", "group"],
        )
        try:
            value = stream_lag(self.source)
        except Exception:  # a scrape must not fail because Redis blinked
            value = None
        if value is not None:
            lag.add_metric([self.source.stream, self.source.group or ""], value)
        yield lag


def _consumer_main(
    settings: dict[str, Any], options: StreamOptions, index: int, values: dict[str, Any]
) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    source = parse_endpoint(options.source, needs_group=True)
    sink = parse_endpoint(options.sink, needs_group=False)
    assert isinstance(source, RedisEndpoint)
    consume_redis(
        ServingSettings.model_validate(settings),
        options,
        source,
        sink,
        f"{options.consumer_prefix}-{index}",
        Counters(values),
        _stop_on_signals(),
    )


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM / SIGINT: finish the batch in flight, then exit."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    return stop


def _read_lines(
    source: FileEndpoint,
    lines: queue.Queue[tuple[int, str] | None],
    stop: threading.Event,
) -> None:
    # A bounded queue: the reader waits while decisions are being made.
    try:
        with _open_source(source) as handle:
            for number, line in enumerate(handle, start=1):
                if stop.is_set():
                    break
                if line.strip():
                    lines.put((number, line.rstrip("\n")))
    finally:
        lines.put(None)


def _collect(
    lines: queue.Queue[tuple[int, str] | None], options: StreamOptions
) -> tuple[list[tuple[int, str]], bool]:
    batch: list[tuple[int, str]] = []
    deadline = time.monotonic() + options.max_wait_ms / 1000
    while len(batch) < options.max_batch:
        timeout = deadline - time.monotonic()
        try:
            item = (
                lines.get(timeout=max(timeout, 0.001))
                if batch
                else lines.get(timeout=1)
            )
        except queue.Empty:
            break
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False


class _Box:
    """A counter with the `multiprocessing.Value` interface, for one process."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self) -> threading.Lock:
        return self._lock


def _open_source(source: FileEndpoint) -> Any:
    if source.is_std:
        return nullcontext(sys.stdin)
    return Path(source.path).open(encoding="utf-8")


def _open_sink(sink: FileEndpoint) -> Any:
    if sink.is_std:
        return nullcontext(sys.stdout)
    Path(sink.path).parent.mkdir(parents=True, exist_ok=True)
    return Path(sink.path).open("a", encoding="utf-8")


def _dead_letter_path(sink: FileEndpoint) -> str:
    if sink.is_std:
        return "dead-letters.ndjson"
    path = Path(sink.path)
    return str(path.with_name(path.stem + ".dead-letters.ndjson"))


def _decision_fields(stored: dict[str, Any]) -> dict[str, Any]:
    from serving.decision import Decision

    fields = set(Decision.model_fields)
    values = {key: value for key, value in stored.items() if key in fields}
    return Decision.model_validate(values).model_dump(mode="json")


def _short_error(err: Exception) -> str:
    return str(err)[:500]


def _redact(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(parsed.password, "***")
    return uri


def iter_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    """Decisions (or any objects) of an NDJSON file, one per line."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
