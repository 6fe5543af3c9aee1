"""The synthetic job's report section: the distribution of its values (known: scale * sqrt(i))."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nmbatch.engine.report import ReportSection
from nmbatch.engine.report.plots import histogram

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache


def report_sections(cache: AnalysisCache) -> list[ReportSection]:
    """One section: a histogram of ``values.value``."""
    values = cache.get_results("values")
    title = "Synthetic values"
    if values.empty:
        return [ReportSection(title, "No values yet: no item has finished.")]
    text = (
        f"{len(values)} values, from {values['value'].min():.4g} to {values['value'].max():.4g}; "
        "item i has the value scale * sqrt(i)."
    )
    return [ReportSection(title, text, [histogram(values["value"], "Values", "value")])]
