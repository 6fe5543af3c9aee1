"""Step 6: each unit's soma centre and size from its electrical image (no raw data needed)."""

from __future__ import annotations

import logging

from nmbatch.mea.errors import InputError
from nmbatch.mea.soma import PARAMS, check_params, soma_geometry
from nmbatch.mea.steps.registry import StepInput, step

log = logging.getLogger(__name__)


@step(6, needs_raw=False, requires=(1,), params=PARAMS, outputs=("units/*/soma_geometry",))
def soma_geometry_step(inp: StepInput) -> None:
    """Write ``units/<unit>/soma_geometry`` for every unit with an ``eimage_sta``.

    Attributes ``center_row``, ``center_col`` (0-based electrode indices), ``area``
    (electrodes), ``size_x``, ``size_y`` (extent in columns, rows), ``equivalent_diameter``
    (electrodes); dataset ``ptp_map`` (rows, cols) float32, the peak-to-trough map.
    A unit without an electrical image (no spikes in the sensor data) gets no group.
    """
    without = []
    for name, unit in inp.out["units"].items():
        if "eimage_sta" not in unit:
            without.append(name)
            continue
        eimage = unit["eimage_sta"][()]
        problem = check_params(inp.params, eimage.shape[0])
        if problem:
            raise InputError(f"soma geometry parameters: {problem}")
        geometry = soma_geometry(eimage, inp.params)
        group = unit.create_group("soma_geometry")
        group.attrs.update(
            center_row=geometry.center_row,
            center_col=geometry.center_col,
            area=geometry.area,
            size_x=geometry.size_x,
            size_y=geometry.size_y,
            equivalent_diameter=geometry.equivalent_diameter,
        )
        group.create_dataset("ptp_map", data=geometry.ptp_map).attrs["unit"] = "ADC counts"
    if without:
        log.info("%s: no electrical image, no soma geometry: %s", inp.recording, ", ".join(without))
