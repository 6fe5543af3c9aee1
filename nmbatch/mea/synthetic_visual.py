"""The visual side of the synthetic retina: stimuli, receptive fields, direction tuning, rates.

A unit's firing rate during each display frame follows the movie on screen:

- dense noise: ``base * exp(gain * drive)``, the drive being the noise filtered by the
  unit's receptive field, a rotated elliptical Gaussian (known centre, sigmas, angle)
  times a temporal kernel peaking ``RF_LAG_FRAMES`` frames before the spike; a unit
  with ``rf_sign = 0`` ignores the noise (its STA is pure noise);
- flash: ON units fire in the first half of each trial, OFF units in the second;
- moving bar: a base rate, plus a burst while the bar covers the unit's RF centre,
  scaled by a von Mises tuning curve (tuned units) or the same for every direction.

Geometry of the moving bar (the same convention :mod:`nmbatch.mea.moving_bar` documents):
stimulus pixels, x along the noise movie's columns, y along its rows; a direction
``theta`` moves the bar along ``(cos theta, sin theta)``; at a trial's first frame the
bar's leading edge lies ``start_distance_px`` behind the field centre and it advances
``speed_px_per_frame`` per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nmbatch.mea.synthetic import RecordingModel, UnitModel

NOISE_SHAPE = (15, 15)
NOISE_PIXEL_PX = 20.0  # stimulus pixels per noise pixel: the 15 x 15 grid fills a 300 px field
RF_LAG_FRAMES = 3
# Temporal kernel of the receptive field, frames 1.. before the spike (biphasic, peak at 3).
TEMPORAL_KERNEL = np.array([0.1, 0.5, 1.0, 0.6, 0.15, -0.2, -0.25, -0.1])
TEMPORAL_KERNEL = TEMPORAL_KERNEL / np.linalg.norm(TEMPORAL_KERNEL)
NOISE_BASE_HZ, NOISE_GAIN = 15.0, 1.7  # rate = base * exp(gain * drive), drive of unit variance
FLASH_ON_HZ = 60.0
BAR_BASE_HZ = 2.0
TUNED_PEAK_HZ, UNTUNED_PEAK_HZ = 200.0, 100.0


@dataclass(frozen=True)
class Movie:
    """One playlist entry: noise (RF drive), flash (trials), moving bar, or gray."""

    name: str
    n_frames: int
    kind: str
    config: dict | None = None


def noise_movie(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """Binary dense noise (frames, 15, 15) of 0/255, a new pattern every display frame.

    (Lab noise movies hold each pattern for 4 frames, 15 Hz on a 60 fps display;
    a new pattern per frame gives short synthetic recordings 4x more of them.)
    """
    return rng.integers(0, 2, (n_frames, *NOISE_SHAPE), dtype=np.uint8) * np.uint8(255)


def trial_starts(config: dict) -> np.ndarray:
    """First frame of every trial relative to the movie start (groups separated by a gap)."""
    i = np.arange(config["repeat"])
    starts = config["start_frame"] + i * config["trial_length_frame"]
    if config.get("group_count"):
        starts = starts + (i // config["group_count"]) * config.get("group_gap_frame", 0)
    return starts


def moving_bar_config(
    repeats: int,
    speed: float = 8.0,
    width: float = 120.0,
    field: float = 300.0,
    start_frame: int = 10,
    seed: int = 0,
) -> dict:
    """A moving-bar trial config: 8 directions x ``repeats``, shuffled within each repeat."""
    rng = np.random.default_rng([seed, 7])
    directions = np.concatenate([rng.permutation(8) * 45 for _ in range(repeats)])
    start_distance = field / np.sqrt(2)  # the leading edge starts outside the field's corners
    travel = 2 * start_distance + width
    trial = int(np.ceil(travel / speed)) + 12
    return {
        "start_frame": start_frame,
        "trial_length_frame": trial,
        "repeat": 8 * repeats,
        "moving_bar": {
            "directions_deg": [int(d) for d in directions],
            "speed_px_per_frame": speed,
            "bar_width_px": width,
            "bar_length_px": 2 * field,
            "start_distance_px": start_distance,
            "field_size_px": [field, field],
        },
    }


def bar_coverage(config: dict, point: tuple[float, float]) -> np.ndarray:
    """Whether the bar covers ``point`` (x, y stimulus px) in each trial frame: (trials, frames)."""
    bar = config["moving_bar"]
    theta = np.deg2rad(np.asarray(bar["directions_deg"], float))
    cx, cy = (s / 2 for s in bar["field_size_px"])
    along = (point[0] - cx) * np.cos(theta) + (point[1] - cy) * np.sin(theta)
    frames = np.arange(config["trial_length_frame"])
    lead = -bar["start_distance_px"] + bar["speed_px_per_frame"] * frames
    return (lead[None] - bar["bar_width_px"] < along[:, None]) & (along[:, None] <= lead[None])


def rf_weights(unit: UnitModel) -> np.ndarray:
    """The unit's spatial receptive field on the noise grid, unit L2 norm (zero without one)."""
    if unit.rf_sign == 0:
        return np.zeros(NOISE_SHAPE)
    y, x = np.mgrid[: NOISE_SHAPE[0], : NOISE_SHAPE[1]].astype(float)
    dx, dy = x - unit.rf_center[1], y - unit.rf_center[0]
    c, s = np.cos(unit.rf_angle), np.sin(unit.rf_angle)
    major, minor = dx * c + dy * s, -dx * s + dy * c
    w = np.exp(-(major**2) / (2 * unit.rf_sigma[0] ** 2) - minor**2 / (2 * unit.rf_sigma[1] ** 2))
    return w / np.linalg.norm(w)


def rf_point_px(unit: UnitModel) -> tuple[float, float]:
    """The unit's RF centre in stimulus pixels (x, y)."""
    return ((unit.rf_center[1] + 0.5) * NOISE_PIXEL_PX, (unit.rf_center[0] + 0.5) * NOISE_PIXEL_PX)


def bar_tuning(unit: UnitModel, directions_deg: np.ndarray) -> np.ndarray:
    """Peak burst rate (Hz) of the unit for each direction."""
    if unit.bar_peak_hz == 0:
        return np.zeros(len(directions_deg))
    if np.isnan(unit.ds_preferred_deg):
        return np.full(len(directions_deg), unit.bar_peak_hz)
    delta = np.deg2rad(np.asarray(directions_deg, float) - unit.ds_preferred_deg)
    return unit.bar_peak_hz * np.exp(unit.ds_kappa * (np.cos(delta) - 1))


def assign_visual(rng: np.random.Generator, units: list[UnitModel], no_rf: int = 0) -> None:
    """Give each unit a receptive field, a polarity and a moving-bar response.

    Units alternate ON/OFF; units go in pairs, tuned and untuned in turn: tuned ones
    have a random preferred direction and a von Mises kappa in [1.5, 3], untuned ones
    respond to every direction alike. The last ``no_rf`` responsive units have no
    receptive field and do not respond to the bar.
    """
    responsive = [u for u in units if not u.silent]
    for i, unit in enumerate(units):
        major = float(rng.uniform(1.3, 2.0))
        unit.rf_center = (float(rng.uniform(3.5, 10.5)), float(rng.uniform(3.5, 10.5)))
        unit.rf_sigma = (major, major * float(rng.uniform(0.6, 0.9)))
        unit.rf_angle = float(rng.uniform(0, np.pi))
        unit.rf_sign = 1 if i % 2 == 0 else -1
        tuned = (i // 2) % 2 == 0
        unit.ds_preferred_deg = float(rng.uniform(0, 360)) if tuned else float("nan")
        unit.ds_kappa = float(rng.uniform(1.5, 3.0)) if tuned else 0.0
        unit.bar_peak_hz = TUNED_PEAK_HZ if tuned else UNTUNED_PEAK_HZ
    for unit in responsive[len(responsive) - no_rf :] if no_rf else []:
        unit.rf_sign, unit.bar_peak_hz = 0, 0.0
    for unit in units:
        weights = rf_weights(unit)
        unit.rf = tuple(int(v) for v in np.unravel_index(weights.argmax(), NOISE_SHAPE))


def frame_rates(unit: UnitModel, model: RecordingModel, base_hz: float = 8.0) -> np.ndarray:
    """Firing rate (Hz) of a unit during every display frame of the playlist."""
    rates = np.full(model.frame_times.size, base_hz)
    weights = rf_weights(unit)
    for movie in model.playlist:
        first = model.movie_start[movie.name]
        frames = slice(first, first + movie.n_frames)
        if movie.kind == "noise":
            contrast = model.movies[movie.name].astype(float) / 127.5 - 1.0
            spatial = unit.rf_sign * np.tensordot(contrast, weights, axes=2)
            drive = np.zeros(movie.n_frames)
            for lag, k in enumerate(TEMPORAL_KERNEL, start=1):
                drive[lag:] += k * spatial[:-lag]
            rates[frames] = NOISE_BASE_HZ * np.exp(NOISE_GAIN * drive)
        elif movie.kind == "flash" and movie.config:
            half = movie.config["trial_length_frame"] // 2
            on = np.zeros(movie.n_frames, bool)
            if unit.rf_sign:
                for s in trial_starts(movie.config):
                    window = (
                        slice(s, s + half) if unit.rf_sign > 0 else slice(s + half, s + 2 * half)
                    )
                    on[window] = True
            rates[frames] = np.where(on, FLASH_ON_HZ, base_hz / 2)
        elif movie.kind == "moving_bar" and movie.config:
            rates[frames] = _bar_rates(unit, movie)
    return rates


def _bar_rates(unit: UnitModel, movie: Movie) -> np.ndarray:
    config = movie.config
    rates = np.full(movie.n_frames, BAR_BASE_HZ)
    covered = bar_coverage(config, rf_point_px(unit))
    bursts = bar_tuning(unit, config["moving_bar"]["directions_deg"])
    # zip stops at the shorter: a mismatched description (bad-input data) lists extra trials
    for start, cover, burst in zip(trial_starts(config), covered, bursts, strict=False):
        span = rates[start : start + cover.size]
        span[cover[: span.size]] += burst
    return rates


def expected_bar_counts(
    unit: UnitModel, config: dict, margin_frames: int, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Planted truth: expected spikes per trial in the bar's passage over the RF centre +- margin.

    Returns the expected count of each trial and the trial's direction (degrees).
    """
    covered = bar_coverage(config, rf_point_px(unit))
    bursts = bar_tuning(unit, config["moving_bar"]["directions_deg"])
    counts = []
    for cover, burst in zip(covered, bursts, strict=True):
        frames = np.flatnonzero(cover)
        n_window = frames[-1] - frames[0] + 1 + 2 * margin_frames
        counts.append((BAR_BASE_HZ * n_window + burst * frames.size) / fps)
    return np.array(counts), np.asarray(config["moving_bar"]["directions_deg"], float)
