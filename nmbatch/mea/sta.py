"""Dense-noise spike-triggered averages (receptive fields).

Each spike is mapped to the movie frame on screen when it happened; the STA is
the mean of the ``n_before`` frames up to and including that one (index
``n_before - 1`` is the frame at the spike). Instead of gathering a stack of
frames per spike, spikes are counted per frame and the STA at each lag is one
matrix product of the counts with the shifted movie, for all units at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def spike_frames(
    spikes: np.ndarray, frame_times: np.ndarray, first: int, n_frames: int, end_sample: int
) -> np.ndarray:
    """Movie frame (from ``first``) on screen at each spike; -1 outside the movie."""
    shown = np.searchsorted(frame_times, spikes, "right") - 1 - first
    inside = (shown >= 0) & (shown < n_frames) & (spikes < end_sample)
    return np.where(inside, shown, -1)


def dense_noise_sta(
    frames_per_unit: Sequence[np.ndarray], movie: np.ndarray, n_before: int
) -> tuple[np.ndarray, np.ndarray]:
    """STA of each unit from the movie frame index of its spikes (-1 = not in the movie).

    Returns
    -------
    sta : float32 array (units, n_before, *frame shape)
        Mean pixel value; zero for a unit without usable spikes.
    counts : int array (units,)
        Spikes used (those with ``n_before - 1`` earlier frames in the movie).
    """
    n_frames = movie.shape[0]
    flat = movie.reshape(n_frames, -1).astype(np.float32)
    hist = np.zeros((len(frames_per_unit), n_frames), np.float32)
    for u, frames in enumerate(frames_per_unit):
        usable = frames[frames >= n_before - 1]
        hist[u] = np.bincount(usable, minlength=n_frames)
    counts = hist.sum(axis=1).astype(np.int64)
    span = n_frames - n_before + 1
    sta = np.zeros((len(frames_per_unit), n_before, flat.shape[1]), np.float32)
    if span > 0:
        triggers = hist[:, n_before - 1 :]
        for lag in range(n_before):
            sta[:, lag] = triggers @ flat[lag : lag + span]
    sta /= np.maximum(counts, 1)[:, None, None]
    return sta.reshape(len(frames_per_unit), n_before, *movie.shape[1:]), counts
