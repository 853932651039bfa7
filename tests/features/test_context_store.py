"""The SQLite context store and its seed: scenario facts, sample accounts.

`get_many` is checked against `get` key by key; queries are counted with a
SQLAlchemy event on the store's engine.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from features import context_store
from features.context import (
    SOURCES,
    Billing,
    CrmAccount,
    Entitlements,
    Identity,
    IdentityEvent,
    Incident,
    Order,
    Source,
    Telemetry,
)
from features.context_seed import SEED_CONTEXTS, sample_contexts, scenario_contexts
from features.context_store import ContextStore, seed_context_store
from features.enrichment import ContextKey
from features.errors import ConfigError, DataError
from features.sample_data import generate_tickets, sample_accounts

pytestmark = pytest.mark.timeout(60)

SECTIONS: dict[Source, BaseModel] = {
    "crm": CrmAccount(name="Acme", tier="enterprise", region="us-east-1"),
    "billing": Billing(invoice_id="INV-1", invoice_status="paid"),
    "entitlements": Entitlements(
        plan="business",
        status="active",
        seats_entitled=10,
        latest_order=Order(order_id="SO-1", status="activated", seats=10),
    ),
    "identity": Identity(
        last_sync_status="ok",
        recent_events=[
            IdentityEvent(at=datetime(2026, 1, 2, tzinfo=UTC), kind="sync", status="ok")
        ],
    ),
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ContextStore]:
    opened = ContextStore(f"sqlite:///{tmp_path / 'state' / 'context.db'}")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContextStore]:
    path = tmp_path_factory.mktemp("seeded") / "context.db"
    opened = ContextStore(f"sqlite:///{path}")
    seed_context_store(opened)
    yield opened
    opened.close()


def key(account_id: str | None, **fields: Any) -> ContextKey:
    return ContextKey(ticket_id="t-1", account_id=account_id, **fields)


def incident(incident_id: str, product: str, region: str) -> Incident:
    return Incident(
        incident_id=incident_id, product=product, region=region, severity="major"
    )


@pytest.fixture
def seeded_queries(seeded: ContextStore) -> Iterator[list[str]]:
    """Every SELECT the seeded store runs during the test, as SQL text."""
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = seeded._engine
    sa.event.listen(engine, "before_cursor_execute", note)
    yield statements
    sa.event.remove(engine, "before_cursor_execute", note)


def test_new_store_is_empty_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "context.db"

    store = ContextStore(f"sqlite:///{path}")

    assert path.parent.is_dir()
    assert store.is_empty()
    store.close()


@pytest.mark.parametrize("source", list(SECTIONS), ids=list(SECTIONS))
def test_each_account_section_reads_back_as_written(
    store: ContextStore, source: Source
) -> None:
    store.put(source, SECTIONS[source], account_id="acct_1")

    assert store.get(source, key("acct_1")) == SECTIONS[source]
    assert not store.is_empty()


def test_an_account_the_store_does_not_know_is_not_found(store: ContextStore) -> None:
    store.put("crm", SECTIONS["crm"], account_id="acct_1")

    assert store.get("crm", key("acct_2")) is None
    assert store.get("billing", key("acct_1")) is None


def test_a_key_without_account_id_finds_no_account_record(store: ContextStore) -> None:
    store.put("crm", SECTIONS["crm"], account_id="acct_1")

    assert store.get("crm", key(None)) is None


def test_writing_an_account_again_replaces_its_record(store: ContextStore) -> None:
    store.put("crm", SECTIONS["crm"], account_id="acct_1")
    renamed = CrmAccount(name="Acme Renamed", tier="strategic", is_strategic=True)

    store.put("crm", renamed, account_id="acct_1")

    assert store.get("crm", key("acct_1")) == renamed


def test_records_survive_reopening_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'context.db'}"
    first = ContextStore(url)
    first.put("billing", SECTIONS["billing"], account_id="acct_1")
    first.close()

    second = ContextStore(url)

    assert second.get("billing", key("acct_1")) == SECTIONS["billing"]
    second.close()


def test_telemetry_matches_product_and_region_and_the_account_scope(
    store: ContextStore,
) -> None:
    workspace_eu = Telemetry(
        open_incidents=[incident("INC-1", "Workspace", "eu-west-1")]
    )
    workspace_us = Telemetry(
        open_incidents=[incident("INC-2", "Workspace", "us-east-1")]
    )
    tenant_only = Telemetry(
        open_incidents=[incident("INC-3", "Workspace", "eu-west-1")]
    )
    store.put("telemetry", workspace_eu, product="Workspace", region="eu-west-1")
    store.put("telemetry", workspace_us, product="Workspace", region="us-east-1")
    store.put(
        "telemetry",
        tenant_only,
        account_id="a1",
        product="Workspace",
        region="eu-west-1",
    )

    def found(account_id: str | None, product: str, region: str) -> list[str]:
        lookup = key(account_id, product=product, region=region)
        telemetry = store.get("telemetry", lookup)
        assert isinstance(telemetry, Telemetry)
        return [i.incident_id for i in telemetry.open_incidents]

    assert found("a1", "Workspace", "eu-west-1") == ["INC-1", "INC-3"]
    assert found("a2", "Workspace", "eu-west-1") == ["INC-1"]
    assert found(None, "Workspace", "us-east-1") == ["INC-2"]
    assert found("a1", "Insights", "eu-west-1") == []


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({"region": "eu-west-1"}, id="no-product"),
        pytest.param({"product": "Workspace"}, id="no-region"),
    ],
)
def test_telemetry_without_product_and_region_matches_no_incident(
    store: ContextStore, where: dict[str, str]
) -> None:
    regional = Telemetry(open_incidents=[incident("INC-1", "Workspace", "eu-west-1")])
    store.put("telemetry", regional, product="Workspace", region="eu-west-1")

    assert store.get("telemetry", key("a1", **where)) == Telemetry()


def test_telemetry_without_incidents_is_an_answer_not_a_missing_record(
    store: ContextStore,
) -> None:
    lookup = key("a1", product="Workspace", region="eu-west-1")

    assert store.get("telemetry", lookup) == Telemetry()


def test_writing_a_regions_telemetry_again_replaces_only_that_regions_incidents(
    store: ContextStore,
) -> None:
    flows_eu = Telemetry(open_incidents=[incident("INC-1", "Flows", "eu-west-1")])
    flows_us = Telemetry(open_incidents=[incident("INC-2", "Flows", "us-east-1")])
    store.put("telemetry", flows_eu, product="Flows", region="eu-west-1")
    store.put("telemetry", flows_us, product="Flows", region="us-east-1")

    store.put("telemetry", Telemetry(), product="Flows", region="eu-west-1")

    eu = store.get("telemetry", key(None, product="Flows", region="eu-west-1"))
    us = store.get("telemetry", key(None, product="Flows", region="us-east-1"))
    assert eu == Telemetry()
    assert us == flows_us


def test_an_incident_put_without_its_place_is_stored_where_it_was_put(
    store: ContextStore,
) -> None:
    # An incident_opened event names the place on the event, not the incident.
    bare = Telemetry(open_incidents=[Incident(incident_id="INC-9")])

    store.put("telemetry", bare, product="Sync", region="ap-south-1")

    found = store.get("telemetry", key("a1", product="Sync", region="ap-south-1"))
    assert isinstance(found, Telemetry)
    assert [i.incident_id for i in found.open_incidents] == ["INC-9"]


@pytest.mark.parametrize(
    ("source", "section", "account_id"),
    [
        pytest.param("crm", SECTIONS["crm"], None, id="account-source-without-id"),
        pytest.param("billing", SECTIONS["crm"], "a1", id="wrong-section-model"),
        pytest.param("telemetry", Telemetry(), "a1", id="telemetry-without-place"),
    ],
)
def test_a_record_that_cannot_be_keyed_or_typed_is_refused(
    store: ContextStore, source: Source, section: BaseModel, account_id: str | None
) -> None:
    with pytest.raises(ValueError):
        store.put(source, section, account_id=account_id)

    assert store.is_empty()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql+psycopg://user@db/ctx", id="postgresql"),
        pytest.param("not a url", id="not-a-url"),
    ],
)
def test_a_store_url_that_is_not_sqlite_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"context store|SQLite"):
        ContextStore(url)


def test_a_stored_record_that_no_longer_validates_is_a_data_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "context.db"
    store = ContextStore(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO context_crm (account_id, data) VALUES (?, ?)",
            ("acct_1", '{"tier": ["not", "a", "string"]}'),
        )

    with pytest.raises(DataError, match="context_crm"):
        store.get("crm", key("acct_1"))
    store.close()


def _check_meridian(facts: dict[Source, Any]) -> None:
    crm, billing = facts["crm"], facts["billing"]
    entitlements, identity = facts["entitlements"], facts["identity"]
    assert (crm.name, crm.tier, crm.is_strategic) == (
        "Meridian Logistics",
        "strategic",
        True,
    )
    assert (crm.region, crm.account_team) == ("eu-central-1", "EMEA strategic")
    assert (billing.invoice_id, billing.invoice_status) == ("INV-2026-0412", "paid")
    assert (billing.payment_status, billing.credit_hold) == ("cleared", False)
    assert (entitlements.plan, entitlements.status) == ("enterprise", "suspended")
    assert entitlements.suspended_reason == "non-payment"
    assert (entitlements.seats_entitled, entitlements.seats_used) == (2400, 2400)
    assert entitlements.latest_order == Order(
        order_id="SO-700001", status="activated", seats=2400
    )
    assert identity.last_sync_status == "error"
    assert any(
        event.kind == "sync"
        and event.status == "error"
        and event.detail == "billing-to-entitlement sync failed"
        for event in identity.recent_events
    )
    assert facts["telemetry"].open_incidents == []


def _check_harbor(facts: dict[Source, Any]) -> None:
    crm, entitlements, identity = facts["crm"], facts["entitlements"], facts["identity"]
    assert (crm.name, crm.tier, crm.region) == (
        "Harbor Health",
        "enterprise",
        "us-east-1",
    )
    assert (facts["billing"].invoice_status, facts["billing"].payment_status) == (
        "paid",
        "cleared",
    )
    assert entitlements.status == "active"
    assert (entitlements.seats_entitled, entitlements.seats_used) == (200, 200)
    assert entitlements.latest_order == Order(
        order_id="SO-771204", status="activated", seats=350
    )
    assert entitlements.has_seat_mismatch
    assert identity.last_sync_status == "ok"
    assert identity.provisioning_errors >= 1
    assert {e.detail for e in identity.recent_events if e.status == "error"} == {
        "seat limit reached"
    }
    assert facts["telemetry"].open_incidents == []


def _check_lumen(facts: dict[Source, Any]) -> None:
    crm, entitlements = facts["crm"], facts["entitlements"]
    assert (crm.name, crm.tier, crm.region) == (
        "Lumen Freight",
        "enterprise",
        "us-east-1",
    )
    assert facts["billing"].payment_status == "cleared"
    assert entitlements.latest_order == Order(
        order_id="SO-500101", status="booked", seats=300
    )
    assert entitlements.seats_entitled == 200
    assert not entitlements.has_seat_mismatch
    assert facts["identity"].last_sync_status == "ok"


def _check_ostara(facts: dict[Source, Any]) -> None:
    crm, entitlements, identity = facts["crm"], facts["entitlements"], facts["identity"]
    assert (crm.name, crm.tier, crm.region) == (
        "Ostara Bank",
        "enterprise",
        "eu-west-1",
    )
    assert facts["billing"].invoice_status == "paid"
    assert entitlements.latest_order == Order(
        order_id="SO-500102", status="activated", seats=300
    )
    assert entitlements.seats_entitled == 300
    assert not entitlements.has_seat_mismatch
    assert identity.last_sync_status == "error"
    assert "SCIM token expired" in {e.detail for e in identity.recent_events}


def _check_pinecrest(facts: dict[Source, Any]) -> None:
    crm, billing, entitlements = facts["crm"], facts["billing"], facts["entitlements"]
    assert (crm.name, crm.tier, crm.region) == (
        "Pinecrest Retail",
        "business",
        "us-west-2",
    )
    assert billing == Billing(
        invoice_id="INV-2026-0977",
        invoice_status="overdue",
        payment_status="none",
        credit_hold=True,
        days_overdue=45,
    )
    assert entitlements.latest_order == Order(
        order_id="SO-500103", status="pending", seats=120
    )
    assert entitlements.seats_entitled == 80
    assert facts["identity"].last_sync_status == "ok"


def _check_aurora(facts: dict[Source, Any]) -> None:
    crm = facts["crm"]
    assert (crm.name, crm.tier, crm.is_strategic) == (
        "Aurora Energy",
        "strategic",
        True,
    )
    assert (crm.region, crm.account_team) == ("eu-west-1", "EMEA strategic")
    assert facts["billing"].payment_status == "cleared"
    assert facts["entitlements"].status == "active"
    assert facts["identity"].last_sync_status == "ok"
    [only] = facts["telemetry"].open_incidents
    assert (only.incident_id, only.product, only.region) == (
        "INC-4411",
        "Workspace",
        "eu-west-1",
    )
    assert (only.severity, only.environment) == ("critical", "production")
    assert facts["telemetry"].has_production_impact


SCENARIO_CHECKS: dict[str, tuple[str, str, Callable[[dict[Source, Any]], None]]] = {
    "acct_900417": ("Workspace", "eu-central-1", _check_meridian),
    "acct_412908": ("Workspace", "us-east-1", _check_harbor),
    "acct_500101": ("Workspace", "us-east-1", _check_lumen),
    "acct_500102": ("Workspace", "eu-west-1", _check_ostara),
    "acct_500103": ("Workspace", "us-west-2", _check_pinecrest),
    "acct_500104": ("Workspace", "eu-west-1", _check_aurora),
}


@pytest.mark.parametrize("account_id", list(SCENARIO_CHECKS), ids=list(SCENARIO_CHECKS))
def test_seeded_store_resolves_each_scenario_account_to_its_facts(
    seeded: ContextStore, account_id: str
) -> None:
    product, region, check = SCENARIO_CHECKS[account_id]
    lookup = key(account_id, product=product, region=region)
    sources: list[Source] = ["crm", "billing", "entitlements", "identity", "telemetry"]

    facts = {source: seeded.get(source, lookup) for source in sources}

    check(facts)


def test_a_seeded_incident_reaches_every_account_on_its_product_and_region(
    seeded: ContextStore,
) -> None:
    # Incidents are regional: Ostara Bank shares Aurora Energy's region.
    same_place = key("acct_500102", product="Workspace", region="eu-west-1")
    other_product = key("acct_500102", product="Insights", region="eu-west-1")
    other_region = key("acct_900417", product="Workspace", region="eu-central-1")

    seen = seeded.get("telemetry", same_place)

    assert isinstance(seen, Telemetry)
    assert [i.incident_id for i in seen.open_incidents] == ["INC-4411"]
    assert seeded.get("telemetry", other_product) == Telemetry()
    assert seeded.get("telemetry", other_region) == Telemetry()


def test_seeded_store_has_a_record_for_every_sample_ticket_account(
    seeded: ContextStore,
) -> None:
    account_ids = {row["account_id"] for row in generate_tickets() if row["account_id"]}

    missing = [a for a in account_ids if seeded.get("crm", key(a)) is None]

    assert account_ids and not missing


def test_sample_accounts_are_the_accounts_the_sample_tickets_name() -> None:
    named = {row["account_id"] for row in generate_tickets(600) if row["account_id"]}

    listed = {account.id for account in sample_accounts(600)}

    assert named <= listed


def test_seed_is_the_same_on_every_build() -> None:
    def dumped(contexts: dict[str, dict[Source, BaseModel]]) -> dict[str, Any]:
        return {
            account: {s: m.model_dump(mode="json") for s, m in sections.items()}
            for account, sections in contexts.items()
        }

    assert dumped(sample_contexts()) == dumped(sample_contexts())
    assert dumped(scenario_contexts()) == dumped(scenario_contexts())


def test_scenario_accounts_keep_their_hand_written_facts_in_the_seed() -> None:
    for account_id, sections in scenario_contexts().items():
        assert SEED_CONTEXTS[account_id] == sections


def test_sample_accounts_are_mostly_ordinary_with_a_few_in_other_states() -> None:
    contexts = sample_contexts()
    billing = Counter(c["billing"].invoice_status for c in contexts.values())
    entitlements = Counter(c["entitlements"].status for c in contexts.values())
    sync = Counter(c["identity"].last_sync_status for c in contexts.values())
    total = len(contexts)

    assert entitlements["active"] / total > 0.85
    assert billing["paid"] / total > 0.6
    assert 0 < billing["overdue"] / total < 0.15
    assert 0 < entitlements["suspended"] / total < 0.05
    assert 0 < sync["error"] / total < 0.1


def test_seeding_twice_leaves_the_same_store(store: ContextStore) -> None:
    first = seed_context_store(store)
    before = store.get("crm", key("acct_900417"))

    second = seed_context_store(store)

    assert first == second == len(SEED_CONTEXTS)
    assert store.get("crm", key("acct_900417")) == before


def mixed_keys() -> list[ContextKey]:
    """Scenario and sample accounts, unknown ones, none, repeats, no place."""
    sample = [
        ContextKey(
            ticket_id=f"s-{n}",
            account_id=row["account_id"],
            product=row["product"],
            region=row["region"],
        )
        for n, row in enumerate(generate_tickets(60, seed=7))
    ]
    scenario = [
        key(account_id, product=product, region=region)
        for account_id, (product, region, _) in SCENARIO_CHECKS.items()
    ]
    return [
        *sample,
        *scenario,
        *scenario[:2],
        key("acct_not_in_store", product="Workspace", region="eu-west-1"),
        key(None, product="Workspace", region="eu-west-1"),
        key("acct_500104", product="Workspace"),
        key(None),
    ]


@pytest.mark.parametrize("source", SOURCES, ids=SOURCES)
def test_get_many_answers_each_key_as_get_does_on_the_seeded_store(
    seeded: ContextStore, source: Source
) -> None:
    keys = mixed_keys()

    answers = seeded.get_many(source, keys)

    assert answers == [seeded.get(source, k) for k in keys]
    if source == "telemetry":
        assert any(isinstance(a, Telemetry) and a.open_incidents for a in answers)
    else:
        assert None in answers and any(a is not None for a in answers)


def test_get_many_reads_an_account_source_in_one_query_per_chunk(
    seeded: ContextStore, seeded_queries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = mixed_keys()
    distinct = {k.account_id for k in keys if k.account_id}
    queries = seeded_queries

    seeded.get_many("crm", keys)
    in_one_chunk = len(queries)
    monkeypatch.setattr(context_store, "_IN_CHUNK_SIZE", 10)
    chunked = seeded.get_many("crm", keys)

    assert in_one_chunk == 1
    assert len(queries) - in_one_chunk == math.ceil(len(distinct) / 10)
    assert chunked == [seeded.get("crm", k) for k in keys]


def test_get_many_reads_telemetry_in_one_query_per_product_and_region(
    seeded: ContextStore, seeded_queries: list[str]
) -> None:
    keys = mixed_keys()
    places = {(k.product, k.region) for k in keys if k.product and k.region}

    seeded.get_many("telemetry", keys)

    assert len(seeded_queries) == len(places) < len(keys)


def test_get_many_scopes_tenant_incidents_as_get_does(store: ContextStore) -> None:
    regional = Telemetry(open_incidents=[incident("INC-1", "Workspace", "eu-west-1")])
    tenant_only = Telemetry(
        open_incidents=[incident("INC-0", "Workspace", "eu-west-1")]
    )
    store.put("telemetry", regional, product="Workspace", region="eu-west-1")
    store.put(
        "telemetry",
        tenant_only,
        account_id="a1",
        product="Workspace",
        region="eu-west-1",
    )
    keys = [
        key(account_id, product="Workspace", region=region)
        for account_id in ("a1", "a2", None, "")
        for region in ("eu-west-1", "us-east-1")
    ]

    answers = store.get_many("telemetry", keys)

    assert answers == [store.get("telemetry", k) for k in keys]
    found = [
        [i.incident_id for i in a.open_incidents]
        for a in answers
        if isinstance(a, Telemetry)
    ]
    assert found == [
        ["INC-0", "INC-1"],
        [],
        ["INC-1"],
        [],
        ["INC-1"],
        [],
        ["INC-1"],
        [],
    ]


def test_get_many_of_no_keys_reads_nothing(
    seeded: ContextStore, seeded_queries: list[str]
) -> None:
    assert seeded.get_many("crm", []) == []
    assert seeded_queries == []


def test_get_many_over_a_record_that_no_longer_validates_is_a_data_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "context.db"
    store = ContextStore(f"sqlite:///{path}")
    store.put("crm", SECTIONS["crm"], account_id="acct_2")
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO context_crm (account_id, data) VALUES (?, ?)",
            ("acct_1", '{"tier": ["not", "a", "string"]}'),
        )

    with pytest.raises(DataError, match="context_crm"):
        store.get_many("crm", [key("acct_2"), key("acct_1")])
    store.close()
