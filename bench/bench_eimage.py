"""Electrical images (step 1 of nmbatch.mea): vectorised vs the straightforward per-spike loop.

Scenario: ~150 units firing ~50 Hz on average (a few thousand spikes per unit per
minute) on 65 x 65 sensors at 20 kHz. The sensor data come from
``SensorSynth``: generated block by block from a seed while being read, so no
10 GB file is written; the time spent generating is measured on its own
("source") and shown apart. ``--file-seconds N`` also writes an N-second HDF5
file (if the disk has room) and reads it through h5py, for a figure that
includes reading; a file just written is read from the page cache, not the disk.

Variants, each in a fresh process (so its peak RSS is its own), one BLAS thread
(a Dask worker's share of a core) unless ``--threads``:

- ``loop``: per chunk, ``scipy.signal.sosfiltfilt`` (float64, the same chunks and
  margins), then ``sums[unit] += filtered[s - 10 : s + 40]`` for every spike;
- ``vectorised``: ``nmbatch.mea.eimage.electrical_images`` (blocked zero-phase
  filter, one sparse product per chunk);
- ``filter``: the vectorised filter alone (to split filtering from summing);
- ``source``: reading the chunks alone.

The two results are compared with ``np.allclose`` in the bench. The vectorised
variant also runs at a second recording length to show that its peak memory does
not grow with the recording.

    .venv/bin/python bench/bench_eimage.py                # 60 s, loop on 20 s
    .venv/bin/python bench/bench_eimage.py --seconds 10 --loop-seconds 5 --units 30
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

FS = 20_000
BEFORE, AFTER = 10, 40
MAX_SPIKES = 10_000


def make_units(n_units: int, seconds: float, seed: int):
    """Units on distinct electrodes with Poisson spike trains of 20-80 Hz."""
    from nmbatch.mea.synthetic import UnitModel, poisson_spikes

    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    cells = rng.choice(55 * 55, n_units, replace=False)
    units = []
    for i, cell in enumerate(cells):
        unit = UnitModel(i + 1, 6 + cell // 55, 6 + cell % 55, 120.0, 1.2, (0, 0), 1)
        rate = rng.uniform(20, 80)
        unit.spikes = poisson_spikes(rng, np.array([0, n]), np.array([rate]), n)
        units.append(unit)
    return units


def make_source(args, seconds: float):
    """A ``read(a, b)`` over synthetic data (or over the HDF5 file), and a closer."""
    from nmbatch.mea.synthetic import SensorSynth

    units = make_units(args.units, seconds, args.seed)
    if args.file:
        import h5py

        f = h5py.File(args.file, "r")
        data = f["SensorData 1 1"]

        def read(a, b):
            out = np.empty((b - a, 65, 65), np.int16)
            data.read_direct(out, np.s_[a:b])
            return out

        return read, units, f.close
    synth = SensorSynth(int(seconds * FS), units, args.seed)
    return (lambda a, b: synth[a:b]), units, lambda: None


class PeakMemory:
    """Resident memory sampled every 5 ms in a thread: the peak above its value at entry."""

    def __enter__(self):
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return (self.peak - self.start) / 2**20


def timed(read, clock):
    def wrapped(a, b):
        t = time.perf_counter()
        out = read(a, b)
        clock[0] += time.perf_counter() - t
        return out

    return wrapped


def run_variant(variant: str, args, seconds: float, result_path: str | None, queue):
    """Body of one subprocess: time one variant, report seconds and peak RSS growth."""
    from nmbatch.mea.eimage import CHUNK_SAMPLES, electrical_images, select_spikes
    from nmbatch.mea.filtering import filtered_chunks, highpass_sos, settle_samples

    read, units, close = make_source(args, seconds)
    n = int(seconds * FS)
    spikes = [u.spikes for u in units]
    sos = highpass_sos(100, 2, FS)
    source = [0.0]
    read = timed(read, source)
    report = {"variant": variant, "seconds": seconds, "n_spikes": int(sum(s.size for s in spikes))}
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        if variant == "vectorised":
            images, _ = electrical_images(read, n, spikes, sos, BEFORE, AFTER, MAX_SPIKES)
        elif variant == "filter":
            for _ in filtered_chunks(read, n, sos, CHUNK_SAMPLES, BEFORE, AFTER):
                pass
        elif variant == "source":
            for a in range(0, n, CHUNK_SAMPLES):
                read(a, min(a + CHUNK_SAMPLES + AFTER, n))
        elif variant == "loop":
            images, report["filter_s"] = loop_eimage(read, n, spikes, sos, settle_samples(sos))
        report["total_s"] = time.perf_counter() - t0
    report["source_s"] = source[0]
    report["peak_rss_mb"] = memory.mb
    if result_path:
        np.save(result_path, images)
    report["counts"] = [select_spikes(s, n, BEFORE, AFTER, MAX_SPIKES).size for s in spikes]
    close()
    queue.put(report)


def loop_eimage(read, n, spikes, sos, margin):
    """The straightforward way: scipy filters each chunk, a Python loop adds each spike."""
    from scipy.signal import sosfiltfilt

    from nmbatch.mea.eimage import CHUNK_SAMPLES, select_spikes

    selected = [select_spikes(s, n, BEFORE, AFTER, MAX_SPIKES) for s in spikes]
    sums = np.zeros((len(spikes), BEFORE + AFTER, 65 * 65))
    filter_s = 0.0
    for a in range(0, n, CHUNK_SAMPLES):
        lo, hi = max(a - BEFORE, 0), min(a + CHUNK_SAMPLES + AFTER, n)
        r_lo, r_hi = max(lo - margin, 0), min(hi + margin, n)
        t = time.perf_counter()
        raw = read(r_lo, r_hi)
        filtered = sosfiltfilt(sos, raw.reshape(raw.shape[0], -1), axis=0)[lo - r_lo : hi - r_lo]
        filter_s += time.perf_counter() - t
        for u, s in enumerate(selected):
            for t in s[(s >= a) & (s < a + CHUNK_SAMPLES)]:
                sums[u] += filtered[t - lo - BEFORE : t - lo + AFTER]
    counts = np.array([s.size for s in selected])
    return (sums / np.maximum(counts, 1)[:, None, None]).astype(np.float32), filter_s


def spawn(variant, args, seconds, result_path=None):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=run_variant, args=(variant, args, seconds, result_path, queue))
    proc.start()
    report = queue.get()
    proc.join()
    return report


def write_file(path: Path, args, seconds: float) -> None:
    """An HDF5 file with (samples, 65, 65) int16 sensor frames, written in blocks."""
    import h5py

    from nmbatch.mea.synthetic import SensorSynth

    n = int(seconds * FS)
    need = n * 65 * 65 * 2
    free = shutil.disk_usage(path.parent).free
    if need > free / 2:
        sys.exit(f"--file-seconds {seconds}: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free")
    synth = SensorSynth(n, make_units(args.units, seconds, args.seed), args.seed)
    with h5py.File(path, "w") as f:
        data = f.create_dataset("SensorData 1 1", (n, 65, 65), np.int16, chunks=(1000, 65, 65))
        for a in range(0, n, 20_000):
            data[a : a + 20_000] = synth[a : a + 20_000]


def per_second(report, key="total_s"):
    return report[key] / report["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=60.0, help="recording length")
    parser.add_argument("--loop-seconds", type=float, default=20.0, help="length for the loop")
    parser.add_argument("--memory-seconds", type=float, default=20.0, help="second length")
    parser.add_argument("--file-seconds", type=float, default=0.0, help="also read an HDF5 file")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.file = None
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # read by numpy's BLAS in the spawned variants
    print(
        f"{args.units} units, 65x65 sensors at {FS} Hz, window -{BEFORE}..+{AFTER}, "
        f"{args.threads} BLAS thread(s); sensor data generated on the fly from a seed"
    )
    with tempfile.TemporaryDirectory() as tmp:
        short = args.loop_seconds
        vec = spawn("vectorised", args, short, f"{tmp}/vec.npy")
        loop = spawn("loop", args, short, f"{tmp}/loop.npy")
        filt = spawn("filter", args, short)
        src = spawn("source", args, short)
        a, b = np.load(f"{tmp}/vec.npy"), np.load(f"{tmp}/loop.npy")
        scale = np.abs(b).max()
        same = np.allclose(a, b, rtol=1e-4, atol=1e-4 * scale)
        assert vec["counts"] == loop["counts"]
        assert same, f"results differ: max |diff| {np.abs(a - b).max()} (scale {scale})"
        spikes_per_min = vec["n_spikes"] / args.units / short * 60
        print(
            f"\n{short:.0f} s recording, {vec['n_spikes']} spikes ({spikes_per_min:.0f}/unit/min)"
        )
        header = ("variant", "s per rec-s", "source", "filter", "sum", "peak RSS MB")
        print("{:<12}{:>12}{:>9}{:>9}{:>9}{:>13}".format(*header))
        src_s = per_second(src)
        rows = [
            ("loop", loop, per_second(loop, "filter_s") - src_s),
            ("vectorised", vec, per_second(filt) - src_s),
        ]
        for name, rep, filt_s in rows:
            total = per_second(rep)
            summing = total - filt_s - src_s
            print(
                f"{name:<12}{total:>12.3f}{src_s:>9.3f}{filt_s:>9.3f}{summing:>9.3f}{rep['peak_rss_mb']:>13.0f}"
            )
        loop_cost, vec_cost = per_second(loop) - src_s, per_second(vec) - src_s
        print(
            f"speed-up without the data source: {loop_cost / vec_cost:.1f}x "
            f"(filter {rows[0][2] / rows[1][2]:.1f}x, sum "
            f"{(loop_cost - rows[0][2]) / (vec_cost - rows[1][2]):.1f}x); with it: "
            f"{per_second(loop) / per_second(vec):.1f}x"
        )
        print(
            f"np.allclose(vectorised, loop, rtol=1e-4, atol=1e-4*max): {same}; "
            f"max |diff| / max |eimage| = {np.abs(a - b).max() / scale:.1e}"
        )
        print("\nvectorised, peak memory against recording length:")
        for seconds in sorted({args.memory_seconds, args.seconds}):
            rep = vec if seconds == short else spawn("vectorised", args, seconds)
            mb = rep["peak_rss_mb"]
            print(f"  {seconds:5.0f} s: {per_second(rep):.3f} s per rec-s, peak RSS +{mb:.0f} MB")
        if args.file_seconds:
            path = Path(tmp) / "sensor.h5"
            write_file(path, args, args.file_seconds)
            args.file = str(path)
            rep = spawn("vectorised", args, args.file_seconds)
            reading = per_second(rep, "source_s")
            print(
                f"\nfrom an HDF5 file ({args.file_seconds:.0f} s, page cache): "
                f"{per_second(rep):.3f} s per rec-s, of which reading {reading:.3f}, "
                f"peak RSS +{rep['peak_rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
