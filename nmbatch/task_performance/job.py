"""The task-performance job: one item per IBL session, its trials table in, one row out.

Per session the worker loads the trials table (``alf/task_00``, then ``alf``; stage
``load_trials``), then computes fraction correct, no-go rate, block checks and the psychometric
fits (stage ``performance``). Sessions without enough trials, or whose trials cannot be fitted,
fail at ``performance`` with a message that says why. A fit that comes back but should not be
trusted (a parameter at its bound, R^2 below zero) is kept and flagged ``psych_<block>_suspect``;
the data each block was fitted to go to ``arrays.zarr/<eid>/psychometric_<block>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from nmbatch.engine.errors import ConfigError, StageError
from nmbatch.engine.job import Item, ItemContext, ItemResult, Listing
from nmbatch.ibl.loading import load_trials
from nmbatch.ibl.session_job import SessionJob
from nmbatch.task_performance.performance import (
    SessionPerformance,
    TrialsTableError,
    evaluate_session,
    session_type_from_metadata,
)
from nmbatch.task_performance.psychometric import (
    BLOCKS,
    FIT_FIELDS,
    FIT_METHODS,
    PsychometricFitError,
    fit_columns,
)

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

TABLE = "performance"
TRIALS_FLAG = "can_load_trials"
MAX_LISTED_SUSPECT = 10  # suspect fits named in the closing summary
FIT_FIELD_TYPES = {"n_trials": pa.int64(), "suspect": pa.bool_(), "suspect_reason": pa.string()}


def performance_schema() -> pa.Schema:
    """The performance table's columns (the engine prepends ``eid``)."""
    fields = [
        ("session_date", pa.string()),  # the sessions table's date (YYYY-MM-DD), if it has one
        ("session_type", pa.string()),  # 'training' or 'biased'
        ("session_type_source", pa.string()),  # 'metadata' (sessions table) or 'trials'
        ("trials_collection", pa.string()),  # 'alf/task_00' or 'alf'
        ("n_trials", pa.int64()),
        ("fraction_correct", pa.float64()),
        ("fraction_correct_easy", pa.float64()),
        ("nogo_fraction", pa.float64()),
        ("block_structure_valid", pa.bool_()),
        ("block_problem", pa.string()),  # '' when valid
        ("min_block_length", pa.int64()),
        ("n_blocks", pa.int64()),
    ]
    for block in BLOCKS:  # psych_<block>_suspect: a parameter at its bound or R^2 < 0
        fields += [
            (column, FIT_FIELD_TYPES.get(name, pa.float64()))
            for name, column in zip(FIT_FIELDS, fit_columns(block), strict=True)
        ]
    fields.append(("bias_shift", pa.float64()))
    return pa.schema(fields)


class TaskPerformanceJob(SessionJob):
    """Behavioural performance and psychometric fits of IBL sessions."""

    name: ClassVar[str] = "task_performance"
    description: ClassVar[str] = "Fraction correct, block checks and psychometric fits per session"
    item_columns: ClassVar[tuple[str, ...]] = (
        "eid",
        "subject",
        "date",
        "session_type",
        "task_protocol",
    )
    code_version: ClassVar[str] = "2"  # 2: session_date, psych_<block>_suspect[_reason]
    result_libraries: ClassVar[tuple[str, ...]] = ("ibllib", "numpy", "scipy", "pandas")

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """Refuse an unknown fit method or a bad trial minimum before any item runs."""
        super().validate_params(params)
        method = params.get("psych_fit_method")
        if method not in FIT_METHODS:
            raise ConfigError(
                f"psych_fit_method must be one of {sorted(FIT_METHODS)}, not {method!r}"
            )

    def table_schemas(self, params: Mapping[str, Any]) -> dict[str, pa.Schema]:
        """One row per session in the ``performance`` table."""
        return {TABLE: performance_schema()}

    def run_item(self, item: Item, ctx: ItemContext) -> ItemResult:
        """Load the session's trials, then compute its performance row."""
        eid = item.data["eid"]
        ctx.flags[TRIALS_FLAG] = None
        with ctx.stage("load_trials"):
            try:
                trials, collection = load_trials(self.source.one(), eid)
            except Exception:
                ctx.flags[TRIALS_FLAG] = False
                raise
            ctx.flags[TRIALS_FLAG] = True
        with ctx.stage("performance"):
            performance = self._performance(item, trials, ctx.params)
            row = {**performance.row, "trials_collection": collection}
            date = item.data.get("date")
            row["session_date"] = str(date)[:10] if date is not None else None
        return ItemResult(
            tables={TABLE: pd.DataFrame([row])}, arrays=performance.arrays, flags=dict(ctx.flags)
        )

    @staticmethod
    def _performance(
        item: Item, trials: pd.DataFrame, params: Mapping[str, Any]
    ) -> SessionPerformance:
        """Return the performance; StageError with a readable cause if there is none."""
        min_ntrials = params["min_ntrials"]
        if len(trials) == 0:
            raise StageError("performance", "the trials table has no trials")
        if len(trials) < min_ntrials:
            raise StageError(
                "performance", f"{len(trials)} trials, fewer than min_ntrials={min_ntrials}"
            )
        session_type = session_type_from_metadata(
            item.data.get("session_type"), item.data.get("task_protocol")
        )
        try:
            return evaluate_session(trials, params["psych_fit_method"], session_type)
        except TrialsTableError as exc:
            raise StageError("performance", f"unusable trials table: {exc}") from exc
        except PsychometricFitError as exc:
            raise StageError("performance", f"cannot fit the psychometric curve: {exc}") from exc

    def summary_lines(self, cache: AnalysisCache, listing: Listing | None) -> list[str]:
        """Median performance over the sessions done, and how often the block bias points right."""
        results = cache.get_results(TABLE)
        if results.empty:
            return []
        counts = results["session_type"].value_counts()
        lines = [
            f"performance: {len(results)} sessions ({counts.get('training', 0)} training, "
            f"{counts.get('biased', 0)} biased); median fraction_correct "
            f"{results['fraction_correct'].median():.3f}, easy "
            f"{results['fraction_correct_easy'].median():.3f}"
        ]
        shift = results["bias_shift"].dropna()
        if len(shift):
            lines.append(
                f"bias_shift (bias_80 - bias_20) > 0 in {int(np.sum(shift > 0))} of {len(shift)} "
                f"biased sessions (median {shift.median():+.1f} % contrast)"
            )
        return lines + suspect_fit_lines(results, cache.id_column)

    @classmethod
    def report_sections(cls, cache: AnalysisCache) -> list:
        """Curves, fraction correct per subject, suspect fits (nmbatch.task_performance.report)."""
        from nmbatch.task_performance import report  # bokeh is for the driver, not the workers

        return report.report_sections(cache)


def suspect_fits(results: pd.DataFrame, id_column: str = "eid") -> pd.DataFrame:
    """One row per suspect block fit: the session, the block, its parameters and the reason."""
    if "session_date" not in results.columns:  # a cache written before code version 2
        results = results.assign(session_date=None)
    parts = []
    for block in BLOCKS:
        flag = f"psych_{block}_suspect"
        if flag not in results.columns:
            continue
        rows = results[results[flag].astype("boolean").fillna(False).astype(bool)]
        columns = {f"psych_{block}_{name}": name for name in FIT_FIELDS if name != "suspect"}
        part = rows[[id_column, "session_date", *columns]].rename(columns=columns)
        part.insert(2, "block", f"p_left={BLOCKS[block]:g}")
        parts.append(part)
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True).sort_values(["session_date", id_column, "block"])


def suspect_fit_lines(results: pd.DataFrame, id_column: str = "eid") -> list[str]:
    """The summary's lines on fits not to trust (none when every fit looks sound)."""
    suspect = suspect_fits(results, id_column)
    if suspect.empty:
        return []
    lines = [
        f"suspect psychometric fits (a parameter at its bound, or R^2 < 0): {len(suspect)} "
        f"in {suspect[id_column].nunique()} sessions (psych_<block>_suspect):"
    ]
    for row in suspect.head(MAX_LISTED_SUSPECT).itertuples(index=False):
        lines.append(f"  {getattr(row, id_column)} {row.block}: {row.suspect_reason}")
    if len(suspect) > MAX_LISTED_SUSPECT:
        lines.append(f"  ... and {len(suspect) - MAX_LISTED_SUSPECT} more")
    return lines
