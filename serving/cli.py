"""The `switchboard` command: train, evaluate, promote, list models, serve.

Readable tables and progress bars on a terminal; one JSON object on stdout
with `--json`. Heavy imports happen inside the commands so `--help` is quick.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from features.errors import SwitchboardError

app = typer.Typer(
    help="Switchboard: governed support-ticket routing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
log = logging.getLogger(__name__)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
TextColumnOption = Annotated[str, typer.Option(help="Column holding the ticket text.")]
LabelColumnOption = Annotated[str, typer.Option(help="Column holding the queue label.")]
SplitColumnOption = Annotated[
    str, typer.Option(help="Column with train / validation / test values, if any.")
]
OosOption = Annotated[
    str | None,
    typer.Option(
        "--out-of-scope-label",
        help="Label of rows no queue should take: left out of training; in "
        "evaluation right only when the model abstains.",
    ),
]


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at INFO.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def train(
    data: Annotated[
        Path, typer.Option(help="Parquet, CSV or JSONL file of labelled tickets.")
    ],
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    split_column: SplitColumnOption = "split",
    out_of_scope_label: OosOption = None,
    target_precision: Annotated[
        float | None, typer.Option(help="Validation precision the thresholds aim for.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a model version on labelled tickets and register it as challenger."""
    from training.service import DataOptions
    from training.service import train as run_training

    options = DataOptions(text_column, label_column, split_column, out_of_scope_label)
    with _failures(), _progress(as_json) as hooks:
        result = run_training(
            _settings(),
            data,
            options,
            overrides={"target_precision": target_precision},
            **hooks,
        )
    if as_json:
        _print_json(result)
        return
    console = Console()
    console.print(
        f"[bold]Registered {result['model']} version {result['model_version']}[/] "
        f"(alias challenger, run {result['run_id']})"
    )
    _print_metrics(console, result["metrics"])
    if result["rare_labels"]:
        console.print(
            "[yellow]Labels with too few training rows (never auto-routed):[/] "
            + ", ".join(f"{k} ({v})" for k, v in sorted(result["rare_labels"].items()))
        )


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Labelled tickets to score.")],
    model: Annotated[
        str, typer.Option(help="Version number, champion or challenger.")
    ] = "champion",
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    split_column: SplitColumnOption = "split",
    split: Annotated[
        str | None,
        typer.Option(help="Score only this split (default: test if present)."),
    ] = None,
    out_of_scope_label: OosOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a registered model version on labelled tickets."""
    from training.service import DataOptions
    from training.service import evaluate as run_evaluation

    options = DataOptions(text_column, label_column, split_column, out_of_scope_label)
    with _failures():
        result = run_evaluation(_settings(), model, data, options, split=split)
    if as_json:
        _print_json(result)
        return
    console = Console()
    console.print(
        f"[bold]{result['model']} version {result['model_version']}[/] "
        f"on {data} ({result['split']} rows)"
    )
    _print_metrics(console, result["metrics"])
    _print_per_queue(console, result["per_queue"])


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Version number or alias to promote.")],
    reason: Annotated[str, typer.Option(help="Why, recorded on the version.")],
    by: Annotated[
        str | None, typer.Option(help="Who promotes (default: the current user).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the promotion gates and, if they pass, make a version champion."""
    from features.errors import GateFailedError
    from training.service import promote_version

    try:
        result = promote_version(_settings(), version, reason, promoted_by=by)
    except GateFailedError as err:
        if as_json:
            _print_json(
                {"promoted": False, "version": version, "failures": err.failures}
            )
        else:
            Console(stderr=True).print(f"[red]Promotion of {version} refused:[/]")
            for failure in err.failures:
                Console(stderr=True).print(f"  {failure}")
        raise typer.Exit(1) from err
    except SwitchboardError as err:
        _fail(err)
    payload: dict[str, Any] = {
        "promoted": True,
        "version": result.version,
        "previous_champion": result.previous_champion,
        "promoted_by": result.promoted_by,
        "reason": result.reason,
        "promoted_at": result.promoted_at,
        "gates": [check.describe() for check in result.checks],
    }
    if as_json:
        _print_json(payload)
        return
    console = Console()
    console.print(f"[bold green]Version {result.version} is now champion.[/]")
    for line in payload["gates"]:
        console.print(f"  {line}")


@app.command()
def models(as_json: JsonOption = False) -> None:
    """List the registered versions with aliases, metrics and thresholds."""
    from features.settings import Settings
    from training.registry import list_versions

    settings: Settings = _settings()
    with _failures():
        versions = list_versions(settings)
    rows = [
        {
            "version": v.version,
            "aliases": v.aliases,
            "metrics": v.metrics,
            "thresholds": json.loads(v.tags.get("thresholds", "{}")),
            "promoted_by": v.tags.get("promoted_by"),
            "promoted_reason": v.tags.get("promoted_reason"),
            "data_hash": v.tags.get("data_hash"),
            "run_id": v.run_id,
        }
        for v in versions
    ]
    if as_json:
        _print_json({"model": settings.registered_model, "versions": rows})
        return
    console = Console()
    if not rows:
        console.print(
            f"No versions of {settings.registered_model} yet: run `switchboard train`."
        )
        return
    table = Table(title=settings.registered_model)
    for column in (
        "version",
        "aliases",
        "macro_f1",
        "coverage",
        "ece",
        "global thr.",
        "min sim.",
        "promoted by",
    ):
        table.add_column(column)
    for row in rows:
        metrics, thresholds = row["metrics"], row["thresholds"]
        table.add_row(
            row["version"],
            ", ".join(row["aliases"]),
            _fmt(metrics.get("macro_f1")),
            _fmt(metrics.get("coverage")),
            _fmt(metrics.get("ece")),
            _fmt(thresholds.get("global")),
            _fmt(thresholds.get("min_similarity")),
            row["promoted_by"] or "",
        )
    console.print(table)


@app.command()
def bootstrap(as_json: JsonOption = False) -> None:
    """Train and promote the default model on the bundled sample if none is champion."""
    from training.service import ensure_default_model

    with _failures(), _progress(as_json) as hooks:
        version = ensure_default_model(_settings(), **hooks)
    payload = {"model": version.name, "champion": version.version, **version.metrics}
    if as_json:
        _print_json(payload)
    else:
        Console().print(f"Champion: {version.name} version {version.version}")


def _settings() -> Any:
    from features.settings import Settings

    return Settings()


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except SwitchboardError as err:
        _fail(err)


def _fail(err: SwitchboardError) -> None:
    Console(stderr=True).print(f"[red]error:[/] {err}")
    raise typer.Exit(2) from err


@contextmanager
def _progress(quiet: bool) -> Iterator[dict[str, Callable[..., None]]]:
    """Hooks that drive a progress bar on stderr (silent with --json)."""
    if quiet or not sys.stderr.isatty():
        console = Console(stderr=True, quiet=quiet)
        yield {"on_step": lambda message: console.print(f"- {message}")}
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("encoding", total=None)
        yield {
            "on_step": lambda message: progress.console.print(f"- {message}"),
            "on_total": lambda total: progress.update(task, total=total),
            "on_encoded": lambda count: progress.advance(task, count),
        }


def _print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _print_metrics(console: Console, metrics: dict[str, Any]) -> None:
    table = Table(title="test metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, _fmt(value))
    console.print(table)


def _print_per_queue(console: Console, per_queue: dict[str, dict[str, Any]]) -> None:
    if len(per_queue) > 40:
        return
    table = Table(title="per queue")
    for column in ("queue", "precision", "recall", "coverage", "support"):
        table.add_column(column, justify="right" if column != "queue" else "left")
    for queue, row in per_queue.items():
        table.add_row(
            queue,
            _fmt(row["precision"]),
            _fmt(row["recall"]),
            _fmt(row["coverage"]),
            str(row["support"]),
        )
    console.print(table)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (needs API keys).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port.")] = None,
) -> None:
    """Start the service on a local Ray with the embedded defaults.

    With no champion in the registry it first trains and promotes the default
    model on the bundled sample. Ctrl-C or SIGTERM stops the service and Ray.
    """
    import signal
    import threading

    from serving.config_versions import (
        record_versions_in_force,
        start_escalation_scheduler,
    )
    from serving.local import bind_host, deploy, shutdown, start_ray
    from serving.settings import ServingSettings
    from training.service import ensure_default_model

    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = ServingSettings().model_copy(update=updates)
    console = Console(stderr=True)
    with _failures():
        with _progress(False) as hooks:
            version = ensure_default_model(settings, **hooks)
        console.print(f"champion: {version.name} version {version.version}")
        console.print("starting Ray and the service ...")
        start_ray()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            deploy(settings)
            record_versions_in_force(settings)
            start_escalation_scheduler(settings, stop)
            url = f"http://{bind_host(settings)}:{settings.port}"
            console.print(
                f"[bold green]Switchboard is answering on {url}[/] "
                "(docs at /docs); Ctrl-C stops it"
            )
            stop.wait()
        finally:
            console.print("stopping the service and Ray ...")
            shutdown()


@app.command()
def batch(
    input: Annotated[
        str, typer.Option("--input", help="Parquet, CSV or JSONL file, folder or URI.")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", help="Folder or URI: decisions/ and rejects/ go inside."
        ),
    ],
    rejects: Annotated[
        str | None, typer.Option(help="Where invalid rows go (default OUTPUT/rejects).")
    ] = None,
    id_columns: Annotated[
        str,
        typer.Option(help="Comma-separated input columns copied beside each decision."),
    ] = "id",
    batch_size: Annotated[
        int,
        typer.Option(
            min=1, help="Tickets per actor call, length-sorted before encoding."
        ),
    ] = 256,
    actors: Annotated[
        int, typer.Option(min=1, help="Classifier actors (one encoder each).")
    ] = 1,
    input_format: Annotated[
        str | None,
        typer.Option("--format", help="parquet, csv or jsonl (default: from name)."),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Run on this Ray cluster instead of a local Ray.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Classify a whole archive with Ray Data, by the same policy as the service."""
    from serving.batch import BatchOptions, run_batch
    from serving.local import shutdown
    from serving.settings import ServingSettings
    from training.service import champion_or_none

    settings = ServingSettings()
    console = Console(stderr=True, quiet=as_json)
    options = BatchOptions(
        input=input,
        output=output,
        rejects=rejects,
        id_columns=tuple(c.strip() for c in id_columns.split(",") if c.strip()),
        batch_size=batch_size,
        actors=actors,
        input_format=input_format,
    )
    with _failures():
        if champion_or_none(settings) is None:
            console.print("[yellow]No champion: every ticket is routed by rules.[/]")
        try:
            report = run_batch(settings, options, ray_address=ray_address)
        finally:
            if ray_address is None:
                shutdown()
    payload = {**report.__dict__, "balanced": report.is_balanced}
    if as_json:
        _print_json(payload)
    else:
        out = Console()
        verdict = "[green]balanced[/]" if report.is_balanced else "[red]MISMATCH[/]"
        out.print(
            f"rows in {report.rows_in} = decided {report.rows_decided} + rejected "
            f"{report.rows_rejected}: {verdict}"
        )
        out.print(f"decisions: {report.output}   rejects: {report.rejects}")
        out.print(
            "by mode: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report.by_mode.items()))
        )
    if not report.is_balanced:
        raise typer.Exit(3)


@app.command()
def stream(
    source: Annotated[
        str,
        typer.Option(
            help="redis://host:port/db?stream=S&group=G, an NDJSON file, or -"
        ),
    ],
    sink: Annotated[
        str, typer.Option(help="redis://host:port/db?stream=S, an NDJSON file, or -")
    ],
    consumers: Annotated[
        int, typer.Option(min=1, help="Consumer processes sharing the group.")
    ] = 1,
    consumer_name: Annotated[
        str | None, typer.Option(help="Name prefix of this process's consumers.")
    ] = None,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Messages per micro-batch.")
    ] = 32,
    max_wait_ms: Annotated[
        int, typer.Option(min=1, help="Longest wait to fill a micro-batch.")
    ] = 200,
    idle_timeout_ms: Annotated[
        int, typer.Option(min=100, help="Claim others' pending entries idle this long.")
    ] = 30_000,
    dead_letters: Annotated[
        str | None,
        typer.Option(help="NDJSON source: dead-letter file (default: beside sink)."),
    ] = None,
    stop_when_idle: Annotated[
        float | None,
        typer.Option(help="Exit once nothing arrived for this many seconds."),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus metrics on 127.0.0.1:PORT.")
    ] = None,
) -> None:
    """Decide a live stream of tickets: Redis Streams or NDJSON. SIGTERM drains."""
    from serving.settings import ServingSettings
    from serving.stream import StreamOptions, run_stream

    options = StreamOptions(
        source=source,
        sink=sink,
        consumers=consumers,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        idle_timeout_ms=idle_timeout_ms,
        claim_every_s=min(5.0, idle_timeout_ms / 2000),
        dead_letters=dead_letters,
        stop_when_idle_s=stop_when_idle,
        metrics_port=metrics_port,
    )
    if consumer_name:
        options = dataclasses.replace(options, consumer_prefix=consumer_name)
    with _failures():
        totals = run_stream(ServingSettings(), options)
    Console(stderr=True).print(
        "stream stopped: " + ", ".join(f"{k} {v}" for k, v in totals.items())
    )


config_app = typer.Typer(
    help="Governed files (rules, automation, SLA, ...): who changed what, and why."
)
app.add_typer(config_app, name="config")
ConfigKindArgument = Annotated[
    str, typer.Argument(help="rules, automation, sla, connectors or thresholds.")
]


@config_app.command("record")
def config_record(
    kind: ConfigKindArgument,
    path: Annotated[Path, typer.Argument(help="The file brought into force.")],
    by: Annotated[str, typer.Option("--by", help="Who made the change.")],
    why: Annotated[str, typer.Option("--why", help="Why it was made.")],
    as_json: JsonOption = False,
) -> None:
    """Validate a governed file and record who brought its version in, and why.

    Review the change with `switchboard replay` first; record it when it goes
    live. Every decision names the versions it used.
    """
    from monitoring.governance import CONFIG_KINDS, GovernanceLog
    from monitoring.store import open_store
    from serving.config_versions import version_of
    from serving.settings import ServingSettings

    if kind not in CONFIG_KINDS:
        Console(stderr=True).print(
            f"[red]error:[/] unknown kind {kind!r}; one of {', '.join(CONFIG_KINDS)}"
        )
        raise typer.Exit(2)
    with _failures():
        settings = ServingSettings()
        version = version_of(kind, path, settings)  # type: ignore[arg-type]
        store = open_store(settings)
        try:
            is_new = GovernanceLog(store).record_config_change(
                kind=kind,  # type: ignore[arg-type]
                version=version,
                source=str(path),
                changed_by=by,
                reason=why,
            )
        except ValueError as err:
            Console(stderr=True).print(f"[red]error:[/] {err}")
            raise typer.Exit(2) from err
        finally:
            store.close()
    result = {"kind": kind, "version": version, "recorded": is_new}
    if as_json:
        _print_json(result)
    elif is_new:
        Console().print(f"{kind} version {version} recorded, by {by}")
    else:
        Console().print(
            f"{kind} version {version} was already on the record; the first "
            "record stands"
        )


@config_app.command("history")
def config_history(
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every recorded change, oldest first: kind, version, who, why, when."""
    from monitoring.governance import GovernanceLog
    from monitoring.store import open_store

    with _failures():
        store = open_store(_settings())
        try:
            rows = GovernanceLog(store).config_changes(kind)
        finally:
            store.close()
    if as_json:
        _print_json({"changes": rows})
        return
    table = Table(title="config changes")
    for column in ("at", "kind", "version", "by", "why", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["at"].isoformat(timespec="seconds"),
            row["kind"],
            row["version"],
            row["changed_by"],
            row["reason"],
            row["source"],
        )
    Console().print(table)


@app.command()
def escalate(as_json: JsonOption = False) -> None:
    """Run the escalation scheduler once: record every SLA level now reached.

    `switchboard serve` runs it every minute; this is for cron or a check.
    A level already recorded for a ticket is never recorded again.
    """
    from features.taxonomy import load_taxonomy
    from monitoring.escalation import run_scheduler_once
    from monitoring.governance import GovernanceLog
    from monitoring.sla import load_sla_policy
    from monitoring.store import open_store
    from serving.config_versions import StepAnnouncer
    from serving.settings import ServingSettings

    with _failures():
        settings = ServingSettings()
        policy = load_sla_policy(
            settings.sla_path, taxonomy=load_taxonomy(settings.taxonomy_path)
        )
        store = open_store(settings)
        try:
            announce = StepAnnouncer(settings, policy, GovernanceLog(store))
            steps = run_scheduler_once(settings, notify=announce)
        finally:
            store.close()
    if as_json:
        _print_json({"steps": [step.model_dump(mode="json") for step in steps]})
        return
    console = Console()
    console.print(f"{len(steps)} escalation step(s) recorded")
    for step in steps:
        rota = f" (on call: {step.rota})" if step.rota else ""
        console.print(
            f"  {step.ticket_id}: {step.target} -> {step.level}{rota}: {step.reason}"
        )


audit_app = typer.Typer(help="Check the decision store's tamper-evident hash chain.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Recompute every hash; exit 1 naming changed, removed or inserted rows."""
    from monitoring.audit import verify_chain
    from monitoring.store import open_store

    with _failures():
        store = open_store(_settings())
        report = verify_chain(store)
        store.close()
    if as_json:
        _print_json(report.to_dict())
    else:
        console = Console()
        verdict = "[green]intact[/]" if report.ok else "[red]BROKEN[/]"
        console.print(f"{report.rows_checked} decisions checked: chain {verdict}")
        for problem in report.problems:
            console.print(
                f"  {problem.kind} at seq {problem.seq} "
                f"(decision {problem.decision_id}): {problem.detail}"
            )
    if not report.ok:
        raise typer.Exit(1)


feedback_app = typer.Typer(help="Record what happened to tickets after routing.")
app.add_typer(feedback_app, name="feedback")
# Rejected rows printed on a terminal; --rejects gets them all.
_REJECTS_SHOWN = 20


@feedback_app.command("import")
def feedback_import(
    file: Annotated[
        Path, typer.Argument(help="CSV, JSONL or parquet of feedback events.")
    ],
    rejects: Annotated[
        Path | None, typer.Option(help="Write every rejected row here as JSONL.")
    ] = None,
    submitted_by: Annotated[
        str | None, typer.Option(help="Recorded as the sender (default: cli:USER).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store feedback events from a file; exit 1 if any row was rejected.

    Columns are the fields of POST /v1/feedback (feedback_id, ticket_id,
    final_queue, override_by, override_reason, opened_at, first_response_at,
    escalated_at, resolved_at, ...). Valid rows are stored even when others
    are rejected; a feedback_id already stored is skipped.
    """
    import getpass

    from features.taxonomy import load_taxonomy
    from monitoring.feedback import MAX_EVENTS_PER_CALL, read_feedback_file
    from monitoring.store import open_store

    settings = _settings()
    sender = submitted_by or f"cli:{getpass.getuser()}"
    with _failures():
        result = read_feedback_file(file, load_taxonomy(settings.taxonomy_path))
        stored = 0
        with open_store(settings) as store:
            for start in range(0, len(result.events), MAX_EVENTS_PER_CALL):
                chunk = result.events[start : start + MAX_EVENTS_PER_CALL]
                stored += len(store.append_feedback(chunk, sender))
    rejected = [reject.to_dict() for reject in result.rejects]
    if rejects is not None:
        rejects.parent.mkdir(parents=True, exist_ok=True)
        rejects.write_text("".join(json.dumps(row) + "\n" for row in rejected))
    payload = {
        "file": str(file),
        "rows": result.rows,
        "stored": stored,
        "duplicates": len(result.events) - stored,
        "rejected": len(rejected),
        "rejects": rejected if rejects is None else str(rejects),
    }
    if as_json:
        _print_json(payload)
    else:
        _print_import(Console(), payload, rejected)
    if rejected:
        raise typer.Exit(1)


def _print_import(
    console: Console, payload: dict[str, Any], rejected: list[dict[str, Any]]
) -> None:
    console.print(
        f"{payload['rows']} rows: stored {payload['stored']}, already stored "
        f"{payload['duplicates']}, rejected {payload['rejected']}"
    )
    for reject in rejected[:_REJECTS_SHOWN]:
        problems = "; ".join(
            f"{p['field']}: {p['message']}"
            + (f" (limit: {p['limit']})" if p["limit"] else "")
            for p in reject["problems"]
        )
        console.print(f"  [red]row {reject['row']}[/]: {problems}", highlight=False)
    if len(rejected) > _REJECTS_SHOWN:
        console.print(
            f"  ... and {len(rejected) - _REJECTS_SHOWN} more (use --rejects FILE)"
        )


@app.command()
def metrics(
    since: Annotated[
        str, typer.Option(help="Start: ISO date or time, or a duration like 7d, 24h.")
    ] = "7d",
    until: Annotated[
        str | None, typer.Option(help="End (exclusive), same forms; default now.")
    ] = None,
    by: Annotated[
        str, typer.Option(help="Group by queue, channel, mode or model_version.")
    ] = "queue",
    bucket: Annotated[
        str | None, typer.Option(help="Series buckets: hour or day (default: auto).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Process metrics from decisions and feedback: accuracy, fallbacks, SLAs."""
    from datetime import UTC, datetime

    from monitoring.process_metrics import (
        check_query,
        compute_process_metrics,
        load_process_data,
        parse_time_range,
    )
    from monitoring.sla import load_sla_policy
    from monitoring.store import open_store

    settings = _settings()
    now = datetime.now(UTC)
    with _failures():
        start, end = parse_time_range(since, until, now)
        check_query(by, bucket)
        sla = load_sla_policy(settings.sla_path)
        with open_store(settings) as store:
            data = load_process_data(store, start, end)
        report = compute_process_metrics(data, sla, by=by, bucket=bucket, now=now)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    _print_process_metrics(Console(), report)


def _print_process_metrics(console: Console, report: Any) -> None:
    console.print(
        f"[bold]Process metrics[/] {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC, by {report.by}"
    )
    table = Table()
    for column in (
        report.by,
        "decisions",
        "tickets",
        "reviewed",
        "first-touch acc.",
        "reassigned",
        "overridden",
        "fallback",
        "escalate p50 (min)",
        "open",
        "SLA met",
    ):
        table.add_column(column, justify="left" if column == report.by else "right")
    for group in [*report.groups, report.overall]:
        escalate = group.time_to_escalate.p50_s
        table.add_row(
            group.group,
            str(group.decisions),
            str(group.tickets),
            str(group.reviewed),
            _pct(group.first_touch_accuracy),
            _pct(group.reassignment_rate),
            _pct(group.override_rate),
            _pct(group.fallback_rate),
            "-" if escalate is None else f"{escalate / 60:.1f}",
            str(group.open_tickets),
            _pct(group.sla_first_response.attainment),
            end_section=group is report.groups[-1] if report.groups else False,
        )
    console.print(table)

    reasons = report.overall.fallbacks_by_reason
    if reasons:
        console.print(
            "fallbacks by reason: "
            + ", ".join(f"{reason} {count}" for reason, count in reasons.items())
        )
    aging = Table(title="open tickets by age (queue they are in now)")
    aging.add_column("queue")
    bands = list(report.overall.open_by_age)
    for band in bands:
        aging.add_column(band, justify="right")
    for row in report.queue_aging:
        aging.add_row(row.queue, *(str(row.open_by_age[band]) for band in bands))
    if report.queue_aging:
        console.print(aging)
    if report.exceptions_by_source:
        sources = Table(title="exceptions by source system")
        for column in ("source", "fallbacks", "overrides", "reassignments", "total"):
            sources.add_column(
                column, justify="left" if column == "source" else "right"
            )
        for row in report.exceptions_by_source:
            sources.add_row(
                row.source_system,
                str(row.fallbacks),
                str(row.overrides),
                str(row.reassignments),
                str(row.total),
            )
        console.print(sources)
    enrichment = report.enrichment
    console.print(
        f"enrichment success: {_pct(enrichment.success_rate)} "
        f"of {enrichment.attempted}"
        + ("" if enrichment.available else " (not available: no enrichment recorded)")
    )
    console.print(f"service state changes: {len(report.service_state.changes)}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command("export-feedback")
def export_feedback(
    out: Annotated[Path, typer.Option(help="File to write: .parquet, .csv or .jsonl.")],
    tickets: Annotated[
        Path,
        typer.Option(
            help="The original tickets (parquet, CSV, JSONL) with id and text, "
            "or subject and body: the store keeps only a hash of the text."
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(help="Only labels confirmed since: ISO date or time, or 30d."),
    ] = None,
    id_column: Annotated[
        str, typer.Option(help="The tickets file's ticket id column.")
    ] = "id",
    as_json: JsonOption = False,
) -> None:
    """Write the tickets whose queue people confirmed as a training set.

    Labels are final queues from feedback (reported or by an agent's
    override); the model's own unreviewed decisions are left out. The file is
    what `switchboard train --data` reads.
    """
    from datetime import UTC, datetime

    from monitoring.feedback_export import export_feedback as run_export
    from monitoring.process_metrics import parse_time_range
    from monitoring.store import open_store

    settings = _settings()
    with _failures():
        start = None
        if since is not None:
            start, _ = parse_time_range(since, None, datetime.now(UTC))
        with open_store(settings) as store:
            report = run_export(store, tickets, out, since=start, id_column=id_column)
    if as_json:
        _print_json(report.to_dict())
        return
    console = Console()
    console.print(
        f"[bold]{report.exported} labelled tickets[/] written to {report.out} "
        f"({report.confirmed_tickets} with a confirmed queue)"
    )
    if report.unmatched:
        console.print(
            f"[yellow]{report.unmatched} confirmed tickets not found in {tickets}"
            f"[/] (e.g. {', '.join(report.unmatched_sample[:5])}); they are left out"
        )
    if report.duplicate_ticket_rows:
        console.print(
            f"[yellow]{report.duplicate_ticket_rows} repeated ticket ids in "
            f"{tickets}[/]: the first row of each was used"
        )
    console.print(
        "labels: " + ", ".join(f"{k} {v}" for k, v in sorted(report.labels.items()))
    )


@app.command()
def explain(
    decision_id: Annotated[str, typer.Argument(help="The decision's id.")],
    ticket: Annotated[
        Path | None,
        typer.Option(
            help="The ticket as JSON (as sent to /v1/route), for similarity and "
            "nearest training tickets: the store keeps only a hash of the text."
        ),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(help="The ticket text, instead of --ticket: subject, then body."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Why a decision went where it went: rule or model, thresholds, drift, evidence."""
    from monitoring.explain import (
        TicketText,
        bundle_encoder,
        explain_decision,
        registry_bundles,
    )
    from monitoring.store import open_store
    from serving.settings import ServingSettings

    if ticket is not None and text is not None:
        Console(stderr=True).print("[red]error:[/] give --ticket or --text, not both")
        raise typer.Exit(2)
    settings = ServingSettings()
    with _failures():
        ticket_text = None
        if ticket is not None:
            ticket_text = TicketText.from_ticket_file(ticket)
        elif text is not None:
            ticket_text = TicketText.from_text(text)
        with open_store(settings) as store:
            explanation = explain_decision(
                store,
                decision_id,
                rule_set=_current_rule_set(settings),
                ticket_text=ticket_text,
                load_bundle=registry_bundles(settings),
                embed=bundle_encoder(settings),
            )
    if as_json:
        _print_json(explanation.to_dict())
        return
    _print_explanation(Console(), explanation.to_dict())


def _current_rule_set(settings: Any) -> Any:
    """Today's rules by id; None (with a warning) when the file does not load."""
    from features.errors import ConfigError
    from features.taxonomy import load_taxonomy
    from monitoring.explain import RuleInfo, RuleSet
    from serving.rules import load_rules

    try:
        book = load_rules(settings.rules_path, load_taxonomy(settings.taxonomy_path))
    except ConfigError as err:
        warning = f"[yellow]rules not loaded, owners unknown:[/] {err}"
        Console(stderr=True).print(warning)
        return None
    rules = {
        rule.id: RuleInfo(rule.id, section, rule.description, rule.owner)
        for section, _, rule in book.rule_file.located_rules()
    }
    return RuleSet(version=book.version, rules=rules)


def _print_explanation(console: Console, found: dict[str, Any]) -> None:
    decision = found["decision"]
    console.print(
        f"[bold]Decision {decision['decision_id']}[/] for ticket "
        f"{decision['ticket_id']} ({decision['channel']}, via {decision['path']}) "
        f"at {decision['decided_at']}"
    )
    console.print(f"[bold]{found['verdict']}[/]", highlight=False)
    console.print(
        f"queue {decision['queue']}, priority {decision['priority']}, "
        f"escalation {decision['escalation']}, mode {decision['mode']}"
    )
    rule = found["rule"]
    if rule:
        console.print(
            f"rule [bold]{rule['rule_id']}[/] ({rule.get('section', '?')}), owner "
            f"{rule.get('owner', '?')}: {rule.get('description', '-')}",
            highlight=False,
        )
        console.print(f"  rule-set version {rule['rule_set_version']}")
    model = found["model"]
    if model:
        _print_model_evidence(console, model)
    elif decision.get("model_version"):
        console.print(f"model version {decision['model_version']} (not loaded)")
    else:
        console.print("no model proposal: the model did not run for this ticket")
    console.print("reasons:")
    for reason in decision.get("reasons") or []:
        console.print(f"  - {reason}", highlight=False)
    _print_service_state(console, found["service_state"])
    _print_nearest(console, found)
    for warning in found["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _print_model_evidence(console: Console, model: dict[str, Any]) -> None:
    title = f"{model['model_name'] or 'model'} version {model['model_version']}"
    if not model["top_queues"]:
        console.print(f"{title}: no model scores were recorded on this decision")
    table = Table(title=title)
    for column in ("queue", "probability", "threshold", "routable", "passes"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for row in model["top_queues"]:
        table.add_row(
            row["queue"],
            _fmt(row["probability"]),
            _fmt(row["threshold"]),
            "yes" if row["routable"] else "no",
            "yes" if row["meets_threshold"] else "no",
        )
    if model["top_queues"]:
        console.print(table)
    minimum = _fmt(model["min_similarity"])
    if model["similarity"] is None:
        console.print(
            f"abstention: min similarity {minimum}; this ticket's similarity "
            "needs its text (--ticket or --text)"
        )
    else:
        verdict = "out of scope" if model["is_out_of_scope"] else "in scope"
        console.print(
            f"abstention: similarity {_fmt(model['similarity'])} to the nearest "
            f"training ticket vs min {minimum}: {verdict}"
        )


def _print_service_state(console: Console, state: dict[str, Any]) -> None:
    console.print(f"service state: [bold]{state['state']}[/] ({state['note']})")
    check = state.get("last_check")
    if check:
        console.print(
            f"  last drift check {check['at']}: drift {check['is_drift']}, drifted "
            f"columns {_pct(check['drifted_column_share'])}, embedding score "
            f"{_fmt(check['embedding_score'])}"
        )


def _print_nearest(console: Console, found: dict[str, Any]) -> None:
    examples = found["nearest_examples"]
    if examples is None:
        note = found["text"].get("note")
        if note:
            console.print(f"nearest training tickets: {note}")
        return
    table = Table(title="nearest labelled training tickets")
    for column in ("ticket", "queue", "similarity"):
        table.add_column(column, justify="right" if column == "similarity" else "left")
    for example in examples:
        table.add_row(example["id"], example["label"], _fmt(example["similarity"]))
    console.print(table)


@app.command()
def report(
    model: Annotated[str, typer.Option(help="Version number or alias.")],
    out: Annotated[Path, typer.Option(help="Folder to write the model card into.")],
    as_json: JsonOption = False,
) -> None:
    """Write the HTML model card of a version: data, metrics, drift, promotions."""
    from monitoring.explain import bundle_encoder
    from monitoring.report import redraw_with_encoder, write_model_card
    from monitoring.store import open_store

    settings = _settings()
    with _failures(), open_store(settings) as store:
        files = write_model_card(
            settings,
            model,
            out,
            store,
            redraw_plots=redraw_with_encoder(bundle_encoder(settings)),
        )
    payload = {
        "html": str(files.html),
        "data": str(files.data),
        "plots": [str(path) for path in files.plots],
    }
    if as_json:
        _print_json(payload)
        return
    Console().print(f"model card written to [bold]{files.html}[/]")


@app.command()
def compare(
    challenger: Annotated[
        str, typer.Argument(help="Version number or alias to compare.")
    ],
    champion: Annotated[
        str | None, typer.Option(help="Compare with this version (default: champion).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Labelled tickets as `train` reads them (e.g. export-feedback "
            "output); default: the challenger's held-out test rows."
        ),
    ] = None,
    text_column: TextColumnOption = "text",
    label_column: LabelColumnOption = "label",
    split_column: SplitColumnOption = "split",
    split: Annotated[
        str | None,
        typer.Option(help="Score only this split of --data (default: test if any)."),
    ] = None,
    out_of_scope_label: OosOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a challenger and the champion on the same tickets, side by side."""
    from training.compare import CompareData, compare_versions

    options = CompareData(
        data, text_column, label_column, split_column, split, out_of_scope_label
    )
    with _failures():
        result = compare_versions(
            _settings(), challenger, champion_ref=champion, data=options
        )
    if as_json:
        _print_json(result)
        return
    _print_comparison(Console(), result)


def _print_comparison(console: Console, result: dict[str, Any]) -> None:
    ours, theirs = result["challenger"]["version"], result["champion"]["version"]
    data = result["data"]
    console.print(
        f"[bold]challenger {ours} vs champion {theirs}[/] on {data['rows']} rows "
        f"({data['source']}, split {data['split']})"
    )
    table = Table()
    for column in ("metric", f"challenger {ours}", f"champion {theirs}", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, row in result["metrics"].items():
        table.add_row(
            name, _fmt(row["challenger"]), _fmt(row["champion"]), _delta(row["delta"])
        )
    console.print(table)
    per_queue = Table(title="F1 per queue")
    for column in ("queue", "support", f"challenger {ours}", f"champion {theirs}"):
        per_queue.add_column(column, justify="left" if column == "queue" else "right")
    per_queue.add_column("delta", justify="right")
    for queue, row in result["per_queue"].items():
        per_queue.add_row(
            queue,
            str(row["support"]),
            _fmt(row["challenger"]),
            _fmt(row["champion"]),
            _delta(row["delta"]),
        )
    console.print(per_queue)
    routing = result["routing"]
    console.print(
        f"{routing['routed_differently']} of {routing['rows']} tickets would route "
        f"differently ({_pct(routing['share_routed_differently'])}): other queue "
        f"{routing['both_auto_other_queue']}, only challenger auto-routes "
        f"{routing['only_challenger_auto']}, only champion auto-routes "
        f"{routing['only_champion_auto']}; right only with the challenger "
        f"{routing['only_challenger_right']}, only with the champion "
        f"{routing['only_champion_right']}"
    )
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


@app.command()
def replay(
    since: Annotated[
        str, typer.Option(help="First moment replayed: ISO date or date and time.")
    ],
    until: Annotated[
        str | None, typer.Option(help="End (exclusive), same forms; default now.")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Proposed rules file (default: the live one).")
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(
            help="YAML or JSON of per-queue thresholds to try, e.g. "
            "`queues: {integrations_api: {threshold: 0.9}}`."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Classify the tickets afresh with this registered version "
            "(number or alias) instead of using their stored answers."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """What-if: decide stored tickets again under proposed rules, thresholds or model.

    Each ticket is decided twice by the service's own policy, with the live
    settings and with the proposal, and the differences are counted. Dates
    are UTC unless they carry an offset. Nothing live changes: the store is
    only read, and no alias moves.
    """
    from datetime import UTC, datetime

    from features.taxonomy import load_taxonomy
    from monitoring.store import open_store
    from serving.replay import (
        ReplayProposal,
        load_proposed_model,
        load_threshold_overrides,
        replay_range,
        stored_cases,
    )
    from serving.replay import replay as run_replay
    from serving.router import RouterCore
    from serving.rules import load_rules
    from serving.settings import ServingSettings

    settings = ServingSettings()
    with _failures():
        start, end = replay_range(since, until, datetime.now(UTC))
        taxonomy = load_taxonomy(settings.taxonomy_path)
        live = RouterCore.from_settings(settings)
        proposal = ReplayProposal(
            rules=load_rules(rules, taxonomy) if rules else None,
            thresholds=(
                load_threshold_overrides(thresholds, taxonomy) if thresholds else None
            ),
            model=load_proposed_model(settings, model) if model else None,
        )
        with open_store(settings) as store:
            cases = stored_cases(store, start, end)
            ticket_ids = [case.ticket_id for case in cases]
            feedback = list(store.iter_feedback(ticket_ids=ticket_ids))
        report = run_replay(cases, baseline=live, proposal=proposal, feedback=feedback)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    if not cases:
        typer.echo(
            f"No stored cases between {start.isoformat()} and {end.isoformat()}: "
            "nothing to replay."
        )
        return
    typer.echo(report.to_text(), nl=False)


if __name__ == "__main__":
    app()
