"""iblphotometry's ``n_outliers`` (an iterated Grubbs test in blocks), compiled.

``iblphotometry.processing.detect_outliers`` cuts a signal into blocks of ``w_size`` samples
(plus the remainder) and runs ``grubbs_test`` on each, a Python loop that, while
``G = max|y - median(y)| / std(y)`` exceeds the Grubbs critical value, replaces the farthest
sample by the median. The count only depends on the medians (exact from a sorted copy kept
up to date: the farthest sample is the smallest or the largest) and on whether ``G`` exceeds
the critical value. The compiled loop decides that with a standard deviation of its own,
which can differ from numpy's in the last bits; a block where ``G`` comes within 1e-9 of the
critical value, or a tie or other rare case that iblphotometry's sample order would decide,
goes through the same loop in numpy (:func:`grubbs_in_place`), so the counts are the same.
Like iblphotometry, a signal shorter than one block counts every pick; blocks of a longer
signal count distinct samples (the same here: a replaced sample is never picked again, and a
block where it could be is left to numpy).
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
from scipy.stats import t

DECISION_MARGIN = 1e-9  # relative distance of G from the critical value left to numpy


@cache
def critical_value(n: int, alpha: float) -> float:
    """The Grubbs critical value for ``n`` samples, as ``_grubbs_single`` computes it."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tsq = t.ppf(1 - alpha / (2 * n), df=n - 2) ** 2
        return (n - 1) / np.sqrt(n) * np.sqrt(tsq / (n - 2 + tsq))


def grubbs_in_place(blocks: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Run the iterated Grubbs test on each row of ``blocks``, replacing outliers by medians.

    Returns
    -------
    picks : ndarray of int
        How many times each row rejected (samples picked again count again).
    picked : ndarray of bool, same shape as ``blocks``
        Which samples were picked at least once.
    """
    g = critical_value(blocks.shape[1], alpha)
    picks = np.zeros(len(blocks), dtype=np.int64)
    picked = np.zeros(blocks.shape, dtype=bool)
    active = np.arange(len(blocks))
    with np.errstate(invalid="ignore", divide="ignore"):
        while active.size:
            y = blocks[active]
            median = np.median(y, axis=1, keepdims=True)
            deviation = np.absolute(y - median)
            rejects = np.max(deviation, axis=1) / np.std(y, axis=1) > g
            active = active[rejects]
            if not active.size:
                break
            farthest = np.argmax(deviation[rejects], axis=1)
            blocks[active, farthest] = median[rejects, 0]
            picks[active] += 1
            picked[active, farthest] = True
    return picks, picked


@numba.njit(cache=True, error_model="numpy")  # x / 0 is inf or NaN, as in numpy
def _block_count(block: np.ndarray, g: float) -> tuple[int, bool]:
    """Rejections of the iterated Grubbs test on one block, and whether they are certain."""
    n = block.size
    s = np.sort(block)  # the block's values, kept sorted as the loop replaces them
    h = n // 2
    count = 0
    inserted_low, inserted_high = np.inf, -np.inf
    while True:
        m = s[h] if n % 2 else (s[h - 1] + s[h]) / 2.0  # np.median's arithmetic
        low, high = abs(s[0] - m), abs(s[n - 1] - m)
        total, squares = 0.0, 0.0  # about the median: little cancellation
        for value in s:
            total += value - m
            squares += (value - m) ** 2
        std = np.sqrt(max(squares - total * total / n, 0.0) / n)
        ratio = max(low, high) / std
        if not ratio > 0.0 or not g > 0.0:  # 0/0 or no critical value: numpy stops too
            return count, True
        if abs(ratio - g) <= DECISION_MARGIN * g or low == high:
            return count, False
        if ratio < g:
            return count, True
        if high > low:  # the largest goes; the median takes its place in order
            removed = s[n - 1]
            p = n - 1
            while p > 0 and s[p - 1] > m:
                s[p] = s[p - 1]
                p -= 1
        else:
            removed = s[0]
            p = 0
            while p < n - 1 and s[p + 1] < m:
                s[p] = s[p + 1]
                p += 1
        s[p] = m
        if inserted_low <= removed <= inserted_high:  # a replaced sample picked again
            return count, False
        inserted_low, inserted_high = min(inserted_low, m), max(inserted_high, m)
        count += 1


@numba.njit(cache=True, error_model="numpy")  # x / 0 is inf or NaN, as in numpy
def _block_counts(blocks: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    counts = np.zeros(blocks.shape[0], dtype=np.int64)
    certain = np.zeros(blocks.shape[0], dtype=np.bool_)
    for i in range(blocks.shape[0]):
        counts[i], certain[i] = _block_count(blocks[i], g)
    return counts, certain


def block_counts(blocks: np.ndarray, alpha: float, distinct: bool) -> np.ndarray:
    """Outliers per row of ``blocks`` (picks, or ``distinct`` samples picked)."""
    counts, certain = _block_counts(
        np.ascontiguousarray(blocks), critical_value(blocks.shape[1], alpha)
    )
    if not certain.all():
        picks, picked = grubbs_in_place(blocks[~certain].copy(), alpha)
        counts[~certain] = np.count_nonzero(picked, axis=1) if distinct else picks
    return counts


def compile_now() -> None:
    """Compile (or load from numba's cache) the block loop, so the first session does not wait."""
    block_counts(np.zeros((1, 8)), 0.0005, distinct=True)


def n_outliers_rows(values: np.ndarray, w_size: int, alpha: float) -> np.ndarray:
    """``n_outliers(row, w_size, alpha)`` for every row of a (rows x samples) matrix."""
    n_rows, length = values.shape
    if length < w_size:  # one block per row; every pick counts
        return block_counts(values, alpha, distinct=False)
    n_full = length // w_size
    full = values[:, : n_full * w_size].reshape(n_rows * n_full, w_size)
    counts = block_counts(full, alpha, distinct=True).reshape(n_rows, n_full).sum(axis=1)
    if length > n_full * w_size:
        counts += block_counts(values[:, n_full * w_size :], alpha, distinct=True)
    return counts


def after_whole_signal_n_outliers(values: np.ndarray, w_size: int, alpha: float) -> np.ndarray:
    """The signal as ``qc_signals`` leaves it after evaluating ``n_outliers`` on all of it.

    ``detect_outliers`` runs the Grubbs test on its input's last, partial block (or on the
    whole input when shorter than a block) in place, and ``qc_signals`` hands it the signal
    itself: the metrics evaluated after ``n_outliers`` see those outliers replaced by the
    block's median. Returns ``values`` itself when nothing changes, else a changed copy.
    """
    n = len(values)
    start = 0 if n < w_size else n - n % w_size
    if start == n:
        return values
    tail = values[start:].copy()[np.newaxis]
    picks, _ = grubbs_in_place(tail, alpha)
    if not picks[0]:
        return values
    out = values.copy()
    out[start:] = tail[0]
    return out
