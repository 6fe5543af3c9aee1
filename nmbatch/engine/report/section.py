"""What a part of the HTML report holds: a title, a short text, and plots and tables.

The engine builds its own sections (overview, run history, failures) from these records, and a
job adds its own through :meth:`nmbatch.engine.job.Job.report_sections`; the renderer
(:mod:`nmbatch.engine.report.html`) knows nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from bokeh.model import Model


@dataclass(frozen=True)
class Link:
    """A table cell that links to a file or page (e.g. a run's Dask performance report)."""

    text: str
    href: str


@dataclass
class Table:
    """A table shown as HTML, sortable by a click on a column header.

    Parameters
    ----------
    frame : DataFrame
        The rows, in the order shown first; its columns are the headers. A cell may hold a
        :class:`Link`.
    title : str
        A caption above the table.
    searchable : bool
        Add a text box that keeps only the rows containing what is typed.
    flag_column : str, optional
        A boolean column: rows where it is true are highlighted (e.g. fits not to trust).
    max_rows : int
        Rows beyond this are left out, and the caption says how many.
    """

    frame: pd.DataFrame
    title: str = ""
    searchable: bool = False
    flag_column: str | None = None
    max_rows: int = 2000


@dataclass
class ReportSection:
    """One section of the report.

    Parameters
    ----------
    title : str
        The section heading (also its entry in the report's table of contents).
    text : str
        A short paragraph under the heading: what the plots show and how to read them.
    content : list
        Plots (any bokeh layout or figure, drawn with the report's inline BokehJS) and
        :class:`Table` records, shown in this order.
    """

    title: str
    text: str = ""
    content: list[Model | Table] = field(default_factory=list)
