"""The classifier: encoder + head of the champion, with dynamic batching.

`ClassifierCore` holds the model and follows the `champion` alias; it runs
without Ray. `Classifier` is the Ray Serve deployment around it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from features.encoder import Encoder
from features.errors import RegistryError
from features.settings import Settings
from training.bundle import ModelBundle
from training.profile import ReferenceProfile
from training.registry import (
    CHAMPION,
    VersionInfo,
    get_version,
    load_bundle,
    load_reference_profile,
)
from training.thresholds import thresholds_version

log = logging.getLogger(__name__)

FAULTS = ("none", "error", "slow")


class ClassifierFault(RuntimeError):
    """Raised on purpose by a fault drill (user_config `fault: error`)."""


@dataclass(frozen=True)
class LoadedModel:
    version: VersionInfo
    bundle: ModelBundle
    encoder: Encoder
    loaded_at: str
    # Reduces embeddings for the drift window; None for versions without one.
    profile: ReferenceProfile | None = None


class ClassifierCore:
    """The serving model, swapped atomically when the champion changes."""

    def __init__(self, settings: Settings, alias: str = CHAMPION) -> None:
        self.settings = settings
        self.alias = alias
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.last_checked_at: str | None = None
        # Requests of one dynamic batch arrive unsorted; the encoder sorts
        # them by length, and small sub-batches then pad only to neighbours.
        # Per backend: see `encode_batch_sizes`.
        self.encode_batch_size: dict[str, int] = {}

    @classmethod
    def pinned(cls, settings: Settings, ref: str) -> ClassifierCore:
        """A core holding one given version (number or alias), loaded now.

        For offline work that must score with exactly that version (a replay
        of stored tickets). Unlike `refresh`, a failed load raises: there is
        no serving version to keep.

        Raises:
            RegistryError: no such version or alias, or it cannot be loaded.
        """
        core = cls(settings, alias=ref)
        target = get_version(settings, ref)
        try:
            core._loaded = core._load(target, None)
        except RegistryError:
            raise
        except Exception as err:  # a broken bundle or encoder: say which version
            raise RegistryError(
                f"version {target.version} of {target.name} could not be loaded: "
                f"{type(err).__name__}: {err}"
            ) from err
        return core

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def refresh(self) -> bool:
        """Load the alias's version if it changed; True when a swap happened.

        A failed load keeps the version already serving.
        """
        with self._lock:
            self.last_checked_at = datetime.now(UTC).isoformat()
            try:
                target = get_version(self.settings, self.alias)
            except RegistryError as err:
                self.last_error = str(err)
                if self._loaded is None:
                    log.warning(
                        "no champion, serving by rules", extra={"alias": self.alias}
                    )
                return False
            current = self._loaded
            if current is not None and current.version.version == target.version:
                return False
            try:
                fresh = self._load(target, current)
            except Exception as err:  # any load failure must leave serving intact
                self.last_error = f"loading version {target.version} failed: {err}"
                log.warning(
                    "model load failed, keeping the serving version",
                    extra={
                        "target_version": target.version,
                        "serving_version": current.version.version if current else None,
                        "error": type(err).__name__,
                    },
                )
                return False
            self._loaded = fresh
            self.last_error = None
        log.info(
            "model version swapped in",
            extra={
                "version": target.version,
                "previous": current.version.version if current else None,
            },
        )
        return True

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        """One result per text: the proposal, or the reason there is none."""
        loaded = self._loaded  # one read: a swap mid-batch cannot mix versions
        if loaded is None:
            return [{"status": "no_model", "detail": self.last_error or ""}] * len(
                texts
            )
        loaded.encoder.batch_size = self.encode_batch_size.get(
            loaded.encoder.backend, self.settings.encode_batch_size
        )
        embeddings = loaded.encoder.encode(texts)
        predictions = loaded.bundle.predict(embeddings)
        # A few components instead of the whole embedding: the drift window's
        # copy of each ticket stays small on its way to the monitor.
        projections = loaded.profile.project(embeddings) if loaded.profile else None
        thresholds = loaded.bundle.thresholds
        version = thresholds_version(thresholds)
        results = []
        for row, queue in enumerate(predictions.queues):
            results.append(
                {
                    "status": "ready",
                    "model_name": loaded.version.name,
                    "model_version": loaded.version.version,
                    "top_queues": predictions.top_queues(row),
                    "similarity": float(predictions.similarity[row]),
                    "thresholds": {
                        "target_precision": thresholds.target_precision,
                        "global_threshold": thresholds.global_threshold,
                        "min_similarity": thresholds.min_similarity,
                        "queues": {queue: thresholds.for_queue(queue).model_dump()},
                    },
                    "thresholds_version": version,
                    "projection": (
                        projections[row].tolist() if projections is not None else None
                    ),
                }
            )
        return results

    def info(self) -> dict[str, Any]:
        loaded = self._loaded
        base = {
            "alias": self.alias,
            "last_checked_at": self.last_checked_at,
            "last_error": self.last_error,
        }
        if loaded is None:
            return {**base, "state": "no_model", "model_version": None}
        return {
            **base,
            "state": "ready",
            "model_name": loaded.version.name,
            "model_version": loaded.version.version,
            "aliases": loaded.version.aliases,
            "loaded_at": loaded.loaded_at,
            "encoder": loaded.bundle.encoder_identity,
            "metrics": loaded.version.metrics,
            "thresholds": loaded.bundle.thresholds.model_dump(),
        }

    def _load(self, target: VersionInfo, current: LoadedModel | None) -> LoadedModel:
        _, bundle = load_bundle(self.settings, target.version)
        if (
            current is not None
            and current.bundle.encoder_identity == bundle.encoder_identity
        ):
            encoder = current.encoder
        else:
            encoder = Encoder(
                bundle.encoder,
                batch_size=self.settings.encode_batch_size,
                backend=bundle.encoder_backend,
                export_dir=self.settings.encoder_export_dir,
            )
            encoder.encode(["warm up the encoder"])
        try:
            profile = load_reference_profile(self.settings, target.version)
        except Exception as err:  # drift monitoring is optional; serving is not
            log.warning(
                "reference profile not loaded, no drift projections",
                extra={"version": target.version, "error": type(err).__name__},
            )
            profile = None
        return LoadedModel(
            target, bundle, encoder, datetime.now(UTC).isoformat(), profile
        )


def encode_batch_sizes(value: Any) -> dict[str, int]:
    """The user_config's `encode_batch_size`: one number, or one per backend.

    Raises:
        ValueError: a backend that does not exist, or a size under 1.
    """
    from features.encoder import ENCODER_BACKENDS

    sizes = value if isinstance(value, dict) else dict.fromkeys(ENCODER_BACKENDS, value)
    unknown = sorted(set(sizes) - set(ENCODER_BACKENDS))
    if unknown:
        raise ValueError(
            f"encode_batch_size: unknown backend {', '.join(unknown)}; "
            f"backends are {', '.join(ENCODER_BACKENDS)}"
        )
    parsed = {backend: int(size) for backend, size in sizes.items()}
    small = [backend for backend, size in parsed.items() if size < 1]
    if small:
        raise ValueError(f"encode_batch_size for {', '.join(small)}: must be >= 1")
    return parsed


def _deployment() -> Any:
    from ray import serve

    @serve.deployment(name="Classifier", max_ongoing_requests=512)
    class Classifier:
        """Ray Serve deployment: batches the router's calls into encoder calls."""

        def __init__(self, settings: dict[str, Any]) -> None:
            self.core = ClassifierCore(Settings.model_validate(settings))
            self.core.refresh()
            self.fault = "none"
            self.poll_interval_s = 30.0
            self._stop = threading.Event()
            threading.Thread(
                target=self._poll, name="champion-poll", daemon=True
            ).start()

        def reconfigure(self, config: dict[str, Any]) -> None:
            import torch

            torch.set_num_threads(int(config.get("torch_threads", 2)))
            # serve.batch adds these setters to the decorated method.
            batched: Any = self.classify_many
            batched.set_max_batch_size(int(config.get("max_batch_size", 8)))
            batched.set_batch_wait_timeout_s(
                float(config.get("batch_wait_timeout_s", 0.01))
            )
            self.poll_interval_s = float(config.get("poll_interval_s", 30))
            self.core.encode_batch_size = encode_batch_sizes(
                config.get("encode_batch_size", 16)
            )
            fault = str(config.get("fault", "none"))
            self.fault = fault if fault in FAULTS else "none"
            if self.fault != "none":
                log.warning(
                    "classifier fault drill active", extra={"fault": self.fault}
                )

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
        async def classify_many(
            self, text_groups: list[list[str]]
        ) -> list[list[dict[str, Any]]]:
            """Groups of texts from concurrent router calls, encoded together.

            Each call brings the texts of one or more requests; the calls that
            wait here while the encoder is busy form the next batch, so under
            load batches fill and at low load nothing waits long.
            """
            if self.fault == "error":
                raise ClassifierFault("fault drill: classifier set to fail")
            # "slow" stalls until the drill ends (or 30 s), like a hung replica.
            stalled_until = time.monotonic() + 30
            while self.fault == "slow" and time.monotonic() < stalled_until:
                await asyncio.sleep(0.1)
            texts = [text for group in text_groups for text in group]
            # Encoding in a thread keeps the loop free to gather the next batch.
            results = await asyncio.to_thread(self.core.classify, texts)
            answers, start = [], 0
            for group in text_groups:
                answers.append(results[start : start + len(group)])
                start += len(group)
            return answers

        async def info(self) -> dict[str, Any]:
            return {**self.core.info(), "fault": self.fault}

        async def reload(self) -> dict[str, Any]:
            swapped = await asyncio.to_thread(self.core.refresh)
            return {**self.core.info(), "swapped": swapped}

        def _poll(self) -> None:
            while not self._stop.wait(self.poll_interval_s):
                started = time.monotonic()
                self.core.refresh()
                log.debug(
                    "champion polled",
                    extra={"elapsed_ms": (time.monotonic() - started) * 1000},
                )

        def __del__(self) -> None:
            self._stop.set()

    return Classifier
