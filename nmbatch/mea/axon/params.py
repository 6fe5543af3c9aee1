"""Step 10's tracked parameters as one typed record, checked once (see jobs/mea.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from nmbatch.mea.axon.scaling import SCALINGS


@dataclass(frozen=True)
class TrackingParams:
    """From probability map to axon path (per unit)."""

    ap_threshold: float
    ap_min_component_px: int
    ap_min_component_frames: int
    ap_soma_exclusion_px: float
    ap_first_frame: int
    ap_max_step_px: float
    ap_min_points: int
    ap_min_length_px: float


@dataclass(frozen=True)
class OnhParams:
    """From all units' axon paths to the optic-nerve head (per recording)."""

    onh_r2_thresholds: tuple[float, ...]
    onh_min_axons: int
    onh_max_angle_deg: float
    onh_skip_fraction: float
    onh_max_distance_px: float
    onh_boundary_fraction: float
    onh_prune_fractions: tuple[float, ...]
    onh_min_kept: int
    onh_min_kept_fraction: float


@dataclass(frozen=True)
class ApParams:
    """Everything step 10 is computed with; ``ap_model_sha256`` names the model."""

    ap_model_sha256: str
    ap_input_scaling: str
    tracking: TrackingParams
    onh: OnhParams

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ApParams:
        """The record from the job's parameters; ValueError naming every bad value."""
        missing = [k for k in STEP_PARAMS if k not in params]
        if missing:
            raise ValueError(f"missing parameter(s) {', '.join(missing)}")
        problems = [f"{k} ({why})" for k, why in _problems(params)]
        if problems:
            raise ValueError(f"parameter(s) out of range: {', '.join(problems)}")
        return cls(
            str(params["ap_model_sha256"]),
            str(params["ap_input_scaling"]),
            _build(TrackingParams, params),
            _build(OnhParams, params),
        )


def _build(kind: type, params: Mapping[str, Any]) -> Any:
    """``kind`` from the values of its fields' names, as ints, floats or tuples of floats."""
    values = {}
    for name, hint in get_type_hints(kind).items():
        value = params[name]
        values[name] = tuple(map(float, value)) if hint not in (int, float) else hint(value)
    return kind(**values)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fractions(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(_number(v) and 0 < v <= 1 for v in value)
    )


RULES = {
    "ap_model_sha256": (lambda v: isinstance(v, str), "text: empty or a SHA-256"),
    "ap_input_scaling": (lambda v: v in SCALINGS, f"one of {', '.join(SCALINGS)}"),
    "ap_threshold": (lambda v: _number(v) and 0 < v < 1, "between 0 and 1"),
    "ap_min_component_px": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "ap_min_component_frames": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "ap_soma_exclusion_px": (lambda v: _number(v) and v >= 0, ">= 0"),
    "ap_first_frame": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "ap_max_step_px": (lambda v: _number(v) and v > 0, "> 0"),
    "ap_min_points": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "ap_min_length_px": (lambda v: _number(v) and v >= 0, ">= 0"),
    "onh_r2_thresholds": (_fractions, "a list of numbers in (0, 1]"),
    "onh_min_axons": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "onh_max_angle_deg": (lambda v: _number(v) and 0 < v <= 180, "in (0, 180]"),
    "onh_skip_fraction": (lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "onh_max_distance_px": (lambda v: _number(v) and v > 0, "> 0"),
    "onh_boundary_fraction": (lambda v: _number(v) and 0 < v <= 1, "in (0, 1]"),
    "onh_prune_fractions": (_fractions, "a list of numbers in (0, 1]"),
    "onh_min_kept": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    "onh_min_kept_fraction": (lambda v: _number(v) and 0 <= v <= 1, "in [0, 1]"),
}
STEP_PARAMS = tuple(RULES)


def _problems(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(key, why) for key, (ok, why) in RULES.items() if not ok(params[key])]
