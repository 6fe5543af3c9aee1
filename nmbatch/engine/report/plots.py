"""Small bokeh helpers so every section's plots look alike (size, tools, colours)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from bokeh.palettes import Category10_10
from bokeh.plotting import figure as bokeh_figure

PALETTE = Category10_10
FLAG_COLOUR = "#d62728"  # what a person should look at: outliers, suspect fits, failures
MUTED_COLOUR = "#9ca3af"
TOOLS = "pan,box_zoom,wheel_zoom,reset,save,hover"


def colour(index: int) -> str:
    """The ``index``-th colour of the report's palette, cycling."""
    return PALETTE[index % len(PALETTE)]


def figure(title: str, width: int = 420, height: int = 300, **kwargs):
    """A bokeh figure with the report's size and tools (hover on, toolbar above)."""
    kwargs.setdefault("tools", TOOLS)
    kwargs.setdefault("toolbar_location", "above")
    return bokeh_figure(title=title, width=width, height=height, **kwargs)


def histogram(values: Sequence[float], title: str, x_label: str, bins: int = 30, width: int = 420):
    """A histogram of the finite values (its title says how many were left out)."""
    data = np.asarray(values, dtype=float)
    finite = data[np.isfinite(data)]
    dropped = data.size - finite.size
    suffix = f" ({dropped} not finite, left out)" if dropped else ""
    plot = figure(
        title + suffix,
        width=width,
        tooltips=[("range", "@left{0.[000]} .. @right{0.[000]}"), ("count", "@top")],
    )
    if finite.size:
        counts, edges = np.histogram(finite, bins=min(bins, max(1, np.unique(finite).size)))
        plot.quad(
            top=counts,
            bottom=0,
            left=edges[:-1],
            right=edges[1:],
            fill_color=colour(0),
            line_color="white",
        )
    plot.xaxis.axis_label = x_label
    plot.yaxis.axis_label = "count"
    return plot
