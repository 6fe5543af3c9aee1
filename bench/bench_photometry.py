"""Photometry QC throughput: the predecessor's serial loop, iblphotometry's run_qc, nmbatch.

Generates (once, then reuses) a demo ONE cache of ordinary sessions, by default 4 sessions of
1 h at 30 Hz per band with 3 ROIs, and runs the seed's QC configuration
(``jobs/photometry.yaml``) over it three ways, each in a fresh Python process so that
start-up and imports count the same for all:

- ``serial``: the predecessor's shape, a Python loop that loads each session through ONE and
  runs the QC (nmbatch's per-session code, one session after the other, one core);
- ``run_qc``: ``iblphotometry.qc.run_qc(eids, one, metrics, ..., n_jobs=WORKERS)`` (joblib;
  sliding metrics only; it cuts each recording to the task, which the demo's trials outlast);
- ``nmbatch``: the photometry QC job on the engine with WORKERS Dask workers.

Printed side by side: wall time (process start to exit), sessions per minute, and the peak
resident memory of the process and all its children (sampled by psutil every 0.1 s).

Usage::

    python bench/bench_photometry.py                 # 4 sessions
    python bench/bench_photometry.py --sessions 16 --workers 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

APPROACHES = ("serial", "run_qc", "nmbatch")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "photometry"


def run_job_for_bench(cache_dir: Path, sessions_file: Path, output: Path, workers: int) -> int:
    """Run the photometry QC job over every session of ``sessions_file``, as its CLI does.

    Cluster start-up and the workers' first import of iblphotometry are included: a user
    pays them once per run.
    """
    from nmbatch.engine.cache import AnalysisCache
    from nmbatch.engine.cli import run
    from nmbatch.photometry.job import PhotometryQCJob

    argv = [
        "--one-cache",
        str(cache_dir),
        "--sessions",
        str(sessions_file),
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--no-progress",
        "--dashboard-address",
        ":0",
        "--force",
    ]
    code = run(PhotometryQCJob, argv)
    if code != 0:
        raise RuntimeError(f"nmbatch.photometry exited with {code}")
    return AnalysisCache.open(output / PhotometryQCJob.name).n_done


def _eids(sessions_file: Path) -> list[str]:
    import pandas as pd

    return list(pd.read_parquet(sessions_file)["eid"])


def _serial(cache_dir: Path, sessions_file: Path) -> int:
    """Load and QC one session after the other, as the predecessor's script did."""
    from one.api import One

    from nmbatch.engine.config import get_analysis_config
    from nmbatch.ibl.loading import load_photometry_locations, load_photometry_signal
    from nmbatch.photometry.config import QCConfig
    from nmbatch.photometry.qc import qc_session

    config = QCConfig.from_params(get_analysis_config("photometry"))
    one = One(cache_dir=cache_dir, mode="local")
    done = 0
    for eid in _eids(sessions_file):
        signal = load_photometry_signal(one, eid)
        locations = load_photometry_locations(one, eid)
        qc_session(signal, locations, config)
        done += 1
    return done


def _run_qc(cache_dir: Path, sessions_file: Path, workers: int) -> int:
    """iblphotometry's own batch QC, with joblib workers."""
    from iblphotometry.qc import run_qc
    from one.api import One

    from nmbatch.engine.config import get_analysis_config
    from nmbatch.photometry.config import QCConfig

    params = get_analysis_config("photometry")
    config = QCConfig.from_params(params)
    one = One(cache_dir=cache_dir, mode="local")
    result = run_qc(
        _eids(sessions_file),
        one,
        list(config.sliding_metrics),
        metrics_kwargs=dict(config.metrics_kwargs),
        sliding_kwargs=dict(config.sliding_kwargs),
        n_jobs=workers,
        on_error="raise",
    )
    return result["eid"].nunique()


def _child(args: argparse.Namespace) -> None:
    """Run one approach in this process and print its outcome as one JSON line."""
    sessions_file = Path(args.sessions_file)
    cache_dir = Path(args.cache_dir)
    if args.approach == "serial":
        done = _serial(cache_dir, sessions_file)
    elif args.approach == "run_qc":
        done = _run_qc(cache_dir, sessions_file, args.workers)
    else:
        output = Path(args.out) / "nmbatch_output"
        done = run_job_for_bench(cache_dir, sessions_file, output, args.workers)
    print(json.dumps({"done": done}))


def _tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def _measure(command: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; return its wall time, its process tree's peak RSS, and its output."""
    started = time.perf_counter()
    proc = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                peak = max(peak, _tree_rss(proc))
            except psutil.Error:
                return
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    return wall, peak, subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def main() -> None:
    """Generate the sessions, run each approach in its own process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4, help="number of sessions (default 4)")
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds per session")
    parser.add_argument("--rois", type=int, default=3, help="ROIs per session (1-3)")
    parser.add_argument("--workers", type=int, default=2, help="workers for run_qc and nmbatch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for data/output")
    parser.add_argument("--approaches", nargs="+", choices=APPROACHES, default=list(APPROACHES))
    parser.add_argument("--approach", choices=APPROACHES, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--sessions-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.approach:
        _child(args)
        return

    from nmbatch.ibl.demo import make_demo_one_cache

    cache_dir = args.out / f"one_cache_{args.sessions}x{args.duration:g}s_{args.rois}roi"
    started = time.perf_counter()
    info = make_demo_one_cache(
        cache_dir, args.sessions, args.duration, args.rois, seed=0, planted=False
    )
    print(f"demo cache {cache_dir}: ready in {time.perf_counter() - started:.1f} s")
    print(
        f"{args.sessions} sessions x {args.duration:g} s at 30 Hz per band, {args.rois} ROIs, "
        f"{args.workers} workers; {psutil.cpu_count()} cores\n"
    )
    print(f"{'approach':<10}{'wall s':>10}{'sessions/min':>15}{'peak MiB':>11}  note")
    for approach in args.approaches:
        command = [
            sys.executable,
            __file__,
            "--approach",
            approach,
            "--cache-dir",
            str(cache_dir),
            "--sessions-file",
            str(info.sessions_file),
            "--workers",
            str(args.workers),
            "--out",
            str(args.out),
        ]
        wall, peak, result = _measure(command)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{approach:<10}{'-':>10}{'-':>15}{'-':>11}  failed: {last}")
            continue
        done = json.loads(result.stdout.strip().splitlines()[-1])["done"]
        rate = done / wall * 60
        print(f"{approach:<10}{wall:>10.1f}{rate:>15.2f}{peak / 2**20:>11.0f}  {done} done")


if __name__ == "__main__":
    main()
