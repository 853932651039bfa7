"""Connectors for the `Enricher`: the local context store, or each source's API.

`LocalConnector` reads the SQLite context store (`features.context_store`),
the embedded default; it is also a `BulkConnector`, answering a group of
tickets with one read. `HttpConnector` calls one source's HTTP API as
`configs/connectors.yaml` describes it: a URL template filled from the
ticket's ids, an auth header whose secret comes from an environment variable
(never from the file), a per-attempt timeout, retries with exponential backoff
on connection errors, timeouts and 5xx answers, and a `CircuitBreaker` that
stops calling a source that keeps failing. A 404 means the source has no
record (None); any other 4xx, or a body that does not validate into the
source's section model, is an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import string
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from features.config import load_yaml_model
from features.context import Source
from features.context_store import ContextStore
from features.enrichment import SECTION_MODELS, CircuitOpenError, ContextKey
from features.errors import ConfigError, SwitchboardError

log = logging.getLogger(__name__)

URL_PLACEHOLDERS = frozenset({"account_id", "product", "region", "ticket_id"})

BreakerState = Literal["closed", "open", "half_open"]


class ConnectorError(SwitchboardError):
    """A context source answered, but not with something usable."""


class ConnectorStatusError(ConnectorError):
    """The source answered with an HTTP status other than 2xx or 404."""

    def __init__(self, source: str, status_code: int) -> None:
        self.source = source
        self.status_code = status_code
        super().__init__(
            f"{source}: the service answered HTTP {status_code}; check the "
            "connector's url_template and the secret its auth_env names"
        )


class BadResponseError(ConnectorError):
    """The source's body is not JSON or does not fit the section model."""


class BreakerConfig(BaseModel):
    """When a source's circuit breaker opens and when it tries again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Consecutive failed calls (after retries) that open it.",
    )
    reset_after_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds it stays open before one trial call may go through.",
    )


class HttpSourceConfig(BaseModel):
    """How to call one context source's HTTP API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url_template: str = Field(
        description=(
            "http(s) URL with {account_id}, {product}, {region} or {ticket_id} "
            "placeholders; values are URL-quoted, absent ones are empty."
        )
    )
    auth_header: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header carrying the credential, e.g. Authorization.",
    )
    auth_scheme: str = Field(
        default="",
        max_length=32,
        description="Written before the secret in the header, e.g. Bearer.",
    )
    auth_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the secret; secrets never go here.",
    )
    timeout_s: float = Field(
        default=0.1,
        gt=0,
        le=30,
        description="Per attempt; keep it under the enrichment budget.",
    )
    retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Attempts after the first, on connect errors, timeouts, 5xx.",
    )
    backoff_initial_s: float = Field(
        default=0.01,
        gt=0,
        le=10,
        description="Wait before the first retry; doubles for each one after.",
    )
    backoff_max_s: float = Field(
        default=0.05,
        gt=0,
        le=60,
        description="Longest wait between attempts.",
    )
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)

    @field_validator("url_template")
    @classmethod
    def _check_url_template(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        try:
            fields = [part[1] for part in string.Formatter().parse(value)]
        except ValueError as err:
            raise ValueError(f"not a valid template: {err}") from err
        unknown = sorted({f for f in fields if f is not None} - URL_PLACEHOLDERS)
        if unknown:
            allowed = ", ".join(sorted(URL_PLACEHOLDERS))
            raise ValueError(
                f"unknown placeholder(s) {', '.join(unknown) or '{}'}; use {allowed}"
            )
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> HttpSourceConfig:
        if (self.auth_header is None) != (self.auth_env is None):
            raise ValueError("set auth_header and auth_env together, or neither")
        return self


class ConnectorConfig(BaseModel):
    """Validated content of `connectors.yaml`: one HTTP connector per source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: dict[Source, HttpSourceConfig] = Field(min_length=1)


def load_connector_config(path: Path | str) -> ConnectorConfig:
    """Load and validate a connectors file.

    Raises:
        ConfigError: naming the file, the path inside it and the problem.
    """
    return load_yaml_model(path, ConnectorConfig)


class LocalConnector:
    """Answers one source from the local SQLite context store.

    A `BulkConnector`: `Enricher.enrich_many` asks it once per group of
    tickets through `fetch_many` instead of once per ticket.
    """

    def __init__(self, store: ContextStore, source: Source) -> None:
        self.store = store
        self.source: Source = source

    async def fetch(self, key: ContextKey) -> BaseModel | None:
        # SQLAlchemy blocks; a thread keeps the event loop serving other
        # tickets, and a budget that runs out stops waiting for it.
        return await asyncio.to_thread(self.store.get, self.source, key)

    async def fetch_many(self, keys: Sequence[ContextKey]) -> list[BaseModel | None]:
        """The source's section for each key, in order, from one thread hop.

        Raises:
            DataError: a stored record no longer validates (the whole call).
        """
        # One thread and a few queries for the whole group: a thread per
        # ticket queues in the default pool under load and costs CPU.
        return await asyncio.to_thread(self.store.get_many, self.source, keys)

    async def aclose(self) -> None:
        self.store.close()


class CircuitBreaker:
    """Fails calls fast while a source keeps failing, then tries it again.

    Closed: calls go through; `failure_threshold` consecutive failures open
    it. Open: `before_call` raises `CircuitOpenError` for `reset_after_s`.
    Half-open: one trial call goes through (the rest still fail fast); its
    success closes the breaker, its failure opens it again.

    Written here rather than taken from PyPI: purgatory 3.0 reads
    `time.time()` inside its state classes, so tests cannot control time
    without patching the library, and its half-open state lets every
    concurrent call through rather than one; aiobreaker 1.2 (last released
    2021) has no clock to inject either and mixes `datetime.now()` with
    `datetime.utcnow()`. This one takes `clock` (monotonic seconds).

    State is not locked: it is changed only from one event loop's thread,
    between awaits.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_after_s:
            return "open"
        return "half_open"

    def before_call(self) -> None:
        """Let a call through, or raise `CircuitOpenError`."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        raise CircuitOpenError(self.name, retry_in_s=self._retry_in_s())

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("circuit breaker closed", extra={"source": self.name})
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        is_closed = self._opened_at is None
        if self._trial_in_flight or (
            is_closed and self._failures >= self.failure_threshold
        ):
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_in_flight = False
        log.warning(
            "circuit breaker opened, failing fast",
            extra={
                "source": self.name,
                "failures": self._failures,
                "reset_after_s": self.reset_after_s,
            },
        )

    def _retry_in_s(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after_s - self._clock())


class HttpConnector:
    """Answers one source from its HTTP API (see `HttpSourceConfig`).

    Args:
        source: the context source this API answers.
        config: URL template, auth, timeout, retries and breaker settings.
        env: where the secret named by `config.auth_env` is read; `os.environ`
            by default.
        clock: the circuit breaker's clock (monotonic seconds).
        transport: an httpx transport to use instead of the network.

    Raises:
        ConfigError: `config.auth_env` names a variable that is not set.
    """

    def __init__(
        self,
        source: Source,
        config: HttpSourceConfig,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.source: Source = source
        self.config = config
        self.breaker = CircuitBreaker(
            source,
            failure_threshold=config.breaker.failure_threshold,
            reset_after_s=config.breaker.reset_after_s,
            clock=clock,
        )
        headers = {"Accept": "application/json", **_auth_headers(source, config, env)}
        self._model = SECTION_MODELS[source]
        self._client = httpx.AsyncClient(
            headers=headers, transport=transport, follow_redirects=False
        )
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(config.retries + 1),
            wait=wait_exponential(
                multiplier=config.backoff_initial_s, max=config.backoff_max_s
            ),
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )

    async def fetch(self, key: ContextKey) -> BaseModel | None:
        """The source's section for `key`, None on 404.

        Raises:
            CircuitOpenError: the breaker is open; nothing was sent.
            ConnectorStatusError: a 4xx other than 404, or a 3xx.
            BadResponseError: the body does not validate.
            httpx.HTTPError: connect errors, timeouts and 5xx, after retries.
        """
        self.breaker.before_call()
        try:
            # A copy per call: a Retrying object keeps per-run statistics.
            retrying = self._retrying.copy()
            response: httpx.Response = await retrying(self._get, self._url(key))
            section = self._section(response)
        except ConnectorStatusError:
            # The service is up and answering; a 4xx is about this request.
            self.breaker.record_success()
            raise
        except BaseException:
            # Cancellation counts too: a source that keeps outlasting the
            # budget should stop being called, and a half-open trial that is
            # cut off must not leave the breaker waiting for it forever.
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return section

    async def aclose(self) -> None:
        await self._client.aclose()

    def _url(self, key: ContextKey) -> str:
        values = {
            "account_id": key.account_id,
            "product": key.product,
            "region": key.region,
            "ticket_id": key.ticket_id,
        }
        quoted = {name: quote(value or "", safe="") for name, value in values.items()}
        return self.config.url_template.format(**quoted)

    async def _get(self, url: str) -> httpx.Response:
        response = await self._client.get(url, timeout=self.config.timeout_s)
        if response.is_server_error:
            response.raise_for_status()
        return response

    def _section(self, response: httpx.Response) -> BaseModel | None:
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise ConnectorStatusError(self.source, response.status_code)
        try:
            return self._model.model_validate_json(response.content)
        except ValidationError as err:
            raise BadResponseError(
                f"{self.source}: the response body is not a valid "
                f"{self._model.__name__} ({err.error_count()} problems)"
            ) from err


def _auth_headers(
    source: Source, config: HttpSourceConfig, env: Mapping[str, str] | None
) -> dict[str, str]:
    if config.auth_header is None or config.auth_env is None:
        return {}
    secret = (os.environ if env is None else env).get(config.auth_env)
    if not secret:
        raise ConfigError(
            f"connector {source}: environment variable {config.auth_env} is not "
            "set; set it to the API credential or remove auth_header and "
            "auth_env for this source"
        )
    value = f"{config.auth_scheme} {secret}" if config.auth_scheme else secret
    return {config.auth_header: value}


def _is_retryable(error: BaseException) -> bool:
    """Connect errors, dropped connections, timeouts and 5xx; never 4xx."""
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.is_server_error
    return isinstance(
        error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    )
