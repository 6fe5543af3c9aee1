"""The task-performance job's report section: fraction correct over sessions per subject,
psychometric curves per subject, and the fits a person should not trust drawn apart.

Curves are drawn from the stored parameters with psychofit's own model; a suspect fit (a
parameter at its bound, R^2 below zero) is drawn dashed in red and shown again beside the
choices it was fitted to (``arrays.zarr/<eid>/psychometric_<block>``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource
from psychofit import erf_psycho_2gammas

from nmbatch.engine.report import ReportSection, Table
from nmbatch.engine.report.plots import FLAG_COLOUR, colour, figure
from nmbatch.task_performance.job import TABLE, suspect_fits
from nmbatch.task_performance.performance import points_array_name
from nmbatch.task_performance.psychometric import BLOCKS

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

CONTRASTS = np.linspace(-100.0, 100.0, 201)  # signed contrast (%) the curves are drawn over
BLOCK_COLOURS = {"50": "#374151", "20": colour(1), "80": colour(0)}
MAX_SUBJECTS = 12  # subjects with a psychometric panel; the rest are counted
MAX_SUSPECT_PANELS = 12
MAX_LEGEND = 10  # more subjects than this: no legend, the hover names them
SMALL = {"width": 320, "height": 260}


def _by_session(results: pd.DataFrame, labels: pd.Series, id_column: str) -> pd.DataFrame:
    table = results.assign(subject=results[id_column].map(labels))
    if "session_date" not in table.columns:
        table["session_date"] = None
    table["date"] = pd.to_datetime(table["session_date"], errors="coerce")
    return table.sort_values(["subject", "date", id_column], kind="stable")


def _over_sessions(table: pd.DataFrame, column: str, title: str, id_column: str):
    dated = table["date"].notna().all()
    plot = figure(
        title,
        width=640,
        x_axis_type="datetime" if dated else "linear",
        tooltips=[
            ("subject", "@subject"),
            ("session", "@session"),
            ("date", "@day"),
            (column, "@y{0.000}"),
        ],
    )
    subjects = list(dict.fromkeys(table["subject"]))
    for i, subject in enumerate(subjects):
        rows = table[table["subject"] == subject]
        source = ColumnDataSource(
            {
                "x": rows["date"] if dated else np.arange(1, len(rows) + 1),
                "y": rows[column],
                "subject": rows["subject"],
                "session": rows[id_column],
                "day": rows["session_date"].astype(str),
            }
        )
        legend = {"legend_label": str(subject)} if len(subjects) <= MAX_LEGEND else {}
        plot.line("x", "y", source=source, color=colour(i), line_width=2, **legend)
        plot.scatter("x", "y", source=source, color=colour(i), size=6)
    plot.xaxis.axis_label = "session date" if dated else "session (in order, per subject)"
    plot.yaxis.axis_label = column
    plot.y_range.start, plot.y_range.end = 0.0, 1.0
    if len(subjects) <= MAX_LEGEND:
        plot.legend.location = "bottom_right"
    return plot


def _curve(row, block: str) -> np.ndarray:
    pars = [
        row[f"psych_{block}_{name}"] for name in ("bias", "threshold", "lapse_left", "lapse_right")
    ]
    return erf_psycho_2gammas(np.asarray(pars, dtype=float), CONTRASTS)


def _suspect(row, block: str) -> bool:
    value = row.get(f"psych_{block}_suspect")
    return bool(value) if value is not None and not pd.isna(value) else False


def _curves(rows: pd.DataFrame, title: str, id_column: str):
    """One panel: every fitted block of the sessions in ``rows``; suspect fits dashed red."""
    plot = figure(
        title, **SMALL, tooltips=[("session", "@session"), ("block", "@block"), ("fit", "@note")]
    )
    for block in BLOCKS:
        for suspect in (False, True):
            xs, ys, sessions, notes = [], [], [], []
            for _, row in rows.iterrows():
                if pd.isna(row.get(f"psych_{block}_bias")) or _suspect(row, block) != suspect:
                    continue
                xs.append(CONTRASTS)
                ys.append(_curve(row, block))
                sessions.append(row[id_column])
                notes.append(row.get(f"psych_{block}_suspect_reason") or "sound")
            if not xs:
                continue
            source = ColumnDataSource(
                {
                    "xs": xs,
                    "ys": ys,
                    "session": sessions,
                    "note": notes,
                    "block": [f"p_left={BLOCKS[block]:g}"] * len(xs),
                }
            )
            style = (
                {"line_color": FLAG_COLOUR, "line_dash": "dashed", "line_width": 2}
                if suspect
                else {"line_color": BLOCK_COLOURS[block], "line_width": 1.5, "line_alpha": 0.6}
            )
            label = "suspect fit" if suspect else f"p_left={BLOCKS[block]:g}"
            plot.multi_line("xs", "ys", source=source, legend_label=label, **style)
    plot.xaxis.axis_label = "signed contrast (%)"
    plot.yaxis.axis_label = "P(rightward)"
    plot.y_range.start, plot.y_range.end = 0.0, 1.0
    if plot.legend:
        plot.legend.location = "top_left"
        plot.legend.label_text_font_size = "8pt"
    return plot


def _suspect_panel(cache: AnalysisCache, fit, results: pd.DataFrame, id_column: str):
    """A suspect fit beside the choices it was fitted to (the size of a point: its trials)."""
    eid = getattr(fit, id_column)
    block = next(b for b, p in BLOCKS.items() if fit.block == f"p_left={p:g}")
    row = results[results[id_column] == eid].iloc[0]
    plot = figure(
        f"{eid[:8]} {fit.block}", **SMALL, tooltips=[("contrast", "$x"), ("P(right)", "$y")]
    )
    plot.line(
        CONTRASTS,
        _curve(row, block),
        color=FLAG_COLOUR,
        line_dash="dashed",
        line_width=2,
        legend_label=f"fit, R^2 {fit.r_squared:.3g}",
    )
    points = cache.read_arrays(eid).get(points_array_name(block))
    if points is not None and points.size:
        sizes = 4 + 12 * np.sqrt(points[2] / points[2].max())
        plot.scatter(points[0], points[1], size=sizes, color="#111827", legend_label="choices")
    plot.xaxis.axis_label = "signed contrast (%)"
    plot.y_range.start, plot.y_range.end = 0.0, 1.0
    plot.legend.location = "top_left"
    plot.legend.label_text_font_size = "8pt"
    return plot


def report_sections(cache: AnalysisCache) -> list[ReportSection]:
    """Fraction correct per subject, psychometric curves per subject, suspect fits."""
    results = cache.get_results(TABLE)
    id_column = cache.id_column
    if results.empty:
        return [ReportSection("Task performance", "No sessions yet: none has finished.")]
    labels = cache.item_states().set_index(id_column)[cache.label_column]
    table = _by_session(results, labels, id_column)
    subjects = list(dict.fromkeys(table["subject"]))
    performance = ReportSection(
        "Task performance: fraction correct over sessions",
        f"{len(table)} sessions of {len(subjects)} subjects; go trials only (no-go trials are "
        "left out). Easy trials have a contrast of at least 50 %.",
        [
            _over_sessions(table, "fraction_correct", "Fraction correct", id_column),
            _over_sessions(
                table, "fraction_correct_easy", "Fraction correct, easy trials", id_column
            ),
        ],
    )
    panels = [
        _curves(table[table["subject"] == s], str(s), id_column) for s in subjects[:MAX_SUBJECTS]
    ]
    grid = gridplot(panels, ncols=3, toolbar_location=None)
    grid.name = "Psychometric curves per subject"
    more = len(subjects) - MAX_SUBJECTS
    curves = ReportSection(
        "Task performance: psychometric curves",
        "The fitted curve of each session's blocks (psychofit erf_psycho_2gammas, contrasts in "
        "%); suspect fits are dashed red."
        + (f" {more} more subjects are not drawn." if more > 0 else ""),
        [grid],
    )
    suspect = suspect_fits(results, id_column)
    if suspect.empty:
        text = "No fit is suspect: no parameter is at its bound and every R^2 is at least 0."
        return [performance, curves, ReportSection("Task performance: suspect fits", text)]
    suspect.insert(1, "subject", suspect[id_column].map(labels))
    shown = [
        _suspect_panel(cache, fit, results, id_column)
        for fit in suspect.head(MAX_SUSPECT_PANELS).itertuples(index=False)
    ]
    content: list = []
    if shown:
        suspect_grid = gridplot(shown, ncols=3, toolbar_location=None)
        suspect_grid.name = "Suspect fits and the choices they were fitted to"
        content.append(suspect_grid)
    content.append(Table(suspect, f"Suspect fits ({len(suspect)})", searchable=True))
    text = (
        f"{len(suspect)} block fits in {suspect[id_column].nunique()} sessions should not be "
        "trusted: a parameter pinned at a bound of the optimiser, or an R^2 below zero (the "
        "curve explains the choices worse than their mean). They are kept in the table, "
        "flagged psych_<block>_suspect with the reason in psych_<block>_suspect_reason."
    )
    return [performance, curves, ReportSection("Task performance: suspect fits", text, content)]
