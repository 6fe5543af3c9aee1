"""Planted axons: the ground truth the synthetic recordings and training images share.

An axon runs straight from the soma for ``length`` electrodes at
``direction_deg`` (the angle of ``(d_col, d_row)``, so 0 is +col and 90 is +row,
rows growing downwards). The action potential leaves the soma ``delay`` samples
after the soma's trough and travels at ``velocity`` electrodes per sample; each
electrode near the axon sees a small biphasic waveform (trough first) when the
AP passes its closest point on the axon, fading with distance from the axon
and over the last electrodes before its end. The footprint is sparse (electrode,
lag, value) entries, added to sensor data spike by spike like the soma's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nmbatch.mea.synthetic import UnitModel

TROUGH_SIGMA = 1.3  # samples
REBOUND_LAG, REBOUND_SIGMA, REBOUND_SIZE = 3.0, 2.0, 0.3
WIDTH_SIGMA = 0.7  # electrodes across the axon
END_TAPER = 2.0  # electrodes over which the signal fades at the axon's end
LABEL_FRACTION = 0.3  # voxels whose trough reaches this fraction of the amplitude are "axon"
REACH = 3  # electrodes around the axon that get a (small) signal


@dataclass(frozen=True)
class PlantedAxon:
    """One unit's axon. ``velocity`` in electrodes per sample, ``amplitude`` in ADC counts."""

    direction_deg: float
    length: float
    velocity: float
    amplitude: float
    delay: float = 1.0

    @property
    def unit_vector(self) -> np.ndarray:
        """(d_row, d_col) of the direction of travel."""
        angle = math.radians(self.direction_deg)
        return np.array([math.sin(angle), math.cos(angle)])


def axon_waveform(t: np.ndarray) -> np.ndarray:
    """The axonal waveform at lag ``t`` (samples) from the AP's passage: trough -1 at 0."""
    trough = -np.exp(-(t**2) / (2 * TROUGH_SIGMA**2))
    rebound = REBOUND_SIZE * np.exp(-((t - REBOUND_LAG) ** 2) / (2 * REBOUND_SIGMA**2))
    return trough + rebound


def length_to_edge(row: float, col: float, direction_deg: float, shape: tuple[int, int]) -> float:
    """How far (electrodes) the array extends from (row, col) in a direction."""
    d_row, d_col = PlantedAxon(direction_deg, 0, 1, 0).unit_vector
    limits = []
    for pos, d, size in ((row, d_row, shape[0]), (col, d_col, shape[1])):
        if d > 1e-9:
            limits.append((size - 1 - pos) / d)
        elif d < -1e-9:
            limits.append(-pos / d)
    return max(0.0, min(limits))


def _geometry(axon: PlantedAxon, row: float, col: float, shape: tuple[int, int]):
    """Electrodes near the axon: (rows, cols, distance along, distance across)."""
    u = axon.unit_vector
    end = np.array([row, col]) + axon.length * u
    lo = np.floor(np.minimum([row, col], end) - REACH).astype(int).clip(0)
    hi = np.ceil(np.maximum([row, col], end) + REACH).astype(int) + 1
    hi = np.minimum(hi, shape)
    rr, cc = np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]), indexing="ij")
    rel = np.stack([rr.ravel() - row, cc.ravel() - col], axis=1)
    along = rel @ u
    across = np.abs(rel @ np.array([-u[1], u[0]]))
    inside = (along >= 0) & (along <= axon.length) & (across <= REACH)
    return rr.ravel()[inside], cc.ravel()[inside], along[inside], across[inside]


def axon_signal(
    axon: PlantedAxon, row: float, col: float, lags: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The axon's footprint: electrodes (rows, cols) and their values (electrodes, lags).

    ``lags`` are samples relative to the soma's trough; (row, col) is the soma (0-based).
    """
    rows, cols, along, across = _geometry(axon, row, col, shape)
    taper = np.clip((axon.length - along) / END_TAPER, 0.0, 1.0)
    weight = axon.amplitude * np.exp(-(across**2) / (2 * WIDTH_SIGMA**2)) * taper
    passage = axon.delay + along / axon.velocity
    values = weight[:, None] * axon_waveform(lags[None, :] - passage[:, None])
    return rows, cols, values


def axon_entries(
    axon: PlantedAxon, row: float, col: float, lags: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The footprint as sparse entries (lags, rows, cols, values), rounded to ADC counts.

    ``lags`` are integer samples relative to the soma's trough; zero entries are left out.
    """
    lags = np.asarray(lags, np.int64)
    rows, cols, values = axon_signal(axon, row, col, lags.astype(float), shape)
    values = np.rint(values)
    e, k = np.nonzero(values)
    return lags[k], rows[e], cols[e], values[e, k]


def plant_entries(
    data: np.ndarray,
    start: int,
    spikes: np.ndarray,
    entries: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Add sparse entries at every spike overlapping ``data`` (samples from ``start``)."""
    lags, rows, cols, values = entries
    if not lags.size:
        return
    lo = np.searchsorted(spikes, start - lags.max(), "left")
    hi = np.searchsorted(spikes, start + data.shape[0] - lags.min(), "left")
    for spike in spikes[lo:hi]:
        t = spike + lags - start
        ok = (t >= 0) & (t < data.shape[0])
        np.add.at(data, (t[ok], rows[ok], cols[ok]), values[ok].astype(data.dtype))


def axon_toward(
    rng: np.random.Generator,
    soma: tuple[float, float],
    target: tuple[float, float],
    shape: tuple[int, int],
    amplitude: float,
    min_length: float = 8.0,
) -> PlantedAxon | None:
    """An axon from ``soma`` straight towards ``target`` (the ONH), ending on the array.

    Its length is drawn from 12-30 electrodes, cut at the array's edge and at the
    target; None if less than ``min_length`` is left.
    """
    d_row, d_col = target[0] - soma[0], target[1] - soma[1]
    direction = math.degrees(math.atan2(d_row, d_col))
    room = min(length_to_edge(*soma, direction, shape), math.hypot(d_row, d_col))
    length = min(float(rng.uniform(12.0, 30.0)), room)
    if length < min_length:
        return None
    return PlantedAxon(
        direction, length, float(rng.uniform(1.0, 2.5)), amplitude, float(rng.uniform(0, 2))
    )


def plant_axons(
    units: Sequence[UnitModel],
    onh: tuple[float, float],
    rng: np.random.Generator,
    shape: tuple[int, int],
    without_every: int = 4,
) -> None:
    """Give units axons running towards the ONH ``onh`` (0-based); every ``without_every``-th
    spiking unit, and any unit too close to the ONH or the edge, gets none."""
    spiking = [u for u in units if not u.silent]
    for i, unit in enumerate(spiking):
        if (i + 1) % without_every == 0:
            continue
        amplitude = unit.amplitude * float(rng.uniform(0.1, 0.2))
        unit.axon = axon_toward(rng, (unit.row - 1, unit.col - 1), onh, shape, amplitude)
