"""Shared fixtures: a real LocalCluster of worker processes, and the job CLI as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from nmbatch.engine import AnalysisCache, NmbatchError


@pytest.fixture(scope="session")
def client() -> Iterator[Client]:
    """Two single-threaded worker processes, as ``--workers 2`` starts them."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def job_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_job(
    module: str,
    *args: str,
    cwd: Path,
    timeout: float = 240,
    dashboard: str = "127.0.0.1:0",
    **kwargs,
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` the way a user does, with no terminal."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        job_command(module, *args, "--dashboard-address", dashboard),
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def nmbatch_status(cache_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``nmbatch status DIR`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "nmbatch", "status", str(cache_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_driver(
    module: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A job driver in its own process group, so a test can kill it with all its workers."""
    return subprocess.Popen(
        job_command(module, *args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env=env,
    )


def kill_driver(driver: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the driver's whole process group (driver, nannies, workers)."""
    os.killpg(driver.pid, sig)
    if sig == signal.SIGKILL:
        driver.wait()


def wait_for(
    condition: Callable[[], object],
    what: str,
    driver: subprocess.Popen | None = None,
    timeout: float = 120.0,
) -> None:
    """Wait until ``condition()`` holds; fail at once if ``driver`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if driver is not None and driver.poll() is not None:
            output = driver.stdout.read() if driver.stdout else ""
            raise AssertionError(f"the driver exited with {driver.returncode}:\n{output}")
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.1)


def n_done_on_disk(cache_dir: Path) -> int:
    """Items committed as done in the cache on disk, as a reader opening it sees them."""
    if not (cache_dir / "items").exists():
        return 0
    try:
        return AnalysisCache.open(cache_dir).n_done
    except NmbatchError:
        return 0
