"""The photometry QC job end to end through its command line, on a generated ONE cache."""

from __future__ import annotations

import os
import subprocess

import pandas as pd
import pytest
from conftest import job_command, kill_driver, n_done_on_disk, run_job, start_driver, wait_for

from nmbatch.engine.cache import AnalysisCache
from nmbatch.ibl.demo import make_demo_one_cache

JOB = "nmbatch.photometry"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo with every planted case and enough ordinary sessions to kill a run mid-way."""
    return make_demo_one_cache(
        tmp_path_factory.mktemp("one") / "cache", n_sessions=20, duration_s=300
    )


def source_args(demo) -> list[str]:
    return ["--one-cache", str(demo.root), "--sessions", str(demo.sessions_file)]


def test_kill_resume_outputs_and_parameter_change(demo, tmp_path):
    cache_dir = tmp_path / "out" / "photometry"
    args = [*source_args(demo), "--output", "out", "--workers", "1", "--batch-size", "1"]
    driver = start_driver(JOB, *args, "--dashboard-address", "127.0.0.1:0", cwd=tmp_path)
    try:
        wait_for(lambda: n_done_on_disk(cache_dir) >= 3, "3 sessions saved", driver, timeout=180)
    finally:
        kill_driver(driver)
    partial = AnalysisCache.open(cache_dir)
    finished_before = set(partial.item_states().query("status == 'done'")["eid"])
    assert len(finished_before) >= 3

    resumed = run_job(JOB, *args, cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr  # the planted sessions fail
    skipped = next(line for line in resumed.stdout.splitlines() if "skipped, done before" in line)
    assert int(skipped.split()[-1]) >= len(finished_before)

    cache = AnalysisCache.open(cache_dir)
    qc = cache.get_results("qc")
    assert not qc.duplicated(["eid", "band", "brain_region"]).any(), "no session twice"
    errors = cache.get_errors().set_index("eid")
    assert errors.loc[demo.cases["corrupt_signal"], "stage"] == "load_signal"
    assert errors.loc[demo.cases["missing_locations"], "stage"] == "load_locations"
    assert set(qc["eid"]) | set(errors.index) == set(cache.item_states()["eid"])

    sessions = pd.read_parquet(cache_dir / "sessions.pqt").set_index("eid")
    assert sessions.loc[demo.cases["no_trials"], "can_load_trials"] == False  # noqa: E712
    assert sessions.loc[demo.cases["trials_in_alf"], "can_load_trials"] == True  # noqa: E712
    assert sessions.loc[demo.cases["missing_locations"], "load_error"].startswith("locations:")
    assert demo.excluded_subject not in set(sessions["subject"])
    assert "has, fails" in resumed.stdout, "the closing summary compares can_load_* with has_*"

    changed = run_job(JOB, *args, "--set", "sliding_kwargs.w_len=60", cwd=tmp_path)
    assert changed.returncode == 2
    assert "sliding_kwargs.w_len:\n    cached:  120\n    current: 60" in changed.stdout
    assert AnalysisCache.open(cache_dir).n_done == cache.n_done


def test_no_data_source_says_how_to_get_one(tmp_path):
    env_home = tmp_path / "home"
    env_home.mkdir()
    result = subprocess.run(
        job_command(JOB, "--output", "out"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, "HOME": str(env_home)},
    )
    assert result.returncode == 2
    assert "--one-cache" in result.stderr and "--demo" in result.stderr
