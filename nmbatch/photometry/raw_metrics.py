"""Metrics of the long, interleaved signal table (frame timing and band order).

They run once per session on the table indexed by frame time. ``n_band_inversions`` is the
project's own: iblphotometry 0.3.4's ``find_gaps`` raises IndexError when the unlabelled
frames (``color == ''``, as real recordings can start) form a single run, and its
``fill_gaps`` raises where a gap follows a frame of unknown colour. Elsewhere this gives
iblphotometry's numbers, its quirks included: its last gap also holds the last unlabelled
frame of the gap before, and a gap it cannot label from the frame before reuses the previous
gap's labels when they have the same length. Every other raw metric is iblphotometry's own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from nmbatch.photometry.config import QCConfig

# the two LED colours of a dual-band recording, and the label that follows each
NEXT_COLOUR = {"Blue": "Violet", "Violet": "Blue"}
GAP_DT_TOLERANCE = 0.1  # a gap is filled when its mean frame interval is within 10 % of all


def unlabelled_runs(colours: np.ndarray) -> list[np.ndarray]:
    """Positions of the unlabelled frames, split as iblphotometry's ``find_gaps`` splits them.

    A single run, on which ``find_gaps`` fails, is one gap.
    """
    positions = np.flatnonzero(colours == "")
    if positions.size == 0:
        return []
    splits = np.flatnonzero(np.diff(positions) > 1)
    if splits.size == 0:
        return [positions]
    runs = [positions[: splits[0] + 1]]
    runs += [positions[a + 1 : b + 1] for a, b in zip(splits[:-1], splits[1:], strict=True)]
    runs.append(positions[splits[-1] :])  # sic: iblphotometry's last gap starts one early
    return runs


def fill_unlabelled(times: pd.Series, colours: np.ndarray) -> np.ndarray:
    """Label each regularly timed gap by alternation from the frame before it, in order."""
    colours = colours.copy()
    dt = times.reset_index(drop=True).diff()
    mean_dt = dt.mean()
    low, high = mean_dt - mean_dt * GAP_DT_TOLERANCE, mean_dt + mean_dt * GAP_DT_TOLERANCE
    fill = None
    for gap in unlabelled_runs(colours):
        gap_dt = dt.iloc[gap].mean()
        if not (gap_dt > low and gap_dt < high):
            continue  # irregular timing: left unlabelled
        before = colours[gap[0] - 1]  # the last frame when the gap starts the recording
        if before in NEXT_COLOUR:
            first = NEXT_COLOUR[before]
            fill = np.array([first, NEXT_COLOUR[first]] * len(gap), dtype=object)[: len(gap)]
        if fill is not None and len(fill) == len(gap):
            colours[gap] = fill
    return colours


def n_band_inversions(long: pd.DataFrame) -> int:
    """Consecutive frames of the same colour, after labelling the unlabelled ones."""
    colours = long["color"].to_numpy(dtype=object)
    if (colours == "").any():
        colours = fill_unlabelled(pd.Series(long.index), colours)
    return int(np.sum(colours[:-1] == colours[1:]))


OWN_RAW_METRICS: dict[str, Callable[..., float]] = {"n_band_inversions": n_band_inversions}


def raw_metric_values(
    signal: pd.DataFrame, config: QCConfig
) -> tuple[dict[str, float], dict[str, BaseException]]:
    """Each raw metric on the long table indexed by frame time; failed ones by their error."""
    long = signal.set_index("times")
    values, errors = {}, {}
    for metric in config.raw_metrics:
        name = metric.__name__
        function = OWN_RAW_METRICS.get(name, metric)
        try:
            values[name] = float(function(long, **config.kwargs_of(name)))
        except Exception as exc:
            errors[name] = exc
    return values, errors
