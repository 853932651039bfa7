"""Batch classification on Ray Data: a file or folder in, decisions out.

Rows are normalised into tickets, decided by an actor pool (encoder loaded
once per actor) through the same policy as the online service, and written
as parquet beside the input's id columns to `OUTPUT/decisions/`. Rows that
fail validation go to `OUTPUT/rejects/` with their error; rows in = decided +
rejected, checked.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataError, InvalidTicketError
from features.schema import ticket_from_row
from serving.decision import Decision
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

# Every Decision field, in order: one output column each.
DECISION_COLUMNS = tuple(Decision.model_fields)
_STATUS = "_switchboard_status"
_ERROR = "error"


@dataclass
class BatchReport:
    rows_in: int
    rows_decided: int
    rows_rejected: int
    output: str
    rejects: str
    model_version: str | None
    by_mode: dict[str, int]
    job_id: str

    @property
    def is_balanced(self) -> bool:
        return self.rows_in == self.rows_decided + self.rows_rejected


@dataclass(frozen=True)
class BatchOptions:
    input: str
    output: str
    rejects: str | None = None
    id_columns: tuple[str, ...] = ("id",)
    # Rows per actor call: a large call sorts more texts by length before
    # encoding them in groups of `encode_batch_size`, so less is padding.
    batch_size: int = 256
    actors: int = 1
    # Fractions: Ray Data lists files with a whole-CPU task, so the pool must
    # leave one CPU free or the job waits forever on 2 cores.
    actor_cpus: float = 0.5
    input_format: str | None = None
    job_id: str = field(default_factory=lambda: f"batch-{uuid.uuid4()}")


class BatchDecider:
    """Ray Data callable: one `DecisionEngine` per actor, reused for every batch."""

    def __init__(
        self, settings: dict[str, Any], id_columns: tuple[str, ...], job_id: str
    ) -> None:
        from monitoring.store import open_store
        from serving.engine import DecisionEngine

        serving_settings = ServingSettings.model_validate(settings)
        self.engine = DecisionEngine(serving_settings)
        self.id_columns = id_columns
        self.job_id = job_id
        self.store = (
            open_store(serving_settings) if serving_settings.record_decisions else None
        )

    def __call__(self, batch: pd.DataFrame) -> Any:
        return decide_frame(self.engine, batch, self.id_columns, self._record)

    def _record(self, tickets: list[Any], decisions: list[Any]) -> None:
        # Written before the batch is handed on: a finished job is fully recorded.
        if self.store is not None and decisions:
            from serving.recording import records_for

            self.store.append(records_for(tickets, decisions, self.job_id, "batch"))


def _threads_per_actor(options: BatchOptions, ray_address: str | None) -> int:
    # Locally every actor shares this machine's cores; on a cluster an actor
    # gets what it reserved, as the workers' cores are not known here.
    if ray_address is None:
        return max(1, (os.cpu_count() or 1) // options.actors)
    return max(1, round(options.actor_cpus))


def decide_frame(
    engine: Any,
    batch: pd.DataFrame,
    id_columns: tuple[str, ...],
    on_decided: Callable[[list[Any], list[Any]], None] | None = None,
) -> Any:
    """Decide the valid rows of a frame; invalid rows come back with their error."""
    records = batch.to_dict(orient="records")
    tickets, positions, out_rows = [], [], []
    for position, record in enumerate(records):
        ids = {column: _plain(record.get(column)) for column in id_columns}
        try:
            tickets.append(ticket_from_row(record))
            positions.append(position)
            out_rows.append({**ids, _STATUS: "decided", _ERROR: None})
        except InvalidTicketError as err:
            out_rows.append({**ids, _STATUS: "rejected", _ERROR: str(err)})

    decisions = engine.decide_many(tickets)
    if on_decided is not None:
        on_decided(tickets, decisions)
    by_position = dict(zip(positions, decisions, strict=True))
    rows = []
    for position, row in enumerate(out_rows):
        decision = by_position.get(position)
        values = decision.model_dump(mode="json") if decision else {}
        rows.append(
            {**row, **{c: _column_value(values.get(c)) for c in DECISION_COLUMNS}}
        )
    return _table(rows, id_columns)


def _table(rows: list[dict[str, Any]], id_columns: tuple[str, ...]) -> Any:
    """Rows as an arrow table with one fixed schema, whatever the batch holds.

    Without it a batch of only rejected rows would give null-typed columns and
    blocks whose schemas cannot be written to one parquet data set.
    """
    import pyarrow as pa

    floats = {"confidence", "latency_ms"}
    names = [*id_columns, _STATUS, _ERROR, *DECISION_COLUMNS]
    schema = pa.schema(
        [(name, pa.float64() if name in floats else pa.string()) for name in names]
    )
    columns = {
        name: [
            None
            if row.get(name) is None
            else (float(row[name]) if name in floats else str(row[name]))
            for row in rows
        ]
        for name in names
    }
    return pa.Table.from_pydict(columns, schema=schema)


def run_batch(
    settings: ServingSettings,
    options: BatchOptions,
    *,
    ray_address: str | None = None,
) -> BatchReport:
    """Run one batch job; the caller owns nothing Ray afterwards."""
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    from serving.local import start_ray

    if ray_address:
        ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
    else:
        start_ray()
    context = DataContext.get_current()
    context.enable_progress_bars = True
    context.enable_rich_progress_bars = os.isatty(2)

    dataset = _read(options.input, options.input_format)
    rows_in = dataset.count()
    if rows_in == 0:
        raise DataError(f"{options.input}: no rows to classify")
    # One parquet file is one block: split it so every actor gets work.
    dataset = dataset.repartition(max(options.actors * 4, 1))
    threads = settings.torch_threads or _threads_per_actor(options, ray_address)
    actor_settings = settings.model_copy(update={"torch_threads": threads})
    decided = dataset.map_batches(
        BatchDecider,
        fn_constructor_args=(
            actor_settings.model_dump(mode="json"),
            options.id_columns,
            options.job_id,
        ),
        batch_size=options.batch_size,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=options.actors),
        num_cpus=options.actor_cpus,
    ).materialize()

    rejects = options.rejects or _join(options.output, "rejects")
    accepted = decided.filter(lambda row: row[_STATUS] == "decided")
    refused = decided.filter(lambda row: row[_STATUS] == "rejected")
    rows_decided, rows_rejected = accepted.count(), refused.count()
    # Decisions and rejects are sibling data sets, so a reader of one never
    # picks up the other's files.
    decisions_uri = _join(options.output, "decisions")
    accepted.drop_columns([_STATUS, _ERROR]).write_parquet(decisions_uri)
    if rows_rejected:
        refused.select_columns([*options.id_columns, _ERROR]).write_parquet(rejects)

    modes = accepted.groupby("mode").count().to_pandas()
    report = BatchReport(
        rows_in=rows_in,
        rows_decided=rows_decided,
        rows_rejected=rows_rejected,
        output=decisions_uri,
        rejects=rejects,
        model_version=_champion_version(settings),
        by_mode={str(r["mode"]): int(r["count()"]) for r in modes.to_dict("records")},
        job_id=options.job_id,
    )
    log.info(
        "batch finished",
        extra={"rows_in": rows_in, "decided": rows_decided, "rejected": rows_rejected},
    )
    return report


def _read(uri: str, input_format: str | None) -> Any:
    import ray

    kind = input_format or _infer_format(uri)
    readers = {
        "parquet": ray.data.read_parquet,
        "csv": ray.data.read_csv,
        "jsonl": ray.data.read_json,
    }
    if kind not in readers:
        raise DataError(
            f"{uri}: unknown input format {kind!r}; use parquet, csv or jsonl"
        )
    try:
        # Reading is light next to encoding: a quarter CPU per read task keeps
        # the actor pool from starving the reads (or the reads the actors).
        return readers[kind](uri, num_cpus=0.25)
    except (OSError, ValueError) as err:
        raise DataError(f"{uri}: cannot be read as {kind}: {err}") from err


def _infer_format(uri: str) -> str:
    path = Path(uri.split("://", 1)[-1])
    suffixes = {
        ".parquet": "parquet",
        ".pq": "parquet",
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "jsonl",
    }
    if path.suffix.lower() in suffixes:
        return suffixes[path.suffix.lower()]
    if path.is_dir():
        found = {suffixes.get(p.suffix.lower()) for p in path.iterdir() if p.is_file()}
        found.discard(None)
        if len(found) == 1:
            return str(found.pop())
    return "parquet"


def _champion_version(settings: ServingSettings) -> str | None:
    from training.service import champion_or_none

    champion = champion_or_none(settings)
    return champion.version if champion else None


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, str | list | dict):
        return value.item()
    return value


def _column_value(value: Any) -> Any:
    # Lists and nested objects become JSON text: one flat, typed parquet schema.
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value
