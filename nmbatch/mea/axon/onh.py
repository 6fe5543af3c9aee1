"""The optic-nerve head (ONH): the point all of a recording's axon lines run towards.

Lines come from the units' axon paths without their first ``onh_skip_fraction``
of centroids (near the soma). Axons with R^2 >= the first of
``onh_r2_thresholds`` are used; if that leaves fewer than ``onh_min_axons``
(after the direction filter) the next threshold is tried. Axons further than
``onh_max_angle_deg`` from the R^2-weighted circular mean direction are dropped.
The ONH minimises the summed squared perpendicular distances to the lines (SLSQP)
within ``onh_max_distance_px`` of the array centre and ahead of the cells along
the mean direction; if it lands beyond ``onh_boundary_fraction`` of that
distance, the axons furthest from it are removed in steps of
``onh_prune_fractions`` (keeping at least ``onh_min_kept`` or
``onh_min_kept_fraction`` of them) until it does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from nmbatch.mea.axon.params import OnhParams
from nmbatch.mea.axon.tracking import AxonTrack, Line, fit_line


@dataclass(frozen=True)
class OnhEstimate:
    """The ONH (0-based electrode coordinates) and how it was found, or why not."""

    found: bool
    reason: str = ""
    row: float = math.nan
    col: float = math.nan
    r2_threshold: float = math.nan
    consensus_deg: float = math.nan
    units: tuple[int, ...] = ()
    n_axons: int = 0
    n_pruned: int = 0
    at_boundary: bool = False
    rms_distance_px: float = math.nan


@dataclass(frozen=True)
class _Axon:
    unit: int
    line: Line
    soma: np.ndarray
    angle: float


def _axon(unit: int, track: AxonTrack, soma: tuple[float, float], skip: float) -> _Axon:
    first = min(int(skip * len(track.points)), len(track.points) - 2)
    line = fit_line(track.points[first:], track.frames[first:].astype(float))
    angle = math.atan2(line.direction[0], line.direction[1])
    return _Axon(unit, Line(line.point, line.direction, track.r2), np.asarray(soma, float), angle)


def _wrapped(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _select(axons: list[_Axon], p: OnhParams) -> tuple[list[_Axon], float, float, str]:
    """Axons passing the R^2 filter (with its retries) and the direction filter."""
    reason = ""
    for threshold in p.onh_r2_thresholds:
        good = [a for a in axons if a.line.r2 >= threshold]
        if not good:
            reason = f"no axon with R^2 >= {threshold}"
            continue
        weights = np.array([a.line.r2 for a in good])
        angles = np.array([a.angle for a in good])
        mean = math.atan2(weights @ np.sin(angles), weights @ np.cos(angles))
        kept = [
            a
            for a, d in zip(good, _wrapped(angles - mean), strict=True)
            if abs(d) <= math.radians(p.onh_max_angle_deg)
        ]
        if len(kept) >= p.onh_min_axons:
            return kept, threshold, mean, ""
        reason = (
            f"{len(kept)} axon(s) with R^2 >= {threshold} within {p.onh_max_angle_deg} deg of "
            f"their mean direction (< {p.onh_min_axons})"
        )
    return [], math.nan, math.nan, reason


def _distances(axons: list[_Axon], x: np.ndarray) -> np.ndarray:
    """Perpendicular distances from ``x`` to each axon's line."""
    normals = np.array([[-a.line.direction[1], a.line.direction[0]] for a in axons])
    return np.abs(np.einsum("ij,ij->i", normals, x - np.array([a.line.point for a in axons])))


def _solve(axons: list[_Axon], centre: np.ndarray, radius: float, mean: float) -> np.ndarray:
    """The point nearest all lines (least squares) within ``radius`` and ahead of the cells."""
    projectors = [np.eye(2) - np.outer(a.line.direction, a.line.direction) for a in axons]
    a_sum = np.sum(projectors, axis=0)
    b_sum = np.sum([pr @ a.line.point for pr, a in zip(projectors, axons, strict=True)], axis=0)
    ahead = np.array([math.sin(mean), math.cos(mean)])
    cells = np.mean([a.soma for a in axons], axis=0)
    start = np.linalg.lstsq(a_sum, b_sum, rcond=None)[0]
    result = minimize(
        lambda x: x @ a_sum @ x - 2 * b_sum @ x,
        start,
        jac=lambda x: 2 * (a_sum @ x - b_sum),
        method="SLSQP",
        constraints=[
            {"type": "ineq", "fun": lambda x: radius**2 - (x - centre) @ (x - centre)},
            {"type": "ineq", "fun": lambda x: (x - cells) @ ahead},
        ],
        options={"maxiter": 200, "ftol": 1e-10},
    )
    return np.asarray(result.x, float)


def estimate_onh(
    tracks: Mapping[int, AxonTrack],
    somas: Mapping[int, tuple[float, float]],
    shape: tuple[int, int],
    p: OnhParams,
) -> OnhEstimate:
    """The ONH from the detected axons of one recording (``shape``: rows, cols of the array)."""
    axons = [
        _axon(unit, track, somas[unit], p.onh_skip_fraction)
        for unit, track in tracks.items()
        if track.detected
    ]
    if len(axons) < p.onh_min_axons:
        return OnhEstimate(
            False,
            f"{len(axons)} unit(s) with a detected axon (< {p.onh_min_axons})",
            n_axons=len(axons),
        )
    used, threshold, mean, reason = _select(axons, p)
    if not used:
        return OnhEstimate(False, reason, n_axons=len(axons))
    centre = (np.array(shape, float) - 1) / 2
    radius = p.onh_max_distance_px
    x = _solve(used, centre, radius, mean)
    n_selected = len(used)
    floor = max(p.onh_min_kept, math.ceil(p.onh_min_kept_fraction * n_selected))
    for fraction in p.onh_prune_fractions:
        if np.hypot(*(x - centre)) <= p.onh_boundary_fraction * radius:
            break
        keep = max(n_selected - round(fraction * n_selected), floor)
        if keep >= len(used):
            continue
        used = [used[i] for i in np.argsort(_distances(used, x), kind="stable")[:keep]]
        x = _solve(used, centre, radius, mean)
    return OnhEstimate(
        True,
        row=float(x[0]),
        col=float(x[1]),
        r2_threshold=threshold,
        consensus_deg=math.degrees(mean),
        units=tuple(a.unit for a in used),
        n_axons=len(axons),
        n_pruned=n_selected - len(used),
        at_boundary=bool(np.hypot(*(x - centre)) > p.onh_boundary_fraction * radius),
        rms_distance_px=float(np.sqrt(np.mean(_distances(used, x) ** 2))),
    )


def polar_position(soma: tuple[float, float], onh: OnhEstimate) -> tuple[float, float]:
    """A soma's distance (electrodes) and angle (degrees, as axon directions) from the ONH."""
    if not onh.found:
        return math.nan, math.nan
    d_row, d_col = soma[0] - onh.row, soma[1] - onh.col
    return float(math.hypot(d_row, d_col)), math.degrees(math.atan2(d_row, d_col))
