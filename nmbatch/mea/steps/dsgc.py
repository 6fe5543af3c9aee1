"""Step 11: direction selectivity from the moving bar, at each unit's RF centre (or soma)."""

from __future__ import annotations

import logging

import h5py
import numpy as np

from nmbatch.mea.direction import selectivity
from nmbatch.mea.frames import frames_to_samples, spikes_in_windows
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS
from nmbatch.mea.moving_bar import MovingBar, load_moving_bar
from nmbatch.mea.steps.registry import StepInput, step

log = logging.getLogger(__name__)

PARAMS = (
    "dsgc_movie_prefix",
    "dsgc_margin_frames",
    "dsgc_noise_pixel_px",
    "dsgc_electrode_px",
    "dsgc_n_shuffles",
    "dsgc_seed",
)


def position(unit: h5py.Group, bar: MovingBar, p) -> tuple[str, float, float]:
    """Where the unit looks, in stimulus pixels: its RF centre (step 7), else its soma (6)."""
    rf = unit.get("rf_geometry")
    if rf is not None and rf.attrs["status"] == "fitted":
        scale = float(p["dsgc_noise_pixel_px"])
        return "rf", (rf.attrs["center_x"] + 0.5) * scale, (rf.attrs["center_y"] + 0.5) * scale
    soma = unit.get("soma_geometry")
    if soma is not None:
        pitch = float(p["dsgc_electrode_px"])
        cx, cy = bar.center
        x = cx + (soma.attrs["center_col"] - (N_COLS - 1) / 2) * pitch
        y = cy + (soma.attrs["center_row"] - (N_ROWS - 1) / 2) * pitch
        return "soma", float(x), float(y)
    return "none", float("nan"), float("nan")


def _not_applicable(inp: StepInput, reason: str) -> None:
    inp.out.require_group("metadata").create_group("dsgc").attrs.update(
        status="not_applicable", reason=reason
    )
    log.info("%s: step 11 not applicable: %s", inp.recording, reason)


@step(
    11,
    needs_raw=False,
    needs_stimuli=True,
    requires=(1, 2, 6, 7),
    params=PARAMS,
    outputs=("units/*/dsgc", "metadata/dsgc"),
)
def dsgc(inp: StepInput) -> None:
    """Write ``units/<unit>/dsgc`` and ``metadata/dsgc`` (see the README for the layout).

    Per unit: attributes ``position_source`` (rf, soma, none), ``position_x``,
    ``position_y`` (stimulus pixels), ``dsi``, ``osi``, ``preferred_direction_deg``,
    ``p_value``, ``reason``; datasets ``directions_deg`` and ``responses`` (mean spikes
    per trial of each direction), ``trial_directions_deg``, ``trial_counts``, and the
    sectioned spikes ``trials_start_end`` (samples), ``trials_spike_times``,
    ``trials_spike_offsets`` (as step 3 stores them). A recording without a movie
    starting with ``dsgc_movie_prefix`` gets ``metadata/dsgc`` with status
    ``not_applicable``: the step is complete, not failed.
    """
    p = inp.params
    stimulus = inp.out["stimulus"]
    playlist = list(dict.fromkeys(str(m) for m in stimulus.attrs["playlist"]))
    bars = [m for m in playlist if m.startswith(str(p["dsgc_movie_prefix"]))]
    if not bars:
        _not_applicable(inp, f"no movie starting with {p['dsgc_movie_prefix']!r} was shown")
        return
    movie = bars[0]
    shown = stimulus[f"movie_frames/{movie}"][()]
    bar = load_moving_bar(inp.stimuli, movie, int(shown[0, 1] - shown[0, 0]))
    frames = stimulus["frame_times"][()]
    units = list(inp.out["units"].items())
    margin = int(p["dsgc_margin_frames"])
    located, sections, counts = [], [], []
    for _, unit in units:
        source, x, y = position(unit, bar, p)
        located.append((source, x, y))
        if source == "none":
            sections.append(None)
            counts.append(np.zeros(len(bar.trials)))
            continue
        windows = np.concatenate([bar.passage(x, y, margin) + first for first, _ in shown])
        windows = np.clip(windows, shown[:, :1].min(), shown[:, 1:].max())
        samples = frames_to_samples(windows, frames)
        times, offsets = spikes_in_windows(unit["spike_times"][()], samples)
        sections.append((samples, times, offsets))
        counts.append(np.diff(offsets))
    trial_deg = np.tile(bar.directions_deg, len(shown))
    result = selectivity(
        np.array(counts), trial_deg, int(p["dsgc_n_shuffles"]), int(p["dsgc_seed"])
    )
    for u, ((_, unit), (source, x, y), section) in enumerate(
        zip(units, located, sections, strict=True)
    ):
        group = unit.create_group("dsgc")
        values = dict(
            dsi=result.dsi[u],
            osi=result.osi[u],
            preferred_direction_deg=result.preferred_deg[u],
            p_value=result.p_value[u],
        )
        reason = ""
        if source == "none":
            reason = "no RF fit and no soma position"
            values = dict.fromkeys(values, float("nan"))
        elif not np.isfinite(result.dsi[u]):
            reason = "no spikes during the bar's passages"
        group.attrs.update(position_source=source, position_x=x, position_y=y, reason=reason)
        group.attrs.update({k: float(v) for k, v in values.items()})
        group.create_dataset("directions_deg", data=result.directions_deg)
        group.create_dataset("responses", data=result.responses[u])
        group.create_dataset("trial_directions_deg", data=trial_deg)
        group.create_dataset("trial_counts", data=np.asarray(counts[u], np.int64))
        if section is not None:
            for name, data in zip(
                ("trials_start_end", "trials_spike_times", "trials_spike_offsets"),
                section,
                strict=True,
            ):
                group.create_dataset(name, data=data)
    inp.out.require_group("metadata").create_group("dsgc").attrs.update(
        status="done",
        reason="",
        movie=movie,
        n_directions=result.directions_deg.size,
        n_repetitions=len(trial_deg) // result.directions_deg.size,
        margin_frames=margin,
    )
    if len(bars) > 1:
        inp.warn(f"{len(bars)} moving-bar movies shown; only the first, {movie}, is analysed")
