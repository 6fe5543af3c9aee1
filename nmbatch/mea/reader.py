"""Open a CMCR/CMTR pair with McsPy, safely for many recordings in one worker process.

Importing this module makes McsPy work on numpy >= 2.4, whose ``int()`` no longer
accepts one-element arrays (McsPy calls it on ``UnitID``, ``SensorID`` and
``SourceID`` attributes): ``int`` inside ``McsPy.McsCMOSMEA`` is shadowed by a
version that unwraps them. Site-packages is not edited; patching twice is a no-op.

McsPy keeps some state on classes (``Acquisition`` sets its stream lists on the
class, so opening a second file changes what the first file's lists return).
:class:`RawRecording` never uses those lists: it reaches every stream through
instance attributes (``data.Acquisition.Sensor_Data.SensorData_1_1``) and keeps
its own references, so recordings opened one after another or side by side in
one process do not see each other's data. McsPy's root object closes its file
when garbage-collected; :class:`RawRecording` holds it until :meth:`close`.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from McsPy import McsCMOSMEA

from nmbatch.mea import mcs_layout as mcs
from nmbatch.mea.errors import InputError

log = logging.getLogger(__name__)


class _IntMeta(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, builtins.int)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, builtins.int)


class UnwrappingInt(metaclass=_IntMeta):
    """``int`` that also accepts one-element arrays; ``isinstance(x, UnwrappingInt)`` is int's."""

    def __new__(cls, value: Any = 0, *args: Any) -> int:
        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
        return builtins.int(value, *args)


def patch_mcspy() -> None:
    """Shadow ``int`` in ``McsPy.McsCMOSMEA`` (idempotent)."""
    if McsCMOSMEA.__dict__.get("int") is not UnwrappingInt:
        McsCMOSMEA.int = UnwrappingInt


patch_mcspy()


@dataclass
class SortedUnit:
    """One unit of the spike sorter: identity, position and included spike samples."""

    unit_id: int
    sensor_id: int
    row: int
    col: int
    spikes: np.ndarray
    measures: dict[str, float]


def _open_mcs(path: Path, kind: str):
    """Open an MCS file with McsPy after checks that turn McsPy's failures into clear errors."""
    if not path.is_file():
        raise InputError(f"{kind} file not found: {path}")
    if not h5py.is_hdf5(path):
        raise InputError(f"{kind} file is not an HDF5 file: {path}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("ID.Type", "FileVersion") if k not in f.attrs]
    except OSError as exc:
        raise InputError(
            f"{kind} file cannot be opened as HDF5 (truncated?): {path}: {exc}"
        ) from exc
    if missing:
        raise InputError(
            f"{kind} file {path} is not an MCS CMOS-MEA file (no {missing} at its root)"
        )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        data = McsCMOSMEA.McsData(str(path))
    if printed.getvalue().strip():
        log.debug("McsPy, opening %s: %s", path, printed.getvalue().strip())
    return data


def _child(group: Any, name: str, where: str):
    """A McsPy child by its McsPy name, or an InputError naming what is missing."""
    try:
        return getattr(group, name)
    except AttributeError:
        raise InputError(f"{where} has no '{name}'") from None


class RawRecording:
    """A CMCR (raw data) and its CMTR (spike sorting), open for reading.

    Raises
    ------
    InputError
        A file is missing, not HDF5, truncated, not an MCS file, lacks a stream,
        or the CMTR's ``/Acquisition`` link to its CMCR is broken.
    """

    def __init__(self, cmcr: Path, cmtr: Path):
        self.cmcr_path, self.cmtr_path = Path(cmcr), Path(cmtr)
        self._files: list[Any] = []
        try:
            self._cmcr = self._open(self.cmcr_path, "CMCR")
            self._cmtr = self._open(self.cmtr_path, "CMTR")
            self._check_link()
            acquisition = _child(self._cmcr, "Acquisition", f"CMCR {cmcr}")
            sensor = _child(acquisition, "Sensor_Data", f"CMCR {cmcr} /Acquisition")
            self._sensor = _child(sensor, "SensorData_1_1", f"CMCR {cmcr} sensor stream")
            meta = _child(sensor, "SensorMeta", f"CMCR {cmcr} sensor stream")[()]
            analog = _child(acquisition, "Analog_Data", f"CMCR {cmcr} /Acquisition")
            self._analog = _child(analog, "ChannelData_1", f"CMCR {cmcr} analog stream")
        except BaseException:
            self.close()
            raise
        if self._sensor.ndim != 3:
            self.close()
            raise InputError(f"CMCR {cmcr} sensor data has shape {self._sensor.shape}")
        self.sampling_rate = 1e6 / float(meta["Tick"][0])

    def _open(self, path: Path, kind: str):
        data = _open_mcs(path, kind)
        self._files.append(data)
        return data

    def _check_link(self) -> None:
        link = self._cmtr.get(mcs.ACQUISITION, getlink=True)
        if not isinstance(link, h5py.ExternalLink):
            return
        try:
            self._cmtr[mcs.ACQUISITION]
        except KeyError:
            raise InputError(
                f"the CMTR's /Acquisition link to its CMCR is broken: it names "
                f"{link.filename!r}, which cannot be opened from {self.cmtr_path.parent}"
            ) from None
        if Path(link.filename.replace("\\", "/")).name != self.cmcr_path.name:
            log.warning("%s links to %s, not to %s", self.cmtr_path, link.filename, self.cmcr_path)

    @property
    def n_samples(self) -> int:
        """Samples of the recording: the length of its analog stream (frame pulses)."""
        return int(self._analog.shape[1])

    @property
    def n_sensor_samples(self) -> int:
        """Samples of sensor data; a CMCR may hold sensor data for only part of the recording."""
        return int(self._sensor.shape[0])

    @property
    def sensor_shape(self) -> tuple[int, int]:
        return int(self._sensor.shape[1]), int(self._sensor.shape[2])

    @property
    def n_analog_channels(self) -> int:
        return int(self._analog.shape[0])

    def read_sensor(self, start: int, stop: int) -> np.ndarray:
        """Sensor frames ``[start, stop)`` as (samples, rows, cols) int16."""
        out = np.empty((stop - start, *self.sensor_shape), self._sensor.dtype)
        self._sensor.read_direct(out, np.s_[start:stop])
        return out

    def read_analog(self, channel: int, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of one analog channel."""
        return self._analog[channel, start:stop]

    def units(self) -> list[SortedUnit]:
        """Every unit of the spike sorter, with spikes where IncludePeak == 1 as sample indices."""
        sorter = _child(self._cmtr, "Spike_Sorter", f"CMTR {self.cmtr_path}")
        units = []
        for unit in sorter.get_units_by_id():
            attrs = unit.attributes
            sensor = int(attrs["SensorID"])
            row, col = mcs.sensor_position(sensor)
            stamps = unit.get_peaks_timestamps() if unit.Peaks.shape[0] else np.zeros(0)
            spikes = np.sort(np.rint(stamps * self.sampling_rate / 1e6).astype(np.int64))
            measures = {}
            if unit.ischild("Unit Info"):
                measures = {m: float(unit.get_measure(m)) for m in unit.get_measures()}
            units.append(SortedUnit(int(attrs["UnitID"]), sensor, row, col, spikes, measures))
        return units

    def root_attributes(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Root attributes of the CMCR and the CMTR, decoded by McsPy."""
        return dict(self._cmcr.attributes), dict(self._cmtr.attributes)

    def close(self) -> None:
        """Close both files (McsPy would only close them when garbage-collected)."""
        for data in self._files:
            data.h5_file.close()
        self._files.clear()

    def __enter__(self) -> RawRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
