"""The stimulus folder: what each recording showed, and the files that describe it.

::

    playlist.csv          recording, movies    (movie names ';'-separated, in display order)
    movie_length.csv      movie, n_frames      (display frames of each movie)
    configs/<movie>.json  trial sections of a movie: start_frame, trial_length_frame,
                          repeat, and optionally group_count, group_gap_frame
    movies/<movie>.npy    the pixels of a dense-noise movie, (frames, height, width)

A movie without a config file has no trials (its spikes are still sectioned).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nmbatch.mea.errors import InputError

TRIAL_KEYS = ("start_frame", "trial_length_frame", "repeat")


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError(f"stimulus file not found: {path}")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_playlist(folder: Path, recording: str) -> list[str]:
    """Movie names shown during ``recording``, in order."""
    path = Path(folder) / "playlist.csv"
    for row in _rows(path):
        if row.get("recording", "").strip() == recording:
            movies = [m.strip() for m in row.get("movies", "").split(";") if m.strip()]
            if not movies:
                raise InputError(f"the playlist of {recording} in {path} is empty")
            return movies
    raise InputError(f"no playlist for {recording} in {path}")


def load_movie_lengths(folder: Path, movies: list[str]) -> dict[str, int]:
    """Frames of each of ``movies`` (all must be listed)."""
    path = Path(folder) / "movie_length.csv"
    try:
        lengths = {r["movie"].strip(): int(r["n_frames"]) for r in _rows(path)}
    except (KeyError, ValueError, AttributeError) as exc:
        raise InputError(f"{path} needs columns movie, n_frames (an integer): {exc}") from exc
    missing = sorted(set(movies) - set(lengths))
    if missing:
        raise InputError(f"no length for movie(s) {', '.join(missing)} in {path}")
    return {m: lengths[m] for m in movies}


def load_trial_config(folder: Path, movie: str) -> dict | None:
    """The movie's trial config, or None if it has none."""
    path = Path(folder) / "configs" / f"{movie}.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"trial config {path} is not valid JSON: {exc}") from exc
    missing = [k for k in TRIAL_KEYS if k not in config]
    if missing:
        raise InputError(f"trial config {path} lacks {', '.join(missing)}")
    return config


def load_movie(folder: Path, movie: str, n_frames: int) -> np.ndarray:
    """The movie's pixels (frames, height, width), checked against its listed length."""
    path = Path(folder) / "movies" / f"{movie}.npy"
    if not path.is_file():
        raise InputError(f"movie file not found: {path}")
    pixels = np.load(path, mmap_mode="r")
    if pixels.ndim != 3 or pixels.shape[0] != n_frames:
        raise InputError(
            f"movie {path} has shape {pixels.shape}, expected ({n_frames}, height, width)"
        )
    return pixels
