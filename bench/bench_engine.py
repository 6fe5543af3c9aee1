"""Engine overhead, side by side: a plain serial loop vs the engine with 1 and 2 workers.

    python bench/bench_engine.py            # the issue's sizes (about 6 minutes on 2 cores)
    python bench/bench_engine.py --quick    # a tenth of the items

(a) CPU-bound items of about 50 ms each; (b) near-empty items; (c) start-up of a
resume over a cache of 100 000 completed items (time to the first submitted
task, driver memory) and the cost of saving one batch into an empty cache vs
that large one. Cluster start-up is reported separately: it is paid once a run.
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

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.job import ItemContext
from nmbatch.engine.runner import RunOptions, execute, select_items
from nmbatch.synthetic.job import SyntheticJob, item_id


def serial_loop(n_items: int, params: dict) -> float:
    """The predecessor's shape: one process, one item after the other, results in a list."""
    job = SyntheticJob(n_items)
    started = time.perf_counter()
    results = []
    for item in job.list_items(params).items:
        results.append(job.run_item(item, ItemContext(item, params)))
    return time.perf_counter() - started


def engine(n_items: int, params: dict, workers: int) -> tuple[float, float]:
    """Seconds to run every item through the engine (cluster start-up excluded), and start-up."""
    job = SyntheticJob(n_items)
    options = RunOptions(progress=False)
    t0 = time.perf_counter()
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        startup = time.perf_counter() - t0
        with (
            tempfile.TemporaryDirectory() as tmp,
            AnalysisCache.for_job(job, params, Path(tmp)) as cache,
        ):
            cache.check_config()
            started = time.perf_counter()
            listing = job.list_items(params)
            todo, report = select_items(job, listing, params, cache, options)
            execute(client, job, params, cache, listing, todo, report, options)
            elapsed = time.perf_counter() - started
            assert report.done == n_items, report
    return elapsed, startup


def compare(label: str, n_items: int, work_ms: float) -> None:
    params = get_analysis_config("synthetic", sets=[f"work_ms={work_ms}"])
    serial = serial_loop(n_items, params)
    one, startup = engine(n_items, params, 1)
    two, _ = engine(n_items, params, 2)
    print(f"\n({label}) {n_items} items of {work_ms} ms")
    print(f"  {'':28}{'seconds':>10}{'items/s':>10}{'ms/item':>10}")
    for name, seconds in [
        ("serial loop", serial),
        ("engine, 1 worker", one),
        ("engine, 2 workers", two),
    ]:
        print(
            f"  {name:28}{seconds:10.2f}{n_items / seconds:10.1f}{1000 * seconds / n_items:10.3f}"
        )
    print(f"  efficiency with 2 workers: {serial / 2 / two:.2f} of ideal (serial / 2)")
    print(f"  overhead per item, 1 worker: {1000 * (one - serial) / n_items:.3f} ms")
    print(f"  cluster start-up (once per run): {startup:.2f} s")


RESUME_PROBE = """
import resource, sys, time
t0 = time.perf_counter()
from distributed import Client
from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.runner import RunOptions, select_items
from nmbatch.engine.worker import run_items
from nmbatch.synthetic.job import SyntheticJob
root, address, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t_import = time.perf_counter()
params = get_analysis_config("synthetic", sets=["work_ms=0"])
job = SyntheticJob(n + 10)
client = Client(address)
t_connect = time.perf_counter()
with AnalysisCache.for_job(job, params, root) as cache:
    cache.check_config()
    listing = job.list_items(params)
    todo, report = select_items(job, listing, params, cache, RunOptions())
    schemas = job.table_schemas(params)
    future = client.submit(run_items, job, todo[:1], params, schemas, "item_id", None)
    t_submit = time.perf_counter()
    future.result()
print(f"{t_import - t0:.3f} {t_connect - t_import:.3f} {t_submit - t_connect:.3f} "
      f"{report.skipped_done} {len(todo)} "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""


def resume(n_done: int) -> None:
    params = get_analysis_config("synthetic", sets=["work_ms=0"])
    job = SyntheticJob(n_done)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with AnalysisCache.for_job(job, params, root, batch_size=50) as cache:
            cache.check_config()
            t0 = time.perf_counter()
            for i in range(n_done):
                cache.add(item_id(i), {"index": i, "value": float(i)}, table="values", label="s")
                cache.save_if_needed()
            cache.save()
            build = time.perf_counter() - t0
            cache.compact()
        saves = {}
        for name, target in [("empty cache", root / "empty"), (f"{n_done} items", root)]:
            with AnalysisCache.for_job(job, params, target) as cache:
                cache.check_config()
                for i in range(50):
                    cache.add(f"new-{i}", {"index": i, "value": 0.0}, table="values")
                t0 = time.perf_counter()
                cache.save()
                saves[name] = time.perf_counter() - t0
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
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
        f"{n_done // 50} batches of 50, then compacted)"
    )
    print(f"  imports {float(t_import):.2f} s, connect to scheduler {float(t_connect):.2f} s")
    print(
        f"  open cache + list {n_done + 10} items + skip {skipped} + first submit: "
        f"{float(t_first):.2f} s  ({todo} to run)"
    )
    print(f"  driver peak memory: {rss} MB")
    for name, seconds in saves.items():
        print(f"  save one batch of 50 into {name + ':':20} {1000 * seconds:7.1f} ms")


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
    resume(100_000 // scale)


if __name__ == "__main__":
    main()
