"""The runner on a real LocalCluster of worker processes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.runner import WORKER_LOST_STAGE, RunOptions, execute, select_items
from nmbatch.synthetic.job import SyntheticJob, item_id


def run(client, tmp_path, job, params, options=None, **cache_kwargs):
    options = options or RunOptions(progress=False)
    with AnalysisCache.for_job(job, params, tmp_path, **cache_kwargs) as cache:
        cache.check_config()
        listing = job.list_items(params)
        todo, report = select_items(job, listing, params, cache, options)
        execute(client, job, params, cache, listing, todo, report, options)
    return report, AnalysisCache.open(tmp_path / job.name)


def test_every_item_lands_once_with_its_known_value(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=5", "series_length=3", "scale=2"])
    report, cache = run(client, tmp_path, SyntheticJob(n_items=30), params, batch_size=7)
    assert (report.done, report.n_failed) == (30, 0)
    results = cache.get_results("values").sort_values("index")
    assert results["item_id"].tolist() == [item_id(i) for i in range(30)]
    np.testing.assert_allclose(results["value"], [2 * math.sqrt(i) for i in range(30)])
    np.testing.assert_allclose(cache.read_arrays(item_id(9))["series"], [6.0] * 3)
    states = cache.item_states()
    assert states["worker"].str.startswith("tcp://").all()
    assert states.set_index("item_id").loc[item_id(4), "flags"] == {"even": True}


def test_a_failing_item_becomes_an_error_record_and_the_rest_finish(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=1"])
    job = SyntheticJob(n_items=10, fail=(item_id(3),))
    report, cache = run(client, tmp_path, job, params)
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
    report, cache = run(client, tmp_path, SyntheticJob(n_items=5), params)
    assert (report.todo, report.skipped_failed) == (0, 1), "failures are skipped unless retried"
    report, cache = run(
        client,
        tmp_path,
        SyntheticJob(n_items=5),
        params,
        RunOptions(progress=False, retry_errors=True),
    )
    assert (report.done, report.skipped_done) == (1, 4)
    assert cache.get_errors().empty and cache.n_done == 5
    assert cache.item_states().set_index("item_id").loc[item_id(1), "attempt"] == 2


def test_an_item_that_kills_its_worker_is_recorded_and_the_run_goes_on(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=20"])
    job = SyntheticJob(n_items=8, kill=(item_id(2),))
    report, cache = run(client, tmp_path, job, params)
    assert (report.done, report.n_failed) == (7, 1)
    error = cache.get_errors().iloc[0]
    assert (error["item_id"], error["stage"], error["error_type"]) == (
        item_id(2),
        WORKER_LOST_STAGE,
        "KilledWorker",
    )
    client.wait_for_workers(2, timeout=60)


def test_tiny_items_are_grouped_and_all_stored(client, tmp_path):
    params = get_analysis_config("synthetic", sets=["work_ms=0"])
    report, cache = run(client, tmp_path, SyntheticJob(n_items=600), params, batch_size=100)
    assert report.done == 600
    results = cache.get_results("values")
    assert results["item_id"].is_unique and len(results) == 600


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (RunOptions(start=2, end=5), [2, 3, 4]),
        (RunOptions(limit=2), [0, 1]),
        (RunOptions(only=[item_id(7), "subject-1"]), [1, 7, 8]),
    ],
)
def test_selection_by_range_limit_and_id(tmp_path, options, expected):
    params = get_analysis_config("synthetic")
    job = SyntheticJob(n_items=10)
    with AnalysisCache.for_job(job, params, tmp_path) as cache:
        listing = job.list_items(params)
        todo, report = select_items(job, listing, params, cache, options)
    assert [int(i.data["index"]) for i in todo] == expected


def test_selection_skips_done_items(tmp_path):
    params = get_analysis_config("synthetic")
    job = SyntheticJob(n_items=4)
    with AnalysisCache.for_job(job, params, tmp_path) as cache:
        cache.add(item_id(0), {"index": 0, "value": 0.0}, table="values")
        cache.save()
        listing = job.list_items(params)
        todo, report = select_items(job, listing, params, cache, RunOptions(limit=2))
    assert [i.id for i in todo] == [item_id(1), item_id(2)]
    assert report.skipped_done == 1
