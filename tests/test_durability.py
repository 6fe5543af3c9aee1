"""Killing the driver with SIGKILL at many moments of a real run: nothing finished is lost.

One long synthetic run is cut by a chain of kills: at named points inside commits,
compactions and folder swaps (``NMBATCH_FAULT``, the driver kills itself there) and at
random moments from outside. After each kill, everything durable at that moment (what
was committed, and every task a worker had finished staging) must be in the cache at
the next open, exactly once; at the end the values equal a clean run's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import kill_driver, run_job, start_driver, wait_for

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.commit import staged_tasks
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.parts import read_table
from nmbatch.engine.session import cache_for_job
from nmbatch.synthetic.job import SyntheticJob

JOB = "nmbatch.synthetic"
N_ITEMS = 400
ARGS = ("--items", str(N_ITEMS), "--set", "work_ms=50", "--set", "series_length=3")
KILL_POINTS = [
    "after-commit:1",
    "commit-numbered:2",
    "commit-results-moved:3",
    "after-commit:5",
    "swap-built:1",
    "swap-linked:1",
    "after-compaction:1",
    "commit-numbered:9",
    "swap-built:3",
    "after-commit:12",
    "swap-linked:2",
    "commit-results-moved:7",
]
RANDOM_KILLS = 10


def durable_now(cache_dir: Path) -> set[str]:
    """Items whose outcome is on disk: committed as done, or staged by a worker that finished."""
    done = set()
    if (cache_dir / "items").exists():
        states = AnalysisCache.open(cache_dir).item_states()
        done = set(states.loc[states["status"] == "done", "item_id"])
    store = AnalysisCache.open(cache_dir).store if cache_dir.exists() else None
    for staged in staged_tasks(store) if store is not None else []:
        if staged.record is not None:
            table = read_table((cache_dir / staged.key / staged.record).read_bytes())
            done |= {
                i
                for i, s in zip(
                    table["item_id"].to_pylist(), table["status"].to_pylist(), strict=True
                )
                if s == "done"
            }
    return done


def start(tmp_path: Path, fault: str | None) -> subprocess.Popen:
    """The long run's driver, killing itself at ``fault`` (NMBATCH_FAULT) if one is given."""
    env = {k: v for k, v in os.environ.items() if k != "NMBATCH_FAULT"}
    env["PYTHONUNBUFFERED"] = "1"
    # tasks of 250 ms, not the default 1 s: four times the commits, so the kill points fall
    # inside a run however little of it is left
    env["DASK_NMBATCH__RUNNER__TASK_DURATION_TARGET"] = "250ms"
    if fault:
        env["NMBATCH_FAULT"] = fault
    args = ("--output", "out", *ARGS, "--workers", "2", "--dashboard-address", "127.0.0.1:0")
    return start_driver(JOB, *args, "--no-progress", cwd=tmp_path, env=env)


def check_reopened(cache_dir: Path, durable: set[str], params: dict) -> int:
    """Open as the next run would (repairs included): every durable item once, none twice."""
    with cache_for_job(SyntheticJob(N_ITEMS), params, cache_dir.parent) as cache:
        results = cache.get_results("values")
        assert results["item_id"].is_unique, "an item's rows appear twice"
        missing = durable - set(results["item_id"])
        assert not missing, f"finished items lost: {sorted(missing)[:5]}"
        direct = pd.read_parquet(cache_dir / "results" / "values")
        assert direct["item_id"].is_unique, "a direct reader of the folder sees a row twice"
        return cache.n_done


@pytest.mark.slow
def test_sigkill_at_many_moments_loses_and_doubles_nothing(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    reference = run_job(JOB, "--output", "out", *ARGS, "--workers", "2", cwd=clean)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    expected = AnalysisCache.open(clean / "out" / "synthetic").get_results("values")
    expected = expected.set_index("item_id").sort_index()

    params = get_analysis_config("synthetic", sets=list(ARGS[3::2]))
    cache_dir = tmp_path / "out" / "synthetic"
    rng = random.Random(7)
    kills = [(point, None) for point in KILL_POINTS]
    kills += [(None, rng.uniform(0.1, 1.0)) for _ in range(RANDOM_KILLS)]
    rng.shuffle(kills)
    killed = 0
    for fault, delay in kills:
        driver = start(tmp_path, fault)
        if fault is None:
            wait_for(lambda: cache_dir.joinpath("staging").exists(), "the run to start", driver)
            time.sleep(delay)
            if driver.poll() is None:
                kill_driver(driver, signal.SIGKILL)
        output, _ = driver.communicate(timeout=300)
        assert driver.returncode in (0, -signal.SIGKILL), output
        killed += driver.returncode == -signal.SIGKILL
        _wait_for_workers_gone(driver)
        check_reopened(cache_dir, durable_now(cache_dir), params)
    assert killed >= 20, f"only {killed} kills happened before the run completed"

    final = run_job(JOB, "--output", "out", *ARGS, "--workers", "2", cwd=tmp_path)
    assert final.returncode == 0, final.stdout + final.stderr
    got = AnalysisCache.open(cache_dir).get_results("values").set_index("item_id").sort_index()
    assert list(got.index) == list(expected.index), "every item exactly once"
    np.testing.assert_allclose(got["value"], expected["value"])
    cache = AnalysisCache.open(cache_dir)
    value = expected.loc["item-000042", "value"]
    np.testing.assert_allclose(cache.read_arrays("item-000042")["series"], [value] * 3)


def _wait_for_workers_gone(driver) -> None:
    """A killed driver's worker processes exit soon after it; wait so they write no more."""
    try:
        for _ in range(100):
            os.killpg(driver.pid, 0)
            time.sleep(0.1)
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
