"""The Enricher: every source at once, one budget per ticket, failures recorded.

Connectors here are in-process fakes so each outcome can be forced; the
HTTP connectors under an Enricher are in test_connectors.py. Async code runs
with `asyncio.run`, each call bounded by `wait_for`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, ValidationError

from features.connectors import HttpConnector, LocalConnector
from features.context import (
    Billing,
    CrmAccount,
    Entitlements,
    Identity,
    Source,
    Telemetry,
)
from features.context_store import ContextStore
from features.enrichment import (
    CircuitOpenError,
    ContextKey,
    Enricher,
    build_enricher,
)
from features.errors import ConfigError
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
