"""Batch classification on a real local Ray Data, with the real encoder."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest

from features.sample_data import generate_frame
from monitoring.store import open_store
from serving.batch import BatchOptions, run_batch

pytestmark = pytest.mark.integration

TICKET_COLUMNS = [
    "id",
    "channel",
    "subject",
    "body",
    "account_tier",
    "severity",
    "service",
]


@pytest.fixture(scope="module")
def tickets():
    return generate_frame(500, seed=99)


def _bad_rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"id": "BAD-1", "channel": "fax", "subject": "s", "body": "b"},
            {"id": "BAD-2", "channel": "email", "subject": "", "body": ""},
            {"id": "BAD-3", "channel": "email", "subject": "s", "body": "x" * 60_000},
            {"id": None, "channel": "chat", "subject": "s", "body": "b"},
        ]
    )


def test_invalid_rows_go_to_rejects_and_every_row_is_accounted_for(
    ray_cluster, champion_settings, tickets, tmp_path
):
    frame = pd.concat(
        [tickets[TICKET_COLUMNS].head(60), _bad_rows()], ignore_index=True
    )
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)

    report = run_batch(
        champion_settings,
        BatchOptions(input=str(source), output=str(tmp_path / "out"), actor_cpus=0.25),
    )

    assert (report.rows_in, report.rows_decided, report.rows_rejected) == (64, 60, 4)
    assert report.is_balanced
    rejects = pd.read_parquet(tmp_path / "out" / "rejects")
    assert set(rejects["id"].dropna()) == {"BAD-1", "BAD-2", "BAD-3"}
    assert rejects["error"].str.contains("channel").any()
    decided = pd.read_parquet(
        tmp_path / "out" / "decisions", columns=["id", "queue", "mode"]
    )
    assert len(decided) == 60
    assert decided["queue"].notna().all()


def test_a_folder_of_parquet_files_is_one_job(
    ray_cluster, champion_settings, tickets, tmp_path
):
    folder = tmp_path / "archive"
    folder.mkdir()
    for part in range(3):
        chunk = tickets[TICKET_COLUMNS].iloc[part * 40 : (part + 1) * 40]
        chunk.to_parquet(folder / f"part-{part}.parquet")

    report = run_batch(
        champion_settings,
        BatchOptions(input=str(folder), output=str(tmp_path / "out"), actor_cpus=0.25),
    )

    assert report.rows_in == report.rows_decided == 120


@pytest.mark.parametrize(
    "suffix", [pytest.param("csv", id="csv"), pytest.param("jsonl", id="jsonl")]
)
def test_csv_and_jsonl_inputs_are_read(
    ray_cluster, champion_settings, tickets, tmp_path, suffix
):
    source = tmp_path / f"in.{suffix}"
    frame = tickets[["id", "channel", "subject", "body"]].head(30)
    if suffix == "csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_json(source, orient="records", lines=True)

    report = run_batch(
        champion_settings,
        BatchOptions(input=str(source), output=str(tmp_path / "out"), actor_cpus=0.25),
    )

    assert report.rows_decided == 30


def test_with_no_champion_the_job_routes_by_rules(
    ray_cluster, champion_settings, tickets, tmp_path
):
    empty = champion_settings.model_copy(update={"home": tmp_path / "empty"})
    source = tmp_path / "in.parquet"
    tickets[TICKET_COLUMNS].head(20).to_parquet(source)

    report = run_batch(
        empty,
        BatchOptions(input=str(source), output=str(tmp_path / "out"), actor_cpus=0.25),
    )

    decided = pd.read_parquet(tmp_path / "out" / "decisions")
    assert report.model_version is None
    assert set(decided["mode"]) <= {"rules", "override"}
    assert set(decided["fallback_reason"].dropna()) == {"no_model"}


def test_batch_decisions_are_written_to_the_decision_store(
    ray_cluster, champion_settings, tickets, tmp_path
):
    source = tmp_path / "in.parquet"
    tickets[TICKET_COLUMNS].head(25).to_parquet(source)
    options = BatchOptions(
        input=str(source), output=str(tmp_path / "out"), actor_cpus=0.25
    )

    run_batch(champion_settings, options)

    store = open_store(champion_settings)
    stored = [d for d in store.iter_decisions() if d["request_id"] == options.job_id]
    assert len(stored) == 25
    assert {d["path"] for d in stored} == {"batch"}


def test_the_same_tickets_get_the_same_decisions_by_batch_and_by_http(
    ray_cluster, champion_settings, tickets, tmp_path
):
    from ray import serve

    from serving.local import deploy

    source = tmp_path / "in.parquet"
    tickets[TICKET_COLUMNS].to_parquet(source)
    run_batch(
        champion_settings,
        BatchOptions(input=str(source), output=str(tmp_path / "out"), actor_cpus=0.25),
    )
    by_batch = pd.read_parquet(tmp_path / "out" / "decisions").set_index("id")

    # A generous budget: on a loaded machine a 500-ticket call may take longer
    # than the default, and a timeout would (rightly) route by rules instead.
    deploy(champion_settings, classifier_timeout_s=120)
    try:
        payload = {
            "tickets": [
                {k: v for k, v in row.items() if v is not None and v == v}
                for row in tickets[TICKET_COLUMNS].to_dict(orient="records")
            ]
        }
        url = f"http://127.0.0.1:{champion_settings.port}/v1/route/batch"
        response = httpx.post(url, json=payload, timeout=300)
    finally:
        serve.shutdown()

    assert response.status_code == 200
    by_http = pd.DataFrame(response.json()["decisions"]).set_index("ticket_id")
    assert len(by_http) == len(by_batch) == 500
    for column in (
        "queue",
        "priority",
        "escalation",
        "mode",
        "fallback_reason",
        "rule_id",
        "model_version",
    ):
        batch_values = by_batch[column].reindex(by_http.index)
        http_values = by_http[column]
        differ = batch_values.fillna("-") != http_values.fillna("-")
        assert not differ.any(), (
            column,
            by_batch.reindex(by_http.index)[differ][
                ["queue", "mode", "confidence"]
            ].head(),
            by_http[differ][["queue", "mode", "confidence"]].head(),
        )
    http_conf = by_http["confidence"].astype(float)
    batch_conf = by_batch["confidence"].reindex(by_http.index).astype(float)
    assert (http_conf - batch_conf).abs().max() < 1e-4
    assert json.loads(by_batch["top_queues"].iloc[0])


def test_ray_address_runs_the_job_on_an_existing_cluster(tickets, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    ray_bin = Path(sys.executable).with_name("ray")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "SWITCHBOARD_HOME": str(tmp_path / "home")}
    source = tmp_path / "in.parquet"
    tickets[TICKET_COLUMNS].head(20).to_parquet(source)
    # A second Ray in its own process group, so stopping it leaves the test
    # session's Ray alone (`ray stop` would stop every Ray on the machine).
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--node-ip-address=127.0.0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "serving.cli",
                "batch",
                "--json",
                f"--input={source}",
                f"--output={tmp_path / 'out'}",
                f"--ray-address=127.0.0.1:{port}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout)
        assert (report["rows_in"], report["rows_decided"]) == (20, 20)
        assert report["model_version"] is None  # the empty home: rules only
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        # `ray start` names itself the machine's current cluster; forget it.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.exists() and str(port) in current.read_text():
            current.unlink()
