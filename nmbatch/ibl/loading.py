"""Load one session's IBL ALF datasets through ONE, with errors that name what was asked for.

The functions keep ONE's own exception types (``ALFObjectNotFound`` for a dataset that is not
in the cache table or not on disk), so error records say what ONE said; the message is
rewritten to name the dataset, the collection and the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from one.alf.exceptions import ALFError, ALFObjectNotFound

if TYPE_CHECKING:
    from one.api import One

PHOTOMETRY_COLLECTION = "alf/photometry"
SIGNAL_DATASET = "photometry.signal.pqt"
LOCATIONS_DATASET = "photometryROI.locations.pqt"
TRIALS_DATASET = "_ibl_trials.table.pqt"
# Sessions extracted with the current pipeline keep trials in alf/task_00; older ones in alf.
TRIALS_COLLECTIONS = ("alf/task_00", "alf")


def _load_dataset(one: One, eid: str, dataset: str, collection: str) -> Any:
    """Load one dataset; ONE errors are re-raised with the same type and a message naming it."""
    try:
        return one.load_dataset(eid, dataset, collection=collection)
    except ALFError as exc:
        raise type(exc)(
            f"{collection}/{dataset} of session {eid}: {exc.message}", terse=True
        ) from exc


class EmptyDatasetError(ValueError):
    """A dataset loaded but holds no rows, so there is nothing to analyse."""


def load_photometry_signal(one: One, eid: str) -> pd.DataFrame:
    """Return the long photometry table (one row per frame, bands interleaved).

    Raises
    ------
    one.alf.exceptions.ALFObjectNotFound
        The dataset is not in the cache or not on disk.
    pyarrow.lib.ArrowInvalid
        The file is there but is not a readable parquet file.
    EmptyDatasetError
        The table has no rows (no frame was recorded or extracted).
    """
    signal = _load_dataset(one, eid, SIGNAL_DATASET, PHOTOMETRY_COLLECTION)
    if len(signal) == 0:
        raise EmptyDatasetError(
            f"{PHOTOMETRY_COLLECTION}/{SIGNAL_DATASET} of session {eid} has no rows: "
            "no photometry frames to run QC on"
        )
    return signal


def load_photometry_locations(one: One, eid: str) -> pd.DataFrame:
    """Return the ROI table: index ``ROI`` ('Region0G'...), columns ``fiber``, ``brain_region``."""
    return _load_dataset(one, eid, LOCATIONS_DATASET, PHOTOMETRY_COLLECTION)


def load_trials(one: One, eid: str) -> tuple[pd.DataFrame, str]:
    """Return a session's trials table and the collection it was found in.

    Tries ``alf/task_00`` and then ``alf``; only "not found" moves on to the next collection,
    so a corrupt file is reported rather than hidden behind an older copy.

    Raises
    ------
    one.alf.exceptions.ALFObjectNotFound
        Neither collection holds a trials table; chained from the last attempt's error.
    """
    last: ALFObjectNotFound | None = None
    for collection in TRIALS_COLLECTIONS:
        try:
            return one.load_dataset(eid, TRIALS_DATASET, collection=collection), collection
        except ALFObjectNotFound as exc:
            last = exc
    tried = " nor ".join(TRIALS_COLLECTIONS)
    raise ALFObjectNotFound(
        f"{TRIALS_DATASET} of session {eid} not found in {tried}", terse=True
    ) from last
