"""Synthetic electrical images with planted axons, and the labelled cubes training uses.

An image is what step 1 computes for a unit: 50 frames (samples -10..+39 around
the spike) of 65 x 65 electrodes, holding the soma's waveform (the same template
the synthetic recordings plant), the axon's footprint and Gaussian noise (the
residual of averaging the sensor noise over the unit's spikes). Labels mark the
voxels where the axon's trough reaches ``LABEL_FRACTION`` of its amplitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nmbatch.mea.axon.cubes import scored_shape
from nmbatch.mea.axon.network import HALF
from nmbatch.mea.axon.planted import LABEL_FRACTION, PlantedAxon, axon_signal, length_to_edge
from nmbatch.mea.synthetic import FOOTPRINT_RADIUS, WAVEFORM_OFFSETS, waveform_template

FRAMES = 50
SAMPLES_BEFORE = 10  # frame of the spike's trough (step 1's eimage_samples_before)
SHAPE = (65, 65)
MIN_AXON_LENGTH = 8.0


@dataclass
class SyntheticUnit:
    """One unit's electrical image with its ground truth (soma 0-based, axon or None)."""

    image: np.ndarray
    labels: np.ndarray
    soma: tuple[int, int]
    axon: PlantedAxon | None
    noise_sd: float


def _lags() -> np.ndarray:
    return np.arange(FRAMES) - SAMPLES_BEFORE


def soma_image(amplitude: float, spread: float, row: int, col: int) -> np.ndarray:
    """The soma's waveform (frames, 65, 65) as the synthetic recordings plant it."""
    image = np.zeros((FRAMES, *SHAPE), np.float32)
    template = waveform_template(amplitude, spread)
    frames = WAVEFORM_OFFSETS + SAMPLES_BEFORE
    keep = (frames >= 0) & (frames < FRAMES)
    r = FOOTPRINT_RADIUS
    r0, r1 = max(row - r, 0), min(row + r + 1, SHAPE[0])
    c0, c1 = max(col - r, 0), min(col + r + 1, SHAPE[1])
    image[frames[keep], r0:r1, c0:c1] = template[keep][
        :, r0 - row + r : r1 - row + r, c0 - col + r : c1 - col + r
    ]
    return image


def axon_image(axon: PlantedAxon, row: int, col: int) -> np.ndarray:
    """The axon's footprint (frames, 65, 65), noise-free."""
    image = np.zeros((FRAMES, *SHAPE), np.float32)
    rows, cols, values = axon_signal(axon, row, col, _lags().astype(float), SHAPE)
    np.add.at(image, (slice(None), rows, cols), values.T.astype(np.float32))
    return image


def synthetic_unit(
    rng: np.random.Generator,
    soma: tuple[int, int],
    axon: PlantedAxon | None,
    soma_amplitude: float,
    spread: float,
    noise_sd: float,
) -> SyntheticUnit:
    """A unit's image: soma + axon + noise, with the axon voxels as labels."""
    image = soma_image(soma_amplitude, spread, *soma)
    labels = np.zeros(image.shape, bool)
    if axon is not None:
        signal = axon_image(axon, *soma)
        image += signal
        labels = signal <= -LABEL_FRACTION * axon.amplitude
    image += rng.normal(0.0, noise_sd, image.shape).astype(np.float32)
    return SyntheticUnit(image, labels, soma, axon, noise_sd)


def random_axon(
    rng: np.random.Generator, soma: tuple[int, int], amplitude: float
) -> PlantedAxon | None:
    """An axon in a random direction that fits on the array (None if none of 8 tries fit)."""
    for _ in range(8):
        direction = float(rng.uniform(-180.0, 180.0))
        room = length_to_edge(*soma, direction, SHAPE)
        if room >= MIN_AXON_LENGTH:
            length = float(min(rng.uniform(MIN_AXON_LENGTH, 36.0), room))
            velocity = float(rng.uniform(0.8, 3.0))
            return PlantedAxon(direction, length, velocity, amplitude, float(rng.uniform(0, 2)))
    return None


def random_unit(rng: np.random.Generator, p_axon: float = 0.75) -> SyntheticUnit:
    """A unit anywhere on the array, with an axon (probability ``p_axon``) at a random SNR."""
    soma = tuple(int(v) for v in rng.integers(3, SHAPE[0] - 3, 2))
    soma_amplitude = float(rng.uniform(50.0, 300.0))
    axon_amplitude = soma_amplitude * float(rng.uniform(0.06, 0.2))
    snr = math.exp(rng.uniform(math.log(4.0), math.log(30.0)))
    axon = random_axon(rng, soma, axon_amplitude) if rng.random() < p_axon else None
    spread = float(rng.uniform(1.0, 1.6))
    return synthetic_unit(rng, soma, axon, soma_amplitude, spread, axon_amplitude / snr)


def training_centres(
    rng: np.random.Generator, unit: SyntheticUnit, max_positive: int, negatives_per_positive: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cube centres (n, 3) and labels (n,): axon voxels, hard and random non-axon voxels.

    Hard negatives lie next to the axon (in space or time) and around the soma,
    where the signal is large but not axon; the rest are anywhere.
    """
    n_t, n_r, n_c = scored_shape(unit.image.shape)
    scored = np.zeros(unit.labels.shape, bool)
    scored[HALF : HALF + n_t, HALF : HALF + n_r, HALF : HALF + n_c] = True
    positive = np.argwhere(unit.labels & scored)
    if len(positive) > max_positive:
        positive = positive[rng.choice(len(positive), max_positive, replace=False)]
    n_neg = max(len(positive), max_positive // 2) * negatives_per_positive
    near = np.zeros_like(scored)
    if unit.axon is not None:
        grown = unit.labels.copy()
        for axis in range(3):
            grown |= np.roll(unit.labels, 2, axis) | np.roll(unit.labels, -2, axis)
        near |= grown & ~unit.labels
    row, col = unit.soma
    near[:, max(row - 6, 0) : row + 7, max(col - 6, 0) : col + 7] = True
    hard = np.argwhere(near & scored & ~unit.labels)
    k = min(len(hard), n_neg // 2)
    picks = [hard[rng.choice(len(hard), k, replace=False)]] if k else []
    anywhere = np.argwhere(scored & ~unit.labels)
    picks.append(anywhere[rng.choice(len(anywhere), n_neg - k, replace=False)])
    negative = np.concatenate(picks)
    centres = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))]).astype(np.float32)
    return centres, labels
