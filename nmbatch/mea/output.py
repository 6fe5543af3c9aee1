"""The per-recording HDF5 output: layout, step records, atomic replacement, summary.

::

    <recording>.h5
      units/<unit_NNN>/          attrs: unit_id, sensor_id, row, col, n_spikes, quality measures
        spike_times              int64 samples (step 1)
        eimage_sta               (50, 65, 65) float32 (step 1; absent for a unit without spikes)
        spike_times_sectioned/<movie>/...   (step 3)
        sta_<movie>              (60, 15, 15) float32 (step 4)
        soma_geometry/           (step 6; absent without eimage_sta) attrs center_row,
                                 center_col (0-based electrodes), area (electrodes), size_x,
                                 size_y, equivalent_diameter; ptp_map (65, 65) float32
        rf_geometry/             (step 7) attrs status (fitted, too_noisy, fit_failed, no_sta),
                                 reason, movie, n_spikes, polarity, peak_frame, peak_z,
                                 center_x, center_y (noise pixels, x = column), sigma_x >=
                                 sigma_y, angle (rad, from +x towards +y), amplitude, offset,
                                 r_squared (NaN without a fit); dog/, on/, off/ (attrs of those
                                 fits, each with r_squared and reason); spatial_map,
                                 temporal_profile
        auto_label               text, '' for none (step 9); attrs labelled, source
        dsgc/                    (step 11) attrs position_source (rf, soma, none),
                                 position_x, position_y (stimulus px), dsi, osi,
                                 preferred_direction_deg, p_value, reason; directions_deg,
                                 responses, trial_directions_deg, trial_counts,
                                 trials_start_end, trials_spike_times, trials_spike_offsets
        ap_tracking/             attrs: detected, reason (why not), r2, direction_deg, length_px,
                                 n_points, soma_row/col, onh_distance_px, onh_angle_deg (step 10)
          probability            (50, 65, 65) float32 axon probability per voxel (0 at the border)
          path                   (n, 3) frame, row, col of the axon's centroids (if detected)
      stimulus/                  frame_times, section_time/<movie>, movie_frames/<movie> (step 2)
      metadata/recording         attrs: sampling rate, samples, duration, sensor_samples (step 1)
      metadata/cmcr_meta, cmtr_meta   root attributes of the source files (step 5)
      metadata/gsheet_row        attrs: the lab sheet's row, one per column (step 8)
      metadata/gsheet_source     attrs: file, match_column, status, lines (step 8)
      metadata/cell_type         attrs: status, folder, files, n_labelled, n_unlabelled,
                                 unknown_units (step 9)
      metadata/dsgc              attrs: status (done, not_applicable), reason, movie,
                                 n_directions, n_repetitions, margin_frames (step 11)
      metadata/ap_tracking       attrs: onh_found, reason, onh_row/col, r2_threshold, n_used, ...;
        units_used               unit ids whose axons placed the ONH (step 10)
      pipeline/completed_steps   int array of the steps done
      pipeline/steps/<stage>     attrs: the step's parameters, and completed_at

A file is only ever written under a temporary name in the same folder and moved
into place with ``os.replace``, so a crash never leaves a half-written file under
the final name; ``completed_steps`` lists a step only once its results are written.
"""

from __future__ import annotations

import fnmatch
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT = "nmbatch.mea/1"
COMPLETED = "pipeline/completed_steps"
RECORDS = "pipeline/steps"
RECORD_META = ("completed_at", "step")


def unit_name(unit_id: int) -> str:
    """Group name of a unit under ``units/``."""
    return f"unit_{unit_id:03d}"


def temp_path(final: Path) -> Path:
    """A unique hidden name next to ``final`` for building it."""
    return final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")


def remove_stale_temps(final: Path) -> None:
    """Delete temporary files an interrupted run left for ``final``."""
    for path in final.parent.glob(f".{final.name}.*.tmp"):
        path.unlink(missing_ok=True)


def _plain(value: Any) -> Any:
    """An attribute value as plain Python (numpy scalars and arrays, bytes decoded)."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _comparable(value: Any) -> Any:
    """Numbers as floats (so 100 == 100.0), recursively; bools and text unchanged."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    return value


def same_parameters(recorded: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether recorded step parameters equal the current ones (100 and 100.0 are equal)."""
    stored = {k: _comparable(_plain(v)) for k, v in recorded.items() if k not in RECORD_META}
    current = {k: _comparable(v) for k, v in params.items()}
    return json.dumps(stored, sort_keys=True) == json.dumps(current, sort_keys=True)


@dataclass
class OutputState:
    """What an existing output file holds: its completed steps and their parameters."""

    path: Path
    steps: dict[int, dict[str, Any]]

    def done(self, number: int, params: Mapping[str, Any]) -> bool:
        """Whether step ``number`` is complete with exactly ``params``."""
        return number in self.steps and same_parameters(self.steps[number], params)


def read_state(path: Path) -> OutputState | None:
    """The state of an output file; None if it is absent or not a readable output."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if COMPLETED not in f:
                return None
            records = {int(g.attrs["step"]): dict(g.attrs) for g in f[RECORDS].values()}
            completed = [int(n) for n in f[COMPLETED][()]]
    except (OSError, KeyError):
        return None
    return OutputState(path, {n: records[n] for n in completed if n in records})


def record_step(f: h5py.File, number: int, stage: str, params: Mapping[str, Any]) -> None:
    """Mark a step complete: its record (parameters, time) and ``completed_steps``."""
    records = f.require_group(RECORDS)
    if stage in records:
        del records[stage]
    record = records.create_group(stage)
    for key, value in params.items():
        record.attrs[key] = value
    record.attrs["step"] = number
    record.attrs["completed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_completed(f)


def _write_completed(f: h5py.File) -> None:
    steps = sorted(int(g.attrs["step"]) for g in f.require_group(RECORDS).values())
    if COMPLETED in f:
        del f[COMPLETED]
    f.create_dataset(COMPLETED, data=np.array(steps, dtype=np.int64))


def completed_steps(f: h5py.File) -> list[int]:
    """Steps listed as complete in an open output file."""
    return [int(n) for n in f[COMPLETED][()]] if COMPLETED in f else []


def _dropped(path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def _below(path: str, patterns: Iterable[str]) -> bool:
    """Whether some pattern may match an object inside ``path``."""
    parts = path.split("/")
    for pattern in patterns:
        head = pattern.split("/")
        if len(head) > len(parts) and all(map(fnmatch.fnmatchcase, parts, head)):
            return True
    return False


def copy_without(src: h5py.Group, dst: h5py.Group, patterns: list[str], prefix: str = "") -> None:
    """Copy ``src`` into ``dst`` except objects whose path matches a pattern (``*`` per level)."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for name, obj in src.items():
        path = prefix + name
        if _dropped(path, patterns):
            continue
        if isinstance(obj, h5py.Group) and _below(path, patterns):
            copy_without(obj, dst.require_group(name), patterns, path + "/")
        else:
            src.copy(obj, dst, name=name)


def remove_paths(f: h5py.File, patterns: list[str]) -> None:
    """Delete the objects whose path matches a pattern (HDF5 does not reclaim their space)."""
    found: list[str] = []
    f.visit(lambda name: found.append(name) if _dropped(name, patterns) else None)
    for name in found:
        if name in f:
            del f[name]


def start_file(final: Path, base: OutputState | None, drop: list[str]) -> tuple[Path, h5py.File]:
    """Open a temporary file to build ``final``: a copy of ``base`` without ``drop`` paths."""
    tmp = temp_path(final)
    f = h5py.File(tmp, "w")
    try:
        if base is not None:
            with h5py.File(base.path, "r") as src:
                copy_without(src, f, drop)
            _write_completed(f)
        f.attrs["format"] = FORMAT
    except BaseException:
        f.close()
        tmp.unlink(missing_ok=True)
        raise
    return tmp, f


def summarize(path: Path) -> dict[str, Any]:
    """One row of the job's results table, read back from a finished output file."""
    with h5py.File(path, "r") as f:
        spikes = [int(g.attrs["n_spikes"]) for g in f["units"].values()] if "units" in f else []
        info = f["metadata/recording"].attrs if "metadata/recording" in f else {}
        duration = float(info.get("duration_s", np.nan))
        steps = completed_steps(f)
    return {
        "output_path": str(path),
        "output_bytes": path.stat().st_size,
        "n_units": len(spikes),
        "n_units_without_spikes": sum(n == 0 for n in spikes),
        "n_spikes": sum(spikes),
        "duration_s": duration,
        "steps_completed": ",".join(map(str, steps)),
        "n_steps": len(steps),
    }


def commit(tmp: Path, final: Path) -> None:
    """Move a finished temporary file into place (atomic on one filesystem)."""
    os.replace(tmp, final)
