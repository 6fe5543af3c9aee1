"""Workers import a job's ``worker_preload`` modules as they start, before any task reaches them."""

from __future__ import annotations

import argparse
import sys

from distributed import LocalCluster

from nmbatch.engine.clusters import connect
from nmbatch.engine.clusters.slurm import SlurmBackend

PRELOAD = ("json.tool",)  # quick to import, and imported by nothing else a worker runs


def _loaded(module: str) -> bool:
    return module in sys.modules


def local_args(**changes) -> argparse.Namespace:
    args = dict(scheduler=None, cluster="local", workers=2, dashboard_address=":0")
    return argparse.Namespace(**{**args, **changes})


def test_local_workers_import_the_preload_at_start():
    with connect(local_args(), PRELOAD) as client:
        client.wait_for_workers(2)
        loaded = client.run(_loaded, PRELOAD[0])
        assert len(loaded) == 2 and all(loaded.values())


def test_workers_of_a_running_scheduler_get_the_preload_by_plugin():
    with LocalCluster(n_workers=1, processes=True, dashboard_address=":0") as cluster:
        args = local_args(scheduler=cluster.scheduler_address)
        with connect(args) as client:  # without a preload, nothing is imported
            assert not any(client.run(_loaded, PRELOAD[0]).values())
        with connect(args, PRELOAD) as client:
            assert all(client.run(_loaded, PRELOAD[0]).values())


def test_slurm_workers_get_preload_arguments(tmp_path):
    args = argparse.Namespace(
        cluster_profile=None,
        adapt=None,
        workers=1,
        queue=None,
        account=None,
        walltime=None,
        worker_memory=None,
        cores_per_worker=None,
        output=tmp_path,
    )
    extra = SlurmBackend(args).job_options(("a.b", "c"))["worker_extra_args"]
    assert extra[-4:] == ["--preload", "a.b", "--preload", "c"]
    assert "--preload" not in SlurmBackend(args).job_options()["worker_extra_args"]
