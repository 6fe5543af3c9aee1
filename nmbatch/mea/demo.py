"""Write synthetic recordings with stimuli, sheet export, label files and mapping CSV (demo data).

Recordings are CMCR/CMTR pairs in the MCS layout (:mod:`nmbatch.mea.mcs_writer`). Their
sensor stream covers only the first ``sensor_seconds`` (what step 1 reads in a demo), so
a recording of almost three minutes (a two-minute dense-noise movie for the
receptive fields, a moving bar in 8 directions for direction selectivity) takes about
110 MB. With
``bad_inputs`` the generator adds one tiny recording per kind of bad input
(:mod:`nmbatch.mea.demo_bad`) and says which stage must fail, or which warning must
be raised, with a phrase of the message.

Layout written under ``folder``::

    mapping.csv                 cmcr_path, cmtr_path, matched (paths relative to this folder)
    gsheet_table.csv            the lab sheet's export: one row per recording (filename, ...)
    labels/labels.csv           cell-type labels: recording, unit, label
    labels/<name>.pkl           a legacy label pickle (a DataFrame of unit, label)
    recordings/<name>.cmcr      raw sensor + analog data
    recordings/<name>.cmtr      spike sorting (units, peaks), /Acquisition -> the .cmcr
    stimuli/playlist.csv        recording, movies (';'-separated, in display order)
    stimuli/movie_length.csv    movie, n_frames
    stimuli/configs/<movie>.json  trial sections (start_frame, trial_length_frame, repeat,
                                ...); the moving bar's also its directions and geometry
    stimuli/movies/<movie>.npy  dense-noise movies (frames, 15, 15) uint8
    demo.json                   the settings; written last, so a present file means complete
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nmbatch.mea.axon.planted import plant_axons
from nmbatch.mea.demo_bad import write_bad_inputs
from nmbatch.mea.demo_files import (
    LABELS,
    Demo,
    recording_name,
    sheet_row,
    write_labels,
    write_sheet,
    write_stimuli,
)
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS
from nmbatch.mea.mcs_writer import write_recording
from nmbatch.mea.synthetic import FS, build_model
from nmbatch.mea.synthetic_visual import Movie, moving_bar_config, noise_movie

NOISE_MOVIE = "perfect_dense_noise_15x15_60hz_demo"
FLASH_MOVIE = "flash_on_off_demo"
BAR_MOVIE = "moving_bar_8dir_demo"
GRAY_MOVIE = "gray_demo"
FLASH_CONFIG = {
    "start_frame": 6,
    "trial_length_frame": 12,
    "repeat": 4,
    "group_count": 2,
    "group_gap_frame": 6,
}
DEMO_VERSION = 3  # bump when the generator's output changes, so stale demos are rebuilt
ONH = (-25.0, 45.0)  # planted optic-nerve head (0-based electrodes, off the array): axons run to it


def demo_playlist(noise_frames: int, bar_repeats: int, seed: int = 0) -> list[Movie]:
    """Noise (STA), flash trials, the moving bar (if ``bar_repeats``), gray (no config)."""
    flash_frames = 6 + 4 * 12 + 6 + 6
    playlist = [
        Movie(NOISE_MOVIE, noise_frames, "noise"),
        Movie(FLASH_MOVIE, flash_frames, "flash", FLASH_CONFIG),
    ]
    if bar_repeats:
        config = moving_bar_config(bar_repeats, seed=seed)
        frames = config["start_frame"] + config["repeat"] * config["trial_length_frame"] + 10
        playlist.append(Movie(BAR_MOVIE, frames, "moving_bar", config))
    return playlist + [Movie(GRAY_MOVIE, 12, "gray")]


def make_demo(
    folder: Path,
    n_recordings: int = 2,
    n_units: int = 12,
    noise_frames: int = 7200,
    bar_repeats: int = 4,
    sensor_seconds: float = 0.5,
    seed: int = 0,
    bad_inputs: bool = False,
    unit_spacing: int = 8,
) -> Demo:
    """Write ``n_recordings`` good recordings (+ bad ones) with stimuli, sheet, labels, CSV.

    The first recording has one silent unit (peaks, none included), the "unit
    without spikes" case; every recording has one unit without a receptive field
    (its STA is noise, too noisy to fit) that ignores the bar. A recording lasts
    about ``(noise_frames + 78 + 650 * bar_repeats) / 60`` seconds. Somas are at least
    ``unit_spacing`` electrodes apart (150 units need about 3).
    """
    folder = Path(folder)
    (folder / "recordings").mkdir(parents=True, exist_ok=True)
    demo = Demo(folder, folder / "mapping.csv", folder / "stimuli")
    rows: list[tuple[str, str, bool]] = []
    playlists: dict[str, list[Movie]] = {}
    movies = {NOISE_MOVIE: noise_movie(np.random.default_rng([seed, 99]), noise_frames)}
    for i in range(n_recordings):
        name = recording_name(i)
        playlist = demo_playlist(noise_frames, bar_repeats, seed)
        silent = 1 if i == 0 else 0
        model = build_model(
            seed + i, playlist, n_units, silent, movies=movies, n_no_rf=1, spacing=unit_spacing
        )
        plant_axons(model.units, ONH, np.random.default_rng([seed + i, 12]), (N_ROWS, N_COLS))
        write_recording(
            folder / "recordings", name, model, sensor_samples=round(sensor_seconds * FS)
        )
        demo.models[name] = model
        playlists[name] = playlist
        rows.append((f"recordings/{name}.cmcr", f"recordings/{name}.cmtr", True))
        demo.sheet_rows[name] = sheet_row(name, i)
        demo.labels[name] = {u.unit_id: LABELS[u.unit_id % 4] for u in model.units[:-1]}
    if bad_inputs:
        rows += write_bad_inputs(demo, playlists, seed)
    write_stimuli(demo.stimuli, playlists, movies)
    write_sheet(demo)
    write_labels(demo)
    with open(demo.csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cmcr_path", "cmtr_path", "matched"])
        writer.writerows((a, b, "True" if m else "False") for a, b, m in rows)
    return demo


def ensure_demo(folder: Path, **settings) -> Demo:
    """Return the demo in ``folder``, generating it only if absent or made with other settings."""
    folder = Path(folder)
    marker = folder / "demo.json"
    wanted = {"version": DEMO_VERSION, **settings}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return Demo(folder, folder / "mapping.csv", folder / "stimuli")
    demo = make_demo(folder, **settings)
    marker.write_text(json.dumps(wanted))
    return demo
