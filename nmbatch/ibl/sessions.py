"""The sessions table: which IBL sessions an analysis should look at, and why others are left out.

A sessions table has one row per session (``eid``, ``subject``, ``date``, ``task_protocol``,
``session_type``, ``NM``, the metadata flags ``has_*``, ``session_status`` ...). These are plain
functions over plain DataFrames so that scripts and notebooks can use them without the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from nmbatch.engine.errors import DataSourceError

# Substrings of an iblrig task protocol name, checked in this order; the first match names the
# session type. A session that ran several tasks ('a/b') is typed by its first task.
SESSION_TYPE_PATTERNS = (
    ("habituation", "habituation"),
    ("training", "training"),
    ("biased", "biased"),
    ("ephys", "ephys"),
    ("advanced", "advanced"),
    ("neuromodulator", "neuromodulator"),
    ("passive", "passive"),
    ("histology", "histology"),
)
MISC_SESSION_TYPE = "misc"

EXCLUDED_SUBJECT = "excluded_subject"
EXCLUDED_SESSION_TYPE = "excluded_session_type"
CONFLICT_DUPLICATE = "conflict_duplicate"


def session_type_from_protocol(task_protocol: str | None) -> str:
    """Return the session type ('training', 'biased', ...) named by an iblrig task protocol.

    Examples
    --------
    >>> session_type_from_protocol('_iblrig_tasks_biasedChoiceWorld8.0.0')
    'biased'
    >>> session_type_from_protocol(None)
    'misc'
    """
    if not isinstance(task_protocol, str) or not task_protocol:
        return MISC_SESSION_TYPE
    first = task_protocol.split("/")[0].casefold()
    for pattern, session_type in SESSION_TYPE_PATTERNS:
        if pattern in first:
            return session_type
    return MISC_SESSION_TYPE


def check_dates(df: pd.DataFrame, origin: str) -> None:
    """Fail clearly when a sessions table's ``date`` column holds values that are not dates.

    Raises
    ------
    DataSourceError
        Naming ``origin`` (the table's file), the offending values and their sessions.
    """
    if "date" not in df.columns:
        return
    try:
        pd.to_datetime(df["date"])  # as clean_sessions reads it
        return
    except (ValueError, TypeError, OverflowError) as exc:
        cause = (str(exc).splitlines() or [""])[0]
    bad = []
    for i, value in df["date"].items():
        try:
            pd.to_datetime(value)
        except (ValueError, TypeError, OverflowError):
            bad.append(f"{value!r} (session {df['eid'][i] if 'eid' in df.columns else i})")
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    raise DataSourceError(
        f"sessions table {origin}: column 'date' holds values that are not dates: "
        f"{shown or cause}; give dates as YYYY-MM-DD"
    )


def clean_sessions(
    df: pd.DataFrame,
    exclude_subjects: Iterable[str] = (),
    exclude_session_types: Iterable[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop the sessions an analysis must not use, and say why each one was dropped.

    Rules, in order (a row dropped by one rule is not looked at again):

    1. the subject is in ``exclude_subjects`` (known bad animals);
    2. the ``session_type`` is in ``exclude_session_types`` (habituation, passive, ...);
    3. of several sessions of one subject on one day, rows whose ``session_status`` is
       'conflict' are dropped when the day also has a 'good' row. Days without a 'good' row,
       or a table without ``session_status``, keep every row: nothing says which is right.

    Parameters
    ----------
    df : DataFrame
        Sessions table with at least ``subject``, ``session_type`` and ``date`` columns.
    exclude_subjects, exclude_session_types : iterable of str
        Values to drop.

    Returns
    -------
    kept : DataFrame
        The remaining rows, in their original order, with a fresh index.
    excluded : DataFrame
        The dropped rows with an extra ``excluded_reason`` column ('excluded_subject',
        'excluded_session_type' or 'conflict_duplicate').
    """
    reason = pd.Series(pd.NA, index=df.index, dtype="string")
    reason[df["subject"].isin(list(exclude_subjects))] = EXCLUDED_SUBJECT
    by_type = df["session_type"].isin(list(exclude_session_types)) & reason.isna()
    reason[by_type] = EXCLUDED_SESSION_TYPE

    if "session_status" in df.columns:
        remaining = df[reason.isna()]
        day = pd.to_datetime(remaining["date"]).dt.normalize()
        status = remaining["session_status"]
        has_good = status.isin(["good"]).groupby([remaining["subject"], day]).transform("any")
        conflict = status.isin(["conflict"]) & has_good
        reason[conflict[conflict].index] = CONFLICT_DUPLICATE

    kept = df[reason.isna()].reset_index(drop=True)
    excluded = df[reason.notna()].assign(excluded_reason=reason[reason.notna()])
    return kept, excluded.reset_index(drop=True)


# (what actually loaded, what the metadata claims); a can_load_* value is True or False once
# the load was tried, and missing (NA) when it was not (an earlier load failed, or not run yet).
LOAD_CHECKS = (
    ("can_load_photometry_signal", "has_extracted_photometry_signal"),
    ("can_load_photometry_locations", "has_extracted_photometry_locations"),
    ("can_load_trials", "has_extracted_task"),
)
LOAD_CHECK_COLUMNS = ("has, loads", "has, fails", "has not, loads", "has not, fails")


def compare_load_flags(sessions: pd.DataFrame) -> pd.DataFrame:
    """Count, per dataset, sessions by metadata claim (``has_*``) and actual load (``can_load_*``).

    Only sessions where the load was tried are counted; checks whose columns the table lacks
    are left out. "has, fails" are the sessions whose metadata promises data that is not there.

    Returns
    -------
    DataFrame
        Index: the ``can_load_*`` column; columns :data:`LOAD_CHECK_COLUMNS` (counts).
    """
    rows = {}
    for can, has in LOAD_CHECKS:
        if can not in sessions.columns or has not in sessions.columns:
            continue
        tried = sessions[sessions[can].notna()]
        loads = tried[can].astype(bool)
        claims = tried[has].fillna(False).astype(bool)
        counts = [(claims & loads), (claims & ~loads), (~claims & loads), (~claims & ~loads)]
        rows[can] = [int(c.sum()) for c in counts]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(LOAD_CHECK_COLUMNS))


def select_sessions(
    sessions: pd.DataFrame, nm: Sequence[str] = (), subjects: Sequence[str] = ()
) -> pd.DataFrame:
    """Keep the sessions of the given neuromodulators and subjects (empty: no filter).

    Raises
    ------
    DataSourceError
        A requested value matches no session (most likely a typo), or ``nm`` is given and the
        table has no ``NM`` values.
    """
    for column, wanted, option in (("NM", nm, "--nm"), ("subject", subjects, "--subject")):
        if not wanted:
            continue
        present = sessions[column].dropna() if column in sessions.columns else pd.Series()
        if present.empty:
            raise DataSourceError(
                f"{option} needs a sessions table with {column} values; pass --sessions FILE"
            )
        unknown = sorted(set(wanted) - set(present))
        if unknown:
            raise DataSourceError(
                f"{option} {unknown} matches no session; present: {sorted(set(present))}"
            )
        sessions = sessions[sessions[column].isin(wanted)]
    return sessions
