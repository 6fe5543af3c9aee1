"""Reading a cache: the rows that count, item states and errors, arrays, exports.

:class:`AnalysisCache` takes these methods in; they only read (or, for arrays and
exports, write one item's or one file's content atomically).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.layout import FAILED, array_group, result_schema
from nmbatch.engine.parts import table_bytes, write_item_arrays


class CacheReads:
    """Results, states, errors and arrays of :class:`AnalysisCache`."""

    def _array_root(self, mode: str = "a") -> zarr.Group:
        return zarr.open_group(self.store.zarr_store(), mode=mode)

    def write_arrays(self, item_id: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write an item's arrays into its own group, replacing what a failed try left."""
        write_item_arrays(self._array_root(), array_group(item_id), arrays)

    def read_arrays(self, item_id: str) -> dict[str, np.ndarray]:
        """All arrays of one item ({} when it has none)."""
        try:
            group = self._array_root(mode="r")[array_group(item_id)]
        except (KeyError, FileNotFoundError):
            return {}
        return {name: arr[...] for name, arr in group.arrays()}

    def get_results(self, table: str | None = None) -> pd.DataFrame:
        """All saved rows of a result table (the only one, if ``table`` is not given).

        Each item's rows come from its latest done record only, so an item run
        again (``--overwrite``, changed inputs) never shows twice.
        """
        pending_tables = {n for _, t, _ in self._pending for n in t}
        names = sorted(set(self.reader.tables()) | pending_tables)
        if table is None:
            if len(names) > 1:
                raise ConfigError(f"{self.name} has several result tables, name one of: {names}")
            if not names:
                return pd.DataFrame(columns=[self.id_column])
            table = names[0]
        schema = self.table_schemas.get(table)
        full = result_schema(schema, self.id_column) if schema is not None else None
        parts = self.reader.results(table, self.index, full)
        parts += [t[table] for _, t, _ in self._pending if table in t]
        if not parts:
            return (
                full.empty_table().to_pandas() if full else pd.DataFrame(columns=[self.id_column])
            )
        return pa.concat_tables(parts, promote_options="permissive").to_pandas()

    def item_states(self) -> pd.DataFrame:
        """The latest saved record of every item (done or failed), flags decoded to dicts."""
        records = self.reader.records()
        latest = records.drop_duplicates(self.id_column, keep="last").reset_index(drop=True)
        latest["flags"] = [json.loads(f) if f else {} for f in latest["flags"]]
        return latest

    def get_errors(self) -> pd.DataFrame:
        """Error records of the items whose latest attempt failed."""
        states = self.item_states()
        errors = states[states["status"] == FAILED]
        return errors.drop(columns=["status", "duration_s"]).reset_index(drop=True)

    def get_error_history(self) -> pd.DataFrame:
        """Every failure ever recorded, including items that later succeeded."""
        records = self.reader.records()
        return records[records["status"] == FAILED].reset_index(drop=True)

    def write_export(self, filename: str, table: pd.DataFrame) -> None:
        """Write a job's derived table next to the manifest (e.g. ``sessions.pqt``), atomically."""
        self.store.write_bytes(
            filename, table_bytes(pa.Table.from_pandas(table, preserve_index=False))
        )
