"""Display frame times from the frame-pulse channel, and frame windows in samples.

The display marks every frame with a pulse on an analog channel. The channel is
divided by its 99.9th percentile (so a pulse is about 1), and a frame starts at
every peak of the derivative above a threshold; the first few pulses belong to
the stimulus program starting up and are dropped. Both passes over the channel
read it in chunks, so memory does not grow with the recording's length; the
percentile is exact (counted from the channel's integer values).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from nmbatch.mea.filtering import Reader

CHUNK = 1 << 20
OVERLAP = 64


def percentile_by_counting(read: Reader, n_samples: int, q: float, chunk: int = CHUNK) -> float:
    """``np.percentile(x, q)`` (linear method) of a long signal read in chunks."""
    values = np.zeros(0)
    counts = np.zeros(0, np.int64)
    for a in range(0, n_samples, chunk):
        v, c = np.unique(read(a, min(a + chunk, n_samples)), return_counts=True)
        values, inverse = np.unique(np.concatenate([values, v]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([counts, c])).astype(np.int64)
    rank = q / 100 * (n_samples - 1)
    below = int(np.floor(rank))
    cumulative = np.cumsum(counts)
    low = values[np.searchsorted(cumulative, below, "right")]
    high = values[np.searchsorted(cumulative, min(below + 1, n_samples - 1), "right")]
    return float(low + (rank - below) * (high - low))


def detect_frame_times(
    read: Reader,
    n_samples: int,
    percentile: float,
    threshold: float,
    skip: int,
    chunk: int = CHUNK,
) -> np.ndarray:
    """Sample of each frame start: the first sample after a rising edge of the pulse channel.

    Raises
    ------
    ValueError
        If the channel is flat (its percentile is not positive).
    """
    level = percentile_by_counting(read, n_samples, percentile, chunk)
    if level <= 0:
        raise ValueError(
            f"the frame-pulse channel is flat (its {percentile}th percentile is {level})"
        )
    edges = []
    for a in range(0, n_samples - 1, chunk):
        b = min(a + chunk, n_samples - 1)
        lo, hi = max(a - OVERLAP, 0), min(b + 1 + OVERLAP, n_samples)
        slope = np.diff(read(lo, hi).astype(np.float64) / level)
        peaks, _ = find_peaks(slope, height=threshold)
        peaks += lo
        edges.append(peaks[(peaks >= a) & (peaks < b)])
    return (np.concatenate(edges) + 1)[skip:].astype(np.int64)


def frames_to_samples(frames: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """Sample of frame indices; the index one past the last frame maps to the last frame's end."""
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size and (frames.min() < 0 or frames.max() > frame_times.size):
        raise ValueError(f"frame {frames.max()} is beyond the {frame_times.size} detected frames")
    period = np.median(np.diff(frame_times)) if frame_times.size > 1 else 0
    extended = np.append(frame_times, frame_times[-1] + round(period))
    return extended[frames]


def movie_frames(playlist: list[str], lengths: dict[str, int]) -> list[tuple[str, int, int]]:
    """``(movie, first, end)`` display frames of each playlist entry, played back to back."""
    out = []
    first = 0
    for movie in playlist:
        out.append((movie, first, first + lengths[movie]))
        first += lengths[movie]
    return out


def trial_frames(config: dict, n_frames: int) -> np.ndarray:
    """Trial windows ``(repeat, 2)`` [start, end) in frames from the movie's start.

    Trials follow each other every ``trial_length_frame``; with ``group_count``,
    every group of that many trials is followed by ``group_gap_frame`` frames.
    """
    i = np.arange(int(config["repeat"]))
    length = int(config["trial_length_frame"])
    starts = int(config["start_frame"]) + i * length
    if config.get("group_count"):
        starts = starts + (i // int(config["group_count"])) * int(config.get("group_gap_frame", 0))
    windows = np.stack([starts, starts + length], axis=1).astype(np.int64)
    if windows.size and windows[-1, 1] > n_frames:
        raise ValueError(f"its trials end at frame {windows[-1, 1]}, after the movie's {n_frames}")
    return windows


def spikes_in_windows(spikes: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spikes inside each ``[start, end)`` window: concatenated, with offsets (windows + 1)."""
    lo = np.searchsorted(spikes, windows[:, 0], "left")
    hi = np.searchsorted(spikes, windows[:, 1], "left")
    counts = np.maximum(hi - lo, 0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    picked = (
        np.concatenate([spikes[a:b] for a, b in zip(lo, hi, strict=True)])
        if len(windows)
        else spikes[:0]
    )
    return picked.astype(np.int64), offsets
