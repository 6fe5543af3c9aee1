"""The lab sheet's export: CSV and XLSX, matching a recording's row, unreadable exports."""

from datetime import datetime

import openpyxl
import pytest

from nmbatch.mea.errors import InputError
from nmbatch.mea.sheet import names, read_sheet

REC = "2024.01.10-11.15.41-Rec"


def test_a_cell_names_the_recording_by_name_or_file():
    for cell in (REC, f"{REC}.cmcr", f"D:\\data\\{REC}.CMTR", f"/data/{REC}.h5", f" {REC} "):
        assert names(cell, REC), cell
    for cell in ("", f"{REC}x", f"{REC}.txt", "2024.01.10"):
        assert not names(cell, REC), cell


def test_csv_rows_keep_their_lines_and_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(f'filename,age,notes\n{REC}.cmcr,60,"a, b"\n\nother.cmcr,61\n', "utf-8-sig")
    sheet = read_sheet(path)
    assert sheet.columns == ["filename", "age", "notes"]
    assert sheet.matching(REC, "filename") == [
        (2, {"filename": f"{REC}.cmcr", "age": "60", "notes": "a, b"})
    ]
    assert sheet.rows[1] == (4, {"filename": "other.cmcr", "age": "61", "notes": ""})


def test_xlsx_keeps_numbers_and_dates(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["filename", "age_days", "date", None])
    sheet.append([f"{REC}.cmcr", 60, datetime(2024, 1, 10, 11, 15), "x"])
    sheet.append([f"{REC}.cmtr", 2.5, None, None])
    book.save(tmp_path / "s.xlsx")
    read = read_sheet(tmp_path / "s.xlsx")
    assert read.columns == ["filename", "age_days", "date", "column_4"]
    rows = read.matching(REC, "filename")
    assert [line for line, _ in rows] == [2, 3]
    assert rows[0][1] == {
        "filename": f"{REC}.cmcr",
        "age_days": 60,
        "date": "2024-01-10T11:15:00",
        "column_4": "x",
    }


@pytest.mark.parametrize(
    "name, content, phrase",
    [
        ("s.csv", "filename\nok\n\xe9t\xe9\n".encode("latin-1"), "line 3: not UTF-8"),
        ("s.csv", b"", "is empty"),
        ("s.xlsx", b"not a workbook", "cannot be read as XLSX"),
        ("s.ods", b"x", "give a .csv or .xlsx"),
    ],
)
def test_an_unreadable_export_is_named(tmp_path, name, content, phrase):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match="sheet") as error:
        read_sheet(tmp_path / name)
    assert phrase in str(error.value) and name in str(error.value)
