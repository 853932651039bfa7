"""Drift monitoring: live decisions checked against the version's reference profile.

Three pieces, usable without Ray:

- `DriftConfig`, loaded from `configs/drift.yaml`: window, interval, policy.
- `run_drift_check`: one Evidently report comparing a window of observations
  with the reference profile (data drift on the profile columns, embedding
  drift on the projected embeddings), its JSON and HTML files, and a
  `drift_check` summary event in the decision store.
- `DriftStateMachine`: `model` or `drift`, with hysteresis (N clean checks
  to return) and operator force, every change recorded as a `drift_state`
  event with its evidence.

`DriftMonitorCore` holds the sliding window and ties them together; the Ray
Serve deployment `DriftMonitor` (serving layer) runs it in its own process.
The serving layer reads the state; nothing here calls into serving.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.config import bundled_config_path, load_yaml_model
from features.language import SAMPLE_CHARS, detect_language
from features.settings import Settings
from monitoring import profile as evidently_profile
from training.profile import LOW_CONFIDENCE_COLUMN, PROFILE_COLUMNS, ReferenceProfile

log = logging.getLogger(__name__)

DriftStatus = Literal["model", "drift"]
ForceTarget = Literal["model", "drift", "auto"]
EmbeddingMethod = Literal["model", "mmd", "distance"]
CHECK_EVENT = "drift_check"
STATE_EVENT = "drift_state"
FORCE_EVENT = "drift_force"
NO_PROFILE = "no reference profile"


class DriftThresholds(BaseModel):
    """When a check says drift: any one of these is enough."""

    model_config = ConfigDict(extra="forbid")

    drifted_column_share: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description=(
            "Share of the profile columns (queue, language, confidence, margin, "
            "text length) whose own test finds drift. 0.5 means three of five: "
            "one column drifting alone at p < 0.05 is the noise of a clean window."
        ),
    )
    embedding_drift_score: float = Field(
        default=0.7,
        gt=0.0,
        description=(
            "Score of the embedding method over which the embeddings drifted. "
            "For `model` it is the ROC AUC of a classifier telling window from "
            "reference (0.5: indistinguishable); clean windows of 200 stay "
            "under 0.62 and another language or topic mix goes over 0.8."
        ),
    )
    low_confidence_rate_increase: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description=(
            "How far the window's share of tickets the model may not route "
            "(under the queue's threshold, or out of scope) may rise above the "
            "reference profile's share. Relative to the profile, because each "
            "model version has its own coverage."
        ),
    )


class DriftConfig(BaseModel):
    """The drift monitor's window, schedule and policy (`configs/drift.yaml`)."""

    model_config = ConfigDict(extra="forbid")

    window_size: int = Field(
        default=500,
        ge=20,
        le=20_000,
        description="Most recent model-run decisions kept and compared.",
    )
    min_window: int = Field(
        default=200,
        ge=20,
        description=(
            "Observations needed before a check runs: the per-column tests have "
            "too little power below a couple of hundred rows."
        ),
    )
    min_new_observations: int = Field(
        default=50,
        ge=1,
        description=(
            "Fresh observations a check needs since the previous one, so that "
            "checks on an idle service do not count one window as many clean "
            "(or drifted) checks."
        ),
    )
    check_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        description=(
            "Seconds between checks. A check costs about 3 s of one core "
            "(Evidently's embedding metric dominates), in the monitor's process."
        ),
    )
    embedding_method: EmbeddingMethod = Field(
        default="model",
        description=(
            "Evidently embedding drift method: `model` (domain classifier ROC "
            "AUC), `mmd` (maximum mean discrepancy) or `distance` (euclidean "
            "distance of the means). The threshold must suit the method."
        ),
    )
    thresholds: DriftThresholds = Field(
        default_factory=DriftThresholds, description="The drift policy."
    )
    clean_checks_to_recover: int = Field(
        default=3,
        ge=1,
        description=(
            "Consecutive clean checks before drift returns to model (hysteresis): "
            "one clean window right after a drifted one is often the tail of it."
        ),
    )
    shadow: bool = Field(
        default=True,
        description=(
            "While drift routes by rules, record the model's proposal on each "
            "decision (top queues, confidence, a shadow reason) so its would-be "
            "accuracy can be measured from feedback later. Off: decisions carry "
            "no proposal. The classifier is asked either way, because the "
            "window needs its answers to see the drift clear."
        ),
    )
    reports_dir: Path = Field(
        default=Path("drift"),
        description=(
            "Where each check's JSON and HTML reports go; relative paths are "
            "under SWITCHBOARD_HOME."
        ),
    )
    keep_reports: int = Field(
        default=100,
        ge=1,
        description=(
            "Checks whose report files are kept, newest first (HTML reports are "
            "about 4 MB each, so 100 take some 400 MB); the summary of every "
            "check stays in the decision store regardless."
        ),
    )
    write_html: bool = Field(
        default=True,
        description="Write Evidently's HTML report beside the JSON one.",
    )
    embedding_plot: bool = Field(
        default=True,
        description=(
            "Run embedding drift as Evidently's EmbeddingsDrift metric, whose "
            "t-SNE plot in the report costs about 2 s per check. Off: the same "
            "Evidently drift method is called on the same data (same score) "
            "and the report has no embedding section."
        ),
    )
    state_refresh_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description=(
            "How stale the router's cached drift state may get; a state change "
            "reaches routing within this time."
        ),
    )
    observation_flush_s: float = Field(
        default=0.5,
        gt=0.0,
        le=60.0,
        description=(
            "The router batches observations and sends them this often, one "
            "call instead of one per ticket."
        ),
    )

    @model_validator(mode="after")
    def _window_holds_minimum(self) -> DriftConfig:
        if self.min_window > self.window_size:
            raise ValueError(
                f"min_window {self.min_window} is larger than window_size "
                f"{self.window_size}; a check could never run"
            )
        return self


def load_drift_config(path: Path | str | None = None) -> DriftConfig:
    """Load `drift.yaml` (the bundled one by default).

    Raises:
        ConfigError: naming the file, the path inside it and the problem.
    """
    return load_yaml_model(path or bundled_config_path("drift.yaml"), DriftConfig)


class EventSink(Protocol):
    """Where checks and state changes are recorded (the decision store)."""

    def append_event(
        self, kind: str, payload: Mapping[str, Any], at: datetime | None = None
    ) -> int: ...

    def events(
        self, kind: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ColumnDrift:
    """One profile column's test in a check."""

    column: str
    method: str
    score: float | None
    threshold: float | None
    is_drifted: bool


@dataclass(frozen=True)
class DriftCheck:
    """The result of one check, and why it says drift or not."""

    checked_at: datetime
    model_version: str
    window_rows: int
    reference_rows: int
    columns: list[ColumnDrift]
    drifted_column_share: float
    embedding_method: str | None
    embedding_score: float | None
    low_confidence_rate: float
    reference_low_confidence_rate: float
    is_drift: bool
    reasons: list[str]
    duration_s: float
    report_json: str | None = None
    report_html: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready; what the `drift_check` event and the API carry."""
        found = asdict(self)
        found["checked_at"] = self.checked_at.isoformat()
        return found


def run_drift_check(
    rows: Sequence[Mapping[str, Any]],
    profile: ReferenceProfile,
    config: DriftConfig,
    *,
    model_version: str,
    reports_dir: Path | None = None,
    store: EventSink | None = None,
    now: datetime | None = None,
) -> DriftCheck:
    """Compare a window of observations with the reference profile.

    Args:
        rows: observations with the profile columns, `is_low_confidence` and
            `projection` (the reduced embedding; embedding drift is skipped
            when any row lacks it).
        profile: the serving version's reference profile.
        config: thresholds and embedding method.
        model_version: the version the observations came from.
        reports_dir: where the JSON and HTML reports go; None writes none.
        store: gets a `drift_check` event with the summary; None records none.
        now: the check's time; UTC now by default.

    Returns:
        The check, with each column's test, the scores and the verdict.
    """
    started = time.perf_counter()
    checked_at = now or datetime.now(UTC)
    rows = [_with_language(row) for row in rows]
    with_embeddings = _has_projections(rows, profile)
    snapshot, embedding_score = _run_report(rows, profile, config, with_embeddings)
    result = snapshot.dict()

    columns = _column_results(result)
    share = _drifted_share(result, columns)
    low_rate = evidently_profile.low_confidence_rate(rows)
    reasons = _drift_reasons(
        config.thresholds, share, embedding_score, low_rate, profile.low_confidence_rate
    )
    check = DriftCheck(
        checked_at=checked_at,
        model_version=model_version,
        window_rows=len(rows),
        reference_rows=len(profile.frame),
        columns=columns,
        drifted_column_share=share,
        embedding_method=config.embedding_method if with_embeddings else None,
        embedding_score=embedding_score,
        low_confidence_rate=round(low_rate, 4),
        reference_low_confidence_rate=round(profile.low_confidence_rate, 4),
        is_drift=bool(reasons),
        reasons=reasons,
        duration_s=round(time.perf_counter() - started, 3),
    )
    if reports_dir is not None:
        check = _write_reports(check, snapshot, result, reports_dir, config)
    if store is not None:
        store.append_event(CHECK_EVENT, check.summary(), at=checked_at)
    log.info(
        "drift check done",
        extra={
            "model_version": model_version,
            "is_drift": check.is_drift,
            "drifted_column_share": share,
            "embedding_score": embedding_score,
            "low_confidence_rate": check.low_confidence_rate,
            "window_rows": len(rows),
            "duration_s": check.duration_s,
        },
    )
    return check


@dataclass
class StateChange:
    """One change of the drift state, with what caused it."""

    at: datetime
    previous: DriftStatus
    state: DriftStatus
    cause: Literal["check", "force", "restore"]
    evidence: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "previous": self.previous,
            "state": self.state,
            "cause": self.cause,
            "evidence": self.evidence,
        }


@dataclass
class _Force:
    state: DriftStatus
    actor: str
    reason: str
    at: datetime


class DriftStateMachine:
    """`model` or `drift`: checks move it with hysteresis, operators can pin it.

    Checks drive the *checked* state: `model` -> `drift` on one drifted check,
    `drift` -> `model` after `clean_checks_to_recover` clean checks in a row.
    An operator's force pins the state in effect to `model` or `drift` until
    forced `auto`, which hands it back to the checks; checks go on meanwhile
    and are recorded. Every change of the state in effect is a `drift_state`
    event; every force is also a `drift_force` event.
    """

    def __init__(
        self,
        config: DriftConfig,
        store: EventSink | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.checked_state: DriftStatus = "model"
        self.clean_checks = 0
        self.forced: _Force | None = None
        self.since = self._clock()
        self.last_change: StateChange | None = None

    @property
    def state(self) -> DriftStatus:
        """The state in effect: the force if any, else what the checks say."""
        return self.forced.state if self.forced is not None else self.checked_state

    def restore(self) -> None:
        """Take up the last recorded state, so a restarted monitor keeps it."""
        if self.store is None:
            return
        recorded = self.store.events(STATE_EVENT)
        if not recorded:
            return
        last = recorded[-1]["payload"]
        with self._lock:
            self.checked_state = last.get("checked_state", last["state"])
            forced = last.get("forced")
            if forced:
                self.forced = _Force(
                    forced["state"],
                    forced["actor"],
                    forced["reason"],
                    datetime.fromisoformat(forced["at"]),
                )
            self.since = datetime.fromisoformat(last["at"])
        log.info(
            "drift state restored",
            extra={"state": self.state, "checked_state": self.checked_state},
        )

    def apply(self, check: DriftCheck) -> StateChange | None:
        """Move the checked state by one check; the change in effect, if any."""
        with self._lock:
            before = self.state
            if check.is_drift:
                self.clean_checks = 0
                self.checked_state = "drift"
            elif self.checked_state == "drift":
                self.clean_checks += 1
                if self.clean_checks >= self.config.clean_checks_to_recover:
                    self.checked_state = "model"
                    self.clean_checks = 0
            evidence = {
                "check": check.summary(),
                "clean_checks": self.clean_checks,
                "clean_checks_needed": self.config.clean_checks_to_recover,
            }
            return self._record_if_changed(before, "check", evidence, check.checked_at)

    def force(
        self, target: ForceTarget, actor: str, reason: str, *, via: str | None = None
    ) -> StateChange | None:
        """Pin the state (`model`, `drift`) or hand it back to checks (`auto`).

        `actor` is the person, `via` what they used (the API key's name).

        Raises:
            ValueError: no actor or no reason; a force must say who and why.
        """
        if not actor.strip() or not reason.strip():
            raise ValueError("forcing the drift state needs an actor and a reason")
        at = self._clock()
        with self._lock:
            before = self.state
            self.forced = (
                None if target == "auto" else _Force(target, actor, reason, at)
            )
            force_record = {
                "target": target,
                "actor": actor,
                "via": via,
                "reason": reason,
                "previous": before,
                "state": self.state,
                "checked_state": self.checked_state,
            }
            if self.store is not None:
                self.store.append_event(FORCE_EVENT, force_record, at=at)
            log.warning(
                "drift state forced",
                extra={"target": target, "actor": actor, "state": self.state},
            )
            return self._record_if_changed(before, "force", force_record, at)

    def status(self) -> dict[str, Any]:
        with self._lock:
            forced = self.forced
            return {
                "state": self.state,
                "checked_state": self.checked_state,
                "since": self.since.isoformat(),
                "clean_checks": self.clean_checks,
                "clean_checks_needed": self.config.clean_checks_to_recover,
                "forced": _force_dict(forced) if forced else None,
                "last_change": self.last_change.payload() if self.last_change else None,
            }

    def _record_if_changed(
        self,
        before: DriftStatus,
        cause: Literal["check", "force"],
        evidence: dict[str, Any],
        at: datetime,
    ) -> StateChange | None:
        after = self.state
        if after == before:
            return None
        change = StateChange(at, before, after, cause, evidence)
        self.since = at
        self.last_change = change
        if self.store is not None:
            payload = {
                **change.payload(),
                "checked_state": self.checked_state,
                "forced": _force_dict(self.forced) if self.forced else None,
            }
            self.store.append_event(STATE_EVENT, payload, at=at)
        level = logging.WARNING if after == "drift" else logging.INFO
        log.log(
            level,
            "drift state changed",
            extra={"previous": before, "state": after, "cause": cause},
        )
        return change


class DriftMetrics:
    """Prometheus metrics of one drift monitor, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.state = Gauge(
            "switchboard_drift_state",
            "1 for the drift state in effect (label state: model or drift).",
            ["state"],
            registry=self.registry,
        )
        self.forced = Gauge(
            "switchboard_drift_forced",
            "1 while an operator pins the drift state.",
            registry=self.registry,
        )
        self.checks = Counter(
            "switchboard_drift_checks",
            "Drift checks run, by outcome (clean or drift).",
            ["outcome"],
            registry=self.registry,
        )
        self.changes = Counter(
            "switchboard_drift_state_changes",
            "Changes of the drift state in effect, by new state and cause.",
            ["state", "cause"],
            registry=self.registry,
        )
        self.column_share = Gauge(
            "switchboard_drift_drifted_column_share",
            "Share of profile columns drifted in the last check.",
            registry=self.registry,
        )
        self.column_drifted = Gauge(
            "switchboard_drift_column_drifted",
            "1 when the last check found this profile column drifted.",
            ["column"],
            registry=self.registry,
        )
        self.embedding_score = Gauge(
            "switchboard_drift_embedding_score",
            "Embedding drift score of the last check.",
            ["method"],
            registry=self.registry,
        )
        self.low_confidence_rate = Gauge(
            "switchboard_drift_low_confidence_rate",
            "Share of the last checked window the model could not route.",
            registry=self.registry,
        )
        self.window = Gauge(
            "switchboard_drift_window_observations",
            "Observations in the drift window now.",
            registry=self.registry,
        )
        self.last_check = Gauge(
            "switchboard_drift_last_check_timestamp_seconds",
            "Unix time of the last drift check.",
            registry=self.registry,
        )
        self.check_duration = Gauge(
            "switchboard_drift_check_duration_seconds",
            "How long the last drift check took.",
            registry=self.registry,
        )
        self.has_profile = Gauge(
            "switchboard_drift_reference_profile",
            "1 when the serving version's reference profile is loaded.",
            registry=self.registry,
        )
        self.set_state("model", is_forced=False)

    def set_state(self, state: DriftStatus, *, is_forced: bool) -> None:
        for name in ("model", "drift"):
            self.state.labels(name).set(1 if name == state else 0)
        self.forced.set(1 if is_forced else 0)

    def record_check(self, check: DriftCheck) -> None:
        self.checks.labels("drift" if check.is_drift else "clean").inc()
        self.column_share.set(check.drifted_column_share)
        for column in check.columns:
            self.column_drifted.labels(column.column).set(int(column.is_drifted))
        if check.embedding_score is not None and check.embedding_method:
            self.embedding_score.labels(check.embedding_method).set(
                check.embedding_score
            )
        self.low_confidence_rate.set(check.low_confidence_rate)
        self.last_check.set(check.checked_at.timestamp())
        self.check_duration.set(check.duration_s)

    def export(self) -> bytes:
        return generate_latest(self.registry)


ProfileLoader = Callable[[str], ReferenceProfile | None]
# Windows of this many model versions are kept; older ones are dropped.
_WINDOWS_KEPT = 3


@dataclass
class _Window:
    rows: deque[dict[str, Any]]
    fresh: int = 0  # observations since the last check


class DriftMonitorCore:
    """The sliding window, the checks on it and the state they drive.

    Thread-safe: observations arrive from the router's calls while checks
    run on the monitor's own thread. The window holds observations of one
    model version; the first observation of another version restarts it,
    since a new version has its own profile.
    """

    def __init__(
        self,
        settings: Settings,
        config: DriftConfig,
        *,
        store: EventSink | None = None,
        profile_loader: ProfileLoader | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._load_profile = profile_loader or self._registry_profile
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        # One window per model version: while replicas swap versions, both
        # arrive interleaved, and a rollback must not inherit the newer one's.
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._version: str | None = None  # of the most recent observation
        self._profiles: dict[str, ReferenceProfile | None] = {}
        self._profile_failed_at: datetime | None = None
        self.machine = DriftStateMachine(config, store, clock=self._clock)
        self.machine.restore()
        self.metrics = DriftMetrics()
        self.metrics.set_state(
            self.machine.state, is_forced=self.machine.forced is not None
        )
        self.last_check: DriftCheck | None = None
        self.last_checked_at: datetime | None = None
        # The first scheduled check waits one interval, like every later one.
        self._started_at = self._clock()
        self.last_error: str | None = None
        reports = config.reports_dir
        self.reports_dir = (
            reports if reports.is_absolute() else settings.home_dir / reports
        )

    def observe(self, observations: Iterable[Mapping[str, Any]]) -> int:
        """Add model-run observations to the window; returns how many were kept."""
        kept = 0
        with self._lock:
            for raw in observations:
                row = _observation(raw)
                if row is None:
                    continue
                window = self._window_for(row["model_version"])
                window.rows.append(row)
                window.fresh += 1
                self._version = row["model_version"]
                kept += 1
            if self._version is not None:
                self.metrics.window.set(len(self._windows[self._version].rows))
        return kept

    def run_checks(self, stop: threading.Event, tick_s: float = 1.0) -> None:
        """Check whenever due until `stop` is set (the monitor's own thread)."""
        while not stop.wait(tick_s):
            self.check_if_due()

    def check_if_due(self) -> DriftCheck | None:
        """Run a check when the interval has passed and the window allows it."""
        last = self.last_checked_at or self._started_at
        elapsed_s = (self._clock() - last).total_seconds()
        if elapsed_s < self.config.check_interval_s:
            return None
        return self.check_now(require_new=True)

    def check_now(self, *, require_new: bool = False) -> DriftCheck | None:
        """Check the window now; None when it is too small or has no profile.

        Args:
            require_new: also skip when fewer than `min_new_observations`
                arrived since the previous check (the scheduled checks do).
        """
        with self._check_lock:
            rows, version, fresh = self._take_window()
            if version is None or len(rows) < self.config.min_window:
                return None
            if require_new and fresh < self.config.min_new_observations:
                return None
            profile = self._profile(version)
            if profile is None:
                return None

            self._fill_languages(rows)
            now = self._clock()
            self.last_checked_at = now
            try:
                check = run_drift_check(
                    rows,
                    profile,
                    self.config,
                    model_version=version,
                    reports_dir=self.reports_dir,
                    store=self.store,
                    now=now,
                )
            except Exception as err:  # a failed check must not stop the monitor
                self.last_error = f"drift check failed: {type(err).__name__}: {err}"
                log.exception("drift check failed", extra={"model_version": version})
                return None
            with self._lock:
                window = self._windows.get(version)
                if window is not None:
                    window.fresh = max(0, window.fresh - fresh)
            self.last_error = None
            self.last_check = check
            self.machine.apply(check)
            self._publish(check)
            return check

    def force(
        self, target: ForceTarget, actor: str, reason: str, *, via: str | None = None
    ) -> dict[str, Any]:
        """An operator's force (see `DriftStateMachine.force`); the new status."""
        change = self.machine.force(target, actor, reason, via=via)
        if change is not None:
            self.metrics.changes.labels(change.state, change.cause).inc()
        self.metrics.set_state(
            self.machine.state, is_forced=self.machine.forced is not None
        )
        return self.status()

    def state(self) -> dict[str, Any]:
        """What the router needs, small enough to ask every second."""
        machine = self.machine
        state = machine.state
        detail = ""
        if state == "drift":
            forced = machine.forced
            if forced is not None:
                detail = f"forced by {forced.actor}: {forced.reason}"
            elif self.last_check is not None and self.last_check.is_drift:
                detail = "; ".join(self.last_check.reasons)
            else:
                detail = (
                    f"recovering: {machine.clean_checks} of "
                    f"{self.config.clean_checks_to_recover} clean checks"
                )
        return {"state": state, "detail": detail, "shadow": self.config.shadow}

    def status(self) -> dict[str, Any]:
        """Everything GET /v1/drift shows: state, last check, evidence, window."""
        with self._lock:
            version = self._version
            window = len(self._windows[version].rows) if version else 0
        profile_state = "not_loaded"
        if version is not None and version in self._profiles:
            profile_state = "loaded" if self._profiles[version] else "missing"
        return {
            **self.machine.status(),
            "model_version": version,
            "reference_profile": profile_state,
            "detail": NO_PROFILE if profile_state == "missing" else "",
            "window": {
                "observations": window,
                "size": self.config.window_size,
                "min_window": self.config.min_window,
            },
            "check_interval_s": self.config.check_interval_s,
            "shadow": self.config.shadow,
            "last_check": self.last_check.summary() if self.last_check else None,
            "last_error": self.last_error,
        }

    def _take_window(self) -> tuple[list[dict[str, Any]], str | None, int]:
        """The newest version's window (rows, version, fresh observations)."""
        with self._lock:
            version = self._version
            if version is None:
                return [], None, 0
            window = self._windows[version]
            return list(window.rows), version, window.fresh

    def _window_for(self, version: str) -> _Window:
        window = self._windows.get(version)
        if window is None:
            window = _Window(deque(maxlen=self.config.window_size))
            self._windows[version] = window
            if len(self._windows) > _WINDOWS_KEPT:
                self._windows.popitem(last=False)
            log.info("drift window started", extra={"model_version": version})
        self._windows.move_to_end(version)
        return window

    def _profile(self, version: str) -> ReferenceProfile | None:
        if version not in self._profiles:
            failed_at = self._profile_failed_at
            if failed_at is not None and (
                (self._clock() - failed_at).total_seconds()
                < self.config.check_interval_s
            ):
                return None
            try:
                self._profiles[version] = self._load_profile(version)
            except Exception as err:  # the registry down: retry an interval later
                self._profile_failed_at = self._clock()
                self.last_error = f"loading the reference profile failed: {err}"
                log.warning(
                    "reference profile not loaded, will retry",
                    extra={"model_version": version, "error": type(err).__name__},
                )
                return None
            loaded = self._profiles[version]
            self.metrics.has_profile.set(1 if loaded is not None else 0)
            if loaded is None:
                log.warning(
                    "no reference profile, drift monitoring stays in model mode",
                    extra={"model_version": version},
                )
        return self._profiles[version]

    def _registry_profile(self, version: str) -> ReferenceProfile | None:
        from training.registry import load_reference_profile

        return load_reference_profile(self.settings, version)

    def _fill_languages(self, rows: list[dict[str, Any]]) -> None:
        # Detected here, once per observation that reaches a check: the cost is
        # bounded by the window size per interval, whatever the ticket rate.
        # The rows are the window's own dicts, so each is detected only once.
        for row in rows:
            if row["language"] is None:
                row["language"] = detect_language(row.pop("text_sample", ""))

    def _publish(self, check: DriftCheck) -> None:
        self.metrics.record_check(check)
        change = self.machine.last_change
        if change is not None and change.at == check.checked_at:
            self.metrics.changes.labels(change.state, change.cause).inc()
        self.metrics.set_state(
            self.machine.state, is_forced=self.machine.forced is not None
        )


def _observation(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """A validated copy of one observation; None (logged) when unusable."""
    try:
        projection = raw.get("projection")
        return {
            "model_version": str(raw["model_version"]),
            "queue": str(raw["queue"]),
            "confidence": float(raw["confidence"]),
            "margin": float(raw["margin"]),
            "text_length": int(raw["text_length"]),
            LOW_CONFIDENCE_COLUMN: bool(raw[LOW_CONFIDENCE_COLUMN]),
            "language": raw.get("language"),
            "text_sample": str(raw.get("text_sample", ""))[:SAMPLE_CHARS],
            "projection": [float(v) for v in projection] if projection else None,
        }
    except (KeyError, TypeError, ValueError) as err:
        log.warning("drift observation unusable", extra={"error": type(err).__name__})
        return None


def _with_language(row: Mapping[str, Any]) -> Mapping[str, Any]:
    if row.get("language") is not None:
        return row
    return {**row, "language": detect_language(row.get("text_sample", ""))}


def _has_projections(
    rows: Sequence[Mapping[str, Any]], profile: ReferenceProfile
) -> bool:
    width = len(profile.embedding_columns)
    return width > 0 and all(
        row.get("projection") is not None and len(row["projection"]) == width
        for row in rows
    )


def _run_report(
    rows: Sequence[Mapping[str, Any]],
    profile: ReferenceProfile,
    config: DriftConfig,
    with_embeddings: bool,
) -> tuple[Any, float | None]:
    """The Evidently snapshot and the embedding drift score (None: not run)."""
    from evidently import Report
    from evidently.metrics import DriftedColumnsCount, EmbeddingsDrift, ValueDrift

    thresholds = config.thresholds
    in_report = with_embeddings and config.embedding_plot
    metrics: list[Any] = [
        DriftedColumnsCount(
            columns=list(PROFILE_COLUMNS), drift_share=thresholds.drifted_column_share
        ),
        *(ValueDrift(column=column) for column in PROFILE_COLUMNS),
    ]
    if in_report:
        metrics.append(
            EmbeddingsDrift(
                embeddings_name=evidently_profile.EMBEDDING_NAME,
                drift_method=_embedding_method(config),
            )
        )
    definition = evidently_profile.data_definition(profile, with_embeddings=in_report)
    current = evidently_profile.window_frame(
        [dict(row) for row in rows], profile, with_embeddings=with_embeddings
    )
    reference = evidently_profile.reference_frame(
        profile, with_embeddings=with_embeddings
    )
    snapshot = Report(metrics, include_tests=True).run(
        evidently_profile.as_dataset(current, definition),
        evidently_profile.as_dataset(reference, definition),
    )
    if in_report:
        return snapshot, _metric_value(snapshot.dict(), "EmbeddingsDrift")
    if not with_embeddings:
        return snapshot, None
    # What EmbeddingsDrift computes before its plot: the method on both sides.
    columns = profile.embedding_columns
    score, _, _ = _embedding_method(config)(
        current[columns].copy(), reference[columns].copy()
    )
    return snapshot, round(float(score), 4)


def _embedding_method(config: DriftConfig) -> Any:
    from evidently.metrics.embeddings import (
        DistanceDriftMethod,
        MMDDriftMethod,
        ModelDriftMethod,
    )

    threshold = config.thresholds.embedding_drift_score
    methods = {
        "model": ModelDriftMethod,
        "mmd": MMDDriftMethod,
        "distance": DistanceDriftMethod,
    }
    return methods[config.embedding_method](threshold=threshold)


def _column_results(result: Mapping[str, Any]) -> list[ColumnDrift]:
    """Each profile column's score and verdict, from its ValueDrift and test."""
    statuses = {
        test["metric_config"]["params"].get("column"): test["status"]
        for test in result.get("tests", [])
        if test["metric_config"]["params"].get("type", "").endswith(":ValueDrift")
    }
    columns = []
    for metric in result["metrics"]:
        params = metric["config"]
        if not params.get("type", "").endswith(":ValueDrift"):
            continue
        name = params["column"]
        columns.append(
            ColumnDrift(
                column=name,
                method=str(params.get("method", "")),
                score=_finite(metric["value"]),
                threshold=_finite(params.get("threshold")),
                is_drifted=statuses.get(name) == "FAIL",
            )
        )
    return columns


def _drifted_share(result: Mapping[str, Any], columns: list[ColumnDrift]) -> float:
    value = None
    for metric in result["metrics"]:
        if metric["config"].get("type", "").endswith(":DriftedColumnsCount"):
            value = metric["value"].get("share")
    if value is None and columns:
        value = sum(c.is_drifted for c in columns) / len(columns)
    return round(float(value or 0.0), 4)


def _metric_value(result: Mapping[str, Any], kind: str) -> float | None:
    for metric in result["metrics"]:
        if metric["config"].get("type", "").endswith(f":{kind}"):
            value = _finite(metric["value"])
            return round(value, 4) if value is not None else None
    return None


def _drift_reasons(
    thresholds: DriftThresholds,
    share: float,
    embedding_score: float | None,
    low_rate: float,
    reference_low_rate: float,
) -> list[str]:
    reasons = []
    if share >= thresholds.drifted_column_share:
        reasons.append(
            f"{share:.0%} of profile columns drifted "
            f"(bound {thresholds.drifted_column_share:.0%})"
        )
    if (
        embedding_score is not None
        and embedding_score > thresholds.embedding_drift_score
    ):
        reasons.append(
            f"embedding drift score {embedding_score:.3f} over "
            f"{thresholds.embedding_drift_score:.3f}"
        )
    bound = reference_low_rate + thresholds.low_confidence_rate_increase
    if low_rate > bound:
        reasons.append(
            f"low-confidence rate {low_rate:.0%} over {bound:.0%} "
            f"(reference {reference_low_rate:.0%})"
        )
    return reasons


def _write_reports(
    check: DriftCheck,
    snapshot: Any,
    result: Mapping[str, Any],
    reports_dir: Path,
    config: DriftConfig,
) -> DriftCheck:
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{check.checked_at:%Y%m%dT%H%M%S%fZ}-v{check.model_version}"
    json_path = reports_dir / f"{stem}.json"
    html_path = reports_dir / f"{stem}.html" if config.write_html else None
    if html_path is not None:
        snapshot.save_html(str(html_path))
    check = replace(
        check,
        report_json=str(json_path),
        report_html=str(html_path) if html_path else None,
    )
    body = {"summary": check.summary(), "evidently": result}
    json_path.write_text(json.dumps(body, indent=2, default=_json_default))
    _prune_reports(reports_dir, config.keep_reports)
    return check


def _prune_reports(reports_dir: Path, keep: int) -> None:
    # Names start with the check's UTC time, so name order is time order.
    reports = sorted(reports_dir.glob("*.json"), reverse=True)
    for old in reports[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".html").unlink(missing_ok=True)


def _force_dict(forced: _Force) -> dict[str, Any]:
    return {
        "state": forced.state,
        "actor": forced.actor,
        "reason": forced.reason,
        "at": forced.at.isoformat(),
    }


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
