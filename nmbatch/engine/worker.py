"""What runs inside a Dask task: a job's items, each turned into an outcome.

An outcome is a plain dict the driver stores: ``status`` ``'done'`` with the
item's tables (already cast to their schemas) or ``'failed'`` with the error
record. Arrays are written here, into the item's own zarr group, so large
arrays never travel back to the driver.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import zarr
import zarr.storage

from nmbatch.engine.cache import to_arrow, write_item_arrays
from nmbatch.engine.errors import StageError
from nmbatch.engine.job import Item, ItemContext, Job


def worker_name() -> str:
    """The Dask worker's address, or host:pid outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"


def describe_failure(exc: BaseException, ctx: ItemContext) -> dict[str, Any]:
    """The error-record fields of an exception raised by an item."""
    if isinstance(exc, StageError):
        stage = exc.stage
    else:
        stage = ctx.failed_stage or ctx.stage_name or "run"
    cause = exc.__cause__ if isinstance(exc, StageError) and exc.__cause__ is not None else exc
    message = str(exc)
    if cause is not exc and str(cause) not in message:
        message = f"{message} ({type(cause).__name__}: {cause})"
    return {
        "stage": stage,
        "error_type": type(cause).__name__,
        "error_message": message or type(cause).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
    }


def run_one(
    job: Job,
    item: Item,
    params: Mapping[str, Any],
    schemas: Mapping[str, pa.Schema],
    id_column: str,
    array_path: str | None,
) -> dict[str, Any]:
    """Run one item and return its outcome; never raises for the item's own errors."""
    ctx = ItemContext(item, params)
    started = time.perf_counter()
    outcome: dict[str, Any] = {"id": item.id, "label": item.label, "worker": worker_name()}
    try:
        result = job.run_item(item, ctx)
        with ctx.stage("store"):
            tables: dict[str, Any] = {}
            for name, rows in result.tables.items():
                if name not in schemas:
                    raise ValueError(
                        f"table '{name}' is not declared in {type(job).__name__}.table_schemas"
                    )
                tables[name] = to_arrow(rows, schemas[name], item.id, id_column)
            arrays = result.arrays or None
            if arrays and array_path is not None:
                root = zarr.open_group(zarr.storage.LocalStore(array_path), mode="a")
                write_item_arrays(root, item.id, arrays)
                arrays = None
        outcome.update(
            status="done", tables=tables, arrays=arrays, flags={**ctx.flags, **result.flags}
        )
    except Exception as exc:  # an item's failure, of any kind, becomes its error record
        outcome.update(status="failed", flags=dict(ctx.flags), **describe_failure(exc, ctx))
    outcome["duration_s"] = time.perf_counter() - started
    return outcome


def run_items(
    job: Job,
    items: Sequence[Item],
    params: Mapping[str, Any],
    schemas: Mapping[str, pa.Schema],
    id_column: str,
    array_path: str | None,
) -> list[dict[str, Any]]:
    """The Dask task: a few items in a row (one, unless items are very short)."""
    return [run_one(job, item, params, schemas, id_column, array_path) for item in items]
