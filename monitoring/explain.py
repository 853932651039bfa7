"""Why one stored decision went where it went, for a governance reviewer.

`explain_decision` reads a decision from the store and puts beside it what a
reviewer needs to judge it: the rule that chose the queue (with its owner),
or the model's top queues against that version's thresholds and the
abstention signal; the drift state in force when it was made; and, when the
ticket text is supplied, the nearest labelled training tickets.

The store keeps only a hash of the ticket text, so similarity and nearest
examples need the caller to supply the text (`TicketText`); it is checked
against the stored hash and a mismatch is reported, not refused.

Rules live in the serving layer, which this package must not import: the
caller passes what it knows about each rule as `RuleInfo`s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.errors import InvalidInputError, RegistryError, SwitchboardError
from features.settings import Settings
from features.text import build_text
from monitoring.store import DecisionStore, hash_text

if TYPE_CHECKING:
    import numpy as np

    from training.bundle import ModelBundle

log = logging.getLogger(__name__)

DRIFT_STATE_EVENT = "drift_state"
DRIFT_CHECK_EVENT = "drift_check"
NEAREST_EXAMPLES = 3
# Stored probabilities are rounded by nothing, but the text given may have
# been re-normalised; a recomputed top-1 further off than this is reported.
_SCORE_TOLERANCE = 1e-3
_CHECK_FIELDS = (
    "checked_at",
    "model_version",
    "is_drift",
    "reasons",
    "drifted_column_share",
    "embedding_method",
    "embedding_score",
    "low_confidence_rate",
    "reference_low_confidence_rate",
    "window_rows",
)

# (bundle, texts) -> L2-normalised embeddings by that bundle's encoder.
Embed = Callable[["ModelBundle", list[str]], "np.ndarray"]
LoadBundle = Callable[[str], "ModelBundle"]


class DecisionNotFoundError(SwitchboardError):
    """No decision with the asked id is in the store."""


@dataclass(frozen=True)
class RuleInfo:
    """What the rule set says about one rule, as of the current rules file."""

    rule_id: str
    section: str
    description: str
    owner: str


@dataclass(frozen=True)
class RuleSet:
    """The rule set the caller loaded: its version and its rules by id."""

    version: str
    rules: Mapping[str, RuleInfo]


@dataclass(frozen=True)
class TicketText:
    """The ticket's text as the router saw it.

    Attributes:
        hashed: the exact string whose sha256 the store kept
            (subject, a newline, body).
        encoded: what the encoder was given (`features.text.build_text`).
        source: where the text came from, for the report ("--ticket FILE").
    """

    hashed: str
    encoded: str
    source: str

    @classmethod
    def from_ticket_file(cls, path: Path | str) -> TicketText:
        """The text of a ticket JSON file (a `Ticket`, channel defaulting to api).

        Raises:
            InvalidInputError: the file is missing or not JSON.
            InvalidTicketError: the JSON is not a valid ticket.
        """
        from features.errors import FieldProblem
        from features.intake import normalize_api

        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            problem = FieldProblem("ticket", f"cannot read {path} as JSON: {err}")
            raise InvalidInputError([problem], subject="ticket file") from err
        ticket = normalize_api(payload)
        return cls(
            hashed=f"{ticket.subject}\n{ticket.body}",
            encoded=build_text(ticket.subject, ticket.body).text,
            source=f"ticket file {path}",
        )

    @classmethod
    def from_text(cls, text: str) -> TicketText:
        """Text given directly: subject, a newline, then the body."""
        subject, _, body = text.partition("\n")
        return cls(hashed=text, encoded=build_text(subject, body).text, source="--text")


@dataclass
class Explanation:
    """Everything `switchboard explain` shows; `to_dict` is its JSON."""

    decision: dict[str, Any]
    verdict: str
    rule: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    service_state: dict[str, Any] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    nearest_examples: list[dict[str, Any]] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_json_default))


def explain_decision(
    store: DecisionStore,
    decision_id: str,
    *,
    rule_set: RuleSet | None = None,
    ticket_text: TicketText | None = None,
    load_bundle: LoadBundle | None = None,
    embed: Embed | None = None,
) -> Explanation:
    """Explain one stored decision.

    Args:
        store: the decision store holding the decision and the drift events.
        decision_id: the decision to explain.
        rule_set: the current rule set, to name the rule's owner and
            description; None leaves them out.
        ticket_text: the ticket's text, for similarity and nearest examples.
        load_bundle: model version -> bundle; None skips everything that
            needs the model (thresholds, nearest examples).
        embed: (bundle, texts) -> embeddings by the bundle's encoder;
            needed with `ticket_text`.

    Raises:
        DecisionNotFoundError: no decision has this id.
    """
    row = store.get(decision_id)
    if row is None:
        raise DecisionNotFoundError(
            f"no decision {decision_id!r} in the decision store {store.url}; "
            "decision ids are in the API responses and in batch and stream "
            "outputs (check SWITCHBOARD_HOME or SWITCHBOARD_DATABASE_URL)"
        )
    decision = _public_fields(row)
    explanation = Explanation(decision=decision, verdict=_verdict(decision))
    explanation.rule = _explain_rule(decision, rule_set, explanation.warnings)
    explanation.service_state = _service_state(store, decision["decided_at"])
    explanation.text = _check_text(row.get("text_hash"), ticket_text)
    if explanation.text.get("matches_stored_hash") is False:
        explanation.warnings.append(
            "the text given does not hash to the stored text_hash: it is not "
            "the text this decision was made on, so similarity and nearest "
            "examples below describe a different text"
        )

    bundle = _bundle_for(decision, load_bundle, explanation.warnings)
    if bundle is not None:
        explanation.model = _explain_model(decision, bundle)
        if ticket_text is not None and embed is not None:
            _add_text_evidence(explanation, bundle, ticket_text, embed)
    if ticket_text is None:
        explanation.text["note"] = (
            "nearest training examples and similarity need the ticket text, "
            "which the store keeps only as a hash: pass --ticket FILE or --text"
        )
    log.info(
        "decision explained",
        extra={
            "decision_id": decision_id,
            "mode": decision["mode"],
            "with_text": ticket_text is not None,
        },
    )
    return explanation


def registry_bundles(settings: Settings) -> LoadBundle:
    """Bundles of model versions from the MLflow registry these settings use."""

    def load(version: str) -> ModelBundle:
        from training.registry import load_bundle

        return load_bundle(settings, version)[1]

    return load


def bundle_encoder(settings: Settings) -> Embed:
    """Embeds with each bundle's own encoder, loaded once per encoder identity."""
    from features.encoder import Encoder

    loaded: dict[str, Encoder] = {}

    def embed(bundle: ModelBundle, texts: list[str]) -> np.ndarray:
        if bundle.encoder_identity not in loaded:
            loaded[bundle.encoder_identity] = Encoder(
                bundle.encoder,
                batch_size=settings.encode_batch_size,
                backend=bundle.encoder_backend,
                export_dir=settings.encoder_export_dir,
            )
        return loaded[bundle.encoder_identity].encode(texts)

    return embed


def _public_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    hidden = {"prev_hash", "record_hash"}
    return {key: value for key, value in row.items() if key not in hidden}


def _verdict(decision: Mapping[str, Any]) -> str:
    mode, queue = decision["mode"], decision["queue"]
    rule = f"rule {decision['rule_id']}" if decision.get("rule_id") else "rules"
    if mode == "override":
        return f"override {rule} sent it to {queue}"
    if mode == "rules":
        reason = decision.get("fallback_reason") or "not recorded"
        return f"fallback {rule} sent it to {queue} (fallback reason: {reason})"
    if mode == "suggest":
        return f"the model suggested {queue} for a person to confirm"
    return f"the model routed it to {queue}"


def _explain_rule(
    decision: Mapping[str, Any], rule_set: RuleSet | None, warnings: list[str]
) -> dict[str, Any] | None:
    rule_id = decision.get("rule_id")
    if not rule_id:
        return None
    found: dict[str, Any] = {
        "rule_id": rule_id,
        "rule_set_version": decision["rule_set_version"],
    }
    if rule_set is None:
        return found
    found["current_rule_set_version"] = rule_set.version
    if rule_set.version != decision["rule_set_version"]:
        warnings.append(
            f"the rules file changed since this decision (rule set "
            f"{decision['rule_set_version']} then, {rule_set.version} now): the "
            "description and owner shown are today's"
        )
    info = rule_set.rules.get(rule_id)
    if info is None:
        warnings.append(f"rule {rule_id} is not in the current rules file")
        return found
    return {**found, **asdict(info)}


def _service_state(store: DecisionStore, decided_at: datetime) -> dict[str, Any]:
    # Known limitation: all events of a kind are read and filtered here; a
    # store with years of drift checks would want a query bounded by time.
    states = [e for e in store.events(DRIFT_STATE_EVENT) if e["at"] <= decided_at]
    checks = [e for e in store.events(DRIFT_CHECK_EVENT) if e["at"] <= decided_at]
    if not states:
        state = "model"
        note = (
            "no drift state change recorded before this decision: the service "
            "was in its starting state (model)"
        )
        since = None
    else:
        last = states[-1]
        state = str(last["payload"].get("state") or "unknown")
        since = last["at"]
        note = f"state {state} since {since.isoformat()}"
    last_check = None
    if checks:
        payload = checks[-1]["payload"]
        last_check = {name: payload.get(name) for name in _CHECK_FIELDS}
        last_check["at"] = checks[-1]["at"]
    return {
        "state": state,
        "since": since,
        "note": note,
        "last_change": states[-1]["payload"] if states else None,
        "last_check": last_check,
    }


def _check_text(
    stored_hash: str | None, ticket_text: TicketText | None
) -> dict[str, Any]:
    if ticket_text is None:
        return {"provided": False, "stored_hash": stored_hash}
    given = hash_text(ticket_text.hashed)
    matches = None if stored_hash is None else given == stored_hash
    return {
        "provided": True,
        "source": ticket_text.source,
        "stored_hash": stored_hash,
        "given_hash": given,
        "matches_stored_hash": matches,
    }


def _bundle_for(
    decision: Mapping[str, Any],
    load_bundle: LoadBundle | None,
    warnings: list[str],
) -> ModelBundle | None:
    version = decision.get("model_version")
    if not version or load_bundle is None:
        return None
    try:
        return load_bundle(str(version))
    except (RegistryError, OSError) as err:
        log.warning(
            "model version of a decision not loadable",
            extra={"model_version": version, "error": type(err).__name__},
        )
        warnings.append(f"model version {version} could not be loaded: {err}")
        return None


def _explain_model(decision: Mapping[str, Any], bundle: ModelBundle) -> dict[str, Any]:
    thresholds = bundle.thresholds
    top_queues = []
    for score in decision.get("top_queues") or []:
        rule = thresholds.for_queue(score["queue"])
        top_queues.append(
            {
                "queue": score["queue"],
                "probability": score["probability"],
                "threshold": rule.threshold,
                "routable": rule.routable,
                "threshold_source": rule.source,
                "meets_threshold": rule.routable
                and score["probability"] >= rule.threshold,
            }
        )
    return {
        "model_name": decision.get("model_name"),
        "model_version": decision.get("model_version"),
        "confidence": decision.get("confidence"),
        "top_queues": top_queues,
        "target_precision": thresholds.target_precision,
        "min_similarity": thresholds.min_similarity,
        # Filled in from the text, when given: the store does not keep it.
        "similarity": None,
        "is_out_of_scope": None,
    }


def _add_text_evidence(
    explanation: Explanation,
    bundle: ModelBundle,
    ticket_text: TicketText,
    embed: Embed,
) -> None:
    embeddings = embed(bundle, [ticket_text.encoded])
    predictions = bundle.predict(embeddings)
    similarity = float(predictions.similarity[0])
    model = explanation.model or {}
    model["similarity"] = similarity
    model["is_out_of_scope"] = bundle.thresholds.is_out_of_scope(similarity)
    explanation.nearest_examples = bundle.nearest_examples(
        embeddings[0], k=NEAREST_EXAMPLES
    )

    stored = explanation.decision.get("confidence")
    recomputed = float(predictions.confidence[0])
    if stored is not None and abs(stored - recomputed) > _SCORE_TOLERANCE:
        explanation.warnings.append(
            f"the model scores this text at {recomputed:.4f}, not the stored "
            f"{stored:.4f}: the text may not be the one that was routed"
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
