"""Render report sections as ONE self-contained HTML file: it opens offline, from anywhere.

Plots are bokeh models embedded with BokehJS inlined (only the parts they need); tables are
plain HTML with a little inline JavaScript (``report.js``) to sort and filter them; the style
sheet (``report.css``) uses system fonts. Nothing is fetched from a CDN or any other address.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from html import escape
from importlib.resources import files
from typing import Any

import numpy as np
import pandas as pd
from bokeh.embed import components
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.model import Model
from bokeh.resources import INLINE

from nmbatch.engine.report.section import Link, ReportSection, Table

LONG_TEXT = 80  # characters from which a cell is shown as wrapped, monospaced text


def _asset(name: str) -> str:
    return files("nmbatch.engine.report").joinpath(name).read_text()


def _anchor(title: str, index: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"s{index}-{slug}"


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def format_cell(value: Any) -> tuple[str, float | None]:
    """A cell's text and, for numbers, the key it sorts by."""
    if _missing(value):
        return "", None
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no"), float(value)
    if isinstance(value, int | np.integer):
        return f"{int(value)}", float(value)
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}", float(value)
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat(sep=" ", timespec="seconds"), value.timestamp()
    if isinstance(value, date):
        return value.isoformat(), None
    if isinstance(value, dict | list | tuple | np.ndarray):
        return json.dumps(value, default=str), None
    return str(value), None


def render_table(table: Table, table_id: str) -> str:
    """One :class:`Table` as HTML (caption, optional filter box, sortable table)."""
    frame = table.frame
    shown = frame.head(table.max_rows)
    title = escape(table.title)
    if len(frame) > len(shown):
        title += f" (the first {len(shown)} of {len(frame)} rows)"
    parts = ['<div class="table-block">']
    if title:
        parts.append(f"<h3>{title}</h3>")
    if frame.empty:
        parts.append('<p class="empty">No rows.</p></div>')
        return "\n".join(parts)
    if table.searchable:
        parts.append(
            f'<input type="search" class="table-filter" data-table="{table_id}" '
            f'data-count="{table_id}-count" placeholder="filter rows: type words">'
            f'<span class="filter-count" id="{table_id}-count"></span>'
        )
    flags = None
    if table.flag_column and table.flag_column in shown.columns:
        flags = shown[table.flag_column].astype("boolean").fillna(False).to_numpy()
    header = "".join(f'<th scope="col">{escape(str(c))}</th>' for c in shown.columns)
    parts.append(f'<table class="sortable" id="{table_id}"><thead><tr>{header}</tr></thead><tbody>')
    for i, row in enumerate(shown.itertuples(index=False, name=None)):
        cells = []
        for value in row:
            if isinstance(value, Link):
                cells.append(f'<td><a href="{escape(value.href)}">{escape(value.text)}</a></td>')
                continue
            text, key = format_cell(value)
            if key is not None:
                cells.append(f'<td class="num" data-sort="{key!r}">{escape(text)}</td>')
            elif len(text) > LONG_TEXT or "\n" in text:
                cells.append(f'<td class="long">{escape(text)}</td>')
            else:
                cells.append(f"<td>{escape(text)}</td>")
        flagged = ' class="flagged"' if flags is not None and flags[i] else ""
        parts.append(f"<tr{flagged}>{''.join(cells)}</tr>")
    parts.append("</tbody></table></div>")
    return "\n".join(parts)


def _bokeh(plots: list[Model]) -> tuple[str, str, list[str]]:
    """Inline BokehJS (only what the plots need), its CSS, and one ``<div>`` per plot."""
    if not plots:
        return "", "", []
    bundle = bundle_for_objs_and_resources(plots, INLINE)
    if bundle.js_files or bundle.js_urls or bundle.css_files or bundle.css_urls:
        raise RuntimeError("BokehJS resources must be inline for a self-contained report")
    script, divs = components(plots)
    head = "\n".join(f"<script>{js}</script>" for js in bundle.js_raw)
    head += "\n".join(f"<style>{css}</style>" for css in bundle.css_raw)
    return head, script, list(divs)


def _plot_title(plot: Model) -> str:
    title = getattr(plot, "title", None)
    text = getattr(title, "text", "") if title is not None else ""
    return text or plot.name or ""


def render_report(title: str, subtitle: str, sections: list[ReportSection]) -> str:
    """The whole report: header, table of contents, then each section in order."""
    plots = [c for s in sections for c in s.content if isinstance(c, Model)]
    bokeh_head, bokeh_script, divs = _bokeh(plots)
    plot_divs = iter(divs)
    body, toc = [], []
    n_tables = 0
    for index, section in enumerate(sections):
        anchor = _anchor(section.title, index)
        toc.append(f'<a href="#{anchor}">{escape(section.title)}</a>')
        body.append(f'<section id="{anchor}"><h2>{escape(section.title)}</h2>')
        if section.text:
            body.append(f'<p class="text">{escape(section.text)}</p>')
        for content in section.content:
            if isinstance(content, Table):
                n_tables += 1
                body.append(render_table(content, f"table-{n_tables}"))
            else:
                label = escape(_plot_title(content))
                # a figure draws its own title; a layout (a grid of figures) gets its name
                caption = "" if hasattr(content, "title") else f"<figcaption>{label}</figcaption>"
                body.append(
                    f'<figure class="plot" aria-label="{label}">{caption}{next(plot_divs)}</figure>'
                )
        body.append("</section>")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{_asset('report.css')}</style>",
            bokeh_head,
            "</head><body>",
            f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>",
            f"<nav>{''.join(toc)}</nav>",
            "<main>",
            *body,
            "</main>",
            bokeh_script,
            f"<script>{_asset('report.js')}</script>",
            "</body></html>",
        ]
    )
