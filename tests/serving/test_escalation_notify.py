"""Escalation steps announced to their level's webhooks, and recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from features.config import bundled_config_path
from features.errors import ConfigError
from monitoring.cases import Case, CaseStore
from monitoring.escalation import EscalationScheduler
from monitoring.governance import GovernanceLog
from monitoring.sla import load_sla_policy
from monitoring.store import open_store
from serving.config_versions import StepAnnouncer
from serving.notify import load_notification_config
from serving.settings import ServingSettings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday


def _late_case() -> Case:
    opened = NOW - timedelta(days=3)
    return Case(
        ticket_id="T-late",
        ticket={"id": "T-late", "channel": "email", "subject": "s", "body": "b"},
        decision_id="d-late",
        queue="platform_operations",
        priority="P1",
        mode="rules",
        opened_at=opened,
        updated_at=opened,
    )


def test_each_level_reaches_the_webhooks_its_sla_level_names(
    tmp_path: Path, make_webhook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    escalations, bridge = make_webhook(), make_webhook(failures=1)
    monkeypatch.setenv("SWITCHBOARD_ESCALATION_WEBHOOK_URL", escalations.url)
    monkeypatch.setenv("SWITCHBOARD_EXECUTIVE_WEBHOOK_URL", bridge.url)
    settings = ServingSettings(home=tmp_path / "home")
    policy = load_sla_policy(settings.sla_path)
    store = open_store(settings)
    cases = CaseStore(store)
    cases.upsert_decided(_late_case(), kind="opened", cause=None, actor="test")
    announce = StepAnnouncer(settings, policy, GovernanceLog(store))
    scheduler = EscalationScheduler(cases, policy, clock=lambda: NOW, notify=announce)

    steps = scheduler.run_once()
    again = scheduler.run_once()
    recorded = GovernanceLog(store).notifications("T-late")
    store.close()

    assert again == []
    assert {(s.target, s.level) for s in steps} >= {
        ("first_response", "team_lead"),
        ("resolution", "executive"),
    }
    posted = sorted((body["sla_target"], body["level"]) for body in escalations.bodies)
    assert posted == [
        ("first_response", "incident_commander"),
        ("resolution", "executive"),
        ("resolution", "incident_commander"),
    ]
    assert [body["level"] for body in bridge.bodies] == ["executive", "executive"]
    outcomes = {(row["decision_id"], row["target"]): row for row in recorded}
    executive = outcomes[("escalation:T-late:resolution:executive", "executive-bridge")]
    assert (executive["status"], executive["attempts"]) == ("delivered", 2)
    assert len(recorded) == 4
    assert all("body" not in body for body in escalations.bodies)


def test_an_sla_level_naming_an_unknown_target_fails_loading(tmp_path: Path) -> None:
    content = yaml.safe_load(bundled_config_path("sla.yaml").read_text())
    content["escalation"]["resolution"][0]["notify"] = ["nobody-listens"]
    path = tmp_path / "sla.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))

    with pytest.raises(ConfigError, match="nobody-listens") as raised:
        load_notification_config(sla=load_sla_policy(path))
    assert "resolution.team_lead" in str(raised.value)
