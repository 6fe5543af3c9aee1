"""Step 10: axon (AP) tracking with the 3D CNN, and the optic-nerve head (no raw data needed).

Per unit: the axon-probability map of its electrical image (dense evaluation),
the axon path (or why there is none) and, once the recording's ONH is known,
the soma's polar position around it. A unit without an axon, or a recording with
too few axons for an ONH, is recorded as such and is not a failure.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nmbatch.engine.job import worker_resource
from nmbatch.mea.axon.dense import (
    DEFAULT_POSITIONS_PER_BATCH,
    DenseAxonEvaluator,
    resolve_device,
)
from nmbatch.mea.axon.model_file import ModelFileError, file_sha256, load_model
from nmbatch.mea.axon.onh import OnhEstimate, estimate_onh, polar_position
from nmbatch.mea.axon.params import STEP_PARAMS, ApParams
from nmbatch.mea.axon.scaling import scaled
from nmbatch.mea.axon.tracking import AxonTrack, track_axon
from nmbatch.mea.errors import InputError
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS
from nmbatch.mea.steps.registry import StepInput, step

log = logging.getLogger(__name__)

GROUP = "ap_tracking"
PROGRESS_SECONDS = 30.0
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def _evaluator(settings: Mapping[str, Any], sha: str) -> tuple[DenseAxonEvaluator, str]:
    """The model of ``settings`` as a dense evaluator, loaded once per worker process."""
    if not settings.get("ap_model"):
        raise InputError("no AP model configured (--ap-model FILE)")
    if not sha:
        raise InputError(
            "ap_model_sha256 is empty: the job fills it from --ap-model before a run "
            "(MeaJob.resolve_params), so that results record their model"
        )
    path = Path(settings["ap_model"])
    try:
        actual = file_sha256(path)
    except ModelFileError as exc:
        raise InputError(str(exc)) from None
    if actual != sha:
        raise InputError(f"AP model file {path} changed since the run started (sha256 {actual})")
    try:
        device = resolve_device(str(settings.get("ap_device", "auto")))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    batch = int(settings.get("ap_positions_per_batch", DEFAULT_POSITIONS_PER_BATCH))

    def build() -> DenseAxonEvaluator:
        try:
            return DenseAxonEvaluator(load_model(path), device, batch)
        except ModelFileError as exc:
            raise InputError(str(exc)) from None

    key = f"nmbatch.mea.ap_model:{path}:{sha}:{device}:{batch}"
    return worker_resource(key, build), str(device)


def _soma(unit: h5py.Group) -> tuple[float, float] | None:
    geometry = unit.get("soma_geometry")
    if geometry is None or "center_row" not in geometry.attrs:
        return None
    return float(geometry.attrs["center_row"]), float(geometry.attrs["center_col"])


def _write_unit(unit: h5py.Group, track: AxonTrack, prob: np.ndarray | None) -> h5py.Group:
    group = unit.create_group(GROUP)
    group.attrs.update(
        detected=track.detected,
        reason=track.reason,
        r2=track.r2,
        direction_deg=track.direction_deg,
        length_px=track.length_px,
        n_points=len(track.frames),
        n_centroid_frames=track.n_centroid_frames,
    )
    if prob is not None:
        group.create_dataset("probability", data=prob, **COMPRESSION)
    if track.detected:
        path = np.column_stack([track.frames, track.points])
        group.create_dataset("path", data=path).attrs["columns"] = ["frame", "row", "col"]
    return group


def _write_onh(out: h5py.File, onh: OnhEstimate, n_units: int, device: str) -> None:
    group = out.require_group("metadata").create_group(GROUP)
    group.attrs.update(
        onh_found=onh.found,
        reason=onh.reason,
        onh_row=onh.row,
        onh_col=onh.col,
        r2_threshold=onh.r2_threshold,
        consensus_direction_deg=onh.consensus_deg,
        n_units=n_units,
        n_axons=onh.n_axons,
        n_used=len(onh.units),
        n_pruned=onh.n_pruned,
        at_boundary=onh.at_boundary,
        rms_distance_px=onh.rms_distance_px,
        device=device,
    )
    group.create_dataset("units_used", data=np.array(onh.units, np.int64))


@step(
    10,
    needs_raw=False,
    requires=(1, 6),
    params=STEP_PARAMS,
    outputs=("units/*/ap_tracking", "metadata/ap_tracking"),
)
def ap_tracking(inp: StepInput) -> None:
    """Write ``units/<unit>/ap_tracking`` and ``metadata/ap_tracking`` (see output.py)."""
    try:
        params = ApParams.from_params(inp.params)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    evaluator, device = _evaluator(inp.settings, params.ap_model_sha256)
    units = list(inp.out["units"].values())
    tracks: dict[int, AxonTrack] = {}
    somas: dict[int, tuple[float, float]] = {}
    groups: dict[int, h5py.Group] = {}
    shape = (N_ROWS, N_COLS)
    started = last_report = time.monotonic()
    for i, unit in enumerate(units, start=1):
        unit_id, soma, prob = int(unit.attrs["unit_id"]), _soma(unit), None
        if "eimage_sta" not in unit:
            track = AxonTrack.none("no electrical image (a unit without spikes)")
        elif soma is None:
            track = AxonTrack.none("no soma centre (step 6 found none)")
        else:
            image = unit["eimage_sta"][()]
            shape = image.shape[1:]
            prob = evaluator.probability_map(scaled(image, params.ap_input_scaling))
            track = track_axon(prob, soma, params.tracking)
            somas[unit_id] = soma
        tracks[unit_id] = track
        groups[unit_id] = _write_unit(unit, track, prob)
        if time.monotonic() - last_report > PROGRESS_SECONDS:
            last_report = time.monotonic()
            log.info(
                "%s: AP tracking %d/%d units (%.0f s)",
                inp.recording,
                i,
                len(units),
                last_report - started,
            )
    onh = estimate_onh(tracks, somas, shape, params.onh)
    for unit_id, group in groups.items():
        soma = somas.get(unit_id, (math.nan, math.nan))
        distance, angle = polar_position(soma, onh)
        group.attrs.update(
            soma_row=soma[0], soma_col=soma[1], onh_distance_px=distance, onh_angle_deg=angle
        )
    _write_onh(inp.out, onh, len(units), device)
    detected = sum(t.detected for t in tracks.values())
    log.info(
        "%s: %d/%d units with an axon; ONH %s",
        inp.recording,
        detected,
        len(units),
        f"at ({onh.row:.1f}, {onh.col:.1f})" if onh.found else f"not estimated: {onh.reason}",
    )
