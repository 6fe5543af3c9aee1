"""The base of jobs whose items are IBL sessions read through ONE.

It owns what those jobs share: the data source options (``--one-cache``,
``--demo``, ``--sessions``), the ``--nm`` / ``--subject`` selections, and the
listing: sessions table -> :func:`clean_sessions` with the configured exclusions
-> selections -> one item per session.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from nmbatch.engine.job import Item, Job
from nmbatch.ibl.one_source import OneSource, add_source_arguments
from nmbatch.ibl.sessions import clean_sessions, select_sessions


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
        # Driver-only: the cleaned sessions table and the excluded rows, never sent to workers.
        self.sessions: pd.DataFrame | None = None
        self.excluded: pd.DataFrame | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the driver's sessions tables: workers need only the source."""
        return {**self.__dict__, "sessions": None, "excluded": None}

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

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ConfigError for parameters the job cannot run with (before any item)."""

    def list_items(self, params: Mapping[str, Any]) -> list[Item]:
        """Clean the sessions table, apply ``--nm`` / ``--subject``, one item per session."""
        self.check_params(params)
        table = self.source.sessions_table(self.sessions_file)
        self.sessions, self.excluded = clean_sessions(
            table, params.get("exclude_subjects", ()), params.get("exclude_session_types", ())
        )
        selected = select_sessions(self.sessions, self.nm, self.subjects)
        return [
            Item(
                id=row["eid"],
                label=row["subject"],
                data={c: _plain(row.get(c)) for c in self.item_columns},
            )
            for row in selected.to_dict("records")
        ]


def _plain(value: Any) -> Any:
    """A sessions-table cell as plain data for the worker (None when missing)."""
    return None if pd.api.types.is_scalar(value) and pd.isna(value) else value
