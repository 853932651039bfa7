"""Turning decisions into decision-store records, the same way on every path."""

from __future__ import annotations

from collections.abc import Sequence

from features.schema import Ticket
from monitoring.store import DecisionRecord, RoutingPath
from serving.decision import Decision


def records_for(
    tickets: Sequence[Ticket],
    decisions: Sequence[Decision],
    request_id: str,
    path: RoutingPath,
) -> list[DecisionRecord]:
    """One record per decision; only a hash of the ticket text is kept."""
    return [
        DecisionRecord.from_decision(
            decision,
            request_id=request_id,
            channel=ticket.channel.value,
            path=path,
            text=f"{ticket.subject}\n{ticket.body}",
        )
        for ticket, decision in zip(tickets, decisions, strict=True)
    ]
