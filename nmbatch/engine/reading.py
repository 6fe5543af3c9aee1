"""Reading committed parts: listing them, the records in commit order, rows that count.

Readers never repair anything (that is :mod:`nmbatch.engine.recovery`, for the
writer); a part whose bytes do not match the checksum in its name is skipped with a
warning, so ``nmbatch status`` and reports work on a damaged cache too.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nmbatch.engine.index import INDEX_COLUMNS, ItemIndex
from nmbatch.engine.layout import ITEMS_PREFIX, RESULTS_PREFIX, Part, crc32, items_schema
from nmbatch.engine.parts import read_table
from nmbatch.engine.store import Store

log = logging.getLogger(__name__)


class PartReader:
    """The committed parts of one cache, read on demand and cached until :meth:`forget`."""

    def __init__(self, store: Store, id_column: str, label_column: str):
        self.store = store
        self.id_column, self.label_column = id_column, label_column
        self.schema = items_schema(id_column, label_column)
        self._table: pa.Table | None = None
        self._warned: set[str] = set()

    def forget(self) -> None:
        """Drop what was read (after a commit or a compaction changed the parts)."""
        self._table = None

    def parts(self, prefix: str) -> list[Part]:
        """Committed parts under ``prefix`` (``items`` or ``results/<table>``), in commit order."""
        found = [Part.parse(key) for key in self.store.list(prefix)]
        return sorted((p for p in found if p is not None), key=lambda p: p.span)

    def tables(self) -> list[str]:
        """Names of the result tables that have a folder."""
        return [key.rsplit("/", 1)[-1] for key in self.store.list(RESULTS_PREFIX)]

    def read(self, part: Part, schema: pa.Schema | None = None) -> pa.Table | None:
        """A part's rows, or None (with one warning) if its bytes do not match its checksum."""
        try:
            data = self.store.read_bytes(part.key)
            if crc32(data) != part.checksum:
                raise ValueError("its checksum does not match")
            return read_table(data, schema)
        except (KeyError, OSError, ValueError, pa.ArrowException) as exc:
            if part.key not in self._warned:
                self._warned.add(part.key)
                log.warning("skipped damaged file %s (%s)", part.key, exc)
            return None

    def last_commit(self) -> int:
        spans = [p.span.last for p in self.parts(ITEMS_PREFIX)]
        for table in self.tables():
            spans += [p.span.last for p in self.parts(f"{RESULTS_PREFIX}/{table}")]
        return max(spans, default=0)

    def record_table(self) -> pa.Table:
        """Every record (attempt), in commit order, with ``commit`` filled in."""
        if self._table is None:
            frames = []
            for part in self.parts(ITEMS_PREFIX):
                table = self.read(part, self.schema)
                if table is None:
                    continue
                commit = table["commit"].fill_null(part.span.first)
                frames.append(
                    table.set_column(table.schema.get_field_index("commit"), "commit", commit)
                )
            self._table = pa.concat_tables(frames) if frames else self.schema.empty_table()
        return self._table

    def records(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The records as a DataFrame; ``columns`` picks some (converting all is the cost)."""
        table = self.record_table()
        return (table if columns is None else table.select(columns)).to_pandas()

    def index(self) -> ItemIndex:
        """Every item's latest state."""
        records = self.records([self.id_column, *INDEX_COLUMNS])
        return ItemIndex.from_records(records, self.id_column)

    def table_schema(self, table: str) -> pa.Schema | None:
        """The schema of a table's newest readable part."""
        for part in reversed(self.parts(f"{RESULTS_PREFIX}/{table}")):
            rows = self.read(part)
            if rows is not None:
                return rows.schema
        return None

    def results(self, table: str, index: ItemIndex, schema: pa.Schema | None) -> list[pa.Table]:
        """A table's rows that count: each item's rows from its latest done commit."""
        out = []
        for part in self.parts(f"{RESULTS_PREFIX}/{table}"):
            rows = self.read(part, schema)
            if rows is None or not rows.num_rows:
                continue
            out.append(keep_current(rows, part, index, self.id_column))
        return out


def keep_current(rows: pa.Table, part: Part, index: ItemIndex, id_column: str) -> pa.Table:
    """The rows of ``part`` whose item's latest done commit lies in the part's span."""
    ids = rows[id_column].to_pylist()
    commits = np.array([index.done_commit(i) or -1 for i in ids], dtype=np.int64)
    if ((commits >= part.span.first) & (commits <= part.span.last)).all():
        return rows
    mask = pa.array((commits >= part.span.first) & (commits <= part.span.last))
    return rows.filter(pc.fill_null(mask, False))
