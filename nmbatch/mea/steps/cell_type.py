"""Step 9: manual cell-type labels per unit from the label folder (no raw data needed)."""

from __future__ import annotations

import h5py
import numpy as np

from nmbatch.mea.labels import load_labels
from nmbatch.mea.steps.registry import StepInput, step


@step(9, needs_raw=False, requires=(1,), outputs=("units/*/auto_label", "metadata/cell_type"))
def cell_type(inp: StepInput) -> None:
    """Write ``units/<unit>/auto_label`` (text; '' without a label) and ``metadata/cell_type``.

    ``auto_label`` has attributes ``labelled`` and ``source`` (the file); the
    recording's ``metadata/cell_type`` has ``status`` (labelled, no_labels,
    no_label_folder), ``folder``, ``files``, ``n_labelled``, ``n_unlabelled`` and
    ``unknown_units`` (labelled units the recording does not have: a warning).
    """
    units = inp.out["units"]
    folder = inp.labels
    found = load_labels(folder, inp.recording) if folder and folder.is_dir() else None
    by_unit = found.by_unit if found else {}
    ids = {int(u.attrs["unit_id"]): name for name, u in units.items()}
    for uid, name in ids.items():
        label = by_unit.get(uid, "")
        ds = units[name].create_dataset("auto_label", data=label, dtype=h5py.string_dtype())
        ds.attrs.update(labelled=bool(label), source=found.source.get(uid, "") if found else "")
    unknown = sorted(set(by_unit) - set(ids))
    if found is None:
        status = "no_label_folder"
    else:
        status = "labelled" if set(by_unit) & set(ids) else "no_labels"
    n_labelled = len(set(by_unit) & set(ids))
    inp.out.require_group("metadata").create_group("cell_type").attrs.update(
        status=status,
        folder=str(folder or ""),
        files=np.array(found.files if found else [], dtype=h5py.string_dtype()),
        n_labelled=n_labelled,
        n_unlabelled=len(ids) - n_labelled,
        unknown_units=np.array(unknown, np.int64),
    )
    if unknown:
        files = ", ".join(found.files)
        inp.warn(f"labels in {files} for unit(s) {unknown} that this recording does not have")
