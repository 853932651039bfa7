"""The router's side of drift monitoring: observations out, drift state in.

A `DriftSource` gives the router the drift state (cached, so asking costs
nothing per ticket) and takes observations of every decision the model ran
for. `LocalDrift` wraps a `DriftMonitorCore` in the same process;
`RemoteDrift` talks to the `DriftMonitor` deployment, off the request path:
observations go in batches from a background task, and the state is
re-read in the background at most every `state_refresh_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from features.language import SAMPLE_CHARS
from monitoring.drift import DriftConfig, DriftMonitorCore
from serving.decision import Decision, ModelProposal, ModelState

log = logging.getLogger(__name__)

# The router keeps at most this many observations waiting for the monitor;
# past it (the monitor down for a while) new ones are dropped, not queued.
MAX_PENDING_OBSERVATIONS = 5000

Outcome = tuple[ModelProposal | None, ModelState]


@dataclass(frozen=True)
class DriftView:
    """The drift state as routing needs it."""

    is_drift: bool = False
    detail: str = ""
    shadow: bool = True

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DriftView:
        return cls(
            is_drift=state.get("state") == "drift",
            detail=str(state.get("detail", "")),
            shadow=bool(state.get("shadow", True)),
        )


class DriftSource(Protocol):
    def current(self) -> DriftView: ...
    def observe(self, observations: list[dict[str, Any]]) -> None: ...


class LocalDrift:
    """A drift monitor in this process (the in-process backend, tests)."""

    def __init__(self, core: DriftMonitorCore) -> None:
        self.core = core

    def current(self) -> DriftView:
        return DriftView.from_state(self.core.state())

    def observe(self, observations: list[dict[str, Any]]) -> None:
        # Appending is cheap; languages are detected later, at check time.
        self.core.observe(observations)


class RemoteDrift:
    """The `DriftMonitor` deployment, through its handle, never awaited inline."""

    def __init__(
        self,
        monitor: Any,
        config: DriftConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.monitor = monitor
        self.refresh_s = config.state_refresh_s
        self.flush_s = config.observation_flush_s
        self._clock = clock
        self._view = DriftView(shadow=config.shadow)
        self._read_at = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._pending: list[dict[str, Any]] = []
        self._is_unreachable = False

    def current(self) -> DriftView:
        """The cached state; starts a background refresh when it is stale."""
        is_stale = self._clock() - self._read_at >= self.refresh_s
        if is_stale and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = _start(self._refresh())
        return self._view

    def observe(self, observations: list[dict[str, Any]]) -> None:
        if not observations:
            return
        room = MAX_PENDING_OBSERVATIONS - len(self._pending)
        if room < len(observations):
            log.warning(
                "drift observations dropped, monitor not keeping up",
                extra={"dropped": len(observations) - max(room, 0)},
            )
        self._pending.extend(observations[: max(room, 0)])
        if self._flushing is None or self._flushing.done():
            self._flushing = _start(self._flush_later())

    async def _refresh(self) -> None:
        try:
            state = await self.monitor.state.remote()
        except Exception as err:  # keep routing on the last state known
            if not self._is_unreachable:
                log.warning(
                    "drift monitor unreachable, keeping the last drift state",
                    extra={"error": type(err).__name__, "state": self._view.is_drift},
                )
            self._is_unreachable = True
        else:
            self._view = DriftView.from_state(state)
            self._is_unreachable = False
        finally:
            self._read_at = self._clock()

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_s)
        batch, self._pending = self._pending, []
        try:
            await self.monitor.observe.remote(batch)
        except Exception as err:  # observations are best effort, tickets are not
            log.warning(
                "drift observations not delivered",
                extra={"observations": len(batch), "error": type(err).__name__},
            )


def observation_for(
    text: str, result: dict[str, Any], proposal: ModelProposal
) -> dict[str, Any]:
    """What the drift window keeps of one model-run decision.

    The only text is the ticket's opening, which the monitor reads the
    language from and then drops; nothing of it is logged or stored.
    """
    queue = proposal.top_queue
    may_route = proposal.thresholds.may_route(
        queue, proposal.confidence, proposal.similarity
    )
    return {
        "model_version": proposal.model_version,
        "queue": queue,
        "confidence": proposal.confidence,
        "margin": proposal.margin,
        "text_length": len(text),
        "is_low_confidence": not may_route,
        "text_sample": text[:SAMPLE_CHARS],
        "language": None,
        "projection": result.get("projection"),
    }


def apply_drift(outcomes: Sequence[Outcome], view: DriftView) -> list[Outcome]:
    """In drift, every ticket's state becomes drift; the proposal stays in shadow."""
    if not view.is_drift:
        return list(outcomes)
    state = ModelState(status="drift", detail=view.detail)
    return [(proposal if view.shadow else None, state) for proposal, _state in outcomes]


def add_shadow_reasons(
    decisions: Sequence[Decision], outcomes: Sequence[Outcome], view: DriftView
) -> None:
    """Say, on each decision drift took from the model, what the model proposed."""
    if not (view.is_drift and view.shadow):
        return
    for decision, (proposal, _state) in zip(decisions, outcomes, strict=True):
        if proposal is None or decision.mode == "override":
            continue
        queue = proposal.top_queue
        rule = proposal.thresholds.for_queue(queue)
        would_route = proposal.thresholds.may_route(
            queue, proposal.confidence, proposal.similarity
        )
        verdict = "would have routed it" if would_route else "would not have routed"
        decision.reasons.append(
            f"drift shadow: model {proposal.model_version} proposed {queue} at "
            f"{proposal.confidence:.3f} (threshold {rule.threshold:.3f}), "
            f"{verdict}"
        )


_background: set[asyncio.Task[None]] = set()


def _start(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    # The loop keeps only weak references to tasks: hold them until done.
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task
