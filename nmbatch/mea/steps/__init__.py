"""The MEA pipeline steps; importing this package registers every step this version has."""

from nmbatch.mea.steps import (  # noqa: F401  (each module registers its step)
    ap_tracking,
    cell_type,
    dense_noise_sta,
    dsgc,
    load_recording,
    metadata,
    rf_geometry,
    section_spikes,
    section_time,
    sheet_metadata,
    soma_geometry,
)
from nmbatch.mea.steps.registry import (
    PIPELINE,
    Step,
    StepInput,
    depends_on,
    format_steps,
    parse_steps,
    registered,
    resolve,
)

__all__ = [
    "PIPELINE",
    "Step",
    "StepInput",
    "depends_on",
    "format_steps",
    "parse_steps",
    "registered",
    "resolve",
]
