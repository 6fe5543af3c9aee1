"""Write a :class:`RecordingModel` as a CMCR/CMTR pair in the MCS CMOS-MEA layout McsPy reads.

The CMTR's ``/Acquisition`` is an external link to its CMCR (see
:mod:`nmbatch.mea.mcs_layout`). The sensor stream may cover only the start of the
recording (``sensor_samples``): the analysis reads no more of it than step 1 needs,
and the reader reports the recording's length from the analog stream.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from nmbatch.mea import mcs_layout as mcs
from nmbatch.mea.synthetic import (
    FS,
    WAVEFORM_OFFSETS,
    RecordingModel,
    SensorSynth,
    UnitModel,
    analog_channels,
    waveform_template,
)

WRITE_BLOCK = 2000


def write_recording(
    folder: Path,
    name: str,
    model: RecordingModel,
    link: str | None = None,
    sensor_samples: int | None = None,
):
    """Write ``<name>.cmcr`` and ``<name>.cmtr`` (its ``/Acquisition`` linking to ``link``).

    ``sensor_samples`` (default: all) is how much of the recording the sensor stream holds.
    """
    write_cmcr(folder / f"{name}.cmcr", name, model, sensor_samples)
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


def write_cmcr(path: Path, name: str, model: RecordingModel, sensor_samples: int | None = None):
    """Raw data: 65 x 65 int16 sensor frames written block by block, and two analog channels."""
    n_sensor = model.n_samples if sensor_samples is None else min(sensor_samples, model.n_samples)
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
        shape = (n_sensor, mcs.N_ROWS, mcs.N_COLS)
        data = f.create_dataset(
            mcs.SENSOR_DATA, shape, np.int16, chunks=(min(1000, n_sensor), *shape[1:])
        )
        mcs.tag(data, "Sensor Data", mcs.TYPE_SENSOR_DATA, "SensorData 1 1", rng)
        synth = SensorSynth(n_sensor, model.units, model.seed, block=WRITE_BLOCK)
        for a in range(0, n_sensor, WRITE_BLOCK):
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
