"""The rules engine: governed rule sets written in CEL and kept in YAML.

A rule file has five ordered lists, each "first match wins":

- `override`: always win over the model (security incidents, legal holds,
  sev-1 alerts);
- `fallback`: decide whenever the model may not, ending in a catch-all;
- `context`: read the enrichment once a queue is proposed (by the model or
  the fallback rules) and confirm, override or redirect it;
- `escalation.priority_rules`: set the priority when the routing rule did not;
- `escalation.rules`: choose the escalation path once queue and priority are
  known.

Conditions are CEL expressions compiled once when the file is loaded. They see
`ticket` (the ticket as a map, absent fields as empty strings, plus lowercased
copies: `ticket.text` is the lowercased subject and body, `ticket.lower.<field>`
any string field lowercased), `context` (enrichment, see
`features.context.Context.rule_view`, under `context_defaults` from the
file) and `decision`: for the context list the proposed `queue` and `mode`,
for the escalation lists `queue` and `priority`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import celpy
import lark
import re2
from celpy.celparser import CELParseError, CELParser
from celpy.evaluation import TranspilerTree, base_functions
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_jsonable_python

from features.config import bundled_config_path, file_hash, load_yaml_model
from features.context import SOURCES, Context
from features.errors import ConfigError
from features.schema import Channel, Ticket
from features.taxonomy import Taxonomy, load_taxonomy
from serving.decision import ESCALATION_LEVELS, Escalation

log = logging.getLogger(__name__)

RuleSection = Literal["override", "fallback", "context"]
ContextRuleEffect = Literal["confirm", "override", "redirect"]

CATCH_ALL_CONDITION = "true"
ACTIVATION_ROOTS = frozenset({"ticket", "context", "decision"})
# CEL macros are parsed as function calls but are not in celpy's function table.
_MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "map", "filter"})
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KNOWN_FUNCTIONS = frozenset(base_functions) | _MACROS
_TICKET_STRING_FIELDS = (
    "id",
    "channel",
    "subject",
    "body",
    "requester",
    "account_id",
    "account_tier",
    "product",
    "region",
    "severity",
    "service",
    "source_system",
    "created_at",
)
# Context keys from before enrichment, and the source each now comes from.
_FLAT_CONTEXT_SOURCES = {"account_status": "entitlements", "account_tier": "crm"}
_MAX_ERROR_CHARS = 200
_QUOTED = re.compile(r"'([^']*)'")
# Loggers celpy writes evaluation details to (a filter on a logger does not
# reach its children, so each is named).
_CELPY_LOGGERS = (
    "celpy.Transpiler",
    "celpy.CompiledRunner",
    "celpy.celpy.evaluation",
)

# celpy's compiled runner keeps the activation of the running evaluation in a
# module global, so two threads evaluating at once would read each other's
# tickets. Evaluations are tens of microseconds; one lock costs nothing.
_EVALUATION_LOCK = threading.Lock()


class RuleAction(BaseModel):
    """What a matching rule does; which fields apply depends on its list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str | None = Field(
        default=None, description="Queue to route to (override and fallback rules)."
    )
    priority: str | None = Field(
        default=None,
        description="Priority (P1-P4); on a routing rule it wins over the defaults.",
    )
    escalation: Escalation | None = Field(
        default=None, description="Escalation path the ticket starts on."
    )
    reason: str | None = Field(
        default=None, description="Sentence for the reviewer, copied to decisions."
    )
    effect: ContextRuleEffect | None = Field(
        default=None,
        description=(
            "Context rules only. override: the queue wins whatever was proposed; "
            "redirect: moves a proposal the condition names (it must read "
            "decision.queue); confirm: records that the context agrees, no queue."
        ),
    )
    notify: tuple[str, ...] = Field(
        default=(),
        description="Notification targets (configs/notifications.yaml) to tell.",
    )


class Rule(BaseModel):
    """One governed rule: who owns it, when it matches, what it does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Stable id recorded on every decision the rule makes.",
    )
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1, description="Team accountable for the rule.")
    condition: str = Field(min_length=1, description="CEL expression, true to match.")
    action: RuleAction

    @property
    def is_catch_all(self) -> bool:
        return self.condition.strip() == CATCH_ALL_CONDITION


class PriorityDefaults(BaseModel):
    """Priority when neither the routing rule nor a priority rule set one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str = Field(default="P3", description="Used when nothing below applies.")
    by_queue: dict[str, str] = Field(default_factory=dict)
    by_channel: dict[Channel, str] = Field(
        default_factory=dict,
        description="When both queue and channel name one, the more urgent wins.",
    )


class EscalationSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority_defaults: PriorityDefaults = Field(default_factory=PriorityDefaults)
    priority_rules: list[Rule] = Field(default_factory=list)
    rules: list[Rule] = Field(
        default_factory=list,
        description="Most severe first; the routing rule's escalation, if more "
        "severe, still wins.",
    )


class RuleFile(BaseModel):
    """Validated content of `rules.yaml` (structure only; see `RuleBook`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context_defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Context keys rules may read without guarding with has(); "
        "enrichment values replace them.",
    )
    override: list[Rule] = Field(default_factory=list)
    fallback: list[Rule] = Field(min_length=1)
    context: list[Rule] = Field(default_factory=list)
    escalation: EscalationSection = Field(default_factory=EscalationSection)

    @model_validator(mode="after")
    def _check_rules(self) -> RuleFile:
        problems = [*self._duplicate_ids(), *self._catch_all_problems()]
        for section, index, rule in self.located_rules():
            problems.extend(_action_problems(section, index, rule))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def located_rules(self) -> Iterator[tuple[str, int, Rule]]:
        """Every rule with the YAML path of its list and its index there."""
        lists = {
            "override": self.override,
            "fallback": self.fallback,
            "context": self.context,
            "escalation.priority_rules": self.escalation.priority_rules,
            "escalation.rules": self.escalation.rules,
        }
        for where, rules in lists.items():
            for index, rule in enumerate(rules):
                yield where, index, rule

    def _duplicate_ids(self) -> list[str]:
        ids = [rule.id for _, _, rule in self.located_rules()]
        duplicates = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
        return [f"duplicate rule ids: {', '.join(duplicates)}"] if duplicates else []

    def _catch_all_problems(self) -> list[str]:
        problems = []
        last = self.fallback[-1]
        if not last.is_catch_all:
            problems.append(
                f"fallback rules must end in a catch-all rule whose condition is "
                f"`{CATCH_ALL_CONDITION}`; the last rule {last.id!r} has condition "
                f"{last.condition!r}"
            )
        for index, rule in enumerate(self.fallback[:-1]):
            if rule.is_catch_all:
                problems.append(
                    f"fallback.{index} rule {rule.id!r} is a catch-all but not the "
                    "last rule; the rules after it could never match"
                )
        return problems


@dataclass(frozen=True)
class RuleMatch:
    """A routing rule that matched a ticket."""

    rule_id: str
    section: RuleSection
    queue: str
    priority: str | None
    escalation: Escalation | None
    reason: str | None
    description: str
    effect: ContextRuleEffect | None = None
    notify: tuple[str, ...] = ()
    sources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ContextMatch:
    """What the context list made of a proposal, and the sources it read.

    `sources` are the enrichment sources the context rules evaluated up to
    and including the match read: a decision rests on those facts whether a
    rule matched or not, since a change to one could make a rule match.
    """

    match: RuleMatch | None
    sources: frozenset[str]


class RuleInput:
    """A ticket and its context converted once for every rule list.

    Build it with `RuleBook.prepare` when one ticket meets several lists (the
    policy does): conversion costs about as much as evaluating two rules.
    """

    __slots__ = ("activation", "values")

    def __init__(
        self, values: dict[str, Any], activation: dict[str, Any] | None = None
    ) -> None:
        self.values = values
        self.activation = activation or {
            name: celpy.json_to_cel(value) for name, value in values.items()
        }

    def with_decision(self, queue: str, priority: str, mode: str = "") -> RuleInput:
        decision = {"queue": queue, "priority": priority, "mode": mode}
        return RuleInput(
            {**self.values, "decision": decision},
            {**self.activation, "decision": celpy.json_to_cel(decision)},
        )


@dataclass(frozen=True)
class _PreCheck:
    """One `&&` operand of a condition that Python can test without celpy.

    When the operand is false the whole condition is false (CEL's `false &&
    x` is false even when x is an error), so the rule is skipped without
    evaluating it. Most keyword rules miss most tickets; this is what keeps
    a full pass of the rule set well under a millisecond.
    """

    path: tuple[str, ...]
    pattern: Any = None  # a compiled re2 pattern, same engine as matches()
    allowed: frozenset[str] | None = None

    def rules_out(self, values: Mapping[str, Any]) -> bool:
        value: Any = values
        for name in self.path:
            if not isinstance(value, Mapping) or name not in value:
                return False  # leave the error, and its warning, to celpy
            value = value[name]
        if not isinstance(value, str):
            return False
        if self.pattern is not None:
            return self.pattern.search(value) is None
        return self.allowed is not None and value not in self.allowed


@dataclass(frozen=True)
class _CompiledRule:
    rule: Rule
    program: celpy.Runner
    is_catch_all: bool
    pre_checks: tuple[_PreCheck, ...] = ()
    sources: frozenset[str] = frozenset()


class RuleBook:
    """A loaded, validated and compiled rule set.

    Build it with `load_rules`. The book is immutable and safe to share
    between threads; it pickles by recompiling from its validated content,
    so it can travel to Ray workers.
    """

    def __init__(
        self, rule_file: RuleFile, *, taxonomy: Taxonomy, version: str, source: str
    ) -> None:
        """Check the rules against the taxonomy and compile every condition.

        Raises:
            ConfigError: naming `source`, the rule id and the problem.
        """
        _check_taxonomy(rule_file, taxonomy, source)

        self._rule_file = rule_file
        self._taxonomy = taxonomy
        self._version = version
        self._source = source
        # Every Context key is present even when a ticket was not enriched,
        # so rules never need has() for them; the file's defaults come on top.
        self._context_defaults = {
            **Context().rule_view(),
            **to_jsonable_python(rule_file.context_defaults),
        }
        self._priority_order = {p: rank for rank, p in enumerate(taxonomy.priority_ids)}

        environment = _cel_environment()
        probe = _probe_input(self._context_defaults, taxonomy)
        compiled = {
            (where, index): _compile_rule(
                environment, rule, probe, f"{source}: {where}.{index}"
            )
            for where, index, rule in rule_file.located_rules()
        }
        self._override = self._list_of(compiled, "override")
        self._fallback = self._list_of(compiled, "fallback")
        self._context = self._list_of(compiled, "context")
        self._priority_rules = self._list_of(compiled, "escalation.priority_rules")
        self._escalation_rules = self._list_of(compiled, "escalation.rules")
        self._sources_by_id = {c.rule.id: c.sources for c in compiled.values()}
        self._fallback_sources = frozenset().union(*(c.sources for c in self._fallback))
        self._escalation_sources = frozenset().union(
            *(c.sources for c in (*self._priority_rules, *self._escalation_rules))
        )
        self._notify_by_id = {
            c.rule.id: c.rule.action.notify for c in compiled.values()
        }

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (self._rule_file,)
        keywords = {
            "taxonomy": self._taxonomy,
            "version": self._version,
            "source": self._source,
        }
        return (_rebuild_rule_book, (arguments, keywords))

    @property
    def version(self) -> str:
        """Rule-set version: a hash of the rules file, recorded on decisions."""
        return self._version

    @property
    def source(self) -> str:
        return self._source

    @property
    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    @property
    def rule_file(self) -> RuleFile:
        return self._rule_file

    def prepare(
        self, ticket: Ticket, context: Mapping[str, Any] | BaseModel | None = None
    ) -> RuleInput:
        """Convert a ticket and its context into the activation rules see."""
        context_map = {**self._context_defaults, **_jsonable_context(context)}
        values = {
            "ticket": _ticket_map(ticket),
            "context": context_map,
            "decision": {"queue": "", "priority": "", "mode": ""},
        }
        return RuleInput(values)

    def match_override(
        self,
        ticket: Ticket | RuleInput,
        context: Mapping[str, Any] | BaseModel | None = None,
    ) -> RuleMatch | None:
        """The first override rule that matches, or None."""
        rule_input = self._input(ticket, context)
        compiled = self._first_match(self._override, rule_input)
        return _routing_match(compiled, "override") if compiled else None

    def match_fallback(
        self,
        ticket: Ticket | RuleInput,
        context: Mapping[str, Any] | BaseModel | None = None,
    ) -> RuleMatch:
        """The first fallback rule that matches; the catch-all guarantees one."""
        rule_input = self._input(ticket, context)
        compiled = self._first_match(self._fallback, rule_input)
        # A catch-all cannot fail to evaluate, but keep the guarantee explicit.
        return _routing_match(compiled or self._fallback[-1], "fallback")

    def match_context(
        self, rule_input: RuleInput, queue: str, mode: str
    ) -> ContextMatch:
        """The first context rule that matches a proposal, and the sources read."""
        proposed = rule_input.with_decision(queue, "", mode)
        sources: set[str] = set()
        for compiled in self._context:
            sources |= compiled.sources
            if any(check.rules_out(proposed.values) for check in compiled.pre_checks):
                continue
            if _evaluate(compiled, proposed):
                return ContextMatch(_context_match(compiled), frozenset(sources))
        return ContextMatch(None, frozenset(sources))

    @property
    def fallback_sources(self) -> frozenset[str]:
        """Sources any fallback rule reads: a fallback decision rests on them all,
        since a change to one can make an earlier rule match."""
        return self._fallback_sources

    @property
    def escalation_sources(self) -> frozenset[str]:
        """Sources any priority or escalation rule reads (every decision's)."""
        return self._escalation_sources

    def sources_of(self, rule_id: str | None) -> frozenset[str]:
        """Enrichment sources a rule's condition reads (empty for unknown ids)."""
        return self._sources_by_id.get(rule_id or "", frozenset())

    def notify_of(self, rule_id: str | None) -> tuple[str, ...]:
        """Notification targets a rule's action names."""
        return self._notify_by_id.get(rule_id or "", ())

    def prioritize(
        self,
        ticket: Ticket | RuleInput,
        context: Mapping[str, Any] | BaseModel | None,
        queue: str,
    ) -> tuple[str, str, str | None]:
        """Priority for a ticket routed to `queue` when no routing rule set one.

        Returns:
            (priority, reason, rule_id); rule_id is None when a default applied.
        """
        rule_input = self._input(ticket, context).with_decision(queue, "")
        compiled = self._first_match(self._priority_rules, rule_input)
        if compiled is None:
            return (*self._default_priority(rule_input, queue), None)

        rule = compiled.rule
        # Validation guarantees a priority on every priority rule's action.
        assert rule.action.priority is not None
        reason = rule.action.reason or rule.description
        explained = f"priority {rule.action.priority} from priority rule {rule.id}"
        return rule.action.priority, f"{explained}: {reason}", rule.id

    def escalate(
        self,
        ticket: Ticket | RuleInput,
        context: Mapping[str, Any] | BaseModel | None,
        queue: str,
        priority: str,
    ) -> tuple[Escalation, str | None, str | None]:
        """Escalation path for a ticket routed to `queue` at `priority`.

        Returns:
            (escalation, reason, rule_id): ("none", None, None) when no
            escalation rule matched.
        """
        rule_input = self._input(ticket, context).with_decision(queue, priority)
        compiled = self._first_match(self._escalation_rules, rule_input)
        if compiled is None:
            return "none", None, None

        rule = compiled.rule
        escalation = rule.action.escalation or "none"
        return escalation, rule.action.reason or rule.description, rule.id

    def more_urgent(self, first: str, second: str) -> str:
        """The more urgent of two taxonomy priorities."""
        return min(first, second, key=self._priority_order.__getitem__)

    def _list_of(
        self, compiled: dict[tuple[str, int], _CompiledRule], where: str
    ) -> tuple[_CompiledRule, ...]:
        return tuple(rule for (name, _), rule in compiled.items() if name == where)

    def _input(
        self, ticket: Ticket | RuleInput, context: Mapping[str, Any] | BaseModel | None
    ) -> RuleInput:
        if isinstance(ticket, RuleInput):
            if context is not None:
                raise TypeError("context is already part of a prepared RuleInput")
            return ticket
        return self.prepare(ticket, context)

    def _first_match(
        self, rules: tuple[_CompiledRule, ...], rule_input: RuleInput
    ) -> _CompiledRule | None:
        for compiled in rules:
            if compiled.is_catch_all:
                return compiled
            if any(check.rules_out(rule_input.values) for check in compiled.pre_checks):
                continue
            if _evaluate(compiled, rule_input):
                return compiled
        return None

    def _default_priority(self, rule_input: RuleInput, queue: str) -> tuple[str, str]:
        defaults = self._rule_file.escalation.priority_defaults
        channel = rule_input.values["ticket"]["channel"]
        by_queue = defaults.by_queue.get(queue)
        by_channel = defaults.by_channel.get(Channel(channel))

        if by_queue and by_channel:
            priority = self.more_urgent(by_queue, by_channel)
            return priority, (
                f"default priority {priority}, the more urgent of queue {queue} "
                f"({by_queue}) and channel {channel} ({by_channel})"
            )
        if by_queue:
            return by_queue, f"default priority {by_queue} for queue {queue}"
        if by_channel:
            return by_channel, f"default priority {by_channel} for channel {channel}"
        return defaults.default, (
            f"default priority {defaults.default}: no priority rule, queue or "
            "channel default applied"
        )


def load_rules(
    path: Path | str | None = None, taxonomy: Taxonomy | None = None
) -> RuleBook:
    """Load, validate and compile a rules file (the bundled one by default).

    Raises:
        ConfigError: naming the file, the rule and the problem: YAML or
            structure errors, duplicate ids, a missing catch-all, a condition
            that does not compile, an unknown queue or priority.
    """
    path = Path(path) if path is not None else bundled_config_path("rules.yaml")
    rule_file = load_yaml_model(path, RuleFile)
    book = RuleBook(
        rule_file,
        taxonomy=taxonomy or load_taxonomy(),
        version=file_hash(path),
        source=str(path),
    )

    log.info(
        "rule set loaded",
        extra={
            "rules_path": str(path),
            "rule_set_version": book.version,
            "rule_count": sum(1 for _ in rule_file.located_rules()),
        },
    )
    return book


def more_severe(first: Escalation, second: Escalation) -> Escalation:
    """The more severe of two escalation paths."""
    return max(first, second, key=ESCALATION_LEVELS.index)


def _rebuild_rule_book(
    arguments: tuple[Any, ...], keywords: dict[str, Any]
) -> RuleBook:
    return RuleBook(*arguments, **keywords)


def _action_problems(where: str, index: int, rule: Rule) -> list[str]:
    action = rule.action
    at = f"{where}.{index} rule {rule.id!r}"
    if action.effect is not None and where != "context":
        return [f"{at}: only context rules have an effect"]
    if where == "context":
        return _context_action_problems(at, rule)
    if action.notify and where != "escalation.rules":
        return [f"{at}: only context and escalation rules notify"]
    if where in {"override", "fallback"}:
        return [] if action.queue else [f"{at}: action needs a queue"]
    if where == "escalation.priority_rules":
        if action.priority is None or action.queue or action.escalation:
            return [f"{at}: a priority rule's action sets a priority and nothing else"]
        return []
    if action.escalation is None or action.queue or action.priority:
        return [
            f"{at}: an escalation rule's action sets an escalation and nothing else"
        ]
    return []


def _context_action_problems(at: str, rule: Rule) -> list[str]:
    action = rule.action
    if action.effect is None:
        return [f"{at}: a context rule needs an effect (confirm, override, redirect)"]
    if action.effect == "confirm":
        if action.queue:
            return [f"{at}: a confirm rule keeps the proposed queue; remove queue"]
        return []
    problems = [] if action.queue else [f"{at}: an {action.effect} rule needs a queue"]
    if action.effect == "redirect" and "decision.queue" not in rule.condition:
        problems.append(
            f"{at}: a redirect rule moves a named proposal, so its condition must "
            "read decision.queue; use effect override for any proposal"
        )
    return problems


def _check_taxonomy(rule_file: RuleFile, taxonomy: Taxonomy, source: str) -> None:
    queues, priorities = set(taxonomy.queue_ids), set(taxonomy.priority_ids)
    known = f"taxonomy {taxonomy.version}"
    problems = []
    for where, index, rule in rule_file.located_rules():
        at = f"{where}.{index} rule {rule.id!r}"
        if rule.action.queue is not None and rule.action.queue not in queues:
            problems.append(
                f"{at}: unknown queue {rule.action.queue!r} (not in {known})"
            )
        if rule.action.priority is not None and rule.action.priority not in priorities:
            problems.append(
                f"{at}: unknown priority {rule.action.priority!r} (not in {known})"
            )

    defaults = rule_file.escalation.priority_defaults
    for queue, priority in defaults.by_queue.items():
        if queue not in queues:
            problems.append(
                f"escalation.priority_defaults.by_queue: unknown queue {queue!r}"
            )
        if priority not in priorities:
            where = f"escalation.priority_defaults.by_queue.{queue}"
            problems.append(f"{where}: unknown priority {priority!r} (not in {known})")
    named = [defaults.default, *defaults.by_channel.values()]
    problems.extend(
        f"escalation.priority_defaults: unknown priority {priority!r} (not in {known})"
        for priority in named
        if priority not in priorities
    )
    if problems:
        raise ConfigError(f"{source}: {'; '.join(problems)}")


def _cel_environment() -> celpy.Environment:
    _quiet_celpy_logs()
    # celpy builds one parser per process, with the tree class of whichever
    # Environment came first; the compiled runner needs TranspilerTree nodes.
    # TranspilerTree subclasses lark.Tree, so the interpreted runner other
    # code may use still works with the rebuilt parser.
    parser = CELParser.CEL_PARSER
    if parser is not None and parser.options.tree_class is not TranspilerTree:
        CELParser.CEL_PARSER = None
    return celpy.Environment(runner_class=celpy.CompiledRunner)


def _quiet_celpy_logs() -> None:
    # celpy logs evaluation failures at ERROR with the values involved, which
    # can be ticket text, and every transpiled rule at INFO. Switchboard logs
    # its own warning per failed rule (rule id, redacted error), so celpy's
    # records are kept to DEBUG, where someone must ask for them.
    for name in _CELPY_LOGGERS:
        logger = logging.getLogger(name)
        if _below_info not in logger.filters:
            logger.addFilter(_below_info)


def _below_info(record: logging.LogRecord) -> bool:
    return record.levelno < logging.INFO


def _probe_input(context_defaults: dict[str, Any], taxonomy: Taxonomy) -> RuleInput:
    ticket_map = _ticket_map(Ticket(id="probe", channel=Channel.EMAIL, subject="probe"))
    decision = {
        "queue": taxonomy.default_queue,
        "priority": taxonomy.priority_ids[-1],
        "mode": "auto",
    }
    return RuleInput(
        {"ticket": ticket_map, "context": context_defaults, "decision": decision}
    )


def _compile_rule(
    environment: celpy.Environment, rule: Rule, probe: RuleInput, at: str
) -> _CompiledRule:
    where = f"{at} rule {rule.id!r}"
    try:
        tree = environment.compile(rule.condition)
    except CELParseError as err:
        excerpt = str(err.args[0]).rstrip() if err.args else str(err)
        raise ConfigError(
            f"{where}: condition is not valid CEL (line {err.line}, column "
            f"{err.column}):\n{excerpt}"
        ) from err

    problems = _static_problems(environment, tree)
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}")
    try:
        program = environment.program(tree)
    except Exception as err:  # celpy's transpiler raises assorted errors
        raise ConfigError(f"{where}: condition cannot be compiled: {err}") from err

    compiled = _CompiledRule(
        rule=rule,
        program=program,
        is_catch_all=rule.is_catch_all,
        pre_checks=_pre_checks(environment, tree),
        sources=_context_sources(tree),
    )
    _check_probe_result(compiled, probe, where)
    return compiled


def _static_problems(environment: celpy.Environment, tree: lark.Tree) -> list[str]:
    """Unknown functions, unknown variables and invalid regular expressions.

    celpy reports these only when an evaluation reaches them; finding them
    here means a typo fails start-up instead of silently never matching.
    """
    problems = []
    bound = _macro_variables(tree)
    for node in tree.iter_subtrees():
        if node.data in {"member_dot_arg", "ident_arg"}:
            name_index = 1 if node.data == "member_dot_arg" else 0
            name = str(node.children[name_index])
            if name not in _KNOWN_FUNCTIONS:
                problems.append(f"unknown function {name}()")
            if name == "matches":
                problems.extend(_pattern_problems(environment, node))
        elif node.data == "ident":
            name = str(node.children[0])
            if name not in ACTIVATION_ROOTS | bound | _KNOWN_FUNCTIONS:
                roots = ", ".join(sorted(ACTIVATION_ROOTS))
                problems.append(f"unknown variable {name!r} (known: {roots})")
    return problems


def _context_sources(tree: lark.Tree) -> frozenset[str]:
    """The enrichment sources a condition reads through `context.<...>`.

    `context.missing` names every source, so a rule reading it rests on all of
    them; the flat keys kept from before enrichment map to their source.
    """
    sources: set[str] = set()
    for node in tree.iter_subtrees():
        path = _path_of(node) if node.data == "member_dot" else None
        if path is None or len(path) < 2 or path[0] != "context":
            continue
        key = path[1]
        if key in SOURCES:
            sources.add(key)
        elif key in {"missing", "enriched"}:
            sources.update(SOURCES)
        elif key in _FLAT_CONTEXT_SOURCES:
            sources.add(_FLAT_CONTEXT_SOURCES[key])
    return frozenset(sources)


def _pre_checks(
    environment: celpy.Environment, tree: lark.Tree
) -> tuple[_PreCheck, ...]:
    """Pre-checks for the top-level `&&` operands of a known simple shape.

    The shapes are `<path>.matches("literal")`, `<path> == "literal"` and
    `<path> in ["literal", ...]`, where the path starts at `ticket`, `context`
    or `decision`; any other operand is left to celpy alone.
    """
    checks = []
    for operand in _top_level_operands(tree):
        check = _pre_check_for(environment, operand)
        if check is not None:
            checks.append(check)
    return tuple(checks)


def _top_level_operands(tree: lark.Tree) -> list[lark.Tree]:
    # expr -> conditionalor -> conditionaland (left-nested for a && b && c);
    # a ternary or a top-level || has more children and gives no operands.
    if len(tree.children) != 1 or not isinstance(tree.children[0], lark.Tree):
        return []
    disjunction = tree.children[0]
    if len(disjunction.children) != 1:
        return []
    node = disjunction.children[0]
    operands: list[lark.Tree] = []
    while isinstance(node, lark.Tree) and node.data == "conditionaland":
        if len(node.children) == 1:
            operands.append(node.children[0])
            break
        operands.append(node.children[1])
        node = node.children[0]
    return operands


def _pre_check_for(environment: celpy.Environment, operand: Any) -> _PreCheck | None:
    node = _unwrap(operand)
    if not isinstance(node, lark.Tree):
        return None
    if node.data == "relation" and len(node.children) == 2:
        return _comparison_pre_check(environment, *node.children)
    if node.data == "member_dot_arg":
        member, name, arguments = node.children
        path = _path_of(member)
        if str(name) != "matches" or path is None or len(arguments.children) != 1:
            return None
        pattern = _string_literal(environment, arguments.children[0])
        return None if pattern is None else _PreCheck(path, re2.compile(pattern))
    return None


def _comparison_pre_check(
    environment: celpy.Environment, operator: Any, right: Any
) -> _PreCheck | None:
    if not isinstance(operator, lark.Tree):
        return None
    path = _path_of(operator.children[0])
    if operator.data == "relation_eq":
        value = _string_literal(environment, right)
        allowed = None if value is None else [value]
    elif operator.data == "relation_in":
        allowed = _string_list(environment, right)
    else:
        return None
    if path is None or allowed is None:
        return None
    return _PreCheck(path, allowed=frozenset(allowed))


def _unwrap(node: Any) -> Any:
    """Skip the chain of one-child grammar nodes above an interesting one."""
    while (
        isinstance(node, lark.Tree)
        and len(node.children) == 1
        and isinstance(node.children[0], lark.Tree)
        and node.data not in {"member_dot", "ident", "literal", "list_lit"}
    ):
        node = node.children[0]
    return node


def _path_of(node: Any) -> tuple[str, ...] | None:
    """`ticket.lower.severity` as ("ticket", "lower", "severity"), else None."""
    node = _unwrap(node)
    if not isinstance(node, lark.Tree):
        return None
    if node.data == "ident":
        root = str(node.children[0])
        return (root,) if root in ACTIVATION_ROOTS else None
    if node.data == "member_dot":
        base = _path_of(node.children[0])
        return None if base is None else (*base, str(node.children[1]))
    return None


def _string_literal(environment: celpy.Environment, node: Any) -> str | None:
    node = _unwrap(node)
    if isinstance(node, lark.Tree) and node.data == "literal":
        return _literal_value(environment, str(node.children[0]))
    return None


def _string_list(environment: celpy.Environment, node: Any) -> list[str] | None:
    """The strings of a list literal made only of string literals, else None."""
    node = _unwrap(node)
    if not isinstance(node, lark.Tree) or node.data != "list_lit" or not node.children:
        return None
    items = [_string_literal(environment, item) for item in node.children[0].children]
    strings = [item for item in items if item is not None]
    return strings if len(strings) == len(items) else None


def _literal_value(environment: celpy.Environment, text: str) -> str | None:
    if text.lstrip("rRbB")[:1] not in {'"', "'"} or text[:1] in {"b", "B"}:
        return None
    return str(environment.program(environment.compile(text)).evaluate({}))


def _macro_variables(tree: lark.Tree) -> set[str]:
    names = set()
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and str(node.children[1]) in _BINDING_MACROS:
            arguments = node.children[2]
            if isinstance(arguments, lark.Tree) and arguments.children:
                names.add(_single_token(arguments.children[0]) or "")
    return names


def _pattern_problems(environment: celpy.Environment, call: lark.Tree) -> list[str]:
    arguments = call.children[-1]
    if not isinstance(arguments, lark.Tree) or not arguments.children:
        return []
    literal = _single_token(arguments.children[-1])
    pattern = _literal_value(environment, literal) if literal else None
    if pattern is None:
        return []  # a pattern computed at run time is checked when it runs

    try:
        re2.compile(pattern)
    except re2.error as err:
        detail = err.args[0] if err.args else err
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return [f"invalid regular expression {pattern!r} in matches(): {detail}"]
    return []


def _single_token(node: Any) -> str | None:
    """The token at the bottom of a chain of one-child nodes, if any."""
    while isinstance(node, lark.Tree):
        if len(node.children) != 1:
            return None
        node = node.children[0]
    return str(node) if _is_token(node) else None


def _is_token(node: Any) -> bool:
    return isinstance(node, lark.Token)


def _check_probe_result(compiled: _CompiledRule, probe: RuleInput, where: str) -> None:
    # Errors on the empty probe ticket depend on data (a metadata key, a
    # context value) and are judged when a real ticket arrives; a value that
    # is not a boolean is a mistake in the rule whatever the ticket.
    try:
        with _EVALUATION_LOCK:
            value = compiled.program.evaluate(probe.activation)
    except celpy.CELEvalError:
        return
    if not isinstance(value, bool | celpy.celtypes.BoolType):
        raise ConfigError(
            f"{where}: condition must be true or false, got a "
            f"{type(value).__name__} on an empty ticket"
        )


def _ticket_map(ticket: Ticket) -> dict[str, Any]:
    data = ticket.model_dump(mode="json")
    strings = {name: data.get(name) or "" for name in _TICKET_STRING_FIELDS}
    lower = {name: value.lower() for name, value in strings.items()}
    return {
        **strings,
        "text": f"{lower['subject']}\n{lower['body']}",
        "lower": lower,
        "metadata": data["metadata"],
        "attachments": data["attachments"],
        "attachment_count": len(data["attachments"]),
    }


def _jsonable_context(context: Mapping[str, Any] | BaseModel | None) -> dict[str, Any]:
    if context is None:
        return {}
    if isinstance(context, Context):
        return context.rule_view()
    if isinstance(context, BaseModel):
        return context.model_dump(mode="json")
    return dict(to_jsonable_python(dict(context)))


def _evaluate(compiled: _CompiledRule, rule_input: RuleInput) -> bool:
    try:
        with _EVALUATION_LOCK:
            value = compiled.program.evaluate(rule_input.activation)
    except Exception as err:  # a rule must never fail a ticket
        log.warning(
            "rule evaluation failed, treated as not matched",
            extra={
                "rule_id": compiled.rule.id,
                "error": _describe_error(err, compiled.rule.condition),
            },
        )
        return False

    if not isinstance(value, bool | celpy.celtypes.BoolType):
        log.warning(
            "rule condition gave a non-boolean, treated as not matched",
            extra={"rule_id": compiled.rule.id, "value_type": type(value).__name__},
        )
        return False
    return bool(value)


def _describe_error(err: Exception, condition: str) -> str:
    """The innermost CEL message, safe to log.

    Ticket text must never reach the logs, and CEL messages can quote values
    (the activation, a string that would not convert). Quoted text is kept
    only when the rule itself spells it, like a field name.
    """
    message: Any = err.args[0] if err.args else type(err).__name__
    nested = err.args[2] if len(err.args) > 2 else None
    if message == "evaluation error" and isinstance(nested, tuple) and nested:
        message = nested[0]
    if isinstance(message, type):
        message = message.__name__
    text = str(message).split(" (in activation", 1)[0]
    redacted = _QUOTED.sub(
        lambda quoted: quoted[0] if quoted[1] in condition else "'...'", text
    )
    return redacted[:_MAX_ERROR_CHARS]


def _context_match(compiled: _CompiledRule) -> RuleMatch:
    rule = compiled.rule
    return RuleMatch(
        rule_id=rule.id,
        section="context",
        queue=rule.action.queue or "",
        priority=rule.action.priority,
        escalation=rule.action.escalation,
        reason=rule.action.reason,
        description=rule.description,
        effect=rule.action.effect,
        notify=rule.action.notify,
        sources=compiled.sources,
    )


def _routing_match(compiled: _CompiledRule, section: RuleSection) -> RuleMatch:
    rule = compiled.rule
    # Validation guarantees a queue on every override and fallback action.
    assert rule.action.queue is not None
    return RuleMatch(
        rule_id=rule.id,
        section=section,
        queue=rule.action.queue,
        priority=rule.action.priority,
        escalation=rule.action.escalation,
        reason=rule.action.reason,
        description=rule.description,
        sources=compiled.sources,
    )
