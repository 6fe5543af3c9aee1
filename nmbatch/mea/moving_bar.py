"""The moving-bar stimulus: its description in the stimulus folder, and when the bar passes.

A moving-bar movie's trial config (``configs/<movie>.json``, as for any movie:
``start_frame``, ``trial_length_frame``, ``repeat``) has a ``moving_bar`` object::

    directions_deg      the bar's direction in each trial, in display order (repeat values)
    speed_px_per_frame  how far the bar moves per display frame
    bar_width_px        the bar's extent along its motion
    start_distance_px   at each trial's first frame, how far the bar's leading edge is
                        behind the field centre
    field_size_px       [width, height] of the stimulus field
    bar_length_px       (optional, recorded) the bar's extent across its motion; the
                        bar is taken to span the field

Geometry in stimulus pixels: x along the noise movie's columns, y along its rows, the
field centre at ``field_size_px / 2``; direction theta moves the bar along
``(cos theta, sin theta)``. A point at signed distance ``d`` from the centre along the
motion is under the bar from trial frame ``ceil((d + D) / v)`` (the leading edge
arrives) to ``ceil((d + D + w) / v)`` (the trailing edge has left), D the start
distance, v the speed, w the width. Directions must be evenly spaced around the circle
and each shown equally often.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmbatch.mea.errors import InputError
from nmbatch.mea.frames import trial_frames
from nmbatch.mea.stimuli import load_trial_config

BAR_KEYS = (
    "directions_deg",
    "speed_px_per_frame",
    "bar_width_px",
    "start_distance_px",
    "field_size_px",
)


@dataclass(frozen=True)
class MovingBar:
    """A checked moving-bar description; trials in frames from the movie's first frame."""

    movie: str
    trials: np.ndarray  # (trials, 2) [start, end) frames
    directions_deg: np.ndarray  # (trials,)
    speed: float
    width: float
    start_distance: float
    field: tuple[float, float]

    @property
    def center(self) -> tuple[float, float]:
        return self.field[0] / 2, self.field[1] / 2

    def passage(self, x: float, y: float, margin: int) -> np.ndarray:
        """Frames [first, end) of each trial's passage over (x, y), widened by ``margin``."""
        theta = np.deg2rad(self.directions_deg)
        along = (x - self.center[0]) * np.cos(theta) + (y - self.center[1]) * np.sin(theta)
        arrive = np.ceil((along + self.start_distance) / self.speed).astype(np.int64)
        leave = np.ceil((along + self.start_distance + self.width) / self.speed).astype(np.int64)
        return np.stack([arrive - margin, leave + margin], axis=1) + self.trials[:, :1]


def load_moving_bar(folder: Path, movie: str, n_frames: int) -> MovingBar:
    """The checked description of ``movie`` (``n_frames`` long, as the playlist shows it)."""
    path = Path(folder) / "configs" / f"{movie}.json"
    config = load_trial_config(folder, movie)
    if config is None or not isinstance(config.get("moving_bar"), dict):
        raise InputError(f"moving-bar movie {movie} has no description ('moving_bar' in {path})")
    bar = config["moving_bar"]
    missing = [k for k in BAR_KEYS if k not in bar]
    if missing:
        raise InputError(f"the moving-bar description in {path} lacks {', '.join(missing)}")
    try:
        trials = trial_frames(config, n_frames)
    except ValueError as exc:
        raise InputError(
            f"the moving-bar description in {path} does not match the playlist: {exc} "
            "(movie_length.csv)"
        ) from exc
    directions = np.asarray(bar["directions_deg"], float) % 360
    if directions.size != len(trials):
        raise InputError(
            f"the moving-bar description in {path} lists {directions.size} directions for "
            f"its {len(trials)} trials"
        )
    _check_directions(directions, path)
    speed, width = float(bar["speed_px_per_frame"]), float(bar["bar_width_px"])
    distance, field = float(bar["start_distance_px"]), tuple(map(float, bar["field_size_px"]))
    if speed <= 0 or width <= 0 or len(field) != 2:
        raise InputError(f"{path}: speed and width must be positive, field_size_px [w, h]")
    travel = distance + np.hypot(*field) / 2 + width
    length = int(config["trial_length_frame"])
    if travel > speed * length:
        raise InputError(
            f"{path}: the bar does not cross the field within a trial ({travel:.0f} px to "
            f"go at {speed} px/frame in {length} frames)"
        )
    return MovingBar(movie, trials, directions, speed, width, distance, field)


def _check_directions(directions: np.ndarray, path: Path) -> None:
    distinct, counts = np.unique(directions, return_counts=True)
    step = 360 / distinct.size
    spaced = np.allclose((distinct - distinct[0]) % 360, step * np.arange(distinct.size))
    if distinct.size < 2 or not spaced or (counts != counts[0]).any():
        raise InputError(
            f"the moving-bar directions in {path} must be evenly spaced and each shown "
            f"equally often (found {dict(zip(distinct.tolist(), counts.tolist(), strict=True))})"
        )
