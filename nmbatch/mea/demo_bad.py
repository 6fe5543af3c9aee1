"""Tiny recordings with one defect each, for the tests of bad input (and an unmatched row).

Each defect is ``(name, stage, phrase, fails)``: the stage that must fail (``fails``)
or raise a warning and finish, and a phrase its message must contain.
"""

from __future__ import annotations

import os
import pickle

from nmbatch.mea.demo_files import Demo, recording_name, sheet_row
from nmbatch.mea.mcs_writer import write_recording
from nmbatch.mea.synthetic import build_model
from nmbatch.mea.synthetic_visual import Movie

SHORT_GRAY_MOVIE = "gray_short_demo"
BAD_BAR_MOVIE = "moving_bar_mismatched_demo"
# A bar description listing 3 directions for the 2 trials its movie shows.
BAD_BAR_CONFIG = {
    "start_frame": 0,
    "trial_length_frame": 6,
    "repeat": 2,
    "moving_bar": {
        "directions_deg": [0, 45, 90],
        "speed_px_per_frame": 100.0,
        "bar_width_px": 50.0,
        "start_distance_px": 220.0,
        "field_size_px": [300.0, 300.0],
    },
}
CODE_RAN = "LABEL_FILE_RAN_CODE"  # what the forbidden pickle would print if it were loaded

DEFECTS = (
    ("missing-cmcr", "open_recording", "CMCR file not found", True),
    ("missing-cmtr", "open_recording", "CMTR file not found", True),
    ("broken-link", "open_recording", "link to its CMCR is broken", True),
    ("truncated", "open_recording", "cannot be opened as HDF5", True),
    ("not-hdf5", "open_recording", "not an HDF5 file", True),
    ("no-playlist", "step2_section_time", "no playlist", True),
    ("no-sheet-row", "step8_sheet_metadata", "no row", False),
    ("two-sheet-rows", "step8_sheet_metadata", "2 rows", False),
    ("malformed-labels", "step9_cell_type", "not valid JSON", True),
    ("forbidden-pickle", "step9_cell_type", "builtins.print", True),
    ("bar-mismatch", "step11_dsgc", "lists 3 directions for its 2 trials", True),
)


class _PrintsWhenLoaded:
    """Pickles as a call of ``print``: loading it with plain pickle would run that call."""

    def __reduce__(self):
        return (print, (CODE_RAN,))


def write_bad_inputs(demo: Demo, playlists: dict[str, list[Movie]], seed: int) -> list:
    """Write one tiny recording per defect (and an unmatched one); return their CSV rows."""
    recordings = demo.folder / "recordings"
    labels = demo.label_folder
    labels.mkdir(parents=True, exist_ok=True)
    tiny = [Movie(SHORT_GRAY_MOVIE, 6, "gray")]
    rows = []
    for k, (defect, stage, phrase, fails) in enumerate(DEFECTS + (("unmatched", "", "", 0),)):
        name = recording_name(k, month=2)
        playlist = tiny
        if defect == "bar-mismatch":
            playlist = [*tiny, Movie(BAD_BAR_MOVIE, 12, "moving_bar", BAD_BAR_CONFIG)]
        model = build_model(seed + 100 + k, playlist, n_units=2, tail_s=0.05)
        cmcr, cmtr = recordings / f"{name}.cmcr", recordings / f"{name}.cmtr"
        write_recording(
            recordings, name, model, "moved-away.cmcr" if defect == "broken-link" else None
        )
        if defect == "missing-cmcr":
            cmcr.unlink()
        elif defect == "missing-cmtr":
            cmtr.unlink()
        elif defect == "truncated":
            os.truncate(cmtr, cmtr.stat().st_size // 2)
        elif defect == "not-hdf5":
            cmcr.write_text("this is not an HDF5 file\n")
        elif defect == "malformed-labels":
            (labels / f"{name}.json").write_text('[{"unit": 1, "label": "RGC"},')
        elif defect == "forbidden-pickle":
            (labels / f"{name}.pkl").write_bytes(pickle.dumps({1: _PrintsWhenLoaded()}))
        if defect != "no-playlist":
            playlists[name] = playlist
        if defect != "no-sheet-row":
            demo.sheet_rows[name] = sheet_row(name, 10 + k)
        if defect == "two-sheet-rows":
            demo.sheet_extra.append(sheet_row(name, 20 + k))
        if defect == "unmatched":
            demo.unmatched.append(name)
        elif fails:
            demo.failures[name] = (stage, phrase)
        else:
            demo.warnings[name] = (stage, phrase)
        rows.append((f"recordings/{name}.cmcr", f"recordings/{name}.cmtr", defect != "unmatched"))
    return rows
