"""The seeded sample generator and the committed sample the default model uses."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from features.errors import DataError
from features.sample_data import (
    CHANNELS,
    COLUMNS,
    HARD_CASES,
    LABEL_COLUMNS,
    LANGUAGES,
    SAMPLE_PATH,
    generate_frame,
    generate_tickets,
    load_sample,
    main,
    write_sample,
)
from features.schema import parse_ticket
from features.taxonomy import load_taxonomy

# Lower bounds on the default sample (6000 rows, seed 7): every queue and
# channel has enough rows to train and evaluate on, with a realistic skew.
MIN_ROWS_PER_QUEUE = {
    "general_support": 900,
    "billing_invoicing": 750,
    "identity_access": 450,
    "integrations_api": 450,
    "platform_operations": 450,
    "provisioning_entitlements": 300,
    "revenue_operations": 300,
    "collections": 200,
    "security": 150,
}
MIN_ROWS_PER_CHANNEL = {
    "email": 2000,
    "portal": 900,
    "chat": 600,
    "api": 250,
    "alert": 200,
}


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_frame()


def test_same_seed_gives_identical_tickets() -> None:
    assert generate_tickets(300, seed=3) == generate_tickets(300, seed=3)


def test_different_seeds_give_different_tickets() -> None:
    first = [row["body"] for row in generate_tickets(300, seed=3)]
    second = [row["body"] for row in generate_tickets(300, seed=4)]
    assert first != second


def test_rows_have_the_documented_columns_and_unique_ids(
    sample: pd.DataFrame,
) -> None:
    assert list(sample.columns) == list(COLUMNS)
    assert sample["id"].is_unique
    assert sample["created_at"].is_monotonic_increasing


def test_every_row_validates_as_a_ticket(sample: pd.DataFrame) -> None:
    for row in sample.to_dict("records"):
        ticket = {k: v for k, v in row.items() if k not in LABEL_COLUMNS}
        parse_ticket(ticket)


def test_labels_are_exactly_the_taxonomy_queues(sample: pd.DataFrame) -> None:
    assert set(sample["label"]) == set(load_taxonomy().queue_ids)


@pytest.mark.parametrize(
    ("queue", "minimum"),
    [pytest.param(q, m, id=q) for q, m in MIN_ROWS_PER_QUEUE.items()],
)
def test_every_queue_has_enough_rows(
    sample: pd.DataFrame, queue: str, minimum: int
) -> None:
    assert (sample["label"] == queue).sum() >= minimum


def test_queue_mix_is_skewed_like_a_support_desk(sample: pd.DataFrame) -> None:
    counts = sample["label"].value_counts()
    assert set(counts.index[:2]) == {"general_support", "billing_invoicing"}
    assert counts.idxmin() == "security"


@pytest.mark.parametrize(
    ("channel", "minimum"),
    [pytest.param(c, m, id=c) for c, m in MIN_ROWS_PER_CHANNEL.items()],
)
def test_every_channel_has_enough_rows(
    sample: pd.DataFrame, channel: str, minimum: int
) -> None:
    assert set(sample["channel"]) == set(CHANNELS)
    assert (sample["channel"] == channel).sum() >= minimum


@pytest.mark.parametrize("hard_case", [pytest.param(h, id=h) for h in HARD_CASES])
def test_each_hard_case_has_a_meaningful_share(
    sample: pd.DataFrame, hard_case: str
) -> None:
    share = (sample["hard_case"] == hard_case).mean()
    assert 0.02 <= share <= 0.10


def test_non_english_share_is_a_few_percent_in_four_languages(
    sample: pd.DataFrame,
) -> None:
    foreign = sample[sample["language"] != "en"]

    assert 0.02 <= len(foreign) / len(sample) <= 0.08
    assert set(foreign["language"]) == set(LANGUAGES) - {"en"}
    assert (foreign["hard_case"] == "non_english").all()
    assert foreign["label"].nunique() == len(MIN_ROWS_PER_QUEUE)


def test_alerts_look_like_monitoring_alerts(sample: pd.DataFrame) -> None:
    alerts = sample[sample["channel"] == "alert"]

    assert set(alerts["severity"]) <= {"critical", "warning"}
    assert alerts["service"].notna().all()
    assert (alerts["hard_case"] == "monitoring_alert").all()
    assert (alerts["label"] == "platform_operations").mean() >= 0.7
    assert sample.loc[sample["channel"] != "alert", "severity"].isna().all()


def test_quoted_replies_carry_quoted_history(sample: pd.DataFrame) -> None:
    replies = sample[sample["hard_case"] == "quoted_reply"]
    header = re.compile(r"wrote:|-----Original Message-----")

    assert replies["subject"].str.match(r"(?i)re:").all()
    assert replies["body"].str.contains(header).all()
    assert replies["body"].str.contains(r"(?m)^> ").all()


def test_very_short_tickets_are_a_few_words(sample: pd.DataFrame) -> None:
    short = sample[sample["hard_case"] == "very_short"]
    texts = pd.concat([short["subject"], short["body"]])
    assert texts.str.len().max() <= 40


def test_very_long_tickets_have_paragraphs_and_a_pasted_log(
    sample: pd.DataFrame,
) -> None:
    long = sample[sample["hard_case"] == "very_long"]
    assert (long["body"].str.len() >= 800).all()
    assert (long["body"].str.count("\n\n") >= 5).all()


def test_typos_produce_words_the_clean_tickets_never_use(
    sample: pd.DataFrame,
) -> None:
    clean_words = _words(sample.loc[sample["hard_case"] == "", "body"])
    typo_bodies = sample.loc[sample["hard_case"] == "typos", "body"]

    misspelt = [bool(_words([body]) - clean_words) for body in typo_bodies]
    assert sum(misspelt) / len(misspelt) >= 0.8


@pytest.mark.parametrize(
    ("word", "queues"),
    [
        pytest.param(
            "suspended",
            {"collections", "security", "provisioning_entitlements"},
            id="suspended",
        ),
        pytest.param(
            "invoice",
            {"billing_invoicing", "provisioning_entitlements", "security"},
            id="invoice",
        ),
        pytest.param("API", {"integrations_api", "billing_invoicing"}, id="api"),
    ],
)
def test_shared_vocabulary_puts_one_word_in_several_queues(
    sample: pd.DataFrame, word: str, queues: set[str]
) -> None:
    shared = sample[sample["hard_case"] == "shared_vocabulary"]
    text = shared["subject"] + " " + shared["body"]
    assert queues <= set(shared.loc[text.str.contains(word), "label"])


@pytest.mark.parametrize(
    ("phrase", "queues"),
    [
        pytest.param(
            "paperwork for the new",
            {"revenue_operations", "billing_invoicing"},
            id="paperwork",
        ),
        pytest.param(
            "sync has been slow all day",
            {"integrations_api", "platform_operations"},
            id="slow-sync",
        ),
    ],
)
def test_borderline_text_is_labelled_with_more_than_one_queue(
    sample: pd.DataFrame, phrase: str, queues: set[str]
) -> None:
    borderline = sample[sample["hard_case"] == "borderline"]
    found = borderline["body"].str.contains(phrase, case=False)
    assert queues <= set(borderline.loc[found, "label"])


def test_the_committed_sample_matches_the_generator() -> None:
    pd.testing.assert_frame_equal(load_sample(), generate_frame())


def test_the_committed_sample_is_small() -> None:
    assert SAMPLE_PATH.stat().st_size < 3 * 1024 * 1024


def test_write_sample_round_trips(tmp_path: Path) -> None:
    path = write_sample(tmp_path / "nested" / "tickets.parquet", n=40, seed=1)
    pd.testing.assert_frame_equal(load_sample(path), generate_frame(40, 1))


def test_main_writes_the_requested_sample(tmp_path: Path) -> None:
    path = tmp_path / "cli.parquet"

    assert main(["--out", str(path), "--n", "25", "--seed", "9"]) == 0
    pd.testing.assert_frame_equal(load_sample(path), generate_frame(25, 9))


def test_missing_sample_names_the_command_that_regenerates_it(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataError, match=re.escape("python -m features.sample_data")):
        load_sample(tmp_path / "absent.parquet")


def test_negative_row_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="got -1"):
        generate_tickets(-1)


def _words(texts: pd.Series | list[str]) -> set[str]:
    return {word for text in texts for word in re.findall(r"[a-z]{4,}", text)}
