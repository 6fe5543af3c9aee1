"""The qc_events job's report section: form files by outcome, and the ones that logged nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nmbatch.engine.report import ReportSection, Table
from nmbatch.engine.report.plots import MUTED_COLOUR, colour, figure

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

OUTCOMES = ("logged", "not_passed", "no_qc_log", "invalid_metadata", "no_form_metadata")


def report_sections(cache: AnalysisCache) -> list[ReportSection]:
    """Counts by outcome (a bar each), and a searchable table of the files with no event."""
    outcomes = cache.get_results("outcomes")
    title = "QC-pass events"
    if outcomes.empty:
        return [ReportSection(title, "No form file has been processed yet.")]
    counts = outcomes["outcome"].value_counts()
    names = [o for o in OUTCOMES if o in counts] + [o for o in counts.index if o not in OUTCOMES]
    plot = figure("Form files by outcome", width=560, x_range=names, tooltips=[("files", "@top")])
    plot.xaxis.major_label_orientation = 0.4
    plot.vbar(
        x=names,
        top=[int(counts[o]) for o in names],
        width=0.7,
        fill_color=[colour(0) if o == "logged" else MUTED_COLOUR for o in names],
        line_color="white",
    )
    plot.yaxis.axis_label = "form files"
    logged = int(counts.get("logged", 0))
    text = (
        f"{len(outcomes)} form files: {logged} logged a pass-qc event, "
        f"{len(outcomes) - logged} did not (none of these is a failure; failed items are listed "
        "under Failures)."
    )
    quiet = outcomes[outcomes["outcome"] != "logged"]
    content: list = [plot]
    if len(quiet):
        columns = [c for c in (cache.id_column, "outcome", "qc_status", "detail") if c in quiet]
        content.append(Table(quiet[columns], "Form files without an event", searchable=True))
    return [ReportSection(title, text, content)]
