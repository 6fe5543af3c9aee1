"""Write synthetic CMCR/CMTR recordings, stimulus files and the mapping CSV (demo and test data).

Files follow the MCS CMOS-MEA layout that McsPy reads (see :mod:`nmbatch.mea.mcs_layout`);
the CMTR's ``/Acquisition`` is an external link to its CMCR. With ``bad_inputs``
the generator adds one tiny recording per kind of bad input, and returns which
stage must fail and a phrase the error message must contain.

Layout written under ``folder``::

    mapping.csv                 cmcr_path, cmtr_path, matched (paths relative to this folder)
    recordings/<name>.cmcr      raw sensor + analog data
    recordings/<name>.cmtr      spike sorting (units, peaks), /Acquisition -> the .cmcr
    stimuli/playlist.csv        recording, movies (';'-separated, in display order)
    stimuli/movie_length.csv    movie, n_frames
    stimuli/configs/<movie>.json  trial sections (start_frame, trial_length_frame, repeat, ...)
    stimuli/movies/<movie>.npy  dense-noise movies (frames, 15, 15) uint8
    demo.json                   the settings; written last, so a present file means complete
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from nmbatch.mea import mcs_layout as mcs
from nmbatch.mea.axon.planted import plant_axons
from nmbatch.mea.synthetic import (
    FS,
    WAVEFORM_OFFSETS,
    Movie,
    RecordingModel,
    SensorSynth,
    UnitModel,
    analog_channels,
    build_model,
    noise_movie,
    waveform_template,
)

NOISE_MOVIE = "perfect_dense_noise_15x15_60hz_demo"
FLASH_MOVIE = "flash_on_off_demo"
GRAY_MOVIE = "gray_demo"
SHORT_GRAY_MOVIE = "gray_short_demo"
FLASH_CONFIG = {
    "start_frame": 6,
    "trial_length_frame": 12,
    "repeat": 4,
    "group_count": 2,
    "group_gap_frame": 6,
}
WRITE_BLOCK = 2000
DEMO_VERSION = 2  # bump when the generator's output changes, so stale demos are rebuilt
ONH = (-25.0, 45.0)  # planted optic-nerve head (0-based electrodes, off the array): axons run to it

# Bad inputs: (defect, stage that must fail, phrase of the error message).
BAD_INPUTS = (
    ("missing-cmcr", "open_recording", "CMCR file not found"),
    ("missing-cmtr", "open_recording", "CMTR file not found"),
    ("broken-link", "open_recording", "link to its CMCR is broken"),
    ("truncated", "open_recording", "cannot be opened as HDF5"),
    ("not-hdf5", "open_recording", "not an HDF5 file"),
    ("no-playlist", "step2_section_time", "no playlist"),
)


@dataclass
class Demo:
    """What :func:`make_demo` wrote: paths, the planted truth, and the expected failures."""

    folder: Path
    csv: Path
    stimuli: Path
    models: dict[str, RecordingModel] = field(default_factory=dict)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def demo_playlist(noise_frames: int) -> list[Movie]:
    """Noise (for the STA), a flash movie with grouped trials, and gray (no trial config)."""
    flash_frames = 6 + 4 * 12 + 6 + 6
    return [
        Movie(NOISE_MOVIE, noise_frames, "noise"),
        Movie(FLASH_MOVIE, flash_frames, "flash", FLASH_CONFIG),
        Movie(GRAY_MOVIE, 12, "gray"),
    ]


def recording_name(index: int, month: int = 1) -> str:
    """A recording name in the MCS style, e.g. ``2024.01.17-11.15.41-Rec``."""
    return f"2024.{month:02d}.{10 + index:02d}-11.{15 + index:02d}.41-Rec"


def make_demo(
    folder: Path,
    n_recordings: int = 2,
    n_units: int = 6,
    noise_frames: int = 150,
    seed: int = 0,
    bad_inputs: bool = False,
) -> Demo:
    """Write ``n_recordings`` good recordings (+ bad ones) with stimuli and mapping CSV.

    The first recording has one silent unit (peaks, none included), the "unit
    without spikes" case. Noise frames drive the STA; with the flash and gray
    movies a recording lasts about ``(noise_frames + 78) / 60 + 0.2`` seconds.
    """
    folder = Path(folder)
    (folder / "recordings").mkdir(parents=True, exist_ok=True)
    demo = Demo(folder, folder / "mapping.csv", folder / "stimuli")
    rows: list[tuple[str, str, bool]] = []
    playlists: dict[str, list[Movie]] = {}
    movies = {NOISE_MOVIE: noise_movie(np.random.default_rng([seed, 99]), noise_frames)}
    for i in range(n_recordings):
        name = recording_name(i)
        playlist = demo_playlist(noise_frames)
        silent = 1 if i == 0 else 0
        model = build_model(seed + i, playlist, n_units, n_silent=silent, movies=movies)
        plant_axons(
            model.units, ONH, np.random.default_rng([seed + i, 12]), (mcs.N_ROWS, mcs.N_COLS)
        )
        write_recording(folder / "recordings", name, model)
        demo.models[name] = model
        playlists[name] = playlist
        rows.append((f"recordings/{name}.cmcr", f"recordings/{name}.cmtr", True))
    if bad_inputs:
        rows += _write_bad_inputs(folder, demo, playlists, seed)
    write_stimuli(demo.stimuli, playlists, movies)
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


def write_recording(folder: Path, name: str, model: RecordingModel, link: str | None = None):
    """Write ``<name>.cmcr`` and ``<name>.cmtr`` (its ``/Acquisition`` linking to ``link``)."""
    write_cmcr(folder / f"{name}.cmcr", name, model)
    write_cmtr(folder / f"{name}.cmtr", name, model, link or f"{name}.cmcr")


def _root_attrs(f: h5py.File, name: str, kind: str, program: str, rng: np.random.Generator):
    mcs.tag(f, kind, mcs.TYPE_FILE, name, rng)
    f.attrs["FileVersion"] = mcs.number(1, "<i4")
    date, time = name.split("-")[:2]
    f.attrs["DateTime"] = mcs.text(f"{date.replace('.', '-')} {time.replace('.', ':')}")
    f.attrs["ProgramName"] = mcs.text(program)
    f.attrs["ProgramVersion"] = mcs.text("2.6.1 (nmbatch synthetic)")


def _stream_meta(rows: Sequence[tuple[int, str, str]], exponent: int) -> np.ndarray:
    meta = np.zeros(len(rows), mcs.STREAM_META_DTYPE)
    for i, (channel, label, unit) in enumerate(rows):
        meta[i] = (channel, 1, 1, label, "Int", unit, exponent, 0, round(1e6 / FS), 1, 16)
    return meta


def write_cmcr(path: Path, name: str, model: RecordingModel):
    """Raw data: 65 x 65 int16 sensor frames written block by block, and two analog channels."""
    rng = np.random.default_rng([model.seed, 10])
    tmp = path.with_name(path.name + ".part")
    with h5py.File(tmp, "w") as f:
        _root_attrs(f, f"{name}.cmcr", "CMOS-MEA Raw Data", "CMOS-MEA-Control", rng)
        f.attrs["LB.RecordingDuration"] = mcs.number(round(model.n_samples * 1e6 / FS))
        acq = f.create_group(mcs.ACQUISITION)
        mcs.tag(acq, "Acquisition", mcs.TYPE_ACQUISITION, "Acquisition", rng)

        stream = f.create_group(mcs.SENSOR_STREAM)
        mcs.tag(stream, "Sensor Stream", mcs.TYPE_SENSOR_STREAM, "Sensor Data", rng)
        stream.attrs["SubType"] = mcs.text("Sensor")
        meta = f.create_dataset(mcs.SENSOR_META, data=_stream_meta([(0, "Sensor", "V")], -9))
        mcs.tag(meta, "Sensor Meta", mcs.TYPE_SENSOR_META, "SensorMeta", rng)
        shape = (model.n_samples, mcs.N_ROWS, mcs.N_COLS)
        data = f.create_dataset(mcs.SENSOR_DATA, shape, np.int16, chunks=(1000, *shape[1:]))
        mcs.tag(data, "Sensor Data", mcs.TYPE_SENSOR_DATA, "SensorData 1 1", rng)
        synth = SensorSynth(model.n_samples, model.units, model.seed, block=WRITE_BLOCK)
        for a in range(0, model.n_samples, WRITE_BLOCK):
            data[a : a + WRITE_BLOCK] = synth[a : a + WRITE_BLOCK]

        stream = f.create_group(mcs.CHANNEL_STREAM)
        mcs.tag(stream, "Channel Stream", mcs.TYPE_CHANNEL_STREAM, "Analog Data", rng)
        stream.attrs["SubType"] = mcs.text("Analog")
        rows = [(0, "Light reference", "V"), (1, "Frame pulses", "V")]
        meta = f.create_dataset(mcs.CHANNEL_META, data=_stream_meta(rows, -6))
        mcs.tag(meta, "Channel Meta", mcs.TYPE_CHANNEL_META, "ChannelMeta", rng)
        analog = f.create_dataset(mcs.CHANNEL_DATA, data=analog_channels(model, model.seed))
        mcs.tag(analog, "Channel Data", mcs.TYPE_CHANNEL_DATA, "ChannelData 1", rng)
    os.replace(tmp, path)


def _peaks(unit: UnitModel, rng: np.random.Generator) -> np.ndarray:
    times = np.concatenate([unit.spikes, unit.excluded])
    order = np.argsort(times, kind="stable")
    peaks = np.zeros(times.size, mcs.PEAKS_DTYPE)
    peaks["Timestamp"] = np.rint(times[order] * 1e6 / FS).astype(np.int64)
    peaks["IncludePeak"] = np.concatenate(
        [np.ones(unit.spikes.size), np.zeros(unit.excluded.size)]
    )[order]
    soma = waveform_template(unit.amplitude, unit.spread)[:, 4, 4]
    cutout = soma[np.searchsorted(WAVEFORM_OFFSETS, -2) :][: mcs.CUTOUT_SAMPLES]
    noise = rng.normal(0, 3.7, (times.size, mcs.CUTOUT_SAMPLES))
    for i in range(mcs.CUTOUT_SAMPLES):
        peaks[f"Cutout {i}"] = cutout[i] + noise[:, i]
    peaks["PeakAmplitude"] = soma.min() + noise[:, 2]
    return peaks


def _unit_row(unit: UnitModel, rng: np.random.Generator) -> np.ndarray:
    row = np.zeros(1, mcs.UNIT_DTYPE)
    ids = (unit.unit_id, mcs.sensor_id(unit.row, unit.col), 1, unit.row, unit.col)
    for name, value in zip(mcs.UNIT_ID_FIELDS, ids, strict=True):
        row[name] = value
    for name in mcs.UNIT_MEASURES:
        row[name] = rng.uniform(0.5, 5.0)
    row["NoiseStd"] = 3.7
    row["SNR"] = unit.amplitude / 3.7
    row["IcaConverged"] = 1
    return row


def write_cmtr(path: Path, name: str, model: RecordingModel, link: str):
    """Sorting results: one ``Unit N`` group per unit with its Peaks and Unit Info tables."""
    rng = np.random.default_rng([model.seed, 11])
    with h5py.File(path, "w") as f:
        _root_attrs(f, f"{name}.cmtr", "CMOS-MEA Processed Data", "CMOS-MEA-Tools", rng)
        f[mcs.ACQUISITION] = h5py.ExternalLink(link, "/" + mcs.ACQUISITION)
        sorter = f.create_group(mcs.SPIKE_SORTER)
        mcs.tag(sorter, "Spike Sorter", mcs.TYPE_SPIKE_SORTER, "Spike Sorter", rng)
        rows = [_unit_row(u, rng) for u in model.units]
        table = sorter.create_dataset("Units", data=np.concatenate(rows))
        mcs.tag(table, "Units", mcs.TYPE_UNITS_TABLE, "Units", rng)
        for unit, row in zip(model.units, rows, strict=True):
            group = sorter.create_group(f"Unit {unit.unit_id}")
            mcs.tag(group, "Unit", mcs.TYPE_SORTER_UNIT, f"Unit {unit.unit_id}", rng)
            group.attrs["UnitID"] = mcs.number(unit.unit_id, "<i4")
            group.attrs["SensorID"] = mcs.number(mcs.sensor_id(unit.row, unit.col), "<i4")
            peaks = group.create_dataset("Peaks", data=_peaks(unit, rng))
            mcs.tag(peaks, "Peaks", mcs.TYPE_PEAKS, "Peaks", rng)
            info = group.create_dataset("Unit Info", data=row)
            mcs.tag(info, "Unit Info", mcs.TYPE_UNIT_INFO, "Unit Info", rng)


def write_stimuli(folder: Path, playlists: dict[str, list[Movie]], pixels: dict[str, np.ndarray]):
    """Playlist and movie-length tables, trial configs and the noise movies' pixels."""
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "movies").mkdir(parents=True, exist_ok=True)
    movies: dict[str, Movie] = {}
    with open(folder / "playlist.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "movies"])
        for name, playlist in playlists.items():
            writer.writerow([name, ";".join(m.name for m in playlist)])
            movies.update({m.name: m for m in playlist})
    with open(folder / "movie_length.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["movie", "n_frames"])
        writer.writerows((m.name, m.n_frames) for m in movies.values())
    for movie in movies.values():
        if movie.config:
            (folder / "configs" / f"{movie.name}.json").write_text(json.dumps(movie.config))
    for name, frames in pixels.items():
        np.save(folder / "movies" / f"{name}.npy", frames)


def _write_bad_inputs(
    folder: Path, demo: Demo, playlists: dict[str, list[Movie]], seed: int
) -> list[tuple[str, str, bool]]:
    """One tiny recording per defect (and an unmatched row); returns their CSV rows."""
    recordings = folder / "recordings"
    tiny = [Movie(SHORT_GRAY_MOVIE, 6, "gray")]
    rows = []
    for k, (defect, stage, phrase) in enumerate(BAD_INPUTS + (("unmatched", "", ""),)):
        name = recording_name(k, month=2)
        model = build_model(seed + 100 + k, tiny, n_units=2, tail_s=0.05)
        cmcr, cmtr = recordings / f"{name}.cmcr", recordings / f"{name}.cmtr"
        write_recording(
            recordings, name, model, "moved-away.cmcr" if defect == "broken-link" else None
        )
        if defect == "missing-cmcr":
            cmcr.unlink()
        elif defect == "missing-cmtr":
            cmtr.unlink()
        elif defect == "truncated":
            os.truncate(cmtr, cmtr.stat().st_size // 2)
        elif defect == "not-hdf5":
            cmcr.write_text("this is not an HDF5 file\n")
        if defect != "no-playlist":
            playlists[name] = tiny
        if defect == "unmatched":
            demo.unmatched.append(name)
        else:
            demo.failures[name] = (stage, phrase)
        rows.append((f"recordings/{name}.cmcr", f"recordings/{name}.cmtr", defect != "unmatched"))
    return rows
