"""The runner on a real LocalCluster of worker processes, and the plan it runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.outcome import WORKER_LOST_STAGE
from nmbatch.engine.plan import Selection, make_plan
from nmbatch.engine.runner import Pacing, RunReport, finish, run_plan
from nmbatch.engine.session import cache_for_job
from nmbatch.synthetic.job import SyntheticJob, item_id


def run(client, tmp_path, job, params, selection=None, **pacing):
    """One run in this process, as the command line does it (minus the cluster start)."""
    with cache_for_job(job, params, tmp_path) as cache:
        cache.check_config()
        listing = job.list_items(params)
        plan = make_plan(
            job, listing, params, cache.index, cache.stamp, selection or Selection(), False
        )
        report = RunReport(listed=plan.listed, todo=len(plan.todo))
        try:
            run_plan(
                client, job, params, cache, listing, plan, report, Pacing(progress=False, **pacing)
            )
        finally:
            finish(cache, job, listing, report)
    return plan, report, AnalysisCache.open(tmp_path / job.name)


def test_every_item_lands_once_with_its_known_value(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=5", "series_length=3", "scale=2"])
    _, report, cache = run(client, tmp_path, SyntheticJob(n_items=30), params)
    assert (report.done, report.n_failed) == (30, 0)
    results = cache.get_results("values").sort_values("index")
    assert results["item_id"].tolist() == [item_id(i) for i in range(30)]
    np.testing.assert_allclose(results["value"], [2 * math.sqrt(i) for i in range(30)])
    np.testing.assert_allclose(cache.read_arrays(item_id(9))["series"], [6.0] * 3)
    states = cache.item_states()
    assert states["worker"].str.startswith("tcp://").all()
    assert states.set_index("item_id").loc[item_id(4), "flags"] == {"even": True}
    assert set(states["code_version"]) == {SyntheticJob.code_version}
    assert (
        states["nmbatch_version"].notna().all() and states["libraries"].str.contains("numpy").all()
    )


def test_a_failing_item_becomes_an_error_record_and_the_rest_finish(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=1"])
    job = SyntheticJob(n_items=10, fail=(item_id(3),))
    _, report, cache = run(client, tmp_path, job, params)
    assert (report.done, report.n_failed) == (9, 1)
    error = cache.get_errors().iloc[0]
    assert (error["item_id"], error["subject"], error["stage"]) == (
        item_id(3),
        "subject-3",
        "compute",
    )
    assert error["error_type"] == "ValueError"
    assert "planted failure" in error["error_message"]
    assert "Traceback" in error["traceback"] and error["worker"].startswith("tcp://")
    assert error["attempt"] == 1


def test_retry_errors_runs_failed_items_again(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=1"])
    run(client, tmp_path, SyntheticJob(n_items=5, fail=(item_id(1),)), params)
    plan, _, _ = run(client, tmp_path, SyntheticJob(n_items=5), params)
    assert (len(plan.todo), len(plan.skipped_failed)) == (0, 1), (
        "failures are skipped unless retried"
    )
    plan, report, cache = run(
        client, tmp_path, SyntheticJob(n_items=5), params, Selection(retry_errors=True)
    )
    assert (report.done, plan.count("done")) == (1, 4)
    assert cache.get_errors().empty and cache.n_done == 5
    assert cache.item_states().set_index("item_id").loc[item_id(1), "attempt"] == 2


def test_an_item_that_kills_its_worker_is_recorded_and_the_run_goes_on(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=20"])
    job = SyntheticJob(n_items=8, kill=(item_id(2),))
    _, report, cache = run(client, tmp_path, job, params)
    assert (report.done, report.n_failed) == (7, 1)
    error = cache.get_errors().iloc[0]
    assert (error["item_id"], error["stage"], error["error_type"]) == (
        item_id(2),
        WORKER_LOST_STAGE,
        "KilledWorker",
    )
    assert error["worker"].startswith("tcp://"), "an address, not a WorkerState repr"
    client.wait_for_workers(2, timeout=300)


def test_items_queued_behind_killers_are_not_blamed(client, tmp_path):
    """Dask counts a worker's death against every task queued on it; nmbatch does not."""
    params = get_analysis_config("synthetic", sets=["work_ms=200"])
    job = SyntheticJob(n_items=4, kill=(item_id(0), item_id(1)))
    _, report, cache = run(client, tmp_path, job, params, tasks_per_thread=4)
    errors = cache.get_errors().set_index("item_id")
    assert set(errors.index) == {item_id(0), item_id(1)}
    assert set(errors["stage"]) == {WORKER_LOST_STAGE}
    assert cache.is_complete(item_id(2)) and cache.is_complete(item_id(3))
    client.wait_for_workers(2, timeout=300)


def test_tiny_items_are_grouped_and_all_stored(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=0"])
    _, report, cache = run(
        client, tmp_path, SyntheticJob(n_items=600), params, max_items_per_task=100
    )
    assert report.done == 600
    results = cache.get_results("values")
    assert results["item_id"].is_unique and len(results) == 600
    assert len(list((cache.directory / "items").iterdir())) < 8, "parts are merged as they come"


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (Selection(start=2, end=5), [2, 3, 4]),
        (Selection(limit=2), [0, 1]),
        (Selection(only=[item_id(7), "subject-1"]), [1, 7, 8]),
    ],
)
def test_selection_by_range_limit_and_id(tmp_path, selection, expected):
    params = get_analysis_config("synthetic")
    job = SyntheticJob(n_items=10)
    with cache_for_job(job, params, tmp_path) as cache:
        plan = make_plan(
            job, job.list_items(params), params, cache.index, cache.stamp, selection, False
        )
    assert [int(i.data["index"]) for i in plan.todo] == expected


def test_selection_skips_done_items_and_names_unknown_ids(tmp_path):
    params = get_analysis_config("synthetic")
    job = SyntheticJob(n_items=4)
    with cache_for_job(job, params, tmp_path) as cache:
        cache.check_config()
        cache.add(item_id(0), {"index": 0, "value": 0.0}, table="values")
        cache.save()
        plan = make_plan(
            job, job.list_items(params), params, cache.index, cache.stamp, Selection(limit=2), False
        )
        assert [i.id for i in plan.todo] == [item_id(1), item_id(2)]
        assert plan.count("done") == 1 and plan.limited == 1
        plan = make_plan(
            job,
            job.list_items(params),
            params,
            cache.index,
            cache.stamp,
            Selection(only=["item-999999", item_id(3)]),
            False,
        )
        assert plan.unmatched_only == ["item-999999"]
        assert [i.id for i in plan.todo] == [item_id(3)]
