"""Which version of each governed file is in force, and recording changes.

A governed file is a rule set, the automation policy, the SLA policy, the
connector configuration or a threshold override. Its version is a hash of
its content (the rule-set version decisions carry is one). `switchboard
config record` validates a file and records who brought that version into
force and why; the service records, at start-up, any version in force that
nobody recorded, under the actor "unrecorded", so a reviewer sees the gap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from features.config import file_hash
from monitoring.cases import EscalationStep
from monitoring.governance import ConfigKind, GovernanceLog
from monitoring.sla import SlaPolicy
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


def version_of(kind: ConfigKind, path: Path, settings: ServingSettings) -> str:
    """Validate a governed file as its kind and return its version.

    Raises:
        ConfigError: the file is not a valid file of that kind.
    """
    from features.taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.taxonomy_path)
    if kind == "rules":
        from serving.rules import load_rules

        return load_rules(path, taxonomy).version
    if kind == "automation":
        from serving.policy import load_automation_policy

        return load_automation_policy(path, taxonomy).version
    if kind == "sla":
        from monitoring.sla import load_sla_policy

        load_sla_policy(path, taxonomy=taxonomy)
    elif kind == "connectors":
        from features.connectors import load_connector_config

        load_connector_config(path)
    else:
        from serving.replay import load_threshold_overrides

        load_threshold_overrides(path, taxonomy)
    return file_hash(path)


def versions_in_force(settings: ServingSettings) -> dict[ConfigKind, tuple[str, str]]:
    """kind -> (version, source) of the governed files these settings load."""
    paths: dict[ConfigKind, Path] = {
        "rules": settings.rules_path,
        "automation": settings.policy_path,
        "sla": settings.sla_path,
    }
    if settings.enrichment == "http":
        paths["connectors"] = settings.connectors_path
    return {
        kind: (version_of(kind, path, settings), str(path))
        for kind, path in paths.items()
    }


def record_versions_in_force(settings: ServingSettings) -> None:
    """At start-up: put every unrecorded version in force on the record."""
    from monitoring.store import open_store

    store = open_store(settings)
    try:
        GovernanceLog(store).ensure_recorded(versions_in_force(settings))
    finally:
        store.close()


def start_escalation_scheduler(
    settings: ServingSettings, stop: threading.Event, interval_s: float = 60.0
) -> threading.Thread:
    """The escalation scheduler on a daemon thread until `stop` is set.

    One scheduler per service: it runs in the process that started Ray, not
    in a replica, so replicas scaling out never run it twice (and if two did,
    the store records each step once).
    """
    from datetime import UTC, datetime

    from features.taxonomy import load_taxonomy
    from monitoring.cases import CaseStore
    from monitoring.escalation import EscalationScheduler
    from monitoring.sla import load_sla_policy
    from monitoring.store import open_store

    policy = load_sla_policy(
        settings.sla_path, taxonomy=load_taxonomy(settings.taxonomy_path)
    )
    store = open_store(settings)
    announce = StepAnnouncer(settings, policy, GovernanceLog(store))
    scheduler = EscalationScheduler(
        CaseStore(store), policy, clock=lambda: datetime.now(UTC), notify=announce
    )

    def run() -> None:
        try:
            scheduler.run_forever(interval_s, stop)
        finally:
            store.close()

    thread = threading.Thread(target=run, name="escalation-scheduler", daemon=True)
    thread.start()
    log.info("escalation scheduler started", extra={"interval_s": interval_s})
    return thread


class StepAnnouncer:
    """Logs each new escalation step and posts it to its level's targets.

    Called by the scheduler after the step is recorded, on the scheduler's
    thread; each call delivers on an event loop of its own.
    """

    def __init__(
        self, settings: ServingSettings, policy: SlaPolicy, governance: GovernanceLog
    ) -> None:
        from serving.notify import Notifier, load_notification_config

        config = load_notification_config(settings.notifications_path, sla=policy)
        self._policy = policy
        self._notifier = Notifier(config, governance)

    def __call__(self, step: EscalationStep) -> None:
        log.warning(
            "ticket escalated",
            extra={
                "ticket_id": step.ticket_id,
                "target": step.target,
                "level": step.level,
                "rota": step.rota,
                "fraction": round(step.fraction, 2),
            },
        )
        targets = [
            name
            for level in self._policy.escalation_path(step.target)
            if level.level == step.level
            for name in level.notify
        ]
        if targets:
            asyncio.run(self._notifier.send_step(step, targets))
