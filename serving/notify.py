"""Notifications the rules ask for: a JSON POST to a collaboration webhook.

A decision names its targets (`Decision.notify`); `Notifier.send` delivers
each once, retrying with backoff, and records the outcome in the governance
log whether it was delivered or not. A notification never delays or fails
the ticket's decision: the router sends them in the background.
"""

from __future__ import annotations

import asyncio
import logging
import os
import string
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from features.config import bundled_config_path, load_yaml_model
from features.errors import ConfigError
from monitoring.cases import EscalationStep
from monitoring.governance import GovernanceLog, NotificationStatus
from monitoring.sla import SlaPolicy
from serving.decision import Decision
from serving.rules import RuleBook

log = logging.getLogger(__name__)


class NotificationTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(default="", description="Webhook address; ${VAR} from the env.")
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    attempts: int = Field(default=3, ge=1, le=10)

    def resolved_url(self) -> str:
        """The address with ${VAR} references filled from the environment."""
        return string.Template(self.url).safe_substitute(os.environ).strip()


class NotificationConfig(BaseModel):
    """Validated content of `notifications.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, NotificationTarget] = Field(default_factory=dict)


def load_notification_config(
    path: Path | str | None = None,
    rules: RuleBook | None = None,
    sla: SlaPolicy | None = None,
) -> NotificationConfig:
    """Load the targets, checking that every name the rules or SLA use exists.

    Raises:
        ConfigError: naming the file and the unknown target.
    """
    path = Path(path) if path is not None else bundled_config_path("notifications.yaml")
    config = load_yaml_model(path, NotificationConfig)
    users: list[tuple[str, list[str] | tuple[str, ...]]] = []
    if rules is not None:
        users += [
            (f"rule {rule.id!r}", rule.action.notify)
            for _, _, rule in rules.rule_file.located_rules()
        ]
    if sla is not None:
        for target in ("first_response", "resolution"):
            users += [
                (f"SLA level {target}.{level.level}", level.notify)
                for level in sla.escalation_path(target)  # type: ignore[arg-type]
            ]
    for user, names in users:
        unknown = sorted(set(names) - set(config.targets))
        if unknown:
            raise ConfigError(
                f"{path}: {user} notifies {', '.join(unknown)}, which "
                f"{path.name} does not define; known: {', '.join(config.targets)}"
            )
    return config


class Notifier:
    """Delivers the notifications decisions ask for and records each outcome."""

    def __init__(
        self,
        config: NotificationConfig,
        governance: GovernanceLog | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_s: float = 0.2,
    ) -> None:
        self._config = config
        self._governance = governance
        self._backoff_s = backoff_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    async def send(
        self, decision: Decision, account_id: str | None = None
    ) -> dict[str, NotificationStatus]:
        """Deliver each of the decision's notifications; never raises."""
        outcomes: dict[str, NotificationStatus] = {}
        for name in decision.notify:
            outcomes[name] = await self._send_one(name, decision, account_id)
        return outcomes

    async def send_step(self, step: EscalationStep, targets: list[str]) -> None:
        """Tell each target of an escalation step; never raises.

        Recorded like a decision's notifications, keyed by the step (ticket,
        target, level), so a step is announced once per target.
        """
        key = f"escalation:{step.ticket_id}:{step.target}:{step.level}"
        message = {
            "text": (
                f"Ticket {step.ticket_id} escalated to {step.level}: {step.reason}"
            ),
            "ticket_id": step.ticket_id,
            "decision_id": step.decision_id,
            "sla_target": step.target,
            "level": step.level,
            "rota": step.rota,
            "due_at": step.due_at.isoformat() if step.due_at else None,
        }
        for name in targets:
            await self._deliver(name, key, step.ticket_id, message)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        # A client belongs to the loop it first ran on; the stream runner
        # sends from a new loop per batch, so each loop gets its own.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(transport=self._transport)
            self._client_loop = loop
        return self._client

    async def _send_one(
        self, name: str, decision: Decision, account_id: str | None
    ) -> NotificationStatus:
        return await self._deliver(
            name,
            decision.decision_id,
            decision.ticket_id,
            _message(decision, account_id),
        )

    async def _deliver(
        self, name: str, key: str, ticket_id: str, message: dict[str, Any]
    ) -> NotificationStatus:
        target = self._config.targets.get(name)
        url = target.resolved_url() if target is not None else ""
        if target is None or not url or "${" in url:
            await self._record(key, ticket_id, name, "not_configured", 0, "no address")
            return "not_configured"

        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(target.attempts),
                wait=wait_exponential(multiplier=self._backoff_s, max=5),
                retry=retry_if_exception(_is_retryable),
            ):
                with attempt:
                    attempts += 1
                    await self._post(url, target.timeout_s, message)
        except (RetryError, httpx.HTTPError) as err:
            cause = err.last_attempt.exception() if isinstance(err, RetryError) else err
            detail = type(cause).__name__ if cause else type(err).__name__
            log.warning(
                "notification not delivered",
                extra={
                    "target": name,
                    "key": key,
                    "attempts": attempts,
                    "error": detail,
                },
            )
            await self._record(key, ticket_id, name, "failed", attempts, detail)
            return "failed"

        await self._record(key, ticket_id, name, "delivered", attempts, None)
        return "delivered"

    async def _post(self, url: str, timeout_s: float, message: dict[str, Any]) -> None:
        response = await self._http().post(url, json=message, timeout=timeout_s)
        response.raise_for_status()

    async def _record(
        self,
        key: str,
        ticket_id: str,
        target: str,
        status: NotificationStatus,
        attempts: int,
        error: str | None,
    ) -> None:
        if self._governance is None:
            return
        try:
            # A store write waits on a lock; the serving loop must not.
            await asyncio.to_thread(
                self._governance.record_notification,
                decision_id=key,
                ticket_id=ticket_id,
                target=target,
                status=status,
                attempts=attempts,
                error=error,
            )
        except Exception as err:  # recording must not break the sender
            log.error(
                "notification outcome not recorded",
                extra={"target": target, "error": type(err).__name__},
            )


def _message(decision: Decision, account_id: str | None) -> dict[str, Any]:
    # Ids and routing only: the webhook's channel is outside the audit
    # boundary, so no ticket text goes there.
    summary = (
        f"Ticket {decision.ticket_id} escalated to {decision.escalation}: "
        f"{decision.queue}, {decision.priority}"
    )
    return {
        "text": summary,
        "ticket_id": decision.ticket_id,
        "decision_id": decision.decision_id,
        "account_id": account_id,
        "queue": decision.queue,
        "priority": decision.priority,
        "escalation": decision.escalation,
        "escalation_reason": decision.escalation_reason,
    }


def _is_retryable(err: BaseException) -> bool:
    if isinstance(err, httpx.HTTPStatusError):
        return err.response.status_code >= 500
    return isinstance(err, httpx.TransportError)
