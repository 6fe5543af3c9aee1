"""Least-squares fits of receptive-field maps: a rotated elliptical Gaussian, a DoG.

Maps are fitted on pixel centres (x = column, y = row, in noise pixels) with scipy's
``curve_fit`` (trust-region, bounded, analytic Jacobian), after scaling the map to a
peak of 1 so the tolerances below mean the same for every STA. A fit that does not
converge, or ends on one of its bounds (other than the periodic angle), is returned
as NaN with the reason: never a sentinel number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

GAUSSIAN = ("amplitude", "center_x", "center_y", "sigma_x", "sigma_y", "angle", "offset")
DOG = (
    "amplitude_center",
    "amplitude_surround",
    "center_x",
    "center_y",
    "sigma_center",
    "surround_ratio",
    "offset",
)
DOG_OUT = (*DOG, "sigma_surround")
AT_BOUND = 1e-4  # a parameter this close to a finite bound (map scaled to peak 1) is "at" it


@dataclass(frozen=True)
class FitLimits:
    """Bounds and effort of every fit: centre within ``center_px`` of the first guess."""

    center_px: float = 5.0
    sigma_min: float = 0.5
    sigma_max: float = 7.5
    max_evaluations: int = 5000


@dataclass(frozen=True)
class Fit:
    """Fitted values by name (NaN if the fit failed), R^2, and why it failed ('' if it did not)."""

    values: dict[str, float]
    r_squared: float
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def failed(names: tuple[str, ...], reason: str) -> Fit:
    """A fit that did not happen or did not succeed."""
    return Fit(dict.fromkeys(names, float("nan")), float("nan"), reason)


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    return x.ravel(), y.ravel()


def gaussian(x, y, amplitude, x0, y0, sx, sy, theta, offset):
    """Rotated elliptical Gaussian; ``theta`` is sigma_x's axis, from +x towards +y."""
    c, s = np.cos(theta), np.sin(theta)
    u, v = (x - x0) * c + (y - y0) * s, -(x - x0) * s + (y - y0) * c
    return amplitude * np.exp(-(u**2) / (2 * sx**2) - v**2 / (2 * sy**2)) + offset


def _gaussian_jac(x, y, amplitude, x0, y0, sx, sy, theta, offset):
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = x - x0, y - y0
    u, v = dx * c + dy * s, -dx * s + dy * c
    e = np.exp(-(u**2) / (2 * sx**2) - v**2 / (2 * sy**2))
    g = amplitude * e
    du, dv = u / sx**2, v / sy**2  # -d(exponent)/du, -d(exponent)/dv
    return np.stack(
        [
            e,
            g * (du * c - dv * s),
            g * (du * s + dv * c),
            g * u**2 / sx**3,
            g * v**2 / sy**3,
            g * (-du * v + dv * u),
            np.ones_like(x),
        ],
        axis=1,
    )


def dog(x, y, amp_c, amp_s, x0, y0, sc, ratio, offset):
    """Concentric difference of Gaussians; the surround's sigma is ``ratio * sc``."""
    r2 = (x - x0) ** 2 + (y - y0) ** 2
    ss = ratio * sc
    return amp_c * np.exp(-r2 / (2 * sc**2)) - amp_s * np.exp(-r2 / (2 * ss**2)) + offset


def _dog_jac(x, y, amp_c, amp_s, x0, y0, sc, ratio, offset):
    dx, dy = x - x0, y - y0
    r2 = dx**2 + dy**2
    ss = ratio * sc
    ec, es = np.exp(-r2 / (2 * sc**2)), np.exp(-r2 / (2 * ss**2))
    gc, gs = amp_c * ec, amp_s * es
    d_ss = gs * r2 / ss**3  # d(-surround)/d(ss) is -d_ss
    return np.stack(
        [
            ec,
            -es,
            gc * dx / sc**2 - gs * dx / ss**2,
            gc * dy / sc**2 - gs * dy / ss**2,
            gc * r2 / sc**3 - d_ss * ratio,
            -d_ss * sc,
            np.ones_like(x),
        ],
        axis=1,
    )


def _fit(
    model: Callable,
    jac: Callable,
    names: tuple[str, ...],
    image: np.ndarray,
    start: list[float],
    lower: list[float],
    upper: list[float],
    limits: FitLimits,
    periodic: tuple[str, ...] = (),
) -> tuple[Fit, float]:
    """Fit ``model`` to ``image`` scaled to a peak of 1; returns the fit and the scale."""
    scale = float(np.nanmax(np.abs(image)))
    if not np.isfinite(scale) or scale == 0:
        return failed(names, "the map is empty or not finite"), 1.0
    z = (image / scale).ravel()
    x, y = _grid(image.shape)
    start = list(np.clip(start, lower, upper))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            values, _ = curve_fit(
                lambda _, *q: model(x, y, *q),
                None,
                z,
                p0=start,
                bounds=(lower, upper),
                jac=lambda _, *q: jac(x, y, *q),
                max_nfev=limits.max_evaluations,
            )
    except RuntimeError:
        return failed(names, f"did not converge in {limits.max_evaluations} evaluations"), scale
    except ValueError as exc:
        return failed(names, f"could not be fitted: {exc}"), scale
    for name, value, lo, hi in zip(names, values, lower, upper, strict=True):
        for bound in (lo, hi):
            if name not in periodic and np.isfinite(bound) and abs(value - bound) <= AT_BOUND:
                return failed(names, f"{name} ended at its bound {bound:.4g}"), scale
    residual = z - model(x, y, *values)
    total = float(((z - z.mean()) ** 2).sum())
    r2 = 1 - float((residual**2).sum()) / total if total > 0 else float("nan")
    return Fit(dict(zip(names, (float(v) for v in values), strict=True)), r2), scale


def first_guess(image: np.ndarray, peak: tuple[int, int]) -> tuple[float, float, float]:
    """Sigmas and angle from the second moments of the pixels above a quarter of the peak."""
    x, y = _grid(image.shape)
    w = image.ravel() - np.median(image)
    px, py = peak
    near = (w > 0.25 * w.max()) & ((x - px) ** 2 + (y - py) ** 2 <= 16)
    w, x, y = w[near], x[near] - px, y[near] - py
    if w.sum() <= 0 or near.sum() < 3:
        return 1.5, 1.5, 0.0
    cov = np.cov(np.stack([x, y]), aweights=w, bias=True)
    evals, evecs = np.linalg.eigh(cov)
    sx, sy = np.sqrt(np.maximum(evals[::-1], 0.25))
    angle = float(np.arctan2(evecs[1, 1], evecs[0, 1]))
    return float(sx), float(sy), angle


def fit_gaussian(image: np.ndarray, peak: tuple[int, int], limits: FitLimits) -> Fit:
    """Rotated elliptical Gaussian (amplitude >= 0) around ``peak`` (x, y) of ``image``.

    Reported with ``sigma_x >= sigma_y`` and ``angle`` (radians, sigma_x's axis from
    +x towards +y) in [0, pi); amplitude and offset in the map's units.
    """
    sx, sy, angle = first_guess(image, peak)
    cx, cy = peak
    c, lo, hi = limits.center_px, limits.sigma_min, limits.sigma_max
    start = [1.0, cx, cy, sx, sy, angle, float(np.median(image)) / max(np.abs(image).max(), 1e-12)]
    lower = [0.0, cx - c, cy - c, lo, lo, -np.pi, -np.inf]
    upper = [np.inf, cx + c, cy + c, hi, hi, np.pi, np.inf]
    fit, scale = _fit(
        gaussian, _gaussian_jac, GAUSSIAN, image, start, lower, upper, limits, ("angle",)
    )
    if not fit.ok:
        return fit
    v = dict(fit.values)
    if v["sigma_x"] < v["sigma_y"]:
        v["sigma_x"], v["sigma_y"] = v["sigma_y"], v["sigma_x"]
        v["angle"] += np.pi / 2
    v["angle"] = float(np.mod(v["angle"], np.pi))
    v["amplitude"] *= scale
    v["offset"] *= scale
    return Fit(v, fit.r_squared)


def fit_dog(image: np.ndarray, peak: tuple[int, int], limits: FitLimits) -> Fit:
    """Difference of concentric Gaussians: a centre and a wider surround of opposite sign."""
    sx, sy, _ = first_guess(image, peak)
    cx, cy = peak
    c, lo, hi = limits.center_px, limits.sigma_min, limits.sigma_max
    sc = float(np.sqrt(sx * sy))
    start = [1.2, 0.2, cx, cy, sc, 2.5, 0.0]
    lower = [0.0, 0.0, cx - c, cy - c, lo, 1.05, -np.inf]
    upper = [np.inf, np.inf, cx + c, cy + c, hi, 10.0, np.inf]
    fit, scale = _fit(dog, _dog_jac, DOG, image, start, lower, upper, limits)
    if not fit.ok:
        return failed(DOG_OUT, fit.reason)
    v = dict(fit.values)
    for key in ("amplitude_center", "amplitude_surround", "offset"):
        v[key] *= scale
    v["sigma_surround"] = v["sigma_center"] * v["surround_ratio"]
    return Fit(v, fit.r_squared)
