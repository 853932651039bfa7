"""Starting and stopping the application on a local Ray (the embedded default)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from serving.application import APP_NAME, build_app, load_serve_config
from serving.auth import KeyRing
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Ray Serve's throughput preset, read by the Ray processes this one starts:
# user code and the handle router on the replica's own event loop (no thread
# hop per call), gRPC between deployments, request logs buffered. Its direct
# ingress stays off: it listens on ports from a range fixed when Ray starts,
# where `serving.listener` listens on the service port of each deploy.
SERVE_FAST_PATH = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
}


def start_ray(
    num_cpus: int | None = None, object_store_bytes: int = 200_000_000
) -> None:
    """A local Ray with the dashboard off, sized for a laptop."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    for name, value in SERVE_FAST_PATH.items():
        os.environ.setdefault(name, value)
    if ray.is_initialized():
        return
    ray.init(
        # "local": always a new Ray of our own, never a cluster found running.
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=object_store_bytes,
        namespace="switchboard",
        log_to_driver=False,
        configure_logging=False,
    )


def bind_host(settings: ServingSettings) -> str:
    """The host to bind: loopback whenever auth is off, whatever was asked."""
    keys = KeyRing.load(settings.api_keys_file, settings.api_keys)
    if not keys.is_enabled and settings.host != LOOPBACK:
        log.warning(
            "auth is off, binding loopback only",
            extra={"requested_host": settings.host, "host": LOOPBACK},
        )
        return LOOPBACK
    if not keys.is_enabled:
        log.warning("API keys not configured, auth is off", extra={"host": LOOPBACK})
    return settings.host


def deploy(
    settings: ServingSettings,
    *,
    config_overrides: dict[str, dict[str, Any]] | None = None,
    classifier_timeout_s: float | None = None,
) -> Any:
    """Run the application on the Ray this process is connected to.

    `config_overrides` maps a deployment name to options laid over the serve
    config's (tests use it for fault drills and short poll intervals).
    """
    from ray import serve

    config = load_serve_config(settings.serve_config_path)
    host = bind_host(settings)
    # No proxy: the ingress replica answers on the service port itself.
    serve.start(proxy_location="Disabled", http_options={"host": host})
    deployments = []
    for entry in config.get("deployments", []):
        merged = dict(entry)
        extra = (config_overrides or {}).get(entry["name"], {})
        if "user_config" in extra:
            merged["user_config"] = {
                **entry.get("user_config", {}),
                **extra["user_config"],
            }
        merged.update({k: v for k, v in extra.items() if k != "user_config"})
        deployments.append(merged)
    args = {
        **config.get("args", {}),
        "settings": settings.model_dump(mode="json"),
        "deployments": deployments,
        "listen": {"host": host, "port": settings.port},
    }
    if classifier_timeout_s is not None:
        args["classifier_timeout_s"] = classifier_timeout_s
    handle = serve.run(build_app(args), name=APP_NAME, route_prefix="/")
    log.info("service started", extra={"host": host, "port": settings.port})
    return handle


def shutdown() -> None:
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


class InProcessBackend:
    """The API's backend without Ray: the same router and classifier cores.

    Used where one process is enough (tests of the HTTP layer, small tools);
    classification runs in a worker thread so the event loop stays free.
    """

    def __init__(
        self,
        settings: ServingSettings,
        timeout_s: float = 2.0,
        per_ticket_s: float = 0.05,
    ) -> None:
        from serving.casework import CaseDesk
        from serving.classifier import ClassifierCore
        from serving.router import RouterCore, _open_writer

        self.router = RouterCore.from_settings(settings)
        self.classifier = ClassifierCore(settings)
        self.classifier.refresh()
        self.timeout_s = timeout_s
        self.per_ticket_s = per_ticket_s
        self.writer = _open_writer(settings)
        self.desk = CaseDesk.from_settings(settings, self.router, writer=self.writer)
        self.drift, self._stop_checks = _start_drift_monitor(settings)

    async def route(self, tickets: list[Any], request_id: str) -> list[dict[str, Any]]:
        # Like the Router deployment: one classifier call, longer for more tickets.
        budget_s = self.timeout_s + self.per_ticket_s * max(len(tickets) - 1, 0)
        decisions, answers, contexts = await self.router.route_detailed(
            tickets,
            self._classify,
            budget_s,
            enrich=self.desk.enrich,
            drift=self.drift,
        )
        self.desk.record(tickets, contexts, answers, decisions, request_id, "http")
        return [decision.model_dump(mode="json") for decision in decisions]

    async def apply_event(self, event: Any) -> dict[str, Any]:
        outcome = await self.desk.apply_event(event)
        return outcome.model_dump(mode="json")

    def close(self) -> None:
        self._stop_checks.set()
        self.desk.close()
        if self.writer is not None:
            self.writer.close()

    async def model_info(self) -> dict[str, Any]:
        return self.classifier.info()

    async def reload(self) -> dict[str, Any]:
        swapped = await asyncio.to_thread(self.classifier.refresh)
        return {**self.classifier.info(), "swapped": swapped}

    async def rules_info(self) -> dict[str, Any]:
        rules = self.router.rules
        return {"rule_set_version": rules.version, "source": rules.source}

    async def drift_status(self) -> dict[str, Any]:
        return self.drift.core.status()

    async def force_drift(
        self, target: str, actor: str, reason: str, via: str | None
    ) -> dict[str, Any]:
        forced: Any = target  # validated by the API's request model
        return await asyncio.to_thread(
            self.drift.core.force, forced, actor, reason, via=via
        )

    async def drift_metrics(self) -> bytes:
        return self.drift.core.metrics.export()

    async def _classify(self, texts: list[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.classifier.classify, texts)


def _start_drift_monitor(settings: ServingSettings) -> tuple[Any, threading.Event]:
    """A drift monitor in this process, its checks on a daemon thread."""
    from serving.drift_gate import LocalDrift
    from serving.drift_monitor import CHECK_TICK_S, open_monitor

    core = open_monitor(settings)
    stop = threading.Event()
    threading.Thread(
        target=core.run_checks,
        args=(stop, CHECK_TICK_S),
        name="drift-checks",
        daemon=True,
    ).start()
    return LocalDrift(core), stop
