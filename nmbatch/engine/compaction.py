"""Merging parts: few files per table whatever the cache's size, and no row twice.

Runs of adjacent commits are merged by :func:`nmbatch.engine.layout.merge_plan`, the
same runs in every table so that a span of records and the rows it made stay
together. Each folder is replaced in one step (:meth:`Store.swap_folder`): readers
see the old parts or the merged one, never both, at any moment and after any crash.
Merging also drops rows an item's later commit superseded (an item run again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pyarrow as pa

from nmbatch.engine.index import ItemIndex
from nmbatch.engine.layout import ITEMS_PREFIX, RESULTS_PREFIX, Part, Span, crc32, merge_plan
from nmbatch.engine.parts import table_bytes
from nmbatch.engine.reading import PartReader, keep_current
from nmbatch.engine.store import Store

log = logging.getLogger(__name__)


def compact(
    store: Store,
    reader: PartReader,
    index: ItemIndex,
    factor: int,
    superseded: Iterable[int] = (),
) -> bool:
    """Merge what the plan says, then rewrite parts holding superseded rows; True if any."""
    changed = False
    for group in merge_plan([p.span for p in reader.parts(ITEMS_PREFIX)], factor):
        merged = Span(group[0].first, group[-1].last)
        tables = [f"{RESULTS_PREFIX}/{t}" for t in reader.tables()]
        if all(_merge(store, reader, folder, merged, index) for folder in tables):
            changed |= _merge(store, reader, ITEMS_PREFIX, merged, index)
        reader.forget()
    commits = set(superseded)
    if commits:
        for table in reader.tables():
            changed |= _drop_superseded(store, reader, f"{RESULTS_PREFIX}/{table}", commits, index)
    return changed


def _merge(store: Store, reader: PartReader, folder: str, span: Span, index: ItemIndex) -> bool:
    """Replace ``folder``'s parts inside ``span`` with one; False if one of them is unreadable."""
    inside = [
        p for p in reader.parts(folder) if p.span.first >= span.first and p.span.last <= span.last
    ]
    if len(inside) < 2:
        return True
    tables = []
    for part in inside:
        rows = reader.read(part, reader.schema if folder == ITEMS_PREFIX else None)
        if rows is None:
            log.warning(
                "not merging %s: %s is damaged (the next open moves it aside)", folder, part.key
            )
            return False
        tables.append(_prepared(rows, part, folder, index, reader.id_column))
    data = table_bytes(pa.concat_tables(tables, promote_options="permissive"))
    keep = [_name(p) for p in reader.parts(folder) if p not in inside]
    store.swap_folder(folder, keep, {span.part_name(crc32(data)): data})
    return True


def _prepared(
    rows: pa.Table, part: Part, folder: str, index: ItemIndex, id_column: str
) -> pa.Table:
    if folder == ITEMS_PREFIX:  # records keep every attempt; their commit is written out
        position = rows.schema.get_field_index("commit")
        return rows.set_column(position, "commit", rows["commit"].fill_null(part.span.first))
    return keep_current(rows, part, index, id_column)


def _drop_superseded(
    store: Store, reader: PartReader, folder: str, commits: set[int], index: ItemIndex
) -> bool:
    """Rewrite the parts of ``folder`` that hold rows of ``commits`` an item later replaced."""
    touched = [p for p in reader.parts(folder) if any(c in p.span for c in commits)]
    add, drop = {}, []
    for part in touched:
        rows = reader.read(part)
        if rows is None:
            continue
        current = keep_current(rows, part, index, reader.id_column)
        if current.num_rows == rows.num_rows:
            continue
        drop.append(part)
        if current.num_rows:
            data = table_bytes(current)
            add[part.span.part_name(crc32(data))] = data
    if not drop:
        return False
    keep = [_name(p) for p in reader.parts(folder) if p not in drop]
    store.swap_folder(folder, keep, add)
    reader.forget()
    return True


def _name(part: Part) -> str:
    return part.key.rsplit("/", 1)[-1]
