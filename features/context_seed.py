"""Seed records for the local context store: scenario accounts and the sample's.

`SEED_CONTEXTS` maps an account id to its five context sections. Six accounts
are written out by hand because scenario tickets and rule tests depend on
their exact facts (a paid but suspended strategic tenant, an expansion that was
never applied, an overdue account on credit hold, ...). The other accounts are
those of the bundled sample tickets (`features.sample_data.sample_accounts`),
so every sample ticket with an account finds its context; their records are
drawn from a random generator seeded with the account id, which keeps each
record stable however the list of accounts changes. Most are unremarkable
(active, paid, syncing); a few per cent are overdue, suspended, mid-expansion or
failing to sync, so rules meet those states on ordinary tickets too.

Nothing here is real customer data: names, invoices and orders are invented.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from features.context import (
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
from features.sample_data import SampleAccount, sample_accounts

_EntitlementStatus = Literal["active", "trial", "suspended"]

# Changing this re-draws every sample account's record; the scenario accounts
# never change.
_SEED_VERSION = "context-seed-1"
_FIRST_EVENT = datetime(2026, 1, 5, tzinfo=UTC)
_PAID = Billing(invoice_status="paid", payment_status="cleared")

# Account teams are named by area and segment; below enterprise the segment is
# no longer the tier itself.
_SEGMENTS = {
    "strategic": "strategic",
    "enterprise": "enterprise",
    "business": "commercial",
    "starter": "self-serve",
    "free": "self-serve",
}


def scenario_contexts() -> dict[str, dict[Source, BaseModel]]:
    """The six hand-written accounts that scenario tickets and rule tests use."""
    return {
        "acct_900417": {
            "crm": _crm("Meridian Logistics", "strategic", "eu-central-1"),
            "billing": _PAID.model_copy(update={"invoice_id": "INV-2026-0412"}),
            "entitlements": Entitlements(
                plan="enterprise",
                status="suspended",
                suspended_reason="non-payment",
                seats_entitled=2400,
                seats_used=2400,
                latest_order=Order(
                    order_id="SO-700001", status="activated", seats=2400
                ),
            ),
            "identity": Identity(
                last_sync_status="error",
                recent_events=[
                    _event("2026-03-02T09:14:00", "sync", "ok"),
                    _event(
                        "2026-03-09T06:10:00",
                        "sync",
                        "error",
                        "billing-to-entitlement sync failed",
                    ),
                ],
            ),
            "telemetry": Telemetry(),
        },
        "acct_412908": {
            "crm": _crm("Harbor Health", "enterprise", "us-east-1"),
            "billing": _PAID.model_copy(update={"invoice_id": "INV-2026-0388"}),
            "entitlements": Entitlements(
                plan="enterprise",
                status="active",
                seats_entitled=200,
                seats_used=200,
                latest_order=Order(order_id="SO-771204", status="activated", seats=350),
            ),
            "identity": Identity(
                last_sync_status="ok",
                recent_events=[
                    _event("2026-06-17T09:02:00", "sync", "ok"),
                    _event(
                        "2026-06-17T11:26:00",
                        "provisioning",
                        "error",
                        "seat limit reached",
                    ),
                    _event(
                        "2026-06-17T13:05:00",
                        "provisioning",
                        "error",
                        "seat limit reached",
                    ),
                ],
            ),
            "telemetry": Telemetry(),
        },
        "acct_500101": {
            "crm": _crm("Lumen Freight", "enterprise", "us-east-1"),
            "billing": _PAID.model_copy(update={"invoice_id": "INV-2026-0501"}),
            "entitlements": Entitlements(
                plan="enterprise",
                status="active",
                seats_entitled=200,
                seats_used=188,
                latest_order=Order(order_id="SO-500101", status="booked", seats=300),
            ),
            "identity": _identity_ok("2026-05-04T08:00:00"),
            "telemetry": Telemetry(),
        },
        "acct_500102": {
            "crm": _crm("Ostara Bank", "enterprise", "eu-west-1"),
            "billing": _PAID.model_copy(update={"invoice_id": "INV-2026-0502"}),
            "entitlements": Entitlements(
                plan="enterprise",
                status="active",
                seats_entitled=300,
                seats_used=276,
                latest_order=Order(order_id="SO-500102", status="activated", seats=300),
            ),
            "identity": Identity(
                last_sync_status="error",
                recent_events=[
                    _event("2026-05-03T08:00:00", "sync", "ok"),
                    _event(
                        "2026-05-04T08:00:00", "sync", "error", "SCIM token expired"
                    ),
                ],
            ),
            "telemetry": Telemetry(),
        },
        "acct_500103": {
            "crm": _crm("Pinecrest Retail", "business", "us-west-2"),
            "billing": Billing(
                invoice_id="INV-2026-0977",
                invoice_status="overdue",
                payment_status="none",
                credit_hold=True,
                days_overdue=45,
            ),
            "entitlements": Entitlements(
                plan="business",
                status="active",
                seats_entitled=80,
                seats_used=79,
                latest_order=Order(order_id="SO-500103", status="pending", seats=120),
            ),
            "identity": _identity_ok("2026-05-04T08:00:00"),
            "telemetry": Telemetry(),
        },
        "acct_500104": {
            "crm": _crm("Aurora Energy", "strategic", "eu-west-1"),
            "billing": _PAID.model_copy(update={"invoice_id": "INV-2026-0504"}),
            "entitlements": Entitlements(
                plan="enterprise",
                status="active",
                seats_entitled=1800,
                seats_used=1650,
                latest_order=Order(
                    order_id="SO-500104", status="activated", seats=1800
                ),
            ),
            "identity": _identity_ok("2026-04-14T01:00:00"),
            # Regional, as incidents are: every Workspace ticket in eu-west-1
            # sees it, Aurora's among them.
            "telemetry": Telemetry(
                open_incidents=[
                    Incident(
                        incident_id="INC-4411",
                        product="Workspace",
                        region="eu-west-1",
                        severity="critical",
                        environment="production",
                        opened_at=datetime(2026, 4, 14, 1, 55, tzinfo=UTC),
                    )
                ]
            ),
        },
    }


def sample_contexts() -> dict[str, dict[Source, BaseModel]]:
    """Plausible records for every account of the bundled sample tickets."""
    return {account.id: _sample_context(account) for account in sample_accounts()}


def _sample_context(account: SampleAccount) -> dict[Source, BaseModel]:
    rng = random.Random(f"{_SEED_VERSION}:{account.id}")
    billing = _sample_billing(rng, account)
    return {
        "crm": _crm(account.company, account.tier, account.region),
        "billing": billing,
        "entitlements": _sample_entitlements(rng, account, billing),
        "identity": _sample_identity(rng, account),
        "telemetry": Telemetry(),
    }


def _sample_billing(rng: random.Random, account: SampleAccount) -> Billing:
    # Free accounts are never invoiced, so billing has nothing on them.
    if account.tier == "free":
        return Billing()

    invoice_id = f"INV-2026-{rng.randint(1000, 9999)}"
    draw = rng.random()
    if draw < 0.84:
        return _PAID.model_copy(update={"invoice_id": invoice_id})
    if draw < 0.92:
        # Invoiced this month and not yet due.
        return Billing(
            invoice_id=invoice_id, invoice_status="open", payment_status="pending"
        )
    if draw < 0.97:
        days_overdue = rng.randint(5, 60)
        return Billing(
            invoice_id=invoice_id,
            invoice_status="overdue",
            payment_status="none",
            credit_hold=days_overdue > 30,
            days_overdue=days_overdue,
        )
    return Billing(
        invoice_id=invoice_id, invoice_status="open", payment_status="failed"
    )


def _sample_entitlements(
    rng: random.Random, account: SampleAccount, billing: Billing
) -> Entitlements:
    seats_used = max(1, round(account.seats * rng.uniform(0.55, 1.0)))
    plan = account.plan.lower()
    if account.tier == "free":
        return Entitlements(
            plan=plan,
            status="active",
            seats_entitled=account.seats,
            seats_used=seats_used,
        )

    # Only accounts on credit hold get suspended, and only some of them: the
    # rest are still inside their grace period.
    status: _EntitlementStatus = "active"
    reason = ""
    if billing.credit_hold and rng.random() < 0.5:
        status, reason = "suspended", "non-payment"
    elif account.tier == "starter" and rng.random() < 0.1:
        status = "trial"

    order_id = f"SO-{rng.randint(200_000, 499_999)}"
    order = Order(order_id=order_id, status="activated", seats=account.seats)
    if rng.random() < 0.04:
        # An expansion bought but not yet applied to the entitlement.
        extra = max(1, round(account.seats * rng.uniform(0.1, 0.5)))
        order = Order(order_id=order_id, status="pending", seats=account.seats + extra)
    return Entitlements(
        plan=plan,
        status=status,
        suspended_reason=reason,
        seats_entitled=account.seats,
        seats_used=seats_used,
        latest_order=order,
    )


def _sample_identity(rng: random.Random, account: SampleAccount) -> Identity:
    # Free and starter plans have no directory sync to report on.
    if account.tier in ("free", "starter"):
        return Identity(last_sync_status="never")

    at = _FIRST_EVENT + timedelta(minutes=rng.randrange(300 * 24 * 60))
    if rng.random() < 0.05:
        return Identity(
            last_sync_status="error",
            recent_events=[
                IdentityEvent(
                    at=at, kind="sync", status="error", detail="directory sync failed"
                )
            ],
        )
    return Identity(
        last_sync_status="ok",
        recent_events=[IdentityEvent(at=at, kind="sync", status="ok")],
    )


def _crm(name: str, tier: str, region: str) -> CrmAccount:
    return CrmAccount(
        name=name,
        tier=tier,
        is_strategic=tier == "strategic",
        region=region,
        account_team=f"{_area(region)} {_SEGMENTS.get(tier, tier)}",
    )


def _area(region: str) -> str:
    if region.startswith("eu-"):
        return "EMEA"
    if region.startswith("ap-"):
        return "APAC"
    return "AMER"


def _event(at: str, kind: str, status: str, detail: str = "") -> IdentityEvent:
    return IdentityEvent.model_validate(
        {"at": f"{at}+00:00", "kind": kind, "status": status, "detail": detail}
    )


def _identity_ok(at: str) -> Identity:
    return Identity(last_sync_status="ok", recent_events=[_event(at, "sync", "ok")])


# Sample accounts first, so a scenario account always has its hand-written facts.
SEED_CONTEXTS: dict[str, dict[Source, BaseModel]] = {
    **sample_contexts(),
    **scenario_contexts(),
}
