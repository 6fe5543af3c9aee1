"""Direction and orientation selectivity from spike counts per moving-bar trial.

For each unit, ``R_k`` is the mean count over the trials of direction ``theta_k``;
``DSI = |sum R_k e^(i theta_k)| / sum R_k``, ``OSI = |sum R_k e^(2 i theta_k)| / sum R_k``,
the preferred direction is the angle of ``sum R_k e^(i theta_k)``. The p-value is a
permutation test: the trials' directions are shuffled ``n_shuffles`` times (the same
seeded shuffles for every unit, so reruns agree) and
``p = (1 + #{shuffled |vector sum| >= observed}) / (1 + n_shuffles)``.
All units are done at once (arrays of units x shuffles x trials).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHUFFLE_CHUNK = 200


@dataclass(frozen=True)
class Selectivity:
    """Per unit (rows): responses per direction, indices, preferred direction, p-value."""

    directions_deg: np.ndarray  # (directions,)
    responses: np.ndarray  # (units, directions)
    dsi: np.ndarray
    osi: np.ndarray
    preferred_deg: np.ndarray
    p_value: np.ndarray


def _means(counts: np.ndarray, index: np.ndarray, n_dirs: int) -> np.ndarray:
    """Mean over trials of each direction: counts (..., trials) -> (..., directions)."""
    onehot = np.zeros((index.size, n_dirs))
    onehot[np.arange(index.size), index] = 1
    return counts @ (onehot / onehot.sum(axis=0))


def selectivity(
    counts: np.ndarray, trial_deg: np.ndarray, n_shuffles: int, seed: int
) -> Selectivity:
    """Indices of every unit from ``counts`` (units, trials) and each trial's direction."""
    directions, index = np.unique(np.asarray(trial_deg, float) % 360, return_inverse=True)
    theta = np.deg2rad(directions)
    counts = np.asarray(counts, float)
    responses = _means(counts, index, directions.size)
    total = responses.sum(axis=1)
    vector = responses @ np.exp(1j * theta)
    with np.errstate(invalid="ignore", divide="ignore"):
        dsi = np.abs(vector) / total
        osi = np.abs(responses @ np.exp(2j * theta)) / total
    preferred = np.where(total > 0, np.rad2deg(np.angle(vector)) % 360, np.nan)
    rng = np.random.default_rng(seed)
    shuffles = np.argsort(rng.random((n_shuffles, index.size)), axis=1)
    exceed = np.zeros(counts.shape[0])
    for a in range(0, n_shuffles, SHUFFLE_CHUNK):
        shuffled = counts[:, shuffles[a : a + SHUFFLE_CHUNK]]  # (units, chunk, trials)
        null = np.abs(_means(shuffled, index, directions.size) @ np.exp(1j * theta))
        exceed += (null >= np.abs(vector)[:, None] - 1e-9).sum(axis=1)
    p = np.where(total > 0, (1 + exceed) / (1 + n_shuffles), np.nan)
    return Selectivity(directions, responses, dsi, osi, preferred, p)
