"""Shared by the AP-tracking tests: the job's default parameters and an angle difference."""

from __future__ import annotations

from pathlib import Path

import yaml

PARAMS = yaml.safe_load((Path(__file__).parents[1] / "jobs" / "mea.yaml").read_text())


def angle_error(a: float, b: float) -> float:
    """|a - b| in degrees, on the circle."""
    return abs((a - b + 180.0) % 360.0 - 180.0)
