"""HTTP routing throughput and latency, as ratios to bare encoding in the same run.

    .venv/bin/python benchmarks/http_throughput.py --tickets 2000 --clients 32

Measured, in this order, on the same generated tickets:
1. bare `SentenceTransformer.encode`, batch 64: the 1.0 of every ratio;
   beside it, bare encoding on the backend the served model uses (the
   default model's is onnx-int8), so the share the runtime wins is visible;
2. Switchboard on a local Ray Serve, `--clients` concurrent loopback clients;
   (two classifier replicas of one thread, see TWO_CORE_CLASSIFIER);
3. a plain FastAPI + uvicorn service that encodes each request alone;
4. p50 / p99 latency of one request at a time beside one bare single encode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parent.parent
# Measured best on 2 cores: two classifier replicas of one torch thread each
# keep both cores encoding, where one replica's two threads stall each other
# whenever the proxy, ingress or router takes a core.
TWO_CORE_CLASSIFIER = {
    "Classifier": {
        "num_replicas": 2,
        "ray_actor_options": {"num_cpus": 0.5},
        "user_config": {"torch_threads": 1},
    }
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=200)
    parser.add_argument(
        "--home", type=Path, default=None, help="State folder to reuse."
    )
    args = parser.parse_args()

    import httpx

    from features.encoder import Encoder
    from features.sample_data import generate_frame
    from features.text import build_texts
    from serving.local import deploy, shutdown, start_ray
    from serving.settings import ServingSettings
    from training.service import ensure_default_model

    frame = generate_frame(args.tickets, seed=2024)
    # With their account, product and region, as a helpdesk sends them, so
    # each ticket is enriched from the embedded context store.
    fields = ["id", "channel", "subject", "body", "account_id", "product", "region"]
    tickets = [
        {name: value for name, value in row.items() if isinstance(value, str)}
        for row in frame[fields].to_dict(orient="records")
    ]
    texts = build_texts(frame["subject"].tolist(), frame["body"].tolist())

    encoder = Encoder(batch_size=64)
    encoder.encode(texts[:256])
    started = time.perf_counter()
    encoder.model.encode(texts, batch_size=64, normalize_embeddings=True)
    bare_rate = len(texts) / (time.perf_counter() - started)
    single = []
    for text in texts[: args.latency_requests // 2]:
        t0 = time.perf_counter()
        encoder.model.encode([text])
        single.append((time.perf_counter() - t0) * 1000)
    bare_single_p50 = statistics.median(single)
    del encoder

    home = args.home or Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    settings = ServingSettings(home=home, port=18400)
    ensure_default_model(settings)
    backend = _served_backend(settings)
    served = Encoder(
        batch_size=64, backend=backend, export_dir=settings.encoder_export_dir
    )
    served.encode(texts[:256])
    started = time.perf_counter()
    served.encode(texts)
    backend_rate = len(texts) / (time.perf_counter() - started)
    del served
    start_ray(num_cpus=2)
    try:
        deploy(settings, config_overrides=TWO_CORE_CLASSIFIER)
        url = f"http://127.0.0.1:{settings.port}/v1/route"
        with httpx.Client(timeout=60) as client:
            client.post(url, json=tickets[0])
        for ticket in tickets[:200]:  # warm the classifier's shapes
            httpx.post(url, json=ticket, timeout=60)
        switchboard_rate = asyncio.run(_throughput(url, tickets, args.clients))
        latencies = _latencies(url, tickets[: args.latency_requests])
    finally:
        shutdown()

    plain_rate = _plain_service_rate(tickets, args.clients)

    p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
    print(f"tickets: {len(tickets)}, clients: {args.clients}")
    print(f"bare encode (batch 64):        {bare_rate:8.1f} tickets/s  1.00")
    print(
        f"bare encode, {backend + ' backend:':16s}{backend_rate:8.1f} tickets/s  "
        f"{backend_rate / bare_rate:.2f}"
    )
    print(
        f"Switchboard HTTP:              {switchboard_rate:8.1f} tickets/s  "
        f"{switchboard_rate / bare_rate:.2f}"
    )
    print(
        f"plain FastAPI + uvicorn:       {plain_rate:8.1f} tickets/s  "
        f"{plain_rate / bare_rate:.2f}"
    )
    print(f"Switchboard / plain service:   {switchboard_rate / plain_rate:.2f}x")
    print(
        f"Switchboard / bare {backend}: {switchboard_rate / backend_rate:.2f}x "
        "(what serving keeps of its own encoder)"
    )
    print(
        f"single request p50 / p99:      {p50:.1f} / {p99:.1f} ms "
        f"(bare single encode p50 {bare_single_p50:.1f} ms, "
        f"overhead {p50 - bare_single_p50:+.1f} ms)"
    )


async def _throughput(url: str, tickets: list[dict], clients: int) -> float:
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for ticket in tickets:
        queue.put_nowait(ticket)
    failures = 0

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            ticket = queue.get_nowait()
            response = await client.post(url, json=ticket)
            failures += response.status_code != 200

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    if failures:
        print(f"warning: {failures} requests failed", file=sys.stderr)
    return len(tickets) / elapsed


def _latencies(url: str, tickets: list[dict]) -> list[float]:
    import httpx

    found = []
    with httpx.Client(timeout=60) as client:
        for ticket in tickets:
            t0 = time.perf_counter()
            client.post(url, json=ticket)
            found.append((time.perf_counter() - t0) * 1000)
    return found


def _plain_service_rate(tickets: list[dict], clients: int) -> float:
    import httpx

    port = 18401
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.plain_service:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}/route"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.post(url, json=tickets[0], timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        for ticket in tickets[:100]:
            httpx.post(url, json=ticket, timeout=60)
        return asyncio.run(_throughput(url, tickets, clients))
    finally:
        server.terminate()
        server.wait(timeout=30)


def _served_backend(settings: Any) -> str:
    from training.registry import CHAMPION, load_bundle

    _, bundle = load_bundle(settings, CHAMPION)
    return bundle.encoder_backend


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))
    return ordered[index]


if __name__ == "__main__":
    main()
