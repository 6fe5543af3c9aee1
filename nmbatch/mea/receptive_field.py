"""Receptive-field geometry from a dense-noise STA (frames, height, width).

Preprocessing: subtract each pixel's mean over the first ``rf_baseline_frames``
(about a second before the spike, where the STA is noise), smooth in time
(Gaussian, ``rf_temporal_sigma`` frames). The response is searched in the frames
after the baseline: a copy blurred in space (``rf_spatial_sigma`` pixels, zero
outside the grid) gives the peak frame and pixel and the polarity (ON: the STA
brightens). The STA is too noisy to fit if that peak is less than
``rf_min_peak_z`` noise SDs (the smoothed baseline frames' SD) from zero.

Fits (all in noise pixels; x = column, y = row), on unblurred maps, so the sigmas
are the field's own:

- ``gaussian``: the peak frame's map, sign-flipped for OFF units (so the field is
  positive), a rotated elliptical Gaussian;
- ``dog``: the same map, a difference of concentric Gaussians;
- ``on`` / ``off``: the extreme maps (max, and minus the min, over the response
  frames), one Gaussian each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from nmbatch.mea.rf_fit import DOG_OUT, GAUSSIAN, Fit, FitLimits, failed, fit_dog, fit_gaussian

PARAMS = (
    "rf_baseline_frames",
    "rf_temporal_sigma",
    "rf_spatial_sigma",
    "rf_min_peak_z",
    "rf_center_bound_px",
    "rf_sigma_min",
    "rf_sigma_max",
    "rf_max_evaluations",
)
TOO_NOISY = "STA too noisy"


@dataclass
class ReceptiveField:
    """What step 7 stores for one unit's STA; ``reason`` says why there is no fit."""

    status: str  # fitted, too_noisy, fit_failed
    reason: str = ""
    polarity: str = ""
    peak_frame: int = -1
    peak_z: float = float("nan")
    spatial_map: np.ndarray | None = None
    temporal_profile: np.ndarray | None = None
    fits: dict[str, Fit] = field(default_factory=dict)


def limits(p: Mapping[str, Any]) -> FitLimits:
    return FitLimits(
        float(p["rf_center_bound_px"]),
        float(p["rf_sigma_min"]),
        float(p["rf_sigma_max"]),
        int(p["rf_max_evaluations"]),
    )


def no_fits(reason: str) -> dict[str, Fit]:
    """Every fit as NaN with ``reason``."""
    names = {"gaussian": GAUSSIAN, "dog": DOG_OUT, "on": GAUSSIAN, "off": GAUSSIAN}
    return {kind: failed(n, reason) for kind, n in names.items()}


def _peak(image: np.ndarray) -> tuple[int, int]:
    """(x, y) of a map's maximum."""
    y, x = np.unravel_index(np.argmax(image), image.shape)
    return int(x), int(y)


def analyse_sta(sta: np.ndarray, p: Mapping[str, Any]) -> ReceptiveField:
    """Preprocess one STA and fit its receptive field (see the module docstring)."""
    n_base = int(p["rf_baseline_frames"])
    x = sta.astype(np.float64)
    x -= x[:n_base].mean(axis=0)
    x = ndimage.gaussian_filter1d(x, float(p["rf_temporal_sigma"]), axis=0)
    response = x[n_base:]
    s = float(p["rf_spatial_sigma"])
    blurred = ndimage.gaussian_filter(response, (0, s, s), mode="constant")
    lag, row, col = np.unravel_index(np.argmax(np.abs(blurred)), blurred.shape)
    sign = 1.0 if blurred[lag, row, col] > 0 else -1.0
    noise = float(x[:n_base].std())
    z = abs(float(response[lag, row, col])) / noise if noise > 0 else float("inf")
    rf = ReceptiveField(
        status="fitted",
        polarity="ON" if sign > 0 else "OFF",
        peak_frame=int(lag) + n_base,
        peak_z=z,
        spatial_map=(sign * response[lag]).astype(np.float32),
        temporal_profile=x[:, row, col].astype(np.float32),
    )
    if not z >= float(p["rf_min_peak_z"]):
        rf.status = "too_noisy"
        rf.reason = (
            f"{TOO_NOISY}: its peak is {z:.1f} noise SDs from baseline "
            f"(below rf_min_peak_z {p['rf_min_peak_z']})"
        )
        rf.fits = no_fits(rf.reason)
        return rf
    bounds = limits(p)
    peak = (int(col), int(row))
    on, off = response.max(axis=0), -response.min(axis=0)
    rf.fits = {
        "gaussian": fit_gaussian(rf.spatial_map, peak, bounds),
        "dog": fit_dog(rf.spatial_map, peak, bounds),
        "on": fit_gaussian(on, _peak(on), bounds),
        "off": fit_gaussian(off, _peak(off), bounds),
    }
    if not rf.fits["gaussian"].ok:
        rf.status, rf.reason = "fit_failed", f"Gaussian fit: {rf.fits['gaussian'].reason}"
    return rf
