"""The lab's recording sheet, from a local export (CSV or XLSX), and its row for a recording.

A CSV export is read as text (UTF-8, with or without a byte-order mark); an XLSX
export's first worksheet is read with openpyxl, keeping numbers as numbers and dates
as ISO text. The first row holds the column names. A row belongs to a recording when
its ``match column`` names the recording's file: the recording name itself, or its
CMCR/CMTR/HDF5 file name, with or without a folder (Windows or POSIX).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path, PurePosixPath, PureWindowsPath

from nmbatch.mea.errors import InputError

EXTENSIONS = (".cmcr", ".cmtr", ".h5", ".hdf5")
SHEET_SUFFIXES = (".csv", ".xlsx")

Value = str | int | float


@dataclass(frozen=True)
class Sheet:
    """A sheet export: its file, column names, and rows with their line (1 = the header)."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, Value]]]

    def matching(self, recording: str, column: str) -> list[tuple[int, dict[str, Value]]]:
        """The rows whose ``column`` names ``recording``."""
        return [(line, row) for line, row in self.rows if names(row.get(column, ""), recording)]


def names(cell: Value, recording: str) -> bool:
    """Whether a cell names the recording (its name or file name, any folder or extension)."""
    text = str(cell).strip()
    if not text:
        return False
    stem = (PureWindowsPath(text) if "\\" in text else PurePosixPath(text)).name
    for ext in EXTENSIONS:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem == recording


def _header(cells: list) -> list[str]:
    return [
        str(c).strip() if c not in (None, "") else f"column_{i + 1}" for i, c in enumerate(cells)
    ]


def _read_csv(path: Path) -> Sheet:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"sheet {path}, line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "export the sheet as CSV UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"sheet {path} is empty") from None
    columns = _header(header)
    rows = []
    for cells in reader:
        if any(c.strip() for c in cells):
            padded = cells + [""] * (len(columns) - len(cells))
            rows.append((reader.line_num, dict(zip(columns, padded, strict=False))))
    return Sheet(path, columns, rows)


def _cell(value: object) -> Value:
    if value is None:
        return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return value
    return str(value)


def _read_xlsx(path: Path) -> Sheet:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a damaged workbook
        raise InputError(f"sheet {path} cannot be read as XLSX: {exc}") from exc
    try:
        lines = book.worksheets[0].iter_rows(values_only=True)
        header = next(lines, None)
        if header is None:
            raise InputError(f"sheet {path} is empty")
        columns = _header(list(header))
        rows = []
        for line, cells in enumerate(lines, start=2):
            values = [_cell(c) for c in cells]
            if any(str(v).strip() for v in values):
                padded = values + [""] * (len(columns) - len(values))
                rows.append((line, dict(zip(columns, padded, strict=False))))
    finally:
        book.close()
    return Sheet(path, columns, rows)


def read_sheet(path: Path) -> Sheet:
    """Read a sheet export; InputError naming the file (and line) if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sheet export not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in SHEET_SUFFIXES:
        raise InputError(f"sheet {path}: give a .csv or .xlsx export")
    return _read_xlsx(path) if suffix == ".xlsx" else _read_csv(path)
