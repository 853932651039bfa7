"""The local context store: what the CRM, billing, identity... would answer.

The embedded default for enrichment (`Settings.enrichment = "local"`): a
SQLite file, `context.db` in the state folder unless
`Settings.context_store_url` says otherwise, seeded on first use with the
scenario and sample accounts (`features.context_seed`). `LocalConnector`
reads it for each source.

One table per account-keyed source (crm, billing, entitlements, identity),
keyed by `account_id`, whose `data` column holds the section's
`model_dump(mode="json")`. Telemetry is kept one open incident per row, keyed
by product and region: an incident affects every account on that product in
that region, so `account_id` is empty unless an incident was recorded for one
tenant alone.

`get` answers one key; `get_many` answers a group of tickets with a query
per source (a query per product and region for telemetry), for the batch
path's bulk reads.

SQLAlchemy Core on SQLite only: rows are upserted with SQLite's
`ON CONFLICT`, and nothing else needs this store's schema.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError

from features.context import Incident, Source, Telemetry
from features.enrichment import ACCOUNT_SOURCES, SECTION_MODELS, ContextKey
from features.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

# A reader waits this long for a seeding writer; the enrichment budget is much
# shorter, so a ticket simply times out that source meanwhile.
_BUSY_TIMEOUT_S = 5.0
# Account ids per `IN (...)` query in `get_many`: older SQLite builds allow
# 999 bound parameters per statement.
_IN_CHUNK_SIZE = 500

_METADATA = sa.MetaData()
_ACCOUNT_TABLES: dict[Source, sa.Table] = {
    source: sa.Table(
        f"context_{source}",
        _METADATA,
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    for source in ACCOUNT_SOURCES
}
_INCIDENTS = sa.Table(
    "context_telemetry_incidents",
    _METADATA,
    sa.Column("incident_id", sa.String(128), primary_key=True),
    sa.Column("product", sa.String(128), nullable=False),
    sa.Column("region", sa.String(64), nullable=False),
    sa.Column("account_id", sa.String(128), nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_context_incidents_region_product", "region", "product"),
)


class ContextStore:
    """Context sections per account (and incidents per product and region).

    Args:
        url: SQLAlchemy SQLite URL, e.g. ``sqlite:///path/context.db``; the
            folder is created and so are the tables.

    Raises:
        ConfigError: the URL is not a SQLite URL.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            raise ConfigError(
                f"context store URL {url!r} is not a SQLAlchemy URL; set "
                "SWITCHBOARD_CONTEXT_STORE_URL to e.g. sqlite:///path/context.db"
            ) from err
        if parsed.get_backend_name() != "sqlite":
            raise ConfigError(
                f"the local context store is SQLite only, got a "
                f"{parsed.get_backend_name()} URL; set SWITCHBOARD_CONTEXT_STORE_URL "
                "to sqlite:///path/context.db, or enrichment to http"
            )
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

        self.url = url
        self._engine = sa.create_engine(
            parsed, connect_args={"timeout": _BUSY_TIMEOUT_S}
        )
        _METADATA.create_all(self._engine)

    def get(self, source: Source, key: ContextKey) -> BaseModel | None:
        """The source's section for the key; None when there is no record.

        Telemetry always answers: an empty `Telemetry` means no open incident
        for the key's product and region (or none for a key without both).

        Raises:
            DataError: a stored record no longer validates.
        """
        if source == "telemetry":
            return self._incidents(key)
        if not key.account_id:
            return None

        table = _ACCOUNT_TABLES[source]
        query = sa.select(table.c.data).where(table.c.account_id == key.account_id)
        with self._engine.connect() as connection:
            data = connection.execute(query).scalar_one_or_none()
        if data is None:
            return None
        return _validate(SECTION_MODELS[source], data, table.name)

    def get_many(
        self, source: Source, keys: Sequence[ContextKey]
    ) -> list[BaseModel | None]:
        """What `get` answers for each key, in order, in a few queries.

        Account-keyed sources are read with one query per
        `_IN_CHUNK_SIZE` distinct account ids; telemetry with one query per
        distinct product and region. Keys that share an account (or a
        product and region) share the same frozen section object.

        Args:
            source: the source to read.
            keys: the tickets' keys; duplicates and keys without the ids the
                source needs are fine.

        Returns:
            One entry per key, as `get` would return it for that key.

        Raises:
            DataError: a stored record the keys read no longer validates; the
                whole call fails, not only the keys that share that record.
        """
        if not keys:
            return []
        with self._engine.connect() as connection:
            if source == "telemetry":
                return _telemetry_for_keys(connection, keys)
            return _sections_for_keys(connection, source, keys)

    def put(
        self,
        source: Source,
        section: BaseModel,
        *,
        account_id: str | None = None,
        product: str | None = None,
        region: str | None = None,
    ) -> None:
        """Write one section, replacing what was there.

        Account-keyed sources need `account_id`. Telemetry needs `product`
        and `region`: its incidents replace the open incidents stored for
        them, the regional ones, or with `account_id` those of that account
        alone.

        Raises:
            ValueError: a key the source needs is missing, or the section is
                not the source's model.
        """
        _check_model(source, section)
        with self._engine.begin() as connection:
            if isinstance(section, Telemetry):
                _replace_incidents(connection, section, account_id, product, region)
            else:
                _put_section(connection, source, section, account_id)

    def put_contexts(self, contexts: Mapping[str, Mapping[Source, BaseModel]]) -> int:
        """Write every section of every account in one transaction.

        Account sections replace the account's records. The incidents of a
        telemetry section are added as regional incidents of their own
        product and region (the seed lists each under an account it affects);
        incidents already stored elsewhere are left as they are.

        Returns:
            The number of accounts written.

        Raises:
            ValueError: like `put`, or an incident without product or region.
        """
        with self._engine.begin() as connection:
            for account_id, sections in contexts.items():
                for source, section in sections.items():
                    _check_model(source, section)
                    if isinstance(section, Telemetry):
                        _upsert_incidents(connection, section.open_incidents)
                    else:
                        _put_section(connection, source, section, account_id)
        return len(contexts)

    def is_empty(self) -> bool:
        """Whether no table has a row yet (a new store, to be seeded)."""
        tables = [*_ACCOUNT_TABLES.values(), _INCIDENTS]
        probes = [sa.select(sa.literal(1)).select_from(t).limit(1) for t in tables]
        with self._engine.connect() as connection:
            return not any(connection.execute(probe).first() for probe in probes)

    def close(self) -> None:
        """Close pooled connections; the store reopens them if used again."""
        self._engine.dispose()

    def _incidents(self, key: ContextKey) -> Telemetry:
        if not (key.product and key.region):
            return Telemetry()

        table = _INCIDENTS
        # Regional incidents, plus any recorded for this account alone.
        scope: list[sa.ColumnElement[bool]] = [table.c.account_id.is_(None)]
        if key.account_id:
            scope.append(table.c.account_id == key.account_id)
        query = (
            sa.select(table.c.data)
            .where(table.c.product == key.product, table.c.region == key.region)
            .where(sa.or_(*scope))
            .order_by(table.c.incident_id)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).scalars().all()
        return Telemetry(
            open_incidents=[_validate(Incident, data, table.name) for data in rows]
        )


def seed_context_store(store: ContextStore) -> int:
    """Write `features.context_seed.SEED_CONTEXTS` into the store.

    Rows are upserted, so seeding twice (two replicas starting together)
    leaves the same store.

    Returns:
        The number of accounts written.
    """
    # Imported here: the seed builds its records from the sample accounts,
    # which imports pandas; reading the store needs neither.
    from features.context_seed import SEED_CONTEXTS

    written = store.put_contexts(SEED_CONTEXTS)
    log.info("context store seeded", extra={"accounts": written})
    return written


def _sections_for_keys(
    connection: Connection, source: Source, keys: Sequence[ContextKey]
) -> list[BaseModel | None]:
    table = _ACCOUNT_TABLES[source]
    model = SECTION_MODELS[source]
    # dict.fromkeys keeps first-seen order, so the queries are repeatable.
    account_ids = list(dict.fromkeys(k.account_id for k in keys if k.account_id))
    found: dict[str, BaseModel] = {}
    for chunk in _chunks(account_ids, _IN_CHUNK_SIZE):
        query = sa.select(table.c.account_id, table.c.data).where(
            table.c.account_id.in_(chunk)
        )
        for account_id, data in connection.execute(query):
            found[account_id] = _validate(model, data, table.name)
    return [found.get(k.account_id) if k.account_id else None for k in keys]


def _telemetry_for_keys(
    connection: Connection, keys: Sequence[ContextKey]
) -> list[BaseModel | None]:
    table = _INCIDENTS
    places = dict.fromkeys(place for key in keys if (place := _place(key)))
    # Per place, every incident there with the account it is scoped to (None
    # for regional ones); each key then keeps what `get` would have matched.
    by_place: dict[tuple[str, str], list[tuple[str | None, Incident]]] = {}
    for product, region in places:
        query = (
            sa.select(table.c.account_id, table.c.data)
            .where(table.c.product == product, table.c.region == region)
            .order_by(table.c.incident_id)
        )
        by_place[(product, region)] = [
            (account_id, _validate(Incident, data, table.name))
            for account_id, data in connection.execute(query)
        ]

    answers: list[BaseModel | None] = []
    for key in keys:
        place = _place(key)
        incidents = by_place[place] if place else []
        scoped = [
            incident
            for account_id, incident in incidents
            if account_id is None or (key.account_id and account_id == key.account_id)
        ]
        answers.append(Telemetry(open_incidents=scoped))
    return answers


def _place(key: ContextKey) -> tuple[str, str] | None:
    """The key's product and region, or None without both (no incident)."""
    if key.product and key.region:
        return key.product, key.region
    return None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_model(source: Source, section: BaseModel) -> None:
    expected = SECTION_MODELS[source]
    if not isinstance(section, expected):
        raise ValueError(
            f"{source} takes a {expected.__name__}, got {type(section).__name__}"
        )


def _put_section(
    connection: Connection, source: Source, section: BaseModel, account_id: str | None
) -> None:
    if not account_id:
        raise ValueError(f"{source} records are keyed by account_id; none given")

    table = _ACCOUNT_TABLES[source]
    insert = sqlite.insert(table).values(
        account_id=account_id, data=section.model_dump(mode="json")
    )
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.account_id], set_={"data": insert.excluded.data}
        )
    )


def _replace_incidents(
    connection: Connection,
    telemetry: Telemetry,
    account_id: str | None,
    product: str | None,
    region: str | None,
) -> None:
    if not (product and region):
        raise ValueError(
            "telemetry is kept per product and region; give both to put it"
        )

    table = _INCIDENTS
    scope = (
        table.c.account_id == account_id if account_id else table.c.account_id.is_(None)
    )
    connection.execute(
        table.delete().where(
            table.c.product == product, table.c.region == region, scope
        )
    )
    # Stored under the place given, whatever each incident says of itself:
    # an event may describe an incident without repeating where it is.
    _upsert_incidents(
        connection, telemetry.open_incidents, account_id, (product, region)
    )


def _upsert_incidents(
    connection: Connection,
    incidents: list[Incident],
    account_id: str | None = None,
    place: tuple[str, str] | None = None,
) -> None:
    if not incidents:
        return

    rows = []
    for incident in incidents:
        product, region = place or (incident.product, incident.region)
        if not (product and region):
            raise ValueError(
                f"incident {incident.incident_id} needs a product and a region"
            )
        rows.append(
            {
                "incident_id": incident.incident_id,
                "product": product,
                "region": region,
                "account_id": account_id or None,
                "data": incident.model_dump(mode="json"),
            }
        )
    insert = sqlite.insert(_INCIDENTS).values(rows)
    excluded = insert.excluded
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=[_INCIDENTS.c.incident_id],
            set_={
                "product": excluded.product,
                "region": excluded.region,
                "account_id": excluded.account_id,
                "data": excluded.data,
            },
        )
    )


def _validate(model: type[ModelT], data: Any, table: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise DataError(
            f"context store table {table}: a stored {model.__name__} no longer "
            f"validates ({err.error_count()} problems); re-seed the store or fix "
            "the row"
        ) from err
