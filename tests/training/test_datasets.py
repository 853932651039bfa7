from __future__ import annotations

import pandas as pd
import pytest

from features.errors import DataError
from training.datasets import load_for_evaluation, load_labelled


def _write(tmp_path, frame, name="data.parquet"):
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


def _skewed():
    rows = [(f"billing text {i}", "billing") for i in range(60)]
    rows += [(f"login text {i}", "identity") for i in range(30)]
    rows += [(f"two rows {i}", "pair") for i in range(2)]
    rows += [("only one", "single")]
    return pd.DataFrame(rows, columns=["text", "label"])


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=n) for n in ("d.parquet", "d.csv", "d.jsonl")]
)
def test_every_supported_format_loads_and_splits(tmp_path, name):
    data = load_labelled(_write(tmp_path, _skewed(), name))

    assert set(data.frame["split"]) == {"train", "validation", "test"}
    assert len(data.frame) == 93


def test_labels_with_one_or_two_rows_stay_in_train_and_are_reported(tmp_path):
    data = load_labelled(_write(tmp_path, _skewed()))

    rare_rows = data.frame[data.frame["label"].isin(["pair", "single"])]
    assert set(rare_rows["split"]) == {"train"}
    assert data.rare_labels == {"pair": 2, "single": 1}


def test_split_is_stratified_by_label(tmp_path):
    data = load_labelled(_write(tmp_path, _skewed()))

    test = data.part("test")
    assert (test["label"] == "billing").sum() == 9
    assert (test["label"] == "identity").sum() in (4, 5)


def test_a_given_split_column_is_used_and_validation_carved_from_train(tmp_path):
    frame = _skewed().iloc[:90].assign(split=["train"] * 70 + ["test"] * 20)
    data = load_labelled(_write(tmp_path, frame))

    assert (data.frame.iloc[70:]["split"] == "test").all()
    assert (data.frame["split"] == "validation").sum() > 0


def test_out_of_scope_rows_never_count_as_training_labels(tmp_path):
    frame = pd.concat(
        [_skewed(), pd.DataFrame({"text": ["weather?"] * 20, "label": "oos"})]
    )
    data = load_labelled(_write(tmp_path, frame), out_of_scope_label="oos")

    assert "oos" not in set(data.in_scope("train")["label"])


def test_subject_and_body_columns_stand_in_for_text(tmp_path):
    frame = _skewed().rename(columns={"text": "subject"}).assign(body="details")
    data = load_labelled(_write(tmp_path, frame))

    assert data.frame["text"].iloc[0].endswith("details")


def test_missing_label_column_is_named(tmp_path):
    with pytest.raises(DataError, match="no label column 'queue'"):
        load_labelled(_write(tmp_path, _skewed()), label_column="queue")


def test_one_label_is_not_enough_to_train(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": "only"})

    with pytest.raises(DataError, match="at least two labels"):
        load_labelled(_write(tmp_path, frame))


def test_unknown_split_values_are_rejected(tmp_path):
    frame = _skewed().assign(split="holdout")

    with pytest.raises(DataError, match="holdout"):
        load_labelled(_write(tmp_path, frame))


def test_evaluation_uses_test_rows_when_a_split_column_exists(tmp_path):
    frame = _skewed().iloc[:90].assign(split=["train"] * 70 + ["test"] * 20)

    rows, split = load_for_evaluation(_write(tmp_path, frame))

    assert split == "test"
    assert len(rows) == 20


def test_data_hash_changes_with_the_data(tmp_path):
    first = load_labelled(_write(tmp_path, _skewed(), "a.parquet"))
    changed = _skewed()
    changed.loc[0, "label"] = "identity"
    second = load_labelled(_write(tmp_path, changed, "b.parquet"))

    assert first.data_hash != second.data_hash
