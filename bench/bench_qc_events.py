"""qc_events throughput, side by side: listing a 20 000-file project, running it on 1 and 2 workers.

    python bench/bench_qc_events.py            # 20 000 form files (a few minutes on 2 cores)
    python bench/bench_qc_events.py --quick    # 2 000
    python bench/bench_qc_events.py --list-only    # 20 000, listing only

The tree is generated once per run (one acquisition per form file, each with its
sidecar and a project-level QC log, 80 % PASS) and events go to a folder sink.
Listing is timed against a plain ``os.walk`` of the same tree; the runs exclude
cluster start-up (paid once a run) and include saving every outcome to the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster

from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.job import ItemContext
from nmbatch.engine.plan import Selection, make_plan
from nmbatch.engine.runner import Pacing, RunReport, finish, run_plan
from nmbatch.engine.session import cache_for_job
from nmbatch.qc_events.demo import write_bench_project
from nmbatch.qc_events.job import QCEventsJob


def walk_count(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root / "subjects"))


def run(job: QCEventsJob, params: dict, workers: int, output: Path) -> tuple[float, int]:
    """Seconds to list and run every form file through the engine, and the items done."""
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as cluster,
        Client(cluster) as client,
        cache_for_job(job, params, output) as cache,
    ):
        client.run(lambda: __import__("nmbatch.qc_events.job"))
        cache.check_config()
        started = time.perf_counter()
        listing = job.list_items(params)
        plan = make_plan(job, listing, params, cache.index, cache.stamp, Selection(), False)
        report = RunReport()
        run_plan(client, job, params, cache, listing, plan, report, Pacing(progress=False))
        finish(cache, job, listing, report)
        return time.perf_counter() - started, report.done


def in_process(job: QCEventsJob, params: dict, items: list) -> float:
    """The job's own per-item work in one loop, no engine: the floor the engine adds to."""
    started = time.perf_counter()
    for item in items:
        job.run_item(item, ItemContext(item, params))
    return time.perf_counter() - started


def row(name: str, seconds: float, n: int) -> None:
    print(f"  {name:44}{seconds:10.2f}{n / seconds:12.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 000 form files instead of 20 000")
    parser.add_argument("--forms", type=int, help="number of form files")
    parser.add_argument("--list-only", action="store_true", help="time the listing, run nothing")
    args = parser.parse_args()
    n_forms = args.forms or (2_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="bench-qc-events-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_bench_project(root / "project", n_forms)
        print(f"\nqc_events: {n_forms} form files, generated in {time.perf_counter() - t0:.1f} s")
        print(f"  {'':44}{'seconds':>10}{'files/s':>12}", flush=True)

        job = QCEventsJob(root / "project")
        t0 = time.perf_counter()
        n_walked = walk_count(root / "project")
        row("os.walk of subjects/ (reference, all files)", time.perf_counter() - t0, n_walked)
        for label in ("first", "again"):
            params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(root))}"])
            t0 = time.perf_counter()
            items = job.list_items(params).items
            row(f"job listing, {label} (scandir + fingerprints)", time.perf_counter() - t0, n_forms)
        assert len(items) == n_forms, len(items)
        if args.list_only:
            return

        params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(root / 'ev-0'))}"])
        row("run_item in one loop (no engine, no cache)", in_process(job, params, items), n_forms)
        results = {}
        for workers in (1, 2):
            sink = root / f"events-{workers}"
            params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(sink))}"])
            seconds, done = run(job, params, workers, root / f"out-{workers}")
            assert done == n_forms, done
            results[workers] = seconds
            row(
                f"engine, {workers} worker{'s' * (workers > 1)} (list + run + save)",
                seconds,
                n_forms,
            )
        print(f"  events written per run: {sum(1 for _ in sink.rglob('*.json'))}")
        print(f"  speed-up with 2 workers: {results[1] / results[2]:.2f}x")


if __name__ == "__main__":
    main()
