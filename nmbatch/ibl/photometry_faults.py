"""Faults real photometry recordings have, planted into generated signal tables.

They complement :mod:`nmbatch.ibl.signals`'s simulation for tests and benchmarks that compare
QC implementations where real data differ from clean data: glitches (single-frame spikes and
baseline steps), runs of missing values, dropped frames (band inversions), early frames, and
frames the acquisition left without a band label (``name`` and ``color`` empty). Each returns
a new table and leaves its input alone; positions are drawn from ``rng`` unless given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nmbatch.ibl.signals import simulate_photometry

DATA_PREFIX = "Region"


def data_columns(signal: pd.DataFrame) -> list[str]:
    """The ROI columns of a long photometry table."""
    return [c for c in signal.columns if c.startswith(DATA_PREFIX)]


def add_glitches(
    signal: pd.DataFrame, rng: np.random.Generator, n_spikes: int = 20, n_steps: int = 3
) -> pd.DataFrame:
    """Single-frame spikes (up to 50x the signal's spread) and baseline steps of a few seconds."""
    out = signal.copy()
    for column in data_columns(out):
        values = out[column].to_numpy(copy=True)
        spread = np.std(values)
        spikes = rng.integers(0, len(values), n_spikes)
        values[spikes] += rng.choice([-1, 1], n_spikes) * rng.uniform(5, 50, n_spikes) * spread
        for start in rng.integers(0, len(values), n_steps):
            stop = start + int(rng.integers(60, 600))
            values[start:stop] += rng.uniform(2, 10) * spread
        out[column] = values
    return out


def drop_frames(signal: pd.DataFrame, rng: np.random.Generator, n: int = 3) -> pd.DataFrame:
    """Drop ``n`` frames: each leaves two frames of one band in a row (a band inversion)."""
    dropped = rng.choice(np.arange(1, len(signal) - 1), n, replace=False)
    return signal.drop(index=signal.index[dropped]).reset_index(drop=True)


def early_frames(
    signal: pd.DataFrame, rng: np.random.Generator, n: int = 3, early_s: float = 5e-3
) -> pd.DataFrame:
    """Make ``n`` frames arrive ``early_s`` seconds early (``n_early_samples`` counts them)."""
    out = signal.copy()
    rows = rng.choice(np.arange(2, len(out) - 1), n, replace=False)
    out.loc[out.index[rows], "times"] -= early_s
    return out


def unlabel_frames(signal: pd.DataFrame, positions: Sequence[int]) -> pd.DataFrame:
    """Clear ``name`` and ``color`` of the frames at ``positions`` (as acquisitions can start)."""
    out = signal.copy()
    rows = out.index[list(positions)]
    out.loc[rows, "name"] = ""
    out.loc[rows, "color"] = ""
    return out


def add_nan_runs(
    values: np.ndarray, rng: np.random.Generator, n_runs: int = 3, max_length: int = 300
) -> np.ndarray:
    """A copy of one band's values with ``n_runs`` runs of NaN (dropouts), each 1 to
    ``max_length`` samples. (iblphotometry refuses NaN in the long table, so they go into a
    band's signal.)"""
    out = values.copy()
    for start in rng.integers(0, len(out), n_runs):
        out[start : start + int(rng.integers(1, max_length + 1))] = np.nan
    return out


def faulty_recording(
    rng: np.random.Generator, duration_s: float = 3600.0, n_rois: int = 3
) -> pd.DataFrame:
    """A simulated recording with glitches, dropped and early frames, and an unlabelled first
    frame, as a ``photometry.signal.pqt`` table."""
    signal = simulate_photometry(rng, duration_s, n_rois)
    signal = add_glitches(signal, rng)
    signal = early_frames(drop_frames(signal, rng), rng)
    return unlabel_frames(signal, [0])
