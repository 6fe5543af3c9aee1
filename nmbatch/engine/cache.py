"""The resumable cache of one analysis (the seed's ``AnalysisCache``).

Layout of ``<output>/<analysis>/``::

    manifest.json                     analysis, created, updated, config, counts (human-readable)
    items/<first>-<last>.parquet      one record per finished item: done, or failed with its error
    results/<table>/<first>-<last>.parquet
    arrays.zarr/<item id>/<name>      arrays, one zarr group per item
    .lock                             held by the run that writes

Items and results are saved in numbered batches. A batch's result files are
written first and its ``items`` file last: the ``items`` file commits the batch.
Result files of a batch without one (a crash in between) are never read and are
removed when the cache is next opened. Every file is written under a hidden
name and renamed into place, so a crash at any moment leaves the cache
readable, and an item is done exactly when a committed batch says so. Batch
files are merged into segments (``<first>-<last>`` spanning several batches)
as they accumulate; readers take the widest committed span, so a crash while
merging shows no duplicate.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
import traceback as tb
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from nmbatch.engine import config as cfg
from nmbatch.engine.errors import CacheFormatError, ConfigChangedError, ConfigError
from nmbatch.engine.store import ARRAYS_KEY, DirectoryStore, MemoryStore, Store, lock_holder_info

if TYPE_CHECKING:
    from nmbatch.engine.job import Job

log = logging.getLogger(__name__)

FORMAT = "nmbatch-cache"
FORMAT_VERSION = 1
MANIFEST_KEY = "manifest.json"
ITEMS_PREFIX = "items"
RESULTS_PREFIX = "results"
CORRUPT_PREFIX = "corrupt"
DONE, FAILED = "done", "failed"
CHOICES = {"r": "recompute", "c": "continue", "a": "abort"}


def items_schema(id_column: str, label_column: str) -> pa.Schema:
    """The one schema of item records (state and error record in one row)."""
    return pa.schema(
        [
            (id_column, pa.string()),
            (label_column, pa.string()),
            ("status", pa.string()),
            ("stage", pa.string()),
            ("error_type", pa.string()),
            ("error_message", pa.string()),
            ("traceback", pa.string()),
            ("worker", pa.string()),
            ("attempt", pa.int32()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("duration_s", pa.float64()),
            ("flags", pa.string()),
            ("config_hash", pa.string()),
        ]
    )


@dataclass(frozen=True, order=True)
class _Span:
    """A batch file's range of batch numbers, encoded in its name."""

    first: int
    last: int

    @property
    def name(self) -> str:
        return f"{self.first:08d}-{self.last:08d}.parquet"

    @classmethod
    def parse(cls, key: str) -> _Span | None:
        stem = key.rsplit("/", 1)[-1].removesuffix(".parquet")
        first, sep, last = stem.partition("-")
        if not (sep and first.isdigit() and last.isdigit()):
            return None
        return cls(int(first), int(last))

    def covers(self, other: _Span) -> bool:
        return self.first <= other.first and other.last <= self.last and self != other


def _widest(spans: list[_Span]) -> list[_Span]:
    return sorted(s for s in spans if not any(o.covers(s) for o in spans))


def _now() -> datetime:
    return datetime.now(UTC)


def _table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def to_arrow(df: pd.DataFrame, schema: pa.Schema, item_id: str, id_column: str) -> pa.Table:
    """Cast one item's rows to the declared schema, with the id column first.

    Raises ValueError naming the columns the job returned but did not declare,
    so schema drift is caught at the item that causes it.
    """
    full = (
        pa.schema([pa.field(id_column, pa.string()), *schema])
        if id_column not in schema.names
        else schema
    )
    extra = [c for c in df.columns if c not in full.names]
    if extra:
        raise ValueError(f"columns not in the declared schema: {extra}")
    df = df.copy()
    df[id_column] = item_id
    columns = {}
    for field in full:
        if field.name in df.columns:
            columns[field.name] = pa.array(df[field.name], type=field.type, from_pandas=True)
        else:
            columns[field.name] = pa.nulls(len(df), type=field.type)
    return pa.table(columns, schema=full)


class AnalysisCache:
    """Incremental saving and resuming of one analysis's results.

    Parameters
    ----------
    name : str
        Analysis name (the folder name under ``data_dir``).
    config : mapping
        The tracked parameters of this run.
    data_dir : path, optional
        Parent folder of the cache. None keeps everything in memory (the seed's
        "run without a cache" mode: nothing is resumable).
    batch_size : int
        :meth:`save_if_needed` saves once this many items are pending ...
    save_interval : float
        ... or once this many seconds passed since the last save.
    id_column, label_column : str
        Names of the item id and label columns in every table.
    table_schemas : mapping of str to pyarrow.Schema, optional
        Result table schemas (without the id column). A table not declared here
        takes its schema from the first rows added.
    compact_after : int
        Merge single-batch files into one segment once there are more than this.
    lock : bool
        Take the writer lock (refuse if another run holds it). Readers pass False.

    Examples
    --------
    >>> cache = AnalysisCache('photometry_qc', config=params, data_dir='out')
    >>> cache.print_config(); cache.check_config()
    >>> for eid in eids:
    ...     if cache.is_complete(eid):
    ...         continue
    ...     cache.add(eid, run_analysis(eid))
    ...     cache.save_if_needed()
    >>> cache.save()
    """

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        data_dir: str | Path | None = None,
        batch_size: int = 50,
        save_interval: float = 60.0,
        id_column: str = "item_id",
        label_column: str = "label",
        table_schemas: Mapping[str, pa.Schema] | None = None,
        compact_after: int = 64,
        lock: bool = True,
    ):
        self.name = name
        self.config = dict(config)
        self.config_hash = cfg.config_hash(self.config)
        self.batch_size = batch_size
        self.save_interval = save_interval
        self.id_column = id_column
        self.label_column = label_column
        self.table_schemas: dict[str, pa.Schema] = dict(table_schemas or {})
        self.compact_after = compact_after
        self.directory: Path | None = Path(data_dir) / name if data_dir is not None else None
        self.store: Store = DirectoryStore(self.directory) if self.directory else MemoryStore()
        self.schema = items_schema(id_column, label_column)

        self._lock_cm: contextlib.AbstractContextManager | None = None
        if lock:
            self._lock_cm = self.store.lock(lock_holder_info(name))
            self._lock_cm.__enter__()
        self.manifest: dict[str, Any] = {}
        self._status: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._counts: Counter[str] = Counter()
        self._next_batch = 1
        self._pending_records: list[dict[str, Any]] = []
        self._pending_tables: dict[str, list[pa.Table]] = {}
        self._pending_arrays: dict[str, dict[str, np.ndarray]] = {}
        self._last_save = time.monotonic()
        try:
            self.load()
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> AnalysisCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the writer lock. Pending items are NOT saved: call :meth:`save` first."""
        if self._lock_cm is not None:
            self._lock_cm.__exit__(None, None, None)
            self._lock_cm = None

    @classmethod
    def for_job(
        cls, job: Job, params: Mapping[str, Any], data_dir: str | Path | None, **kwargs: Any
    ) -> AnalysisCache:
        """The cache of ``job`` under ``data_dir``, with the job's column names and schemas."""
        return cls(
            job.name,
            params,
            data_dir=data_dir,
            id_column=job.id_column,
            label_column=job.label_column,
            table_schemas=job.table_schemas(params),
            **kwargs,
        )

    @classmethod
    def open(cls, directory: str | Path) -> AnalysisCache:
        """Open an existing cache folder for reading (no lock), e.g. for ``nmbatch status``."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST_KEY).read_text())
        except FileNotFoundError:
            raise CacheFormatError(
                f"{directory} is not an nmbatch cache (no {MANIFEST_KEY})"
            ) from None
        item = manifest.get("item", {})
        return cls(
            manifest.get("analysis", directory.name),
            manifest.get("config", {}),
            data_dir=directory.parent,
            id_column=item.get("id_column", "item_id"),
            label_column=item.get("label_column", "label"),
            lock=False,
        )

    # -- loading -------------------------------------------------------------------------

    def _committed_spans(self) -> list[_Span]:
        spans = [_Span.parse(k) for k in self.store.list(ITEMS_PREFIX)]
        return [s for s in spans if s is not None]

    def load(self) -> None:
        """Read the manifest and the state of every item from disk."""
        try:
            self.manifest = json.loads(self.store.read_bytes(MANIFEST_KEY))
        except KeyError:
            self.manifest = {}
        if self.manifest and self.manifest.get("format_version", 1) > FORMAT_VERSION:
            raise CacheFormatError(
                f"{self.store.location} was written by a newer nmbatch "
                f"(format {self.manifest['format_version']}); upgrade nmbatch to read it"
            )
        if self._lock_cm is not None:
            self._tidy()
        self._status.clear()
        self._failures.clear()
        spans = self._committed_spans()
        self._next_batch = max((s.last for s in spans), default=0) + 1
        states = self._read_items(columns=[self.id_column, "status"])
        if len(states):
            failed = states[states["status"] == FAILED][self.id_column].value_counts()
            self._failures = failed.to_dict()
            latest = states.drop_duplicates(self.id_column, keep="last")
            self._status = dict(zip(latest[self.id_column], latest["status"], strict=True))
        self._counts = Counter(self._status.values())
        for table in self._result_tables():
            if table not in self.table_schemas:
                files = self._table_files(table)
                if files:
                    schema = pq.read_schema(io.BytesIO(self.store.read_bytes(files[-1])))
                    self.table_schemas[table] = pa.schema(
                        [f for f in schema if f.name != self.id_column]
                    )

    def _tidy(self) -> None:
        """Remove what a crash left behind: temp files, uncommitted batches, unreadable batches."""
        if isinstance(self.store, DirectoryStore):
            for key in self.store.remove_leftovers((ITEMS_PREFIX, RESULTS_PREFIX)):
                log.warning("removed a partial file left by an interrupted run: %s", key)
        committed = set(self._committed_spans())
        for key in self.store.list(ITEMS_PREFIX):
            span = _Span.parse(key)
            try:
                pq.read_metadata(io.BytesIO(self.store.read_bytes(key)))
            except Exception as exc:  # any parse failure means the file is unusable
                committed.discard(span)
                self._quarantine(key, exc)
        for table in self._result_tables():
            for key in self.store.list(f"{RESULTS_PREFIX}/{table}"):
                if _Span.parse(key) not in committed:
                    log.warning("removed results of an uncommitted batch: %s", key)
                    self.store.delete(key)

    def _quarantine(self, key: str, exc: Exception) -> None:
        target = f"{CORRUPT_PREFIX}/{key.replace('/', '__')}"
        self.store.write_bytes(target, self.store.read_bytes(key))
        self.store.delete(key)
        log.warning(
            "moved unreadable batch file %s to %s (%s); its items will run again",
            key,
            target,
            exc,
        )

    def _result_tables(self) -> list[str]:
        return [k.rsplit("/", 1)[-1] for k in self.store.list(RESULTS_PREFIX)]

    def _visible_spans(self) -> list[_Span]:
        return _widest(self._committed_spans())

    def _read_items(self, columns: list[str] | None = None) -> pd.DataFrame:
        parts = []
        for span in self._visible_spans():
            data = self.store.read_bytes(f"{ITEMS_PREFIX}/{span.name}")
            parts.append(pq.read_table(io.BytesIO(data), columns=columns, schema=self.schema))
        if not parts:
            return self.schema.empty_table().select(columns or self.schema.names).to_pandas()
        return pa.concat_tables(parts).to_pandas()

    def _table_files(self, table: str) -> list[str]:
        visible = set(self._visible_spans())
        keys = self.store.list(f"{RESULTS_PREFIX}/{table}")
        return [k for k in keys if _Span.parse(k) in visible]

    # -- config ----------------------------------------------------------------------------

    def print_config(self) -> None:
        """Show the parameters this run uses."""
        print(cfg.format_config(self.name, self.config))

    def check_config(
        self,
        force: bool = False,
        on_change: str | None = None,
        interactive: bool | None = None,
    ) -> str:
        """Compare the current parameters with the cached ones, before any work.

        Parameters
        ----------
        force : bool
            On a change, recompute without asking (the seed's ``force=True``).
        on_change : {'recompute', 'continue', 'abort'}, optional
            The decision when there is no terminal to ask at.
        interactive : bool, optional
            Whether to prompt; defaults to whether stdin is a terminal.

        Returns
        -------
        str
            'new', 'unchanged', 'recompute' or 'continue'.

        Raises
        ------
        ConfigChangedError
            Parameters changed and the decision is to abort, or nobody decided.
        """
        cached = self.manifest.get("config")
        if cached is None:
            self._write_manifest(new=True)
            return "new"
        changes = cfg.diff_config(cached, self.config)
        if not changes:
            return "unchanged"
        print(cfg.format_diff(changes))
        if force:
            decision = "recompute"
        elif on_change:
            decision = on_change
        else:
            if interactive is None:
                interactive = sys.stdin.isatty()
            decision = self._ask() if interactive else ""
        if decision == "recompute":
            self.clear()
        elif decision == "continue":
            log.warning("continuing with changed parameters: results will mix two configs")
            self._record_config_change(cached, "continue")
        elif decision == "abort":
            raise ConfigChangedError("aborted: parameters changed since the last run", changes)
        else:
            raise ConfigChangedError(
                f"parameters of {self.name} changed since the last run (see the diff above) and "
                "there is no terminal to ask at: rerun with --on-config-change "
                "recompute|continue|abort (or --force to recompute)",
                changes,
            )
        return decision

    @staticmethod
    def _ask() -> str:
        print(
            "Options:\n  [r] Recompute all (clear cache)\n"
            "  [c] Continue (inconsistent results)\n  [a] Abort\n"
        )
        while True:
            try:
                answer = input("Choice: ").strip().lower()[:1]
            except EOFError:
                return "abort"
            if answer in CHOICES:
                return CHOICES[answer]

    def _record_config_change(self, cached: Mapping[str, Any], decision: str) -> None:
        history = self.manifest.setdefault("config_history", [])
        history.append(
            {
                "config": cached,
                "config_hash": self.manifest.get("config_hash"),
                "replaced": _now().isoformat(timespec="seconds"),
                "decision": decision,
            }
        )
        self._write_manifest()

    def clear(self) -> None:
        """Delete every result, record and array (the seed's recompute)."""
        previous = self.manifest.get("config")
        for key in (ITEMS_PREFIX, RESULTS_PREFIX, ARRAYS_KEY, CORRUPT_PREFIX):
            self.store.delete(key)
        self._status.clear()
        self._failures.clear()
        self._counts.clear()
        self._next_batch = 1
        self._pending_records.clear()
        self._pending_tables.clear()
        self._pending_arrays.clear()
        if previous is not None:
            self._record_config_change(previous, "recompute")
        else:
            self._write_manifest()

    def _write_manifest(self, new: bool = False) -> None:
        now = _now().isoformat(timespec="seconds")
        if new or not self.manifest:
            self.manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": now}
        self.manifest.update(
            {
                "analysis": self.name,
                "updated": now,
                "config": self.config,
                "config_hash": self.config_hash,
                "item": {"id_column": self.id_column, "label_column": self.label_column},
                "tables": sorted(self.table_schemas),
                "n_done": self.n_done,
                "n_failed": self.n_failed,
                "completed_items": f"see {ITEMS_PREFIX}/ (status == 'done')",
            }
        )
        self.store.write_bytes(
            MANIFEST_KEY, json.dumps(self.manifest, indent=2, default=str).encode()
        )

    # -- state -----------------------------------------------------------------------------

    def is_complete(self, item_id: str) -> bool:
        """True if the item has a saved result."""
        return self._status.get(str(item_id)) == DONE

    def is_failed(self, item_id: str) -> bool:
        """True if the item's latest saved record is a failure."""
        return self._status.get(str(item_id)) == FAILED

    def attempts(self, item_id: str) -> int:
        """How many recorded failures the item has had."""
        return self._failures.get(str(item_id), 0)

    @property
    def n_done(self) -> int:
        return self._counts[DONE]

    @property
    def n_failed(self) -> int:
        return self._counts[FAILED]

    # -- adding ----------------------------------------------------------------------------

    def _record(
        self, item_id: str, label: str | None, status: str, **fields: Any
    ) -> dict[str, Any]:
        record = dict.fromkeys(self.schema.names)
        record.update(
            {
                self.id_column: str(item_id),
                self.label_column: label,
                "status": status,
                "time": _now(),
                "attempt": self.attempts(item_id) + 1,
                "config_hash": self.config_hash,
            }
        )
        flags = fields.pop("flags", None)
        record["flags"] = json.dumps(flags, default=str) if flags else None
        record.update({k: v for k, v in fields.items() if k in record})
        return record

    def add(
        self,
        item_id: str,
        result: pd.DataFrame | pd.Series | Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        table: str = "results",
        tables: Mapping[str, pd.DataFrame | pa.Table] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        flags: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Add a finished item's results (kept pending until the next save).

        ``result`` is one table's rows (a DataFrame, a Series or a dict for one row),
        stored in ``table``; ``tables`` gives several tables at once (DataFrames or
        Arrow tables already cast). ``fields`` may carry worker, duration_s, attempt.
        """
        item_id = str(item_id)
        all_tables: dict[str, Any] = dict(tables or {})
        if result is not None:
            if isinstance(result, pd.Series):
                result = result.to_frame().T
            elif isinstance(result, Mapping):
                result = pd.DataFrame([result])
            all_tables[table] = result
        for name, rows in all_tables.items():
            if isinstance(rows, pd.DataFrame):
                if name not in self.table_schemas:
                    self.table_schemas[name] = pa.Schema.from_pandas(
                        rows.drop(columns=[self.id_column], errors="ignore"), preserve_index=False
                    )
                rows = to_arrow(rows, self.table_schemas[name], item_id, self.id_column)
            self._pending_tables.setdefault(name, []).append(rows)
        if arrays:
            self._pending_arrays[item_id] = dict(arrays)
        self._pending_records.append(self._record(item_id, label, DONE, flags=flags, **fields))

    def add_error(
        self,
        item_id: str,
        error: BaseException | str,
        *,
        label: str | None = None,
        stage: str | None = None,
        error_type: str | None = None,
        traceback: str | None = None,
        flags: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Record that an item failed (kept pending until the next save)."""
        if isinstance(error, BaseException):
            error_type = error_type or type(error).__name__
            stage = stage or getattr(error, "stage", None)
            if traceback is None and error.__traceback__ is not None:
                traceback = "".join(tb.format_exception(error))
        self._pending_records.append(
            self._record(
                item_id,
                label,
                FAILED,
                stage=stage or "run",
                error_type=error_type or "Error",
                error_message=str(error),
                traceback=traceback,
                flags=flags,
                **fields,
            )
        )

    def save_if_needed(self) -> bool:
        """Save if ``batch_size`` items are pending or ``save_interval`` has passed."""
        due = time.monotonic() - self._last_save >= self.save_interval
        if self._pending_records and (len(self._pending_records) >= self.batch_size or due):
            self.save()
            return True
        return False

    def save(self) -> None:
        """Write pending items as one committed batch (results first, items file last)."""
        self._last_save = time.monotonic()
        if not self._pending_records:
            return
        span = _Span(self._next_batch, self._next_batch)
        for item_id, arrays in self._pending_arrays.items():
            self.write_arrays(item_id, arrays)
        for table, parts in self._pending_tables.items():
            data = pa.concat_tables(parts)
            self.store.write_bytes(f"{RESULTS_PREFIX}/{table}/{span.name}", _table_bytes(data))
        records = pa.Table.from_pylist(self._pending_records, schema=self.schema)
        self.store.write_bytes(f"{ITEMS_PREFIX}/{span.name}", _table_bytes(records))
        for record in self._pending_records:
            item_id = record[self.id_column]
            previous = self._status.get(item_id)
            if previous is not None:
                self._counts[previous] -= 1
            self._status[item_id] = record["status"]
            self._counts[record["status"]] += 1
            if record["status"] == FAILED:
                self._failures[item_id] = self._failures.get(item_id, 0) + 1
        self._next_batch += 1
        self._pending_records.clear()
        self._pending_tables.clear()
        self._pending_arrays.clear()
        self._write_manifest()

    def compact(self, force: bool = False) -> bool:
        """Merge single-batch files into one segment once there are more than ``compact_after``.

        The segment is written (results first, items last) before the batch files
        are deleted; readers prefer the widest span, so no moment shows duplicates.
        """
        spans = self._visible_spans()
        loose = [s for s in spans if s.first == s.last]
        targets = spans if len(spans) > self.compact_after else loose
        if len(targets) < 2 or (len(loose) <= self.compact_after and not force):
            return False
        merged = _Span(targets[0].first, targets[-1].last)
        inside = [s for s in spans if merged.first <= s.first and s.last <= merged.last]
        for table in self._result_tables():
            keys = [f"{RESULTS_PREFIX}/{table}/{s.name}" for s in inside]
            keys = [k for k in keys if self.store.exists(k)]
            if keys:
                parts = [pq.read_table(io.BytesIO(self.store.read_bytes(k))) for k in keys]
                data = pa.concat_tables(parts, promote_options="permissive")
                self.store.write_bytes(
                    f"{RESULTS_PREFIX}/{table}/{merged.name}", _table_bytes(data)
                )
        parts = [
            pq.read_table(
                io.BytesIO(self.store.read_bytes(f"{ITEMS_PREFIX}/{s.name}")), schema=self.schema
            )
            for s in inside
        ]
        self.store.write_bytes(
            f"{ITEMS_PREFIX}/{merged.name}", _table_bytes(pa.concat_tables(parts))
        )
        for span in inside:
            for table in self._result_tables():
                self.store.delete(f"{RESULTS_PREFIX}/{table}/{span.name}")
            self.store.delete(f"{ITEMS_PREFIX}/{span.name}")
        return True

    def write_export(self, filename: str, table: pd.DataFrame) -> None:
        """Write a job's derived table next to the manifest (e.g. ``sessions.pqt``), atomically."""
        data = pa.Table.from_pandas(table, preserve_index=False)
        self.store.write_bytes(filename, _table_bytes(data))

    # -- arrays ----------------------------------------------------------------------------

    def _array_root(self, mode: str = "a") -> zarr.Group:
        return zarr.open_group(self.store.zarr_store(), mode=mode)

    def prepare_arrays(self) -> str | None:
        """Create the root group once (workers then add item groups without racing)."""
        self._array_root()
        return self.store.array_path

    def write_arrays(self, item_id: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write an item's arrays into its own group, replacing what a failed try left."""
        write_item_arrays(self._array_root(), item_id, arrays)

    def read_arrays(self, item_id: str) -> dict[str, np.ndarray]:
        """All arrays of one item."""
        try:
            group = self._array_root(mode="r")[str(item_id)]
        except (KeyError, FileNotFoundError):
            return {}
        return {name: arr[...] for name, arr in group.arrays()}

    # -- reading ---------------------------------------------------------------------------

    def get_results(self, table: str | None = None) -> pd.DataFrame:
        """All saved rows of a result table (the only one, if ``table`` is not given)."""
        names = sorted(set(self._result_tables()) | set(self._pending_tables))
        if table is None:
            if len(names) > 1:
                raise ConfigError(f"{self.name} has several result tables, name one of: {names}")
            if not names:
                return pd.DataFrame(columns=[self.id_column])
            table = names[0]
        schema = self.table_schemas.get(table)
        full = pa.schema([pa.field(self.id_column, pa.string()), *schema]) if schema else None
        parts = [
            pq.read_table(io.BytesIO(self.store.read_bytes(k)), schema=full)
            for k in self._table_files(table)
        ]
        parts += self._pending_tables.get(table, [])
        if not parts:
            return (
                full.empty_table().to_pandas() if full else pd.DataFrame(columns=[self.id_column])
            )
        return pa.concat_tables(parts, promote_options="permissive").to_pandas()

    def item_states(self) -> pd.DataFrame:
        """The latest saved record of every item (done or failed), flags decoded to dicts."""
        records = self._read_items()
        latest = records.drop_duplicates(self.id_column, keep="last").reset_index(drop=True)
        latest["flags"] = [json.loads(f) if f else {} for f in latest["flags"]]
        return latest

    def get_errors(self) -> pd.DataFrame:
        """Error records of the items whose latest attempt failed."""
        states = self.item_states()
        errors = states[states["status"] == FAILED]
        return errors.drop(columns=["status", "duration_s"]).reset_index(drop=True)

    def get_error_history(self) -> pd.DataFrame:
        """Every failure ever recorded, including items that later succeeded."""
        records = self._read_items()
        return records[records["status"] == FAILED].reset_index(drop=True)


def write_item_arrays(root: zarr.Group, item_id: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Replace the group ``item_id`` under ``root`` with ``arrays``."""
    group = root.create_group(str(item_id), overwrite=True)
    for name, value in arrays.items():
        group.create_array(name, data=np.asarray(value), overwrite=True)
