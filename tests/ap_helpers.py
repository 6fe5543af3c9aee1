"""Shared by the AP-tracking tests: units with planted axons, written as steps 1 and 6 do."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import yaml

from nmbatch.mea import output
from nmbatch.mea.axon.planted import axon_toward
from nmbatch.mea.axon.run_settings import DEMO_MODEL
from nmbatch.mea.axon.training_data import SHAPE, SyntheticUnit, synthetic_unit

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())


def converging_units(seed: int, n_units: int, onh: tuple[float, float]) -> list[SyntheticUnit]:
    """Units on distinct electrodes; three of every four with an axon running to ``onh``."""
    rng = np.random.default_rng([seed, 30])
    somas: list[tuple[int, int]] = []
    while len(somas) < n_units:
        soma = tuple(int(v) for v in rng.integers(6, SHAPE[0] - 6, 2))
        if all(max(abs(soma[0] - r), abs(soma[1] - c)) >= 6 for r, c in somas):
            somas.append(soma)
    units = []
    for i, soma in enumerate(somas):
        amplitude = float(rng.uniform(80.0, 160.0))
        axon = None
        if i % 4 != 3:
            axon = axon_toward(rng, soma, onh, SHAPE, amplitude * float(rng.uniform(0.1, 0.2)))
        units.append(synthetic_unit(rng, soma, axon, amplitude, 1.3, float(rng.uniform(0.4, 1.2))))
    return units


def soma_centre(image: np.ndarray) -> tuple[int, int]:
    """What step 6 reports: the electrode with the largest peak-to-peak amplitude."""
    ptp = np.ptp(image, axis=0)
    return tuple(int(v) for v in np.unravel_index(ptp.argmax(), ptp.shape))


def write_soma_geometry(unit: h5py.Group) -> None:
    """Step 6's ``soma_geometry`` group (centre attrs and the ptp map) for one unit."""
    image = unit["eimage_sta"][()]
    row, col = soma_centre(image)
    group = unit.create_group("soma_geometry")
    group.attrs.update(center_row=row, center_col=col)
    group.create_dataset("ptp_map", data=np.ptp(image, axis=0))


def write_units(path: Path, units: list[SyntheticUnit], without_image: int = 0) -> None:
    """An output file with steps 1 and 6 done: eimage_sta and soma_geometry per unit.

    ``without_image`` extra units have no spikes (no eimage_sta, no soma geometry).
    """
    with h5py.File(path, "w") as f:
        group = f.create_group("units")
        for i, unit in enumerate(units, start=1):
            g = group.create_group(output.unit_name(i))
            g.attrs.update(unit_id=i, n_spikes=100)
            g.create_dataset("eimage_sta", data=unit.image)
            write_soma_geometry(g)
        for i in range(len(units) + 1, len(units) + 1 + without_image):
            group.create_group(output.unit_name(i)).attrs.update(unit_id=i, n_spikes=0)
        output.record_step(f, 1, "step1_load_recording", {})
        output.record_step(f, 6, "step6_soma_geometry", {})


def angle_error(a: float, b: float) -> float:
    """|a - b| in degrees, on the circle."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


__all__ = ["DEMO_MODEL", "PARAMS", "angle_error", "converging_units", "write_units"]
