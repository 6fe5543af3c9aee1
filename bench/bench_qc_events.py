"""qc_events throughput, side by side: listing a 20 000-file project, running it on 1 and 2 workers.

    python bench/bench_qc_events.py            # 20 000 form files (a few minutes on 2 cores)
    python bench/bench_qc_events.py --quick    # 2 000

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

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.runner import RunOptions, execute, select_items
from nmbatch.qc_events.demo import write_bench_project
from nmbatch.qc_events.job import QCEventsJob


def walk_count(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root / "subjects"))


def run(job: QCEventsJob, params: dict, workers: int, output: Path) -> tuple[float, int]:
    """Seconds to list and run every form file through the engine, and the items done."""
    options = RunOptions(progress=False)
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as client,
        AnalysisCache.for_job(job, params, output) as cache,
    ):
        client.run(lambda: __import__("nmbatch.qc_events.job"))
        cache.check_config()
        started = time.perf_counter()
        listing = job.list_items(params)
        todo, report = select_items(job, listing, params, cache, options)
        execute(client, job, params, cache, listing, todo, report, options)
        return time.perf_counter() - started, report.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 000 form files instead of 20 000")
    parser.add_argument("--forms", type=int, help="number of form files")
    args = parser.parse_args()
    n_forms = args.forms or (2_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="bench-qc-events-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_bench_project(root / "project", n_forms)
        generated = time.perf_counter() - t0

        job = QCEventsJob(root / "project")
        t0 = time.perf_counter()
        n_walked = walk_count(root / "project")
        walked = time.perf_counter() - t0
        timings = {}
        for attempt in range(2):  # the second listing is the one a rerun sees (warm file cache)
            params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(root))}"])
            t0 = time.perf_counter()
            items = job.list_items(params).items
            timings[attempt] = time.perf_counter() - t0
        assert len(items) == n_forms, len(items)

        results = {}
        for workers in (1, 2):
            sink = root / f"events-{workers}"
            params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(sink))}"])
            seconds, done = run(job, params, workers, root / f"out-{workers}")
            assert done == n_forms, done
            results[workers] = (seconds, sum(1 for _ in sink.rglob("*.json")))

    print(
        f"\nqc_events: {n_forms} form files ({n_walked} files under subjects/, "
        f"{2 * n_forms} under files/: sidecars and QC logs)"
    )
    print(f"  tree generated in {generated:.1f} s")
    print(f"  {'':40}{'seconds':>10}{'files/s':>12}")
    rows = [
        ("os.walk of subjects/ (reference)", walked, n_walked),
        ("job listing, first (scandir + fingerprints)", timings[0], n_forms),
        ("job listing, again", timings[1], n_forms),
        *[
            (f"run, {w} worker{'s' * (w > 1)} (list + run + save)", s, n_forms)
            for w, (s, _) in results.items()
        ],
    ]
    for name, seconds, n in rows:
        print(f"  {name:40}{seconds:10.2f}{n / seconds:12.0f}")
    print(f"  events written: {results[1][1]} (1 worker), {results[2][1]} (2 workers)")
    print(f"  speed-up with 2 workers: {results[1][0] / results[2][0]:.2f}x")


if __name__ == "__main__":
    main()
