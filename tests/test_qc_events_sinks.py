"""The sinks: atomic folder writes, and S3 against a real S3-compatible server on 127.0.0.1.

The server is moto's (``moto[server]``), started here on a free port; the job and
boto3 talk to it over HTTP like to any other S3 endpoint.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from conftest import run_job
from moto.server import ThreadedMotoServer

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.errors import ConfigError
from nmbatch.qc_events.demo import make_demo
from nmbatch.qc_events.sinks import FolderSink, S3Sink, SinkError, open_sink

JOB = "nmbatch.qc_events"
KEY = "prod/log-pass-qc-20240115-102000-42-ingest-form-110001-2024-01-15.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(monkeypatch) -> None:
    """Credentials for the local server, in the environment as boto3 and the job read them."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint)


def objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    s3 = client(endpoint)
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_folder_sink_writes_whole_files_and_says_why_it_cannot(tmp_path):
    sink = FolderSink(tmp_path / "events")
    location = sink.write(KEY, b'{"a": 1}')
    assert Path(location) == tmp_path / "events" / KEY
    sink.write(KEY, b'{"a": 2}')
    assert Path(location).read_bytes() == b'{"a": 2}'
    assert [p.name for p in Path(location).parent.iterdir()] == [Path(KEY).name], "no temp left"

    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "prod").write_text("a file where the folder must go")
    with pytest.raises(SinkError, match="not a folder"):
        FolderSink(tmp_path / "blocked").write(KEY, b"{}")
    with pytest.raises(SinkError, match="would leave the folder"):
        sink.write("prod/log-x-/../../../escape.json", b"{}")
    assert not (tmp_path / "escape.json").exists()


def test_destinations():
    assert isinstance(open_sink("s3://bucket/some/prefix"), S3Sink)
    assert open_sink("s3://bucket/some/prefix/").location(KEY) == f"s3://bucket/some/prefix/{KEY}"
    assert open_sink("s3://bucket").location(KEY) == f"s3://bucket/{KEY}"
    with pytest.raises(ConfigError, match="no bucket"):
        open_sink("s3:///prefix")
    with pytest.raises(ConfigError, match="only folders and s3"):
        open_sink("gs://bucket")


def test_s3_sink_puts_objects_and_reports_the_servers_error(s3_endpoint, aws):
    client(s3_endpoint).create_bucket(Bucket="unit")
    sink = S3Sink("unit", "nacc/events", s3_endpoint)
    assert sink.write(KEY, b'{"a": 1}') == f"s3://unit/nacc/events/{KEY}"
    assert objects(s3_endpoint, "unit") == {f"nacc/events/{KEY}": b'{"a": 1}'}
    with pytest.raises(SinkError, match="NoSuchBucket"):
        S3Sink("no-such-bucket", "", s3_endpoint).write(KEY, b"{}")


def test_job_logs_to_s3_and_a_missing_bucket_fails_only_the_writes(tmp_path, s3_endpoint, aws):
    demo = make_demo(tmp_path / "project")
    logged = sorted(p for p, outcome in demo.expected.items() if outcome == "logged")
    args = ["--project", str(demo.root), "--workers", "1"]

    client(s3_endpoint).create_bucket(Bucket="events")
    sink = ["--sink", "s3://events/nacc", "--s3-endpoint", s3_endpoint]
    ok = run_job(JOB, *args, *sink, "--output", "out", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    table = AnalysisCache.open(tmp_path / "out/qc_events").get_results("outcomes")
    keys = {f"nacc/{k}" for k in table["event_key"].dropna()}
    stored = objects(s3_endpoint, "events")
    assert set(stored) == keys and len(keys) == len(logged)
    assert all(b'"action":"pass-qc"' in body for body in stored.values())
    assert "s3://events/nacc" in ok.stdout

    # The standard AWS setting instead of the flag; the bucket does not exist yet.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        missing = run_job(JOB, *args, "--sink", "s3://late", "--output", "out2", cwd=tmp_path)
        assert missing.returncode == 1, missing.stdout + missing.stderr
        cache = AnalysisCache.open(tmp_path / "out2/qc_events")
        errors = cache.get_errors()
        assert sorted(errors["form_file"]) == logged, "only the writes failed"
        assert set(errors["stage"]) == {"write_event"}
        assert errors["error_message"].str.contains("NoSuchBucket").all()
        assert cache.n_done == len(demo.expected) - len(logged), "the other files went on"

        client(s3_endpoint).create_bucket(Bucket="late")
        retried = run_job(
            JOB, *args, "--sink", "s3://late", "--output", "out2", "--retry-errors", cwd=tmp_path
        )
        assert retried.returncode == 0, retried.stdout + retried.stderr
    assert set(objects(s3_endpoint, "late")) == {k.removeprefix("nacc/") for k in keys}
