"""Electrical images: each unit's average high-pass-filtered sensor data around its spikes.

All spike windows of a chunk are summed by one sparse product: a matrix with a
row per (unit, lag) and a column per sample of the filtered chunk, holding a 1
where that unit spiked ``lag`` samples before that column, times the chunk.
This reads each filtered sample once per chunk instead of once per spike, and
there is no Python loop over spikes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from nmbatch.mea.filtering import Reader, filtered_chunks

CHUNK_SAMPLES = 8192
UNITS_PER_PRODUCT = 16


def select_spikes(
    spikes: np.ndarray, n_samples: int, before: int, after: int, max_spikes: int
) -> np.ndarray:
    """The first ``max_spikes`` spikes whose window ``[s - before, s + after)`` lies in the data."""
    inside = spikes[(spikes >= before) & (spikes + after <= n_samples)]
    return inside[:max_spikes]


def add_windows(
    sums: np.ndarray, block: np.ndarray, offsets: np.ndarray, owners: np.ndarray, before: int
) -> None:
    """``sums[owner, lag] += block[offset - before + lag]`` for every spike, as a sparse product.

    ``sums`` is (units, width, channels); ``offsets`` index ``block`` rows (samples).
    """
    n_units, width, _ = sums.shape
    lags = np.arange(width)
    rows = (owners[:, None] * width + lags).ravel()
    cols = (offsets[:, None] - before + lags).ravel()
    ones = np.ones(rows.size, np.float32)
    selector = sparse.csr_array((ones, (rows, cols)), shape=(n_units * width, block.shape[0]))
    flat = sums.reshape(n_units * width, -1)
    step = UNITS_PER_PRODUCT * width
    for r in range(0, flat.shape[0], step):
        part = selector[r : r + step]
        if part.nnz:
            flat[r : r + step] += part @ block


def electrical_images(
    read: Reader,
    n_samples: int,
    spikes: Sequence[np.ndarray],
    sos: np.ndarray,
    before: int,
    after: int,
    max_spikes: int,
    chunk: int = CHUNK_SAMPLES,
) -> tuple[np.ndarray, np.ndarray]:
    """Average filtered data over ``[s - before, s + after)`` for each unit's spikes.

    Parameters
    ----------
    read : callable
        ``read(a, b)`` returns samples ``[a, b)`` of the raw data, (samples, ...).
    n_samples : int
        Only samples ``[0, n_samples)`` are read and filtered.
    spikes : sequence of int arrays
        Sorted spike samples per unit.
    sos : array
        Filter (second-order sections) applied forward and backward.

    Returns
    -------
    images : float32 array (units, before + after, channels)
        Zero for a unit without usable spikes.
    counts : int array (units,)
        Spikes averaged per unit.
    """
    selected = [select_spikes(s, n_samples, before, after, max_spikes) for s in spikes]
    counts = np.array([s.size for s in selected], dtype=np.int64)
    times = np.concatenate(selected) if selected else np.zeros(0, np.int64)
    owners = np.repeat(np.arange(len(selected)), counts)
    order = np.argsort(times, kind="stable")
    times, owners = times[order], owners[order]
    n_channels = int(np.prod(read(0, 1).shape[1:]))
    sums = np.zeros((len(selected), before + after, n_channels), np.float64)
    starts = np.unique(times // chunk) * chunk
    for a, lo, block in filtered_chunks(read, n_samples, sos, chunk, before, after, starts):
        i, j = np.searchsorted(times, [a, a + chunk])
        add_windows(sums, block, times[i:j] - lo, owners[i:j], before)
    sums /= np.maximum(counts, 1)[:, None, None]
    return sums.astype(np.float32), counts
