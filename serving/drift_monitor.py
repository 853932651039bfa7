"""The `DriftMonitor` Ray Serve deployment: one window, one state, for the service.

It wraps `monitoring.drift.DriftMonitorCore`. Routers send it observations
and read its state; checks run on a thread of its own process, on their own
interval, so the encoder's cores are not asked to wait for Evidently. Run
exactly one replica: the window and the state are that replica's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from monitoring.drift import DriftMonitorCore, ForceTarget, load_drift_config
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

CHECK_TICK_S = 1.0


def open_monitor(settings: ServingSettings) -> DriftMonitorCore:
    """A monitor over the settings' drift config and decision store."""
    from monitoring.store import open_store

    config = load_drift_config(settings.drift_path)
    return DriftMonitorCore(settings, config, store=open_store(settings))


def _deployment() -> Any:
    from ray import serve

    @serve.deployment(name="DriftMonitor", num_replicas=1, max_ongoing_requests=64)
    class DriftMonitor:
        """Ray Serve deployment holding the drift window and state."""

        def __init__(self, settings: dict[str, Any]) -> None:
            self.core = open_monitor(ServingSettings.model_validate(settings))
            self._stop = threading.Event()
            threading.Thread(
                target=self.core.run_checks,
                args=(self._stop, CHECK_TICK_S),
                name="drift-checks",
                daemon=True,
            ).start()

        async def observe(self, observations: list[dict[str, Any]]) -> int:
            return self.core.observe(observations)

        async def state(self) -> dict[str, Any]:
            return self.core.state()

        async def status(self) -> dict[str, Any]:
            return self.core.status()

        async def force(
            self, target: ForceTarget, actor: str, reason: str, via: str | None
        ) -> dict[str, Any]:
            return await asyncio.to_thread(
                self.core.force, target, actor, reason, via=via
            )

        async def check(self) -> dict[str, Any] | None:
            """Check now, whatever the interval (operators, tests)."""
            check = await asyncio.to_thread(self.core.check_now)
            return check.summary() if check is not None else None

        async def metrics(self) -> bytes:
            return self.core.metrics.export()

        def __del__(self) -> None:
            if getattr(self, "_stop", None) is not None:
                self._stop.set()

    return DriftMonitor
