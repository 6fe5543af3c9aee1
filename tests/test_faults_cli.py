"""Faults around the command line: signals, bad options, bad parameters, the machine itself.

Each case asserts the exit code, the message a person reads, and that no finished item
was lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import kill_driver, n_done_on_disk, run_job, start_driver, wait_for
from test_durability import durable_now

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.errors import ConfigError

JOB = "nmbatch.synthetic"


def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "out" / "synthetic"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "-1"], "--workers: -1: must be 1 or more"),
        (["--workers", "0"], "--workers: 0: must be 1 or more"),
        (["--limit", "-2"], "--limit: -2: must be 0 or more"),
        (["--start", "-3"], "--start: -3: must be 0 or more"),
        (["--batch-size", "0"], "--batch-size: 0: must be 1 or more"),
        (["--start", "8", "--end", "3"], "--end must be after --start"),
        (["--set", "scale=abc"], "parameter scale must be a number"),
        (["--set", "work_ms=-5"], "work_ms must be >= 0"),
    ],
)
def test_bad_command_lines_are_refused_before_anything_runs(tmp_path, args, message):
    result = run_job(JOB, "--output", "out", "--items", "3", *args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not cache_dir(tmp_path).exists(), "nothing was written"


def test_an_invalid_parameter_with_force_changes_nothing_on_disk(tmp_path):
    first = run_job(JOB, "--output", "out", "--items", "5", "--set", "work_ms=0", cwd=tmp_path)
    assert first.returncode == 0
    manifest = (cache_dir(tmp_path) / "manifest.json").read_bytes()
    bad = run_job(
        JOB, "--output", "out", "--items", "5", "--set", "scale=abc", "--force", cwd=tmp_path
    )
    assert bad.returncode == 2 and "scale must be a number" in bad.stderr
    assert (cache_dir(tmp_path) / "manifest.json").read_bytes() == manifest
    assert AnalysisCache.open(cache_dir(tmp_path)).n_done == 5


@pytest.mark.parametrize(
    ("job", "assignment", "message"),
    [
        ("task_performance", "min_ntrials=abc", "min_ntrials must be a whole number"),
        ("task_performance", "exclude_subjects=5", "exclude_subjects must be a list"),
        ("photometry", "sliding_kwargs.w_len=abc", "sliding_kwargs.w_len must be a whole number"),
        ("photometry", "raw_metrics=[1, 2]", "raw_metrics must be a list of text"),
        ("mea", "eimage_highpass_hz=fast", "eimage_highpass_hz must be a number"),
    ],
)
def test_every_job_checks_parameter_types(job, assignment, message):
    with pytest.raises(ConfigError, match=message):
        get_analysis_config(job, sets=[assignment])


def test_a_selection_that_matches_nothing_is_said_plainly(tmp_path):
    result = run_job(JOB, "--output", "out", "--items", "3", "--only", "item-999999", cwd=tmp_path)
    assert result.returncode == 0
    assert "--only item-999999 matches no listed item" in result.stderr
    assert "the selection matches no listed item" in result.stdout


def test_two_quick_sigterms_exit_at_once_and_keep_every_finished_item(tmp_path):
    driver = start_driver(
        JOB,
        "--output",
        "out",
        "--items",
        "200",
        "--set",
        "work_ms=100",
        "--workers",
        "2",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-progress",
        cwd=tmp_path,
    )
    wait_for(lambda: n_done_on_disk(cache_dir(tmp_path)) >= 4, "4 items saved", driver)
    os.killpg(driver.pid, signal.SIGTERM)
    time.sleep(0.005)
    os.killpg(driver.pid, signal.SIGTERM)
    started = time.monotonic()
    out, _ = driver.communicate(timeout=60)
    assert time.monotonic() - started < 30, "the second signal stops at once"
    assert driver.returncode == 130, out
    assert "before any item ran" not in out
    assert "Resume with:" in out
    time.sleep(2)  # the workers notice their driver is gone
    durable = durable_now(cache_dir(tmp_path))
    assert len(durable) >= 4
    resumed = run_job(
        JOB,
        "--output",
        "out",
        "--items",
        "200",
        "--set",
        "work_ms=100",
        "--limit",
        "0",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    skipped = next(line for line in resumed.stdout.splitlines() if "skipped, done before" in line)
    assert int(skipped.split()[-1]) >= len(durable), "nothing finished was lost"


def test_ctrl_c_shows_no_worker_tracebacks(tmp_path):
    driver = start_driver(
        JOB,
        "--output",
        "out",
        "--items",
        "60",
        "--set",
        "work_ms=200",
        "--workers",
        "2",
        "--dashboard-address",
        "127.0.0.1:0",
        "--no-progress",
        cwd=tmp_path,
    )
    wait_for(lambda: n_done_on_disk(cache_dir(tmp_path)) >= 2, "2 items saved", driver)
    kill_driver(driver, signal.SIGINT)
    out, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, out
    assert "interrupted" in out and "Resume with:" in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out


def test_dashboard_on_every_interface_is_said_and_linked_honestly(tmp_path):
    result = run_job(
        JOB,
        "--output",
        "out",
        "--items",
        "2",
        "--set",
        "work_ms=0",
        "--workers",
        "1",
        cwd=tmp_path,
        dashboard=":0",
    )
    assert result.returncode == 0, result.stderr
    assert "listens on every network interface" in result.stderr
    link = next(line for line in result.stdout.splitlines() if line.startswith("Dask dashboard"))
    assert "127.0.0.1" not in link


def test_more_workers_than_cores_is_said_and_dask_noise_goes_to_the_log(tmp_path):
    workers = str((os.cpu_count() or 1) + 2)
    result = run_job(
        JOB,
        "--output",
        "out",
        "--items",
        "4",
        "--set",
        "work_ms=0",
        "--workers",
        workers,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"--workers {workers} on a machine with {os.cpu_count()} cores" in result.stderr
    assert "distributed." not in result.stderr, "Dask's own log lines stay out of the terminal"
    (log,) = cache_dir(tmp_path).glob("runs/*/dask.log")
    assert "distributed" in log.read_text()


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=3m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_an_environment_error_and_keeps_what_finished(small_disk, tmp_path):
    result = run_job(
        JOB,
        "--output",
        str(small_disk / "out"),
        "--items",
        "400",
        "--set",
        "work_ms=5",
        "--set",
        "series_length=4000",
        "--workers",
        "1",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no space left on the device" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(small_disk.rglob(".*.tmp")), "temporary files are removed"


def test_a_read_only_output_is_an_environment_error(tmp_path):
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "ro,size=1m")
    try:
        result = run_job(JOB, "--output", str(disk / "out"), "--items", "2", cwd=tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the file system is read-only" in result.stderr and str(disk) in result.stderr
