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
        int, typer.Option(min=1, help="Tickets per encoder call.")
    ] = 64,
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


if __name__ == "__main__":
    app()
