"""iblphotometry's ``n_outliers`` (an iterated Grubbs test in blocks), vectorised over blocks.

``iblphotometry.processing.detect_outliers`` cuts a signal into blocks of ``w_size`` samples
(plus the remainder) and runs ``grubbs_test`` on each, a Python loop that, while
``max|y - median(y)| / std(y)`` exceeds the Grubbs critical value, replaces the farthest
sample by the median. Here every block of every window goes through that loop at once: each
pass works on the blocks still rejecting, with the same numpy reductions row by row, so the
outliers found are the same. Like iblphotometry, a signal shorter than one block counts every
pick (a sample picked twice counts twice); blocks of a longer signal count distinct samples.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.stats import t


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


def n_outliers_rows(values: np.ndarray, w_size: int, alpha: float) -> np.ndarray:
    """``n_outliers(row, w_size, alpha)`` for every row of a (rows x samples) matrix."""
    n_rows, length = values.shape
    if length < w_size:  # one block per row; every pick counts
        picks, _ = grubbs_in_place(values.copy(), alpha)
        return picks
    n_full = length // w_size
    full = values[:, : n_full * w_size].reshape(n_rows * n_full, w_size).copy()
    _, picked = grubbs_in_place(full, alpha)
    counts = np.count_nonzero(picked, axis=1).reshape(n_rows, n_full).sum(axis=1)
    if length > n_full * w_size:
        _, picked_rest = grubbs_in_place(values[:, n_full * w_size :].copy(), alpha)
        counts += np.count_nonzero(picked_rest, axis=1)
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
