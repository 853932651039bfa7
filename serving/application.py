"""The Ray Serve application: Ingress -> Router -> Classifier.

`build_app` is the import path in `configs/serve.yaml`, so `serve deploy`
on a cluster and `switchboard serve` on a laptop build the same graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from features.config import bundled_config_path
from features.errors import ConfigError
from serving.app import create_api
from serving.auth import KeyRing
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

APP_NAME = "switchboard"


class HandleBackend:
    """The API's backend made of deployment handles.

    Requests that arrive while earlier ones are on their way to the router
    are sent on together, in one router call: on a small machine each call
    through Ray costs more CPU than deciding a ticket. With nothing in
    flight a request goes at once, so low load adds no wait.
    """

    def __init__(
        self,
        router: Any,
        classifier: Any,
        monitor: Any = None,
        *,
        max_batch_requests: int = 32,
        batch_wait_timeout_s: float = 0.0,
        max_batches_in_flight: int = 2,
    ) -> None:
        from ray import serve

        self.router = router
        self.classifier = classifier
        self.monitor = monitor

        async def send(
            requests: list[tuple[list[Any], str]],
        ) -> list[list[dict[str, Any]]]:
            return await router.route_many.remote(requests)

        self._route_together = serve.batch(
            max_batch_size=max_batch_requests,
            batch_wait_timeout_s=batch_wait_timeout_s,
            max_concurrent_batches=max_batches_in_flight,
        )(send)

    async def route(self, tickets: list[Any], request_id: str) -> list[dict[str, Any]]:
        together: Any = self._route_together  # serve.batch takes one request
        return await together((tickets, request_id))

    async def model_info(self) -> dict[str, Any]:
        return await self.classifier.info.remote()

    async def reload(self) -> dict[str, Any]:
        return await self.classifier.reload.remote()

    async def rules_info(self) -> dict[str, Any]:
        return await self.router.rules_info.remote()

    async def drift_status(self) -> dict[str, Any]:
        return await self.monitor.status.remote()

    async def force_drift(
        self, target: str, actor: str, reason: str, via: str | None
    ) -> dict[str, Any]:
        return await self.monitor.force.remote(target, actor, reason, via)

    async def drift_metrics(self) -> bytes:
        return await self.monitor.metrics.remote()

    async def apply_event(self, event: Any) -> dict[str, Any]:
        return await self.router.apply_event.remote(event)


def build_app(args: dict[str, Any]) -> Any:
    """Build the application from `args` (the serve config's `args`).

    Args:
        args: `settings` (ServingSettings fields; the environment fills the
            rest), `classifier_timeout_s` (one ticket's budget) and
            `classifier_timeout_per_ticket_s` (added per further ticket of a
            batch), `deployments` (the config's per-deployment options,
            applied here when not run by `serve deploy`, which applies them
            itself), and `listen` (`host` and `port`: the ingress replica
            serves HTTP there itself, see `serving.listener`; without it,
            Ray's proxy does).
    """
    from ray import serve

    from serving.classifier import _deployment as classifier_deployment
    from serving.drift_monitor import _deployment as monitor_deployment
    from serving.router import _deployment as router_deployment

    settings = ServingSettings.model_validate(args.get("settings") or {})
    settings_dump = settings.model_dump(mode="json")
    options = {d["name"]: _deployment_options(d) for d in args.get("deployments", [])}
    timeout_s = float(args.get("classifier_timeout_s", 2.0))
    per_ticket_s = float(args.get("classifier_timeout_per_ticket_s", 0.05))
    grouping: dict[str, Any] = {
        "max_batch_requests": int(args.get("ingress_max_batch_requests", 32)),
        "batch_wait_timeout_s": float(args.get("ingress_batch_wait_timeout_s", 0.0)),
    }

    # Fail start-up here, in the driver, on a bad rules, drift or keys file.
    from monitoring.drift import load_drift_config
    from serving.router import RouterCore

    RouterCore.from_settings(settings)
    load_drift_config(settings.drift_path)
    keys = KeyRing.load(settings.api_keys_file, settings.api_keys)
    listen = args.get("listen")

    @serve.deployment(name="Ingress", max_ongoing_requests=512)
    @serve.ingress()
    class Ingress:
        """The HTTP entry point; its FastAPI app is built inside the replica."""

        # Serve awaits an async __init__; the listener binds in it.
        async def __init__(  # type: ignore[misc]
            self, router: Any, classifier: Any, monitor: Any
        ) -> None:
            from serving.listener import HttpListener

            self.backend = HandleBackend(router, classifier, monitor, **grouping)
            self.api = create_api(self.backend, settings, keys)
            self.listener = None
            if listen:
                self.listener = await HttpListener.start(
                    self.api, str(listen["host"]), int(listen["port"])
                )

        def __serve_build_asgi_app__(self) -> Any:
            return self.api

        def __del__(self) -> None:
            listener = getattr(self, "listener", None)
            if listener is not None:
                listener.close_now()

    classifier = (
        classifier_deployment()
        .options(**options.get("Classifier", {}))
        .bind(settings_dump)
    )
    monitor = (
        monitor_deployment()
        .options(**options.get("DriftMonitor", {}))
        .bind(settings_dump)
    )
    router = (
        router_deployment()
        .options(**options.get("Router", {}))
        .bind(classifier, settings_dump, timeout_s, per_ticket_s, monitor)
    )
    ingress: Any = Ingress  # serve.deployment turned the class into a Deployment
    return ingress.options(**options.get("Ingress", {})).bind(
        router, classifier, monitor
    )


def load_serve_config(path: Path | None = None) -> dict[str, Any]:
    """The Switchboard application's entry of a Ray Serve config file."""
    path = path or bundled_config_path("serve.yaml")
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read Ray Serve config: {err}") from err
    for application in config.get("applications", []):
        if application.get("import_path") == "serving.application:build_app" or (
            application.get("name") == APP_NAME
        ):
            return {"http_options": config.get("http_options", {}), **application}
    raise ConfigError(f"{path}: applications: no entry named {APP_NAME!r}")


def _deployment_options(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "name"}
