"""What a crash leaves, put right when a writer opens the cache.

In order: temporary files are removed; versions of a folder that a compaction left
unfinished (or finished but did not clean up) are removed, the live one kept;
commits cut short are finished with their own numbers; whole staged tasks whose
outcome never reached a driver are committed, except items already done; staged
folders a worker did not finish are removed (their items run again); result parts
of a plain-loop batch whose records never landed are removed; every part is checked
against the checksum in its name and a damaged one is moved to ``corrupt/`` with
the parts of its span, so their items run again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pyarrow as pa

from nmbatch.engine.commit import Staged, commit_staged, staged_tasks
from nmbatch.engine.index import ItemIndex
from nmbatch.engine.layout import (
    CORRUPT_PREFIX,
    DONE,
    ITEMS_PREFIX,
    RESULTS_PREFIX,
    STAGED_ARRAYS,
    STAGED_RESULTS,
    Part,
    crc32,
    parse_staged,
    staged_file,
)
from nmbatch.engine.parts import read_table, table_bytes, verify_checksums
from nmbatch.engine.reading import PartReader
from nmbatch.engine.store import DirectoryStore, atomic_write

log = logging.getLogger(__name__)


def repair(store: DirectoryStore, reader: PartReader) -> None:
    """Put right what a crash left (see the module doc), in that order."""
    for key in store.remove_temp_files():
        log.warning("removed a partial file left by an interrupted run: %s", key)
    folders = [ITEMS_PREFIX, *(f"{RESULTS_PREFIX}/{t}" for t in _table_names(store))]
    unreadable: dict[str, Exception] = {}
    for folder in folders:
        unreadable.update(_upgrade_plain_folder(store, folder))
        for orphan in store.orphan_versions(folder):
            log.warning("removed %s, left by an interrupted compaction", orphan.name)
            store.delete(str(orphan.relative_to(store.root)))
        if not store.is_versioned(folder) and not store.exists(folder):
            store.ensure_folder(folder)
    staged = staged_tasks(store)
    for task in staged:
        if task.commit is not None:
            commit_staged(store, task, task.commit)
    reader.forget()
    _quarantine_damaged(store, reader, unreadable)
    _remove_uncommitted_results(store, reader)
    if staged:
        _, adopted = adopt_staged(store, reader, reader.index(), reader.last_commit() + 1)
        if adopted:
            log.warning("committed %d finished item(s) an interrupted run had not", adopted)


def _table_names(store: DirectoryStore) -> list[str]:
    folder = store.path(RESULTS_PREFIX)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _upgrade_plain_folder(store: DirectoryStore, folder: str) -> dict[str, Exception]:
    """A format-1 folder (plain, parts named ``first-last.parquet``) as a versioned one.

    Format 1 had no checksums, so each part is read once here; the unreadable ones
    are returned (key -> cause) for the quarantine.
    """
    path = store.path(folder)
    if not path.is_dir() or path.is_symlink():
        return {}
    staging_name = f".{path.name}.upgrading"
    store.rename(folder, f"{folder.rpartition('/')[0]}/{staging_name}".lstrip("/"))
    old = path.with_name(staging_name)
    store.ensure_folder(folder)
    add, unreadable = {}, {}
    for entry in sorted(old.iterdir()):
        stem = entry.name.removesuffix(".parquet")
        if entry.name.startswith(".") or "." in stem:
            continue
        data = entry.read_bytes()
        name = f"{stem}.{crc32(data)}.parquet"
        try:
            read_table(data)
        except (OSError, ValueError, pa.ArrowException) as exc:
            unreadable[f"{folder}/{name}"] = exc
        add[name] = data
    store.swap_folder(folder, [], add)
    store.delete(str(old.relative_to(store.root)))
    log.warning("upgraded %s to the current cache format", folder)
    return unreadable


def _quarantine_damaged(
    store: DirectoryStore, reader: PartReader, unreadable: dict[str, Exception]
) -> None:
    """Move every part whose bytes do not match its name, with the parts of its span.

    A checksum match is proof enough (the name's checksum was taken of the bytes
    written), so intact parts are not parsed here; ``unreadable`` adds the parts an
    upgrade from format 1 found unreadable.
    """
    folders = [ITEMS_PREFIX, *(f"{RESULTS_PREFIX}/{t}" for t in reader.tables())]
    damaged = []
    for folder in folders:
        for part in reader.parts(folder):
            try:
                if part.key in unreadable:
                    raise unreadable[part.key]
                if crc32(store.read_bytes(part.key)) != part.checksum:
                    raise ValueError("its bytes do not match the checksum in its name")
            except (KeyError, OSError, ValueError, pa.ArrowException) as exc:
                damaged.append((part, exc))
    for part, exc in damaged:
        spanned = [p for f in folders for p in reader.parts(f) if _overlap(p, part)]
        for other in spanned:
            target = f"{CORRUPT_PREFIX}/{other.key.replace('/', '__')}"
            if store.exists(other.key):
                store.rename(other.key, target)
        log.warning(
            "moved damaged file %s to %s/ (%s); the items it held will run again",
            part.key,
            CORRUPT_PREFIX,
            exc,
        )
    if damaged:
        reader.forget()


def _overlap(a: Part, b: Part) -> bool:
    return a.span.first <= b.span.last and b.span.first <= a.span.last


def _remove_uncommitted_results(store: DirectoryStore, reader: PartReader) -> None:
    """Result parts no records part overlaps: a plain-loop save cut short before its records."""
    items = reader.parts(ITEMS_PREFIX)
    for table in reader.tables():
        for part in reader.parts(f"{RESULTS_PREFIX}/{table}"):
            if not any(_overlap(part, i) for i in items):
                log.warning("removed results of an uncommitted batch: %s", part.key)
                store.delete(part.key)


def adopt_staged(
    store: DirectoryStore,
    reader: PartReader,
    index: ItemIndex,
    commit: int,
    only: str | None = None,
) -> tuple[int, int]:
    """Commit whole staged tasks (minus items already done); remove unfinished ones.

    ``only`` limits this to one staged folder. Returns the next free commit number and
    how many item records were committed.
    """
    adopted = 0
    for staged in staged_tasks(store):
        if only is not None and staged.key != only:
            continue
        if staged.record is None:
            store.delete(staged.key)
            continue
        records = read_table(store.read_bytes(f"{staged.key}/{staged.record}"))
        id_column = records.schema.names[0]
        ids = records[id_column].to_pylist()
        keep = [i for i in ids if not index.is_done(i)]
        if not keep:
            store.delete(staged.key)
            continue
        if len(keep) < len(ids):
            staged = _filter_staged(store, staged, set(keep), id_column)
        commit_staged(store, staged, commit)
        log.info("committed %d finished item(s) no driver had committed: %s", len(keep), staged.key)
        commit += 1
        adopted += len(keep)
    reader.forget()
    return commit, adopted


def _filter_staged(store: DirectoryStore, staged: Staged, keep: set[str], id_column: str) -> Staged:
    """Rewrite a staged task's files to hold only the items in ``keep``."""
    folder = store.path(staged.key)
    for path in [folder / staged.record, *sorted((folder / STAGED_RESULTS).glob("*.parquet"))]:
        base, _ = parse_staged(path.name)
        table = read_table(path.read_bytes())
        table = table.filter(pa.array([i in keep for i in table[id_column].to_pylist()]))
        data = table_bytes(table)
        atomic_write(path.with_name(staged_file(base, crc32(data))), data)
        path.unlink()
    arrays = folder / STAGED_ARRAYS
    if arrays.is_dir():
        for group in arrays.iterdir():
            if group.is_dir() and group.name not in keep:
                store.delete(str(group.relative_to(store.root)))
    return Staged.read(store, staged.key)


def damaged_arrays(
    store: DirectoryStore, reader: PartReader, index: ItemIndex
) -> Iterator[tuple[str, str]]:
    """(item, file) for each done item whose array files differ from its record's checksums."""
    table = reader.record_table()
    if not table.num_rows or table["files"].null_count == table.num_rows:
        return
    records = reader.records([reader.id_column, "status", "files"])
    done = records[records["status"] == DONE].drop_duplicates(reader.id_column, keep="last")
    for item_id, files in zip(done[reader.id_column], done["files"], strict=True):
        if not files or not index.is_done(item_id):
            continue
        bad = verify_checksums(store.root, json.loads(files))
        if bad is not None:
            yield item_id, bad


def columns_from_records(store: DirectoryStore) -> dict[str, str] | None:
    """The id and label column names, read from a records part (when the manifest is lost)."""
    reader = PartReader(store, "item_id", "label")
    for part in reader.parts(ITEMS_PREFIX):
        table = reader.read(part)
        if table is not None and table.num_columns >= 2:
            return {"id_column": table.schema.names[0], "label_column": table.schema.names[1]}
    return None
