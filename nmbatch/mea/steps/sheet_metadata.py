"""Step 8: the lab sheet's row for the recording (no raw data needed)."""

from __future__ import annotations

import numpy as np

from nmbatch.mea.errors import InputError
from nmbatch.mea.sheet import read_sheet
from nmbatch.mea.steps.registry import StepInput, step


@step(
    8,
    needs_raw=False,
    params=("sheet_match_column",),
    outputs=("metadata/gsheet_row", "metadata/gsheet_source"),
)
def sheet_metadata(inp: StepInput) -> None:
    """Write ``metadata/gsheet_row`` (one attribute per column) and ``metadata/gsheet_source``.

    ``gsheet_source`` says where the row came from: ``file``, ``match_column``,
    ``status`` (matched, no_row, several_rows, no_sheet) and ``lines`` (the matching
    rows' lines in the export). No sheet, no matching row or several matching rows
    leave ``gsheet_row`` out and raise a warning, not a failure.
    """
    column = str(inp.params["sheet_match_column"])
    source = inp.out.require_group("metadata").create_group("gsheet_source")
    source.attrs.update(file=str(inp.sheet or ""), match_column=column)
    if inp.sheet is None or not inp.sheet.is_file():
        source.attrs.update(status="no_sheet", lines=np.zeros(0, np.int64))
        inp.warn("no sheet export (give it with --sheet), no sheet metadata")
        return
    sheet = read_sheet(inp.sheet)
    if column not in sheet.columns:
        raise InputError(
            f"sheet {sheet.path} has no column {column!r} (sheet_match_column); "
            f"its columns: {', '.join(sheet.columns)}"
        )
    rows = sheet.matching(inp.recording, column)
    source.attrs["lines"] = np.array([line for line, _ in rows], np.int64)
    if len(rows) == 1:
        source.attrs["status"] = "matched"
        inp.out["metadata"].create_group("gsheet_row").attrs.update(rows[0][1])
    elif not rows:
        source.attrs["status"] = "no_row"
        inp.warn(f"no row of {sheet.path.name} names this recording in column {column!r}")
    else:
        source.attrs["status"] = "several_rows"
        lines = ", ".join(str(line) for line, _ in rows)
        inp.warn(
            f"{len(rows)} rows of {sheet.path.name} (lines {lines}) name this recording in "
            f"column {column!r}; none stored"
        )
