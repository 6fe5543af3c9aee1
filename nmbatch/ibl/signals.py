"""Simulated ``photometry.signal.pqt`` tables: the demo's recordings and the tests' inputs.

The layout is the one ``iblphotometry`` reads (two excitation bands interleaved, one row per
frame); the content has known structure (bleaching, motion, transients in one band only) so
the QC metrics have something real to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BANDS = (  # (name, wavelength nm, LED colour) of the two interleaved excitation bands
    ("Isosbestic", 415.0, "Violet"),
    ("GCaMP", 470.0, "Blue"),
)
FRAME_JITTER_S = 2e-4  # well below iblphotometry's early-sample tolerance (1 ms)
EARLY_FRAME_S = 5e-3  # how early the band_glitch session's early frame comes


def simulate_photometry(
    rng: np.random.Generator,
    duration_s: float,
    n_rois: int,
    fs: float = 30.0,
) -> pd.DataFrame:
    """Simulate a ``photometry.signal.pqt`` table: two bands interleaved, one row per frame.

    Each ROI has an exponential bleaching baseline, slow motion artefacts shared by both bands,
    GCaMP transients (Poisson events, fast rise, ~0.6 s decay) in the 470 nm band only, and
    Gaussian noise. The first frame is at t = 0.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    duration_s : float
        Recording length in seconds.
    n_rois : int
        Number of ROIs (columns ``Region0G``, ``Region1G``, ...).
    fs : float
        Frames per second per band (the camera runs at ``2 * fs``).
    """
    n_band = int(duration_s * fs)
    n_frames = len(BANDS) * n_band
    frame_dt = 1.0 / (fs * len(BANDS))
    times = np.arange(n_frames) * frame_dt + rng.uniform(-1, 1, n_frames) * FRAME_JITTER_S
    band = np.arange(n_frames) % len(BANDS)
    t_band = np.arange(n_band) / fs
    kernel_t = np.arange(int(4 * fs)) / fs
    kernel = (1 - np.exp(-kernel_t / 0.05)) * np.exp(-kernel_t / 0.6)
    table = {"times": times}
    for roi in range(n_rois):
        f0 = rng.uniform(0.02, 0.08)
        bleaching = 1 + rng.uniform(0.1, 0.4) * np.exp(-t_band / rng.uniform(300, 1200))
        motion = np.convolve(rng.normal(0, 1, n_band), np.ones(int(2 * fs)) / (2 * fs), "same")
        events = rng.poisson(rng.uniform(0.1, 0.5) / fs, n_band) * rng.lognormal(-3, 0.5, n_band)
        transients = np.convolve(events, kernel)[:n_band]
        values = np.empty(n_frames)
        for k, (name, _, _) in enumerate(BANDS):
            signal = bleaching * (1 + 0.01 * motion)
            if name == "GCaMP":
                signal = signal + transients
            noise = rng.normal(0, 0.004, n_band)
            values[band == k] = f0 * (signal + noise)
        table[f"Region{roi}G"] = values
    table["wavelength"] = np.array([b[1] for b in BANDS])[band]
    table["name"] = np.array([b[0] for b in BANDS], dtype=object)[band]
    table["color"] = np.array([b[2] for b in BANDS], dtype=object)[band]
    table["valid"] = np.ones(n_frames, dtype=bool)
    return pd.DataFrame(table)


def plant_band_glitch(signal: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Drop one frame (a band inversion) and make a later frame arrive early (an early sample)."""
    n = len(signal)
    dropped = int(rng.integers(n // 4, n // 2))
    early = int(rng.integers(n // 2 + 10, 3 * n // 4))
    out = signal.drop(index=dropped).reset_index(drop=True)
    out.loc[early - 1, "times"] -= EARLY_FRAME_S
    return out
