"""The base of jobs whose items are IBL sessions read through ONE.

It owns what those jobs share: the data source options (``--one-cache``,
``--demo``, ``--sessions``), the ``--nm`` / ``--subject`` selections, and the
listing: sessions table -> :func:`clean_sessions` with the configured exclusions
-> selections -> one item per session.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.job import Item, Job, Listing
from nmbatch.ibl.one_source import OneSource, add_source_arguments
from nmbatch.ibl.sessions import (
    EXCLUDED_SESSION_TYPE,
    MISC_SESSION_TYPE,
    clean_sessions,
    select_sessions,
)


@dataclass
class SessionListing(Listing):
    """The sessions listed: the cleaned table, and the rows cleaning excluded (with reasons).

    ``exclude_session_types`` is the setting cleaning used, so the summary can name the fix
    when it left most sessions out.
    """

    sessions: pd.DataFrame
    excluded: pd.DataFrame
    exclude_session_types: tuple[str, ...] = ()

    def exclusion_lines(self) -> list[str]:
        """Sessions kept and left out, by reason (session types named), plus a warning when
        most sessions were left out because their type is unknown ('misc')."""
        n_all = len(self.sessions) + len(self.excluded)
        lines = [f"sessions after cleaning: {len(self.sessions)}; excluded: {len(self.excluded)}"]
        by_type = self.excluded["excluded_reason"] == EXCLUDED_SESSION_TYPE
        for reason, n in self.excluded.loc[~by_type, "excluded_reason"].value_counts().items():
            lines.append(f"  excluded ({reason}): {n}")
        for session_type, n in self.excluded.loc[by_type, "session_type"].value_counts().items():
            lines.append(f"  excluded (session type {session_type}): {n}")
        n_misc = int((by_type & (self.excluded["session_type"] == MISC_SESSION_TYPE)).sum())
        if n_misc and n_misc * 2 >= n_all:
            kept = [t for t in self.exclude_session_types if t != MISC_SESSION_TYPE]
            lines += [
                f"WARNING: {n_misc} of {n_all} sessions were excluded because their session type "
                f"is unknown ('{MISC_SESSION_TYPE}': no task protocol says what they were, as in a "
                "ONE cache made by one.alf.cache.make_parquet_db).",
                "  Fix: give a sessions table with a session_type column (--sessions FILE), or "
                "stop excluding unknown types: --set "
                f"'exclude_session_types=[{', '.join(kept)}]'",
            ]
        return lines


class SessionJob(Job):
    """A job with one item per IBL session.

    Parameters
    ----------
    source : OneSource
        Where the sessions' data are (a ONE cache, the demo, or the configured Alyx).
    sessions_file : Path, optional
        The sessions table; default: the source's own (see :meth:`OneSource.sessions_table`).
    nm, subjects : sequence of str
        Only these neuromodulators / subjects (after cleaning); empty: all.
    """

    id_column: ClassVar[str] = "eid"
    label_column: ClassVar[str] = "subject"
    item_columns: ClassVar[tuple[str, ...]] = ("eid", "subject")

    def __init__(
        self,
        source: OneSource,
        sessions_file: Path | None = None,
        nm: Sequence[str] = (),
        subjects: Sequence[str] = (),
    ):
        self.source = source
        self.sessions_file = sessions_file
        self.nm = tuple(nm)
        self.subjects = tuple(subjects)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the data source options and the ``--nm`` / ``--subject`` selections."""
        add_source_arguments(parser)
        parser.add_argument(
            "--nm",
            nargs="+",
            default=[],
            metavar="NM",
            help="only sessions recording these neuromodulators (the sessions table's NM "
            "column, e.g. DA 5HT NE ACh); default: all",
        )
        parser.add_argument(
            "--subject",
            nargs="+",
            default=[],
            metavar="SUBJECT",
            help="only sessions of these subjects; default: all",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SessionJob:
        """Build the job from the parsed command line."""
        return cls(OneSource.from_args(args), args.sessions, args.nm, args.subject)

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """The shared session parameters: lists of names, and a whole number of trials."""
        for key in ("exclude_subjects", "exclude_session_types"):
            values = params.get(key, [])
            if not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{key} must be a list of names, not {values!r}")
        min_ntrials = params.get("min_ntrials", 0)
        if not isinstance(min_ntrials, int) or isinstance(min_ntrials, bool) or min_ntrials < 0:
            raise ConfigError(f"min_ntrials must be a whole number >= 0, not {min_ntrials!r}")

    def list_items(self, params: Mapping[str, Any]) -> SessionListing:
        """Clean the sessions table, apply ``--nm`` / ``--subject``, one item per session."""
        table = self.source.sessions_table(self.sessions_file)
        sessions, excluded = clean_sessions(
            table, params.get("exclude_subjects", ()), params.get("exclude_session_types", ())
        )
        selected = select_sessions(sessions, self.nm, self.subjects)
        items = [
            Item(
                id=row["eid"],
                label=row["subject"],
                data={c: _plain(row.get(c)) for c in self.item_columns},
            )
            for row in selected.to_dict("records")
        ]
        return SessionListing(
            items, sessions, excluded, tuple(params.get("exclude_session_types", ()))
        )


def _plain(value: Any) -> Any:
    """A sessions-table cell as plain data for the worker (None when missing)."""
    return None if pd.api.types.is_scalar(value) and pd.isna(value) else value
