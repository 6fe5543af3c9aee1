"""Shared by the MEA tests: the job's default parameters, an item run as a worker runs it, and
an angle difference."""

from __future__ import annotations

from pathlib import Path

import yaml

from nmbatch.engine.errors import StageError
from nmbatch.engine.job import ItemContext

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())


def angle_error(a: float, b: float) -> float:
    """|a - b| in degrees, on the circle."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def run_item(job, item, params=PARAMS):
    """Run one item as a worker would; return (result or StageError, context)."""
    ctx = ItemContext(item, params)
    try:
        return job.run_item(item, ctx), ctx
    except StageError as exc:
        return exc, ctx
