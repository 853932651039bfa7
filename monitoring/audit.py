"""Verify the decision store's hash chain and say where it was tampered with.

`DecisionStore.append` links every row to the one before it (see
`monitoring.store.chain_hash`). Someone with write access to the database can
drop the append-only triggers and edit rows; `verify_chain` recomputes every
hash and every link, in seq order, and reports each row where the chain does
not hold:

- changed: the row's content no longer matches its own record_hash;
- removed: the row's prev_hash is not the record_hash of any row before it,
  or seqs are missing just before it;
- inserted: a later row links past this one to an earlier row, and nothing
  links to this one, so it is not part of the chain;
- unchained: a row without prev_hash or record_hash after the chain began
  (the database refuses those, so it was written around the store).

Rows stored before migration 0002 have no hashes. As long as they all come
before the first chained row they are counted in `unchained_rows`, not
reported: the chain cannot vouch for them, but they are not evidence of
tampering either. The first chained row must then link to `CHAIN_GENESIS`.

Known limitation: the chain proves the rows agree with each other, not who
wrote them. Someone who deletes the newest rows, appends rows with correctly
computed hashes, or rewrites every row from some point on leaves a chain that
verifies. Keep `head_seq` and `head_hash` of each report somewhere the
database's users cannot write (a ticket, a signed export), and check that a
later report still has that hash at that seq.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from monitoring.store import CHAIN_GENESIS, DecisionStore, chain_hash

log = logging.getLogger(__name__)

ProblemKind = Literal["changed", "removed", "inserted", "unchained"]

# How many recent rows a link may point back to and still be recognised as
# skipping rows (an insertion). A link to an older row reads as "removed";
# the row is still reported, only under the other kind.
_LINK_WINDOW = 10_000
# Seq shifts tried when a row's hash does not match, to tell a row renumbered
# around an insertion or removal from one whose content was edited.
_SEQ_SHIFTS = (-1, 1, -2, 2, -3, 3)


@dataclass(frozen=True)
class ChainProblem:
    """One place where the chain does not hold.

    Attributes:
        kind: "changed", "removed", "inserted" or "unchained".
        seq: The row where it shows. For "removed", the first row after the
            missing ones.
        decision_id: That row's decision_id.
        detail: What exactly does not match, for the reviewer.
    """

    kind: ProblemKind
    seq: int
    decision_id: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seq": self.seq,
            "decision_id": self.decision_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class AuditReport:
    """What `verify_chain` found.

    Attributes:
        rows_checked: Rows read, chained or not.
        unchained_rows: Rows from before migration 0002, with no hashes to
            check; not problems (see the module docstring).
        head_seq: seq of the newest chained row, None if there is none.
        head_hash: Its record_hash: keep it outside the database to detect
            later truncation or rewriting.
        problems: Everything that does not hold, by seq.
    """

    rows_checked: int
    unchained_rows: int
    head_seq: int | None
    head_hash: str | None
    problems: tuple[ChainProblem, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every chained row and every link checks out."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable values, `ok` included."""
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "unchained_rows": self.unchained_rows,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": [problem.to_dict() for problem in self.problems],
        }


def verify_chain(store: DecisionStore, *, batch_size: int = 1000) -> AuditReport:
    """Recompute every hash and link of the store's chain, oldest row first.

    Reads in pages of `batch_size` rows, each its own short transaction, so
    appends carry on meanwhile; rows appended during the walk are checked
    too if they are reached.

    Raises:
        StoreError: the store could not be read.
    """
    walk = _ChainWalk()
    for row in store.iter_decisions(batch_size=batch_size):
        walk.check(row)
    report = walk.report()

    extra = {
        "rows_checked": report.rows_checked,
        "problems": len(report.problems),
        "head_seq": report.head_seq,
        "store": store.url,
    }
    if report.ok:
        log.info("decision chain verified", extra=extra)
    else:
        first = report.problems[0]
        extra |= {"first_seq": first.seq, "first_kind": first.kind}
        log.warning("decision chain does not verify", extra=extra)
    return report


@dataclass
class _Link:
    seq: int
    decision_id: str
    record_hash: str


@dataclass
class _Skipped:
    """A row some later row linked past; inserted unless something links to it."""

    decision_id: str
    skipped_by: int
    links_to: int
    is_linked: bool = False


@dataclass
class _ChainWalk:
    """State carried from one row to the next while walking in seq order."""

    rows_checked: int = 0
    unchained_rows: int = 0
    chain_start: int | None = None
    previous: _Link | None = None
    # The newest chained rows, oldest first, and the same rows by hash.
    recent: deque[_Link] = field(default_factory=deque)
    by_hash: dict[str, _Link] = field(default_factory=dict)
    skipped: dict[int, _Skipped] = field(default_factory=dict)
    problems: list[ChainProblem] = field(default_factory=list)
    seq_shift: int | None = None

    def check(self, row: Mapping[str, Any]) -> None:
        self.rows_checked += 1
        seq, decision_id = int(row["seq"]), str(row["decision_id"])
        prev_hash, record_hash = row["prev_hash"], row["record_hash"]
        if prev_hash is None or record_hash is None:
            self._check_unchained(seq, decision_id, prev_hash, record_hash)
            return
        if self.chain_start is None:
            self.chain_start = seq

        self._check_content(row, seq, decision_id)
        self._check_link(seq, decision_id, prev_hash)
        self._remember(_Link(seq, decision_id, record_hash))

    def report(self) -> AuditReport:
        inserted = {
            seq: skipped
            for seq, skipped in self.skipped.items()
            if not skipped.is_linked
        }
        problems = [
            problem
            for problem in self.problems
            # Its own broken link is explained by it not belonging in the chain.
            if not (problem.kind == "removed" and problem.seq in inserted)
        ]
        for seq, skipped in inserted.items():
            detail = (
                f"not part of the chain: seq {skipped.skipped_by} links past it "
                f"to seq {skipped.links_to}, and no row links to it"
            )
            problems.append(ChainProblem("inserted", seq, skipped.decision_id, detail))
        problems.sort(key=lambda problem: (problem.seq, problem.kind))

        head = self.recent[-1] if self.recent else None
        return AuditReport(
            rows_checked=self.rows_checked,
            unchained_rows=self.unchained_rows,
            head_seq=head.seq if head else None,
            head_hash=head.record_hash if head else None,
            problems=tuple(problems),
        )

    def _check_unchained(
        self, seq: int, decision_id: str, prev_hash: Any, record_hash: Any
    ) -> None:
        # The store links the row after a hash-less one to CHAIN_GENESIS.
        self.previous = None
        if self.chain_start is None and prev_hash is None and record_hash is None:
            self.unchained_rows += 1
            return
        missing = "record_hash" if prev_hash is not None else "prev_hash"
        if prev_hash is None and record_hash is None:
            missing = "prev_hash and record_hash"
        detail = (
            f"no {missing}, after the chain began at seq {self.chain_start}: "
            "written around the store, or its hashes were erased"
        )
        self._add("unchained", seq, decision_id, detail)

    def _check_content(
        self, row: Mapping[str, Any], seq: int, decision_id: str
    ) -> None:
        prev_hash, record_hash = row["prev_hash"], row["record_hash"]
        if chain_hash(prev_hash, row) == record_hash:
            return

        original_seq = self._original_seq(row)
        if original_seq is None:
            detail = "content does not match its record_hash: the row was edited"
        else:
            detail = (
                f"moved: its record_hash is for seq {original_seq}, so the rows "
                "were renumbered (around an insertion or a removal)"
            )
        self._add("changed", seq, decision_id, detail)

    def _original_seq(self, row: Mapping[str, Any]) -> int | None:
        seq = int(row["seq"])
        shifts = ((self.seq_shift,) if self.seq_shift else ()) + _SEQ_SHIFTS
        for shift in shifts:
            candidate = {**row, "seq": seq + shift}
            if chain_hash(row["prev_hash"], candidate) == row["record_hash"]:
                self.seq_shift = shift
                return seq + shift
        return None

    def _check_link(self, seq: int, decision_id: str, prev_hash: str) -> None:
        previous = self.previous
        expected = previous.record_hash if previous else CHAIN_GENESIS
        if prev_hash == expected:
            self._mark_linked(previous)
            self._check_gap(seq, decision_id)
            return

        target = self.by_hash.get(prev_hash)
        if target is not None:
            self._mark_linked(target)
            self._skip_back_to(target, seq)
            return

        detail = "prev_hash matches no row before it"
        gap = self._missing_seqs(seq)
        if gap:
            detail = f"{gap} missing, and {detail}"
        elif previous is not None:
            detail = (
                f"{detail}: rows before it were removed and the rest renumbered, "
                f"or seq {previous.seq} was rewritten with a recomputed hash"
            )
        self._add("removed", seq, decision_id, detail)

    def _check_gap(self, seq: int, decision_id: str) -> None:
        gap = self._missing_seqs(seq)
        if gap:
            detail = f"{gap} missing; the rows after the gap were re-linked"
            self._add("removed", seq, decision_id, detail)

    def _missing_seqs(self, seq: int) -> str | None:
        previous = self.previous
        if previous is None or seq == previous.seq + 1:
            return None
        first, last = previous.seq + 1, seq - 1
        return f"seq {first}" if first == last else f"seq {first}-{last}"

    def _mark_linked(self, target: _Link | None) -> None:
        if target is not None and target.seq in self.skipped:
            self.skipped[target.seq].is_linked = True

    def _skip_back_to(self, target: _Link, seq: int) -> None:
        for link in reversed(self.recent):
            if link.seq <= target.seq:
                return
            self.skipped.setdefault(
                link.seq,
                _Skipped(link.decision_id, skipped_by=seq, links_to=target.seq),
            )

    def _remember(self, link: _Link) -> None:
        self.previous = link
        self.recent.append(link)
        self.by_hash[link.record_hash] = link
        if len(self.recent) > _LINK_WINDOW:
            oldest = self.recent.popleft()
            if self.by_hash.get(oldest.record_hash) is oldest:
                del self.by_hash[oldest.record_hash]

    def _add(self, kind: ProblemKind, seq: int, decision_id: str, detail: str) -> None:
        self.problems.append(ChainProblem(kind, seq, decision_id, detail))
