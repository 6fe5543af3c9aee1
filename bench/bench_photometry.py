"""Photometry QC: iblphotometry's qc_signals against the fast path, and three batch runners.

Generates (once, then reuses) a demo ONE cache of ordinary sessions, by default 8 sessions of
1 h at 30 Hz per band with 3 ROIs, and runs the predecessor's QC configuration
(``jobs/photometry.yaml``) over it, each measurement in a fresh Python process so that
start-up and imports count the same for all.

Per session, on ``--cpu-sessions`` of them (one process per path, one core):

- ``qc_signals``: iblphotometry's ``qc_signals`` with the nine sliding metrics, as the
  predecessor called it; ``fast``: the fast path on the same band tables
  (``fast_sliding_qc`` for every signal); both start from the same loaded tables;
- ``session ref`` / ``session fast``: all of ``qc_session`` on either path (splitting the long
  table into bands, sliding and raw metrics), what the job does per session;
- CPU seconds (process time), the peak of Python/numpy allocations during one session's QC
  (tracemalloc, a separate pass), and whether the numbers are the same (largest relative
  difference of any per-window value, and windows NaN on one path only).

Batch throughput over all sessions, in sessions per minute of wall time (process start to
exit) with the peak resident memory of the process tree (psutil, every 0.1 s):

- ``serial``: the predecessor's shape, a Python loop that loads each session through ONE and
  runs iblphotometry's qc_signals (``qc_session`` on the reference path), one core;
- ``run_qc``: ``iblphotometry.qc.run_qc(eids, one, metrics, ..., n_jobs=WORKERS)`` (joblib;
  sliding metrics only; it cuts each recording to the task, which the demo's trials outlast);
- ``nmbatch``: the photometry QC job on the engine with WORKERS Dask workers (fast path).

Usage::

    python bench/bench_photometry.py                 # 8 sessions, CPU figures on 2
    python bench/bench_photometry.py --sessions 16 --cpu-sessions 4 --workers 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import psutil

APPROACHES = ("serial", "run_qc", "nmbatch")
CPU_PATHS = ("qc_signals", "fast", "session ref", "session fast")
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
    """Load and QC one session after the other with qc_signals, as the predecessor did."""
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
        qc_session(signal, locations, config, "reference")
        done += 1
    return done


def _cpu_path(cache_dir: Path, sessions_file: Path, path: str, n: int, out: Path) -> dict:
    """Time one QC path on ``n`` sessions loaded beforehand; save its per-window values."""
    import numpy as np
    from iblphotometry.qc import qc_signals
    from one.api import One

    from nmbatch.engine.config import get_analysis_config
    from nmbatch.ibl.loading import load_photometry_locations, load_photometry_signal
    from nmbatch.photometry.config import QCConfig
    from nmbatch.photometry.fast_qc import fast_sliding_qc
    from nmbatch.photometry.qc import qc_session, split_bands

    config = QCConfig.from_params(get_analysis_config("photometry"))
    one = One(cache_dir=cache_dir, mode="local")
    sessions = [
        (load_photometry_signal(one, eid), load_photometry_locations(one, eid))
        for eid in _eids(sessions_file)[:n]
    ]
    inputs = [split_bands(*session) for session in sessions]

    def run(i: int) -> dict[str, np.ndarray]:
        """One session's QC on this path, as {'band/region/metric': per-window values}."""
        if path == "qc_signals":
            tidy = qc_signals(
                inputs[i],
                list(config.sliding_metrics),
                metrics_kwargs=dict(config.metrics_kwargs),
                sliding_kwargs=dict(config.sliding_kwargs),
            )
            tidy = tidy[tidy["window"].notna()]
            groups = tidy.groupby(["band", "brain_region", "metric"], sort=False)["value"]
            return {"/".join(key): values.to_numpy(float) for key, values in groups}
        if path == "fast":
            return {
                f"{band}/{region}/{name}": values
                for band, df in inputs[i].items()
                for region in df.columns
                for name, values in fast_sliding_qc(df[region], config).values.items()
            }
        result = qc_session(*sessions[i], config, "reference" if path == "session ref" else "fast")
        return {name: values for name, values in result.arrays.items()}

    run(0)  # warm up (first-call costs: scipy's t distribution, caches)
    inputs = [split_bands(*session) for session in sessions]  # qc_signals edits its input
    cpu, values = [], {}
    for i in range(n):
        started = time.process_time()
        values.update({f"{i}/{k}": v for k, v in run(i).items()})
        cpu.append(time.process_time() - started)
    inputs[0] = split_bands(*sessions[0])
    tracemalloc.start()
    run(0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.savez(out / f"values_{path.replace(' ', '_')}.npz", **values)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"cpu": cpu, "peak": peak, "max_rss": max_rss}


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
    if args.approach in CPU_PATHS:
        outcome = _cpu_path(cache_dir, sessions_file, args.approach, args.cpu_sessions, args.out)
        print(json.dumps(outcome))
        return
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


def _compare(out: Path, a: str, b: str) -> tuple[float, int]:
    """Largest relative difference between two paths' saved values; windows NaN on one only."""
    import numpy as np

    with (
        np.load(out / f"values_{a.replace(' ', '_')}.npz") as x,
        np.load(out / f"values_{b.replace(' ', '_')}.npz") as y,
    ):
        if set(x.files) != set(y.files):
            return float("inf"), -1
        worst, nan_mismatch = 0.0, 0
        for key in x.files:
            u, v = x[key], y[key]
            if u.shape != v.shape:
                return float("inf"), -1
            nan_mismatch += int(np.sum(np.isnan(u) != np.isnan(v)))
            both = ~np.isnan(u) & ~np.isnan(v)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(u[both] - v[both]) / np.abs(v[both])
            rel = rel[np.isfinite(rel)]
            worst = max(worst, float(rel.max(initial=0.0)))
    return worst, nan_mismatch


def _cpu_table(args: argparse.Namespace, cache_dir: Path, sessions_file: Path) -> None:
    """CPU seconds and memory per session of each QC path, and whether the numbers agree."""
    print(f"QC per session ({args.cpu_sessions} sessions, one process per path, one core):")
    print(
        f"{'path':<14}{'CPU s/session':>15}{'min':>8}{'max':>8}{'peak alloc MiB':>16}"
        f"{'max RSS MiB':>13}"
    )
    outcomes = {}
    for path in CPU_PATHS:
        _, _, result = _measure(_child_command(args, path, cache_dir, sessions_file))
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{path:<14}  failed: {last}")
            continue
        outcome = outcomes[path] = json.loads(result.stdout.strip().splitlines()[-1])
        cpu = outcome["cpu"]
        print(
            f"{path:<14}{sum(cpu) / len(cpu):>15.3f}{min(cpu):>8.3f}{max(cpu):>8.3f}"
            f"{outcome['peak'] / 2**20:>16.1f}{outcome['max_rss'] / 2**20:>13.0f}"
        )
    for slow, fast in (("qc_signals", "fast"), ("session ref", "session fast")):
        if slow in outcomes and fast in outcomes:
            ratio = sum(outcomes[slow]["cpu"]) / sum(outcomes[fast]["cpu"])
            worst, nan_mismatch = _compare(args.out, slow, fast)
            print(
                f"  {fast} vs {slow}: {ratio:.1f}x less CPU, memory "
                f"{outcomes[fast]['peak'] / outcomes[slow]['peak']:.2f}x; largest relative "
                f"difference {worst:.1e}, windows NaN on one path only: {nan_mismatch}"
            )
    print()


def _child_command(
    args: argparse.Namespace, approach: str, cache_dir: Path, sessions_file: Path
) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--approach",
        approach,
        "--cache-dir",
        str(cache_dir),
        "--sessions-file",
        str(sessions_file),
        "--workers",
        str(args.workers),
        "--cpu-sessions",
        str(args.cpu_sessions),
        "--out",
        str(args.out),
    ]


def main() -> None:
    """Generate the sessions, run each approach in its own process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="number of sessions (default 8)")
    parser.add_argument(
        "--cpu-sessions", type=int, default=2, help="sessions for the CPU figures (default 2)"
    )
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds per session")
    parser.add_argument("--rois", type=int, default=3, help="ROIs per session (1-3)")
    parser.add_argument("--workers", type=int, default=2, help="workers for run_qc and nmbatch")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for data/output")
    parser.add_argument("--approaches", nargs="+", choices=APPROACHES, default=list(APPROACHES))
    parser.add_argument("--no-cpu", action="store_true", help="skip the per-session CPU figures")
    parser.add_argument("--approach", choices=APPROACHES + CPU_PATHS, help=argparse.SUPPRESS)
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
        f"{args.workers} workers; {psutil.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.1f}' for x in psutil.getloadavg())}\n"
    )
    if not args.no_cpu:
        _cpu_table(args, cache_dir, info.sessions_file)
    print(f"Batch throughput ({args.sessions} sessions):")
    print(f"{'approach':<10}{'wall s':>10}{'sessions/min':>15}{'peak MiB':>11}  note")
    rates = {}
    for approach in args.approaches:
        command = _child_command(args, approach, cache_dir, info.sessions_file)
        wall, peak, result = _measure(command)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{approach:<10}{'-':>10}{'-':>15}{'-':>11}  failed: {last}")
            continue
        done = json.loads(result.stdout.strip().splitlines()[-1])["done"]
        rates[approach] = rate = done / wall * 60
        print(f"{approach:<10}{wall:>10.1f}{rate:>15.2f}{peak / 2**20:>11.0f}  {done} done")
    if "nmbatch" in rates and "run_qc" in rates:
        print(f"  nmbatch vs run_qc: {rates['nmbatch'] / rates['run_qc']:.1f}x the sessions/min")


if __name__ == "__main__":
    main()
