"""What runs inside a Dask task: a job's items, each turned into a record, made durable here.

A task runs one item, or a few very short ones in a row. Before it returns, the
worker writes the items' result rows, arrays and records into the task's own
folder under ``staging/`` (results and arrays first, records last), so a driver
killed at any moment loses nothing that finished: it only commits staged folders
into the cache, and the next run commits what it did not get to.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from nmbatch.engine.job import Item, ItemContext, Job
from nmbatch.engine.layout import ARRAYS_KEY, STAGING_PREFIX
from nmbatch.engine.outcome import ItemRecord, Stamp, TaskOutcome, done_record, failed_record
from nmbatch.engine.parts import mark_started, stage_task, to_arrow


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs besides its items; the same object for every task of a run."""

    job: Job
    params: Mapping[str, Any]
    schemas: Mapping[str, pa.Schema]
    id_column: str
    label_column: str
    stamp: Stamp
    cache_root: str


def worker_name() -> str:
    """The Dask worker's address, or host:pid outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"


def run_one(
    spec: TaskSpec, item: Item, attempt: int, worker: str
) -> tuple[ItemRecord, dict[str, pa.Table], dict[str, np.ndarray]]:
    """Run one item; its record, its rows cast to their schemas, its arrays. Never raises."""
    ctx = ItemContext(item, spec.params)
    started = time.perf_counter()
    common = {"attempt": attempt, "worker": worker, "fingerprint": item.fingerprint}
    try:
        result = spec.job.run_item(item, ctx)
        with ctx.stage("store"):
            tables = {}
            for name, rows in result.tables.items():
                if name not in spec.schemas:
                    raise ValueError(
                        f"table '{name}' is not declared in {type(spec.job).__name__}.table_schemas"
                    )
                tables[name] = to_arrow(rows, spec.schemas[name], item.id, spec.id_column)
        record = done_record(
            item.id,
            item.label,
            spec.stamp,
            flags={**ctx.flags, **result.flags},
            duration_s=time.perf_counter() - started,
            **common,
        )
        return record, tables, dict(result.arrays)
    except Exception as exc:  # an item's failure, of any kind, becomes its error record
        record = failed_record(
            item.id,
            item.label,
            spec.stamp,
            exc,
            stage=ctx.failed_stage or ctx.stage_name,
            flags=dict(ctx.flags),
            duration_s=time.perf_counter() - started,
            **common,
        )
        return record, {}, {}


def run_task(
    spec: TaskSpec, task: str, items: Sequence[Item], attempts: Sequence[int]
) -> TaskOutcome:
    """The Dask task: run ``items`` and stage their outcome under ``staging/<task>/``."""
    worker = worker_name()
    folder = Path(spec.cache_root) / STAGING_PREFIX / task
    mark_started(folder, worker)
    records: list[ItemRecord] = []
    tables: dict[str, list[pa.Table]] = {}
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for item, attempt in zip(items, attempts, strict=True):
        record, item_tables, item_arrays = run_one(spec, item, attempt, worker)
        records.append(record)
        for name, table in item_tables.items():
            tables.setdefault(name, []).append(table)
        if item_arrays:
            arrays[item.id] = item_arrays
    stage_task(folder, ARRAYS_KEY, records, tables, arrays, spec.id_column, spec.label_column)
    return TaskOutcome(task, (), f"{STAGING_PREFIX}/{task}")
