"""The governance report: an HTML model card for one registered version.

`collect_model_card` gathers, for a version, what a reviewer asks about it:
the data it was trained on, its test metrics, per-queue thresholds with
precision and coverage, the reliability and confusion plots logged at
training, drift checks and state changes, how often its decisions fell back
to rules or were overridden while it was champion, and the promotion history
of the registered model (who, why, which gates). `write_model_card` renders
that as `model_card.html` beside `model_card.json` and the plot PNGs, so the
folder can be archived or served as it is.

Everything comes from MLflow (tags, params, artifacts) and the decision store;
nothing is recomputed except the two plots of a version logged without them.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.settings import Settings
from monitoring.process_metrics import (
    NONE_LABEL,
    compute_process_metrics,
    load_process_data,
)
from monitoring.sla import SlaPolicy, load_sla_policy
from monitoring.store import DecisionStore

if TYPE_CHECKING:
    from training.bundle import ModelBundle
    from training.registry import VersionInfo

log = logging.getLogger(__name__)

TEMPLATE = "model_card.html.j2"
TEMPLATES_PATH = Path(__file__).with_name("templates")
PLOTS = ("reliability.png", "confusion.png")
DRIFT_CHECK_EVENT = "drift_check"
DRIFT_STATE_EVENT = "drift_state"
# Drift checks listed in the card, newest first; the count is always complete.
MAX_DRIFT_CHECKS_SHOWN = 50
# What the card shows of each drift check; any may be missing from an event.
_CHECK_FIELDS = (
    "is_drift",
    "reasons",
    "drifted_column_share",
    "embedding_method",
    "embedding_score",
    "low_confidence_rate",
    "window_rows",
)

# (texts, labels, bundle, folder) -> writes the plots PNGs into folder.
RedrawPlots = Callable[[list[str], list[str], "ModelBundle", Path], None]


@dataclass(frozen=True)
class ModelCardFiles:
    """What `write_model_card` wrote."""

    html: Path
    data: Path
    plots: list[Path]


def write_model_card(
    settings: Settings,
    ref: str,
    out_dir: Path | str,
    store: DecisionStore | None,
    *,
    now: datetime | None = None,
    sla: SlaPolicy | None = None,
    redraw_plots: RedrawPlots | None = None,
) -> ModelCardFiles:
    """Write the model card of a version into `out_dir` (created if needed).

    Args:
        settings: which registry and state folder.
        ref: version number or alias.
        out_dir: folder for model_card.html, model_card.json and the plots.
        store: the decision store for drift and live rates; None leaves
            those sections saying no store was read.
        now: the report's time (the end of a current champion's period).
        sla: SLA policy the process metrics need; the settings' by default.
        redraw_plots: draws the plots for a version logged without them;
            None leaves them out of such a card.

    Raises:
        RegistryError: no such version.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card = collect_model_card(
        settings, ref, store, now=now, sla=sla, plots_dir=out, redraw=redraw_plots
    )
    html = out / "model_card.html"
    html.write_text(render_model_card(card), encoding="utf-8")
    data = out / "model_card.json"
    data.write_text(json.dumps(card, indent=2, default=_json_default))
    plots = [out / name for name in card["plots"]]
    log.info(
        "model card written",
        extra={"version": card["version"]["version"], "out": str(out)},
    )
    return ModelCardFiles(html=html, data=data, plots=plots)


def collect_model_card(
    settings: Settings,
    ref: str,
    store: DecisionStore | None,
    *,
    now: datetime | None = None,
    sla: SlaPolicy | None = None,
    plots_dir: Path | None = None,
    redraw: RedrawPlots | None = None,
) -> dict[str, Any]:
    """Everything the model card shows, as JSON-ready data.

    With `plots_dir`, the version's plots are copied there and listed under
    "plots"; without, "plots" is empty.
    """
    from training.registry import list_versions, load_bundle

    now = now or datetime.now(UTC)
    version, bundle = load_bundle(settings, ref)
    params, evaluation = _run_record(settings, version)
    promotions = _promotion_history(list_versions(settings))
    period = _champion_period(version, now)
    plots = (
        _copy_plots(settings, version, bundle, plots_dir, redraw)
        if plots_dir is not None
        else []
    )
    card = {
        "generated_at": now,
        "model_name": version.name,
        "version": _version_summary(version, bundle, params),
        "training_data": _training_data(params, bundle, evaluation),
        "metrics": evaluation.get("metrics") or version.metrics,
        "validation_metrics": (evaluation.get("validation") or {}).get("metrics", {}),
        "thresholds": _threshold_table(bundle, evaluation),
        "plots": plots,
        "champion_period": period,
        "drift": _drift_history(store, version.version, period),
        "operations": _operations(settings, store, version.version, period, now, sla),
        "promotion": _this_promotion(version),
        "promotion_history": promotions,
    }
    card["version"]["ref"] = ref
    return card


def render_model_card(card: Mapping[str, Any]) -> str:
    """The model card as one HTML page (plots referenced as files beside it)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_PATH),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["pct"] = _pct
    environment.filters["num"] = _num
    environment.filters["when"] = _when
    return environment.get_template(TEMPLATE).render(card=card)


def redraw_with_encoder(embed: Callable[[ModelBundle, list[str]], Any]) -> RedrawPlots:
    """A `RedrawPlots` that scores the test rows again; `embed(bundle, texts)`."""

    def redraw(
        texts: list[str], labels: list[str], bundle: ModelBundle, folder: Path
    ) -> None:
        from training.evaluation import plot_confusion, plot_reliability

        predictions = bundle.predict(embed(bundle, texts))
        plot_reliability(predictions, labels, folder / "reliability.png")
        plot_confusion(predictions, labels, folder / "confusion.png")

    return redraw


def _run_record(
    settings: Settings, version: VersionInfo
) -> tuple[dict[str, str], dict[str, Any]]:
    """The training run's params and its logged evaluation report."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from training.registry import configure_mlflow

    client = configure_mlflow(settings)
    params = dict(client.get_run(version.run_id).data.params)
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path="evaluation/evaluation.json"
        )
        evaluation = json.loads(Path(path).read_text())
    except (MlflowException, OSError, ValueError) as err:
        log.warning(
            "evaluation report missing, using the version's tags",
            extra={"version": version.version, "error": type(err).__name__},
        )
        evaluation = {}
    return params, evaluation


def _version_summary(
    version: VersionInfo, bundle: ModelBundle, params: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "version": version.version,
        "aliases": version.aliases,
        "is_current_champion": "champion" in version.aliases,
        "run_id": version.run_id,
        "created_at": datetime.fromtimestamp(version.created_at_ms / 1000, UTC),
        "encoder": bundle.encoder_identity,
        "taxonomy_version": version.tags.get("taxonomy_version"),
        "data_hash": version.tags.get("data_hash") or params.get("data_hash"),
        "temperature": bundle.temperature,
        "target_precision": bundle.thresholds.target_precision,
        "min_similarity": bundle.thresholds.min_similarity,
        "global_threshold": bundle.thresholds.global_threshold,
        "out_of_scope_label": version.tags.get("out_of_scope_label") or None,
    }


def _training_data(
    params: Mapping[str, str], bundle: ModelBundle, evaluation: Mapping[str, Any]
) -> dict[str, Any]:
    train_counts = Counter(bundle.index_labels)
    test = evaluation.get("per_queue") or {}
    validation = (evaluation.get("validation") or {}).get("per_queue") or {}
    queues = sorted(set(train_counts) | set(test) | set(validation))
    rows = {
        split: _int(params.get(f"{split}_rows"))
        for split in ("train", "validation", "test")
    }
    rare = params.get("rare_labels") or ""
    return {
        "source": params.get("data_source"),
        "data_hash": params.get("data_hash"),
        "rows": rows,
        "total_rows": sum(value for value in rows.values() if value is not None),
        "queues": len(queues),
        "rare_labels": [label for label in rare.split(",") if label],
        "per_queue": [
            {
                "queue": queue,
                "train": train_counts.get(queue, 0),
                "validation": validation.get(queue, {}).get("support"),
                "test": test.get(queue, {}).get("support"),
            }
            for queue in queues
        ],
    }


def _threshold_table(
    bundle: ModelBundle, evaluation: Mapping[str, Any]
) -> list[dict[str, Any]]:
    test = evaluation.get("per_queue") or {}
    rows = []
    for queue in sorted(set(bundle.labels) | set(test)):
        rule = bundle.thresholds.for_queue(queue)
        scores = test.get(queue, {})
        rows.append(
            {
                "queue": queue,
                "threshold": rule.threshold,
                "routable": rule.routable,
                "source": rule.source,
                "validation_support": rule.support,
                "validation_precision": rule.precision,
                "test_precision": scores.get("precision"),
                "test_recall": scores.get("recall"),
                "test_f1": scores.get("f1"),
                "test_coverage": scores.get("coverage"),
                "test_support": scores.get("support"),
            }
        )
    return rows


def _copy_plots(
    settings: Settings,
    version: VersionInfo,
    bundle: ModelBundle,
    folder: Path,
    redraw: RedrawPlots | None,
) -> list[str]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from training.registry import configure_mlflow

    configure_mlflow(settings)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id, artifact_path="plots", dst_path=scratch
            )
        except (MlflowException, OSError) as err:
            log.warning(
                "version has no logged plots",
                extra={"version": version.version, "error": type(err).__name__},
            )
        for name in PLOTS:
            logged = Path(scratch) / "plots" / name
            if logged.exists():
                shutil.copyfile(logged, folder / name)
    if redraw is not None and not all((folder / name).exists() for name in PLOTS):
        from training.registry import load_test_frame

        test = load_test_frame(settings, version)
        redraw(test["text"].tolist(), test["label"].tolist(), bundle, folder)
    return [name for name in PLOTS if (folder / name).exists()]


def _champion_period(version: VersionInfo, now: datetime) -> dict[str, Any]:
    """When the version was champion, from its promotion tags.

    Known limitation: the registry keeps one promoted_at and one retired_at
    per version, so a version made champion twice shows only its latest
    period.
    """
    promoted = _parse_time(version.tags.get("promoted_at"))
    retired = _parse_time(version.tags.get("retired_at"))
    if retired is not None and promoted is not None and retired < promoted:
        retired = None  # promoted again after it was retired
    return {
        "was_champion": promoted is not None,
        "since": promoted,
        "until": retired,
        "is_current": promoted is not None and retired is None,
        "end": retired or now,
    }


def _drift_history(
    store: DecisionStore | None, version: str, period: Mapping[str, Any]
) -> dict[str, Any]:
    if store is None:
        return {"store_read": False, "checks": [], "changes": [], "check_count": 0}
    checks = [
        {
            "at": event["at"],
            **{name: event["payload"].get(name) for name in _CHECK_FIELDS},
        }
        for event in store.events(DRIFT_CHECK_EVENT)
        if str(event["payload"].get("model_version")) == version
    ]
    changes = [
        {
            "at": event["at"],
            "previous": event["payload"].get("previous"),
            "state": event["payload"].get("state"),
            "cause": event["payload"].get("cause"),
            "detail": _change_detail(event["payload"]),
        }
        for event in store.events(DRIFT_STATE_EVENT)
        if _is_about(event, version, period)
    ]
    return {
        "store_read": True,
        "check_count": len(checks),
        "drift_checks": sum(1 for check in checks if check.get("is_drift")),
        "checks": checks[::-1][:MAX_DRIFT_CHECKS_SHOWN],
        "changes": changes,
    }


def _is_about(
    event: Mapping[str, Any], version: str, period: Mapping[str, Any]
) -> bool:
    """A state change belongs to the version whose check caused it; a forced
    change, which names no version, to the champion of the time."""
    evidence = event["payload"].get("evidence") or {}
    checked = (evidence.get("check") or {}).get("model_version")
    if checked is not None:
        return str(checked) == version
    since = period["since"]
    return since is not None and since <= event["at"] < period["end"]


def _change_detail(payload: Mapping[str, Any]) -> str:
    evidence = payload.get("evidence") or {}
    if payload.get("cause") == "force":
        return f"forced by {evidence.get('actor')}: {evidence.get('reason')}"
    reasons = (evidence.get("check") or {}).get("reasons") or []
    return "; ".join(str(reason) for reason in reasons)


def _operations(
    settings: Settings,
    store: DecisionStore | None,
    version: str,
    period: Mapping[str, Any],
    now: datetime,
    sla: SlaPolicy | None,
) -> dict[str, Any]:
    """Fallback, override and reassignment rates of the version's decisions."""
    if store is None:
        return {"store_read": False}
    if period["since"] is None:
        return {"store_read": True, "was_champion": False}
    data = load_process_data(store, period["since"], period["end"])
    report = compute_process_metrics(
        data, sla or load_sla_policy(settings.sla_path), by="model_version", now=now
    )
    groups = {group.group: group for group in report.groups}
    mine = groups.get(version)
    without_model = groups.get(NONE_LABEL)
    return {
        "store_read": True,
        "was_champion": True,
        "since": period["since"],
        "until": period["end"],
        "metrics": mine.model_dump() if mine else None,
        "decisions_without_model": without_model.decisions if without_model else 0,
    }


def _this_promotion(version: VersionInfo) -> dict[str, Any] | None:
    tags = version.tags
    if not tags.get("promoted_at"):
        return None
    return {
        "promoted_at": _parse_time(tags.get("promoted_at")),
        "promoted_by": tags.get("promoted_by"),
        "reason": tags.get("promoted_reason"),
        "previous_champion": tags.get("previous_champion") or None,
        "retired_at": _parse_time(tags.get("retired_at")),
        "gates": _gates(tags.get("promotion_gates")),
    }


def _promotion_history(versions: list[VersionInfo]) -> list[dict[str, Any]]:
    """Every promotion of the registered model, oldest first."""
    history = []
    for version in versions:
        promotion = _this_promotion(version)
        if promotion is None:
            continue
        history.append(
            {
                "version": version.version,
                "is_current": "champion" in version.aliases,
                **promotion,
            }
        )
    earliest = datetime.min.replace(tzinfo=UTC)
    return sorted(history, key=lambda row: row["promoted_at"] or earliest)


def _gates(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        gates = json.loads(text)
    except ValueError:
        return []
    return [gate for gate in gates if isinstance(gate, dict)]


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
