"""The task-performance job: one item per IBL session, its trials table in, one row out.

Per session the worker loads the trials table (``alf/task_00``, then ``alf``; stage
``load_trials``), then computes fraction correct, no-go rate, block checks and the psychometric
fits (stage ``performance``). Sessions without enough trials, or whose trials cannot be fitted,
fail at ``performance`` with a message that says why.
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
    TrialsTableError,
    session_performance,
    session_type_from_metadata,
)
from nmbatch.task_performance.psychometric import (
    BLOCKS,
    FIT_METHODS,
    PsychometricFitError,
    fit_columns,
)

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

TABLE = "performance"
TRIALS_FLAG = "can_load_trials"


def performance_schema() -> pa.Schema:
    """The performance table's columns (the engine prepends ``eid``)."""
    fields = [
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
    for block in BLOCKS:
        fields += [
            (name, pa.int64() if name.endswith("_n_trials") else pa.float64())
            for name in fit_columns(block)
        ]
    fields.append(("bias_shift", pa.float64()))
    return pa.schema(fields)


class TaskPerformanceJob(SessionJob):
    """Behavioural performance and psychometric fits of IBL sessions."""

    name: ClassVar[str] = "task_performance"
    description: ClassVar[str] = "Fraction correct, block checks and psychometric fits per session"
    item_columns: ClassVar[tuple[str, ...]] = ("eid", "subject", "session_type", "task_protocol")
    code_version: ClassVar[str] = "1"
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
            row = self._performance(item, trials, ctx.params)
            row["trials_collection"] = collection
        return ItemResult(tables={TABLE: pd.DataFrame([row])}, flags=dict(ctx.flags))

    @staticmethod
    def _performance(item: Item, trials: pd.DataFrame, params: Mapping[str, Any]) -> dict:
        """Return the performance row; StageError with a readable cause if there is none."""
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
            return session_performance(trials, params["psych_fit_method"], session_type)
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
        return lines
