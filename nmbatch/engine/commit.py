"""Committing: moving what a worker staged into the cache, under a commit number.

A staged task folder ``staging/<task>/`` is first renamed ``staging/<commit>@<task>``,
which makes its commit number durable; then its arrays, its result parts and, last,
its records part are renamed into place, and the folder is removed. Every step is a
rename and is skipped when already done, so a commit cut short by a crash is finished
by the next open (:mod:`nmbatch.engine.recovery`) with the same number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import zarr
import zarr.storage

from nmbatch.engine import faults
from nmbatch.engine.layout import (
    ARRAYS_KEY,
    ITEMS_PREFIX,
    RESULTS_PREFIX,
    STAGED_ARRAYS,
    STAGED_RECORD,
    STAGED_RESULTS,
    STAGING_PREFIX,
    Span,
    committed_task_name,
    crc32,
    parse_staged,
    parse_task_name,
)
from nmbatch.engine.store import DirectoryStore


@dataclass(frozen=True)
class Staged:
    """A staged task folder: its key, its commit number once given, and its records file.

    ``record`` is the records file's name once the worker finished the task (and its
    bytes match the checksum in that name); None while it is not there or is torn.
    """

    key: str
    commit: int | None
    record: str | None  # the records file's name, present once the worker finished

    @classmethod
    def read(cls, store: DirectoryStore, key: str) -> Staged:
        commit, _ = parse_task_name(key.rsplit("/", 1)[-1])
        folder = store.path(key)
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        record = next(
            (n for n in names if (p := parse_staged(n)) is not None and p[0] == STAGED_RECORD),
            None,
        )
        if record is not None and crc32((folder / record).read_bytes()) != parse_staged(record)[1]:
            record = None
        return cls(key, commit, record)


def staged_tasks(store: DirectoryStore) -> list[Staged]:
    """Every staged task folder, committed-in-part ones (with a number) first, in order."""
    found = [Staged.read(store, key) for key in store.list(STAGING_PREFIX)]
    return sorted(found, key=lambda s: (s.commit is None, s.commit or 0, s.key))


def ensure_array_root(store: DirectoryStore) -> None:
    """The root group of ``arrays.zarr``, made once before any item group moves in."""
    if not store.exists(f"{ARRAYS_KEY}/zarr.json"):
        zarr.open_group(zarr.storage.LocalStore(store.path(ARRAYS_KEY)), mode="a")


def commit_staged(store: DirectoryStore, staged: Staged, commit: int) -> list[str]:
    """Move ``staged`` into the cache as commit ``commit``; return the result tables it had.

    Idempotent: a second call after a crash finishes the moves the first did not do.
    """
    key = staged.key
    if staged.commit is None:
        _, task = parse_task_name(key.rsplit("/", 1)[-1])
        target = f"{STAGING_PREFIX}/{committed_task_name(commit, task)}"
        store.rename(key, target)
        key = target
        faults.checkpoint("commit-numbered")
    folder = store.path(key)
    span = Span(commit, commit)
    _move_arrays(store, key, folder / STAGED_ARRAYS)
    tables = []
    results = folder / STAGED_RESULTS
    for entry in sorted(results.iterdir()) if results.is_dir() else []:
        parsed = parse_staged(entry.name)
        if parsed is None:
            continue
        table, checksum = parsed
        store.ensure_folder(f"{RESULTS_PREFIX}/{table}")
        store.rename(
            f"{key}/{STAGED_RESULTS}/{entry.name}",
            f"{RESULTS_PREFIX}/{table}/{span.part_name(checksum)}",
        )
        tables.append(table)
    faults.checkpoint("commit-results-moved")
    if staged.record is not None and (folder / staged.record).exists():
        _, checksum = parse_staged(staged.record)
        store.ensure_folder(ITEMS_PREFIX)
        store.rename(f"{key}/{staged.record}", f"{ITEMS_PREFIX}/{span.part_name(checksum)}")
    store.delete(key)
    return tables


def _move_arrays(store: DirectoryStore, key: str, arrays: Path) -> None:
    groups: Iterable[Path] = (p for p in arrays.iterdir() if p.is_dir()) if arrays.is_dir() else ()
    groups = list(groups)
    if groups:
        ensure_array_root(store)
    for group in groups:
        target = f"{ARRAYS_KEY}/{group.name}"
        store.delete(target)
        store.rename(f"{key}/{STAGED_ARRAYS}/{group.name}", target)
