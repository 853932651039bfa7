"""Training-path encoding throughput as a ratio to bare `SentenceTransformer.encode`.

Both run in this process on the same texts, warmed up, in alternating rounds,
so the machine's noise hits both alike. The training path is what `train`
does: build the encoder text, hash it, look it up in an empty embedding
cache, encode the misses in length-sorted chunks and write them back.

    .venv/bin/python benchmarks/encode_throughput.py --rows 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    from features.encoder import CachedEncoder, EmbeddingCache, Encoder
    from features.sample_data import load_sample
    from features.text import build_texts

    sample = load_sample().head(args.rows)
    subjects = sample["subject"].tolist()
    bodies = sample["body"].tolist()
    encoder = Encoder(batch_size=args.batch_size)
    bare_texts = build_texts(subjects, bodies, tokenizer=encoder.tokenizer)
    encoder.encode(bare_texts[:256])  # warm-up: first shapes run slowly

    bare, path = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        encoder.model.encode(
            bare_texts, batch_size=args.batch_size, normalize_embeddings=True
        )
        bare.append(len(bare_texts) / (time.perf_counter() - start))

        with tempfile.TemporaryDirectory() as scratch:
            cached = CachedEncoder(encoder, EmbeddingCache(f"{scratch}/cache.sqlite"))
            start = time.perf_counter()
            texts = build_texts(subjects, bodies, tokenizer=encoder.tokenizer)
            cached.encode(texts)
            path.append(len(texts) / (time.perf_counter() - start))

    bare_rate, path_rate = statistics.median(bare), statistics.median(path)
    print(f"rows: {len(bare_texts)}, rounds: {args.rounds}, batch: {args.batch_size}")
    print(f"bare SentenceTransformer.encode: {bare_rate:8.1f} texts/s (1.00)")
    print(
        f"training path (text + cache):    {path_rate:8.1f} texts/s "
        f"({path_rate / bare_rate:.2f})"
    )


if __name__ == "__main__":
    main()
