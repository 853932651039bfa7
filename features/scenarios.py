"""Three scenario tickets with the routing decision each one should get.

Each `Scenario` holds the payload as its channel delivers it (a raw RFC 5322
message, a portal form's JSON, an Alertmanager webhook), the `Ticket` mapping
intake should turn it into (it validates with `features.schema.parse_ticket`),
and the queue and priority a correct router gives it. Intake tests can compare
their output with `ticket` field by field; `id` and `metadata` are the
adapter's own business and are given here only so the mapping validates. The
policy and the served application check `expected_queue` and
`expected_priority`.

`SCENARIOS` is built once at import; call the scenario's function for a copy
that a test may change.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

# The first bytes of a PDF: enough for a realistic attachment part.
_RECEIPT_PDF_BASE64 = (
    "JVBERi0xLjcKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoK"
)


@dataclass(frozen=True)
class Scenario:
    """One scenario: a raw payload, its ticket and the decision expected."""

    name: str
    channel: str
    payload: dict[str, Any] | str
    ticket: dict[str, Any]
    expected_queue: str
    expected_priority: str
    note: str


def strategic_suspended_despite_payment() -> Scenario:
    """A strategic customer's tenant suspended although its invoice is paid.

    Expected queue: provisioning_entitlements, P1.

    Why not collections: the taxonomy gives collections "suspension for
    non-payment and reinstatement after payment", which is about customers who
    were overdue. Here nothing was overdue: the invoice was paid before its due
    date, the billing portal shows it paid and no dunning went out. Sending a
    paying strategic customer to the dunning team would be wrong in tone and
    slow to fix, because collections cannot change a tenant's state.

    Why not billing_invoicing: billing's records are right (the invoice exists,
    is correct and is marked paid), so there is no invoice, charge or refund to
    fix. It is the defensible second choice, and would be right if the payment
    had not been recorded against the invoice at all.

    Why provisioning_entitlements: the fault is that the paid status never
    reached the entitlement service, which then suspended the tenant. Restoring
    a tenant after a purchase ("activation after a purchase") and repairing the
    billing-to-provisioning sync is that team's work.

    Why P1: every user of the tenant is locked out, which for the customer is
    production down; the strategic tier only makes it more pressing.

    The message itself does not carry the account: `account_id`,
    `account_tier`, `product` and `region` in `ticket` are what the helpdesk or
    enrichment attaches. The body is the message without its signature, as
    intake keeps it.
    """
    body = (
        "Hi team,\n\n"
        "Our whole workspace (tenant acct_900417, about 2,400 users) was "
        "suspended at 07:10 CET this morning with the banner 'Account suspended "
        "for non-payment'. That is wrong: invoice INV-2026-0412 for "
        "€184,000.00 was paid by bank transfer on 2 March, before its due date, "
        "and your own billing portal shows it as Paid (receipt attached). We "
        "have had no reminders and nothing is overdue.\n\n"
        "Our account manager thinks the payment never synced from billing to "
        "the account, so the system still treats the invoice as open. Whatever "
        "the cause, none of our staff can sign in and our customer-facing teams "
        "have stopped.\n\n"
        "Please lift the suspension now and fix the sync so this does not "
        "happen again. I am reachable all day on +49 30 5550 1234."
    )
    signature = "Regards,\nKatharina Wolf\nVP IT Operations, Meridian Logistics"
    subject = "URGENT: workspace suspended - invoice INV-2026-0412 is PAID"
    requester = "katharina.wolf@meridianlogi.de"
    message_id = "<20260309071842.4f2a@mail.meridianlogi.de>"
    payload = (
        f"From: Katharina Wolf <{requester}>\r\n"
        "To: Corvid Support <support@corvid.example>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 09 Mar 2026 07:18:42 +0100\r\n"
        f"Message-ID: {message_id}\r\n"
        "Importance: high\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="scenario-boundary"\r\n'
        "\r\n"
        "--scenario-boundary\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n\r\n{signature}\r\n"
        "--scenario-boundary\r\n"
        'Content-Type: application/pdf; name="receipt-INV-2026-0412.pdf"\r\n'
        'Content-Disposition: attachment; filename="receipt-INV-2026-0412.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{_RECEIPT_PDF_BASE64}\r\n"
        "--scenario-boundary--\r\n"
    )
    ticket = {
        "id": "scn-strategic-suspended-0001",
        "channel": "email",
        "subject": subject,
        "body": body,
        "requester": requester,
        "account_id": "acct_900417",
        "account_tier": "strategic",
        "product": "Workspace",
        "region": "eu-central-1",
        "created_at": "2026-03-09T06:18:42+00:00",
        "attachments": [
            {
                "filename": "receipt-INV-2026-0412.pdf",
                "content_type": "application/pdf",
                "size_bytes": len(base64.b64decode(_RECEIPT_PDF_BASE64)),
            }
        ],
        "metadata": {"message_id": message_id},
    }
    return Scenario(
        name="strategic_suspended_despite_payment",
        channel="email",
        payload=payload,
        ticket=ticket,
        expected_queue="provisioning_entitlements",
        expected_priority="P1",
        note=(
            "Paid invoice, tenant suspended anyway: a billing-to-provisioning "
            "sync failure, not non-payment. Provisioning restores the tenant; "
            "collections has nothing to collect."
        ),
    )


def provisioning_failed_after_expansion() -> Scenario:
    """SCIM pushes and seat assignment fail after an expansion to 350 seats.

    Expected queue: provisioning_entitlements, P2.

    SCIM user sync belongs to identity_access, but here SCIM is only where the
    failure shows: every rejected user fails with "seat limit reached (200 of
    200)", and assigning a seat by hand in the admin console fails the same
    way. The identity provider's configuration works (the first 200 users
    sync); what is missing is the entitlement for the 150 seats bought in the
    expansion, which is provisioning's ("seats, licences ... activation after
    a purchase"). The customer picked the "Login and access" topic in the
    portal, so the router has to read the text rather than trust the form.

    Why P2: onboarding of 150 people is blocked with no workaround, while the
    existing 200 users keep working, so production is not down.
    """
    description = (
        "Last week we expanded our contract from 200 to 350 seats (order "
        "SO-771204, countersigned on 9 June). Since then every new user that "
        "Okta pushes to you over SCIM is rejected. Our Okta provisioning log "
        "shows 150 errors like: 409 'seat limit reached (200 of 200 "
        "assigned)'. Assigning a seat by hand in the admin console fails too, "
        "with 'No licence available'. The admin console still shows Licences: "
        "200, although the invoice for the 150 extra seats has arrived.\n\n"
        "The existing 200 users are fine. The 150 new starters begin on "
        "Monday and cannot be onboarded until this is fixed."
    )
    subject = "New users fail to provision after expanding to 350 seats"
    attachments = [
        {
            "filename": "okta-scim-errors.csv",
            "content_type": "text/csv",
            "size_bytes": 18_944,
        }
    ]
    payload = {
        "subject": subject,
        "description": description,
        "email": "daniel.okafor@harborhealth.com",
        "category": "Login and access",
        "product": "Workspace",
        "account": {"id": "acct_412908", "tier": "enterprise"},
        "region": "us-east-1",
        "priority_requested": "high",
        "submitted_at": "2026-06-17T13:42:05Z",
        "attachments": attachments,
        "source": "support-portal",
        "impact": "Several teams",
    }
    ticket = {
        "id": "scn-expansion-provisioning-0001",
        "channel": "portal",
        "subject": subject,
        "body": description,
        "requester": "daniel.okafor@harborhealth.com",
        "account_id": "acct_412908",
        "account_tier": "enterprise",
        "product": "Workspace",
        "region": "us-east-1",
        "created_at": "2026-06-17T13:42:05+00:00",
        "source_system": "support-portal",
        "attachments": attachments,
        "metadata": {"category": "Login and access", "impact": "Several teams"},
    }
    return Scenario(
        name="provisioning_failed_after_expansion",
        channel="portal",
        payload=payload,
        ticket=ticket,
        expected_queue="provisioning_entitlements",
        expected_priority="P2",
        note=(
            "SCIM errors are the symptom; the 150 seats from the 200 -> 350 "
            "expansion were never applied, so the fix is the entitlement."
        ),
    )


def sev1_outage_alert() -> Scenario:
    """An Alertmanager webhook for a production API gateway outage.

    Expected queue: platform_operations, P1: a critical alert for a
    customer-facing service in production is an outage, which the taxonomy
    gives to platform operations at the "production down" priority.
    """
    labels = {
        "alertname": "ApiGatewayDown",
        "severity": "critical",
        "service": "api-gateway",
        "env": "production",
        "region": "eu-west-1",
    }
    annotations = {
        "summary": "api-gateway unavailable in eu-west-1: all requests failing",
        "description": (
            "No healthy upstreams behind api-gateway in eu-west-1 for 5 minutes; "
            "100% of requests return 503. The public API and the web app are "
            "down for every tenant in the region."
        ),
        "runbook_url": "https://runbooks.corvid.example/sre/api-gateway-down",
    }
    starts_at = "2026-04-14T02:07:31Z"
    fingerprint = "8c1f4e2a9b7d3c60"
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="ApiGatewayDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "switchboard",
        "groupLabels": {"alertname": "ApiGatewayDown"},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.corvid.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.corvid.example:9090/graph",
                "fingerprint": fingerprint,
            }
        ],
    }
    ticket = {
        "id": f"alertmanager-{fingerprint}",
        "channel": "alert",
        "subject": f"{labels['alertname']}: {annotations['summary']}",
        "body": annotations["description"],
        "requester": None,
        "account_id": None,
        "account_tier": None,
        "product": None,
        "region": "eu-west-1",
        "severity": "critical",
        "service": "api-gateway",
        "created_at": "2026-04-14T02:07:31+00:00",
        "source_system": "alertmanager",
        "metadata": {
            "status": "firing",
            "fingerprint": fingerprint,
            "labels": labels,
            "runbook_url": annotations["runbook_url"],
        },
    }
    return Scenario(
        name="sev1_outage_alert",
        channel="alert",
        payload=payload,
        ticket=ticket,
        expected_queue="platform_operations",
        expected_priority="P1",
        note="Critical production alert for api-gateway: an outage, sev-1.",
    )


@dataclass(frozen=True)
class ContextScenario:
    """A ticket whose queue depends on its account's context, not its text.

    The account's facts are in the embedded context store's seed
    (`features.context_seed`); `expected_effect` is what the context rule
    must do to whatever the model or the fallback rules proposed.
    """

    name: str
    ticket: dict[str, Any]
    expected_queue: str
    expected_rule_id: str
    expected_effect: str
    expected_escalation: str = "none"
    expected_notify: tuple[str, ...] = ()
    expected_priority: str | None = None
    note: str = ""


def context_scenarios() -> dict[str, ContextScenario]:
    """The context scenarios, each a fresh copy a test may change."""
    suspended = strategic_suspended_despite_payment().ticket
    expansion = provisioning_failed_after_expansion().ticket
    return {
        scenario.name: scenario
        for scenario in (
            ContextScenario(
                name="strategic_suspended_despite_payment",
                ticket=suspended,
                expected_queue="platform_operations",
                expected_rule_id="context-paid-but-suspended",
                expected_effect="override",
                expected_escalation="executive",
                expected_priority="P1",
                note=(
                    "Payment cleared, entitlement suspended, identity sync error: "
                    "the sync between billing and entitlements broke."
                ),
            ),
            ContextScenario(
                name="expansion_seat_mismatch",
                ticket=expansion,
                expected_queue="provisioning_entitlements",
                expected_rule_id="context-expansion-seat-mismatch",
                expected_effect="redirect",
                note="Order SO-771204 activated for 350 seats; 200 entitled.",
            ),
            ContextScenario(
                name="expansion_order_not_activated",
                ticket=_expansion_ticket(
                    "scn-expansion-order-0001", "acct_500101", "Lumen Freight"
                ),
                expected_queue="revenue_operations",
                expected_rule_id="context-expansion-order-not-activated",
                expected_effect="redirect",
                note="The expansion order is booked but was never activated.",
            ),
            ContextScenario(
                name="expansion_identity_sync_failure",
                ticket=_expansion_ticket(
                    "scn-expansion-identity-0001", "acct_500102", "Ostara Bank"
                ),
                expected_queue="identity_access",
                expected_rule_id="context-expansion-identity-sync",
                expected_effect="redirect",
                note="All 300 seats are entitled; the SCIM sync itself fails.",
            ),
            ContextScenario(
                name="expansion_unpaid_invoice_hold",
                ticket=_expansion_ticket(
                    "scn-expansion-hold-0001", "acct_500103", "Pinecrest Retail"
                ),
                expected_queue="collections",
                expected_rule_id="context-expansion-credit-hold",
                expected_effect="redirect",
                note="An invoice 45 days overdue put the account on credit hold.",
            ),
            ContextScenario(
                name="strategic_production_impact",
                ticket=_production_impact_ticket(),
                expected_queue="platform_operations",
                expected_rule_id="",
                expected_effect="",
                expected_escalation="executive",
                expected_notify=("executive-bridge",),
                expected_priority="P1",
                note=(
                    "A strategic account during an open production incident on "
                    "its product and region."
                ),
            ),
        )
    }


def _expansion_ticket(ticket_id: str, account_id: str, company: str) -> dict[str, Any]:
    body = (
        f"We are {company}. Last week we added seats to our contract, but the "
        "new users cannot be provisioned: every user our identity provider "
        "pushes over SCIM is rejected and assigning a licence by hand fails. "
        "Our onboarding is blocked until this works."
    )
    return {
        "id": ticket_id,
        "channel": "portal",
        "subject": "New users fail to provision after our seat expansion",
        "body": body,
        "requester": "it-admin@example.com",
        "account_id": account_id,
        "product": "Workspace",
        "created_at": "2026-06-17T13:42:05+00:00",
        "source_system": "support-portal",
    }


def _production_impact_ticket() -> dict[str, Any]:
    return {
        "id": "scn-strategic-impact-0001",
        "channel": "email",
        "subject": "App very slow and timing out for our control room",
        "body": (
            "Since 09:00 the web app is not loading for our control room staff "
            "and saving a shift roster times out with an error. This stops our "
            "operations right now; please treat it urgently."
        ),
        "requester": "ops.lead@aurora-energy.example",
        "account_id": "acct_500104",
        "product": "Workspace",
        "region": "eu-west-1",
        "created_at": "2026-04-14T08:05:00+00:00",
    }


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        strategic_suspended_despite_payment(),
        provisioning_failed_after_expansion(),
        sev1_outage_alert(),
    )
}
