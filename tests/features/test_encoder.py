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


def test_an_unknown_backend_names_the_choices():
    from features.encoder import Encoder

    with pytest.raises(ConfigError, match="onnx-int8"):
        Encoder(backend="tensorrt")


def test_each_backend_has_its_own_identity():
    from features.encoder import backend_identity

    torch_id = backend_identity("all-MiniLM-L6-v2", "torch")

    assert torch_id == encoder_identity("all-MiniLM-L6-v2")
    assert backend_identity("all-MiniLM-L6-v2", "onnx") == f"{torch_id}+onnx"
    assert backend_identity("all-MiniLM-L6-v2", "onnx-int8") == f"{torch_id}+onnx-int8"


TEXTS = [
    "Invoice INV-2291 charged twice this month",
    "SSO login loops back to the sign-in page after the Okta change",
    "short",
    "The export to S3 has been failing since Tuesday with a 403 on every "
    "object; our compliance team needs the nightly files for the audit, "
    "please look at it before Friday.",
]


@pytest.mark.integration
def test_onnx_backend_gives_the_torch_embeddings(encoder, tmp_path):
    from features.encoder import Encoder

    onnx = Encoder(backend="onnx", export_dir=tmp_path, batch_size=2)

    got = onnx.encode(TEXTS)
    expected = encoder.encode(TEXTS)

    assert got.shape == expected.shape == (len(TEXTS), 384)
    assert np.allclose(got, expected, atol=1e-4)


@pytest.mark.integration
def test_int8_backend_is_close_to_torch_and_exported_once(encoder, tmp_path):
    from features.encoder import Encoder

    first = Encoder(backend="onnx-int8", export_dir=tmp_path)
    got = first.encode(TEXTS)
    exported = list(tmp_path.glob("*.onnx"))
    stamp = exported[0].stat().st_mtime_ns

    again = Encoder(backend="onnx-int8", export_dir=tmp_path).encode(TEXTS)

    cosine = (got * encoder.encode(TEXTS)).sum(axis=1)
    assert len(exported) == 1 and "onnx-int8" in exported[0].name
    assert exported[0].stat().st_mtime_ns == stamp  # reused, not exported again
    assert cosine.min() > 0.95
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert np.allclose(again, got, atol=1e-6)
    assert first.encode([]).shape == (0, 384)


@pytest.mark.integration
def test_onnx_session_follows_the_process_thread_count(tmp_path):
    import torch

    from features.encoder import Encoder

    onnx = Encoder(backend="onnx-int8", export_dir=tmp_path)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        onnx.encode(TEXTS[:1])
        one = onnx.runner._session
        torch.set_num_threads(2)
        onnx.encode(TEXTS[:1])
        assert onnx.runner._session is not one
        assert onnx.runner._threads == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.integration
def test_a_model_that_cannot_be_traced_fails_with_a_config_error(tmp_path):
    import torch

    from features.encoder import export_onnx

    class Untraceable:
        """A model whose forward pass fails, as a module ONNX cannot trace does."""

        def tokenize(self, texts):
            ones = torch.ones((len(texts), 3), dtype=torch.long)
            return {"input_ids": ones, "attention_mask": ones}

        def __call__(self, features):
            raise RuntimeError("operator not supported")

    with pytest.raises(ConfigError, match=r"cannot be exported to ONNX.*not supported"):
        export_onnx(Untraceable(), tmp_path / "x.onnx", int8=False)
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.integration
def test_an_int8_embedding_does_not_depend_on_the_texts_beside_it(tmp_path):
    """Activations are quantised per call: a batch would share one scale."""
    from features.encoder import Encoder

    int8 = Encoder(backend="onnx-int8", export_dir=tmp_path, batch_size=16)

    alone = int8.encode(TEXTS[1:2])
    in_company = int8.encode(TEXTS)

    assert np.array_equal(in_company[1], alone[0])
