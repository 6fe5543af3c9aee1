"""Bytes of the cache's parts: tables cast to their schemas, records, staged tasks.

Used by the worker (which stages a task's outcome in its own folder) and by the
cache (which writes the plain loop's batches and merges segments): one way to
turn rows into a part, whoever writes it.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
import zarr.storage

from nmbatch.engine.layout import (
    STAGED_ARRAYS,
    STAGED_RECORD,
    STAGED_RESULTS,
    STARTED_PREFIX,
    array_group,
    crc32,
    items_schema,
    result_schema,
    staged_file,
)
from nmbatch.engine.outcome import ItemRecord
from nmbatch.engine.store import atomic_write


def table_bytes(table: pa.Table) -> bytes:
    """A table as parquet bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def read_table(data: bytes, schema: pa.Schema | None = None) -> pa.Table:
    """Parquet bytes as a table, cast to ``schema`` when given."""
    return pq.read_table(io.BytesIO(data), schema=schema)


def to_arrow(df: pd.DataFrame, schema: pa.Schema, item_id: str, id_column: str) -> pa.Table:
    """Cast one item's rows to the declared schema, with the id column first.

    Raises ValueError naming the columns the job returned but did not declare,
    so schema drift is caught at the item that causes it.
    """
    full = result_schema(schema, id_column)
    extra = [c for c in df.columns if c not in full.names]
    if extra:
        raise ValueError(f"columns not in the declared schema: {extra}")
    n = len(df)
    columns = []
    for f in full:
        if f.name == id_column:
            columns.append(pa.array([item_id] * n, type=f.type))
        elif f.name in df.columns:
            series = df[f.name]
            # plain numpy columns convert several times faster without the Series around them
            values = series.to_numpy() if isinstance(series.dtype, np.dtype) else series
            columns.append(pa.array(values, type=f.type, from_pandas=True))
        else:
            columns.append(pa.nulls(n, type=f.type))
    return pa.Table.from_arrays(columns, schema=full)


def records_table(records: Sequence[ItemRecord], id_column: str, label_column: str) -> pa.Table:
    """Item records as a table of the items schema."""
    schema = items_schema(id_column, label_column)
    return pa.Table.from_pylist([r.row(id_column, label_column) for r in records], schema=schema)


def write_item_arrays(root: zarr.Group, item_id: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Replace the group ``item_id`` under ``root`` with ``arrays``."""
    group = root.create_group(str(item_id), overwrite=True)
    for name, value in arrays.items():
        group.create_array(name, data=np.asarray(value), overwrite=True)


def file_checksums(folder: Path, relative_to: Path) -> dict[str, tuple[int, str]]:
    """Size and CRC-32 of every file under ``folder``, keyed by path relative to ``relative_to``."""
    sums: dict[str, tuple[int, str]] = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            data = path.read_bytes()
            sums[str(path.relative_to(relative_to))] = (len(data), crc32(data))
    return sums


def verify_checksums(root: Path, files: Mapping[str, Iterable]) -> str | None:
    """The first file under ``root`` whose size or CRC-32 differs from ``files``, else None."""
    for relative, (size, checksum) in files.items():
        path = root / relative
        try:
            if path.stat().st_size != size:
                return relative
            if f"{zlib.crc32(path.read_bytes()) & 0xFFFFFFFF:08x}" != checksum:
                return relative
        except OSError:
            return relative
    return None


def mark_started(folder: Path, worker: str) -> None:
    """Note that a try of this task began running (one file per try, named uniquely)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / f"{STARTED_PREFIX}{os.urandom(6).hex()}", worker.encode(), sync=False)


def stage_task(
    folder: Path,
    array_key_prefix: str,
    records: list[ItemRecord],
    tables: Mapping[str, list[pa.Table]],
    arrays: Mapping[str, Mapping[str, np.ndarray]],
    id_column: str,
    label_column: str,
) -> None:
    """Make a task's outcome durable in ``folder``: arrays, result rows, then the records.

    ``arrays`` is keyed by item id.

    The records file is written last, so a folder with one is complete. Each record
    gets the sizes and checksums of its item's array files (as they will lie under
    ``array_key_prefix`` once committed) so damage is found later.
    """
    staged_arrays = folder / STAGED_ARRAYS
    if arrays:
        root = zarr.open_group(zarr.storage.LocalStore(staged_arrays), mode="a")
        for item_id, item_arrays in arrays.items():
            write_item_arrays(root, array_group(item_id), item_arrays)
        records = [
            replace(r, files=_rebased(_group_sums(staged_arrays, r.item_id), array_key_prefix))
            if r.item_id in arrays
            else r
            for r in records
        ]
    for table, parts in tables.items():
        if parts:
            data = table_bytes(pa.concat_tables(parts))
            atomic_write(
                folder / STAGED_RESULTS / staged_file(table, crc32(data)), data, sync=False
            )
    data = table_bytes(records_table(records, id_column, label_column))
    atomic_write(folder / staged_file(STAGED_RECORD, crc32(data)), data, sync=False)


def _group_sums(root: Path, item_id: str) -> dict[str, tuple[int, str]]:
    return file_checksums(root / array_group(item_id), root)


def _rebased(sums: Mapping[str, tuple[int, str]], prefix: str) -> dict[str, tuple[int, str]]:
    return {f"{prefix}/{k}": v for k, v in sums.items()}
