"""Benchmark step 10: cube-by-cube vs dense evaluation of the axon CNN, and the whole step.

For one (50, 65, 65) electrical image (a synthetic unit with a planted axon,
scored by the bundled demo model):

- ``cube-by-cube``: the predecessor's way, every 5x5x5 cube cut in a Python loop
  and scored in batches of 512 (``nmbatch.mea.axon.cubes.cube_by_cube_map``);
- ``dense CPU``: ``DenseAxonEvaluator`` on the CPU;
- ``dense GPU``: the same on CUDA, where torch sees a GPU (else 'no GPU');

then the whole step 10 (``nmbatch.mea.steps.ap_tracking``) on a recording of
``--units`` units (default 150) written as steps 1 and 6 leave it. Each path runs
in its own process with ``--threads`` torch threads (default 2), so its peak
memory (max RSS; GPU: max allocated) is its own. Run::

    .venv/bin/python bench/bench_ap_tracking.py              # 150-unit recording
    .venv/bin/python bench/bench_ap_tracking.py --units 20   # a quicker look
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ONH = (-22.0, 40.0)
PATHS = ("cube", "dense-cpu", "dense-gpu")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _image() -> np.ndarray:
    from nmbatch.mea.axon.planted import PlantedAxon
    from nmbatch.mea.axon.scaling import scaled
    from nmbatch.mea.axon.training_data import synthetic_unit

    rng = np.random.default_rng(0)
    axon = PlantedAxon(-60.0, 25.0, 1.5, 15.0)
    return scaled(synthetic_unit(rng, (45, 20), axon, 120.0, 1.3, 0.8).image, "noise")


def run_path(path: str, repeat: int, out: Path) -> dict:
    """One evaluation path on the benchmark image; its map is saved for the comparison."""
    import torch

    from nmbatch.mea.axon.cubes import cube_by_cube_map
    from nmbatch.mea.axon.dense import DenseAxonEvaluator
    from nmbatch.mea.axon.model_file import load_model
    from nmbatch.mea.axon.run_settings import DEMO_MODEL

    model, image = load_model(DEMO_MODEL), _image()
    before = _peak_rss_mb()
    if path == "dense-gpu":
        if not torch.cuda.is_available():
            return {"path": path, "skipped": "no GPU"}
        evaluator = DenseAxonEvaluator(model, "cuda")
        evaluator.probability_map(image)  # warm-up: CUDA context, kernels
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    elif path == "dense-cpu":
        evaluator = DenseAxonEvaluator(model, "cpu")
    times = []
    for _ in range(repeat if path != "cube" else 1):
        start = time.perf_counter()
        if path == "cube":
            prob = cube_by_cube_map(model, image)
        else:
            prob = evaluator.probability_map(image)
            if path == "dense-gpu":
                torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    np.save(out / f"{path}.npy", prob)
    memory = (
        torch.cuda.max_memory_allocated() / 2**20
        if path == "dense-gpu"
        else _peak_rss_mb() - before
    )
    return {"path": path, "seconds": min(times), "peak_mb": memory}


def run_step(n_units: int, folder: Path) -> dict:
    """Step 10 on an ``n_units`` recording (synthetic eimages, as steps 1 and 6 write them)."""
    import h5py
    import yaml

    from nmbatch.mea.axon.ground_truth import converging_units, write_step_inputs
    from nmbatch.mea.axon.model_file import file_sha256
    from nmbatch.mea.axon.run_settings import DEMO_MODEL, ApSettings
    from nmbatch.mea.steps import resolve
    from nmbatch.mea.steps.registry import StepInput

    path = folder / "recording.h5"
    units = converging_units(seed=21, n_units=n_units, onh=ONH)
    write_step_inputs(path, units)
    del units
    defaults = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())
    params = dict(defaults, ap_model_sha256=file_sha256(DEMO_MODEL))
    settings = ApSettings(DEMO_MODEL, "auto").step_settings()
    before = _peak_rss_mb()
    start = time.perf_counter()
    with h5py.File(path, "a") as f:
        resolve([10])[0].run(StepInput("bench", f, params, folder, settings=settings))
        onh = dict(f["metadata/ap_tracking"].attrs)
        detected = sum(bool(g["ap_tracking"].attrs["detected"]) for g in f["units"].values())
    seconds = time.perf_counter() - start
    error = math.hypot(onh["onh_row"] - ONH[0], onh["onh_col"] - ONH[1])
    return {
        "path": "step",
        "seconds": seconds,
        "peak_mb": _peak_rss_mb() - before,
        "units": n_units,
        "detected": detected,
        "onh_error_px": error if onh["onh_found"] else None,
        "device": str(onh["device"]),
    }


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.workdir)
    result = (
        run_step(args.units, out) if args.path == "step" else run_path(args.path, args.repeat, out)
    )
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=150, help="units in the step's recording")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per path")
    parser.add_argument("--repeat", type=int, default=3, help="dense runs per path (best kept)")
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench_ap_") as workdir:
        results = {}
        for path in (*PATHS, "step"):
            command = [sys.executable, __file__, "--path", path, "--workdir", workdir]
            command += ["--units", str(args.units), "--threads", str(args.threads)]
            command += ["--repeat", str(args.repeat)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[path] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  ran {path}", file=sys.stderr, flush=True)
        maps = {p: np.load(Path(workdir) / f"{p}.npy") for p in PATHS if "seconds" in results[p]}
    report(results, maps, args)


def report(results: dict, maps: dict, args: argparse.Namespace) -> None:
    import torch

    cube = results["cube"]["seconds"]
    print(
        f"AP tracking, one (50, 65, 65) image, torch {torch.__version__}, "
        f"{args.threads} threads per path (CPU figures depend on the machine's load)"
    )
    print(f"{'path':<14}{'s / unit':>10}{'speed-up':>10}{'peak MB':>10}{'max |p - cube|':>16}")
    for path in PATHS:
        r = results[path]
        if "skipped" in r:
            print(f"{path:<14}{r['skipped']:>10}")
            continue
        diff = float(np.abs(maps[path] - maps["cube"]).max())
        print(
            f"{path:<14}{r['seconds']:>10.2f}{cube / r['seconds']:>9.1f}x{r['peak_mb']:>10.0f}"
            f"{diff:>16.1e}"
        )
    s = results["step"]
    onh = (
        f"{s['onh_error_px']:.1f} px from the planted ONH"
        if s["onh_error_px"] is not None
        else ("no ONH")
    )
    print(
        f"step 10, {s['units']}-unit recording on {s['device']}: {s['seconds']:.0f} s "
        f"({s['seconds'] / s['units']:.2f} s / unit), peak {s['peak_mb']:.0f} MB, "
        f"{s['detected']} units with an axon, {onh}"
    )


if __name__ == "__main__":
    main()
