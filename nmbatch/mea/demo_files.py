"""The demo's files other than the recordings: stimuli, sheet export, label files.

:class:`Demo` is what a generated demo holds, with its planted truth.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nmbatch.mea.synthetic import RecordingModel
from nmbatch.mea.synthetic_visual import Movie

SHEET_NAME = "gsheet_table.csv"
LABELS = ("RGC", "AC", "Other", "Unknown")


@dataclass
class Demo:
    """What :func:`make_demo` wrote: paths, the planted truth, and the expected failures."""

    folder: Path
    csv: Path
    stimuli: Path
    models: dict[str, RecordingModel] = field(default_factory=dict)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    warnings: dict[str, tuple[str, str]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    sheet_rows: dict[str, dict[str, str]] = field(default_factory=dict)
    sheet_extra: list[dict[str, str]] = field(default_factory=list)
    labels: dict[str, dict[int, str]] = field(default_factory=dict)

    @property
    def sheet(self) -> Path:
        return self.folder / SHEET_NAME

    @property
    def label_folder(self) -> Path:
        return self.folder / "labels"


def recording_name(index: int, month: int = 1) -> str:
    """A recording name in the MCS style, e.g. ``2024.01.17-11.15.41-Rec``."""
    return f"2024.{month:02d}.{10 + index:02d}-11.{15 + index:02d}.41-Rec"


def write_stimuli(folder: Path, playlists: dict[str, list[Movie]], pixels: dict[str, np.ndarray]):
    """Playlist and movie-length tables, trial configs and the noise movies' pixels."""
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "movies").mkdir(parents=True, exist_ok=True)
    movies: dict[str, Movie] = {}
    with open(folder / "playlist.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["recording", "movies"])
        for name, playlist in playlists.items():
            writer.writerow([name, ";".join(m.name for m in playlist)])
            movies.update({m.name: m for m in playlist})
    with open(folder / "movie_length.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["movie", "n_frames"])
        writer.writerows((m.name, m.n_frames) for m in movies.values())
    for movie in movies.values():
        if movie.config:
            (folder / "configs" / f"{movie.name}.json").write_text(json.dumps(movie.config))
    for name, frames in pixels.items():
        np.save(folder / "movies" / f"{name}.npy", frames)


def sheet_row(name: str, index: int) -> dict[str, str]:
    """A row of the lab sheet for recording ``name`` (as an export has it: text)."""
    return {
        "filename": f"{name}.cmcr",
        "date": name.split("-")[0].replace(".", "-"),
        "animal_id": f"M{100 + index}",
        "eye": "left" if index % 2 == 0 else "right",
        "genotype": "wild type",
        "age_days": str(60 + 7 * index),
        "notes": "synthetic; ON/OFF and DS units planted",
    }


def write_sheet(demo: Demo) -> None:
    """The sheet export next to the mapping CSV, plus a row for a recording not in the CSV."""
    rows = [*demo.sheet_rows.values(), *demo.sheet_extra, sheet_row("2023.12.01-09.00.00-Rec", 99)]
    pd.DataFrame(rows).to_csv(demo.sheet, index=False)


def write_labels(demo: Demo) -> None:
    """Labels of the first recording in ``labels.csv``, the others' as legacy pickles.

    Each recording's last unit is left unlabelled.
    """
    demo.label_folder.mkdir(exist_ok=True)
    names = list(demo.labels)
    table = [
        {"recording": name, "unit": unit, "label": label}
        for name in names[:1]
        for unit, label in demo.labels[name].items()
    ]
    pd.DataFrame(table, columns=["recording", "unit", "label"]).to_csv(
        demo.label_folder / "labels.csv", index=False
    )
    for name in names[1:]:
        frame = pd.DataFrame({"unit": list(demo.labels[name]), "label": demo.labels[name].values()})
        frame.to_pickle(demo.label_folder / f"{name}.pkl")
