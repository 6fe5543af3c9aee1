"""Names, type ids and record layouts of MCS CMOS-MEA files (CMCR raw data, CMTR sorting results).

McsPy picks the Python class of every group and dataset from its ``ID.TypeID``
attribute (the GUIDs of ``McsPy.McsHdf5Types``) and walks only objects that carry
the four ``ID.*`` attributes, so the writer in :mod:`nmbatch.mea.demo` tags every
object with :func:`tag`. Types McsPy does not list (the Peaks and Unit Info tables)
get fixed GUIDs of our own: McsPy returns plain h5py objects for unknown types.
"""

from __future__ import annotations

import uuid

import h5py
import numpy as np

N_ROWS = 65
N_COLS = 65

# Type GUIDs McsPy maps to its classes (McsPy.McsHdf5Types.SUPPORTED_TYPES).
TYPE_FILE = "cabb6cdd-47e0-417a-8e04-5664cbbc449b"
TYPE_ACQUISITION = "650d88ce-9f24-4b20-ac2b-254defd12761"
TYPE_CHANNEL_STREAM = "9217aeb4-59a0-4d7f-bdcd-0371c9fd66eb"
TYPE_CHANNEL_META = "9e8ac9cd-5571-4ee5-bbfa-8e9d9c436daa"
TYPE_CHANNEL_DATA = "5efe7932-dcfe-49ff-ba53-25accff5d622"
TYPE_SENSOR_STREAM = "15e5a1fe-df2f-421b-8b60-23eeb2213c45"
TYPE_SENSOR_META = "ab2aa189-2e72-4148-a2ef-978119223412"
TYPE_SENSOR_DATA = "49da47df-f397-4121-b5da-35317a93e705"
TYPE_SPIKE_SORTER = "7263d1b7-f57a-42de-8f51-5d6326d22f2a"
TYPE_SORTER_UNIT = "0e5a97df-9de0-4a22-ab8c-54845c1ff3b9"

_OWN_NAMESPACE = uuid.UUID("6f1c1f4e-3b2a-4c55-9a57-0d6c3f1e2a10")
TYPE_UNITS_TABLE = str(uuid.uuid5(_OWN_NAMESPACE, "Spike Sorter/Units"))
TYPE_PEAKS = str(uuid.uuid5(_OWN_NAMESPACE, "Spike Sorter/Unit/Peaks"))
TYPE_UNIT_INFO = str(uuid.uuid5(_OWN_NAMESPACE, "Spike Sorter/Unit/Unit Info"))

# HDF5 paths.
ACQUISITION = "Acquisition"
SENSOR_STREAM = "Acquisition/Sensor Data"
SENSOR_DATA = "Acquisition/Sensor Data/SensorData 1 1"
SENSOR_META = "Acquisition/Sensor Data/SensorMeta"
CHANNEL_STREAM = "Acquisition/Analog Data"
CHANNEL_DATA = "Acquisition/Analog Data/ChannelData 1"
CHANNEL_META = "Acquisition/Analog Data/ChannelMeta"
SPIKE_SORTER = "Spike Sorter"

UNIT_ID_FIELDS = ("UnitID", "SensorID", "RoiID", "Row", "Column")
UNIT_MEASURES = (
    "SDScore",
    "AmplitudeSD",
    "RSTD",
    "Separability",
    "IsoINN",
    "IsoIBg",
    "NoiseStd",
    "SNR",
    "Skewness",
    "Kurtosis",
    "IcaConverged",
    "IcaIterations",
)
# McsPy reads unit quality measures as the fields after the first five.
UNIT_DTYPE = np.dtype(
    [(name, "<i4") for name in UNIT_ID_FIELDS] + [(name, "<f8") for name in UNIT_MEASURES]
)
CUTOUT_SAMPLES = 8
# McsPy reads cutouts as the fields after Timestamp, PeakAmplitude and IncludePeak.
PEAKS_DTYPE = np.dtype(
    [("Timestamp", "<i8"), ("PeakAmplitude", "<f4"), ("IncludePeak", "u1")]
    + [(f"Cutout {i}", "<f4") for i in range(CUTOUT_SAMPLES)]
)
STREAM_META_DTYPE = np.dtype(
    [
        ("ChannelID", "<i4"),
        ("GroupID", "<i4"),
        ("RegionID", "<i4"),
        ("Label", "S32"),
        ("RawDataType", "S16"),
        ("Unit", "S8"),
        ("Exponent", "<i4"),
        ("ADZero", "<i4"),
        ("Tick", "<i8"),
        ("ConversionFactor", "<i8"),
        ("ADCBits", "<i4"),
    ]
)


def sensor_id(row: int, col: int) -> int:
    """MCS sensor id of a 1-based (row, col): ``65 * (col - 1) + row``."""
    return N_ROWS * (col - 1) + row


def sensor_position(sensor: int) -> tuple[int, int]:
    """1-based (row, col) of an MCS sensor id (inverse of :func:`sensor_id`)."""
    return (sensor - 1) % N_ROWS + 1, (sensor - 1) // N_ROWS + 1


def tag(obj: h5py.HLObject, type_name: str, type_id: str, instance: str, rng: np.random.Generator):
    """Give an HDF5 object the ``ID.*`` attributes McsPy needs to walk it."""
    obj.attrs["ID.Type"] = text(type_name)
    obj.attrs["ID.TypeID"] = text(type_id)
    obj.attrs["ID.Instance"] = text(instance)
    obj.attrs["ID.InstanceID"] = text(str(uuid.UUID(bytes=rng.bytes(16), version=4)))


def text(value: str) -> np.bytes_:
    """A text attribute the MCS way: fixed-length bytes (h5py reads them back as bytes)."""
    return np.bytes_(value.encode())


def number(value: float | int, dtype: str = "<i8") -> np.ndarray:
    """A numeric attribute the MCS way: a one-element array."""
    return np.array([value], dtype=dtype)
