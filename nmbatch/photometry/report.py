"""The photometry job's report section: QC metric distributions with their outliers named,
per-window traces of the worst sessions, and what loaded against what the metadata claims.

A row of the QC table is one (session, band, brain region). Outliers are judged per band (the
isosbestic and the calcium-dependent band differ by design) with Tukey's far-out fences: below
Q1 - 3 IQR or above Q3 + 3 IQR. The worst sessions are those with the most outlying values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from bokeh.layouts import gridplot, row
from bokeh.models import ColumnDataSource
from bokeh.transform import jitter

from nmbatch.engine.report import ReportSection, Table
from nmbatch.engine.report.plots import FLAG_COLOUR, colour, figure
from nmbatch.ibl.sessions import LOAD_CHECKS, compare_load_flags
from nmbatch.photometry.config import ROW_COLUMNS
from nmbatch.photometry.qc import WINDOW_CENTRE

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

TABLE = "qc"
SESSIONS_EXPORT = "sessions.pqt"  # written by the job's on_saved next to the manifest
FENCE_IQR = 3.0  # Tukey's "far out": the values a person should look at
WORST_SESSIONS = 3
SMALL = {"width": 330, "height": 240}


def outliers(qc: pd.DataFrame, metrics: list[str], id_column: str) -> pd.DataFrame:
    """Every (row, metric) outside its band's far-out fences, with the fence it crossed."""
    columns = ["metric", "band", "brain_region", id_column, "value", "band median", "fence"]
    found = [pd.DataFrame(columns=columns)]
    for metric in metrics:
        for band, rows in qc.groupby("band"):
            values = rows[metric].astype(float)
            if values.isna().all():
                continue
            q1, median, q3 = np.nanpercentile(values, [25, 50, 75])
            low, high = q1 - FENCE_IQR * (q3 - q1), q3 + FENCE_IQR * (q3 - q1)
            hit = (values < low) | (values > high)
            found.append(
                rows.loc[hit, ["brain_region", id_column]].assign(
                    metric=metric,
                    band=band,
                    value=values[hit],
                    fence=np.where(values[hit] < low, low, high),
                    **{"band median": median},
                )
            )
    return pd.concat([f for f in found if len(f)] or found[:1], ignore_index=True)[columns]


def _distribution(qc: pd.DataFrame, metric: str, outlying: set, id_column: str, label: str):
    bands = sorted(qc["band"].dropna().unique())
    keys = list(zip(qc[id_column], qc["band"], qc["brain_region"], strict=True))
    is_out = np.array([(metric, *k) in outlying for k in keys], dtype=bool)
    source = ColumnDataSource(
        {
            "band": qc["band"],
            "value": qc[metric].astype(float),
            "session": qc[id_column],
            "subject": qc[label],
            "region": qc["brain_region"],
            "colour": np.where(is_out, FLAG_COLOUR, colour(0)),
            "size": np.where(is_out, 9, 6),
        }
    )
    plot = figure(
        metric,
        x_range=bands,
        tooltips=[
            ("session", "@session"),
            ("subject", "@subject"),
            ("region", "@region"),
            ("value", "@value"),
        ],
        **SMALL,
    )
    plot.scatter(
        jitter("band", width=0.5, range=plot.x_range),
        "value",
        source=source,
        color="colour",
        size="size",
        alpha=0.7,
    )
    return plot


def _legend(labels: list[str]):
    """A figure holding only a legend: one colour per (band, brain region) row."""
    plot = figure(
        "",
        width=190,
        height=SMALL["height"],
        tools="",
        toolbar_location=None,
        x_range=(0, 1),
        y_range=(0, 1),
    )
    for i, label in enumerate(labels):  # lines off the visible ranges: only the legend shows
        plot.line([-2, -1], [-2, -1], color=colour(i), line_width=2, legend_label=label)
    plot.axis.visible = False
    plot.grid.visible = False
    plot.outline_line_color = None
    plot.legend.location = "top_left"
    plot.legend.border_line_color = None
    return plot


def _traces(arrays: dict, rows: pd.DataFrame, eid: str, subject: str):
    """One small plot per sliding metric: its value per window, a line per band and region."""
    plots = []
    centres = arrays.get(WINDOW_CENTRE)
    names = sorted(n for n in arrays if n != WINDOW_CENTRE)
    for name in names:
        plot = figure(
            f"{name}", **SMALL, tooltips=[("row", "$name"), ("window s", "$x"), ("value", "$y")]
        )
        for i, qc_row in enumerate(rows.itertuples()):
            x, y = centres[qc_row.row], arrays[name][qc_row.row]
            keep = np.isfinite(x) & np.isfinite(y)
            label = f"{qc_row.band} {qc_row.brain_region}"
            plot.line(x[keep], y[keep], color=colour(i), line_width=2, name=label)
            plot.scatter(x[keep], y[keep], color=colour(i), size=5, name=label)
        plot.xaxis.axis_label = "window centre (s)"
        plots.append(plot)
    if not plots:
        return None
    labels = [f"{r.band} {r.brain_region}" for r in rows.itertuples()]
    grid = row(gridplot(plots, ncols=3, toolbar_location=None), _legend(labels))
    grid.name = f"per-window QC of {eid} ({subject})"
    return grid


def _load_checks(cache: AnalysisCache) -> list:
    path = cache.directory / SESSIONS_EXPORT if cache.directory else None
    if path is None or not path.is_file():
        return [Table(pd.DataFrame(), f"Load checks: no {SESSIONS_EXPORT} in the cache yet")]
    sessions = pd.read_parquet(path)
    checks = compare_load_flags(sessions)
    checks.insert(0, "dataset", [name.removeprefix("can_load_") for name in checks.index])
    content: list = [
        Table(
            checks.reset_index(drop=True), "Loads tried vs the metadata's has_* claims (sessions)"
        )
    ]
    broken = pd.Series(False, index=sessions.index)
    for can, has in LOAD_CHECKS:
        if can in sessions.columns and has in sessions.columns:
            broken |= sessions[has].fillna(False).astype(bool) & sessions[can].eq(False).fillna(
                False
            )
    shown = [c for c in ("eid", "subject", "date", "load_error", "trials_error") if c in sessions]
    content.append(
        Table(
            sessions.loc[broken, shown],
            "Sessions whose metadata claims data that does not load",
            searchable=True,
        )
    )
    return content


def report_sections(cache: AnalysisCache) -> list[ReportSection]:
    """Metric distributions and outliers, worst sessions' traces, load checks."""
    qc = cache.get_results(TABLE)
    id_column, label = cache.id_column, cache.label_column
    loads = ReportSection(
        "Photometry: load checks",
        "What each dataset's load did (can_load_*) against what the session metadata claims "
        "(has_*); 'has, fails' are sessions whose metadata promises data that is not there.",
        _load_checks(cache),
    )
    if qc.empty:
        return [ReportSection("Photometry QC", "No QC rows yet: no session finished."), loads]
    states = cache.item_states().set_index(id_column)[label]
    qc[label] = qc[id_column].map(states)
    skip = {name for name, _ in ROW_COLUMNS} | {id_column, label}
    metrics = [c for c in qc.columns if c not in skip]
    found = outliers(qc, metrics, id_column)
    outlying = set(
        zip(found["metric"], found[id_column], found["band"], found["brain_region"], strict=True)
    )
    grid = gridplot(
        [_distribution(qc, m, outlying, id_column, label) for m in metrics],
        ncols=3,
        toolbar_location=None,
    )
    grid.name = "QC metric distributions"
    found[label] = found[id_column].map(states)
    n_sessions = qc[id_column].nunique()
    distributions = ReportSection(
        "Photometry QC: metric distributions",
        f"{len(qc)} rows (session, band, brain region) of {n_sessions} sessions. Each point is "
        f"a row, per band; red points lie beyond the band's far-out fences (Q1 - "
        f"{FENCE_IQR:g} IQR, Q3 + {FENCE_IQR:g} IQR) and are listed below.",
        [grid, Table(found, f"Outliers ({len(found)})", searchable=True)],
    )
    worst = found[id_column].value_counts().head(WORST_SESSIONS)
    traces = []
    for eid in worst.index:
        grid = _traces(cache.read_arrays(eid), qc[qc[id_column] == eid], eid, states.get(eid, ""))
        if grid is not None:
            traces.append(grid)
    text = (
        "Per-window values of the sliding metrics for the sessions with the most outlying "
        f"values ({', '.join(f'{e}: {n}' for e, n in worst.items())})."
        if len(worst)
        else "No session has an outlying value: no traces to show."
    )
    return [
        distributions,
        ReportSection("Photometry QC: worst sessions, per window", text, traces),
        loads,
    ]
