"""The resumable cache of one analysis (the predecessor's ``AnalysisCache``): open, read, write.

The format is in :mod:`nmbatch.engine.layout`; what a crash leaves is handled by
:mod:`nmbatch.engine.recovery` when a writer opens the cache; merging parts is
:mod:`nmbatch.engine.compaction`. The cache knows no job and asks nobody anything:
:meth:`config_check` says whether parameters or provenance changed, and the caller
decides (the command line asks the person, see :mod:`nmbatch.engine.cli`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from nmbatch.engine import compaction, recovery
from nmbatch.engine import config as cfg
from nmbatch.engine.changes import ConfigCheck, check_config_against
from nmbatch.engine.commit import Staged, commit_staged, ensure_array_root
from nmbatch.engine.errors import CacheError, CacheFormatError
from nmbatch.engine.index import ItemIndex
from nmbatch.engine.layout import (
    ARRAYS_KEY,
    CONFIGS_PREFIX,
    CORRUPT_PREFIX,
    DONE,
    ITEMS_PREFIX,
    RESULTS_PREFIX,
    STAGING_PREFIX,
    Span,
    crc32,
    items_schema,
)
from nmbatch.engine.loop import PlainLoop
from nmbatch.engine.manifest import now, read_manifest, save_snapshot, write_manifest
from nmbatch.engine.outcome import (
    ItemRecord,
    Stamp,
    TaskOutcome,
    records_from_table,
)
from nmbatch.engine.parts import read_table, records_table, table_bytes
from nmbatch.engine.reading import PartReader
from nmbatch.engine.results import CacheReads
from nmbatch.engine.store import DirectoryStore, MemoryStore, Store, lock_holder_info

log = logging.getLogger(__name__)


class AnalysisCache(PlainLoop, CacheReads):
    """Incremental saving and resuming of one analysis's results.

    Parameters
    ----------
    name : str
        Analysis name (the folder name under ``data_dir``).
    config : mapping
        The tracked parameters of this run.
    data_dir : path, optional
        Parent folder of the cache. None keeps everything in memory (the predecessor's
        "run without a cache" mode: nothing is resumable).
    batch_size, save_interval : int, float
        :meth:`save_if_needed` saves once this many items are pending or this many
        seconds passed (the plain loop; a Dask run makes every outcome durable at once).
    id_column, label_column : str
        Names of the item id and label columns in every table.
    table_schemas : mapping of str to pyarrow.Schema, optional
        Result table schemas (without the id column). A table not declared here
        takes its schema from the first rows added.
    provenance : mapping, optional
        nmbatch, job code and library versions (:func:`nmbatch.engine.config.provenance`).
    merge_factor : int
        Parts of one size merged into one, see :func:`nmbatch.engine.layout.merge_plan`.
    lock : bool
        Take the writer lock and repair what a crash left. Readers pass False.
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
        provenance: Mapping[str, Any] | None = None,
        merge_factor: int = 8,
        lock: bool = True,
    ):
        self.name = name
        self.config = dict(config)
        self.provenance = dict(provenance or {})
        self.stamp = Stamp.of(self.config, self.provenance)
        self.batch_size, self.save_interval = batch_size, save_interval
        self.merge_factor = merge_factor
        self.id_column, self.label_column = id_column, label_column
        self.table_schemas: dict[str, pa.Schema] = dict(table_schemas or {})
        self.directory: Path | None = Path(data_dir) / name if data_dir is not None else None
        self.store: Store = DirectoryStore(self.directory) if self.directory else MemoryStore()
        self.schema = items_schema(id_column, label_column)
        self.writer = lock
        self.manifest: dict[str, Any] = {}
        self.manifest_problem: str | None = None
        self.index = ItemIndex()
        self.reader = PartReader(self.store, id_column, label_column)
        self._next_commit = 1
        self._superseded: set[int] = set()
        self._since_compaction = 0
        self._pending: list[tuple[ItemRecord, dict[str, pa.Table], dict[str, np.ndarray]]] = []
        self._last_save = time.monotonic()
        self._lock_cm: contextlib.AbstractContextManager | None = None
        if lock:
            self._lock_cm = self.store.lock(lock_holder_info(name))
            self._lock_cm.__enter__()
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
    def open(cls, directory: str | Path) -> AnalysisCache:
        """Open an existing cache folder for reading (no lock, no repairs), e.g. for ``status``."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CacheFormatError(f"{directory} is not an nmbatch cache (no such folder)")
        found = read_manifest(DirectoryStore(directory))
        data = found.data or {}
        item = data.get("item") or recovery.columns_from_records(DirectoryStore(directory)) or {}
        if not data and not item:
            raise CacheFormatError(f"{directory} is not an nmbatch cache ({found.problem})")
        cache = cls(
            str(data.get("analysis", directory.name)),
            data.get("config", {}),
            data_dir=directory.parent,
            id_column=item.get("id_column", "item_id"),
            label_column=item.get("label_column", "label"),
            provenance=data.get("provenance"),
            lock=False,
        )
        return cache

    def load(self) -> None:
        """Read the manifest and every item's state; as the writer, repair first."""
        found = read_manifest(self.store)
        self.manifest, self.manifest_problem = found.data or {}, found.problem
        if found.data and found.data.get("format_version", 1) > 2:
            raise CacheFormatError(
                f"{self.store.location} was written by a newer nmbatch "
                f"(format {found.data['format_version']}); upgrade nmbatch to read it"
            )
        if self.writer and isinstance(self.store, DirectoryStore):
            recovery.repair(self.store, self.reader)
        self.index = self.reader.index()
        self._next_commit = self.reader.last_commit() + 1
        if self.writer and isinstance(self.store, DirectoryStore):
            for item_id, path in recovery.damaged_arrays(self.store, self.reader, self.index):
                log.warning("damaged array file %s: item %s will run again", path, item_id)
                self.index.invalidate(item_id)
        for table in self.reader.tables():
            if table not in self.table_schemas:
                schema = self.reader.table_schema(table)
                if schema is not None:
                    self.table_schemas[table] = pa.schema(
                        [f for f in schema if f.name != self.id_column]
                    )

    # -- parameters and provenance (no prompts) ----------------------------------------------

    def print_config(self) -> None:
        """Show the parameters this run uses."""
        print(cfg.format_config(self.name, self.config))

    def config_check(self) -> ConfigCheck:
        """Compare this run's parameters and provenance with what made the cached records."""
        return check_config_against(
            self.store,
            self.manifest,
            self.manifest_problem,
            self.index,
            self.config,
            self.provenance,
            self.stamp,
        )

    def check_config(self, force: bool = False, on_change: str | None = None) -> str:
        """The predecessor's check, without asking: 'new', 'unchanged', 'recompute', 'continue'.

        Raises ConfigChangedError when parameters or provenance changed and neither
        ``force`` (recompute) nor ``on_change`` decides; :func:`nmbatch.engine.cli.decide`
        asks at a terminal instead.
        """
        check = self.config_check()
        if check.state in ("new", "unchanged"):
            self.accept(check, None)
            return check.state
        decision = "recompute" if force else on_change
        check.raise_if_undecided(decision, self.name, with_diff=True)
        self.accept(check, decision)
        return decision

    def accept(self, check: ConfigCheck, decision: str | None) -> None:
        """Record the parameters of this run; 'recompute' clears, 'continue' keeps a history."""
        if not self.writer:
            raise CacheError("a cache opened for reading cannot take new parameters")
        if decision == "recompute":
            self.clear()
        history = list(self.manifest.get("config_history", []))
        if decision is not None:
            history.append(check.history_entry(decision))
        self._write_manifest(config_history=history)

    def clear(self) -> None:
        """Delete every result, record, array and staged outcome (the predecessor's recompute)."""
        for key in (ITEMS_PREFIX, RESULTS_PREFIX, ARRAYS_KEY, CORRUPT_PREFIX, STAGING_PREFIX):
            self.store.delete(key)
        self.index = ItemIndex()
        self._pending.clear()

    def _write_manifest(self, **extra: Any) -> None:
        if not self.writer:
            return
        save_snapshot(self.store, "config", self.stamp.config_hash, self.config)
        if self.provenance:
            save_snapshot(self.store, "provenance", self.stamp.provenance_hash, self.provenance)
        manifest = {
            "created": self.manifest.get("created") or now(),
            **{k: v for k, v in self.manifest.items() if k not in ("format", "format_version")},
            "analysis": self.name,
            "item": {"id_column": self.id_column, "label_column": self.label_column},
            "tables": sorted(self.table_schemas),
            "config": self.config,
            "config_hash": self.stamp.config_hash,
            "provenance": self.provenance,
            "provenance_hash": self.stamp.provenance_hash,
            "n_done": self.n_done,
            "n_failed": self.n_failed,
            "configs": f"see {CONFIGS_PREFIX}/ (every parameter set a record was made with)",
            **extra,
        }
        write_manifest(self.store, manifest)
        self.manifest, self.manifest_problem = manifest, None

    def update_counts(self) -> None:
        """Refresh the manifest's counts (they are a summary; the records are the truth)."""
        self._write_manifest()

    # -- state -----------------------------------------------------------------------------

    def is_complete(self, item_id: str) -> bool:
        """True if the item has a saved result."""
        return self.index.is_done(str(item_id))

    def is_failed(self, item_id: str) -> bool:
        """True if the item's latest saved record is a failure."""
        return self.index.is_failed(str(item_id))

    def attempts(self, item_id: str) -> int:
        """How many recorded failures the item has had."""
        return self.index.failures.get(str(item_id), 0)

    @property
    def n_done(self) -> int:
        return self.index.n_done

    @property
    def n_failed(self) -> int:
        return self.index.n_failed

    def write_records(self, records: list[ItemRecord]) -> None:
        """Commit records made on the driver (an item whose worker died) at once."""
        self._write_commit(records, {})

    def _write_commit(
        self, records: list[ItemRecord], tables: Mapping[str, list[pa.Table]]
    ) -> None:
        span = Span(self._next_commit, self._next_commit)
        for name, parts in tables.items():
            data = table_bytes(pa.concat_tables(parts))
            self._ensure(f"{RESULTS_PREFIX}/{name}")
            self.store.write_bytes(f"{RESULTS_PREFIX}/{name}/{span.part_name(crc32(data))}", data)
        data = table_bytes(records_table(records, self.id_column, self.label_column))
        self._ensure(ITEMS_PREFIX)
        self.store.write_bytes(f"{ITEMS_PREFIX}/{span.part_name(crc32(data))}", data)
        self._committed(records, span.first)

    def _ensure(self, key: str) -> None:
        if isinstance(self.store, DirectoryStore):
            self.store.ensure_folder(key)

    def _committed(self, records: list[ItemRecord], commit: int) -> None:
        superseded = [
            c
            for r in records
            if r.status == DONE
            if (c := self.index.done_commit(r.item_id)) is not None
        ]
        self.index.apply(records, commit)
        self.reader.forget()
        self._superseded.update(superseded)
        self._next_commit = commit + 1
        self._since_compaction += 1

    # -- adding: outcomes staged by workers --------------------------------------------------

    @property
    def worker_root(self) -> str:
        """The folder workers stage their outcomes under (CacheError for an in-memory cache)."""
        if self.store.local_root is None:
            raise CacheError("running items on workers needs a cache folder (data_dir)")
        return str(self.store.local_root)

    def prepare_arrays(self) -> None:
        """Create the folders and the arrays' root group before workers stage into them."""
        if isinstance(self.store, DirectoryStore):
            ensure_array_root(self.store)
            self.store.ensure_folder(ITEMS_PREFIX)
        if not self.manifest:
            self._write_manifest()

    def commit(self, outcome: TaskOutcome) -> list[ItemRecord]:
        """Take a task's outcome into the cache; return its records ([] if there is none).

        A worker's outcome is its staged folder: the records are read from there (the
        durable copy, whatever happened to the task's answer in Dask). Records made on
        the driver (a worker that died) travel in the outcome itself.
        """
        if outcome.staged is None:
            self.write_records(list(outcome.records))
            return list(outcome.records)
        if not isinstance(self.store, DirectoryStore):
            raise CacheError("staged outcomes need a cache folder")
        staged = Staged.read(self.store, outcome.staged)
        if staged.record is None:
            return []
        table = read_table(self.store.read_bytes(f"{staged.key}/{staged.record}"))
        records = records_from_table(table, self.id_column, self.label_column)
        for name in commit_staged(self.store, staged, self._next_commit):
            if name not in self.table_schemas:
                self.table_schemas[name] = self.reader.table_schema(name) or pa.schema([])
        self._committed(records, self._next_commit)
        return records

    def compact(self, final: bool = False) -> bool:
        """Merge parts so each table keeps few files; at the end of a run (``final``) also
        rewrite the parts that hold rows superseded by an item's later commit.

        Between those, it looks only once ``merge_factor`` commits have come in.
        """
        if not final and self._since_compaction < self.merge_factor:
            return False
        self._since_compaction = 0
        merged = compaction.compact(
            self.store,
            self.reader,
            self.index,
            self.merge_factor,
            self._superseded if final else (),
        )
        if final:
            self._superseded.clear()
        return merged

    def sweep_staging(self, only: str | None = None) -> int:
        """Commit whole staged tasks no outcome arrived for (all, or the folder ``only``);
        return how many item records that saved."""
        if not isinstance(self.store, DirectoryStore):
            return 0
        self._next_commit, adopted = recovery.adopt_staged(
            self.store, self.reader, self.index, self._next_commit, only
        )
        if adopted:
            self.index = self.reader.index()
        return adopted
