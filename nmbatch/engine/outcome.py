"""The one typed record that crosses the worker boundary, and the item records it carries.

Every item record (a row of ``items/``) is built here, by :func:`done_record`,
:func:`failed_record` or :func:`lost_record`, whether a worker made it or the
driver did (the predecessor's plain loop, a worker that died). A :class:`TaskOutcome` is
what a Dask task returns: the records of its items and where the worker staged
their files, already durable.
"""

from __future__ import annotations

import json
import traceback as tb
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from nmbatch.engine.config import config_hash
from nmbatch.engine.errors import StageError
from nmbatch.engine.layout import DONE, FAILED

WORKER_LOST_STAGE = "worker_lost"


@dataclass(frozen=True)
class Stamp:
    """What every record of one run carries: which parameters, code and libraries made it."""

    config_hash: str
    provenance_hash: str = ""
    nmbatch_version: str = ""
    code_version: str = ""
    libraries: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Mapping[str, Any], provenance: Mapping[str, Any]) -> Stamp:
        """The stamp of a run with these parameters and this provenance."""
        return cls(
            config_hash(config),
            config_hash(provenance) if provenance else "",
            provenance.get("nmbatch_version", ""),
            provenance.get("code_version", ""),
            dict(provenance.get("libraries", {})),
        )


@dataclass(frozen=True)
class ItemRecord:
    """One attempt at one item: done, or failed with its error (one row of ``items/``)."""

    item_id: str
    label: str | None
    status: str
    stamp: Stamp
    attempt: int = 1
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_s: float | None = None
    worker: str | None = None
    flags: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    stage: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    files: Mapping[str, tuple[int, str]] = field(default_factory=dict)

    def row(self, id_column: str, label_column: str) -> dict[str, Any]:
        """The record as a row of the items schema (:func:`nmbatch.engine.layout.items_schema`)."""
        return {
            id_column: self.item_id,
            label_column: self.label,
            "status": self.status,
            "stage": self.stage,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "traceback": self.traceback,
            "worker": self.worker,
            "attempt": self.attempt,
            "time": self.time,
            "duration_s": self.duration_s,
            "flags": json.dumps(dict(self.flags), default=str) if self.flags else None,
            "fingerprint": self.fingerprint or None,
            "config_hash": self.stamp.config_hash,
            "provenance_hash": self.stamp.provenance_hash or None,
            "nmbatch_version": self.stamp.nmbatch_version or None,
            "code_version": self.stamp.code_version or None,
            "libraries": json.dumps(dict(self.stamp.libraries)) if self.stamp.libraries else None,
            "files": json.dumps({k: list(v) for k, v in self.files.items()})
            if self.files
            else None,
            "commit": None,
        }


def done_record(item_id: str, label: str | None, stamp: Stamp, **fields: Any) -> ItemRecord:
    """A finished item."""
    return ItemRecord(str(item_id), label, DONE, stamp, **fields)


def describe_failure(exc: BaseException, stage: str | None) -> dict[str, str]:
    """The error fields of an exception: its stage, the cause's type and a readable message."""
    if isinstance(exc, StageError):
        stage = exc.stage
    cause = exc.__cause__ if isinstance(exc, StageError) and exc.__cause__ is not None else exc
    message = str(exc)
    if cause is not exc and str(cause) not in message:
        message = f"{message} ({type(cause).__name__}: {cause})"
    return {
        "stage": stage or "run",
        "error_type": type(cause).__name__,
        "error_message": message or type(cause).__name__,
        "traceback": "".join(tb.format_exception(exc)) if exc.__traceback__ else None,
    }


def failed_record(
    item_id: str,
    label: str | None,
    stamp: Stamp,
    error: BaseException | str,
    stage: str | None = None,
    error_type: str | None = None,
    **fields: Any,
) -> ItemRecord:
    """A failed item, from the exception it raised (or a message and a type)."""
    if isinstance(error, BaseException):
        described = describe_failure(error, stage)
        if error_type:
            described["error_type"] = error_type
        if fields.get("traceback"):
            described["traceback"] = fields.pop("traceback")
    else:
        described = {
            "stage": stage or "run",
            "error_type": error_type or "Error",
            "error_message": str(error),
            "traceback": fields.pop("traceback", None),
        }
    fields.pop("traceback", None)
    return ItemRecord(str(item_id), label, FAILED, stamp, **described, **fields)


def lost_record(
    item_id: str, label: str | None, stamp: Stamp, deaths: int, worker: str | None, attempt: int
) -> ItemRecord:
    """An item that killed the worker running it, alone, every time it was tried."""
    return ItemRecord(
        str(item_id),
        label,
        FAILED,
        stamp,
        attempt=attempt,
        worker=worker,
        stage=WORKER_LOST_STAGE,
        error_type="KilledWorker",
        error_message=(
            f"the worker process running this item died each time it was tried ({deaths} "
            "times, running it alone): killed, out of memory, or crashed"
        ),
    )


@dataclass(frozen=True)
class TaskOutcome:
    """What a task comes to: the staged folder a worker made durable, or records made here.

    A worker returns only ``staged``, its task's folder under ``staging/`` (relative to
    the cache) holding the records, rows and arrays; the driver reads them from there.
    Records the driver makes itself (an item whose worker died) travel in ``records``.
    """

    task: str
    records: tuple[ItemRecord, ...]
    staged: str | None = None

    @property
    def n_failed(self) -> int:
        return sum(r.status == FAILED for r in self.records)


def records_from_table(table: pa.Table, id_column: str, label_column: str) -> list[ItemRecord]:
    """Item records read back from a records part (the inverse of :meth:`ItemRecord.row`)."""
    records = []
    for row in table.to_pylist():
        stamp = Stamp(
            row["config_hash"] or "",
            row["provenance_hash"] or "",
            row["nmbatch_version"] or "",
            row["code_version"] or "",
            json.loads(row["libraries"]) if row["libraries"] else {},
        )
        records.append(
            ItemRecord(
                row[id_column],
                row[label_column],
                row["status"],
                stamp,
                attempt=row["attempt"] or 1,
                time=row["time"],
                duration_s=row["duration_s"],
                worker=row["worker"],
                flags=json.loads(row["flags"]) if row["flags"] else {},
                fingerprint=row["fingerprint"] or "",
                stage=row["stage"],
                error_type=row["error_type"],
                error_message=row["error_message"],
                traceback=row["traceback"],
                files={k: tuple(v) for k, v in json.loads(row["files"]).items()}
                if row["files"]
                else {},
            )
        )
    return records
