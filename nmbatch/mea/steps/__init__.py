"""The MEA pipeline steps; importing this package registers steps 1-5."""

from nmbatch.mea.steps import (  # noqa: F401  (each module registers its step)
    ap_tracking,
    dense_noise_sta,
    load_recording,
    metadata,
    section_spikes,
    section_time,
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
