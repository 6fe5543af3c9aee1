"""One folder per run under ``runs/``: what it did, what it decided, Dask's report of it.

``runs/<start>/run.json`` is written when the run starts (``finished`` null) and again
when it ends, so a run killed on the way still leaves its start, command and
parameters; ``dask-performance.html`` and ``dask.log`` lie beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nmbatch.engine.layout import RUNS_PREFIX
from nmbatch.engine.store import Store

PERFORMANCE_REPORT = "dask-performance.html"
DASK_LOG = "dask.log"
RUN_RECORD = "run.json"


@dataclass
class RunRecord:
    """The record of one run, kept in ``runs/<start>/run.json``."""

    store: Store
    command: str
    config: dict[str, Any]
    config_hash: str
    provenance: dict[str, Any]
    provenance_hash: str
    config_change: dict[str, Any] | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    key: str = ""
    performance_report: str | None = None

    def __post_init__(self) -> None:
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        key, n = f"{RUNS_PREFIX}/{stamp}", 1
        while self.store.exists(key):
            n += 1
            key = f"{RUNS_PREFIX}/{stamp}-{n}"
        self.key = key

    def path(self, name: str) -> Path | None:
        """A file of this run's folder on disk (None for an in-memory cache)."""
        if self.store.local_root is None:
            return None
        folder = self.store.local_root / self.key
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def write(self, counts: dict[str, Any] | None = None, finished: bool = False) -> None:
        now = datetime.now(UTC)
        record = {
            "started": self.started.isoformat(timespec="seconds"),
            "finished": now.isoformat(timespec="seconds") if finished else None,
            "duration_s": round((now - self.started).total_seconds(), 3),
            "command": self.command,
            **(counts or {"listed": 0, "done": 0, "failed": 0, "skipped": 0, "interrupted": False}),
            "config_hash": self.config_hash,
            "provenance_hash": self.provenance_hash,
            "config_change": self.config_change,
            "performance_report": self.performance_report,
            "config": self.config,
            "provenance": self.provenance,
        }
        self.store.write_bytes(
            f"{self.key}/{RUN_RECORD}", json.dumps(record, indent=2, default=str).encode()
        )
