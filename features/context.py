"""The `Context` enrichment attaches to a ticket: what the text cannot say.

Five sources, each answered by one connector (see `features.enrichment`):
the CRM account, billing (invoice and payment), entitlements (plan, seats,
suspension, the latest order), identity (provisioning and sync events) and
telemetry (open incidents for the account's product and region).

Every section has a default for every field, so `Context.rule_view()` always
gives rules the same keys: a rule reads `context.billing.payment_status`
without guarding it, and tests `"billing" in context.missing` when it must
know whether the source answered at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Source = Literal["crm", "billing", "entitlements", "identity", "telemetry"]
SOURCES: tuple[Source, ...] = (
    "crm",
    "billing",
    "entitlements",
    "identity",
    "telemetry",
)

# ok: the source answered with a record; not_found: it answered and has none
# for this account; the other three mean the fact is unknown.
SourceOutcome = Literal[
    "ok", "not_found", "error", "timeout", "circuit_open", "skipped"
]
MISSING_OUTCOMES = frozenset({"error", "timeout", "circuit_open"})
ANSWERED_OUTCOMES = frozenset({"ok", "not_found"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrmAccount(_Section):
    """The CRM's account record."""

    name: str = ""
    tier: str = Field(default="", description="strategic, enterprise, ... or ''.")
    is_strategic: bool = False
    region: str = ""
    account_team: str = Field(default="", description="Owning account team.")


class Billing(_Section):
    """The latest invoice and its payment, from ERP / billing."""

    invoice_id: str = ""
    invoice_status: Literal["", "paid", "open", "overdue", "void"] = ""
    payment_status: Literal["", "cleared", "pending", "failed", "none"] = ""
    credit_hold: bool = Field(
        default=False, description="Billing holds new orders until a balance is paid."
    )
    days_overdue: int = Field(default=0, ge=0)


class Order(_Section):
    order_id: str = ""
    status: Literal["", "activated", "pending", "booked", "cancelled"] = ""
    seats: int = Field(default=0, ge=0)


class Entitlements(_Section):
    """Subscription state: plan, seats, suspension, the latest order."""

    plan: str = ""
    status: Literal["", "active", "trial", "suspended", "cancelled"] = ""
    suspended_reason: str = ""
    seats_entitled: int = Field(default=0, ge=0)
    seats_used: int = Field(default=0, ge=0)
    latest_order: Order = Field(default_factory=Order)

    @property
    def has_seat_mismatch(self) -> bool:
        """An activated order bought more seats than the entitlement grants."""
        order = self.latest_order
        return order.status == "activated" and order.seats > self.seats_entitled


class IdentityEvent(_Section):
    at: datetime
    kind: Literal["provisioning", "sync"]
    status: Literal["ok", "error"]
    detail: str = ""


class Identity(_Section):
    """Recent provisioning and directory-sync events for the account."""

    last_sync_status: Literal["", "ok", "error", "never"] = ""
    recent_events: list[IdentityEvent] = Field(default_factory=list)

    @property
    def sync_error(self) -> bool:
        return self.last_sync_status == "error"

    @property
    def provisioning_errors(self) -> int:
        return sum(
            1
            for event in self.recent_events
            if event.kind == "provisioning" and event.status == "error"
        )


class Incident(_Section):
    incident_id: str
    product: str = ""
    region: str = ""
    severity: str = ""
    environment: str = "production"
    opened_at: datetime | None = None


class Telemetry(_Section):
    """Open incidents for the account's product and region."""

    open_incidents: list[Incident] = Field(default_factory=list)

    @property
    def has_production_impact(self) -> bool:
        return any(i.environment == "production" for i in self.open_incidents)


class SourceStatus(_Section):
    """How one source answered for one ticket."""

    outcome: SourceOutcome
    latency_ms: float = Field(default=0.0, ge=0.0)
    detail: str = Field(default="", description="Error class or reason; no data.")


class Context(BaseModel):
    """Everything enrichment learned about a ticket's account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str | None = None
    crm: CrmAccount = Field(default_factory=CrmAccount)
    billing: Billing = Field(default_factory=Billing)
    entitlements: Entitlements = Field(default_factory=Entitlements)
    identity: Identity = Field(default_factory=Identity)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    sources: dict[Source, SourceStatus] = Field(default_factory=dict)

    @property
    def missing(self) -> list[Source]:
        """Sources whose facts are unknown: they failed, timed out or are open."""
        return [
            source
            for source in SOURCES
            if source in self.sources
            and self.sources[source].outcome in MISSING_OUTCOMES
        ]

    @property
    def answered(self) -> list[Source]:
        """Sources that answered, with a record or without one."""
        return [
            source
            for source in SOURCES
            if source in self.sources
            and self.sources[source].outcome in ANSWERED_OUTCOMES
        ]

    @property
    def is_complete(self) -> bool:
        return not self.missing

    def rule_view(self) -> dict[str, Any]:
        """The map rules see as `context`: every key present, derived flags added.

        The flat `account_status` and `account_tier` keys are the ones rule
        files used before enrichment existed; they stay, filled from the
        entitlements and CRM sections.
        """
        entitlements, identity = self.entitlements, self.identity
        return {
            "account_id": self.account_id or "",
            "crm": self.crm.model_dump(mode="json"),
            "billing": self.billing.model_dump(mode="json"),
            "entitlements": {
                **entitlements.model_dump(mode="json", exclude={"latest_order"}),
                "order_id": entitlements.latest_order.order_id,
                "order_status": entitlements.latest_order.status,
                "order_seats": entitlements.latest_order.seats,
                "seat_mismatch": entitlements.has_seat_mismatch,
            },
            "identity": {
                "last_sync_status": identity.last_sync_status,
                "sync_error": identity.sync_error,
                "provisioning_errors": identity.provisioning_errors,
            },
            "telemetry": {
                "open_incident_count": len(self.telemetry.open_incidents),
                "has_production_impact": self.telemetry.has_production_impact,
            },
            "missing": list(self.missing),
            "enriched": bool(self.sources),
            "account_status": entitlements.status,
            "account_tier": self.crm.tier,
        }


# What each known event kind changes in its source's section, before the
# event's own `facts` are laid on top. Kinds not listed change only `facts`.
EVENT_CHANGES: dict[str, tuple[Source, dict[str, Any]]] = {
    "invoice_paid": (
        "billing",
        {
            "invoice_status": "paid",
            "payment_status": "cleared",
            "credit_hold": False,
            "days_overdue": 0,
        },
    ),
    "payment_failed": ("billing", {"payment_status": "failed"}),
    "credit_hold_released": ("billing", {"credit_hold": False}),
    "entitlement_restored": (
        "entitlements",
        {"status": "active", "suspended_reason": ""},
    ),
    "entitlement_suspended": ("entitlements", {"status": "suspended"}),
    "identity_sync_recovered": ("identity", {"last_sync_status": "ok"}),
    "identity_sync_failed": ("identity", {"last_sync_status": "error"}),
    "incident_opened": ("telemetry", {}),
    "incident_closed": ("telemetry", {}),
    "account_updated": ("crm", {}),
}


class ContextEvent(BaseModel):
    """A change in a source system: an invoice paid, an incident opened, ...

    Sent to `POST /v1/events/context` or on the event stream. `facts` are
    section fields the change set (laid over what the kind implies); for
    incident_opened they describe the incident, for incident_closed they
    name it (`incident_id`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    source: Source | None = Field(
        default=None, description="Implied by known kinds; required for others."
    )
    account_id: str | None = Field(default=None, max_length=128)
    product: str | None = Field(default=None, max_length=128)
    region: str | None = Field(default=None, max_length=64)
    facts: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None

    @model_validator(mode="after")
    def _check_source(self) -> ContextEvent:
        implied = EVENT_CHANGES.get(self.kind, (None, {}))[0]
        if self.source is None and implied is None:
            raise ValueError(
                f"event kind {self.kind!r} is not a known kind, so source is "
                f"required; known kinds: {', '.join(EVENT_CHANGES)}"
            )
        if self.source is not None and implied is not None and self.source != implied:
            raise ValueError(
                f"event kind {self.kind!r} belongs to source {implied!r}, "
                f"not {self.source!r}"
            )
        is_regional = self.product is not None and self.region is not None
        if self.changed_source != "telemetry" and self.account_id is None:
            raise ValueError(
                f"a {self.changed_source} event is about one account: account_id "
                "is required"
            )
        if self.changed_source == "telemetry" and not is_regional:
            raise ValueError(
                "incidents are regional: a telemetry event needs product and region"
            )
        # Facts that do not fit the section are the sender's mistake: refuse
        # them here (a 422), not when the change is applied.
        try:
            apply_context_event(None, self)
        except ValidationError as err:
            fields = ", ".join(
                ".".join(str(part) for part in item["loc"]) or "facts"
                for item in err.errors()
            )
            raise ValueError(
                f"facts do not fit the {self.changed_source} section ({fields}); "
                f"see features.context.{SECTION_MODELS[self.changed_source].__name__}"
            ) from None
        return self

    @property
    def changed_source(self) -> Source:
        implied = EVENT_CHANGES.get(self.kind, (None, {}))[0]
        source = self.source or implied
        assert source is not None  # guaranteed by validation
        return source


SECTION_MODELS: dict[Source, type[BaseModel]] = {
    "crm": CrmAccount,
    "billing": Billing,
    "entitlements": Entitlements,
    "identity": Identity,
    "telemetry": Telemetry,
}


def apply_context_event(section: BaseModel | None, event: ContextEvent) -> BaseModel:
    """The section as it is after the event (validated; the input is not changed).

    Raises:
        ValueError: the event's facts do not fit the section.
    """
    source = event.changed_source
    model = SECTION_MODELS[source]
    current = (section or model()).model_dump(mode="json")

    if event.kind == "incident_opened":
        incidents = [*current["open_incidents"], event.facts]
        return model.model_validate({"open_incidents": incidents})
    if event.kind == "incident_closed":
        closed = event.facts.get("incident_id")
        kept = [i for i in current["open_incidents"] if i["incident_id"] != closed]
        return model.model_validate({"open_incidents": kept})

    changes = EVENT_CHANGES.get(event.kind, (source, {}))[1]
    return model.model_validate({**current, **changes, **event.facts})
