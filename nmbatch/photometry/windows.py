"""The sliding windows of one signal, built once and shared by every metric.

``iblphotometry.qc.qc_signals`` rebuilds each window (a boolean mask over the whole time
index) and its linear detrend (a ``scipy.stats.linregress``) for every metric. Here they are
built once per signal, the same way to the last bit:

- window starts are ``np.arange(t[0], t[-1] - w_len, step_len)``, a window holds the samples
  with ``start <= t < start + w_len`` (found by ``searchsorted`` when the times are sorted),
  and its centre is ``start + w_len / 2``;
- the detrend subtracts ``t * slope + intercept``, with slope and intercept computed by the
  same numpy calls ``linregress`` makes (``linregress`` itself where a window is degenerate:
  fewer than three samples, non-finite values or identical times).

Windows of equal length are stacked into one (windows x samples) matrix, a
:class:`WindowGroup`, whose reductions (mean, standard deviation, median, sorted rows) are
computed once and shared by the metric kernels; numpy reduces each row of a C-contiguous
matrix exactly as it reduces that row on its own, so the numbers stay the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import linregress

# Shorter windows, and windows with non-finite values, are left to iblphotometry's own metric
# functions one by one: they are rare, and edge effects there are not worth a second copy.
MIN_VECTOR_LENGTH = 32
# Windows per stacked matrix: enough to vectorise, few enough that a metric's temporaries stay
# small (8 windows of 120 s at 30 Hz: 230 kB per temporary).
ROWS_PER_GROUP = 8


def window_starts(times: np.ndarray, w_len: float, step_len: float) -> np.ndarray:
    """Window start times, as ``qc_signals`` computes them (it raises where this raises)."""
    return np.arange(times[0], times[-1] - w_len, step_len)


def window_positions(times: np.ndarray, starts: np.ndarray, w_len: float) -> list[Any]:
    """The sample positions of each window: slices when times are sorted, else index arrays."""
    stops = starts + w_len
    if np.all(np.diff(times) >= 0):  # sorted, no NaN: the mask is one contiguous run
        first = np.searchsorted(times, starts, side="left")
        last = np.searchsorted(times, stops, side="left")
        return [slice(int(a), int(b)) for a, b in zip(first, last, strict=True)]
    return [
        np.flatnonzero((times >= start) & (times < stop))
        for start, stop in zip(starts, stops, strict=True)
    ]


def detrend(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` minus its least-squares line over ``x``, bit for bit as ``qc_signals`` does it."""
    if len(x) < 3 or not (np.isfinite(y).all() and np.isfinite(x).all()) or x.min() == x.max():
        res = linregress(x, y)  # the degenerate cases, including linregress's own errors
        slope, intercept = res.slope, res.intercept
    else:  # linregress's own arithmetic, without its p-value and standard errors
        xmean = np.mean(x, None)
        ymean = np.mean(y, None)
        ssxm, ssxym, _, _ = np.cov(x, y, bias=1).flat
        slope = ssxym / ssxm
        intercept = ymean - slope * xmean
    return y - (x * slope + intercept)


@dataclass
class WindowGroup:
    """Windows of one length stacked as rows; their reductions are computed once, when used.

    Attributes
    ----------
    rows : ndarray of int
        Which windows of the signal the rows are.
    values : ndarray, shape (len(rows), length)
        The windows' (detrended) values; never modified.
    positions : list
        Each row's sample positions in the signal.
    signal_times : ndarray
        The signal's sample times.
    """

    rows: np.ndarray
    values: np.ndarray
    positions: list[Any] = field(repr=False)
    signal_times: np.ndarray = field(repr=False)

    @property
    def length(self) -> int:
        return self.values.shape[1]

    @property
    def times(self) -> np.ndarray:
        """Sample times, one row per window."""
        return np.stack([self.signal_times[pos] for pos in self.positions])

    @cached_property
    def mean(self) -> np.ndarray:
        return np.mean(self.values, axis=1, keepdims=True)

    @cached_property
    def std(self) -> np.ndarray:
        return np.std(self.values, axis=1, keepdims=True)

    @cached_property
    def median(self) -> np.ndarray:
        return np.median(self.values, axis=1, keepdims=True)

    @cached_property
    def n_unique(self) -> np.ndarray:
        """Distinct values per row (rows are finite, so no NaN rule is needed)."""
        ordered = np.sort(self.values, axis=1)
        return 1 + np.count_nonzero(ordered[:, 1:] != ordered[:, :-1], axis=1)

    def z(self) -> np.ndarray:
        """``iblphotometry.processing.z`` of each row: (a - mean) / std."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.values - self.mean) / self.std


@dataclass
class SignalWindows:
    """Every window of one signal.

    Attributes
    ----------
    centres : ndarray
        Window centres (``start + w_len / 2``), as ``qc_signals`` reports them.
    times : ndarray
        The signal's sample times.
    positions : list
        Each window's sample positions (slices, or index arrays if times are not sorted).
    groups : list of WindowGroup
        The finite windows of at least :data:`MIN_VECTOR_LENGTH` samples, by length.
    single : dict of int to ndarray
        The other windows' (detrended) values, for the metric functions one at a time.
    """

    centres: np.ndarray
    times: np.ndarray
    positions: list[Any]
    groups: list[WindowGroup]
    single: dict[int, np.ndarray]

    def __len__(self) -> int:
        return len(self.centres)

    def values(self, row: int) -> np.ndarray:
        """One window's (detrended) values."""
        if row in self.single:
            return self.single[row]
        group = next(g for g in self.groups if row in g.rows)
        return group.values[int(np.flatnonzero(group.rows == row)[0])]

    def series(self, row: int) -> pd.Series:
        """One window as the Series ``qc_signals`` hands a metric (a fresh copy)."""
        return pd.Series(self.values(row).copy(), index=pd.Index(self.times[self.positions[row]]))


def build_windows(
    times: np.ndarray, values: np.ndarray, sliding_kwargs: Mapping[str, Any]
) -> SignalWindows:
    """Cut one signal into its windows (detrended if ``sliding_kwargs['detrend']``).

    Each window is written once, into its group's matrix (or kept alone), so the windows of a
    signal take about twice the signal's memory (the windows overlap).
    """
    w_len, step_len = sliding_kwargs["w_len"], sliding_kwargs["step_len"]
    starts = window_starts(times, w_len, step_len)
    positions = window_positions(times, starts, w_len)
    cut = detrend if sliding_kwargs.get("detrend", False) else (lambda x, y: y.copy())
    by_length: dict[int, list[int]] = {}
    single = {}
    for i, pos in enumerate(positions):
        x, y = times[pos], values[pos]
        if len(y) >= MIN_VECTOR_LENGTH and np.isfinite(y).all() and np.isfinite(x).all():
            by_length.setdefault(len(y), []).append(i)
        else:
            single[i] = cut(x, y)
    groups = []
    for length, rows in by_length.items():
        for first in range(0, len(rows), ROWS_PER_GROUP):
            chunk = rows[first : first + ROWS_PER_GROUP]
            matrix = np.empty((len(chunk), length))
            for j, i in enumerate(chunk):
                matrix[j] = cut(times[positions[i]], values[positions[i]])
            group_positions = [positions[i] for i in chunk]
            groups.append(WindowGroup(np.array(chunk), matrix, group_positions, times))
    return SignalWindows(starts + w_len / 2, times, positions, groups, single)
