"""The predecessor's plain loop over a cache: ``add`` finished items, ``save`` them in batches.

Used where items are run one after the other in one process (the predecessor
scripts, notebooks, tests); a Dask run makes each task's outcome durable on its
worker instead. :class:`AnalysisCache` takes these methods in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nmbatch.engine.layout import FAILED
from nmbatch.engine.outcome import done_record, failed_record
from nmbatch.engine.parts import to_arrow


class PlainLoop:
    """``add`` / ``add_error`` / ``save_if_needed`` / ``save`` of :class:`AnalysisCache`."""

    def add(
        self,
        item_id: str,
        result: pd.DataFrame | pd.Series | Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        table: str = "results",
        tables: Mapping[str, pd.DataFrame | pa.Table] | None = None,
        arrays: Mapping[str, np.ndarray] | None = None,
        flags: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Add a finished item's results (kept pending until the next save).

        ``result`` is one table's rows (a DataFrame, a Series or a dict for one row),
        stored in ``table``; ``tables`` gives several tables at once (DataFrames or
        Arrow tables already cast). ``fields`` may carry worker, duration_s.
        """
        item_id = str(item_id)
        all_tables: dict[str, Any] = dict(tables or {})
        if result is not None:
            if isinstance(result, pd.Series):
                result = result.to_frame().T
            elif isinstance(result, Mapping):
                result = pd.DataFrame([result])
            all_tables[table] = result
        cast = {}
        for name, rows in all_tables.items():
            if isinstance(rows, pd.DataFrame):
                if name not in self.table_schemas:
                    self.table_schemas[name] = pa.Schema.from_pandas(
                        rows.drop(columns=[self.id_column], errors="ignore"), preserve_index=False
                    )
                rows = to_arrow(rows, self.table_schemas[name], item_id, self.id_column)
            cast[name] = rows
        record = done_record(
            item_id,
            label,
            self.stamp,
            attempt=self._attempt(item_id),
            flags=flags or {},
            **_record_fields(fields),
        )
        self._pending.append((record, cast, dict(arrays or {})))

    def add_error(
        self,
        item_id: str,
        error: BaseException | str,
        *,
        label: str | None = None,
        stage: str | None = None,
        error_type: str | None = None,
        traceback: str | None = None,
        flags: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Record that an item failed (kept pending until the next save)."""
        record = failed_record(
            str(item_id),
            label,
            self.stamp,
            error,
            stage=stage or getattr(error, "stage", None),
            error_type=error_type,
            traceback=traceback,
            attempt=self._attempt(str(item_id)),
            flags=flags or {},
            **_record_fields(fields),
        )
        self._pending.append((record, {}, {}))

    def _attempt(self, item_id: str) -> int:
        pending = sum(r.item_id == item_id and r.status == FAILED for r, _, _ in self._pending)
        return self.attempts(item_id) + pending + 1

    def save_if_needed(self) -> bool:
        """Save if ``batch_size`` items are pending or ``save_interval`` has passed."""
        due = time.monotonic() - self._last_save >= self.save_interval
        if self._pending and (len(self._pending) >= self.batch_size or due):
            self.save()
            return True
        return False

    def save(self) -> None:
        """Write pending items as one commit: arrays, result parts, then the records part."""
        self._last_save = time.monotonic()
        if not self._pending:
            return
        if not self.manifest:
            self._write_manifest()
        records = [r for r, _, _ in self._pending]
        tables: dict[str, list[pa.Table]] = {}
        for record, item_tables, arrays in self._pending:
            if arrays:
                self.write_arrays(record.item_id, arrays)
            for name, rows in item_tables.items():
                tables.setdefault(name, []).append(rows)
        self._write_commit(records, tables)
        self._pending.clear()
        self._write_manifest()


def _record_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The optional record fields the plain loop may give (worker, duration_s, fingerprint)."""
    allowed = {"worker", "duration_s", "fingerprint", "time"}
    unknown = set(fields) - allowed - {"attempt"}
    if unknown:
        raise TypeError(f"unknown record fields: {sorted(unknown)}")
    return {k: v for k, v in fields.items() if k in allowed}
