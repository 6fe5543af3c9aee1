"""Manual cell-type labels per unit, from a folder of label files.

Files of a recording ``R`` are ``R.<ext>`` or ``R_<anything>.<ext>``; files named
``labels*.<ext>`` are shared by all recordings and need a ``recording`` column
(rows of other recordings are ignored). Other files are not read. Formats:

- ``.csv`` (UTF-8), ``.parquet``, ``.json`` (a list of records, a dict of columns, or
  ``{unit: label}``): columns ``unit`` and ``label`` (and ``recording``);
- ``.pkl`` / ``.pickle`` (the predecessor's): a DataFrame as above, a Series
  (index unit, values label) or a dict ``{unit: label}``, read with
  :mod:`nmbatch.mea.safe_pickle` (never plain pickle: a label file must not run code).

A unit is an integer id or a name such as ``unit_003``. An empty label means none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nmbatch.mea.errors import InputError
from nmbatch.mea.safe_pickle import ForbiddenClass, load_data_pickle

SUFFIXES = (".csv", ".json", ".parquet", ".pkl", ".pickle")


@dataclass
class Labels:
    """A recording's labels by unit id, and the files they came from."""

    by_unit: dict[int, str] = field(default_factory=dict)
    source: dict[int, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def label_files(folder: Path, recording: str) -> list[Path]:
    """The files of ``folder`` that may hold labels of ``recording``, sorted by name."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and (p.stem == recording or p.stem.startswith(f"{recording}_") or _shared(p))
    )


def _shared(path: Path) -> bool:
    return path.stem.lower().startswith("labels")


def _as_table(obj: object, path: Path) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        return obj.reset_index() if "unit" not in obj.columns else obj
    if isinstance(obj, pd.Series):
        return pd.DataFrame({"unit": obj.index, "label": obj.to_numpy()})
    if isinstance(obj, dict) and obj and all(not isinstance(v, list | dict) for v in obj.values()):
        return pd.DataFrame({"unit": list(obj), "label": list(obj.values())})
    if isinstance(obj, dict | list):
        try:
            return pd.DataFrame(obj)
        except ValueError as exc:
            raise InputError(f"label file {path}: not a table of unit, label: {exc}") from exc
    raise InputError(f"label file {path} holds a {type(obj).__name__}, not a table of labels")


def read_table(path: Path) -> pd.DataFrame:
    """One label file as a table; InputError naming the file and the cause."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".json":
            return _as_table(json.loads(path.read_text(encoding="utf-8")), path)
        return _as_table(load_data_pickle(path), path)
    except ForbiddenClass as exc:
        raise InputError(
            f"label file {path} holds class {exc.global_name}, which a label pickle may not: "
            "only plain containers, strings, numbers and numpy/pandas data are read "
            "(nothing in it was run)"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"label file {path} is not valid JSON: {exc}") from None
    except InputError:
        raise
    except Exception as exc:  # each reader raises its own types for a damaged file
        raise InputError(f"label file {path} cannot be read: {type(exc).__name__}: {exc}") from None


def unit_id(value: object, path: Path) -> int:
    """A unit id from ``3``, ``3.0``, ``'3'`` or ``'unit_003'``."""
    text = str(value).strip().removeprefix("unit_")
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise InputError(f"label file {path}: {value!r} is not a unit id")
    return int(number)


def load_labels(folder: Path, recording: str) -> Labels:
    """Every label of ``recording`` in ``folder``; InputError for a bad file or a conflict."""
    labels = Labels()
    for path in label_files(folder, recording):
        table = read_table(path)
        missing = [c for c in ("unit", "label") if c not in table.columns]
        if _shared(path) and "recording" not in table.columns:
            missing.append("recording")
        if missing:
            raise InputError(f"label file {path} lacks column(s) {', '.join(missing)}")
        if "recording" in table.columns:
            table = table[table["recording"].astype(str).str.strip() == recording]
        used = False
        for unit, label in zip(table["unit"], table["label"], strict=True):
            text = "" if pd.isna(label) else str(label).strip()
            if not text:
                continue
            uid = unit_id(unit, path)
            if uid in labels.by_unit and labels.by_unit[uid] != text:
                raise InputError(
                    f"unit {uid} is labelled {labels.by_unit[uid]!r} in "
                    f"{labels.source[uid]} and {text!r} in {path.name}"
                )
            labels.by_unit[uid], labels.source[uid] = text, path.name
            used = True
        if used:
            labels.files.append(path.name)
    return labels
