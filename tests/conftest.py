"""Shared fixtures: a real LocalCluster of worker processes, and the job CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

import nmbatch.engine  # noqa: F401  (registers the nmbatch Dask defaults)


@pytest.fixture(scope="session")
def client() -> Iterator[Client]:
    """Two single-threaded worker processes, as ``--workers 2`` starts them."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def job_command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_job(
    module: str, *args: str, cwd: Path, timeout: float = 240, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` the way a user does, with no terminal."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        job_command(module, *args, "--dashboard-address", ":0"),
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=env,
        **kwargs,
    )
