"""The Enricher: every source at once, one budget per ticket, failures recorded.

Connectors here are in-process fakes so each outcome can be forced, per
ticket or in bulk, and the real local connectors over a seeded store; the
HTTP connectors under an Enricher are in test_connectors.py. Async code runs
with `asyncio.run`, each call bounded by `wait_for`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, ValidationError

from features.connectors import HttpConnector, LocalConnector
from features.context import (
    SOURCES,
    Billing,
    Context,
    CrmAccount,
    Entitlements,
    Identity,
    Source,
    Telemetry,
)
from features.context_store import ContextStore, seed_context_store
from features.enrichment import (
    BulkConnector,
    CircuitOpenError,
    Connector,
    ContextKey,
    Enricher,
    build_enricher,
)
from features.errors import ConfigError
from features.sample_data import generate_tickets
from features.scenarios import (
    provisioning_failed_after_expansion,
    strategic_suspended_despite_payment,
)
from features.schema import Ticket, parse_ticket
from features.settings import Settings

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

BUDGET_S = 0.15
# A bound, not a benchmark: far above the budget, far below a hung source.
BOUND_S = 1.0
SECRET_TEXT = "card 4242 4242 4242 4242 belongs to Jane Doe"
HTTP_SECRETS = {
    name: "test-token"
    for name in (
        "SWITCHBOARD_CRM_TOKEN",
        "SWITCHBOARD_BILLING_TOKEN",
        "SWITCHBOARD_ENTITLEMENTS_API_KEY",
        "SWITCHBOARD_IDENTITY_TOKEN",
        "SWITCHBOARD_TELEMETRY_TOKEN",
    )
}

SECTIONS: dict[Source, BaseModel] = {
    "crm": CrmAccount(name="Acme", tier="strategic", is_strategic=True),
    "billing": Billing(invoice_id="INV-1", invoice_status="paid"),
    "entitlements": Entitlements(plan="business", status="active"),
    "identity": Identity(last_sync_status="ok"),
    "telemetry": Telemetry(),
}


class FakeConnector:
    """Answers with `answer`: a section, None, or an exception to raise."""

    def __init__(self, source: Source, answer: BaseModel | Exception | None) -> None:
        self.source: Source = source
        self.answer = answer
        self.keys: list[ContextKey] = []
        self.closed = False

    async def fetch(self, key: ContextKey) -> BaseModel | None:
        self.keys.append(key)
        await asyncio.sleep(0)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def aclose(self) -> None:
        self.closed = True


class HangingConnector(FakeConnector):
    """Never answers; notes when the enricher cancels it."""

    def __init__(self, source: Source) -> None:
        super().__init__(source, None)
        self.cancelled = asyncio.Event()

    async def fetch(self, key: ContextKey) -> BaseModel | None:
        self.keys.append(key)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return None


class FakeBulkConnector(FakeConnector):
    """A `BulkConnector` that gives `answer` for every key of a group."""

    def __init__(self, source: Source, answer: BaseModel | Exception | None) -> None:
        super().__init__(source, answer)
        self.groups: list[list[ContextKey]] = []

    async def fetch_many(self, keys: Sequence[ContextKey]) -> list[BaseModel | None]:
        self.groups.append(list(keys))
        await asyncio.sleep(0)
        if isinstance(self.answer, Exception):
            raise self.answer
        return [self.answer] * len(keys)


class HangingBulkConnector(FakeBulkConnector):
    """A `BulkConnector` whose group call never answers; notes its cancelling."""

    def __init__(self, source: Source) -> None:
        super().__init__(source, None)
        self.cancelled = asyncio.Event()

    async def fetch_many(self, keys: Sequence[ContextKey]) -> list[BaseModel | None]:
        self.groups.append(list(keys))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return [None] * len(keys)


class PerTicketOnly:
    """Hides a connector's `fetch_many`, so the enricher asks it per ticket."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.source: Source = inner.source

    async def fetch(self, key: ContextKey) -> BaseModel | None:
        return await self.inner.fetch(key)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingStore(ContextStore):
    """The real store, counting `get` and `get_many` calls per source."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: Counter[tuple[str, Source]] = Counter()

    def get(self, source: Source, key: ContextKey) -> BaseModel | None:
        self.calls["get", source] += 1
        return super().get(source, key)

    def get_many(
        self, source: Source, keys: Sequence[ContextKey]
    ) -> list[BaseModel | None]:
        self.calls["get_many", source] += 1
        return super().get_many(source, keys)


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(work, timeout=10))


def ticket(
    ticket_id: str = "t-1",
    account_id: str | None = "acct_1",
    product: str | None = "Workspace",
    region: str | None = "eu-west-1",
) -> Ticket:
    return Ticket(
        id=ticket_id,
        channel="email",
        subject="Cannot log in",
        body=SECRET_TEXT,
        account_id=account_id,
        product=product,
        region=region,
    )


def answering(**overrides: BaseModel | Exception | None) -> list[FakeConnector]:
    answers: dict[str, BaseModel | Exception | None] = {**SECTIONS, **overrides}
    return [FakeConnector(source, answer) for source, answer in answers.items()]


def outcomes(context: Any) -> dict[str, str]:
    return {source: status.outcome for source, status in context.sources.items()}


def without_latency(context: Context) -> dict[str, Any]:
    """The context as data, latencies zeroed: they differ between any two runs."""
    dumped = context.model_dump(mode="json")
    for status in dumped["sources"].values():
        status["latency_ms"] = 0.0
    return dumped


def mixed_group() -> list[Ticket]:
    """Tickets with and without records, without an account, without a place."""
    sample = [
        ticket(f"s-{n}", row["account_id"], row["product"], row["region"])
        for n, row in enumerate(generate_tickets(40, seed=11))
    ]
    return [
        *sample,
        # Aurora Energy: a regional incident on its product and region.
        ticket("aurora", "acct_500104", "Workspace", "eu-west-1"),
        ticket("aurora-again", "acct_500104", "Workspace", "eu-west-1"),
        ticket("meridian", "acct_900417", "Workspace", "eu-central-1"),
        ticket("unknown", "acct_not_in_store", "Workspace", "eu-west-1"),
        ticket("no-account", None, "Workspace", "eu-west-1"),
        ticket("no-region", "acct_900417", "Workspace", None),
        ticket("nothing", None, None, None),
    ]


def enrich_and_observe(
    connectors: Sequence[Connector], tickets: list[Ticket], caplog: Any
) -> tuple[list[Context], Any, Counter[tuple[str, str]], Counter[tuple[Any, ...]]]:
    """Contexts, stats, observer events and failure warnings of one group."""
    heard: Counter[tuple[str, str]] = Counter()
    enricher = Enricher(
        connectors,
        budget_s=BUDGET_S,
        observer=lambda source, outcome, _: heard.update([(source, outcome)]),
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="features.enrichment"):
        contexts = run(enricher.enrich_many(tickets))
    warned = Counter(
        (r.source, r.outcome, r.ticket_id, r.detail)
        for r in caplog.records
        if r.getMessage() == "context source failed, deciding without it"
    )
    return contexts, enricher.stats(), heard, warned


def test_a_ticket_gets_every_sources_facts_when_all_answer() -> None:
    enricher = Enricher(answering(), budget_s=BUDGET_S)

    context = run(enricher.enrich(ticket()))

    assert set(outcomes(context).values()) == {"ok"}
    assert context.crm == SECTIONS["crm"]
    assert context.billing == SECTIONS["billing"]
    assert context.account_id == "acct_1"
    assert context.is_complete


def test_connectors_are_asked_by_the_tickets_ids() -> None:
    connectors = answering()

    run(Enricher(connectors).enrich(ticket("t-9", "acct_7", "Flows", "us-east-1")))

    assert {c.keys[0] for c in connectors} == {
        ContextKey(
            ticket_id="t-9", account_id="acct_7", product="Flows", region="us-east-1"
        )
    }


def test_a_hanging_source_times_out_in_budget_and_others_keep_their_facts() -> None:
    hanging = HangingConnector("entitlements")
    connectors = [*answering(), hanging]
    connectors = [c for c in connectors if c.source != "entitlements" or c is hanging]
    enricher = Enricher(connectors, budget_s=BUDGET_S)

    async def enrich_and_watch() -> tuple[Any, float, bool]:
        started = time.perf_counter()
        context = await enricher.enrich(ticket())
        elapsed = time.perf_counter() - started
        await asyncio.wait_for(hanging.cancelled.wait(), timeout=1)
        return context, elapsed, hanging.cancelled.is_set()

    context, elapsed_s, was_cancelled = run(enrich_and_watch())

    assert elapsed_s < BOUND_S
    assert context.sources["entitlements"].outcome == "timeout"
    assert context.sources["entitlements"].latency_ms >= BUDGET_S * 1000 * 0.9
    assert context.missing == ["entitlements"]
    assert context.entitlements == Entitlements()
    assert context.crm == SECTIONS["crm"]
    assert context.billing == SECTIONS["billing"]
    assert was_cancelled


def test_cancelling_a_ticket_cancels_its_connector_calls() -> None:
    hanging = HangingConnector("crm")
    enricher = Enricher([hanging], budget_s=5)

    async def cancel_midway() -> bool:
        enriching = asyncio.create_task(enricher.enrich(ticket()))
        await asyncio.sleep(0.05)
        enriching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await enriching
        await asyncio.wait_for(hanging.cancelled.wait(), timeout=1)
        return hanging.cancelled.is_set()

    assert run(cancel_midway())


def test_a_failing_source_is_an_error_detailed_by_exception_class_only() -> None:
    connectors = answering(billing=ValueError(f"bad row for {SECRET_TEXT}"))

    context = run(Enricher(connectors, budget_s=BUDGET_S).enrich(ticket()))

    assert context.sources["billing"].outcome == "error"
    assert context.sources["billing"].detail == "ValueError"
    assert context.missing == ["billing"]
    assert context.crm == SECTIONS["crm"]


def test_a_source_whose_breaker_is_open_is_recorded_as_circuit_open() -> None:
    connectors = answering(identity=CircuitOpenError("identity", retry_in_s=12.0))

    context = run(Enricher(connectors, budget_s=BUDGET_S).enrich(ticket()))

    assert context.sources["identity"].outcome == "circuit_open"
    assert context.missing == ["identity"]
    assert context.entitlements == SECTIONS["entitlements"]


def test_a_connector_timing_out_by_itself_is_recorded_as_timeout() -> None:
    connectors = answering(crm=TimeoutError())

    context = run(Enricher(connectors, budget_s=BUDGET_S).enrich(ticket()))

    assert context.sources["crm"].outcome == "timeout"


def test_a_source_without_a_record_is_not_found_and_not_missing() -> None:
    connectors = answering(crm=None)

    context = run(Enricher(connectors).enrich(ticket()))

    assert context.sources["crm"].outcome == "not_found"
    assert context.crm == CrmAccount()
    assert context.is_complete


def test_a_connector_answering_with_another_sources_model_is_an_error() -> None:
    connectors = answering(billing=CrmAccount(name="wrong"))

    context = run(Enricher(connectors).enrich(ticket()))

    assert context.sources["billing"].outcome == "error"
    assert context.billing == Billing()


def test_no_account_id_skips_account_sources_but_looks_up_telemetry() -> None:
    connectors = answering()

    context = run(Enricher(connectors).enrich(ticket(account_id=None)))

    assert outcomes(context) == {
        "crm": "skipped",
        "billing": "skipped",
        "entitlements": "skipped",
        "identity": "skipped",
        "telemetry": "ok",
    }
    assert context.is_complete
    telemetry = next(c for c in connectors if c.source == "telemetry")
    assert [(k.product, k.region) for k in telemetry.keys] == [
        ("Workspace", "eu-west-1")
    ]
    assert all(not c.keys for c in connectors if c.source != "telemetry")


@pytest.mark.parametrize(
    ("product", "region"),
    [
        pytest.param(None, "eu-west-1", id="no-product"),
        pytest.param("Workspace", None, id="no-region"),
        pytest.param(None, None, id="neither"),
    ],
)
def test_a_ticket_without_product_and_region_skips_telemetry(
    product: str | None, region: str | None
) -> None:
    context = run(Enricher(answering()).enrich(ticket(product=product, region=region)))

    assert context.sources["telemetry"].outcome == "skipped"
    assert context.sources["crm"].outcome == "ok"


def test_a_failing_source_logs_one_warning_with_ids_and_no_ticket_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connectors = answering(billing=RuntimeError(SECRET_TEXT), crm=None)

    with caplog.at_level(logging.INFO, logger="features.enrichment"):
        run(Enricher(connectors).enrich(ticket("t-42")))

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "context source failed, deciding without it"
    ]
    record: Any = warnings[0]
    assert (record.source, record.outcome, record.ticket_id) == (
        "billing",
        "error",
        "t-42",
    )
    assert all(SECRET_TEXT not in str(vars(r)) for r in caplog.records)


def test_the_observer_hears_every_source_once_per_ticket() -> None:
    heard: list[tuple[str, str, float]] = []
    connectors = answering(billing=RuntimeError("down"))
    enricher = Enricher(connectors, observer=lambda *event: heard.append(event))

    run(enricher.enrich_many([ticket("t-1"), ticket("t-2", account_id=None)]))

    assert len(heard) == 10
    assert sorted((s, o) for s, o, _ in heard).count(("billing", "error")) == 1
    assert sorted((s, o) for s, o, _ in heard).count(("billing", "skipped")) == 1
    assert all(latency_ms >= 0 for _, _, latency_ms in heard)


def test_a_failing_observer_does_not_fail_the_ticket() -> None:
    def broken(source: str, outcome: str, latency_ms: float) -> None:
        raise RuntimeError("metrics backend down")

    context = run(Enricher(answering(), observer=broken).enrich(ticket()))

    assert context.is_complete


def test_stats_count_outcomes_and_leave_skipped_out_of_success_rate() -> None:
    connectors = answering(billing=RuntimeError("down"), crm=None)
    enricher = Enricher(connectors)

    run(enricher.enrich_many([ticket("t-1"), ticket("t-2"), ticket("t-3", None)]))
    stats = enricher.stats()

    assert stats.sources["crm"].counts == {"not_found": 2, "skipped": 1}
    assert stats.sources["crm"].success_rate == 1.0
    assert stats.sources["billing"].counts == {"error": 2, "skipped": 1}
    assert stats.sources["billing"].attempted == 2
    assert stats.sources["billing"].success_rate == 0.0
    assert stats.sources["telemetry"].counts == {"ok": 3}
    # 4 account sources x 2 tickets + telemetry x 3; billing's 2 failed.
    assert stats.attempted == 11
    assert stats.success_rate == pytest.approx(9 / 11)


def test_stats_before_any_ticket_have_no_success_rate() -> None:
    stats = Enricher(answering()).stats()

    assert stats.success_rate is None
    assert stats.sources["crm"].success_rate is None


def test_enrich_many_enriches_tickets_concurrently_each_within_its_budget() -> None:
    connectors = [*answering(telemetry=None)]
    connectors = [c for c in connectors if c.source != "identity"]
    connectors.append(HangingConnector("identity"))
    enricher = Enricher(connectors, budget_s=BUDGET_S)
    tickets = [ticket(f"t-{n}") for n in range(20)]

    started = time.perf_counter()
    contexts = run(enricher.enrich_many(tickets))
    elapsed_s = time.perf_counter() - started

    # One after another would take 20 budgets (3 s).
    assert elapsed_s < BOUND_S
    assert [c.sources["identity"].outcome for c in contexts] == ["timeout"] * 20
    assert all(c.crm == SECTIONS["crm"] for c in contexts)


def test_enrich_many_sync_works_from_a_thread_without_an_event_loop() -> None:
    connectors = answering()
    enricher = Enricher(connectors)
    results: list[Any] = []

    def batch_worker() -> None:
        results.extend(enricher.enrich_many_sync([ticket("t-1"), ticket("t-2")]))

    worker = threading.Thread(target=batch_worker)
    worker.start()
    worker.join(timeout=10)
    enricher.close()

    assert not worker.is_alive()
    assert [c.sources["crm"].outcome for c in results] == ["ok", "ok"]
    assert all(c.closed for c in connectors)
    assert not [t for t in threading.enumerate() if t.name == "enrichment-loop"]


def test_enrich_many_sync_serves_several_threads_at_once() -> None:
    enricher = Enricher(answering())
    results: dict[int, list[Any]] = {}

    def stream_consumer(n: int) -> None:
        results[n] = enricher.enrich_many_sync([ticket(f"t-{n}")])

    workers = [threading.Thread(target=stream_consumer, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    enricher.close()

    assert sorted(results) == [0, 1, 2, 3]
    assert all(r[0].is_complete for r in results.values())


def test_aclose_closes_every_connector() -> None:
    connectors = answering()
    enricher = Enricher(connectors)

    run(enricher.aclose())

    assert all(c.closed for c in connectors)


def test_two_connectors_for_one_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="crm"):
        Enricher([FakeConnector("crm", None), FakeConnector("crm", None)])


def test_enrichment_off_builds_no_enricher(settings: Settings) -> None:
    off = settings.model_copy(update={"enrichment": "off"})

    assert build_enricher(off) is None


def test_local_enrichment_seeds_an_empty_store_and_resolves_scenario_tickets(
    settings: Settings,
) -> None:
    enricher = build_enricher(settings)
    assert enricher is not None
    suspended = parse_ticket(strategic_suspended_despite_payment().ticket)
    expansion = parse_ticket(provisioning_failed_after_expansion().ticket)

    try:
        meridian, harbor = enricher.enrich_many_sync([suspended, expansion])
    finally:
        enricher.close()

    assert (settings.home_dir / "context.db").exists()
    assert enricher.budget_s == pytest.approx(0.15)
    assert meridian.is_complete and harbor.is_complete
    view = meridian.rule_view()
    assert view["entitlements"]["status"] == "suspended"
    assert view["billing"]["payment_status"] == "cleared"
    assert view["identity"]["sync_error"] is True
    assert view["crm"]["is_strategic"] is True
    assert harbor.rule_view()["entitlements"]["seat_mismatch"] is True


def test_local_enrichment_uses_the_configured_store_url(
    settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'ctx.db'}"
    configured = settings.model_copy(update={"context_store_url": url})

    enricher = build_enricher(configured)
    assert enricher is not None
    enricher.close()

    reopened = ContextStore(url)
    assert configured.resolved_context_store_url() == url
    assert not reopened.is_empty()
    reopened.close()


def test_local_enrichment_reads_through_local_connectors(settings: Settings) -> None:
    enricher = build_enricher(settings)
    assert enricher is not None
    enricher.close()

    assert all(isinstance(c, LocalConnector) for c in enricher.connectors)
    assert enricher.sources == (
        "crm",
        "billing",
        "entitlements",
        "identity",
        "telemetry",
    )


def test_http_enrichment_builds_one_http_connector_per_configured_source(
    settings: Settings,
) -> None:
    http = settings.model_copy(update={"enrichment": "http"})

    enricher = build_enricher(http, env=HTTP_SECRETS)
    assert enricher is not None
    connectors = list(enricher.connectors)
    enricher.close()

    assert all(isinstance(c, HttpConnector) for c in connectors)
    assert enricher.sources == (
        "crm",
        "billing",
        "entitlements",
        "identity",
        "telemetry",
    )


def test_http_enrichment_without_a_secret_fails_at_start_up(
    settings: Settings,
) -> None:
    http = settings.model_copy(update={"enrichment": "http"})
    secrets = {k: v for k, v in HTTP_SECRETS.items() if "BILLING" not in k}

    with pytest.raises(ConfigError, match="SWITCHBOARD_BILLING_TOKEN"):
        build_enricher(http, env=secrets)


def test_settings_put_the_context_store_in_the_state_folder(
    settings: Settings,
) -> None:
    expected = f"sqlite:///{settings.home_dir / 'context.db'}"

    assert settings.resolved_context_store_url() == expected
    assert settings.enrichment == "local"
    assert settings.connectors_path.name == "connectors.yaml"


@pytest.mark.parametrize(
    "budget_ms",
    [pytest.param(0, id="zero"), pytest.param(20_000, id="over-10-s")],
)
def test_an_enrichment_budget_out_of_bounds_is_refused(
    tmp_path: Path, budget_ms: float
) -> None:
    with pytest.raises(ValidationError, match="enrichment_budget_ms"):
        Settings(home=tmp_path, enrichment_budget_ms=budget_ms)


def test_bulk_and_per_ticket_paths_give_identical_contexts_on_the_seeded_store(
    tmp_path: Path,
) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'context.db'}")
    seed_context_store(store)
    tickets = mixed_group()
    heard: dict[str, Counter[tuple[str, str]]] = {"bulk": Counter(), "each": Counter()}

    def enrich_with(path: str, connectors: Sequence[Connector]) -> Any:
        enricher = Enricher(
            connectors,
            # Generous: this compares answers, and a slow machine must not
            # turn a read into a timeout on one side only.
            budget_s=5.0,
            observer=lambda source, outcome, _: heard[path].update([(source, outcome)]),
        )
        return run(enricher.enrich_many(tickets)), enricher.stats()

    local = [LocalConnector(store, source) for source in SOURCES]
    each_contexts, each_stats = enrich_with("each", [PerTicketOnly(c) for c in local])
    per_ticket_calls = Counter(store.calls)
    store.calls.clear()
    bulk_contexts, bulk_stats = enrich_with("bulk", local)
    store.close()

    assert [without_latency(c) for c in bulk_contexts] == [
        without_latency(c) for c in each_contexts
    ]
    assert bulk_stats.model_dump() == each_stats.model_dump()
    assert heard["bulk"] == heard["each"]
    assert store.calls == {("get_many", source): 1 for source in SOURCES}
    assert {kind for kind, _ in per_ticket_calls} == {"get"}
    # The group really is mixed: records found and not, skips, an incident.
    seen = set(heard["bulk"])
    assert {("crm", "ok"), ("crm", "not_found"), ("crm", "skipped")} <= seen
    assert ("telemetry", "skipped") in seen
    by_id = {t.id: c for t, c in zip(tickets, bulk_contexts, strict=True)}
    assert [i.incident_id for i in by_id["aurora"].telemetry.open_incidents] == [
        "INC-4411"
    ]
    assert by_id["no-account"].telemetry == by_id["aurora"].telemetry
    assert by_id["meridian"].crm.name == "Meridian Logistics"


def test_a_bulk_connector_is_asked_once_for_the_tickets_it_does_not_skip() -> None:
    crm = FakeBulkConnector("crm", SECTIONS["crm"])
    telemetry = FakeBulkConnector("telemetry", SECTIONS["telemetry"])
    tickets = [
        ticket("t-1"),
        ticket("t-2", account_id=None),
        ticket("t-3", region=None),
        ticket("t-4"),
    ]

    contexts = run(Enricher([crm, telemetry]).enrich_many(tickets))

    assert [[k.ticket_id for k in group] for group in crm.groups] == [
        ["t-1", "t-3", "t-4"]
    ]
    assert [[k.ticket_id for k in group] for group in telemetry.groups] == [
        ["t-1", "t-2", "t-4"]
    ]
    assert not crm.keys and not telemetry.keys
    assert [outcomes(c) for c in contexts] == [
        {"crm": "ok", "telemetry": "ok"},
        {"crm": "skipped", "telemetry": "ok"},
        {"crm": "ok", "telemetry": "skipped"},
        {"crm": "ok", "telemetry": "ok"},
    ]
    assert contexts[1].sources["crm"].detail == "no account_id"
    assert contexts[0].crm == SECTIONS["crm"]


def test_a_hanging_bulk_source_times_out_every_ticket_and_others_keep_facts() -> None:
    hanging = HangingBulkConnector("entitlements")
    per_ticket = [c for c in answering() if c.source not in {"entitlements", "crm"}]
    connectors = [*per_ticket, FakeBulkConnector("crm", SECTIONS["crm"]), hanging]
    enricher = Enricher(connectors, budget_s=BUDGET_S)
    tickets = [*(ticket(f"t-{n}") for n in range(20)), ticket("t-x", None)]

    async def enrich_and_watch() -> tuple[list[Context], float]:
        started = time.perf_counter()
        contexts = await enricher.enrich_many(tickets)
        elapsed_s = time.perf_counter() - started
        await asyncio.wait_for(hanging.cancelled.wait(), timeout=1)
        return contexts, elapsed_s

    contexts, elapsed_s = run(enrich_and_watch())

    assert elapsed_s < BOUND_S
    asked, skipped = contexts[:-1], contexts[-1]
    assert [c.sources["entitlements"].outcome for c in asked] == ["timeout"] * 20
    assert all(
        c.sources["entitlements"].latency_ms >= BUDGET_S * 1000 * 0.9 for c in asked
    )
    assert all(c.missing == ["entitlements"] for c in asked)
    assert all(c.entitlements == Entitlements() for c in asked)
    assert all(
        c.crm == SECTIONS["crm"] and c.billing == SECTIONS["billing"] for c in asked
    )
    assert skipped.sources["entitlements"].outcome == "skipped"
    assert hanging.cancelled.is_set()
    assert enricher.stats().sources["entitlements"].counts == {
        "timeout": 20,
        "skipped": 1,
    }


def test_a_failing_bulk_source_is_an_error_for_each_ticket_it_was_asked_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = FakeBulkConnector("billing", RuntimeError(f"bad rows for {SECRET_TEXT}"))
    connectors = [*(c for c in answering() if c.source != "billing"), failing]
    tickets = [ticket("t-1"), ticket("t-2"), ticket("t-3", None)]

    contexts, stats, heard, warned = enrich_and_observe(connectors, tickets, caplog)

    assert [c.sources["billing"].outcome for c in contexts] == [
        "error",
        "error",
        "skipped",
    ]
    assert [c.sources["billing"].detail for c in contexts[:2]] == ["RuntimeError"] * 2
    assert contexts[0].missing == ["billing"]
    assert contexts[0].crm == SECTIONS["crm"]
    assert sorted(ticket_id for _, _, ticket_id, _ in warned) == ["t-1", "t-2"]
    assert stats.sources["billing"].counts == {"error": 2, "skipped": 1}
    assert heard[("billing", "error")] == 2
    assert len(failing.groups) == 1 and not failing.keys
    assert all(SECRET_TEXT not in str(vars(r)) for r in caplog.records)


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param({}, id="all-answer"),
        pytest.param(
            {"billing": RuntimeError("down"), "crm": None}, id="error-and-not-found"
        ),
        pytest.param(
            {"identity": CircuitOpenError("identity", retry_in_s=3.0)},
            id="circuit-open",
        ),
        pytest.param({"telemetry": TimeoutError()}, id="connector-timeout"),
        pytest.param({"entitlements": CrmAccount(name="wrong")}, id="wrong-model"),
    ],
)
def test_bulk_and_per_ticket_paths_count_observe_and_warn_alike(
    answers: dict[str, BaseModel | Exception | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tickets = [ticket("t-1"), ticket("t-2", None), ticket("t-3", region=None)]
    every: dict[str, BaseModel | Exception | None] = {**SECTIONS, **answers}
    bulk = [FakeBulkConnector(source, answer) for source, answer in every.items()]

    each_run = enrich_and_observe(answering(**answers), tickets, caplog)
    bulk_run = enrich_and_observe(bulk, tickets, caplog)

    each_contexts, each_stats, each_heard, each_warned = each_run
    bulk_contexts, bulk_stats, bulk_heard, bulk_warned = bulk_run
    assert [without_latency(c) for c in bulk_contexts] == [
        without_latency(c) for c in each_contexts
    ]
    assert bulk_stats.model_dump() == each_stats.model_dump()
    assert bulk_heard == each_heard
    assert bulk_warned == each_warned
    assert all(len(c.groups) == 1 for c in bulk)


def test_bulk_calls_run_alongside_the_gated_per_ticket_calls() -> None:
    class SlowCounting(FakeConnector):
        def __init__(self) -> None:
            super().__init__("billing", SECTIONS["billing"])
            self.in_flight = 0
            self.most_in_flight = 0

        async def fetch(self, key: ContextKey) -> BaseModel | None:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0.1)
            finally:
                self.in_flight -= 1
            return self.answer

    slow = SlowCounting()
    bulk = FakeBulkConnector("crm", SECTIONS["crm"])
    enricher = Enricher([slow, bulk], budget_s=0.3, max_concurrency=2)
    tickets = [ticket(f"t-{n}") for n in range(8)]

    contexts = run(enricher.enrich_many(tickets))

    # 8 tickets two at a time take 4 x 0.1 s, past the group's 0.3 s budget:
    # the bulk call answered in time only because it ran alongside them.
    assert slow.most_in_flight == 2
    assert len(bulk.groups) == 1 and not bulk.keys
    assert [outcomes(c) for c in contexts] == [{"crm": "ok", "billing": "ok"}] * 8


def test_a_bulk_answer_with_the_wrong_number_of_sections_is_an_error() -> None:
    class ShortBulk(FakeBulkConnector):
        async def fetch_many(
            self, keys: Sequence[ContextKey]
        ) -> list[BaseModel | None]:
            return [SECTIONS["crm"]]

    contexts = run(
        Enricher([ShortBulk("crm", None)]).enrich_many([ticket("t-1"), ticket("t-2")])
    )

    assert [c.sources["crm"].outcome for c in contexts] == ["error", "error"]
    assert contexts[0].sources["crm"].detail == "ValueError"


def test_cancelling_enrich_many_cancels_the_bulk_and_per_ticket_calls() -> None:
    bulk = HangingBulkConnector("crm")
    per_ticket = HangingConnector("billing")
    enricher = Enricher([bulk, per_ticket], budget_s=5)

    async def cancel_midway() -> bool:
        enriching = asyncio.create_task(
            enricher.enrich_many([ticket("t-1"), ticket("t-2")])
        )
        await asyncio.sleep(0.05)
        enriching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await enriching
        await asyncio.wait_for(bulk.cancelled.wait(), timeout=1)
        await asyncio.wait_for(per_ticket.cancelled.wait(), timeout=1)
        return bulk.cancelled.is_set() and per_ticket.cancelled.is_set()

    assert run(cancel_midway())


def test_enrich_of_one_ticket_asks_a_bulk_connector_per_ticket() -> None:
    crm = FakeBulkConnector("crm", SECTIONS["crm"])

    context = run(Enricher([crm]).enrich(ticket("t-1")))

    assert context.crm == SECTIONS["crm"]
    assert [k.ticket_id for k in crm.keys] == ["t-1"]
    assert not crm.groups


def test_an_empty_group_asks_no_connector() -> None:
    crm = FakeBulkConnector("crm", SECTIONS["crm"])

    assert run(Enricher([crm]).enrich_many([])) == []
    assert not crm.groups


def test_only_connectors_with_fetch_many_are_bulk_connectors() -> None:
    assert isinstance(FakeBulkConnector("crm", None), BulkConnector)
    assert not isinstance(FakeConnector("crm", None), BulkConnector)
