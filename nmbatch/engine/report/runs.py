"""The run history of a cache: one ``runs/<start>/run.json`` per run, read back tolerantly.

Each run writes ``<cache>/runs/<start as YYYYMMDDTHHMMSSZ>/run.json`` (started, finished,
duration_s, command, listed, done, failed, skipped, interrupted, config_hash, provenance_hash,
config_change, performance_report) and Dask's performance report beside it. A run that crashed
has no ``finished``; one killed before its first write has a folder and no file. Such runs are
listed with what is known, never dropped: a crash is history too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUNS_DIR = "runs"
RUN_FILE = "run.json"
FOLDER_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class ParameterChange:
    """One tracked parameter a run found changed: dotted key, cached and current value."""

    key: str
    cached: Any
    current: Any


@dataclass(frozen=True)
class RunRecord:
    """What one run left in ``runs/``; fields it did not write are None."""

    folder: Path
    started: datetime | None
    finished: datetime | None = None
    duration_s: float | None = None
    command: str = ""
    listed: int | None = None
    done: int | None = None
    failed: int | None = None
    skipped: int | None = None
    interrupted: bool = False
    config_hash: str = ""
    provenance_hash: str = ""
    change_decision: str | None = None  # 'recompute' or 'continue' when parameters changed
    changes: tuple[ParameterChange, ...] = field(default_factory=tuple)
    performance_report: Path | None = None
    problem: str = ""  # why the record is incomplete ('' for a whole run.json)

    @property
    def state(self) -> str:
        """'finished', 'interrupted', or 'not finished' (it crashed, or it is running now)."""
        if self.interrupted:
            return "interrupted"
        return "finished" if self.finished is not None else "not finished"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _folder_time(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, FOLDER_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _changes(value: Any) -> tuple[str | None, tuple[ParameterChange, ...]]:
    if not isinstance(value, dict):
        return None, ()
    changes = tuple(
        ParameterChange(str(c.get("key", "?")), c.get("cached"), c.get("current"))
        for c in value.get("changes") or []
        if isinstance(c, dict)
    )
    decision = value.get("decision")
    return (decision if isinstance(decision, str) else "?"), changes


def read_run(folder: Path) -> RunRecord:
    """The record of one run folder, however little of it was written."""
    path = folder / RUN_FILE
    started = _folder_time(folder.name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return RunRecord(
            folder, started, problem=f"no {RUN_FILE}: the run stopped before writing it"
        )
    except (OSError, ValueError) as exc:
        return RunRecord(folder, started, problem=f"{RUN_FILE} unreadable ({exc})")
    if not isinstance(data, dict):
        return RunRecord(folder, started, problem=f"{RUN_FILE} is not a JSON object")
    decision, changes = _changes(data.get("config_change"))
    duration = data.get("duration_s")
    report = data.get("performance_report")
    return RunRecord(
        folder=folder,
        started=_time(data.get("started")) or started,
        finished=_time(data.get("finished")),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        command=_text(data.get("command")),
        listed=_count(data.get("listed")),
        done=_count(data.get("done")),
        failed=_count(data.get("failed")),
        skipped=_count(data.get("skipped")),
        interrupted=data.get("interrupted") is True,
        config_hash=_text(data.get("config_hash")),
        provenance_hash=_text(data.get("provenance_hash")),
        change_decision=decision,
        changes=changes,
        performance_report=folder / report if isinstance(report, str) and report else None,
    )


def read_runs(cache_dir: Path) -> list[RunRecord]:
    """Every run of the cache, oldest first (runs whose start is unknown last)."""
    runs_dir = Path(cache_dir) / RUNS_DIR
    if not runs_dir.is_dir():
        return []
    records = [read_run(p) for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    latest = datetime.max.replace(tzinfo=UTC)
    return sorted(records, key=lambda r: (r.started or latest, r.folder.name))
