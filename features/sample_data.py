"""Seeded generator of realistic, labelled SaaS support tickets.

The default model trains on the sample this module writes (`SAMPLE_PATH`), and
a test checks that the committed file still equals `generate_frame()`. Text is
composed from per-queue templates and slot values (products, plans, invoice
numbers, identity providers, connectors, error codes, people) with
`random.Random(seed)` only, so one seed gives the same tickets on any platform
and library version.

Each row is a `Ticket` (see `features.schema`) plus three columns:
`language` (ISO 639-1), `label` (a queue id from `configs/taxonomy.yaml`) and
`hard_case` (which hard case the row exercises, "" for an ordinary ticket):

- two_topics: a second, lesser topic; the label is the main one, stated
  first or flagged as the important part.
- shared_vocabulary: words that usually signal another queue ("invoice" in a
  provisioning ticket, "suspended" in a security one, "API" in billing).
- typos: letters swapped, dropped, doubled or mistyped.
- very_short: a few words, half of them words several queues receive.
- very_long: several paragraphs and a pasted log or document.
- quoted_reply: a reply over quoted history; sometimes a new topic on an old
  thread, labelled by the new text.
- non_english: German, Spanish, French or Portuguese.
- monitoring_alert: alert-channel payloads, mostly platform_operations.
- borderline: text that fits two or three queues because the taxonomy's
  descriptions overlap; what decided the queue is not in the text, so no model
  can get all of them right. These are the tickets thresholds should send to
  the fallback rules.

Known limitation: an ordinary ticket's subject, details and ask are drawn
independently within its queue, so they agree on the queue but not always on
the exact problem; a reader notices, a queue classifier should not.

Regenerate the committed sample with:

    python -m features.sample_data --out features/data/sample_tickets.parquet
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataError

log = logging.getLogger(__name__)

SAMPLE_PATH = Path(__file__).parent / "data" / "sample_tickets.parquet"
SAMPLE_SIZE = 6000
SAMPLE_SEED = 7

COLUMNS = (
    "id",
    "channel",
    "subject",
    "body",
    "requester",
    "account_id",
    "account_tier",
    "product",
    "region",
    "created_at",
    "source_system",
    "severity",
    "service",
    "language",
    "label",
    "hard_case",
)
# Columns that are not part of a `Ticket`; drop them before `parse_ticket`.
LABEL_COLUMNS = ("language", "label", "hard_case")

# Share of all rows given each hard case; the remaining rows are ordinary.
# Each is a few per cent so a model meets them in training, not only in tests.
HARD_CASE_SHARES: dict[str, float] = {
    "two_topics": 0.06,
    "shared_vocabulary": 0.06,
    "typos": 0.06,
    "very_short": 0.045,
    "very_long": 0.035,
    "quoted_reply": 0.06,
    "non_english": 0.045,
    "monitoring_alert": 0.06,
    "borderline": 0.07,
}
HARD_CASES = tuple(HARD_CASE_SHARES)

# Queue mix of human-written tickets; monitoring alerts have their own mix
# (mostly platform_operations), so that queue ends up a little larger.
QUEUE_SHARES: dict[str, float] = {
    "general_support": 0.22,
    "billing_invoicing": 0.18,
    "identity_access": 0.12,
    "integrations_api": 0.11,
    "platform_operations": 0.09,
    "provisioning_entitlements": 0.09,
    "revenue_operations": 0.08,
    "collections": 0.065,
    "security": 0.045,
}
QUEUES = tuple(QUEUE_SHARES)

CHANNELS = ("email", "chat", "portal", "alert", "api")
LANGUAGES = ("en", "de", "es", "fr", "pt")
VENDOR = "Corvid"
SUPPORT_ADDRESS = "support@corvid.example"


def generate_tickets(
    n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> list[dict[str, Any]]:
    """Generate `n` labelled tickets, identical for identical arguments.

    Rows are ordered by `created_at` and numbered `TKT-000001` onwards in that
    order, as a helpdesk would number them.

    Raises:
        ValueError: `n` is negative.
    """
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")

    rng = random.Random(seed)
    accounts = _make_accounts(rng, _account_count(n))
    rows = [_make_row(rng, accounts) for _ in range(n)]

    # ISO strings in one time zone sort as times; the sort is stable, so ties
    # keep generation order and the result stays deterministic.
    rows.sort(key=lambda row: row["created_at"])
    for number, row in enumerate(rows, start=1):
        row["id"] = f"TKT-{number:06d}"
    return rows


def generate_frame(n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """`generate_tickets` as a DataFrame with the columns in `COLUMNS` order."""
    return pd.DataFrame(generate_tickets(n, seed), columns=list(COLUMNS))


def write_sample(
    path: Path | str = SAMPLE_PATH, n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> Path:
    """Write a generated sample to parquet (zstd) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = generate_frame(n, seed)
    frame.to_parquet(path, index=False, compression="zstd")
    log.info(
        "sample tickets written",
        extra={"path": str(path), "rows": len(frame), "seed": seed},
    )
    return path


def load_sample(path: Path | str = SAMPLE_PATH) -> pd.DataFrame:
    """Read the committed sample (or another file written by `write_sample`).

    Raises:
        DataError: the file does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: sample tickets not found; regenerate them with "
            f"`python -m features.sample_data --out {path}`"
        )
    return pd.read_parquet(path)


@dataclass(frozen=True)
class SampleAccount:
    """What the sample knows of one customer account (no contacts)."""

    id: str
    company: str
    tier: str
    plan: str
    region: str
    seats: int
    products: tuple[str, ...]


def sample_accounts(
    n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> list[SampleAccount]:
    """The accounts `generate_tickets(n, seed)` draws its tickets from.

    The local context store seeds one record per account from these, so every
    sample ticket with an `account_id` finds its context.
    """
    # The same first draws from the same seed as `generate_tickets`, so the
    # accounts are the ones its tickets name; nothing after them is drawn.
    accounts = _make_accounts(random.Random(seed), _account_count(n))
    return [
        SampleAccount(
            id=account.id,
            company=account.company,
            tier=account.tier,
            plan=account.plan,
            region=account.region,
            seats=account.seats,
            products=account.products,
        )
        for account in accounts
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: `python -m features.sample_data --out PATH`."""
    parser = argparse.ArgumentParser(
        prog="python -m features.sample_data",
        description="Write a seeded sample of labelled support tickets to parquet.",
    )
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH, help="parquet path")
    parser.add_argument("--n", type=int, default=SAMPLE_SIZE, help="number of rows")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED, help="random seed")
    args = parser.parse_args(argv)

    path = write_sample(args.out, args.n, args.seed)
    print(f"wrote {args.n} tickets (seed {args.seed}) to {path}")
    return 0


# --- rows -------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    id: str
    company: str
    domain: str
    tier: str
    plan: str
    region: str
    country: str
    language: str
    seats: int
    products: tuple[str, ...]
    contacts: tuple[tuple[str, str], ...]


@dataclass
class _Draft:
    """A customer's message before a channel gives it its shape."""

    queue: str
    subject: str
    sentences: list[str]
    register: str = "neutral"


def _make_row(rng: random.Random, accounts: Sequence[_Account]) -> dict[str, Any]:
    hard_case = _choose(rng, _HARD_CASE_WEIGHTS)
    created_at = _created_at(rng)
    if hard_case == "monitoring_alert":
        return _alert_row(rng, accounts, created_at)

    queue = _choose(rng, QUEUE_SHARES)
    language = rng.choice(LANGUAGES[1:]) if hard_case == "non_english" else "en"
    account = _pick_account(rng, accounts, queue, language)
    channel = _pick_channel(rng, queue, hard_case)
    source_system = _choose(rng, _SOURCE_SYSTEMS[channel])
    slots = _slots(rng, account, created_at, language)
    slots["source_system"] = source_system
    subject, body = _write_text(rng, queue, channel, hard_case, slots, language)

    # Prospects and outside researchers write in without an account.
    is_outsider = queue in ("general_support", "security") and rng.random() < 0.08
    return {
        "id": "",
        "channel": channel,
        "subject": subject,
        "body": body,
        "requester": _requester(rng, channel, account, slots, is_outsider),
        "account_id": None if is_outsider else account.id,
        "account_tier": None if is_outsider else account.tier,
        "product": _product(rng, queue, account),
        "region": None if is_outsider else account.region,
        "created_at": created_at.isoformat(),
        "source_system": source_system,
        "severity": None,
        "service": None,
        "language": language,
        "label": queue,
        "hard_case": hard_case,
    }


def _choose(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _created_at(rng: random.Random) -> datetime:
    """A time in 2026 (Jan 5 - Nov 27), mostly on weekdays in working hours."""
    day = _FIRST_DAY + timedelta(days=rng.randrange(327))
    while day.weekday() >= 5 and rng.random() < 0.75:
        day += timedelta(days=1)
    hour = rng.randint(7, 18) if rng.random() < 0.85 else rng.randrange(24)
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))


def _account_count(n: int) -> int:
    return max(60, n // 12)


def _make_accounts(rng: random.Random, count: int) -> list[_Account]:
    numbers = rng.sample(range(100_000, 1_000_000), count)
    return [_make_account(rng, number) for number in numbers]


def _make_account(rng: random.Random, number: int) -> _Account:
    language = _choose(rng, _ACCOUNT_LANGUAGES)
    country = rng.choice(_COUNTRIES[language])
    tier = _choose(rng, _TIER_SHARES)
    prefix, suffix = rng.choice(_COMPANY_PREFIXES), rng.choice(_COMPANY_SUFFIXES)
    low, high = _TIER_SEATS[tier]
    first_names, last_names = _NAMES[language]
    contacts = tuple(
        (rng.choice(first_names), rng.choice(last_names))
        for _ in range(rng.randint(2, 5))
    )
    return _Account(
        id=f"acct_{number}",
        company=f"{prefix} {suffix}",
        domain=_slug(prefix + suffix[:4]) + _TLDS[country],
        tier=tier,
        plan=_TIER_PLANS[tier],
        region=_COUNTRY_REGIONS[country],
        country=country,
        language=language,
        seats=rng.randint(low, high),
        products=tuple(rng.sample(_PRODUCTS, rng.randint(1, 4))),
        contacts=contacts,
    )


def _pick_account(
    rng: random.Random, accounts: Sequence[_Account], queue: str, language: str
) -> _Account:
    """An account that could plausibly raise this ticket, weighted by tier."""
    candidates = [
        account
        for account in accounts
        if (language == "en" or account.language == language)
        and not (queue in _PAID_QUEUES and account.tier == "free")
    ]
    if not candidates:
        candidates = list(accounts)
    weights = [_TIER_TICKET_WEIGHTS[account.tier] for account in candidates]
    return rng.choices(candidates, weights=weights)[0]


def _pick_channel(rng: random.Random, queue: str, hard_case: str) -> str:
    weights = _HARD_CASE_CHANNELS.get(hard_case) or _QUEUE_CHANNELS[queue]
    return _choose(rng, weights)


def _slots(
    rng: random.Random, account: _Account, created_at: datetime, language: str
) -> dict[str, Any]:
    """Every value a template may name, drawn once so a ticket agrees with itself."""
    first, last = rng.choice(account.contacts)
    others = [contact for contact in account.contacts if contact != (first, last)]
    manager = rng.choice(others or account.contacts)
    symbol = _CURRENCIES[account.country]
    seats_added = max(1, int(account.seats * rng.uniform(0.05, 0.8)))
    earlier = created_at - timedelta(days=rng.randint(1, 25))
    plan_index = _PLANS.index(account.plan)
    return {
        "first": first,
        "last": last,
        "manager": f"{manager[0]} {manager[1]}",
        "csm": f"{rng.choice(_NAMES['en'][0])} {rng.choice(_NAMES['en'][1])}",
        "agent": rng.choice(_AGENTS),
        "vendor": VENDOR,
        "company": account.company,
        "domain": account.domain,
        "website": f"www.{account.domain}",
        "workspace": _slug(account.company.split()[0]) + f"-{rng.randint(1, 99)}",
        "title": rng.choice(_TITLES),
        "phone": _phone(rng, account.country),
        "product": rng.choice(account.products),
        "plan": account.plan,
        "plan_new": _PLANS[min(plan_index + 1, len(_PLANS) - 1)],
        "invoice": _invoice_number(rng),
        "invoice2": _invoice_number(rng),
        "amount": _money(rng, symbol),
        "amount2": _money(rng, symbol),
        "vat": rng.choice(_VAT_PREFIXES) + str(rng.randint(10**8, 10**9 - 1)),
        "card": rng.choice(("Visa", "Mastercard", "Amex")),
        "last4": f"{rng.randrange(10_000):04d}",
        "po": f"PO-{rng.randint(10_000, 99_999)}",
        "order": f"SO-{rng.randint(100_000, 999_999)}",
        "quote": f"Q-{created_at.year}-{rng.randint(1000, 9999)}",
        "contract": f"C-{rng.randint(10_000, 99_999)}",
        "case": f"#{rng.randint(40_000, 99_999)}",
        "seats": account.seats,
        "seats_added": seats_added,
        "seats_total": account.seats + seats_added,
        "sso": rng.choice(_SSO_PROVIDERS),
        "connector": rng.choice(_CONNECTORS),
        "connector2": rng.choice(_CONNECTORS),
        "endpoint": rng.choice(_ENDPOINTS),
        "error_code": rng.choice(_ERROR_CODES),
        "http_status": rng.choice(_HTTP_STATUSES),
        "request_id": f"req_{rng.getrandbits(48):012x}",
        "sdk_version": _version(rng),
        "region": account.region,
        "country": account.country,
        "country_in": _with_article(account.country),
        "created_at": created_at,
        "date": _format_date(earlier, language),
        "month": _MONTHS[earlier.month - 1],
        "weekday": _WEEKDAYS[created_at.weekday()],
        "time": f"{rng.randint(6, 22):02d}:{rng.randrange(0, 60, 5):02d}",
        "year": rng.randint(2018, 2024),
        "hours": rng.randint(2, 30),
        "seconds": rng.choice((20, 30, 45, 60, 90, 120)),
        "minutes": rng.choice((5, 10, 15, 30, 60)),
        "days": rng.choice((7, 14, 21, 30, 45, 60)),
        "percent": f"{rng.choice((3, 5, 7, 10, 12, 15, 20, 25))}%",
        "count": rng.choice((3, 5, 8, 12, 20, 40, 75, 150, 300)),
        "ip": _ip_address(rng),
        "feature": rng.choice(_FEATURES),
        "vuln": rng.choice(_VULNERABILITIES),
        "account_id": account.id,
    }


def _requester(
    rng: random.Random,
    channel: str,
    account: _Account,
    slots: Mapping[str, Any],
    is_outsider: bool,
) -> str | None:
    if channel == "chat" and rng.random() < 0.1:
        return None  # an anonymous visitor to the chat widget
    local = _slug(f"{slots['first']}.{slots['last']}", separator=".")
    if is_outsider:
        return f"{local}@{rng.choice(_PERSONAL_DOMAINS)}"
    if channel == "api" and rng.random() < 0.4:
        return (
            f"{rng.choice(('servicenow', 'helpdesk', 'it-support'))}@{account.domain}"
        )
    style = rng.random()
    if style < 0.6:
        return f"{local}@{account.domain}"
    if style < 0.85:
        initial = _slug(str(slots["first"]))[:1]
        return f"{initial}{_slug(str(slots['last']), separator='')}@{account.domain}"
    return f"{_slug(str(slots['first']))}@{account.domain}"


def _product(rng: random.Random, queue: str, account: _Account) -> str | None:
    if rng.random() < 0.15:
        return None
    if queue == "integrations_api" and rng.random() < 0.6:
        return rng.choice(("Developer Platform", "Sync"))
    return rng.choice(account.products)


# --- text -------------------------------------------------------------------


def _write_text(
    rng: random.Random,
    queue: str,
    channel: str,
    hard_case: str,
    slots: Mapping[str, Any],
    language: str,
) -> tuple[str, str]:
    """Subject and body of one ticket, shaped by its hard case and channel."""
    if hard_case == "non_english":
        return _write_foreign(rng, queue, channel, slots, language)
    if hard_case == "very_short":
        return _write_short(rng, queue, channel, slots)
    if hard_case == "quoted_reply":
        return _write_reply(rng, queue, slots)
    if hard_case == "very_long":
        return _write_long(rng, queue, channel, slots)

    if hard_case == "shared_vocabulary":
        draft = _shared_vocabulary_draft(rng, queue, slots)
    elif hard_case == "borderline":
        draft = _borderline_draft(rng, queue, slots)
    else:
        draft = _draft(rng, queue, slots)
    if hard_case == "two_topics":
        _add_second_topic(rng, draft, slots)
    if hard_case == "typos":
        draft = _with_typos(rng, draft)
    return _wrap(rng, channel, draft, slots)


def _fill(template: str, slots: Mapping[str, Any]) -> str:
    return template.format_map(slots)


def _say(rng: random.Random, template: str, slots: Mapping[str, Any]) -> str:
    """Fill an English template and reword it, so few sentences repeat exactly."""
    return _paraphrase(rng, _fill(template, slots))


def _paraphrase(rng: random.Random, text: str) -> str:
    def swap(match: re.Match[str]) -> str:
        phrase = match.group(0)
        return rng.choice(_VARIANTS_OF[phrase]) if rng.random() < 0.5 else phrase

    return _VARIANT_PATTERN.sub(swap, text)


def _draft(rng: random.Random, queue: str, slots: Mapping[str, Any]) -> _Draft:
    """Issue, supporting details and an ask, in one of four registers."""
    text = _TEXT[queue]
    register = _choose(rng, _REGISTERS)
    if rng.random() < 0.12:
        subject = rng.choice(_GENERIC_SUBJECTS)
    else:
        subject = rng.choice(text.subjects)

    sentences = [rng.choice(text.issues)]
    if register != "terse":
        sentences += rng.sample(text.details, rng.choice((0, 1, 1, 2)))
        if rng.random() < 0.3:
            sentences.append(rng.choice(_GENERIC_DETAILS))
    if rng.random() < 0.8:
        sentences.append(rng.choice(text.asks))
    sentences += _register_lines(rng, register)

    filled = [_say(rng, sentence, slots) for sentence in sentences]
    draft = _Draft(queue, _say(rng, subject, slots), filled, register)
    if register == "angry" and rng.random() < 0.5:
        draft.subject = rng.choice(("URGENT: ", "Still broken: ", "")) + draft.subject
        draft.subject = draft.subject.upper() if rng.random() < 0.3 else draft.subject
    return draft


def _register_lines(rng: random.Random, register: str) -> list[str]:
    if register == "angry":
        return rng.sample(_ANGRY_LINES, rng.randint(1, 2))
    if register == "polite":
        return [rng.choice(_POLITE_LINES)]
    if register == "neutral" and rng.random() < 0.15:
        return [rng.choice(_URGENT_LINES)]
    return []


def _shared_vocabulary_draft(
    rng: random.Random, queue: str, slots: Mapping[str, Any]
) -> _Draft:
    """A ticket for `queue` that leans on words that usually signal another.

    Half are hand-written (a paid invoice in a provisioning ticket); the rest
    open with a statement of fact in a confusable queue's words and then state
    this queue's problem.
    """
    text = _TEXT[queue]
    if rng.random() < 0.5:
        subject, issue = rng.choice(_SHARED_VOCABULARY[queue])
        sentences = [issue]
    else:
        decoy = rng.choice(_CONFUSABLE[queue])
        context = rng.sample(_DECOY_CONTEXT[decoy], rng.choice((1, 1, 2)))
        subject, sentences = (
            rng.choice(text.subjects),
            [*context, rng.choice(text.issues)],
        )
    if rng.random() < 0.7:
        sentences.append(rng.choice(text.asks))
    filled = [_say(rng, sentence, slots) for sentence in sentences]
    return _Draft(queue, _say(rng, subject, slots), filled)


def _borderline_draft(
    rng: random.Random, queue: str, slots: Mapping[str, Any]
) -> _Draft:
    """A ticket whose text fits several queues; only generic details added."""
    issues = [
        (issue, weights[queue])
        for issue, weights in _BORDERLINE_ISSUES
        if queue in weights
    ]
    texts, weights = zip(*issues, strict=True)
    sentences = [rng.choices(texts, weights=weights)[0]]
    if rng.random() < 0.5:
        sentences.append(rng.choice(_GENERIC_DETAILS))
    sentences.append(rng.choice(_GENERIC_ASKS))
    filled = [_say(rng, sentence, slots) for sentence in sentences]
    return _Draft(queue, _say(rng, rng.choice(_GENERIC_SUBJECTS), slots), filled)


def _add_second_topic(
    rng: random.Random, draft: _Draft, slots: Mapping[str, Any]
) -> None:
    """Add a second, lesser topic; the label stays with the main one.

    Usually the main topic comes first; sometimes the minor one does and the
    main one is flagged as the important part.
    """
    other = rng.choice([queue for queue in QUEUES if queue != draft.queue])
    other_text = _TEXT[other]
    second = [rng.choice(other_text.issues)]
    if rng.random() < 0.5:
        second.append(rng.choice(other_text.details))
    if rng.random() < 0.5:
        second.append(rng.choice(other_text.asks))
    second = [_say(rng, sentence, slots) for sentence in second]

    if rng.random() < 0.25:
        draft.sentences = [
            rng.choice(_MINOR_FIRST),
            *second,
            rng.choice(_MAIN_NEXT),
            *draft.sentences,
        ]
        return

    connector = rng.choice(_SECOND_TOPIC_CONNECTORS)
    if connector.endswith(","):
        second[0] = second[0][0].lower() + second[0][1:]
    draft.sentences += [f"{connector} {second[0]}", *second[1:]]
    if rng.random() < 0.4:
        draft.sentences.append(rng.choice(_PRIMARY_EMPHASIS))
    if rng.random() < 0.15:
        other_subject = _fill(rng.choice(other_text.subjects), slots)
        draft.subject = f"{draft.subject} (+ {other_subject})"


def _with_typos(rng: random.Random, draft: _Draft) -> _Draft:
    rate = rng.uniform(0.12, 0.3)
    sentences = [_add_typos(rng, sentence, rate) for sentence in draft.sentences]
    subject = _add_typos(rng, draft.subject, rate / 2)
    if rng.random() < 0.5:
        subject, sentences = subject.lower(), [s.lower() for s in sentences]
    return _Draft(draft.queue, subject, sentences, draft.register)


def _add_typos(rng: random.Random, text: str, rate: float) -> str:
    """Swap, drop, double or mistype letters in some words of four or more."""

    def misspell(match: re.Match[str]) -> str:
        word = match.group(0)
        if rng.random() >= rate:
            return word
        at = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        if kind == 1:
            return word[:at] + word[at + 1 :]
        if kind == 2:
            return word[:at] + word[at] + word[at:]
        near = _KEY_NEIGHBOURS.get(word[at].lower(), word[at])
        return word[:at] + rng.choice(near) + word[at + 1 :]

    return re.sub(r"[A-Za-z]{4,}", misspell, text)


def _wrap(
    rng: random.Random, channel: str, draft: _Draft, slots: Mapping[str, Any]
) -> tuple[str, str]:
    if channel == "chat":
        return _as_chat(rng, draft, slots)
    if channel == "portal":
        return _as_portal(rng, draft, slots)
    if channel == "api":
        return _as_api(rng, draft, slots)
    return draft.subject, _as_email_body(rng, draft, slots)


def _as_email_body(rng: random.Random, draft: _Draft, slots: Mapping[str, Any]) -> str:
    is_terse = draft.register == "terse"
    blocks = []
    if not is_terse and rng.random() < 0.9:
        blocks.append(_fill(rng.choice(_GREETINGS), slots))

    sentences = list(draft.sentences)
    if not is_terse and rng.random() < 0.4:
        sentences.insert(0, _fill(rng.choice(_OPENERS), slots))
    cut = rng.randint(1, len(sentences)) if len(sentences) > 2 else len(sentences)
    blocks.append(" ".join(sentences[:cut]))
    if sentences[cut:]:
        blocks.append(" ".join(sentences[cut:]))

    blocks.append(_sign_off(rng, slots, is_terse))
    if rng.random() < 0.2:
        blocks.append(_fill(rng.choice(_FOOTERS), slots))
    return "\n\n".join(block for block in blocks if block)


def _sign_off(rng: random.Random, slots: Mapping[str, Any], is_terse: bool) -> str:
    if is_terse:
        return rng.choice(("", str(slots["first"]), f"- {slots['first']}"))
    closing = rng.choice(_CLOSINGS)
    return f"{closing}\n{_fill(rng.choice(_SIGNATURES), slots)}"


def _as_chat(
    rng: random.Random, draft: _Draft, slots: Mapping[str, Any]
) -> tuple[str, str]:
    messages = [_chatty(rng, sentence) for sentence in draft.sentences]
    if rng.random() < 0.5:
        messages.insert(0, rng.choice(_CHAT_HELLOS))

    style = rng.random()
    if style < 0.35:
        body = "\n".join(messages)
    elif style < 0.7:
        body = _chat_transcript(rng, messages, slots)
    else:
        body = " ".join(messages)

    subject_style = rng.random()
    if subject_style < 0.5:
        subject = ""
    elif subject_style < 0.75:
        subject = f"Chat with {slots['first']} {slots['last']}"
    else:
        subject = draft.subject
    return subject, body


def _chatty(rng: random.Random, sentence: str) -> str:
    if rng.random() < 0.5:
        sentence = sentence[0].lower() + sentence[1:]
    if rng.random() < 0.4:
        sentence = sentence.rstrip(".")
    return sentence


def _chat_transcript(
    rng: random.Random, messages: Sequence[str], slots: Mapping[str, Any]
) -> str:
    minute = rng.randrange(8 * 60, 19 * 60)
    name = slots["first"] if rng.random() < 0.7 else "Visitor"
    lines = [f"[{minute // 60:02d}:{minute % 60:02d}] Bot: {rng.choice(_BOT_PROMPTS)}"]
    for message in messages:
        minute += rng.randint(0, 2)
        lines.append(f"[{minute // 60:02d}:{minute % 60:02d}] {name}: {message}")
    return "\n".join(lines)


def _as_portal(
    rng: random.Random, draft: _Draft, slots: Mapping[str, Any]
) -> tuple[str, str]:
    text = " ".join(draft.sentences)
    style = rng.random()
    if style < 0.45:
        body = (
            f"Topic: {_portal_topic(rng, draft)}\n"
            f"Product: {slots['product']}\n"
            f"Impact: {rng.choice(_IMPACTS)}\n\n"
            f"Description:\n{text}"
        )
    elif style < 0.7:
        issue, rest = draft.sentences[0], " ".join(draft.sentences[1:]) or "-"
        body = (
            f"What happened?\n{issue}\n\n"
            f"Anything else we should know?\n{rest}\n\n"
            f"How many people are affected?\n{rng.choice(_IMPACTS)}"
        )
    else:
        body = text
    return draft.subject, body


def _portal_topic(rng: random.Random, draft: _Draft) -> str:
    """The topic the customer picked; often generic and sometimes wrong."""
    roll = rng.random()
    if roll < 0.55:
        return _TEXT[draft.queue].portal_topic
    if roll < 0.85:
        return rng.choice(("Other", "Technical issue", "General question"))
    return rng.choice([text.portal_topic for text in _TEXT.values()])


def _as_api(
    rng: random.Random, draft: _Draft, slots: Mapping[str, Any]
) -> tuple[str, str]:
    """A ticket another helpdesk created through the API, in that tool's shape."""
    issue, rest = draft.sentences[0], " ".join(draft.sentences[1:])
    text = f"{issue}\n\n{rest}" if rest else issue
    requester = f"{slots['first']} {slots['last']}"
    if slots["source_system"] == "servicenow":
        number = rng.randint(10_000, 9_999_999)
        subject = f"[INC{number:07d}] {draft.subject}"
        body = (
            f"Escalated from ServiceNow\nCaller: {requester}\n"
            f"Short description: {draft.subject}\n"
            f"Assignment group: Vendor - {VENDOR}\n\nDescription:\n{text}"
        )
    elif slots["source_system"] == "jira-service-management":
        key = rng.choice(("ITSD", "HELP", "OPS", "SUP"))
        subject = f"[{key}-{rng.randint(100, 9999)}] {draft.subject}"
        body = f"{text}\n\n---\nRaised via Jira Service Management by {requester}"
    else:
        subject = draft.subject
        body = f"{text}\n\n(created via API by {slots['company']} helpdesk sync)"
    return subject, body


def _write_short(
    rng: random.Random, queue: str, channel: str, slots: Mapping[str, Any]
) -> tuple[str, str]:
    """A few words; half of them are words several queues receive."""
    shared = [
        (text, weights[queue])
        for text, weights in _AMBIGUOUS_SHORT_TEXTS
        if queue in weights
    ]
    if shared and rng.random() < 0.5:
        texts, weights = zip(*shared, strict=True)
        text = _fill(rng.choices(texts, weights=weights)[0], slots)
    else:
        text = _fill(rng.choice(_TEXT[queue].short), slots)

    if channel == "chat":
        return "", text
    if channel == "email":
        return text, rng.choice(("", "", "Sent from my iPhone", text))
    return text, rng.choice(("", text))


def _write_reply(
    rng: random.Random, queue: str, slots: Mapping[str, Any]
) -> tuple[str, str]:
    """A customer reply on top of quoted history; sometimes a new topic."""
    original = _draft(rng, queue, slots)
    is_new_topic = rng.random() < 0.3
    if is_new_topic:
        other = rng.choice([q for q in QUEUES if q != queue])
        quoted = _draft(rng, other, slots)
        top = [rng.choice(_NEW_TOPIC_LINES), *original.sentences[:2]]
    else:
        quoted = original
        top = [rng.choice(_FOLLOW_UPS)]
        if rng.random() < 0.6:
            top.append(_say(rng, rng.choice(_TEXT[queue].details), slots))

    # The agent answered a day or two before this reply, the customer wrote
    # a few days before that.
    created_at: datetime = slots["created_at"]
    answered_at = created_at - timedelta(hours=rng.randint(3, 60))
    asked_at = answered_at - timedelta(hours=rng.randint(1, 90))
    thread = (
        f"{_agent_message(rng, slots)}\n\n"
        f"{_quote_header(rng, slots, asked_at, is_agent=False)}\n"
        f"{_quoted(_as_email_body(rng, quoted, slots))}"
    )
    history = f"{_quote_header(rng, slots, answered_at, is_agent=True)}\n"
    history += _quoted(thread)
    body = "\n\n".join([" ".join(top), _sign_off(rng, slots, False), history])
    subject = f"{rng.choice(('Re: ', 'RE: ', 'Re: Re: '))}{quoted.subject}"
    return subject, body


def _agent_message(rng: random.Random, slots: Mapping[str, Any]) -> str:
    question = rng.choice(_AGENT_QUESTIONS)
    return (
        f"Hi {slots['first']},\n\nThanks for getting in touch. {question}\n\n"
        f"Best,\n{slots['agent']}\n{VENDOR} Support"
    )


def _quote_header(
    rng: random.Random, slots: Mapping[str, Any], moment: datetime, is_agent: bool
) -> str:
    """The line a mail client puts above quoted text (Gmail or Outlook style)."""
    if is_agent:
        sender = f"{slots['agent']} ({VENDOR} Support) <{SUPPORT_ADDRESS}>"
    else:
        local = _slug(f"{slots['first']}.{slots['last']}", separator=".")
        sender = f"{slots['first']} {slots['last']} <{local}@{slots['domain']}>"
    day = _WEEKDAYS[moment.weekday()][:3]
    when = f"{day}, {moment.day} {_MONTHS[moment.month - 1][:3]} {moment.year}"
    clock = f"{moment.hour}:{moment.minute:02d}"
    if rng.random() < 0.6:
        return f"On {when} at {clock}, {sender} wrote:"
    return f"-----Original Message-----\nFrom: {sender}\nSent: {when} {clock}"


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _write_long(
    rng: random.Random, queue: str, channel: str, slots: Mapping[str, Any]
) -> tuple[str, str]:
    """Several paragraphs: background, the issue, what was tried, a pasted log."""
    text = _TEXT[queue]

    def filled(templates: Sequence[str], separator: str = " ") -> str:
        return separator.join(_say(rng, template, slots) for template in templates)

    tried = [f"- {step}" for step in rng.sample(_TRIED_STEPS, rng.randint(2, 4))]
    closing = [rng.choice(text.asks), rng.choice(_POLITE_LINES + _URGENT_LINES)]
    paragraphs = [
        filled([rng.choice(_GREETINGS)]),
        filled(rng.sample(_BACKGROUND, rng.randint(2, 3))),
        filled([rng.choice(text.issues), *rng.sample(text.details, 3)]),
        filled(rng.sample(_GENERIC_DETAILS, 2)),
        "What we have tried so far:\n" + filled(tried, "\n"),
        f"{rng.choice(_LOG_INTROS)}\n\n{_pasted_log(rng, queue, slots)}",
        filled(closing),
    ]
    body = "\n\n".join(paragraphs)
    if channel == "email":
        body += "\n\n" + _sign_off(rng, slots, is_terse=False)
        body += "\n\n" + _fill(rng.choice(_FOOTERS), slots)
    return _fill(rng.choice(text.subjects), slots), body


def _pasted_log(rng: random.Random, queue: str, slots: Mapping[str, Any]) -> str:
    text = _TEXT[queue]
    if text.log_repeats:
        templates = rng.choices(text.log_lines, k=rng.randint(12, 30))
    else:
        # A pasted document keeps its line order; drop one line.
        kept = sorted(rng.sample(range(len(text.log_lines)), len(text.log_lines) - 1))
        templates = [text.log_lines[index] for index in kept]

    moment = _FIRST_DAY + timedelta(days=rng.randrange(300), hours=rng.randrange(24))
    lines = [text.log_header] if text.log_header else []
    for template in templates:
        moment += timedelta(seconds=rng.randint(1, 90))
        extra = {
            "ts": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ldate": moment.strftime("%Y-%m-%d"),
            "req": f"{rng.getrandbits(32):08x}",
            "ms": rng.randint(800, 30_000),
            "n": rng.randint(2, 60),
            "user": f"{rng.choice(_NAMES['en'][0]).lower()}@{slots['domain']}",
            "ip2": _ip_address(rng),
            "country2": rng.choice(_LOGIN_COUNTRIES),
        }
        lines.append(template.format_map({**slots, **extra}))
    return "\n".join(lines)


def _write_foreign(
    rng: random.Random,
    queue: str,
    channel: str,
    slots: Mapping[str, Any],
    language: str,
) -> tuple[str, str]:
    local = _FOREIGN[language]
    text = local.queues[queue]
    subject = _fill(rng.choice(text.subjects), slots)
    sentences = [*rng.sample(text.issues, rng.choice((1, 1, 2))), rng.choice(text.asks)]
    message = " ".join(_fill(sentence, slots) for sentence in sentences)

    if channel == "chat":
        return rng.choice(("", subject)), f"{rng.choice(local.greetings)}\n{message}"
    greeting = rng.choice(local.greetings)
    closing = rng.choice(local.closings)
    body = f"{greeting}\n\n{message}\n\n{closing}\n{slots['first']} {slots['last']}"
    return subject, body


def _alert_row(
    rng: random.Random, accounts: Sequence[_Account], created_at: datetime
) -> dict[str, Any]:
    """A monitoring alert as intake sees it: mostly platform_operations."""
    rule = rng.choices(_ALERT_RULES, weights=[r.weight for r in _ALERT_RULES])[0]
    account = rng.choice(accounts) if rule.is_tenant_scoped else None
    source = _choose(rng, _SOURCE_SYSTEMS["alert"])
    severity = _choose(rng, rule.severities)
    slots = _alert_slots(rng, rule, account)
    is_resolved = rng.random() < 0.1
    subject, body = _ALERT_FORMATTERS[source](rng, rule, slots, severity, is_resolved)
    return {
        "id": "",
        "channel": "alert",
        "subject": subject,
        "body": body,
        "requester": rng.choice((None, f"{source}@monitoring.corvid.example")),
        "account_id": account.id if account else None,
        "account_tier": account.tier if account else None,
        "product": None,
        "region": slots["region"],
        "created_at": created_at.isoformat(),
        "source_system": source,
        "severity": severity,
        "service": rule.service,
        "language": "en",
        "label": rule.queue,
        "hard_case": "monitoring_alert",
    }


def _alert_slots(
    rng: random.Random, rule: _AlertRule, account: _Account | None
) -> dict[str, Any]:
    return {
        "service": rule.service,
        "region": rng.choice(_REGIONS),
        "env": "production" if rng.random() < 0.85 else "staging",
        "percent": f"{rng.choice((2, 5, 8, 12, 25, 40))}%",
        "threshold_ms": rng.choice((500, 800, 1000, 2000)),
        "latency_ms": rng.randint(2_100, 9_000),
        "minutes": rng.choice((5, 10, 15, 30)),
        "count": rng.randint(20, 5000),
        "ip": _ip_address(rng),
        "tenant": account.id if account else "-",
        "connector": rng.choice(_CONNECTORS),
        "days": rng.randint(2, 14),
        "host": f"{rule.service}-{rng.randint(0, 9)}.{rng.choice(_REGIONS)}",
        "lag": rng.randint(5_000, 900_000),
        "pod": f"{rule.service}-{rng.getrandbits(20):05x}",
        "alertname": rule.alertname,
    }


def _alertmanager_text(
    rng: random.Random,
    rule: _AlertRule,
    slots: Mapping[str, Any],
    severity: str,
    is_resolved: bool,
) -> tuple[str, str]:
    status = "RESOLVED" if is_resolved else f"FIRING:{rng.randint(1, 4)}"
    summary, description = _fill(rule.summary, slots), _fill(rule.description, slots)
    subject = f"[{status}] {rule.alertname} ({slots['service']} {slots['env']})"
    labels = {
        "alertname": rule.alertname,
        "env": slots["env"],
        "region": slots["region"],
        "service": slots["service"],
        "severity": severity,
    }
    label_lines = "\n".join(f" - {key} = {value}" for key, value in labels.items())
    body = (
        f"{'Alerts Resolved' if is_resolved else 'Alerts Firing'}:\n"
        f"Labels:\n{label_lines}\n"
        f"Annotations:\n - summary = {summary}\n - description = {description}\n"
        f" - runbook_url = https://runbooks.corvid.example/{_slug(rule.alertname)}\n"
        f"Source: http://prometheus.{slots['region']}.corvid.example/graph"
    )
    return subject, body


def _datadog_text(
    rng: random.Random,
    rule: _AlertRule,
    slots: Mapping[str, Any],
    severity: str,
    is_resolved: bool,
) -> tuple[str, str]:
    state = "Recovered" if is_resolved else rng.choice(("Triggered", "Re-Triggered"))
    summary, description = _fill(rule.summary, slots), _fill(rule.description, slots)
    subject = f"[{state}] {summary}"
    body = (
        f"%%%\n{description}\n\n"
        f"Monitor: {rule.alertname} on service:{slots['service']} "
        f"env:{slots['env']}\nPriority: {'P1' if severity == 'critical' else 'P3'}\n"
        f"@slack-sre-alerts @pagerduty-{slots['service']}\n%%%"
    )
    return subject, body


def _pagerduty_text(
    rng: random.Random,
    rule: _AlertRule,
    slots: Mapping[str, Any],
    severity: str,
    is_resolved: bool,
) -> tuple[str, str]:
    number = rng.randint(10_000, 99_999)
    summary, description = _fill(rule.summary, slots), _fill(rule.description, slots)
    state = "resolved" if is_resolved else "triggered"
    subject = f"[#{number}] {summary}"
    body = (
        f"Incident #{number} {state}\n"
        f"Service: {slots['service']} ({slots['env']})\n"
        f"Urgency: {'high' if severity == 'critical' else 'low'}\n"
        f"Assigned to: {rng.choice(_AGENTS)} (SRE on-call)\n\n"
        f"Details: {description}"
    )
    return subject, body


def _grafana_text(
    rng: random.Random,
    rule: _AlertRule,
    slots: Mapping[str, Any],
    severity: str,
    is_resolved: bool,
) -> tuple[str, str]:
    summary, description = _fill(rule.summary, slots), _fill(rule.description, slots)
    subject = f"[{'OK' if is_resolved else 'Alerting'}] {rule.alertname}"
    body = (
        f"**{'Resolved' if is_resolved else 'Firing'}**\n\n"
        f"Value: {rng.randint(1, 999)}\n"
        f"Labels:\n - alertname = {rule.alertname}\n - service = {slots['service']}\n"
        f" - severity = {severity}\n - region = {slots['region']}\n"
        f"Annotations:\n - summary = {summary}\n - description = {description}\n"
        f"Dashboard: https://grafana.corvid.example/d/{_slug(slots['service'])}"
    )
    return subject, body


def _slug(text: str, separator: str = "-") -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return separator.join(words)


def _format_date(moment: datetime, language: str) -> str:
    if language == "de":
        return moment.strftime("%d.%m.%Y")
    if language != "en":
        return moment.strftime("%d/%m/%Y")
    return f"{_MONTHS[moment.month - 1]} {moment.day}"


def _with_article(country: str) -> str:
    return f"the {country}" if country.startswith("United") else country


def _invoice_number(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.6:
        return f"INV-{rng.randint(1000, 99_999)}"
    if style < 0.85:
        return f"INV-2026-{rng.randint(1, 9999):04d}"
    return f"{rng.randint(100_000, 999_999)}"


def _money(rng: random.Random, symbol: str) -> str:
    value = rng.choice((49, 99, 120, 249, 480, 960, 1240, 2400, 3480, 12_000, 56_300))
    cents = rng.choice((0, 0, 50, 99, rng.randrange(100)))
    return f"{symbol}{value + cents / 100:,.2f}"


def _phone(rng: random.Random, country: str) -> str:
    code = _DIALLING_CODES[country]
    if code == 1:  # 555-01xx numbers are reserved for fiction
        return f"+1 {rng.randint(201, 989)}-555-01{rng.randrange(100):02d}"
    area, exchange = rng.randint(20, 99), rng.randint(100, 999)
    return f"+{code} {area} {exchange} {rng.randint(1000, 9999)}"


def _version(rng: random.Random) -> str:
    return f"{rng.randint(2, 4)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"


def _ip_address(rng: random.Random) -> str:
    first = rng.choice((31, 45, 77, 89, 103, 146, 176, 185, 194, 203))
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randint(1, 254)}"


def _lines(block: str) -> tuple[str, ...]:
    """One template per non-empty line."""
    return tuple(line.strip() for line in block.strip().splitlines() if line.strip())


def _words(block: str) -> tuple[str, ...]:
    """One value per whitespace-separated word."""
    return tuple(block.split())


def _paragraphs(block: str) -> tuple[str, ...]:
    """One template per paragraph; wrapped lines are joined with spaces."""
    chunks = re.split(r"\n\s*\n", block.strip())
    return tuple(
        " ".join(line.strip() for line in chunk.splitlines()) for chunk in chunks
    )


def _pairs(block: str) -> tuple[tuple[str, str], ...]:
    """(subject, body) per paragraph: the first line is the subject."""
    pairs = []
    for chunk in re.split(r"\n\s*\n", block.strip()):
        first, *rest = (line.strip() for line in chunk.splitlines())
        pairs.append((first, " ".join(rest)))
    return tuple(pairs)


# --- vocabulary -------------------------------------------------------------
# Everything below is data. It sits last so the generator above reads first.


@dataclass(frozen=True)
class _QueueText:
    """English templates for one queue."""

    subjects: tuple[str, ...]
    issues: tuple[str, ...]
    details: tuple[str, ...]
    asks: tuple[str, ...]
    short: tuple[str, ...]
    portal_topic: str
    log_lines: tuple[str, ...]
    log_header: str = ""
    log_repeats: bool = True


@dataclass(frozen=True)
class _LocalQueueText:
    subjects: tuple[str, ...]
    issues: tuple[str, ...]
    asks: tuple[str, ...]


@dataclass(frozen=True)
class _LocalText:
    greetings: tuple[str, ...]
    closings: tuple[str, ...]
    queues: dict[str, _LocalQueueText] = field(default_factory=dict)


@dataclass(frozen=True)
class _AlertRule:
    queue: str
    alertname: str
    service: str
    summary: str
    description: str
    severities: dict[str, float]
    is_tenant_scoped: bool = False
    weight: float = 1.0


_FIRST_DAY = datetime(2026, 1, 5, tzinfo=UTC)

_HARD_CASE_WEIGHTS = {"": 1.0 - sum(HARD_CASE_SHARES.values()), **HARD_CASE_SHARES}

_REGISTERS = {"neutral": 0.5, "polite": 0.22, "angry": 0.15, "terse": 0.13}

_QUEUE_CHANNELS: dict[str, dict[str, float]] = {
    "billing_invoicing": {"email": 0.6, "chat": 0.1, "portal": 0.25, "api": 0.05},
    "collections": {"email": 0.75, "chat": 0.05, "portal": 0.15, "api": 0.05},
    "revenue_operations": {"email": 0.75, "chat": 0.05, "portal": 0.15, "api": 0.05},
    "provisioning_entitlements": {
        "email": 0.45,
        "chat": 0.15,
        "portal": 0.3,
        "api": 0.1,
    },
    "identity_access": {"email": 0.35, "chat": 0.3, "portal": 0.25, "api": 0.1},
    "platform_operations": {"email": 0.3, "chat": 0.2, "portal": 0.3, "api": 0.2},
    "integrations_api": {"email": 0.35, "chat": 0.15, "portal": 0.3, "api": 0.2},
    "security": {"email": 0.55, "chat": 0.05, "portal": 0.3, "api": 0.1},
    "general_support": {"email": 0.35, "chat": 0.35, "portal": 0.25, "api": 0.05},
}

_HARD_CASE_CHANNELS: dict[str, dict[str, float]] = {
    "quoted_reply": {"email": 1.0},
    "very_long": {"email": 0.6, "portal": 0.3, "api": 0.1},
    "very_short": {"chat": 0.45, "portal": 0.25, "email": 0.2, "api": 0.1},
    "non_english": {"email": 0.55, "chat": 0.25, "portal": 0.2},
}

_SOURCE_SYSTEMS: dict[str, dict[str, float]] = {
    "email": {"zendesk": 0.5, "freshdesk": 0.3, "front": 0.2},
    "chat": {"intercom": 0.6, "zendesk-chat": 0.4},
    "portal": {"support-portal": 1.0},
    "api": {"servicenow": 0.4, "jira-service-management": 0.3, "public-api": 0.3},
    "alert": {
        "alertmanager": 0.45,
        "datadog": 0.25,
        "pagerduty": 0.15,
        "grafana": 0.15,
    },
}

_TIER_SHARES = {
    "strategic": 0.04,
    "enterprise": 0.18,
    "business": 0.35,
    "starter": 0.28,
    "free": 0.15,
}
# Larger customers file more tickets per account.
_TIER_TICKET_WEIGHTS = {
    "strategic": 6.0,
    "enterprise": 3.0,
    "business": 1.5,
    "starter": 1.0,
    "free": 0.6,
}
_TIER_SEATS = {
    "strategic": (800, 5000),
    "enterprise": (200, 1500),
    "business": (25, 300),
    "starter": (3, 30),
    "free": (1, 5),
}
_PLANS = ["Free", "Team", "Business", "Enterprise", "Enterprise Plus"]
_TIER_PLANS = {
    "free": "Free",
    "starter": "Team",
    "business": "Business",
    "enterprise": "Enterprise",
    "strategic": "Enterprise Plus",
}
# Queues a free-tier account has no business in: it has no invoices or contract.
_PAID_QUEUES = ("billing_invoicing", "collections", "revenue_operations")

_ACCOUNT_LANGUAGES = {"en": 0.8, "de": 0.06, "fr": 0.05, "es": 0.05, "pt": 0.04}
_COUNTRIES = {
    "en": (
        "United States",
        "United Kingdom",
        "Canada",
        "Australia",
        "Ireland",
        "India",
    ),
    "de": ("Germany", "Austria", "Switzerland"),
    "fr": ("France", "Belgium"),
    "es": ("Spain", "Mexico"),
    "pt": ("Brazil", "Portugal"),
}
_COUNTRY_REGIONS = {
    "United States": "us-east-1",
    "United Kingdom": "eu-west-2",
    "Canada": "ca-central-1",
    "Australia": "ap-southeast-2",
    "Ireland": "eu-west-1",
    "India": "ap-south-1",
    "Germany": "eu-central-1",
    "Austria": "eu-central-1",
    "Switzerland": "eu-central-2",
    "France": "eu-west-3",
    "Belgium": "eu-west-3",
    "Spain": "eu-south-2",
    "Mexico": "us-west-2",
    "Brazil": "sa-east-1",
    "Portugal": "eu-south-2",
}
_REGIONS = tuple(sorted(set(_COUNTRY_REGIONS.values())))
_TLDS = {
    "United States": ".com",
    "United Kingdom": ".co.uk",
    "Canada": ".ca",
    "Australia": ".com.au",
    "Ireland": ".ie",
    "India": ".in",
    "Germany": ".de",
    "Austria": ".at",
    "Switzerland": ".ch",
    "France": ".fr",
    "Belgium": ".be",
    "Spain": ".es",
    "Mexico": ".mx",
    "Brazil": ".com.br",
    "Portugal": ".pt",
}
_CURRENCIES = {
    "United States": "$",
    "United Kingdom": "£",
    "Canada": "C$",
    "Australia": "A$",
    "Ireland": "€",
    "India": "$",
    "Germany": "€",
    "Austria": "€",
    "Switzerland": "CHF ",
    "France": "€",
    "Belgium": "€",
    "Spain": "€",
    "Mexico": "$",
    "Brazil": "R$",
    "Portugal": "€",
}
_DIALLING_CODES = {
    "United States": 1,
    "United Kingdom": 44,
    "Canada": 1,
    "Australia": 61,
    "Ireland": 353,
    "India": 91,
    "Germany": 49,
    "Austria": 43,
    "Switzerland": 41,
    "France": 33,
    "Belgium": 32,
    "Spain": 34,
    "Mexico": 52,
    "Brazil": 55,
    "Portugal": 351,
}
_VAT_PREFIXES = ("DE", "FR", "IE", "GB", "ES", "NL", "BE", "AT")
_LOGIN_COUNTRIES = ("RU", "NG", "VN", "BR", "CN", "RO", "US", "NL", "KP", "IR")
_PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.com")

_COMPANY_PREFIXES = _lines(
    """
    Northwind
    Bluefin
    Cedar
    Harbor
    Aster
    Granite
    Lumen
    Pioneer
    Summit
    Riverbend
    Copperleaf
    Brightpath
    Ironwood
    Silverline
    Maple
    Oakridge
    Skyward
    Tidewater
    Quarry
    Vantage
    Kestrel
    Juniper
    Meridian
    Orchid
    Polaris
    Redwood
    Sable
    Tandem
    Willow
    Zephyr
    Beacon
    Canyon
    Driftwood
    Ember
    Fjord
    Hollow
    Indigo
    Keystone
    Larkspur
    Halcyon
    Marigold
    Nimbus
    Osprey
    Pinecrest
    Saltmarsh
    """
)
_COMPANY_SUFFIXES = _lines(
    """
    Logistics
    Health
    Analytics
    Labs
    Foods
    Financial
    Energy
    Retail
    Media
    Systems
    Partners
    Capital
    Robotics
    Studios
    Insurance
    Travel
    Education
    Pharma
    Manufacturing
    Software
    Group
    Consulting
    Mobility
    Games
    Biotech
    """
)
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (
        _words(
            """
            Emma Liam Olivia Noah Ava James Sophia Lucas Mia Ethan Priya Arjun
            Chen Wei Aisha Omar Hannah Daniel Grace Samuel Chloe Ryan Zoe Marcus
            Nina Tom Rachel Kevin Fatima Diego Yuki Kenji Sarah David Laura
            Michael Jessica Ben Amara Tariq Siobhan Connor Anjali Rohan Megan
            """
        ),
        _words(
            """
            Smith Johnson Patel Nguyen Garcia Brown Kim Williams O'Connor Khan Lee
            Martin Rossi Chen Okafor Davis Walker Hughes Murphy Singh Taylor
            Clarke Lopez Anderson Thompson Wright Evans Baker Cohen Park Ito
            Mensah Byrne Sharma Campbell Reid Foster Adeyemi Novak Fraser
            """
        ),
    ),
    "de": (
        _words(
            """
            Lukas Anna Jonas Lea Felix Sophie Maximilian Marie Paul Laura Jan
            Katharina Tobias Julia Niklas Lena Stefan Sabine
            """
        ),
        _words(
            """
            Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann
            Schäfer Koch Richter Wolf Neumann Braun Krüger
            """
        ),
    ),
    "fr": (
        _words(
            """
            Camille Louis Chloé Hugo Manon Jules Léa Arthur Inès Théo Julie
            Nicolas Élodie Mathieu Claire Antoine
            """
        ),
        _words(
            """
            Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau
            Lefèvre Girard Fontaine Rousseau Mercier
            """
        ),
    ),
    "es": (
        _words(
            """
            Lucía Hugo María Pablo Carmen Javier Sofía Diego Elena Alejandro
            Paula Sergio Marta Andrés Valentina
            """
        ),
        _words(
            """
            García Fernández González Rodríguez López Martínez Sánchez Pérez
            Gómez Ruiz Díaz Moreno Navarro Torres Romero
            """
        ),
    ),
    "pt": (
        _words(
            """
            João Maria Pedro Ana Lucas Beatriz Gabriel Juliana Rafael Larissa
            Thiago Camila Felipe Mariana Bruno
            """
        ),
        _words(
            """
            Silva Santos Oliveira Souza Rodrigues Ferreira Alves Pereira Lima
            Gomes Costa Ribeiro Carvalho Almeida Barbosa
            """
        ),
    ),
}
_AGENTS = _lines(
    """
    Maya
    Jordan
    Alex
    Sam
    Priyanka
    Tomás
    Ingrid
    Kofi
    Hana
    Luca
    """
)
_TITLES = _lines(
    """
    IT Manager
    Head of Finance
    Accounts Payable Specialist
    Operations Lead
    Systems Administrator
    Customer Success Manager
    VP Engineering
    Office Manager
    Procurement Lead
    Data Engineer
    CTO
    Support Lead
    Finance Director
    Platform Engineer
    Security Engineer
    Product Manager
    Revenue Operations Analyst
    Head of People
    """
)
_PRODUCTS = [
    "Workspace",
    "Insights",
    "Flows",
    "Sync",
    "Developer Platform",
    "Mobile",
    "Forms",
    "Customer Portal",
]
_SSO_PROVIDERS = (
    "Okta",
    "Microsoft Entra ID",
    "Azure AD",
    "Google Workspace",
    "OneLogin",
    "Ping Identity",
    "JumpCloud",
    "Auth0",
)
_CONNECTORS = (
    "Salesforce",
    "Slack",
    "NetSuite",
    "HubSpot",
    "Jira",
    "Zendesk",
    "Microsoft Teams",
    "Snowflake",
    "BigQuery",
    "ServiceNow",
    "Marketo",
    "QuickBooks",
    "Xero",
    "Workday",
)
_ENDPOINTS = (
    "/v2/contacts",
    "/v2/events",
    "/v2/records/search",
    "/v1/reports/export",
    "/v2/users",
    "/v2/webhooks",
    "/v2/projects/{id}/items",
    "/v1/usage",
)
_ERROR_CODES = (
    "ERR_SYNC_4102",
    "E-1042",
    "CONN_TIMEOUT",
    "ERR_QUOTA_EXCEEDED",
    "E-5003",
    "AUTH_TOKEN_EXPIRED",
    "ERR_MAPPING_INVALID",
    "E-2210",
)
_HTTP_STATUSES = (500, 502, 503, 504)
_FEATURES = (
    "audit log export",
    "custom roles",
    "advanced analytics",
    "sandbox environments",
    "data residency controls",
    "SAML SSO",
    "priority support",
    "custom domains",
    "unlimited automations",
    "guest accounts",
    "bulk import",
    "scheduled reports",
)
_VULNERABILITIES = (
    "stored XSS in comments",
    "IDOR on the export endpoint",
    "open redirect on login",
    "CSRF on workspace settings",
    "SSRF via webhook URL",
)
# Spelled out here because strftime's names follow the process locale.
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
_KEY_NEIGHBOURS = {
    "a": "qsz",
    "s": "adwx",
    "e": "wrd",
    "r": "etf",
    "t": "ryg",
    "i": "uok",
    "o": "ipl",
    "n": "bm",
    "m": "n",
    "l": "kp",
    "d": "sfe",
    "c": "xv",
    "u": "yi",
    "h": "gj",
    "g": "fh",
    "p": "ol",
}
_IMPACTS = ("Just me", "My team", "Several teams", "Whole company", "Not sure")

# --- shared English fragments ---

_GREETINGS = _lines(
    """
    Hi,
    Hello,
    Hi team,
    Hello support,
    Hi there,
    Dear Support Team,
    Good morning,
    Good afternoon,
    Hey,
    Hi {agent},
    Hello {agent},
    Dear {agent},
    To whom it may concern,
    Hi folks,
    Morning all,
    Hi {vendor} team,
    """
)
_OPENERS = _lines(
    """
    Hope you're well.
    I hope this finds you well.
    Thanks for the quick help last time.
    I'm reaching out on behalf of {company}.
    I'm the admin for our {company} workspace.
    Quick question for you.
    Following up on a call with {csm} earlier this week.
    I couldn't find an answer in the help centre, so I'm writing in.
    Apologies if this is the wrong place for this.
    Writing in about our {product} subscription.
    We've been customers for a while and haven't seen this before.
    Not sure who owns this, so starting here.
    {manager} asked me to raise this with you.
    Happy {weekday}!
    """
)
_ANGRY_LINES = _lines(
    """
    This is the third time we've raised this.
    Honestly, this is unacceptable.
    We pay for the {plan} plan and this is not the service we expected.
    I need someone to actually look at this today.
    If this isn't resolved by end of day I'll be escalating to {csm}.
    Nobody has replied to my last two emails.
    Frankly, we're considering other vendors over this.
    Please don't send me another help-centre link.
    This has cost my team most of the morning.
    I expect a proper answer, not a canned response.
    How is this still not fixed?
    """
)
_POLITE_LINES = _lines(
    """
    No rush on this, whenever you get a chance.
    Thanks so much in advance!
    Really appreciate your help.
    Let me know if you need anything else from me.
    Happy to jump on a call if that's easier.
    Thanks for looking into it.
    I appreciate you taking the time.
    Thank you, you've always been very helpful.
    """
)
_URGENT_LINES = _lines(
    """
    This is blocking us right now.
    Please treat this as urgent.
    We have a deadline on {weekday}.
    Our leadership is asking for an update.
    We need this sorted before the end of the week.
    """
)
_CLOSINGS = _lines(
    """
    Thanks,
    Thank you,
    Best,
    Best regards,
    Kind regards,
    Regards,
    Cheers,
    Many thanks,
    Thanks in advance,
    Warm regards,
    Sincerely,
    Thx,
    """
)
_SIGNATURES = (
    "{first}",
    "{first} {last}",
    "{first} {last}\n{title} | {company}",
    "{first} {last}\n{title}\n{company}\n{phone}",
    "{first} {last} | {title}\n{company} | {website}",
    "-- \n{first} {last}\n{title}, {company}\nm: {phone}",
)
_FOOTERS = _paragraphs(
    """
    Sent from my iPhone

    Sent from Outlook for Android

    CONFIDENTIALITY NOTICE: This message and any attachments are intended only
    for the addressee and may contain confidential information. If you received
    it in error, please delete it and notify the sender.

    Please consider the environment before printing this email.

    {company} | {website}

    This email was scanned by our mail gateway.

    Our office hours are Monday to Friday, 9:00 to 17:00.
    """
)
_GENERIC_SUBJECTS = _lines(
    """
    Question
    Help needed
    Urgent
    Issue with our account
    Support request
    {company} - support request
    Problem
    Need assistance
    Quick question
    Follow up
    Account issue
    Please help
    (no subject)
    Request from {company}
    Hello
    """
)
_GENERIC_DETAILS = _lines(
    """
    We're on the {plan} plan.
    Our account is under {company}.
    Our workspace is {workspace}.
    This started around {date}.
    I've cc'd {manager}, who is also involved.
    Screenshot attached.
    It's affecting about {count} people on our side.
    Our account manager is {csm}.
    I'm the main admin on the account.
    We're based in {country_in}, if that matters.
    Not sure if this is related to the change last week.
    Ticket {case} might have some history on this.
    """
)
_SECOND_TOPIC_CONNECTORS = (
    "Also, unrelated:",
    "Separately,",
    "One more thing while I have you:",
    "PS:",
    "Less urgent, but",
    "While I'm here,",
    "Second (minor) thing:",
    "On a different note,",
    "And a smaller question:",
)
_PRIMARY_EMPHASIS = _lines(
    """
    The first issue is the urgent one.
    Please prioritise the first point.
    The second thing can wait; the first can't.
    Mainly I need help with the first problem.
    """
)
_CHAT_HELLOS = ("hi", "hello", "hey there", "hi!", "good morning", "hello?")
_BOT_PROMPTS = (
    "Hi! What can we help you with today?",
    "Welcome! Tell us a little about your question.",
    "Hello 👋 How can we help?",
)
_FOLLOW_UPS = _lines(
    """
    Any update on this?
    Hi again - this is still happening today.
    Attaching the details you asked for.
    Thanks, but that didn't fix it.
    Just checking in, we're still stuck.
    Following up, as I haven't heard back.
    Is there any news? It's been a few days.
    We tried what you suggested and nothing changed.
    Bumping this, please.
    """
)
_NEW_TOPIC_LINES = _lines(
    """
    Replying here because it's easier - different issue this time.
    Thanks for sorting the last one. New question:
    Reusing this thread for something new:
    Unrelated to the below, but:
    Separate problem now, sorry to reuse the thread.
    """
)
_AGENT_QUESTIONS = _lines(
    """
    Could you send a screenshot of what you see?
    Can you confirm which workspace this is for?
    Could you tell us when this started?
    We've passed this to the right team and will update you shortly.
    Could you share the exact error message?
    Can you confirm the email address of the affected user?
    I've raised this internally and will come back to you within a day.
    Would you be available for a short call tomorrow?
    """
)
_BACKGROUND = _lines(
    """
    For context, {company} has used {product} since {year}.
    We now have about {seats} people on the {plan} plan.
    I'm the {title} here and look after our workspace together with {manager}.
    We're in the middle of a rollout to our {country} offices, so timing matters.
    Our team works across three time zones, so I'll give as much detail as I can.
    Sorry for the long email; I want to give you everything in one go.
    We had something similar a year ago (ticket {case}); this looks different.
    I'll describe exactly what we see and what we've already checked.
    """
)
_TRIED_STEPS = _lines(
    """
    Logged out and back in.
    Tried Chrome, Firefox and Edge.
    Cleared the browser cache and cookies.
    Checked your status page.
    Asked {manager} to try from their account.
    Read the help-centre articles on this.
    Tried again from a different network.
    Waited a few hours in case it was temporary.
    Compared the settings with our other workspace.
    Checked with our IT team that nothing changed on our side.
    """
)
_LOG_INTROS = _lines(
    """
    Here is what we see:
    Pasting the relevant output below:
    Excerpt for reference:
    This is what I copied:
    Details below:
    """
)

_MINOR_FIRST = _lines(
    """
    Two things, the small one first.
    A minor point before the real problem:
    Quick aside before the main issue:
    First, something minor.
    """
)
_MAIN_NEXT = _lines(
    """
    Now the important part:
    The main reason I'm writing, though:
    More importantly:
    But the real problem is this:
    The urgent one:
    """
)

# Interchangeable phrasings; `_paraphrase` swaps about half of those it finds,
# so one template yields many surface forms. Each phrase is in one group only.
_VARIANT_GROUPS = (
    ("can't", "cannot", "can not"),
    ("doesn't", "does not"),
    ("isn't", "is not"),
    ("didn't", "did not"),
    ("haven't", "have not"),
    ("We're", "We are"),
    ("we're", "we are"),
    ("I'm", "I am"),
    ("I've", "I have"),
    ("Could you", "Can you", "Would you"),
    ("We'd like", "We would like", "We want"),
    ("we'd like", "we would like", "we want"),
    ("admin console", "admin panel", "admin area"),
    ("help centre", "help center", "knowledge base"),
    ("this morning", "earlier today", "first thing today"),
    ("right now", "at the moment", "currently"),
    ("as soon as possible", "ASAP", "urgently"),
    ("immediately", "right away", "straight away"),
    ("our invoice", "our bill"),
    ("charged", "billed"),
    ("seats", "licences", "licenses", "user licences"),
    ("sign in", "log in"),
    ("a few", "a couple of", "several"),
    ("colleague", "coworker", "teammate"),
    ("customers", "clients"),
    ("this issue", "this problem"),
    ("known issue", "known problem"),
    ("email", "e-mail"),
    ("Thanks", "Thank you"),
    ("started", "began"),
    ("please", "kindly"),
    ("broken", "not working"),
    ("everyone", "everybody", "all of us"),
    ("last week", "a few days ago", "recently"),
    ("We need", "We require", "We'd need"),
)
_VARIANTS_OF = {phrase: group for group in _VARIANT_GROUPS for phrase in group}
_VARIANT_PATTERN = re.compile(
    r"\b(?:"
    + "|".join(re.escape(phrase) for phrase in sorted(_VARIANTS_OF, key=len)[::-1])
    + r")\b"
)

# Which queues a queue's tickets are most often confused with, and facts
# stated in each queue's words that do not make a ticket belong to it.
_CONFUSABLE: dict[str, tuple[str, ...]] = {
    "provisioning_entitlements": (
        "billing_invoicing",
        "revenue_operations",
        "collections",
    ),
    "collections": ("billing_invoicing", "provisioning_entitlements"),
    "billing_invoicing": ("revenue_operations", "integrations_api", "collections"),
    "revenue_operations": ("billing_invoicing", "provisioning_entitlements"),
    "identity_access": ("security", "provisioning_entitlements"),
    "security": ("identity_access", "billing_invoicing"),
    "platform_operations": ("integrations_api", "identity_access"),
    "integrations_api": ("platform_operations", "billing_invoicing"),
    "general_support": (
        "billing_invoicing",
        "security",
        "integrations_api",
        "identity_access",
    ),
}
_DECOY_CONTEXT: dict[str, tuple[str, ...]] = {
    "billing_invoicing": _lines(
        """
        Invoice {invoice} was paid in full on {date}.
        We pay {amount} a month by card for the {plan} plan.
        Our billing contact is {manager} and the last invoice was correct.
        The {month} invoice arrived as usual and has been paid.
        """
    ),
    "collections": _lines(
        """
        We had an overdue balance in {month}, but it was settled.
        We got a payment reminder last week and paid it the same day.
        Our account was briefly on hold for non-payment last year.
        """
    ),
    "revenue_operations": _lines(
        """
        We signed the expansion order form {order} on {date}.
        Our renewal went through on {date}.
        We're halfway through a three-year contract.
        We moved from {plan} to {plan_new} at the last renewal.
        """
    ),
    "provisioning_entitlements": _lines(
        """
        We added {seats_added} seats last month.
        Our new workspace was set up on {date}.
        All {seats} of our licences are assigned.
        """
    ),
    "identity_access": _lines(
        """
        Everyone signs in through {sso}.
        Our users are provisioned by SCIM from {sso}.
        We enforce MFA for all admins.
        """
    ),
    "security": _lines(
        """
        Our security team reviews access every quarter.
        We rotated all our API keys after our last audit.
        Our CISO asked me to double-check this.
        """
    ),
    "platform_operations": _lines(
        """
        Your status page shows everything green.
        The app itself has been fast today.
        There was an outage notice earlier this week, but that was resolved.
        """
    ),
    "integrations_api": _lines(
        """
        We use the {connector} connector and your REST API.
        Our webhooks have been running fine.
        Our developers use the Python SDK.
        """
    ),
    "general_support": _lines(
        """
        I read the help-centre article on this.
        We're fairly new to {product}.
        """
    ),
}

# Very short texts that several queues receive, with how often each does: the
# best any model can do with these is pick the likeliest queue.
_AMBIGUOUS_SHORT_TEXTS: tuple[tuple[str, dict[str, float]], ...] = (
    (
        "account suspended",
        {"collections": 3, "provisioning_entitlements": 1, "security": 1},
    ),
    ("account locked??", {"identity_access": 3, "security": 1, "collections": 1}),
    (
        "seats",
        {
            "provisioning_entitlements": 2,
            "revenue_operations": 2,
            "billing_invoicing": 1,
        },
    ),
    ("invoice?", {"billing_invoicing": 3, "collections": 1}),
    ("api not working", {"integrations_api": 2, "platform_operations": 2}),
    ("login very slow", {"platform_operations": 2, "identity_access": 2}),
    (
        "cant access our workspace",
        {
            "identity_access": 2,
            "collections": 1,
            "provisioning_entitlements": 1,
            "platform_operations": 1,
        },
    ),
    (
        "please call me back",
        {"general_support": 2, "revenue_operations": 1, "billing_invoicing": 1},
    ),
    ("cancel", {"revenue_operations": 3, "billing_invoicing": 1}),
    ("refund", {"billing_invoicing": 3, "revenue_operations": 1}),
    ("upgrade", {"revenue_operations": 2, "provisioning_entitlements": 2}),
    ("urgent!!", {"platform_operations": 2, "security": 1, "general_support": 1}),
    (
        "data missing",
        {"platform_operations": 2, "integrations_api": 1, "security": 1},
    ),
    ("sync broken", {"integrations_api": 3, "identity_access": 1}),
    ("users missing", {"identity_access": 2, "provisioning_entitlements": 2}),
    ("payment", {"billing_invoicing": 2, "collections": 2}),
    ("need help with {product}", {"general_support": 3, "platform_operations": 1}),
    (
        "weird email from you?",
        {"security": 2, "collections": 1, "billing_invoicing": 1},
    ),
    ("help", {"general_support": 3, "identity_access": 1}),
)

# Tickets whose text fits two or three queues, because the taxonomy's
# descriptions overlap; what decided the queue (account status, contract) is
# not in the text. Weights say how often each queue gets the text.
_BORDERLINE_ISSUES: tuple[tuple[str, dict[str, float]], ...] = (
    (
        "We paid, but our account is still restricted.",
        {"collections": 2, "provisioning_entitlements": 2, "billing_invoicing": 1},
    ),
    (
        "Our users can't get into the workspace since {date}.",
        {
            "identity_access": 2,
            "platform_operations": 1,
            "collections": 1,
            "provisioning_entitlements": 1,
        },
    ),
    (
        "The number of seats we pay for doesn't match what the admin console shows.",
        {
            "billing_invoicing": 2,
            "provisioning_entitlements": 2,
            "revenue_operations": 1,
        },
    ),
    (
        "We'd like to move to a smaller plan from next month. What happens to our "
        "data and our bill?",
        {"revenue_operations": 2, "billing_invoicing": 1, "general_support": 1},
    ),
    (
        "The {connector} sync has been slow all day and some records are missing.",
        {"integrations_api": 2, "platform_operations": 2},
    ),
    (
        "Someone on our team got a strange sign-in notification from {sso}.",
        {"security": 2, "identity_access": 2},
    ),
    (
        "Our API requests fail now and then with timeouts.",
        {"integrations_api": 2, "platform_operations": 2},
    ),
    (
        "Can you send us the paperwork for the new seats?",
        {"revenue_operations": 2, "billing_invoicing": 2},
    ),
    (
        "We need to add {seats_added} people to the account next week.",
        {
            "revenue_operations": 2,
            "provisioning_entitlements": 2,
            "identity_access": 1,
        },
    ),
    (
        "A user has left the company; please remove their access and stop "
        "charging us for them.",
        {
            "identity_access": 2,
            "billing_invoicing": 1,
            "provisioning_entitlements": 1,
        },
    ),
    (
        "Our trial ended and now we can't use {product}. We're ready to buy.",
        {"revenue_operations": 2, "provisioning_entitlements": 2},
    ),
    (
        "There's a charge we don't recognise, and some settings changed that "
        "nobody here touched.",
        {"billing_invoicing": 2, "security": 1},
    ),
    (
        "The numbers in our reports differ from what we get through the API.",
        {"general_support": 2, "integrations_api": 1, "platform_operations": 1},
    ),
    (
        "How do we set up SSO for the whole team?",
        {"identity_access": 2, "general_support": 2},
    ),
    (
        "Our account shows a warning banner about the subscription.",
        {"collections": 2, "revenue_operations": 1, "billing_invoicing": 1},
    ),
    (
        "Webhooks and the dashboard have both been lagging since the morning.",
        {"platform_operations": 2, "integrations_api": 1},
    ),
    (
        "Who can we talk to about the data processing agreement?",
        {"security": 2, "revenue_operations": 1, "general_support": 1},
    ),
    (
        "We moved to the {plan_new} plan and the price looks wrong.",
        {
            "billing_invoicing": 2,
            "revenue_operations": 1,
            "provisioning_entitlements": 1,
        },
    ),
    (
        "Our exports have been missing rows since the last release.",
        {"platform_operations": 2, "general_support": 1, "integrations_api": 1},
    ),
    (
        "Please deactivate the contractors who finished last week.",
        {"identity_access": 3, "provisioning_entitlements": 1},
    ),
    (
        "The admin who set up our account has left and we need to take it over.",
        {"identity_access": 2, "security": 1, "revenue_operations": 1},
    ),
    (
        "We keep getting emails about our account status and don't understand them.",
        {"collections": 2, "billing_invoicing": 1, "general_support": 1},
    ),
)
_GENERIC_ASKS = _lines(
    """
    Can someone look at this?
    What do we need to do?
    Please advise.
    Who can help with this?
    Can you check on your side?
    Could someone get back to me today?
    """
)

# --- per-queue English templates ---

_TEXT: dict[str, _QueueText] = {
    "billing_invoicing": _QueueText(
        subjects=_lines(
            """
            Question about invoice {invoice}
            Incorrect charge on our {month} invoice
            Refund request
            Refund for duplicate charge
            Need a credit note for {invoice}
            Update payment method
            Card declined - how do we update it?
            VAT number missing from invoice
            Change of billing contact
            Why did our price go up?
            Invoice in the wrong currency
            Double charged this month
            Tax on invoice {invoice}
            Copies of last year's invoices
            Billing address change
            Unexpected charge of {amount}
            Prorated charges question
            PO number on invoices
            Switch to annual invoicing
            Charged after downgrade
            """
        ),
        issues=_paragraphs(
            """
            We were charged {amount} on {date}, but our plan should only be
            {amount2} a month.

            Invoice {invoice} shows {seats} seats, but we only have {count} active
            users.

            Our card was charged twice for the {month} renewal: two identical
            charges of {amount}.

            We need a refund for invoice {invoice}; it was issued after we had
            already cancelled the add-on.

            Could you issue a credit note against {invoice}? The amount should be
            {amount2}, not {amount}.

            Invoice {invoice} is missing our VAT number {vat}, so our finance team
            can't book it.

            The invoice was issued in US dollars but our contract says we're billed
            in euros.

            We'd like to change the card on file from the {card} ending {last4} to a
            company card.

            Our payment method was declined and I can't find where to update it in
            the admin console.

            The price per seat on our latest invoice went from {amount2} to {amount}
            without any notice.

            Can the billing contact be changed from {manager} to our accounts
            payable team at ap@{domain}?

            We were charged sales tax on invoice {invoice} even though we're tax
            exempt and sent you the certificate.

            Our finance team needs all invoices from the last 12 months as PDFs for
            the audit.

            The invoice shows a prorated charge of {amount2} in the middle of the
            month and I don't understand what it's for.

            Please add our PO number {po} to invoice {invoice}; our AP team rejects
            invoices without one.

            We got a charge of {amount} for overage on the {product} add-on, which
            we never enabled.

            The billing address on our invoices is still our old office and needs
            updating.

            We were charged the full monthly price after downgrading to {plan} on
            {date}.

            The invoice total doesn't match the quote: {amount} billed against
            {amount2} agreed.

            There's a line called 'platform fee' on {invoice} that we don't
            recognise.

            Can we move from monthly card payments to annual invoicing with bank
            transfer?

            Our receipts don't show the VAT breakdown that is required in
            {country_in}.

            The refund you confirmed on {date} for {amount2} still hasn't reached
            our account.
            """
        ),
        details=_lines(
            """
            The charge shows on our statement on {date}.
            Our plan is {plan} with {seats} seats, billed monthly.
            The invoice PDF I downloaded today still shows the old amount.
            Our contract says pricing is fixed until renewal.
            We had no email about a price change.
            I've attached the bank statement showing both charges.
            Our VAT ID is {vat}.
            The previous invoice, {invoice2}, was correct.
            Our accounts payable system flags any invoice without a PO.
            Our budget for this tool was approved at {amount2} a month.
            Finance closes the month on Friday.
            """
        ),
        asks=_lines(
            """
            Can you refund the difference?
            Please send a corrected invoice.
            Could you reissue the invoice with the right details?
            Please confirm what the charge is for.
            Can you refund the duplicate charge to the original card?
            What's the process to get a credit note?
            Please update it before the next billing run.
            Could you send a breakdown of the charges?
            How long will the refund take to show up?
            """
        ),
        short=_lines(
            """
            refund?
            invoice wrong
            double charged
            need invoice copy
            update card
            vat missing on invoice
            why charged {amount}?
            billing question
            wrong amount on invoice {invoice}
            credit note pls
            receipt?
            """
        ),
        portal_topic="Billing",
        log_header="Date        Description                           Qty   Amount",
        log_lines=_lines(
            """
            {ldate}  {plan} plan - monthly subscription          {n}   {amount}
            {ldate}  Seat adjustment (prorated)                  {n}   {amount2}
            {ldate}  {product} add-on                            1     {amount2}
            {ldate}  API overage                                 {n}   {amount}
            {ldate}  VAT ({percent})                                   {amount2}
            {ldate}  Credit applied                                    -{amount2}
            {ldate}  Platform fee                                1     {amount}
            {ldate}  Onboarding package                          1     {amount2}
            {ldate}  Total due                                         {amount}
            """
        ),
        log_repeats=False,
    ),
    "collections": _QueueText(
        subjects=_lines(
            """
            Overdue notice for {invoice}
            Account suspended for non-payment
            Payment plan request
            Reinstate our account - payment sent
            Received a dunning email
            Final notice - {invoice}
            Past due balance question
            Payment sent, please restore access
            Request to extend payment terms
            Why is our account on hold?
            Remittance for overdue invoices
            Outstanding balance of {amount}
            Late fee on {invoice}
            """
        ),
        issues=_paragraphs(
            """
            We received a final notice saying {invoice} is {days} days overdue.

            Our account was suspended this morning for an unpaid balance of
            {amount}.

            We've just paid the overdue balance on {invoice} by wire; please
            reinstate the account.

            Cash flow is tight this quarter. Can we split the {amount} balance into
            three monthly payments?

            We keep getting dunning emails for {invoice}, but our AP team says it
            was paid on {date}.

            Your system says we're past due by {amount} and the admin console shows
            a suspension warning.

            A collections reminder went to our CEO instead of accounts payable.

            We need a few more weeks to pay {invoice}; the budget is approved but
            the PO is stuck internally.

            Our workspace went read-only because of an overdue balance, but payment
            went out yesterday.

            We were told the account will be suspended on {date} if the balance
            isn't cleared.

            Please send remittance details so we can clear the outstanding
            {amount}.

            Can you pause the dunning reminders while we sort out payment
            internally?

            The late fee on {invoice} looks wrong; we paid within the grace period.

            We disputed a charge with our bank by mistake and now the account is
            flagged as unpaid.

            Our card failed on the last three payment attempts and now we're
            getting overdue notices.

            We'd like to settle all outstanding invoices in one payment. What is
            the total we owe?
            """
        ),
        details=_lines(
            """
            The payment reference was {invoice}.
            Remittance advice attached.
            Our AP team paid from our {country} entity.
            The wire went out on {date} and should clear in two business days.
            We have {count} users who can't work while the account is on hold.
            Our payment terms are net 30 under the contract.
            We changed banks recently, which may explain the failed payment.
            The reminders come from billing-noreply.
            The payment confirmation number is {po}.
            """
        ),
        asks=_lines(
            """
            Please lift the suspension as soon as the payment clears.
            Can you confirm the exact amount to pay to restore service?
            Could you set up a payment plan for us?
            Please confirm the balance is cleared and stop the reminders.
            Who should our AP team contact about this?
            Can you hold off on suspending us until {date}?
            Please reinstate access today; we'll send proof of payment.
            """
        ),
        short=_lines(
            """
            account suspended - paid now
            payment plan?
            overdue invoice
            stop the dunning emails
            restore account pls, we paid
            past due??
            final notice {invoice}
            """
        ),
        portal_topic="Billing",
        log_header="----- Forwarded reminder -----",
        log_lines=_lines(
            """
            Subject: Reminder: invoice {invoice} is past due
            Your balance of {amount} was due on {ldate}.
            Please pay within 7 days to avoid interruption of service.
            If you have already paid, please disregard this message.
            Amount outstanding: {amount}
            Days overdue: {n}
            Pay online or by bank transfer quoting {invoice}.
            Account status: ON HOLD
            Questions? Reply to this email and our receivables team will help.
            """
        ),
        log_repeats=False,
    ),
    "revenue_operations": _QueueText(
        subjects=_lines(
            """
            Renewal quote for {company}
            Adding seats to our contract
            Cancel our subscription
            Downgrade at renewal
            Contract amendment needed
            Co-terming the new add-on
            Quote {quote} has the wrong pricing
            Request for a multi-year quote
            Order form for expansion
            Notice of non-renewal
            Upgrade from {plan} to {plan_new}
            Change of legal entity on the contract
            Signed order form attached
            Pricing for extra {product} licences
            """
        ),
        issues=_paragraphs(
            """
            Our renewal is coming up on {date} and we'd like a quote for
            {seats_total} seats instead of {seats}.

            We want to add {seats_added} seats mid-term and co-term them with our
            existing contract.

            Please treat this email as our notice of non-renewal for the {plan}
            subscription.

            We'd like to downgrade from {plan} to a smaller plan at the next
            renewal.

            Quote {quote} includes a {percent} uplift that was never discussed with
            our account executive.

            Our legal entity changed after an acquisition, so the contract needs an
            amendment.

            Can we get a three-year quote with the discount {csm} mentioned?

            I've attached the signed order form {order} for the {product}
            expansion.

            We want to cancel the {product} add-on at the end of the current term.

            The order form says {seats_total} seats but we agreed on {seats}.

            Please send a quote to upgrade from {plan} to {plan_new}, co-termed to
            our renewal date.

            We'd like to move our renewal date to line up with our fiscal year in
            {month}.

            Our procurement team needs a revised quote before they can raise a PO.

            We want to end the contract early. What are our options?

            Could you merge our two subscriptions into a single contract?
            """
        ),
        details=_lines(
            """
            Our current term ends on {date}.
            The contract number is {contract}.
            Our account executive was {csm}, but I think they've moved on.
            Procurement needs three business days to approve any order.
            We're open to a multi-year deal if the price is right.
            Next year's budget is being finalised this month.
            The original quote was {quote}.
            """
        ),
        asks=_lines(
            """
            Can you send an updated quote?
            Please confirm the cancellation in writing.
            Who is our account executive now?
            Could you send the amendment for signature?
            What would the prorated cost be?
            Please process the order as soon as possible.
            """
        ),
        short=_lines(
            """
            renewal quote pls
            cancel subscription
            quote for more seats
            downgrade at renewal
            contract amendment
            co-term?
            """
        ),
        portal_topic="Orders and renewals",
        log_header="Order form {order} - summary",
        log_lines=_lines(
            """
            Customer: {company}
            Subscription term: 12 months starting {ldate}
            Plan: {plan_new}
            Seats: {seats_total}
            List price per seat: {amount2}
            Discount: {percent}
            Total contract value: {amount}
            Billing frequency: annual in advance
            Co-term with contract {contract}: yes
            Signed by: {manager}
            """
        ),
        log_repeats=False,
    ),
    "provisioning_entitlements": _QueueText(
        subjects=_lines(
            """
            New seats not showing up
            Feature not enabled after upgrade
            Workspace creation request
            Plan limits still on old tier
            Licence count is wrong
            Please activate {product}
            Sandbox tenant request
            Add-on purchased but not active
            Seat limit reached although we bought more
            Entitlements missing after renewal
            Need a second workspace for {region}
            Trial extension
            Our {plan_new} features are missing
            """
        ),
        issues=_paragraphs(
            """
            We bought {seats_added} extra seats on {date} but the admin console
            still shows a limit of {seats}.

            We upgraded to {plan_new} last week and the {feature} feature is still
            locked.

            Please create a new workspace for our {region} team under the same
            contract.

            The {product} add-on we purchased isn't active in our tenant.

            Our seat limit is reached and new users get 'no licence available',
            even though we have {seats_total} licences.

            After the renewal our entitlements went back to the {plan} defaults.

            We need a sandbox tenant to test before the {product} rollout.

            The API call limit on our account still reflects the old plan.

            Can you extend our {product} trial by {days} days? Procurement is still
            reviewing.

            Our storage quota shows 100 GB, but the {plan_new} plan includes 1 TB.

            Some users show as 'unlicensed' after we moved them between
            workspaces.

            The activation email for the new tenant never arrived after the
            purchase.

            We need {feature} enabled for our workspace, as agreed in the order
            form.

            Licences of people who left aren't freed up when we deactivate them.

            The licence count in the admin console says {seats} but our contract is
            for {seats_total}.
            """
        ),
        details=_lines(
            """
            The order was confirmed by {csm} on {date}.
            Our tenant ID is {workspace}.
            We have {count} people waiting to be onboarded.
            The other features from the upgrade work fine.
            I've logged out and back in, with no change.
            The order number is {order}.
            """
        ),
        asks=_lines(
            """
            Can you update the entitlements on your side?
            Please activate it today if possible.
            Could you sync the licence count with our contract?
            Let me know when the workspace is ready.
            Please confirm the new limits once applied.
            """
        ),
        short=_lines(
            """
            seats not showing
            feature still locked after upgrade
            need a new workspace
            licence limit wrong
            activate add-on pls
            trial extension?
            """
        ),
        portal_topic="Account and licences",
        log_lines=_lines(
            """
            {ts} entitlements {account_id} seats={seats}/{seats_total} PENDING
            {ts} licence-service assign user={user} result=NO_SEAT_AVAILABLE
            {ts} admin-console GET /admin/licences 200 limit={seats}
            {ts} provisioning order={order} step=apply_entitlements error=timeout
            {ts} licence-service assign user={user} result=OK
            {ts} feature-flags tenant={account_id} feature="{feature}" enabled=false
            """
        ),
    ),
    "identity_access": _QueueText(
        subjects=_lines(
            """
            Can't log in
            SSO login failing
            SAML error with {sso}
            SCIM users not syncing
            MFA reset request
            Locked out of my account
            Password reset email not arriving
            Need the admin role for {manager}
            Permission denied in {product}
            Enforcing SSO for all users
            Lost my MFA device
            Users deprovisioned unexpectedly
            Custom role not applying
            Change of account owner
            """
        ),
        issues=_paragraphs(
            """
            Since this morning nobody can sign in through {sso}; we get 'SAML
            response invalid'.

            Our SCIM sync from {sso} stopped creating new users on {date}.

            I lost my phone and can't get past the MFA prompt.

            The password reset email never arrives; I've checked spam.

            {manager} needs admin permissions, but only the account owner can grant
            them and they've left the company.

            Users get 'Access denied' in {product} even though they have the editor
            role.

            We rotated the {sso} signing certificate and now SSO fails for
            everyone.

            After turning on SSO enforcement, contractors without {sso} accounts
            are locked out.

            SCIM is deactivating users who are still active in {sso}.

            Group-to-role mapping from {sso} isn't applied, so everyone lands as a
            viewer.

            I'm getting 'too many login attempts' and I'm locked out for the day.

            We need to transfer ownership of the account from {manager} to me.

            Login redirects in a loop between {sso} and your sign-in page.

            New hires pushed via SCIM show up without any role assigned.

            A user's email address changed after a name change and now they can't
            sign in.

            The custom role we created still lets viewers export data.
            """
        ),
        details=_lines(
            """
            Our IdP is {sso}.
            The error page shows request ID {request_id}.
            It works for some users but not others.
            We changed nothing on our side.
            The SAML tracer shows the assertion arriving.
            About {count} users are affected.
            This started right after we updated the IdP app.
            """
        ),
        asks=_lines(
            """
            Can you check the SSO configuration on your side?
            Please reset MFA on my account.
            Could you restore the users that were removed?
            What should the ACS URL be?
            Please make {manager} an admin.
            Can you unlock the account?
            """
        ),
        short=_lines(
            """
            sso broken
            cant login
            mfa reset pls
            locked out
            scim not syncing
            password reset not coming
            saml error
            """
        ),
        portal_topic="Login and access",
        log_lines=_lines(
            """
            {ts} saml: response rejected: audience mismatch (request {req})
            {ts} saml: signature validation failed for issuer {sso}
            {ts} scim: POST /scim/v2/Users 409 Conflict userName={user}
            {ts} scim: PATCH /scim/v2/Users/{req} 200 active=false
            {ts} auth: login failed user={user} reason=mfa_required
            {ts} auth: account locked user={user} attempts=5
            {ts} saml: InResponseTo mismatch, clock skew {ms}ms
            """
        ),
    ),
    "platform_operations": _QueueText(
        subjects=_lines(
            """
            Dashboard not loading
            Errors across the app
            Is there an outage?
            Very slow response times
            {product} down for us
            Reports stuck in processing
            Sync delayed by hours
            {http_status} errors in {region}
            Data not updating
            Exports failing
            Search returning no results
            Service degraded since {weekday}
            Timeouts when saving
            """
        ),
        issues=_paragraphs(
            """
            The app has been returning {http_status} errors for everyone on our team
            since about {time}.

            Dashboards take over {seconds} seconds to load, when they usually load
            instantly.

            Reports have been stuck in 'processing' for {hours} hours.

            Yesterday's data still hasn't shown up in {product}; the pipeline seems
            delayed.

            We get a 'Something went wrong' page whenever we open {product}.

            Your status page says all systems are operational, but nothing loads
            for us in {region}.

            CSV exports fail after a few minutes with a timeout.

            Search returns no results for records we created today.

            Saving a record hangs and then fails with error {error_code}.

            Scheduled jobs didn't run overnight, so our morning reports are empty.

            The app is painfully slow; every click takes several seconds.

            Uploads fail at around 90% with a network error.

            Notifications are arriving hours late.

            The mobile app can't connect and says the server is unavailable.

            Half of our users see stale data while the others see the update.
            """
        ),
        details=_lines(
            """
            We're hosted in {region}.
            It happens in every browser we tried.
            Our network team confirmed nothing changed on our side.
            It started around {time} UTC.
            Request ID from the error page: {request_id}.
            This affects our whole production team.
            It was fine yesterday.
            """
        ),
        asks=_lines(
            """
            Is there an incident on your side?
            Can you tell us when it will be fixed?
            Please investigate urgently.
            Could you post an update on the status page?
            Please let us know the ETA.
            """
        ),
        short=_lines(
            """
            site down??
            app not loading
            getting {http_status}s
            everything is slow
            outage?
            reports stuck
            is {product} down?
            """
        ),
        portal_topic="Technical issue",
        log_lines=_lines(
            """
            {ts} ERROR upstream timed out (504) path=/app/dashboard req={req} {ms}ms
            {ts} ERROR 503 Service Unavailable GET /api/v2/reports req={req}
            {ts} WARN slow response {ms}ms GET /app/projects
            {ts} ERROR export job {req} failed: deadline exceeded
            {ts} ERROR websocket closed 1006 (abnormal closure)
            {ts} INFO retrying request {req} (attempt {n})
            {ts} ERROR 502 Bad Gateway from {region} edge
            """
        ),
    ),
    "integrations_api": _QueueText(
        subjects=_lines(
            """
            API returning 429
            Webhook deliveries failing
            {connector} connector not syncing
            API key not working
            SDK error after upgrade
            Rate limit increase request
            OAuth token keeps expiring with {connector}
            Webhook signature mismatch
            Question about the {endpoint} endpoint
            {connector} integration duplicates records
            Pagination broken in the API
            API returns 401 with a new key
            """
        ),
        issues=_paragraphs(
            """
            Our calls to {endpoint} started returning 429 Too Many Requests even
            though we're below the documented limit.

            Webhooks to our endpoint have been failing since {date}; the delivery
            log shows {http_status}.

            The {connector} connector stopped syncing contacts; the last successful
            run was on {date}.

            A new API key we generated returns 401 Unauthorized on every request.

            After upgrading the Python SDK to {sdk_version}, client.list() raises a
            TypeError.

            We need a higher rate limit for a one-off backfill of about {count}k
            records.

            The {connector} integration disconnects every few days and asks us to
            re-authorise.

            The webhook signature doesn't match when we verify it with our signing
            secret.

            The {endpoint} endpoint ignores the updated_since filter and returns
            everything.

            The {connector} sync creates duplicate records every time it runs.

            Paging with the cursor parameter returns the same page twice.

            The {connector} app in our workspace shows error {error_code} on its
            settings page.

            Our {connector} field mapping keeps resetting to the defaults.

            The docs say {endpoint} supports bulk updates, but we get a 400 with
            more than 100 items.

            Events from the Slack integration stopped posting to our channel.
            """
        ),
        details=_lines(
            """
            We're on API version v2.
            Sample request ID: {request_id}.
            Our integration runs every {minutes} minutes.
            We authenticate with a service account key.
            The same code worked last week without changes.
            Our middleware also talks to {connector2}.
            """
        ),
        asks=_lines(
            """
            Can you check the logs for our API key?
            Could you raise our rate limit temporarily?
            Is this a known issue with the connector?
            Please tell us the correct request format.
            Can you resend the failed webhooks?
            """
        ),
        short=_lines(
            """
            api 429s
            webhooks failing
            {connector} sync broken
            api key 401
            rate limit increase?
            sdk error
            """
        ),
        portal_topic="Integrations and API",
        log_lines=_lines(
            """
            {ts} POST {endpoint} -> 429 Too Many Requests (retry-after {n}s) req={req}
            {ts} webhook {req} -> https://hooks.{domain}/events 500 attempt {n}/5
            {ts} {connector} sync: fetched {n} records, 0 written, error={error_code}
            {ts} GET {endpoint}?cursor={req} -> 200 (same page as previous)
            {ts} 401 Unauthorized: invalid API key (key id {req})
            {ts} response: {{"error": "rate_limited", "retry_after": {n}}}
            {ts} oauth refresh for {connector} failed: invalid_grant
            """
        ),
    ),
    "security": _QueueText(
        subjects=_lines(
            """
            Suspicious login on our account
            Phishing email pretending to be you
            Vulnerability report
            Possible data exposure
            Compromised account
            SOC 2 report request
            Unknown admin added to our workspace
            API key leaked on GitHub
            Request for pen test summary
            Responsible disclosure: {vuln}
            DPA and ISO 27001 evidence
            Shared link exposing data
            """
        ),
        issues=_paragraphs(
            """
            We saw logins to our admin account from {ip}, which nobody on our team
            recognises.

            Several of our staff received an email that looks like it's from you,
            asking them to re-enter their password.

            I've found a {vuln} vulnerability in {product} and would like to report
            it responsibly.

            A public share link is exposing customer records to anyone with the
            URL.

            One of our users' accounts looks compromised; it sent files to an
            external address.

            An admin account we don't recognise was added to our workspace on
            {date}.

            One of our developers accidentally pushed an API key to a public GitHub
            repository.

            Our security team needs your latest SOC 2 Type II report and pen test
            summary for our vendor review.

            We think data from our workspace appeared in a file shared outside the
            company.

            Please send your ISO 27001 certificate and subprocessor list for our
            audit.

            We noticed mass downloads of reports from one account at 3 a.m.

            A former employee still has access and logged in yesterday.

            Our SIEM flagged requests with our token coming from an unknown IP
            range.
            """
        ),
        details=_lines(
            """
            The IP address was {ip}.
            We've already reset the user's password.
            I've attached the email headers.
            We have to report incidents to our regulator within 72 hours.
            Our CISO, {manager}, is cc'd.
            We haven't disclosed this publicly.
            """
        ),
        asks=_lines(
            """
            Please investigate and tell us what was accessed.
            Can you revoke all active sessions for this account?
            Please send the audit logs for the last 30 days.
            Where should we send the full vulnerability details?
            Can you confirm whether this email came from you?
            """
        ),
        short=_lines(
            """
            phishing email?
            suspicious login
            vuln report
            account compromised
            need soc 2 report
            leaked api key
            """
        ),
        portal_topic="Security",
        log_lines=_lines(
            """
            {ts} login success user={user} ip={ip2} country={country2} mfa=false
            {ts} login failed user={user} ip={ip2} reason=bad_password
            {ts} admin role granted user={user} by=api-token
            {ts} export started user={user} rows={n}000 ip={ip2}
            {ts} api token used from ip={ip2} asn=AS{n}
            {ts} share link created visibility=public item={req}
            """
        ),
    ),
    "general_support": _QueueText(
        subjects=_lines(
            """
            How do I export data?
            Feature request: {feature}
            Question about dashboards
            Feedback on the new editor
            How to set up notifications
            Dark mode?
            Where is the notification setting?
            Training resources
            Bulk edit records
            Can I customise templates?
            Mobile app question
            Suggestion
            How to archive old projects
            Change timezone
            Inviting a colleague
            """
        ),
        issues=_paragraphs(
            """
            How do I export all records in a project to CSV?

            It would be great if {product} had {feature}; we'd use it every day.

            Is there a way to get email notifications only for items assigned to
            me?

            The new editor is harder to use than the old one; I keep losing my
            formatting.

            Can we customise the default templates for new projects?

            Where do I change the timezone for my workspace?

            Do you have training videos for new team members?

            Is it possible to change the status of many records at once?

            How do I archive old projects without deleting them?

            Is there a dark mode for the web app?

            Our team would love keyboard shortcuts in the board view.

            How can I share a dashboard with someone outside our organisation?

            Where can I find the changelog for recent releases?

            Is there a limit to how many custom fields we can add?

            Can I duplicate a report and change only the filters?

            What's the difference between a project and a workspace?

            Can you recommend a good way to structure our projects?

            Some feedback on the onboarding checklist: step 3 is confusing.

            How do I invite a colleague to our workspace?
            """
        ),
        details=_lines(
            """
            We're a team of {count} people using {product}.
            I looked in the help centre but couldn't find it.
            We're moving over from a spreadsheet-based process.
            A screenshot of what I mean is attached.
            This isn't urgent.
            We only started using the product last month.
            """
        ),
        asks=_lines(
            """
            Can you point me to the right article?
            Is this on your roadmap?
            Could you walk me through it?
            Any tips would be appreciated.
            Let me know if this is possible.
            """
        ),
        short=_lines(
            """
            how do i export
            dark mode?
            feature request
            how to change timezone
            question about reports
            where are templates
            how to invite someone
            """
        ),
        portal_topic="How-to question",
        log_header="Environment:",
        log_lines=_lines(
            """
            Browser: Chrome 131 on macOS 15.2
            Workspace: {workspace}
            Plan: {plan}
            Steps: open a project, open the menu, look for the option
            Expected: the option is there
            Actual: I can't find it anywhere
            Screen size: 1440x900
            Language setting: English (UK)
            Step 1: sign in as an admin
            Step 2: open Settings, then Workspace
            Step 3: scroll to the section the help article mentions
            Result: the section is not there for us
            Other admins: same result for {manager}
            """
        ),
        log_repeats=False,
    ),
}

# A word that usually signals one queue, used in a ticket owned by another.
# The labels follow `configs/taxonomy.yaml`: an unpaid-balance suspension is
# collections; a suspension or missing seats despite a paid invoice is a
# provisioning sync problem; a fake invoice is phishing.
_SHARED_VOCABULARY: dict[str, tuple[tuple[str, str], ...]] = {
    "provisioning_entitlements": _pairs(
        """
        Seats missing after payment
        We paid invoice {invoice} on {date} but the {seats_added} new seats never
        appeared in the admin console.

        Paid for the upgrade, still on the old plan
        Invoice {invoice} for the {plan_new} upgrade is marked paid, yet our
        workspace still has {plan} limits.

        Account suspended although the invoice is paid
        Our workspace was suspended this morning even though invoice {invoice}
        shows as paid in your billing portal. It looks like the payment never
        reached our account.

        API add-on not active
        We bought the API add-on, but the API call limit in our tenant is still
        the old one.

        Renewal invoice paid, features gone
        Our renewal went through and the invoice is paid, but {feature} vanished
        from the workspace on {date}.
        """
    ),
    "collections": _pairs(
        """
        Suspended - overdue balance
        Our account was suspended for the overdue balance on {invoice}. We're
        sending payment today; please reinstate us once it clears.

        API access cut off
        Our API access was cut off because of the unpaid invoice. Payment went out
        this morning; how soon will it be restored?

        Apply the credit to what we owe
        Instead of refunding the {amount2} credit, can you apply it to the overdue
        balance on {invoice}?
        """
    ),
    "security": _pairs(
        """
        User suspended after suspicious logins
        We suspended one of our user accounts after seeing logins from {ip}. We
        believe the password was compromised and want to know what was accessed.

        Fake invoice from a lookalike domain
        Our finance team received an invoice that looks like yours, asking us to
        pay {amount} to a new bank account. Is this phishing?

        API key exposed in Slack
        An API key for our billing integration was posted in a public Slack
        channel. Please revoke it and check for misuse.

        Seat added by someone we don't know
        A new paid seat appeared on our account for a user none of us know, with
        admin rights.
        """
    ),
    "billing_invoicing": _pairs(
        """
        API overage on invoice
        Why is there an API overage line of {amount} on invoice {invoice}? We
        thought API calls were included in {plan}.

        Connector add-on billed twice
        The {connector} connector add-on appears twice on our {month} invoice.

        Charged for suspended users
        We're being charged for seats that belong to users we suspended in
        {month}.

        Charged while the account was suspended
        We were charged for the full month even though our account was suspended
        for a week of it.

        Login needed for invoices
        Not a login problem: I just need the invoices for {month} emailed to me
        as PDFs, since I don't have access to the billing page.
        """
    ),
    "integrations_api": _pairs(
        """
        NetSuite invoice sync failing
        Our NetSuite integration stopped pushing invoices into our ERP; the
        connector log shows {http_status} errors.

        invoice.paid webhook not firing
        The invoice.paid webhook isn't reaching our endpoint, so our system never
        marks invoices as paid.

        Seats endpoint returns 403
        The /v2/seats endpoint returns 403 when our script tries to assign
        licences.

        Security scanner flags the SDK
        Our build fails because the {sdk_version} SDK pins an old HTTP library;
        we need a release with the dependency bumped.
        """
    ),
    "identity_access": _pairs(
        """
        Users suspended by SCIM
        SCIM from {sso} suspended {count} users this morning who are still active
        employees.

        Finance can't sign in to see invoices
        Our finance lead can't sign in to check invoices: the SSO login through
        {sso} fails with an error.

        Service account can't create API tokens
        Our service account can no longer create API tokens; it says the role
        lacks permission.

        New seats but nobody can log in
        The new seats are there, but the people we assigned them to get 'user not
        found' at the {sso} login.
        """
    ),
    "revenue_operations": _pairs(
        """
        Quote needed before we pay
        Before we pay any invoice for the new seats we need a formal quote and an
        amended order form for the {seats_added}-seat expansion.

        Drop seats at renewal
        Please cancel the extra {seats_added} seats at renewal so they don't
        appear on the next invoice.

        Price of the API add-on
        What would it cost to add the API add-on to our contract, co-termed with
        the renewal on {date}?
        """
    ),
    "platform_operations": _pairs(
        """
        Invoice PDFs timing out
        Generating invoice PDFs in the app times out with a 504 for all our users
        since {time}.

        API 500s everywhere
        Every API endpoint returns 500 errors in {region}, and the web dashboards
        are down too.

        Login page very slow
        The sign-in page takes a minute to load and sometimes shows a 502. It's
        not SSO: the whole site is slow.
        """
    ),
    "general_support": _pairs(
        """
        Security settings how-to
        Just a how-to: where do I turn on the 'require comments' setting? Not a
        security issue, only a workflow question.

        Feedback on the API docs
        Feedback: your API documentation site is hard to navigate. A search box
        would help a lot.

        Billing page feature request
        Feature request: it would be nice if the billing page showed usage per
        team.

        How do seats work?
        General question: if I invite a guest, does that use up a seat?
        """
    ),
}

# --- monitoring alerts ---

_CRITICAL = {"critical": 0.6, "warning": 0.4}
_WARNING = {"critical": 0.25, "warning": 0.75}

_ALERT_RULES = (
    _AlertRule(
        "platform_operations",
        "HighErrorRate",
        "api-gateway",
        "5xx error rate above {percent} on {service}",
        "The 5xx ratio on {service} in {region} has been above {percent} for "
        "{minutes} minutes.",
        _CRITICAL,
    ),
    _AlertRule(
        "platform_operations",
        "LatencyP99High",
        "report-renderer",
        "p99 latency {latency_ms}ms on {service}",
        "p99 request latency for {service} has exceeded the {threshold_ms}ms SLO "
        "for {minutes} minutes.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "KafkaConsumerLagHigh",
        "ingest-pipeline",
        "Consumer lag {lag} on {service}",
        "Consumer group {service} is {lag} messages behind; data processing is "
        "delayed.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "PodCrashLooping",
        "export-worker",
        "{pod} is crash looping",
        "Pod {pod} restarted 6 times in the last {minutes} minutes.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "DiskAlmostFull",
        "postgres-primary",
        "Disk usage above 90% on {host}",
        "Volume /var/lib/postgresql on {host} will be full in about 4 hours at "
        "the current rate.",
        _CRITICAL,
    ),
    _AlertRule(
        "platform_operations",
        "ReplicationLagHigh",
        "postgres-replica",
        "Replication lag high on {host}",
        "The replica {host} is {minutes} minutes behind the primary; reads may be "
        "stale.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "QueueBacklogGrowing",
        "notification-worker",
        "Backlog growing on {service}",
        "{count} notifications are waiting; the oldest was queued {minutes} "
        "minutes ago.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "EndpointDown",
        "search-indexer",
        "Blackbox probe failing for {service}",
        "The HTTPS probe for {service} in {region} has failed for {minutes} minutes.",
        _CRITICAL,
    ),
    _AlertRule(
        "platform_operations",
        "CertificateExpiringSoon",
        "edge-proxy",
        "TLS certificate on {service} expires in {days} days",
        "The certificate served by {host} expires in {days} days; renewal has not run.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "NodeNotReady",
        "k8s-node",
        "Node {host} NotReady",
        "Kubernetes node {host} has been NotReady for {minutes} minutes; pods "
        "are being rescheduled.",
        _CRITICAL,
    ),
    _AlertRule(
        "platform_operations",
        "InvoiceRunJobFailed",
        "billing-service",
        "Nightly invoice run failed on {service}",
        "The scheduled invoice generation job exited with code 1; {count} "
        "invoices were not produced.",
        _CRITICAL,
    ),
    _AlertRule(
        "platform_operations",
        "HighMemoryUsage",
        "auth-service",
        "Memory above 90% on {pod}",
        "{pod} in {region} is at 93% of its memory limit and may be OOM-killed.",
        _WARNING,
    ),
    _AlertRule(
        "platform_operations",
        "ApiGatewayDown",
        "api-gateway",
        "{service} unavailable in {region}",
        "No healthy upstreams behind {service} in {region}; all requests return 503.",
        {"critical": 1.0},
    ),
    _AlertRule(
        "platform_operations",
        "SyncSchedulerStalled",
        "sync-scheduler",
        "No sync jobs scheduled for {minutes} minutes",
        "{service} has not dispatched a job in {minutes} minutes; customer syncs "
        "are delayed.",
        _WARNING,
    ),
    _AlertRule(
        "security",
        "ImpossibleTravelLogin",
        "auth-service",
        "Impossible-travel login for tenant {tenant}",
        "An admin of tenant {tenant} signed in from {ip} 40 minutes after a login "
        "from another continent.",
        _CRITICAL,
        is_tenant_scoped=True,
        weight=0.35,
    ),
    _AlertRule(
        "security",
        "WAFBlockSpike",
        "edge-proxy",
        "WAF blocked {count} requests from {ip}",
        "The web application firewall blocked {count} SQL injection attempts "
        "from {ip} in {minutes} minutes.",
        _WARNING,
        weight=0.35,
    ),
    _AlertRule(
        "security",
        "MassExportDetected",
        "export-worker",
        "Unusual export volume for tenant {tenant}",
        "One user in tenant {tenant} exported {count} records in {minutes} "
        "minutes, 40 times their baseline.",
        _CRITICAL,
        is_tenant_scoped=True,
        weight=0.35,
    ),
    _AlertRule(
        "integrations_api",
        "WebhookDeliveryFailureRate",
        "webhook-dispatcher",
        "Webhook failures at {percent} for tenant {tenant}",
        "Deliveries to the endpoint configured by tenant {tenant} are failing "
        "at {percent}; retries are exhausted.",
        _WARNING,
        is_tenant_scoped=True,
        weight=0.35,
    ),
    _AlertRule(
        "integrations_api",
        "ConnectorSyncFailing",
        "connector-runner",
        "{connector} connector failing for tenant {tenant}",
        "The {connector} connector for tenant {tenant} has failed its last 5 "
        "runs with AUTH_TOKEN_EXPIRED.",
        _WARNING,
        is_tenant_scoped=True,
        weight=0.35,
    ),
    _AlertRule(
        "identity_access",
        "SAMLCertificateExpiring",
        "auth-service",
        "IdP signing certificate for tenant {tenant} expires in {days} days",
        "SSO for tenant {tenant} will stop working when its IdP signing "
        "certificate expires in {days} days.",
        _WARNING,
        is_tenant_scoped=True,
        weight=0.3,
    ),
    _AlertRule(
        "identity_access",
        "SCIMProvisioningErrors",
        "scim-sync",
        "SCIM 4xx rate high for tenant {tenant}",
        "{percent} of SCIM requests from tenant {tenant} are rejected with 409 "
        "Conflict.",
        _WARNING,
        is_tenant_scoped=True,
        weight=0.3,
    ),
)
_ALERT_FORMATTERS = {
    "alertmanager": _alertmanager_text,
    "datadog": _datadog_text,
    "pagerduty": _pagerduty_text,
    "grafana": _grafana_text,
}

# --- other languages ---
# Written for this sample; each queue has a few issues so that a model meets
# every queue in every language, not a translation of the English templates.

_FOREIGN: dict[str, _LocalText] = {
    "de": _LocalText(
        greetings=_lines(
            """
            Hallo,
            Guten Tag,
            Sehr geehrte Damen und Herren,
            Hallo zusammen,
            Hallo Support-Team,
            """
        ),
        closings=_lines(
            """
            Viele Grüße
            Mit freundlichen Grüßen
            Danke und Gruß
            Beste Grüße
            """
        ),
        queues={
            "billing_invoicing": _LocalQueueText(
                _lines(
                    """
                    Frage zur Rechnung {invoice}
                    Doppelte Abbuchung
                    Gutschrift benötigt
                    """
                ),
                _paragraphs(
                    """
                    Auf der Rechnung {invoice} fehlt unsere USt-IdNr. {vat}.

                    Uns wurde der Betrag von {amount} diesen Monat zweimal von der
                    Kreditkarte abgebucht.

                    Der Preis pro Lizenz ist ohne Ankündigung von {amount2} auf
                    {amount} gestiegen.
                    """
                ),
                _lines(
                    """
                    Könnten Sie uns bitte eine korrigierte Rechnung schicken?
                    Bitte erstatten Sie uns die doppelte Zahlung.
                    """
                ),
            ),
            "collections": _LocalQueueText(
                _lines(
                    """
                    Mahnung zu Rechnung {invoice}
                    Konto wegen Zahlungsrückstand gesperrt
                    """
                ),
                _paragraphs(
                    """
                    Wir haben heute eine Mahnung für die Rechnung {invoice}
                    erhalten, die seit {days} Tagen überfällig sein soll.

                    Unser Konto wurde wegen eines offenen Betrags von {amount}
                    gesperrt; die Überweisung ist gestern rausgegangen.

                    Können wir den offenen Betrag in drei Raten zahlen?
                    """
                ),
                _lines(
                    """
                    Bitte entsperren Sie das Konto, sobald die Zahlung eingegangen ist.
                    Bitte teilen Sie uns den genauen offenen Betrag mit.
                    """
                ),
            ),
            "revenue_operations": _LocalQueueText(
                _lines(
                    """
                    Angebot für die Vertragsverlängerung
                    Kündigung zum Vertragsende
                    """
                ),
                _paragraphs(
                    """
                    Unser Vertrag läuft am {date} aus und wir hätten gerne ein
                    Angebot für {seats_total} statt {seats} Lizenzen.

                    Hiermit kündigen wir das Zusatzmodul {product} fristgerecht zum
                    Ende der Laufzeit.

                    Wir möchten bei der Verlängerung von {plan} auf {plan_new}
                    wechseln.
                    """
                ),
                _lines(
                    """
                    Bitte senden Sie uns ein aktualisiertes Angebot.
                    Bitte bestätigen Sie die Kündigung schriftlich.
                    """
                ),
            ),
            "provisioning_entitlements": _LocalQueueText(
                _lines(
                    """
                    Neue Lizenzen nicht sichtbar
                    Funktion nach dem Upgrade nicht freigeschaltet
                    """
                ),
                _paragraphs(
                    """
                    Wir haben am {date} {seats_added} zusätzliche Lizenzen gekauft,
                    aber in der Admin-Konsole steht weiterhin ein Limit von {seats}.

                    Nach dem Upgrade auf {plan_new} ist die Funktion {feature}
                    immer noch gesperrt.

                    Bitte legen Sie für unser Team in {region} einen neuen
                    Workspace an.
                    """
                ),
                _lines(
                    """
                    Können Sie die Berechtigungen auf Ihrer Seite aktualisieren?
                    Bitte schalten Sie das heute noch frei.
                    """
                ),
            ),
            "identity_access": _LocalQueueText(
                _lines(
                    """
                    SSO-Anmeldung funktioniert nicht
                    MFA zurücksetzen
                    """
                ),
                _paragraphs(
                    """
                    Seit heute Morgen kann sich niemand mehr über {sso} anmelden;
                    es erscheint 'SAML response invalid'.

                    Ich habe mein Handy verloren und komme nicht mehr an der
                    Zwei-Faktor-Abfrage vorbei.

                    Die SCIM-Synchronisierung legt seit dem {date} keine neuen
                    Benutzer mehr an.
                    """
                ),
                _lines(
                    """
                    Bitte setzen Sie die MFA für mein Konto zurück.
                    Können Sie die SSO-Konfiguration prüfen?
                    """
                ),
            ),
            "platform_operations": _LocalQueueText(
                _lines(
                    """
                    Störung? Anwendung lädt nicht
                    Sehr langsame Ladezeiten
                    """
                ),
                _paragraphs(
                    """
                    Die Anwendung liefert seit etwa {time} Uhr für unser ganzes
                    Team {http_status}-Fehler.

                    Berichte hängen seit {hours} Stunden im Status 'in
                    Bearbeitung'.

                    Die Dashboards brauchen über {seconds} Sekunden zum Laden.
                    """
                ),
                _lines(
                    """
                    Gibt es gerade eine Störung bei Ihnen?
                    Bitte prüfen Sie das dringend.
                    """
                ),
            ),
            "integrations_api": _LocalQueueText(
                _lines(
                    """
                    Webhooks schlagen fehl
                    {connector}-Synchronisierung gestoppt
                    """
                ),
                _paragraphs(
                    """
                    Unsere Aufrufe an {endpoint} liefern plötzlich 429 Too Many
                    Requests, obwohl wir unter dem Limit liegen.

                    Der {connector}-Connector synchronisiert seit dem {date} keine
                    Kontakte mehr.

                    Ein neu erzeugter API-Schlüssel gibt bei jeder Anfrage 401
                    zurück.
                    """
                ),
                _lines(
                    """
                    Können Sie die Logs zu unserem API-Schlüssel prüfen?
                    Ist das ein bekanntes Problem?
                    """
                ),
            ),
            "security": _LocalQueueText(
                _lines(
                    """
                    Verdächtige Anmeldung
                    Phishing-Mail in Ihrem Namen
                    """
                ),
                _paragraphs(
                    """
                    Wir sehen Anmeldungen an unserem Admin-Konto von der IP-Adresse
                    {ip}, die niemand bei uns kennt.

                    Mehrere Mitarbeitende haben eine E-Mail erhalten, die angeblich
                    von Ihnen stammt und nach dem Passwort fragt.

                    Für unsere Lieferantenprüfung benötigen wir Ihren aktuellen
                    SOC-2-Bericht.
                    """
                ),
                _lines(
                    """
                    Bitte prüfen Sie, auf welche Daten zugegriffen wurde.
                    Können Sie alle aktiven Sitzungen beenden?
                    """
                ),
            ),
            "general_support": _LocalQueueText(
                _lines(
                    """
                    Frage zum Export
                    Funktionswunsch
                    """
                ),
                _paragraphs(
                    """
                    Wie kann ich alle Datensätze eines Projekts als CSV
                    exportieren?

                    Es wäre toll, wenn {product} einen Dunkelmodus hätte.

                    Wo ändere ich die Zeitzone für unseren Workspace?
                    """
                ),
                _lines(
                    """
                    Können Sie mir den passenden Hilfeartikel schicken?
                    Ist das auf Ihrer Roadmap?
                    """
                ),
            ),
        },
    ),
    "es": _LocalText(
        greetings=_lines(
            """
            Hola,
            Buenos días,
            Estimado equipo de soporte:
            Hola, equipo:
            """
        ),
        closings=_lines(
            """
            Saludos,
            Un saludo,
            Gracias de antemano,
            Atentamente,
            """
        ),
        queues={
            "billing_invoicing": _LocalQueueText(
                _lines(
                    """
                    Consulta sobre la factura {invoice}
                    Cobro duplicado
                    Solicitud de reembolso
                    """
                ),
                _paragraphs(
                    """
                    Nos han cobrado {amount} dos veces este mes en la tarjeta de la
                    empresa.

                    En la factura {invoice} no aparece nuestro número de IVA {vat}.

                    El precio por usuario subió de {amount2} a {amount} sin ningún
                    aviso.
                    """
                ),
                _lines(
                    """
                    ¿Podrían enviarnos una factura corregida?
                    Por favor, devuélvannos el cobro duplicado.
                    """
                ),
            ),
            "collections": _LocalQueueText(
                _lines(
                    """
                    Aviso de pago vencido {invoice}
                    Cuenta suspendida por falta de pago
                    """
                ),
                _paragraphs(
                    """
                    Recibimos un aviso de que la factura {invoice} lleva {days} días
                    vencida.

                    Nuestra cuenta fue suspendida por un saldo pendiente de
                    {amount}, pero ya hicimos la transferencia ayer.

                    ¿Podemos pagar el saldo pendiente en tres cuotas mensuales?
                    """
                ),
                _lines(
                    """
                    Por favor, reactiven la cuenta en cuanto reciban el pago.
                    ¿Nos confirman el importe exacto que debemos?
                    """
                ),
            ),
            "revenue_operations": _LocalQueueText(
                _lines(
                    """
                    Presupuesto para la renovación
                    Cancelación al final del contrato
                    """
                ),
                _paragraphs(
                    """
                    Nuestra renovación es el {date} y queremos un presupuesto para
                    {seats_total} licencias en lugar de {seats}.

                    Queremos pasar del plan {plan} al plan {plan_new} en la próxima
                    renovación.

                    Consideren este correo como aviso de no renovación del módulo
                    {product}.
                    """
                ),
                _lines(
                    """
                    ¿Nos pueden enviar un presupuesto actualizado?
                    Por favor, confirmen la cancelación por escrito.
                    """
                ),
            ),
            "provisioning_entitlements": _LocalQueueText(
                _lines(
                    """
                    Las licencias nuevas no aparecen
                    Función no activada tras la mejora de plan
                    """
                ),
                _paragraphs(
                    """
                    Compramos {seats_added} licencias adicionales el {date}, pero la
                    consola sigue mostrando un límite de {seats}.

                    Después de pasar al plan {plan_new}, la función {feature} sigue
                    bloqueada.

                    Necesitamos un nuevo espacio de trabajo para el equipo de
                    {region}.
                    """
                ),
                _lines(
                    """
                    ¿Pueden actualizar los derechos del contrato en su sistema?
                    ¿Pueden activarlo hoy mismo?
                    """
                ),
            ),
            "identity_access": _LocalQueueText(
                _lines(
                    """
                    No puedo iniciar sesión
                    Error de SSO con {sso}
                    """
                ),
                _paragraphs(
                    """
                    Desde esta mañana nadie puede entrar con {sso}; aparece el error
                    'SAML response invalid'.

                    Perdí el móvil y no puedo pasar la verificación en dos pasos.

                    El correo para restablecer la contraseña nunca llega.
                    """
                ),
                _lines(
                    """
                    ¿Pueden restablecer el MFA de mi cuenta?
                    ¿Pueden revisar la configuración de SSO?
                    """
                ),
            ),
            "platform_operations": _LocalQueueText(
                _lines(
                    """
                    La aplicación no carga
                    ¿Hay una caída del servicio?
                    """
                ),
                _paragraphs(
                    """
                    La aplicación devuelve errores {http_status} a todo el equipo
                    desde las {time}.

                    Los informes llevan {hours} horas atascados en 'procesando'.

                    Los paneles tardan más de {seconds} segundos en cargar.
                    """
                ),
                _lines(
                    """
                    ¿Hay algún incidente en su plataforma?
                    Por favor, revísenlo con urgencia.
                    """
                ),
            ),
            "integrations_api": _LocalQueueText(
                _lines(
                    """
                    Los webhooks fallan
                    La integración con {connector} no sincroniza
                    """
                ),
                _paragraphs(
                    """
                    Nuestras llamadas a {endpoint} devuelven 429 aunque estamos por
                    debajo del límite.

                    El conector de {connector} dejó de sincronizar contactos el
                    {date}.

                    La nueva clave de API devuelve 401 en todas las peticiones.
                    """
                ),
                _lines(
                    """
                    ¿Pueden revisar los registros de nuestra clave de API?
                    ¿Es un problema conocido?
                    """
                ),
            ),
            "security": _LocalQueueText(
                _lines(
                    """
                    Inicio de sesión sospechoso
                    Correo de phishing en su nombre
                    """
                ),
                _paragraphs(
                    """
                    Vimos accesos a nuestra cuenta de administrador desde la IP
                    {ip}, que nadie reconoce.

                    Varios empleados recibieron un correo que parece suyo pidiendo
                    la contraseña.

                    Nuestro equipo de seguridad necesita su informe SOC 2 más
                    reciente.
                    """
                ),
                _lines(
                    """
                    Por favor, investiguen a qué datos se accedió.
                    ¿Pueden cerrar todas las sesiones activas?
                    """
                ),
            ),
            "general_support": _LocalQueueText(
                _lines(
                    """
                    ¿Cómo exporto los datos?
                    Sugerencia de función
                    """
                ),
                _paragraphs(
                    """
                    ¿Cómo puedo exportar todos los registros de un proyecto a CSV?

                    Sería muy útil que {product} tuviera modo oscuro.

                    ¿Dónde se cambia la zona horaria del espacio de trabajo?
                    """
                ),
                _lines(
                    """
                    ¿Me pueden indicar el artículo de ayuda correcto?
                    ¿Está previsto en su hoja de ruta?
                    """
                ),
            ),
        },
    ),
    "fr": _LocalText(
        greetings=_lines(
            """
            Bonjour,
            Bonjour à tous,
            Madame, Monsieur,
            Bonjour l'équipe support,
            """
        ),
        closings=_lines(
            """
            Cordialement,
            Bien cordialement,
            Merci d'avance,
            Bonne journée,
            """
        ),
        queues={
            "billing_invoicing": _LocalQueueText(
                _lines(
                    """
                    Question sur la facture {invoice}
                    Double prélèvement
                    Demande d'avoir
                    """
                ),
                _paragraphs(
                    """
                    Nous avons été débités deux fois de {amount} ce mois-ci.

                    Notre numéro de TVA {vat} n'apparaît pas sur la facture
                    {invoice}.

                    Le prix par utilisateur est passé de {amount2} à {amount} sans
                    préavis.
                    """
                ),
                _lines(
                    """
                    Pourriez-vous nous envoyer une facture corrigée ?
                    Merci de nous rembourser le prélèvement en double.
                    """
                ),
            ),
            "collections": _LocalQueueText(
                _lines(
                    """
                    Relance pour la facture {invoice}
                    Compte suspendu pour impayé
                    """
                ),
                _paragraphs(
                    """
                    Nous avons reçu une relance indiquant que la facture {invoice}
                    est en retard de {days} jours.

                    Notre compte a été suspendu pour un solde impayé de {amount},
                    alors que le virement est parti hier.

                    Est-il possible d'étaler le solde en trois mensualités ?
                    """
                ),
                _lines(
                    """
                    Merci de réactiver le compte dès réception du paiement.
                    Pouvez-vous nous confirmer le montant exact dû ?
                    """
                ),
            ),
            "revenue_operations": _LocalQueueText(
                _lines(
                    """
                    Devis de renouvellement
                    Résiliation à l'échéance
                    """
                ),
                _paragraphs(
                    """
                    Notre contrat arrive à échéance le {date} et nous souhaitons un
                    devis pour {seats_total} licences au lieu de {seats}.

                    Nous souhaitons passer de l'offre {plan} à l'offre {plan_new}
                    lors du renouvellement.

                    Veuillez considérer ce message comme notre préavis de
                    non-renouvellement pour le module {product}.
                    """
                ),
                _lines(
                    """
                    Pouvez-vous nous envoyer un devis mis à jour ?
                    Merci de confirmer la résiliation par écrit.
                    """
                ),
            ),
            "provisioning_entitlements": _LocalQueueText(
                _lines(
                    """
                    Nouvelles licences invisibles
                    Fonctionnalité non activée après la mise à niveau
                    """
                ),
                _paragraphs(
                    """
                    Nous avons acheté {seats_added} licences supplémentaires le
                    {date}, mais la console affiche toujours une limite de {seats}.

                    Depuis le passage à l'offre {plan_new}, la fonctionnalité
                    {feature} est toujours verrouillée.

                    Merci de créer un nouvel espace de travail pour notre équipe
                    ({region}).
                    """
                ),
                _lines(
                    """
                    Pouvez-vous mettre à jour nos droits de votre côté ?
                    Pouvez-vous l'activer dès aujourd'hui ?
                    """
                ),
            ),
            "identity_access": _LocalQueueText(
                _lines(
                    """
                    Impossible de me connecter
                    Erreur SSO avec {sso}
                    """
                ),
                _paragraphs(
                    """
                    Depuis ce matin, personne ne peut se connecter via {sso} ; le
                    message 'SAML response invalid' s'affiche.

                    J'ai perdu mon téléphone et je ne peux plus valider la double
                    authentification.

                    L'e-mail de réinitialisation du mot de passe n'arrive jamais.
                    """
                ),
                _lines(
                    """
                    Pouvez-vous réinitialiser la MFA de mon compte ?
                    Pouvez-vous vérifier la configuration SSO ?
                    """
                ),
            ),
            "platform_operations": _LocalQueueText(
                _lines(
                    """
                    L'application ne se charge pas
                    Panne en cours ?
                    """
                ),
                _paragraphs(
                    """
                    L'application renvoie des erreurs {http_status} à toute l'équipe
                    depuis {time}.

                    Les rapports sont bloqués en « traitement » depuis {hours}
                    heures.

                    Les tableaux de bord mettent plus de {seconds} secondes à
                    s'afficher.
                    """
                ),
                _lines(
                    """
                    Y a-t-il un incident en cours chez vous ?
                    Merci de regarder cela en urgence.
                    """
                ),
            ),
            "integrations_api": _LocalQueueText(
                _lines(
                    """
                    Échec des webhooks
                    La synchronisation {connector} est arrêtée
                    """
                ),
                _paragraphs(
                    """
                    Nos appels à {endpoint} renvoient 429 alors que nous sommes sous
                    la limite.

                    Le connecteur {connector} ne synchronise plus les contacts
                    depuis le {date}.

                    La nouvelle clé API renvoie 401 à chaque requête.
                    """
                ),
                _lines(
                    """
                    Pouvez-vous vérifier les journaux de notre clé API ?
                    S'agit-il d'un problème connu ?
                    """
                ),
            ),
            "security": _LocalQueueText(
                _lines(
                    """
                    Connexion suspecte
                    E-mail de phishing à votre nom
                    """
                ),
                _paragraphs(
                    """
                    Nous voyons des connexions à notre compte administrateur depuis
                    l'adresse IP {ip}, que personne ne reconnaît.

                    Plusieurs collègues ont reçu un e-mail qui semble venir de vous
                    et qui demande leur mot de passe.

                    Notre équipe sécurité a besoin de votre dernier rapport SOC 2.
                    """
                ),
                _lines(
                    """
                    Merci de vérifier à quelles données on a accédé.
                    Pouvez-vous fermer toutes les sessions actives ?
                    """
                ),
            ),
            "general_support": _LocalQueueText(
                _lines(
                    """
                    Comment exporter les données ?
                    Suggestion de fonctionnalité
                    """
                ),
                _paragraphs(
                    """
                    Comment exporter tous les enregistrements d'un projet en CSV ?

                    Ce serait génial si {product} proposait un mode sombre.

                    Où peut-on changer le fuseau horaire de l'espace de travail ?
                    """
                ),
                _lines(
                    """
                    Pouvez-vous m'indiquer le bon article d'aide ?
                    Est-ce prévu dans votre feuille de route ?
                    """
                ),
            ),
        },
    ),
    "pt": _LocalText(
        greetings=_lines(
            """
            Olá,
            Bom dia,
            Prezados,
            Oi, pessoal,
            """
        ),
        closings=_lines(
            """
            Obrigado,
            Atenciosamente,
            Abraços,
            Obrigada desde já,
            """
        ),
        queues={
            "billing_invoicing": _LocalQueueText(
                _lines(
                    """
                    Dúvida sobre a fatura {invoice}
                    Cobrança duplicada
                    Pedido de reembolso
                    """
                ),
                _paragraphs(
                    """
                    Fomos cobrados duas vezes no valor de {amount} este mês.

                    A fatura {invoice} está sem o nosso CNPJ.

                    O preço por usuário subiu de {amount2} para {amount} sem nenhum
                    aviso.
                    """
                ),
                _lines(
                    """
                    Vocês podem enviar uma fatura corrigida?
                    Por favor, estornem a cobrança duplicada.
                    """
                ),
            ),
            "collections": _LocalQueueText(
                _lines(
                    """
                    Aviso de fatura vencida {invoice}
                    Conta suspensa por falta de pagamento
                    """
                ),
                _paragraphs(
                    """
                    Recebemos um aviso de que a fatura {invoice} está vencida há
                    {days} dias.

                    Nossa conta foi suspensa por um saldo em aberto de {amount}, mas
                    o pagamento foi feito ontem.

                    Podemos parcelar o saldo em aberto em três vezes?
                    """
                ),
                _lines(
                    """
                    Por favor, reativem a conta assim que o pagamento for compensado.
                    Podem confirmar o valor exato em aberto?
                    """
                ),
            ),
            "revenue_operations": _LocalQueueText(
                _lines(
                    """
                    Proposta de renovação
                    Cancelamento ao fim do contrato
                    """
                ),
                _paragraphs(
                    """
                    Nossa renovação é em {date} e queremos uma proposta para
                    {seats_total} licenças em vez de {seats}.

                    Queremos mudar do plano {plan} para o plano {plan_new} na
                    renovação.

                    Considerem este e-mail como aviso de não renovação do módulo
                    {product}.
                    """
                ),
                _lines(
                    """
                    Podem nos enviar uma proposta atualizada?
                    Por favor, confirmem o cancelamento por escrito.
                    """
                ),
            ),
            "provisioning_entitlements": _LocalQueueText(
                _lines(
                    """
                    Licenças novas não aparecem
                    Recurso não liberado após o upgrade
                    """
                ),
                _paragraphs(
                    """
                    Compramos {seats_added} licenças adicionais em {date}, mas o
                    console ainda mostra o limite de {seats}.

                    Depois do upgrade para o {plan_new}, o recurso {feature}
                    continua bloqueado.

                    Precisamos de um novo workspace para a equipe de {region}.
                    """
                ),
                _lines(
                    """
                    Vocês conseguem atualizar as permissões do contrato?
                    Conseguem liberar isso hoje?
                    """
                ),
            ),
            "identity_access": _LocalQueueText(
                _lines(
                    """
                    Não consigo entrar
                    Erro de SSO com {sso}
                    """
                ),
                _paragraphs(
                    """
                    Desde hoje de manhã ninguém consegue entrar pelo {sso}; aparece
                    'SAML response invalid'.

                    Perdi meu celular e não consigo passar pela autenticação em
                    dois fatores.

                    O e-mail de redefinição de senha nunca chega.
                    """
                ),
                _lines(
                    """
                    Podem redefinir o MFA da minha conta?
                    Podem verificar a configuração de SSO?
                    """
                ),
            ),
            "platform_operations": _LocalQueueText(
                _lines(
                    """
                    Aplicativo não carrega
                    Instabilidade no serviço?
                    """
                ),
                _paragraphs(
                    """
                    O aplicativo está retornando erro {http_status} para toda a
                    equipe desde as {time}.

                    Os relatórios estão travados em 'processando' há {hours} horas.

                    Os painéis levam mais de {seconds} segundos para carregar.
                    """
                ),
                _lines(
                    """
                    Existe algum incidente em andamento?
                    Por favor, verifiquem com urgência.
                    """
                ),
            ),
            "integrations_api": _LocalQueueText(
                _lines(
                    """
                    Webhooks falhando
                    Integração com {connector} parou
                    """
                ),
                _paragraphs(
                    """
                    Nossas chamadas para {endpoint} estão retornando 429 mesmo
                    abaixo do limite.

                    O conector do {connector} parou de sincronizar contatos em
                    {date}.

                    A nova chave de API retorna 401 em todas as requisições.
                    """
                ),
                _lines(
                    """
                    Podem verificar os logs da nossa chave de API?
                    É um problema conhecido?
                    """
                ),
            ),
            "security": _LocalQueueText(
                _lines(
                    """
                    Login suspeito
                    E-mail de phishing em nome de vocês
                    """
                ),
                _paragraphs(
                    """
                    Vimos acessos à nossa conta de administrador a partir do IP
                    {ip}, que ninguém reconhece.

                    Vários funcionários receberam um e-mail que parece ser de vocês
                    pedindo a senha.

                    Nossa equipe de segurança precisa do relatório SOC 2 mais
                    recente.
                    """
                ),
                _lines(
                    """
                    Por favor, verifiquem quais dados foram acessados.
                    Podem encerrar todas as sessões ativas?
                    """
                ),
            ),
            "general_support": _LocalQueueText(
                _lines(
                    """
                    Como exportar os dados?
                    Sugestão de funcionalidade
                    """
                ),
                _paragraphs(
                    """
                    Como exporto todos os registros de um projeto para CSV?

                    Seria ótimo se o {product} tivesse modo escuro.

                    Onde altero o fuso horário do workspace?
                    """
                ),
                _lines(
                    """
                    Podem me indicar o artigo de ajuda certo?
                    Isso está no roadmap de vocês?
                    """
                ),
            ),
        },
    ),
}


if __name__ == "__main__":
    raise SystemExit(main())
