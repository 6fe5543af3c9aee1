"""Recordings with known axons at the electrical-image level, for tests and the benchmark.

Step 10 reads only what steps 1 and 6 wrote (``eimage_sta`` and the soma centre
of ``soma_geometry``), so a file with those, made from synthetic units whose
axons run to a planted ONH, exercises it without generating raw sensor data.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from nmbatch.engine.config import load_job_defaults
from nmbatch.mea import output
from nmbatch.mea.axon.planted import axon_toward
from nmbatch.mea.axon.training_data import SHAPE, SyntheticUnit, synthetic_unit


def converging_units(seed: int, n_units: int, onh: tuple[float, float]) -> list[SyntheticUnit]:
    """Units on distinct electrodes; three of every four with an axon running to ``onh``."""
    rng = np.random.default_rng([seed, 30])
    somas: list[tuple[int, int]] = []
    spacing = 6 if n_units <= 40 else 2
    while len(somas) < n_units:
        soma = tuple(int(v) for v in rng.integers(6, SHAPE[0] - 6, 2))
        if all(max(abs(soma[0] - r), abs(soma[1] - c)) >= spacing for r, c in somas):
            somas.append(soma)
    units = []
    for i, soma in enumerate(somas):
        amplitude = float(rng.uniform(80.0, 160.0))
        axon = None
        if i % 4 != 3:
            axon = axon_toward(rng, soma, onh, SHAPE, amplitude * float(rng.uniform(0.1, 0.2)))
        units.append(synthetic_unit(rng, soma, axon, amplitude, 1.3, float(rng.uniform(0.4, 1.2))))
    return units


def write_step_inputs(path: Path, units: list[SyntheticUnit], without_image: int = 0) -> None:
    """An output file with steps 1 and 6 done for ``units`` (unit ids from 1).

    Step 1's part is the units' images; step 6 is the pipeline's own, with the job's
    default parameters. ``without_image`` more units have no spikes (no eimage_sta).
    """
    from nmbatch.mea.steps import StepInput, resolve  # the steps import this package's modules

    params = load_job_defaults("mea")
    with h5py.File(path, "w") as f:
        group = f.create_group("units")
        for i, unit in enumerate(units, start=1):
            g = group.create_group(output.unit_name(i))
            g.attrs.update(unit_id=i, n_spikes=100)
            g.create_dataset("eimage_sta", data=unit.image)
        for i in range(len(units) + 1, len(units) + 1 + without_image):
            group.create_group(output.unit_name(i)).attrs.update(unit_id=i, n_spikes=0)
        output.record_step(f, 1, "step1_load_recording", {})
        soma = resolve([6])[0]
        soma.run(StepInput(path.stem, f, params, path.parent))
        output.record_step(f, 6, soma.stage, soma.parameters(params))
