"""Batch and streaming throughput as ratios to bare encoding, in one run.

    .venv/bin/python benchmarks/batch_stream_throughput.py --batch-rows 20000 \\
        --stream-messages 4000

1. bare `SentenceTransformer.encode` (batch 64) on the batch texts: 1.0;
2. `switchboard batch` (Ray Data, one actor per core) over the same rows;
3. bare encode on the stream texts, then 2 Redis Streams consumers
   (127.0.0.1:6379) deciding the same tickets, store writes included.

The tickets carry their account, product and region, so every decision is
enriched from the embedded context store as in production (pass
`--no-context` for text-only tickets, which skip every source).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-rows", type=int, default=20_000)
    parser.add_argument("--stream-messages", type=int, default=4000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument(
        "--home", type=Path, default=None, help="State folder to reuse."
    )
    parser.add_argument(
        "--no-context",
        action="store_true",
        help="Text-only tickets: no account, product or region to enrich by.",
    )
    args = parser.parse_args()

    from features.sample_data import generate_frame
    from serving.settings import ServingSettings
    from training.service import ensure_default_model

    home = args.home or Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    settings = ServingSettings(home=home)
    ensure_default_model(settings)
    columns = ["id", "channel", "subject", "body"]
    if not args.no_context:
        columns += ["account_id", "account_tier", "product", "region"]

    frame = generate_frame(args.batch_rows, seed=77)[columns]
    bare_batch = _bare_rate(frame)
    batch_rate = _batch_rate(settings, frame, args.actors)

    messages = generate_frame(args.stream_messages, seed=78)[columns]
    messages["id"] = [f"{i}-{uuid.uuid4().hex[:6]}" for i in messages["id"]]
    bare_stream = _bare_rate(messages)
    stream_rate = _stream_rate(settings, messages)

    print(f"batch: {len(frame)} rows, {args.actors} actors")
    print(f"  bare encode:       {bare_batch:8.1f} rows/s  1.00")
    print(
        f"  switchboard batch: {batch_rate:8.1f} rows/s  {batch_rate / bare_batch:.2f}"
    )
    print(f"stream: {len(messages)} messages, 2 consumers (Redis Streams)")
    print(f"  bare encode:       {bare_stream:8.1f} msgs/s  1.00")
    ratio = stream_rate / bare_stream
    print(f"  switchboard stream:{stream_rate:8.1f} msgs/s  {ratio:.2f}")


def _bare_rate(frame) -> float:
    from features.encoder import Encoder
    from features.text import build_texts

    texts = build_texts(frame["subject"].tolist(), frame["body"].tolist())
    encoder = Encoder(batch_size=64)
    encoder.encode(texts[:256])
    started = time.perf_counter()
    encoder.model.encode(texts, batch_size=64, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started)


def _batch_rate(settings, frame, actors: int) -> float:
    from serving.batch import BatchOptions, run_batch
    from serving.local import shutdown

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "tickets.parquet"
        frame.to_parquet(source)
        options = BatchOptions(
            input=str(source),
            output=f"{scratch}/out",
            actors=actors,
            actor_cpus=1.0 / actors,  # leave a whole CPU for the listing task
            batch_size=256,
        )
        started = time.perf_counter()
        report = run_batch(
            settings.model_copy(update={"record_decisions": True}), options
        )
        elapsed = time.perf_counter() - started
        shutdown()
    assert report.is_balanced, report
    return report.rows_decided / elapsed


def _stream_rate(settings, frame) -> float:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", decode_responses=True)
    prefix = f"switchboard-bench-{uuid.uuid4().hex[:8]}"
    source, sink = f"{prefix}:tickets", f"{prefix}:decisions"
    client.xgroup_create(source, "bench", id="0", mkstream=True)
    pipe = client.pipeline()
    for row in frame.to_dict(orient="records"):
        present = {k: v for k, v in row.items() if isinstance(v, str)}  # no NaN
        pipe.xadd(source, {"ticket": json.dumps(present)})
    pipe.execute()
    env = {**os.environ, "SWITCHBOARD_HOME": str(settings.home)}
    url = "redis://127.0.0.1:6379/0"
    command = [
        sys.executable,
        "-m",
        "serving.cli",
        "stream",
        "--source",
        f"{url}?stream={source}&group=bench",
        "--sink",
        f"{url}?stream={sink}",
        "--consumers",
        "2",
        "--max-batch",
        "64",
        "--stop-when-idle",
        "3",
    ]
    try:
        process = subprocess.Popen(command, env=env, cwd=ROOT)
        # Time from the first decision to the last, so the consumers' start-up
        # (encoder load) is not counted against throughput.
        while client.xlen(sink) == 0:
            time.sleep(0.05)
        started = time.perf_counter()
        while client.xlen(sink) < len(frame):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        process.wait(timeout=300)
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    return (len(frame) - 1) / elapsed


if __name__ == "__main__":
    main()
