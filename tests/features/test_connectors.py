"""HTTP connectors against a real local server: retries, breaker, bad answers.

The server is uvicorn over a small Starlette app on 127.0.0.1 and a port the
OS picks, in a thread, for this module; it counts hits per endpoint so a test
can tell how many attempts a call made. Its endpoints answer, hang, fail with
500, answer 404 or 403, or send a body that is not the section model. Time for
the circuit breaker comes from a fake clock. The local connector reads a
seeded store that counts its reads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from features.config import bundled_config_path
from features.connectors import (
    BadResponseError,
    CircuitBreaker,
    ConnectorStatusError,
    HttpConnector,
    HttpSourceConfig,
    LocalConnector,
    load_connector_config,
)
from features.context import SOURCES, CrmAccount, Source
from features.context_store import ContextStore, seed_context_store
from features.enrichment import (
    BulkConnector,
    CircuitOpenError,
    Connector,
    ContextKey,
    Enricher,
)
from features.errors import ConfigError
from features.schema import Ticket

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

# A hanging endpoint gives up on its own after this, so a client that went
# away never keeps the server from shutting down for long.
HANG_LIMIT_S = 10.0
BOUND_S = 1.0


class SourceApi:
    """The fake source API's state, shared between its thread and the tests."""

    def __init__(self) -> None:
        self.base_url = ""
        self.hits: Counter[str] = Counter()
        self.auth: list[str | None] = []
        self.raw_paths: list[bytes] = []
        self.switch_status = 500
        self.flaky_failures = 2
        self.release = threading.Event()

    def reset(self) -> None:
        self.hits.clear()
        self.auth.clear()
        self.raw_paths.clear()
        self.switch_status = 500

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/ok/{account_id:path}", self._ok),
                Route("/hang/{account_id:path}", self._hang),
                Route("/fail/{account_id:path}", self._status(500)),
                Route("/missing/{account_id:path}", self._status(404)),
                Route("/forbidden/{account_id:path}", self._status(403)),
                Route("/bad-json/{account_id:path}", self._bad_json),
                Route("/wrong-shape/{account_id:path}", self._wrong_shape),
                Route("/flaky/{account_id:path}", self._flaky),
                Route("/switch/{account_id:path}", self._switch),
            ]
        )

    def _count(self, request: Request) -> None:
        self.hits[request.url.path.split("/")[1]] += 1
        self.auth.append(request.headers.get("authorization"))
        self.raw_paths.append(request.scope["raw_path"])

    def _account(self, request: Request) -> JSONResponse:
        account_id = request.path_params["account_id"]
        return JSONResponse({"name": f"Account {account_id}", "tier": "enterprise"})

    async def _ok(self, request: Request) -> Response:
        self._count(request)
        return self._account(request)

    async def _hang(self, request: Request) -> Response:
        self._count(request)
        deadline = time.monotonic() + HANG_LIMIT_S
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self._account(request)

    def _status(self, status_code: int) -> Any:
        async def answer(request: Request) -> Response:
            self._count(request)
            return Response(status_code=status_code)

        return answer

    async def _bad_json(self, request: Request) -> Response:
        self._count(request)
        return Response('{"name": "Acme", "tier": ', media_type="application/json")

    async def _wrong_shape(self, request: Request) -> Response:
        self._count(request)
        return JSONResponse({"tier": ["enterprise"], "surprise": True})

    async def _flaky(self, request: Request) -> Response:
        self._count(request)
        if self.hits["flaky"] <= self.flaky_failures:
            return Response(status_code=503)
        return self._account(request)

    async def _switch(self, request: Request) -> Response:
        self._count(request)
        if self.switch_status != 200:
            return Response(status_code=self.switch_status)
        return self._account(request)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def server() -> Iterator[SourceApi]:
    api = SourceApi()
    config = uvicorn.Config(
        api.app(),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(
        target=uvicorn_server.run, name="source-api-uvicorn", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started and thread.is_alive():
        assert time.monotonic() < deadline, "uvicorn did not start in 10 s"
        time.sleep(0.02)
    assert uvicorn_server.started, "uvicorn did not start"
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    api.base_url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        api.release.set()
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def api(server: SourceApi) -> SourceApi:
    server.reset()
    return server


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(work, timeout=20))


def source_config(api: SourceApi, endpoint: str, **overrides: Any) -> HttpSourceConfig:
    fields: dict[str, Any] = {
        "url_template": f"{api.base_url}/{endpoint}/{{account_id}}",
        "timeout_s": 2.0,
        "retries": 2,
        "backoff_initial_s": 0.001,
        "backoff_max_s": 0.005,
        **overrides,
    }
    return HttpSourceConfig.model_validate(fields)


def key(account_id: str | None = "acct_1", **fields: Any) -> ContextKey:
    return ContextKey(ticket_id="t-1", account_id=account_id, **fields)


async def fetch_once(connector: HttpConnector, lookup: ContextKey) -> Any:
    try:
        return await connector.fetch(lookup)
    finally:
        await connector.aclose()


class CountingStore(ContextStore):
    """The real store, noting each read and the thread it ran on."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads: list[tuple[str, Source, str]] = []

    def get(self, source: Source, key: ContextKey) -> BaseModel | None:
        self.reads.append(("get", source, threading.current_thread().name))
        return super().get(source, key)

    def get_many(
        self, source: Source, keys: Sequence[ContextKey]
    ) -> list[BaseModel | None]:
        self.reads.append(("get_many", source, threading.current_thread().name))
        return super().get_many(source, keys)


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CountingStore]:
    path = tmp_path_factory.mktemp("seeded") / "context.db"
    store = CountingStore(f"sqlite:///{path}")
    seed_context_store(store)
    yield store
    store.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connector_returns_the_section_the_api_answers_with(api: SourceApi) -> None:
    connector = HttpConnector("crm", source_config(api, "ok"))

    section = run(fetch_once(connector, key("acct_1")))

    assert section == CrmAccount(name="Account acct_1", tier="enterprise")
    assert api.hits["ok"] == 1


def test_url_values_are_quoted_into_the_template(api: SourceApi) -> None:
    connector = HttpConnector("crm", source_config(api, "ok"))

    section = run(fetch_once(connector, key("acct/1 x?y")))

    assert section.name == "Account acct/1 x?y"
    assert api.raw_paths == [b"/ok/acct%2F1%20x%3Fy"]


def test_the_secret_comes_from_the_environment_variable_the_config_names(
    api: SourceApi,
) -> None:
    config = source_config(
        api,
        "ok",
        auth_header="Authorization",
        auth_scheme="Bearer",
        auth_env="SOURCE_API_TOKEN",
    )
    connector = HttpConnector("crm", config, env={"SOURCE_API_TOKEN": "s3cret"})

    run(fetch_once(connector, key()))

    assert api.auth == ["Bearer s3cret"]


def test_an_unset_secret_variable_fails_when_the_connector_is_made() -> None:
    config = HttpSourceConfig(
        url_template="https://crm.example/{account_id}",
        auth_header="Authorization",
        auth_env="SOURCE_API_TOKEN",
    )

    with pytest.raises(ConfigError, match="SOURCE_API_TOKEN"):
        HttpConnector("crm", config, env={})


def test_404_means_not_found_and_is_not_retried(api: SourceApi) -> None:
    connector = HttpConnector("crm", source_config(api, "missing"))

    assert run(fetch_once(connector, key())) is None
    assert api.hits["missing"] == 1
    assert connector.breaker.state == "closed"


def test_5xx_is_retried_then_raised(api: SourceApi) -> None:
    connector = HttpConnector("crm", source_config(api, "fail", retries=2))

    with pytest.raises(httpx.HTTPStatusError):
        run(fetch_once(connector, key()))

    assert api.hits["fail"] == 3


def test_a_source_that_recovers_within_its_retries_answers(api: SourceApi) -> None:
    api.flaky_failures = 2
    connector = HttpConnector("crm", source_config(api, "flaky", retries=2))

    section = run(fetch_once(connector, key()))

    assert section.tier == "enterprise"
    assert api.hits["flaky"] == 3


def test_4xx_other_than_404_is_an_error_and_is_not_retried(api: SourceApi) -> None:
    connector = HttpConnector("crm", source_config(api, "forbidden"))

    with pytest.raises(ConnectorStatusError, match="403"):
        run(fetch_once(connector, key()))

    assert api.hits["forbidden"] == 1


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("bad-json", id="not-json"),
        pytest.param("wrong-shape", id="not-the-section-model"),
    ],
)
def test_a_body_that_is_not_the_section_model_is_a_bad_response(
    api: SourceApi, endpoint: str
) -> None:
    connector = HttpConnector("crm", source_config(api, endpoint))

    with pytest.raises(BadResponseError, match="CrmAccount"):
        run(fetch_once(connector, key()))

    assert api.hits[endpoint] == 1


def test_an_attempt_that_outlasts_its_timeout_is_retried(api: SourceApi) -> None:
    config = source_config(api, "hang", timeout_s=0.05, retries=1)
    connector = HttpConnector("crm", config)

    with pytest.raises(httpx.TimeoutException):
        run(fetch_once(connector, key()))

    assert api.hits["hang"] == 2


def test_connect_errors_are_retried_then_raised() -> None:
    url = f"http://127.0.0.1:{closed_port()}/crm/{{account_id}}"
    config = HttpSourceConfig(
        url_template=url, retries=2, backoff_initial_s=0.001, backoff_max_s=0.005
    )
    connector = HttpConnector("crm", config)

    started = time.perf_counter()
    with pytest.raises(httpx.ConnectError):
        run(fetch_once(connector, key()))

    assert time.perf_counter() - started < BOUND_S


def test_breaker_opens_after_n_failures_fails_fast_then_half_opens_after_reset(
    api: SourceApi,
) -> None:
    clock = FakeClock()
    breaker = {"failure_threshold": 2, "reset_after_s": 30}
    config = source_config(api, "switch", retries=0, breaker=breaker)
    connector = HttpConnector("crm", config, clock=clock)

    async def scenario() -> list[Any]:
        seen: list[Any] = []
        for _ in range(3):
            try:
                await connector.fetch(key())
            except Exception as err:
                seen.append((type(err), api.hits["switch"], connector.breaker.state))
        clock.advance(29)
        seen.append(connector.breaker.state)
        clock.advance(1)
        seen.append(connector.breaker.state)
        api.switch_status = 200
        seen.append(await connector.fetch(key()))
        seen.append((api.hits["switch"], connector.breaker.state))
        await connector.aclose()
        return seen

    seen = run(scenario())

    assert seen[:3] == [
        (httpx.HTTPStatusError, 1, "closed"),
        (httpx.HTTPStatusError, 2, "open"),
        (CircuitOpenError, 2, "open"),  # failed fast: the server saw nothing
    ]
    assert seen[3:5] == ["open", "half_open"]
    assert seen[5] == CrmAccount(name="Account acct_1", tier="enterprise")
    assert seen[6] == (3, "closed")


def test_a_failed_half_open_trial_opens_the_breaker_again(api: SourceApi) -> None:
    clock = FakeClock()
    breaker = {"failure_threshold": 1, "reset_after_s": 10}
    connector = HttpConnector(
        "crm", source_config(api, "fail", retries=0, breaker=breaker), clock=clock
    )

    async def scenario() -> None:
        with pytest.raises(httpx.HTTPStatusError):
            await connector.fetch(key())
        clock.advance(10)
        with pytest.raises(httpx.HTTPStatusError):
            await connector.fetch(key())  # the trial
        with pytest.raises(CircuitOpenError):
            await connector.fetch(key())
        await connector.aclose()

    run(scenario())

    assert api.hits["fail"] == 2
    assert connector.breaker.state == "open"


def test_a_half_open_breaker_lets_one_trial_call_through_at_a_time() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("crm", failure_threshold=1, reset_after_s=5, clock=clock)
    breaker.record_failure()
    clock.advance(5)

    breaker.before_call()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()

    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = CircuitBreaker("crm", failure_threshold=3, clock=FakeClock())

    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_each_ticket_gets_its_context_in_budget_when_sources_hang_fail_or_trip(
    api: SourceApi, tmp_path: Path
) -> None:
    store = ContextStore(f"sqlite:///{tmp_path / 'context.db'}")
    seed_context_store(store)
    store.get("crm", key("acct_900417"))  # open the file before timing anything
    trips_at_once = {"failure_threshold": 1, "reset_after_s": 30}
    region_url = f"{api.base_url}/fail/{{region}}"
    connectors: list[Connector] = [
        LocalConnector(store, "crm"),
        LocalConnector(store, "billing"),
        HttpConnector("entitlements", source_config(api, "hang", retries=0)),
        HttpConnector("identity", source_config(api, "fail", retries=1)),
        HttpConnector(
            "telemetry",
            source_config(
                api, "fail", url_template=region_url, retries=0, breaker=trips_at_once
            ),
        ),
    ]
    enricher = Enricher(connectors, budget_s=0.3)
    tickets = [
        Ticket(
            id=f"t-{n}",
            channel="email",
            subject="Workspace suspended",
            account_id="acct_900417",
            product="Workspace",
            region="eu-central-1",
        )
        for n in range(2)
    ]

    async def one_after_another() -> list[tuple[Any, float]]:
        timed = []
        for ticket in tickets:
            started = time.perf_counter()
            context = await enricher.enrich(ticket)
            timed.append((context, time.perf_counter() - started))
            await asyncio.sleep(0.05)
        await enricher.aclose()
        return timed

    (first, first_s), (second, second_s) = run(one_after_another())

    assert first_s < BOUND_S and second_s < BOUND_S
    assert {s: v.outcome for s, v in first.sources.items()} == {
        "crm": "ok",
        "billing": "ok",
        "entitlements": "timeout",
        "identity": "error",
        "telemetry": "error",
    }
    assert first.sources["identity"].detail == "HTTPStatusError"
    assert second.sources["telemetry"].outcome == "circuit_open"
    assert second.sources["identity"].outcome == "error"
    for context in (first, second):
        assert context.crm.name == "Meridian Logistics"
        assert context.billing.payment_status == "cleared"
        assert set(context.missing) == {"entitlements", "identity", "telemetry"}
    assert api.hits["fail"] == 2 * 2 + 1  # identity twice with a retry; telemetry once


def test_a_source_that_keeps_outlasting_the_budget_opens_its_breaker(
    api: SourceApi,
) -> None:
    trips = {"failure_threshold": 2, "reset_after_s": 30}
    connector = HttpConnector(
        "crm", source_config(api, "hang", retries=0, breaker=trips)
    )
    enricher = Enricher([connector], budget_s=0.1)
    ticket = Ticket(id="t-1", channel="chat", subject="help", account_id="acct_1")

    async def three_tickets() -> list[str]:
        seen: list[str] = []
        for _ in range(3):
            context = await enricher.enrich(ticket)
            seen.append(context.sources["crm"].outcome)
            # Let the cut-off call unwind and be counted by the breaker.
            await asyncio.sleep(0.05)
        await enricher.aclose()
        return seen

    assert run(three_tickets()) == ["timeout", "timeout", "circuit_open"]
    assert api.hits["hang"] == 2


def test_the_bundled_connectors_file_configures_every_source() -> None:
    config = load_connector_config(bundled_config_path("connectors.yaml"))

    assert tuple(config.sources) == SOURCES
    for source_config_ in config.sources.values():
        assert source_config_.timeout_s == 0.1
        assert source_config_.retries == 2
        assert source_config_.breaker.failure_threshold == 5
        assert source_config_.breaker.reset_after_s == 30
        assert source_config_.auth_env and source_config_.auth_header


BAD_FILES = {
    "unknown-placeholder": (
        "sources:\n  crm:\n    url_template: https://crm.example/{customer}\n",
        "customer",
    ),
    "not-http": (
        "sources:\n  crm:\n    url_template: ftp://crm.example/{account_id}\n",
        "http",
    ),
    "header-without-env": (
        "sources:\n  crm:\n    url_template: https://crm.example/{account_id}\n"
        "    auth_header: Authorization\n",
        "auth_env",
    ),
    "negative-timeout": (
        "sources:\n  crm:\n    url_template: https://crm.example/{account_id}\n"
        "    timeout_s: -1\n",
        "sources.crm.timeout_s",
    ),
    "unknown-source": (
        "sources:\n  weather:\n    url_template: https://w.example/{region}\n",
        "weather",
    ),
    "secret-in-file": (
        "sources:\n  crm:\n    url_template: https://crm.example/{account_id}\n"
        "    token: s3cret\n",
        "token",
    ),
    "no-sources": ("sources: {}\n", "sources"),
    "not-yaml": ("sources: [unclosed\n", "not valid YAML"),
}


@pytest.mark.parametrize("name", list(BAD_FILES), ids=list(BAD_FILES))
def test_a_bad_connectors_file_names_the_file_and_the_problem(
    tmp_path: Path, name: str
) -> None:
    text, problem = BAD_FILES[name]
    path = tmp_path / "connectors.yaml"
    path.write_text(text)

    with pytest.raises(ConfigError) as raised:
        load_connector_config(path)

    assert str(path) in str(raised.value)
    assert problem in str(raised.value)


def test_a_missing_connectors_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_connector_config(tmp_path / "absent.yaml")


def test_sources_without_a_connector_stay_out_of_the_context(api: SourceApi) -> None:
    connector = HttpConnector("crm", source_config(api, "ok"))
    enricher = Enricher([connector])
    ticket = Ticket(id="t-1", channel="api", subject="hello", account_id="acct_1")

    async def enrich_and_close() -> Any:
        try:
            return await enricher.enrich(ticket)
        finally:
            await enricher.aclose()

    context = run(enrich_and_close())

    assert list(context.sources) == ["crm"]
    assert context.crm.name == "Account acct_1"


def test_a_local_connector_answers_a_group_with_one_read_in_a_worker_thread(
    seeded_store: CountingStore,
) -> None:
    connector = LocalConnector(seeded_store, "crm")
    keys = [key("acct_900417"), key("acct_not_in_store"), key(None), key("acct_412908")]

    async def both_ways() -> tuple[list[Any], list[Any]]:
        return await connector.fetch_many(keys), [
            await connector.fetch(k) for k in keys
        ]

    seeded_store.reads.clear()
    in_bulk, one_by_one = run(both_ways())

    assert in_bulk == one_by_one
    assert [s.name if s else None for s in in_bulk] == [
        "Meridian Logistics",
        None,
        None,
        "Harbor Health",
    ]
    kind, source, thread_name = seeded_store.reads[0]
    assert (kind, source) == ("get_many", "crm")
    assert thread_name != threading.current_thread().name
    assert [r[0] for r in seeded_store.reads[1:]] == ["get"] * len(keys)


def test_local_connectors_are_bulk_connectors_and_http_connectors_are_not(
    api: SourceApi, seeded_store: CountingStore
) -> None:
    http = HttpConnector("crm", source_config(api, "ok"))
    run(http.aclose())

    assert isinstance(LocalConnector(seeded_store, "crm"), BulkConnector)
    assert not isinstance(http, BulkConnector)


def test_a_group_reads_local_sources_in_bulk_and_calls_http_per_ticket(
    api: SourceApi, seeded_store: CountingStore
) -> None:
    local_sources: list[Source] = ["billing", "entitlements", "identity", "telemetry"]
    connectors: list[Connector] = [
        HttpConnector("crm", source_config(api, "ok")),
        *(LocalConnector(seeded_store, source) for source in local_sources),
    ]
    enricher = Enricher(connectors, budget_s=2.0)
    tickets = [
        Ticket(
            id=f"t-{n}",
            channel="email",
            subject="Workspace suspended",
            account_id=account_id,
            product="Workspace",
            region="eu-central-1",
        )
        for n, account_id in enumerate(["acct_900417", "acct_412908", None])
    ]

    async def enrich_and_close() -> list[Any]:
        try:
            return await enricher.enrich_many(tickets)
        finally:
            await enricher.aclose()

    seeded_store.reads.clear()
    meridian, harbor, anonymous = run(enrich_and_close())

    assert api.hits["ok"] == 2
    assert sorted(source for _, source, _ in seeded_store.reads) == sorted(
        local_sources
    )
    assert {kind for kind, _, _ in seeded_store.reads} == {"get_many"}
    assert meridian.crm.name == "Account acct_900417"
    assert meridian.billing.payment_status == "cleared"
    assert harbor.entitlements.has_seat_mismatch
    assert anonymous.sources["crm"].outcome == "skipped"
    assert anonymous.sources["telemetry"].outcome == "ok"
