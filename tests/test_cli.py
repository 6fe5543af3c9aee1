"""The job command line end to end, as a user runs it: kills, resumes, exit codes, status."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from conftest import kill_driver, n_done_on_disk, nmbatch_status, run_job, start_driver, wait_for

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.summary import shorten

JOB = "nmbatch.synthetic"


def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "out" / "synthetic"


def synthetic_driver(tmp_path: Path, *args: str) -> subprocess.Popen:
    """The synthetic job's driver on ``tmp_path/out``, killable with its workers."""
    return start_driver(
        JOB, "--output", "out", "--dashboard-address", "127.0.0.1:0", *args, cwd=tmp_path
    )


def test_exit_codes_say_what_happened(tmp_path):
    ok = run_job(JOB, "--output", "out", "--items", "6", "--set", "work_ms=1", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "done now" in ok.stdout and "Dask dashboard: http" in ok.stdout
    failed = run_job(JOB, "--output", "out2", "--items", "6", "--fail", "item-000002", cwd=tmp_path)
    assert failed.returncode == 1
    assert "compute  ValueError" in failed.stdout and "--retry-errors" in failed.stdout
    again = run_job(JOB, "--output", "out2", "--items", "6", cwd=tmp_path)
    assert again.returncode == 1, "a failure recorded earlier still makes the run incomplete"
    usage = run_job(JOB, "--output", "out", "--set", "wrok_ms=1", cwd=tmp_path)
    assert usage.returncode == 2 and "did you mean 'work_ms'" in usage.stderr


def test_kill_resume_and_parameter_change(tmp_path):
    """The predecessor's integration test: kill -9 mid-way, resume, change a parameter."""
    args = ("--items", "40", "--set", "work_ms=150", "--workers", "2", "--batch-size", "2")
    driver = synthetic_driver(tmp_path, *args)
    try:
        wait_for(lambda: n_done_on_disk(cache_dir(tmp_path)) >= 6, "6 items saved", driver)
    finally:
        kill_driver(driver)
    partial = AnalysisCache.open(cache_dir(tmp_path))
    saved = partial.get_results("values")
    assert 6 <= partial.n_done < 40
    assert len(saved) == partial.n_done and saved["item_id"].is_unique

    resumed = run_job(JOB, "--output", "out", *args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    skipped_line = next(
        line for line in resumed.stdout.splitlines() if "skipped, done before" in line
    )
    assert int(skipped_line.split()[-1]) >= partial.n_done
    final = AnalysisCache.open(cache_dir(tmp_path)).get_results("values")
    assert sorted(final["item_id"]) == [f"item-{i:06d}" for i in range(40)], (
        "none lost, none doubled"
    )
    for item_id in saved["item_id"]:
        assert (final["item_id"] == item_id).sum() == 1

    changed = run_job(
        JOB, "--output", "out", *args[:2], "--set", "work_ms=150", "--set", "scale=2", cwd=tmp_path
    )
    assert changed.returncode == 2
    assert "scale:\n    cached:  1.0\n    current: 2" in changed.stdout
    assert "--on-config-change" in changed.stderr
    assert AnalysisCache.open(cache_dir(tmp_path)).n_done == 40, (
        "nothing is touched before a decision"
    )

    recomputed = run_job(
        JOB,
        "--output",
        "out",
        "--items",
        "4",
        "--set",
        "scale=2",
        "--set",
        "work_ms=0",
        "--on-config-change",
        "recompute",
        cwd=tmp_path,
    )
    assert recomputed.returncode == 0
    assert AnalysisCache.open(cache_dir(tmp_path)).n_done == 4


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    driver = synthetic_driver(
        tmp_path, "--items", "60", "--set", "work_ms=200", "--workers", "2", "--batch-size", "1"
    )
    wait_for(lambda: n_done_on_disk(cache_dir(tmp_path)) >= 3, "3 items saved", driver)
    kill_driver(driver, signal.SIGINT)
    out, _ = driver.communicate(timeout=60)
    assert driver.returncode == 130, out
    assert "interrupted" in out and "Resume with:" in out
    cache = AnalysisCache.open(cache_dir(tmp_path))
    assert 3 <= cache.n_done < 60
    assert cache.get_results("values")["item_id"].is_unique


def test_a_second_run_on_the_same_cache_is_refused(tmp_path):
    first = synthetic_driver(tmp_path, "--items", "300", "--set", "work_ms=100", "--workers", "1")
    try:
        wait_for(lambda: (cache_dir(tmp_path) / "manifest.json").exists(), "the manifest", first)
        second = run_job(
            JOB, "--output", "out", "--items", "300", "--set", "work_ms=100", cwd=tmp_path
        )
        assert second.returncode == 2
        assert "in use by another run" in second.stderr
        assert "a run is writing now" in nmbatch_status(cache_dir(tmp_path)).stdout
    finally:
        kill_driver(first, signal.SIGTERM)
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 130, out


def test_status_shows_counts_failed_items_and_config(tmp_path):
    run_job(
        JOB,
        "--output",
        "out",
        "--items",
        "5",
        "--set",
        "work_ms=0",
        "--fail",
        "item-000001",
        "--fail",
        "item-000003",
        cwd=tmp_path,
    )
    status = nmbatch_status(cache_dir(tmp_path))
    assert status.returncode == 0
    assert "done 3, failed 2" in status.stdout
    assert "compute  ValueError" in status.stdout
    assert "- item-000001 (subject-1) at compute: planted failure in item-000001" in status.stdout
    assert "- item-000003 (subject-3) at compute" in status.stdout
    assert "=== synthetic config ===" in status.stdout
    missing = nmbatch_status(tmp_path)
    assert missing.returncode == 2 and "not an nmbatch cache" in missing.stderr


def test_print_config_dry_run_and_console_script(tmp_path):
    shown = run_job(JOB, "--print-config", "--set", "scale=3", cwd=tmp_path)
    assert shown.returncode == 0 and "scale: 3" in shown.stdout
    dry = run_job(JOB, "--dry-run", "--workers", "3", cwd=tmp_path)
    assert dry.returncode == 0 and "3 worker processes" in dry.stdout
    listed = subprocess.run(
        [Path(sys.executable).parent / "nmbatch", "jobs"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0 and "synthetic" in listed.stdout


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_plan_says_what_would_run_and_why_and_writes_nothing(tmp_path):
    base = ("--output", "out", "--set", "work_ms=0")
    run_job(JOB, *base, "--items", "4", "--fail", "item-000001", cwd=tmp_path)
    before = _snapshot(cache_dir(tmp_path))
    plan = run_job(JOB, *base, "--items", "6", "--plan", "--verbose", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    lines = [line.split() for line in plan.stdout.splitlines()]
    assert ["would", "run", "2"] in lines and ["new", "2"] in lines
    assert "item-000004" in plan.stdout and "item-000005" in plan.stdout
    assert ["done", "3"] in lines
    assert "failed before" in plan.stdout and "--retry-errors runs them" in plan.stdout
    retry = subprocess.run(
        [
            sys.executable,
            "-m",
            "nmbatch",
            "plan",
            "synthetic",
            *base,
            "--items",
            "6",
            "--retry-errors",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert retry.returncode == 0 and "would run       3" in retry.stdout, retry.stdout
    changed = run_job(JOB, *base, "--items", "6", "--set", "scale=2", "--plan", cwd=tmp_path)
    assert changed.returncode == 0
    assert "scale:\n    cached:  1.0\n    current: 2" in changed.stdout
    assert "parameters changed" in changed.stdout and "on recompute" in changed.stdout
    assert _snapshot(cache_dir(tmp_path)) == before, "a plan writes nothing"


def test_shortened_messages_end_with_an_ellipsis():
    long = "cannot open /data/" + "a" * 300 + "/file.h5\nsecond line"
    short = shorten(long, 80)
    assert len(short) == 80 and short.endswith("…") and "\n" not in short
    assert shorten("fits\nmore", 80) == "fits"
