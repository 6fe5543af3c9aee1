"""Engine overhead, side by side: a plain serial loop vs the engine with 1 and 2 workers.

    python bench/bench_engine.py            # the issue's sizes (about 6 minutes on 2 cores)
    python bench/bench_engine.py --quick    # a tenth of the items

(a) CPU-bound items of about 50 ms each; (b) near-empty items; for both, the driver's
CPU time per 1000 items (it hosts the scheduler too) and what making outcomes durable
costs: the workers' staged writes and the driver's commits. (c) start-up of a resume
over a cache of 100 000 completed items (time to the first task, driver memory).
Cluster start-up is reported separately: it is paid once a run.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster

from nmbatch.engine.clusters.core import WORKER_SETUP
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.job import ItemContext
from nmbatch.engine.parts import stage_task
from nmbatch.engine.plan import Selection, make_plan
from nmbatch.engine.runner import Pacing, RunReport, finish, run_plan
from nmbatch.engine.session import cache_for_job
from nmbatch.engine.settings import seconds
from nmbatch.engine.worker import TaskSpec, run_one
from nmbatch.synthetic.job import SyntheticJob, item_id


def serial_loop(n_items: int, params: dict) -> float:
    """The predecessor's shape: one process, one item after the other, results in a list."""
    job = SyntheticJob(n_items)
    started = time.perf_counter()
    results = []
    for item in job.list_items(params).items:
        results.append(job.run_item(item, ItemContext(item, params)))
    return time.perf_counter() - started


def engine(n_items: int, params: dict, workers: int) -> dict[str, float]:
    """One run through the engine: seconds (cluster start excluded), driver CPU, commits."""
    job = SyntheticJob(n_items)
    t0 = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address="127.0.0.1:0",
            preload=[WORKER_SETUP],
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as tmp,
        cache_for_job(job, params, Path(tmp)) as cache,
    ):
        startup = time.perf_counter() - t0
        cache.check_config()
        commits = {"n": 0, "s": 0.0}
        commit = cache.commit

        def timed_commit(outcome):
            started = time.perf_counter()
            records = commit(outcome)
            commits["n"] += 1
            commits["s"] += time.perf_counter() - started
            return records

        cache.commit = timed_commit
        started, cpu = time.perf_counter(), time.process_time()
        listing = job.list_items(params)
        plan = make_plan(job, listing, params, cache.index, cache.stamp, Selection(), False)
        report = RunReport()
        # the task size the command line uses (dask.yaml), not Pacing's own default
        pacing = Pacing(task_duration_target=seconds("runner.task-duration-target"), progress=False)
        run_plan(client, job, params, cache, listing, plan, report, pacing)
        finish(cache, job, listing, report)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert report.done == n_items, report
    return {"seconds": elapsed, "startup": startup, "cpu": cpu, **commits}


def staging_cost(params: dict, items_per_task: int, repeats: int = 20) -> float:
    """Seconds a worker spends making one task of ``items_per_task`` items durable."""
    job = SyntheticJob(items_per_task)
    with tempfile.TemporaryDirectory() as tmp, cache_for_job(job, params, Path(tmp)) as cache:
        spec = TaskSpec(
            job, params, job.table_schemas(params), "item_id", "subject", cache.stamp, tmp
        )
        outcomes = [run_one(spec, item, 1, "bench") for item in job.list_items(params).items]
        records = [r for r, _, _ in outcomes]
        tables = {"values": [t["values"] for _, t, _ in outcomes]}
        started = time.perf_counter()
        for n in range(repeats):
            stage_task(
                Path(tmp) / f"task-{n}", "arrays.zarr", records, tables, {}, "item_id", "subject"
            )
        return (time.perf_counter() - started) / repeats


def compare(label: str, n_items: int, work_ms: float) -> None:
    params = get_analysis_config("synthetic", sets=[f"work_ms={work_ms}"])
    serial = serial_loop(n_items, params)
    runs = {w: engine(n_items, params, w) for w in (1, 2)}
    print(f"\n({label}) {n_items} items of {work_ms} ms")
    header = ("seconds", "items/s", "ms/item", "driver CPU s/1000", "commits", "ms/commit")
    print(f"  {'':22}" + "".join(f"{h:>18}" for h in header))
    print(
        f"  {'serial loop':22}{serial:18.2f}{n_items / serial:18.1f}{1000 * serial / n_items:18.3f}"
    )
    for workers, r in runs.items():
        row = (
            f"{r['seconds']:18.2f}{n_items / r['seconds']:18.1f}"
            f"{1000 * r['seconds'] / n_items:18.3f}{1000 * r['cpu'] / n_items:18.2f}"
            f"{int(r['n']):18d}{1000 * r['s'] / max(r['n'], 1):18.2f}"
        )
        print(f"  {f'engine, {workers} worker(s)':22}{row}")
    print(
        f"  efficiency with 2 workers: {serial / 2 / runs[2]['seconds']:.2f} of ideal (serial / 2)"
    )
    print(
        f"  overhead per item, 1 worker: {1000 * (runs[1]['seconds'] - serial) / n_items:.3f} ms;"
        f" 2 workers: {1000 * (runs[2]['seconds'] - serial / 2) / n_items:.3f} ms"
    )
    for workers, r in runs.items():
        print(
            f"  making items durable, {workers} worker(s): driver commits "
            f"{1000 * r['s'] / n_items:.3f} ms/item "
            f"({1000 * r['s'] / max(r['n'], 1):.2f} ms a task)"
        )
    print(f"  cluster start-up (once per run): {runs[1]['startup']:.2f} s")


RESUME_PROBE = """
import resource, sys, time
t0 = time.perf_counter()
from distributed import Client
from nmbatch.engine.clusters.core import WORKER_SETUP
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.plan import Selection, make_plan
from nmbatch.engine.session import cache_for_job
from nmbatch.engine.worker import TaskSpec, run_task
from nmbatch.synthetic.job import SyntheticJob
root, address, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t_import = time.perf_counter()
params = get_analysis_config("synthetic", sets=["work_ms=0"])
job = SyntheticJob(n + 10)
client = Client(address)
t_connect = time.perf_counter()
with cache_for_job(job, params, root) as cache:
    cache.check_config()
    listing = job.list_items(params)
    plan = make_plan(job, listing, params, cache.index, cache.stamp, Selection(), False)
    spec = TaskSpec(job, params, job.table_schemas(params), "item_id", "subject", cache.stamp,
                    cache.worker_root)
    future = client.submit(run_task, spec, "probe", plan.todo[:1], [1])
    t_submit = time.perf_counter()
    future.result()
print(f"{t_import - t0:.3f} {t_connect - t_import:.3f} {t_submit - t_connect:.3f} "
      f"{plan.count('done')} {len(plan.todo)} "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""


def resume(n_done: int) -> None:
    params = get_analysis_config("synthetic", sets=["work_ms=0"])
    job = SyntheticJob(n_done)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with cache_for_job(job, params, root, batch_size=500) as cache:
            cache.check_config()
            t0 = time.perf_counter()
            for i in range(n_done):
                cache.add(item_id(i), {"index": i, "value": float(i)}, table="values", label="s")
                if cache.save_if_needed():
                    cache.compact()
            cache.save()
            cache.compact()
            build = time.perf_counter() - t0
        parts = len(list((root / "synthetic" / "items").iterdir()))
        with LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as cluster:
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    RESUME_PROBE,
                    str(root),
                    cluster.scheduler_address,
                    str(n_done),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
    t_import, t_connect, t_first, skipped, todo, rss = out
    print(
        f"\n(c) resume over {n_done} completed items (cache built in {build:.1f} s, "
        f"{n_done // 500} commits of 500, merged into {parts} parts)"
    )
    print(f"  imports {float(t_import):.2f} s, connect to scheduler {float(t_connect):.2f} s")
    print(
        f"  open cache (with its checks) + list {n_done + 10} items + skip {skipped} + first "
        f"task submitted: {float(t_first):.2f} s  ({todo} to run)"
    )
    print(f"  driver peak memory: {rss} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the items")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(
        f"python {sys.version.split()[0]}, peak memory so far "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    compare("a", 2000 // scale, 50)
    compare("b", 20000 // scale, 0)
    params = get_analysis_config("synthetic", sets=["work_ms=0"])
    one, many = staging_cost(params, 1), staging_cost(params, 500)
    print(
        f"\n  a worker making a task durable (staged write, fsync'd): 1 item {1000 * one:.2f} ms;"
        f" 500 items {1000 * many:.2f} ms ({1000 * many / 500:.3f} ms/item)"
    )
    resume(100_000 // scale)


if __name__ == "__main__":
    main()
