"""The MEA job's report section: unit counts per recording, and per recording the units and
somas on the array, receptive-field centres and ellipses, and direction-selectivity polar plots.

Everything per unit is read from the recording's HDF5 file (the ``output_path`` of the
``recordings`` table): ``units/<unit>`` attrs ``row``/``col`` (the electrode, 1-based) and
``n_spikes``; ``units/<unit>/soma_geometry`` attrs ``center_row``/``center_col`` (step 6);
``units/<unit>/rf_geometry`` attrs ``center_x``/``center_y``/``sigma_x``/``sigma_y``/``angle``
(radians; step 7) and ``units/<unit>/dsgc`` with ``directions_deg``, ``responses`` and attr
``dsi`` (step 11). A plot whose data are absent (the step has not run) is left out quietly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pandas as pd
from bokeh.layouts import row
from bokeh.models import FactorRange

from nmbatch.engine.report import ReportSection, Table
from nmbatch.engine.report.cache_sections import plural
from nmbatch.engine.report.plots import FLAG_COLOUR, MUTED_COLOUR, colour, figure
from nmbatch.mea.mcs_layout import N_COLS, N_ROWS

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

TABLE = "recordings"
MAX_RECORDINGS = 12  # recordings drawn one by one; all are in the counts table
SOMA_GROUP = "soma_geometry"
RF_GROUP = "rf_geometry"
RF_FIELDS = ("center_x", "center_y", "sigma_x", "sigma_y", "angle")
DS_GROUP = "dsgc"
SMALL = {"width": 330, "height": 330}


@dataclass
class RecordingUnits:
    """What one recording's file says about its units (absent parts stay empty)."""

    units: pd.DataFrame  # unit, row, col, n_spikes, soma_row, soma_col
    fields: pd.DataFrame  # unit, x, y, sigma_x, sigma_y, angle (radians)
    tuning: list[tuple[str, np.ndarray, np.ndarray, float]] = field(default_factory=list)


def _number(value: Any) -> float:
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return math.nan


def _rf(group: h5py.Group) -> dict[str, float] | None:
    """The fitted Gaussian's centre, sigmas and angle; None when the fit has no centre."""
    values = {name: _number(group.attrs.get(name)) for name in RF_FIELDS}
    if not (np.isfinite(values["center_x"]) and np.isfinite(values["center_y"])):
        return None
    return {
        "x": values["center_x"],
        "y": values["center_y"],
        "sigma_x": values["sigma_x"],
        "sigma_y": values["sigma_y"],
        "angle": values["angle"],
    }


def _tuning(name: str, unit: h5py.Group) -> tuple[str, np.ndarray, np.ndarray, float] | None:
    group = unit.get(DS_GROUP)
    if not isinstance(group, h5py.Group) or "responses" not in group:
        return None
    directions = np.asarray(group["directions_deg"][()], dtype=float)
    responses = np.asarray(group["responses"][()], dtype=float)
    return name, directions, responses, _number(group.attrs.get("dsi"))


def read_units(path: Path) -> RecordingUnits:
    """Units, somas, receptive fields and tuning of one recording's HDF5 file."""
    units, fields, tuning = [], [], []
    with h5py.File(path, "r") as f:
        for name, unit in f["units"].items() if "units" in f else []:
            soma = unit.get(SOMA_GROUP)
            units.append(
                {
                    "unit": name,
                    "row": _number(unit.attrs.get("row")),
                    "col": _number(unit.attrs.get("col")),
                    "n_spikes": _number(unit.attrs.get("n_spikes")),
                    "soma_row": _number(soma.attrs.get("center_row")) if soma else math.nan,
                    "soma_col": _number(soma.attrs.get("center_col")) if soma else math.nan,
                }
            )
            rf = _rf(unit[RF_GROUP]) if isinstance(unit.get(RF_GROUP), h5py.Group) else None
            if rf is not None:
                fields.append({"unit": name, **rf})
            tuned = _tuning(name, unit)
            if tuned is not None:
                tuning.append(tuned)
    columns = ["unit", "x", "y", "sigma_x", "sigma_y", "angle"]
    return RecordingUnits(pd.DataFrame(units), pd.DataFrame(fields, columns=columns), tuning)


def _array_plot(units: pd.DataFrame):
    """Units at their electrode (size: spikes) and, where step 6 ran, their soma centre."""
    plot = figure(
        "units on the array",
        **SMALL,
        x_range=(0, N_COLS + 1),
        y_range=(N_ROWS + 1, 0),
        tooltips=[("unit", "@unit"), ("spikes", "@n_spikes"), ("row, col", "@row, @col")],
    )
    spikes = units["n_spikes"].fillna(0).to_numpy()
    size = 5 + 10 * np.sqrt(spikes / spikes.max()) if spikes.max() > 0 else np.full(len(units), 6)
    plot.scatter(
        "col",
        "row",
        source={**units.to_dict("list"), "size": size},
        size="size",
        color=colour(0),
        alpha=0.6,
        legend_label="unit (electrode)",
    )
    somas = units.dropna(subset=["soma_row", "soma_col"])
    if len(somas):
        plot.segment(
            somas["col"], somas["row"], somas["soma_col"], somas["soma_row"], color=MUTED_COLOUR
        )
        plot.scatter(
            somas["soma_col"],
            somas["soma_row"],
            marker="x",
            size=9,
            color=FLAG_COLOUR,
            legend_label="soma centre",
        )
    plot.xaxis.axis_label, plot.yaxis.axis_label = "column", "row"
    plot.legend.orientation = "horizontal"
    plot.legend.label_text_font_size = "8pt"
    plot.add_layout(plot.legend[0], "below")  # outside: a unit near a corner stays visible
    return plot


def _field_plot(fields: pd.DataFrame):
    """Receptive-field centres and 1-sigma ellipses, in stimulus pixels."""
    plot = figure(
        "receptive fields",
        **SMALL,
        match_aspect=True,
        tooltips=[("unit", "@unit"), ("centre", "@x{0.0}, @y{0.0}")],
    )
    source = {
        **fields.to_dict("list"),
        "w": list(2 * fields["sigma_x"]),
        "h": list(2 * fields["sigma_y"]),
    }
    plot.ellipse(
        "x",
        "y",
        width="w",
        height="h",
        angle="angle",
        source=source,
        fill_alpha=0.15,
        fill_color=colour(2),
        line_color=colour(2),
    )
    plot.scatter("x", "y", source=source, marker="cross", size=10, color="#111827")
    plot.xaxis.axis_label, plot.yaxis.axis_label = "stimulus x (pixels)", "stimulus y (pixels)"
    return plot


def _polar_plot(tuning: list):
    """Each unit's responses by direction, normalised to its largest, as a closed polar line."""
    plot = figure(
        "direction tuning",
        **SMALL,
        match_aspect=True,
        x_range=(-1.15, 1.15),
        y_range=(-1.15, 1.15),
        tooltips=[("unit", "$name")],
    )
    angles = np.linspace(0, 2 * np.pi, 100)
    for radius in (0.5, 1.0):
        plot.line(radius * np.cos(angles), radius * np.sin(angles), color=MUTED_COLOUR)
    for i, (unit, directions, responses, dsi) in enumerate(tuning):
        order = np.argsort(directions)
        theta = np.radians(directions[order])
        r = responses[order] / responses.max() if responses.max() > 0 else responses[order]
        label = f"{unit} (DSI {dsi:.2f})" if np.isfinite(dsi) else unit
        plot.line(
            np.append(r * np.cos(theta), r[0] * np.cos(theta[0])),
            np.append(r * np.sin(theta), r[0] * np.sin(theta[0])),
            color=colour(i),
            line_width=2,
            name=label,
        )
    plot.axis.visible = False
    return plot


def _counts_plot(table: pd.DataFrame):
    names = table["recording"].tolist()
    with_spikes = (table["n_units"] - table["n_units_without_spikes"]).tolist()
    plot = figure(
        "Units per recording",
        width=max(420, min(1200, 70 * len(names))),
        x_range=FactorRange(*names),
        tooltips=[("recording", "@recording"), ("units", "$name: @$name")],
    )
    plot.vbar_stack(
        ["with spikes", "without spikes"],
        x="recording",
        width=0.7,
        color=[colour(0), MUTED_COLOUR],
        source={
            "recording": names,
            "with spikes": with_spikes,
            "without spikes": table["n_units_without_spikes"].tolist(),
        },
        legend_label=["with spikes", "without spikes"],
    )
    plot.xaxis.major_label_orientation = 0.8
    plot.add_layout(plot.legend[0], "right")
    return plot


def report_sections(cache: AnalysisCache) -> list[ReportSection]:
    """Unit counts per recording, then each recording's units, somas, fields and tuning."""
    table = cache.get_results(TABLE)
    if table.empty:
        return [ReportSection("MEA recordings", "No recordings yet: none has finished.")]
    table = table.sort_values("recording").reset_index(drop=True)
    counts = ReportSection(
        "MEA recordings: unit counts",
        f"{plural(len(table), 'recording')}, {plural(int(table['n_units'].sum()), 'unit')}.",
        [
            _counts_plot(table),
            Table(table.drop(columns=["output_path"]), "Recordings", searchable=len(table) > 10),
        ],
    )
    plots, missing = [], []
    for recording, path in zip(table["recording"], table["output_path"], strict=True):
        if len(plots) == MAX_RECORDINGS:
            break
        if not Path(path).is_file():
            missing.append(recording)
            continue
        found = read_units(Path(path))
        if found.units.empty:
            continue
        parts = [_array_plot(found.units)]
        if len(found.fields):
            parts.append(_field_plot(found.fields))
        if found.tuning:
            parts.append(_polar_plot(found.tuning))
        layout = row(*parts)
        layout.name = recording
        plots.append(layout)
    text = (
        "Per recording: each unit at its electrode (size: spikes) with its soma centre where "
        "step 6 ran; receptive-field centres and 1-sigma ellipses in stimulus pixels (step 7); "
        "responses by direction normalised to each unit's largest (step 11)."
    )
    if len(table) > MAX_RECORDINGS:
        text += f" The first {MAX_RECORDINGS} of {len(table)} recordings are drawn."
    if missing:
        text += f" Output files missing (moved or deleted): {', '.join(missing)}."
    return [counts, ReportSection("MEA recordings: units", text, plots)]
