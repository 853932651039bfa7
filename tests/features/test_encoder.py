from __future__ import annotations

import numpy as np
import pytest

from features.encoder import CachedEncoder, EmbeddingCache, encoder_identity
from features.errors import ConfigError
from features.text import build_text


def test_short_text_is_kept_whole_with_subject_first():
    built = build_text("  Refund  please ", "The   invoice\u00a0is wrong.")

    assert built.text == "Refund please\nThe invoice is wrong."
    assert not built.is_truncated


def test_long_text_without_tokenizer_is_cut_conservatively():
    built = build_text("Subject", "word " * 2000, max_tokens=64)

    assert built.is_truncated
    assert built.text.startswith("Subject\n")
    assert len(built.text) == 62 * 4


def test_unknown_encoder_path_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="SWITCHBOARD_ENCODER"):
        encoder_identity(str(tmp_path / "missing-model"))


def test_cache_returns_what_was_stored_per_encoder(tmp_path):
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    vector = np.arange(4, dtype=np.float32)
    cache.put_many("enc-a", {"h1": vector})

    assert np.array_equal(cache.get_many("enc-a", ["h1", "h2"])["h1"], vector)
    assert cache.get_many("enc-b", ["h1"]) == {}


@pytest.mark.integration
def test_long_text_with_tokenizer_fits_the_encoder_window(encoder):
    built = build_text("Subject", "tokenisation " * 500, tokenizer=encoder.tokenizer)

    tokens = encoder.tokenizer(built.text)["input_ids"]
    assert built.is_truncated
    assert len(tokens) <= encoder.max_tokens
    assert built.text.startswith("Subject\n")


@pytest.mark.integration
def test_cached_encoder_only_encodes_texts_it_has_not_seen(encoder, tmp_path):
    cached = CachedEncoder(encoder, EmbeddingCache(tmp_path / "cache.sqlite"))
    first = cached.encode(["invoice wrong", "sso broken", "invoice wrong"])

    second = cached.encode(["sso broken", "new text"])

    assert cached.last_misses == 1
    assert cached.last_hits == 1
    assert np.allclose(second[0], first[1])
    assert np.allclose(np.linalg.norm(second, axis=1), 1.0, atol=1e-4)
    assert cached.cache.count(encoder.identity) == 3


@pytest.mark.integration
def test_cache_survives_a_new_process_view_of_the_same_file(encoder, tmp_path):
    path = tmp_path / "cache.sqlite"
    CachedEncoder(encoder, EmbeddingCache(path)).encode(["persisted text"])

    reopened = CachedEncoder(encoder, EmbeddingCache(path))
    reopened.encode(["persisted text"])

    assert reopened.last_misses == 0
