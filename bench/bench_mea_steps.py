"""Steps 6-9 and 11 of nmbatch.mea: their time per recording, and soma geometry vs a loop.

1. Soma geometry (step 6) on real electrical images (50, 65, 65): the vectorised
   ``nmbatch.mea.soma.soma_geometry`` (one matrix product for all 4225 traces) vs the
   straightforward loop that smooths each electrode's trace with scipy on its own.
   Centres, areas and extents must be identical, and the peak-to-trough maps equal to
   float64 rounding; the bench stops if they are not.
2. A generated recording of ``--units`` units (default 150) with a two-minute noise
   movie and a moving bar in 8 directions x 4: steps 1-5 run once, then each of steps
   6, 7, 8, 9 and 11 is timed on the file on its own (best of ``--repeat``), on one
   core (BLAS limited to one thread before numpy loads).

Times are CPU seconds of this process (``time.process_time``: on a shared machine the
wall clock also counts waiting for a core), with wall seconds beside them.

    .venv/bin/python bench/bench_mea_steps.py                     # 150 units, loop on 3
    .venv/bin/python bench/bench_mea_steps.py --units 30 --loop-units 1 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from nmbatch.engine.job import ItemContext  # noqa: E402
from nmbatch.mea import output  # noqa: E402
from nmbatch.mea.demo import make_demo  # noqa: E402
from nmbatch.mea.job import MeaJob  # noqa: E402
from nmbatch.mea.soma import geometry_from_traces, smooth_trace, soma_geometry  # noqa: E402
from nmbatch.mea.steps import StepInput, resolve  # noqa: E402

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())
TIMED = (6, 7, 8, 9, 11)


def soma_by_loop(eimage: np.ndarray, p) -> object:
    """The straightforward version: each of the 4225 electrodes' traces smoothed on its own."""
    traces = np.empty(eimage.shape, np.float64)
    for r in range(eimage.shape[1]):
        for c in range(eimage.shape[2]):
            traces[:, r, c] = smooth_trace(eimage[:, r, c], p)
    return geometry_from_traces(traces, p)


def best(fn, repeat: int) -> tuple[float, object]:
    """Least CPU seconds of ``repeat`` calls, and the result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.process_time()
        result = fn()
        times.append(time.process_time() - t)
    return min(times), result


def compare_soma(eimages: list[np.ndarray], loop_units: int, repeat: int) -> list[str]:
    soma_geometry(eimages[0], PARAMS)  # builds the (cached) smoothing operator once
    fast, fast_out = best(lambda: [soma_geometry(e, PARAMS) for e in eimages], repeat)
    subset = eimages[:loop_units]
    slow, slow_out = best(lambda: [soma_by_loop(e, PARAMS) for e in subset], 1)
    worst = 0.0
    for a, b in zip(fast_out, slow_out, strict=False):
        same = (a.center_row, a.center_col, a.area, a.size_x, a.size_y) == (
            b.center_row,
            b.center_col,
            b.area,
            b.size_x,
            b.size_y,
        )
        if not same or a.equivalent_diameter != b.equivalent_diameter:
            raise SystemExit(f"soma geometry differs: {a} vs {b}")
        worst = max(worst, float(np.abs(a.ptp_map.astype(float) - b.ptp_map).max()))
    per_fast, per_slow = fast / len(eimages), slow / len(subset)
    return [
        "soma geometry (step 6), CPU per unit:",
        f"  {'per-electrode loop':<22}{per_slow * 1e3:>10.1f} ms   ({len(subset)} units)",
        f"  {'vectorised':<22}{per_fast * 1e3:>10.2f} ms   ({len(eimages)} units)",
        f"  speed-up {per_slow / per_fast:,.0f}x; centres, areas, extents identical; "
        f"ptp maps max |diff| {worst:.2g} (float32 maps)",
    ]


def time_steps(path: Path, demo, name: str, repeat: int) -> list[str]:
    rows = []
    for step in resolve(TIMED):
        cpu, wall = [], []
        for _ in range(repeat):
            with h5py.File(path, "r+") as f:
                output.remove_paths(f, list(step.outputs))
                inp = StepInput(name, f, PARAMS, demo.stimuli, None, demo.sheet, demo.label_folder)
                t, w = time.process_time(), time.perf_counter()
                step.run(inp)
                cpu.append(time.process_time() - t)
                wall.append(time.perf_counter() - w)
        rows.append((step.stage, min(cpu), min(wall)))
    total, total_wall = sum(r[1] for r in rows), sum(r[2] for r in rows)
    return [
        f"{'step, per recording':<26}{'CPU s':>8}{'wall s':>9}",
        *(f"{stage:<26}{c:>8.2f}{w:>9.2f}" for stage, c, w in rows),
        f"{'together':<26}{total:>8.2f}{total_wall:>9.2f}   (target: < 30 s of one core)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=150)
    parser.add_argument("--loop-units", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_mea_steps_"))
    try:
        t = time.perf_counter()
        spacing = 3 if args.units > 40 else 8
        demo = make_demo(folder / "demo", n_recordings=1, n_units=args.units, unit_spacing=spacing)
        name = next(iter(demo.models))
        job = MeaJob(demo.csv, folder / "out", steps="1-5")
        item = job.list_items(PARAMS).items[0]
        job.run_item(item, ItemContext(item, PARAMS))
        path = job.output_path(name)
        print(f"recording: {args.units} units, steps 1-5 made in {time.perf_counter() - t:.0f} s")
        with h5py.File(path) as f:
            eimages = [g["eimage_sta"][()] for g in f["units"].values() if "eimage_sta" in g]
        lines = compare_soma(eimages, args.loop_units, args.repeat)
        lines += [""] + time_steps(path, demo, name, args.repeat)
        print("\n".join(lines))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
