"""Where IBL sessions come from: a local ONE cache, the generated demo, or the configured Alyx.

A :class:`OneSource` is a small picklable description (a folder, or "the configured Alyx"),
not an open connection: each worker opens its own ``One`` once, through
:func:`nmbatch.engine.job.worker_resource`, keyed by the source.

The sessions table (one row per session, see :mod:`nmbatch.ibl.sessions`) comes from
``--sessions FILE``; without it from the demo's own metadata table; otherwise it is built
from ONE's cache tables (:func:`sessions_from_one`).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from iblutil.io.params import getfile
from one.api import ONE, One, OneAlyx
from one.params import get_default_client

from nmbatch.engine.errors import DataSourceError
from nmbatch.engine.job import worker_resource
from nmbatch.ibl.demo import make_demo_one_cache, read_demo_info
from nmbatch.ibl.loading import (
    LOCATIONS_DATASET,
    PHOTOMETRY_COLLECTION,
    SIGNAL_DATASET,
    TRIALS_COLLECTIONS,
    TRIALS_DATASET,
)
from nmbatch.ibl.sessions import check_dates, session_type_from_protocol

DEMO_DIRNAME = "demo_one_cache"
ONE_TABLES = ("sessions.pqt", "datasets.pqt")
REQUIRED_SESSION_COLUMNS = ("eid", "subject", "date", "session_type")
_REVISION = re.compile(r"#[^/]*#/")

# has_* flags derived from the dataset paths a ONE cache lists (revision folders ignored)
_EXTRACTED = {
    "has_extracted_task": tuple(f"{c}/{TRIALS_DATASET}" for c in TRIALS_COLLECTIONS),
    "has_extracted_photometry_signal": (f"{PHOTOMETRY_COLLECTION}/{SIGNAL_DATASET}",),
    "has_extracted_photometry_locations": (f"{PHOTOMETRY_COLLECTION}/{LOCATIONS_DATASET}",),
}
_RAW = {
    "has_raw_task": ("raw_task_data", "raw_behavior_data"),
    "has_raw_photometry": ("raw_photometry_data",),
}


@dataclass(frozen=True)
class OneSource:
    """A ONE data source, cheap to pickle and to send with every task.

    Attributes
    ----------
    cache_dir : Path or None
        A local ONE cache (``sessions.pqt`` and ``datasets.pqt`` plus the ALF folders), opened
        with ``One(cache_dir, mode='local')``; None means the user's configured Alyx (``ONE()``).
    demo : bool
        The cache is the generated demo: :meth:`prepare` makes it if it is missing.
    """

    cache_dir: Path | None = None
    demo: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OneSource:
        """Build the source from ``--one-cache`` / ``--demo`` (see :func:`add_source_arguments`)."""
        if args.demo is not None:
            root = Path(args.demo) if args.demo else Path(args.output) / DEMO_DIRNAME
            return cls(cache_dir=root.resolve(), demo=True)
        if args.one_cache is not None:
            return cls(cache_dir=Path(args.one_cache).resolve())
        return cls()

    def describe(self) -> str:
        """Say in words where the data come from."""
        if self.cache_dir is None:
            return "the configured ONE database (Alyx)"
        return f"{'demo ' if self.demo else ''}ONE cache {self.cache_dir}"

    def prepare(self) -> Path | None:
        """On the driver: return the demo's sessions table, generating the demo if there is none.

        A demo already there is used whatever its size; a new one gets the default size.
        Not a demo source: None.
        """
        if not self.demo:
            return None
        info = read_demo_info(self.cache_dir) or make_demo_one_cache(self.cache_dir)
        return info.sessions_file

    def open(self) -> One:
        """Open a new ONE instance on this source.

        Raises
        ------
        DataSourceError
            The folder is not a ONE cache, or no Alyx database is configured and none was named.
        """
        if self.cache_dir is not None:
            missing = [n for n in ONE_TABLES if not (self.cache_dir / n).is_file()]
            if missing:
                raise DataSourceError(
                    f"{self.cache_dir} is not a ONE cache: {' and '.join(missing)} missing "
                    "(ONE's cache tables). Give the folder that holds them with --one-cache DIR."
                )
            try:
                return One(cache_dir=self.cache_dir, mode="local")
            except Exception as exc:
                raise DataSourceError(unreadable_cache_message(self.cache_dir, exc)) from exc
        if configured_alyx_client() is None:  # ONE() would prompt for a setup
            raise DataSourceError(
                "no ONE database is configured on this machine (run one.api.ONE.setup() once), "
                "and no data source was given: point the job at a local ONE cache with "
                "--one-cache DIR, or try it on generated data with --demo"
            )
        try:
            return ONE()
        except Exception as exc:
            raise DataSourceError(f"cannot open the configured ONE database: {exc}") from exc

    def one(self) -> One:
        """The ONE instance of this process (built once per worker, then shared)."""
        key = f"one:{self.cache_dir}" if self.cache_dir is not None else "one:alyx"
        return worker_resource(key, self.open)

    def sessions_table(self, sessions_file: Path | None = None) -> pd.DataFrame:
        """Return the sessions table: from ``sessions_file``, the demo's own, or ONE's tables.

        A local ONE cache is opened here in any case, so that damaged cache tables stop the
        run at listing rather than failing every session on the workers.
        """
        demo_sessions = self.prepare()  # the demo must exist even with another table
        sessions_file = sessions_file or demo_sessions
        one = self.open() if self.cache_dir is not None or sessions_file is None else None
        if sessions_file is not None:
            return read_sessions_file(sessions_file)
        return sessions_from_one(one)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--one-cache``, ``--demo`` and ``--sessions``, the data options of the IBL jobs."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--one-cache",
        metavar="DIR",
        type=Path,
        help="a local ONE cache: the folder with ONE's sessions.pqt and datasets.pqt and the "
        "<lab>/Subjects/... session folders, read offline. Without --one-cache or --demo the "
        "ONE database configured on this machine (Alyx) is used",
    )
    where.add_argument(
        "--demo",
        nargs="?",
        const="",
        metavar="DIR",
        help="run on a generated demo ONE cache with planted faults (made on first use, reused "
        f"after); DIR defaults to <output>/{DEMO_DIRNAME}",
    )
    parser.add_argument(
        "--sessions",
        metavar="FILE",
        type=Path,
        help="the sessions table to work from (parquet with eid, subject, date, session_type, "
        "NM, has_*, session_status ...); default: the demo's own table, or one built from the "
        "ONE cache tables (which has no NM, so --nm then cannot select)",
    )


def configured_alyx_client() -> str | None:
    """Return the default Alyx client ONE is set up with, or None, without side effects.

    ONE's own reader creates ``~/.one/.caches`` when it is missing (and fails without a home
    folder), so the file's existence is checked first.
    """
    if not Path(getfile("one/caches")).is_file():
        return None
    return get_default_client(include_schema=False)


def unreadable_cache_message(cache_dir: Path, exc: Exception) -> str:
    """Say which ONE cache table ``One()`` could not read, and why."""
    for name in ONE_TABLES:
        path = cache_dir / name
        try:
            pq.read_table(path)
        except Exception as table_exc:
            cause = (str(table_exc).splitlines() or [type(table_exc).__name__])[0]
            return (
                f"ONE cache table {path} cannot be read ({type(table_exc).__name__}: {cause}); "
                "it is truncated or damaged: copy or download the cache tables again, or "
                "rebuild them from the session folders (one.alf.cache.make_parquet_db)"
            )
    return f"cannot open the ONE cache {cache_dir}: {type(exc).__name__}: {exc}"


def read_sessions_file(path: Path) -> pd.DataFrame:
    """Read a sessions table (parquet) and check it has the columns the jobs rely on."""
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"sessions table {path} does not exist")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise DataSourceError(f"cannot read sessions table {path}: {exc}") from exc
    missing = [c for c in REQUIRED_SESSION_COLUMNS if c not in df.columns]
    if missing:
        raise DataSourceError(f"sessions table {path} lacks column(s) {missing}")
    df = df.astype({"eid": str})
    check_dates(df, str(path))
    return df


def sessions_from_one(one: One) -> pd.DataFrame:
    """Build a sessions table from the cache tables a ONE instance has loaded.

    Derived columns: ``session_type`` from ``task_protocol``
    (:func:`~nmbatch.ibl.sessions.session_type_from_protocol`); ``has_extracted_task``,
    ``has_extracted_photometry_signal``, ``has_extracted_photometry_locations``,
    ``has_raw_task`` and ``has_raw_photometry`` from the datasets the cache lists as existing.
    ``NM`` and ``session_status`` are unknown to ONE and left empty (give ``--sessions`` to
    have them); empty ``session_status`` means duplicates of a day are all kept.
    """
    query = {"query_type": "local"} if isinstance(one, OneAlyx) else {}
    eids, records = one.search(details=True, **query)
    if not eids:
        raise DataSourceError(f"the ONE cache at {one.cache_dir} lists no sessions")
    sessions = pd.DataFrame(records)
    sessions.insert(0, "eid", [str(e) for e in eids])
    sessions["session_type"] = sessions["task_protocol"].map(session_type_from_protocol)
    sessions["NM"] = None
    sessions["session_status"] = None
    check_dates(sessions, str(Path(one.cache_dir) / "sessions.pqt"))

    datasets = one.list_datasets(details=True, **query).reset_index()
    datasets = datasets[datasets["exists"]]
    rel = datasets["rel_path"].str.replace(_REVISION, "", regex=True)
    eid = datasets["eid"].astype(str)
    for column, paths in _EXTRACTED.items():
        sessions[column] = sessions["eid"].isin(eid[rel.isin(paths)])
    for column, prefixes in _RAW.items():
        sessions[column] = sessions["eid"].isin(eid[rel.str.startswith(prefixes)])
    return sessions.sort_values(["date", "subject", "number"], ignore_index=True)
