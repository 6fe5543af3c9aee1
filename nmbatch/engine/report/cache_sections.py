"""The engine's own sections of the report: overview, run history, failures.

They read only what every cache has (the manifest, item records, ``runs/``), so they work for
any job, and say plainly when there is nothing to show yet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from bokeh.models import FactorRange

from nmbatch.engine.config import flatten
from nmbatch.engine.report.plots import FLAG_COLOUR, MUTED_COLOUR, colour, figure
from nmbatch.engine.report.runs import RunRecord
from nmbatch.engine.report.section import Link, ReportSection, Table

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

FAILURE_COLUMNS = ("stage", "error_type", "error_message", "attempt", "time", "worker")


def plural(n: int, word: str, words: str | None = None) -> str:
    """``'1 item'``, ``'2 items'``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def item_counts_text(cache: AnalysisCache) -> str:
    """One sentence on what the cache holds, saying so when nothing has finished."""
    done, failed = cache.n_done, cache.n_failed
    if done == 0 and failed == 0:
        return "No item has finished yet: this cache has no results and no failures."
    if done == 0:
        return f"No item finished successfully: all {plural(failed, 'recorded item')} failed."
    return f"{plural(done, 'item')} done, {failed} failed (the latest record of each item)."


def overview_section(cache: AnalysisCache) -> ReportSection:
    """What the cache is, its counts, and the parameters that made it."""
    manifest = cache.manifest
    facts = [
        ("analysis", cache.name),
        ("cache folder", str(cache.directory.resolve()) if cache.directory else "(in memory)"),
        ("created", manifest.get("created", "")),
        ("updated", manifest.get("updated", "")),
        ("items done", cache.n_done),
        ("items failed", cache.n_failed),
        ("parameters hash", manifest.get("config_hash", "")),
    ]
    content: list = [Table(pd.DataFrame(facts, columns=["", "value"]), "Cache")]
    params = flatten(manifest.get("config", {}))
    content.append(
        Table(
            pd.DataFrame({"parameter": list(params), "value": [repr(v) for v in params.values()]}),
            "Tracked parameters",
        )
    )
    history = manifest.get("config_history", [])
    if history:
        rows = [
            (h.get("replaced"), h.get("decision"), h.get("config_hash"))
            for h in history
            if isinstance(h, dict)
        ]
        content.append(
            Table(
                pd.DataFrame(rows, columns=["replaced", "decision", "previous parameters hash"]),
                "Parameter changes recorded in the manifest",
            )
        )
    return ReportSection("Overview", item_counts_text(cache), content)


def _change_text(run: RunRecord) -> str:
    if run.change_decision is None:
        return ""
    changes = "; ".join(f"{c.key}: {c.cached!r} -> {c.current!r}" for c in run.changes)
    return f"{run.change_decision}: {changes}" if changes else run.change_decision


def _run_label(run: RunRecord) -> str:
    return run.started.strftime("%Y-%m-%d %H:%M:%S") if run.started else run.folder.name


def _performance_link(run: RunRecord, report_dir: Path) -> Link | str:
    if run.performance_report is None:
        return ""
    if not run.performance_report.is_file():
        return f"{run.performance_report.name} (missing)"
    return Link(run.performance_report.name, os.path.relpath(run.performance_report, report_dir))


def _runs_plot(runs: Sequence[RunRecord]):
    labels = [f"{i + 1}: {_run_label(r)}" for i, r in enumerate(runs)]
    parts = {"done": [], "failed": [], "skipped": []}
    for run in runs:
        for name in parts:
            parts[name].append(getattr(run, name) or 0)
    plot = figure(
        "Items per run",
        width=max(420, min(1200, 90 * len(runs))),
        x_range=FactorRange(*labels),
        tooltips=[("run", "@run"), ("item", "$name"), ("count", "@$name")],
    )
    plot.vbar_stack(
        list(parts),
        x="run",
        width=0.7,
        color=[colour(2), FLAG_COLOUR, MUTED_COLOUR],
        source={"run": labels, **parts},
        legend_label=list(parts),
    )
    plot.xaxis.major_label_orientation = 0.8
    plot.yaxis.axis_label = "items"
    plot.add_layout(plot.legend[0], "right")
    return plot


def runs_section(runs: Sequence[RunRecord], report_dir: Path) -> ReportSection:
    """Each run: start, state, duration, counts, hashes and the parameter change it went through."""
    title = "Run history"
    if not runs:
        return ReportSection(
            title,
            "No run history: the cache has no runs/ folder (no run has recorded itself here).",
        )
    rows = [
        {
            "run": i + 1,
            "started": run.started,
            "state": run.state,
            "duration_s": run.duration_s,
            "listed": run.listed,
            "done": run.done,
            "failed": run.failed,
            "skipped": run.skipped,
            "parameters hash": run.config_hash,
            "provenance hash": run.provenance_hash,
            "parameter change": _change_text(run),
            "Dask performance report": _performance_link(run, report_dir),
            "command": run.command,
            "note": run.problem,
        }
        for i, run in enumerate(runs)
    ]
    last = runs[-1]
    text = (
        f"{plural(len(runs), 'run')} recorded in runs/; the last one started {_run_label(last)} "
        f"and is {last.state}. A run that is 'not finished' crashed or is still running."
    )
    table = Table(pd.DataFrame(rows), "Runs, oldest first", searchable=len(rows) > 10)
    return ReportSection(title, text, [_runs_plot(runs), table])


def _failures_plot(counts: pd.DataFrame):
    labels = [f"{s} / {e}" for s, e in zip(counts["stage"], counts["error_type"], strict=True)]
    plot = figure(
        "Failed items by stage / error type",
        width=640,
        height=max(200, 40 + 28 * len(labels)),
        y_range=FactorRange(*reversed(labels)),
        tooltips=[("stage / error", "@label"), ("items", "@items")],
    )
    plot.hbar(
        y="label",
        right="items",
        height=0.7,
        color=FLAG_COLOUR,
        source={"label": labels, "items": counts["items"].tolist()},
    )
    plot.x_range.start = 0
    plot.xaxis.axis_label = "items"
    return plot


def failures_section(cache: AnalysisCache) -> ReportSection:
    """Items whose latest attempt failed, counted by stage and error type, then listed."""
    title = "Failures"
    errors = cache.get_errors()
    if errors.empty:
        return ReportSection(title, "No item's latest attempt failed.")
    counts = (
        errors.groupby(["stage", "error_type"], dropna=False)
        .agg(items=(cache.id_column, "size"), example=(cache.id_column, "first"))
        .reset_index()
        .sort_values("items", ascending=False, kind="stable")
    )
    columns = [cache.id_column, cache.label_column, *FAILURE_COLUMNS]
    listed = errors[[c for c in columns if c in errors.columns]].sort_values(
        ["stage", "error_type", cache.id_column]
    )
    text = (
        f"The latest attempt failed for {plural(len(errors), 'item')}: "
        f"{plural(len(counts), 'kind')} of failure (stage and error type). Filter the list "
        "by typing, sort it by a click on a header; tracebacks are in the cache "
        "(AnalysisCache.open(dir).get_errors())."
    )
    return ReportSection(
        title,
        text,
        [
            _failures_plot(counts),
            Table(counts, "By stage and error type"),
            Table(listed, "Failed items", searchable=True),
        ],
    )
