"""Soma geometry from a unit's electrical image, for all 4225 electrodes at once.

The image (frames, rows, cols) is baseline-subtracted (mean of the first frames) and
smoothed in time (a Gaussian, then a Savitzky-Golay filter). All three are linear in
an electrode's trace, so together they are one (frames x frames) matrix, built once
by running scipy's filters on unit impulses; applying it to the 4225 traces is one
matrix product (no Python loop over electrodes, and none of savgol's per-edge
polynomial fits per unit). The results equal those of running the filters trace by
trace up to float64 rounding (``bench/bench_mea_steps.py`` compares). The peak-to-trough map
(max - min over frames) gives the soma centre at its maximum; the size comes from
the peak-to-trough map of the frames around the spike, blurred in space and
thresholded at a fraction of its maximum: the connected component (4-neighbour)
holding the centre gives the area, the extent in x (columns) and y (rows), and the
equivalent diameter ``2 * sqrt(area / pi)``, all in electrodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import ndimage, signal

PARAMS = (
    "soma_baseline_frames",
    "soma_smooth_sigma_frames",
    "soma_savgol_window",
    "soma_savgol_order",
    "soma_size_first_frame",
    "soma_size_end_frame",
    "soma_spatial_sigma",
    "soma_threshold",
)


@dataclass(frozen=True)
class SomaGeometry:
    """One unit's soma: centre (0-based electrode row, col), size in electrodes, the map."""

    center_row: int
    center_col: int
    area: int
    size_x: int
    size_y: int
    equivalent_diameter: float
    ptp_map: np.ndarray


def smooth_trace(trace: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """One electrode's trace (frames,) baseline-subtracted and smoothed, in float64."""
    trace = trace.astype(np.float64)
    trace = trace - trace[: int(p["soma_baseline_frames"])].mean()
    trace = ndimage.gaussian_filter1d(trace, float(p["soma_smooth_sigma_frames"]))
    return signal.savgol_filter(trace, int(p["soma_savgol_window"]), int(p["soma_savgol_order"]))


@lru_cache(maxsize=8)
def _operator(n_frames: int, key: tuple[tuple[str, Any], ...]) -> np.ndarray:
    """The (frames, frames) matrix of :func:`smooth_trace`: column j is its response to frame j."""
    p = dict(key)
    return np.stack([smooth_trace(e, p) for e in np.eye(n_frames)], axis=1)


def smooth_traces(eimage: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """Every electrode's trace smoothed as :func:`smooth_trace` does, (frames, ...) float64."""
    n_frames = eimage.shape[0]
    operator = _operator(n_frames, tuple((k, p[k]) for k in PARAMS[:4]))
    flat = eimage.reshape(n_frames, -1).astype(np.float64)
    return (operator @ flat).reshape(eimage.shape)


def geometry_from_traces(traces: np.ndarray, p: Mapping[str, Any]) -> SomaGeometry:
    """The soma's centre and size from smoothed traces (frames, rows, cols)."""
    ptp = traces.max(axis=0) - traces.min(axis=0)
    row, col = (int(v) for v in np.unravel_index(np.argmax(ptp), ptp.shape))
    window = traces[int(p["soma_size_first_frame"]) : int(p["soma_size_end_frame"])]
    size_map = ndimage.gaussian_filter(
        window.max(axis=0) - window.min(axis=0), float(p["soma_spatial_sigma"])
    )
    mask = size_map >= float(p["soma_threshold"]) * size_map.max()
    components, _ = ndimage.label(mask)
    soma = components == components[row, col] if mask[row, col] else np.zeros_like(mask)
    rows, cols = np.nonzero(soma)
    area = int(rows.size)
    return SomaGeometry(
        center_row=row,
        center_col=col,
        area=area,
        size_x=int(cols.max() - cols.min() + 1) if area else 0,
        size_y=int(rows.max() - rows.min() + 1) if area else 0,
        equivalent_diameter=float(2 * np.sqrt(area / np.pi)),
        ptp_map=ptp.astype(np.float32),
    )


def soma_geometry(eimage: np.ndarray, p: Mapping[str, Any]) -> SomaGeometry:
    """Soma geometry of one electrical image (frames, rows, cols)."""
    return geometry_from_traces(smooth_traces(eimage, p), p)


def check_params(p: Mapping[str, Any], n_frames: int) -> str | None:
    """Why the parameters cannot work on images of ``n_frames`` frames, or None."""
    window, order = int(p["soma_savgol_window"]), int(p["soma_savgol_order"])
    if window % 2 == 0 or order >= window:
        return f"soma_savgol_window {window} must be odd and above soma_savgol_order {order}"
    first, end = int(p["soma_size_first_frame"]), int(p["soma_size_end_frame"])
    if not 0 <= first < end <= n_frames:
        return f"soma size frames [{first}, {end}) are not inside the image's {n_frames} frames"
    if window > n_frames or int(p["soma_baseline_frames"]) > n_frames:
        return f"the image's {n_frames} frames are fewer than the smoothing or baseline window"
    return None
