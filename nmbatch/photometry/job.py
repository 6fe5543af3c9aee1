"""The photometry QC job: validate-as-you-go loading and iblphotometry QC, one item per session.

Per session the worker loads the photometry signal, then the ROI locations (either failing
fails the session at its stage, with ``load_error`` such as 'signal: ALFObjectNotFound'), then
tries the trials table (optional: only the ``can_load_trials`` flag records it), then runs the
QC. The ``can_load_*`` flags are kept for failed sessions too, and after each saved batch the
cleaned sessions table with those flags is written to ``<cache>/sessions.pqt``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import pyarrow as pa

from nmbatch.engine.job import Item, ItemContext, ItemResult
from nmbatch.ibl.loading import load_photometry_locations, load_photometry_signal, load_trials
from nmbatch.ibl.session_job import SessionJob, SessionListing
from nmbatch.ibl.sessions import compare_load_flags
from nmbatch.photometry.qc import QCConfig, qc_session

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

SIGNAL_FLAG = "can_load_photometry_signal"
LOCATIONS_FLAG = "can_load_photometry_locations"
TRIALS_FLAG = "can_load_trials"
# None until tried; 'load_error' names the failed load ("signal: ArrowInvalid"), 'trials_error'
# the reason trials did not load (trials are optional, so it never fails a session).
FLAG_DTYPES = {
    SIGNAL_FLAG: "boolean",
    LOCATIONS_FLAG: "boolean",
    TRIALS_FLAG: "boolean",
    "load_error": "string",
    "trials_error": "string",
}
SESSIONS_EXPORT = "sessions.pqt"


def _load(ctx: ItemContext, stage: str, what: str, flag: str, loader: Callable, *args: Any) -> Any:
    """Run one required load as ``stage``; record success in ``flag`` or the failure's type."""
    with ctx.stage(stage):
        try:
            value = loader(*args)
        except Exception as exc:
            ctx.flags[flag] = False
            ctx.flags["load_error"] = f"{what}: {type(exc).__name__}"
            raise
        ctx.flags[flag] = True
        return value


def sessions_with_flags(
    sessions: pd.DataFrame, states: pd.DataFrame, id_column: str = "eid"
) -> pd.DataFrame:
    """Add the load flags of each session's item state to the sessions table (NA if not run)."""
    flags = states.set_index(id_column)["flags"] if len(states) else pd.Series(dtype=object)
    out = sessions.copy()
    for name, dtype in FLAG_DTYPES.items():
        values = flags.map(lambda f, name=name: (f or {}).get(name))
        out[name] = pd.array(out[id_column].map(values), dtype=dtype)
    return out


class PhotometryQCJob(SessionJob):
    """Photometry QC of IBL sessions with iblphotometry's metrics."""

    name: ClassVar[str] = "photometry"
    former_names: ClassVar[tuple[str, ...]] = ("photometry_qc",)
    description: ClassVar[str] = "iblphotometry QC per photometry session, with load checks"
    code_version: ClassVar[str] = "1"
    result_libraries: ClassVar[tuple[str, ...]] = ("ibl-photometry", "numpy", "scipy", "pandas")

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """A bad metric setting stops the run before any item."""
        super().validate_params(params)
        QCConfig.from_params(params)

    def table_schemas(self, params: Mapping[str, Any]) -> dict[str, pa.Schema]:
        """One wide QC table; its metric columns follow the configured metrics."""
        return {"qc": QCConfig.from_params(params).table_schema()}

    def run_item(self, item: Item, ctx: ItemContext) -> ItemResult:
        """Load signal, locations and (optionally) trials, then run the QC."""
        eid = item.data["eid"]
        ctx.flags.update(dict.fromkeys(FLAG_DTYPES))
        config = QCConfig.from_params(ctx.params)
        one = self.source.one()
        signal = _load(ctx, "load_signal", "signal", SIGNAL_FLAG, load_photometry_signal, one, eid)
        locations = _load(
            ctx, "load_locations", "locations", LOCATIONS_FLAG, load_photometry_locations, one, eid
        )
        with ctx.stage("load_trials"):
            try:
                load_trials(one, eid)
                ctx.flags[TRIALS_FLAG] = True
            except Exception as exc:  # trials are optional for QC: record, do not fail
                ctx.flags[TRIALS_FLAG] = False
                ctx.flags["trials_error"] = type(exc).__name__
        with ctx.stage("qc"):
            result = qc_session(signal, locations, config)
        return ItemResult(tables={"qc": result.table}, arrays=result.arrays, flags=dict(ctx.flags))

    def _flagged_sessions(self, cache: AnalysisCache, listing: SessionListing) -> pd.DataFrame:
        """The cleaned sessions table with the flags of the items run so far (driver only)."""
        return sessions_with_flags(listing.sessions, cache.item_states(), self.id_column)

    def on_saved(self, cache: AnalysisCache, listing: SessionListing) -> None:
        """Write ``<cache>/sessions.pqt``: the cleaned sessions with ``can_load_*`` filled in."""
        cache.write_export(SESSIONS_EXPORT, self._flagged_sessions(cache, listing))

    def summary_lines(self, cache: AnalysisCache, listing: SessionListing | None) -> list[str]:
        """Exclusions by reason, and what loaded against what the metadata claims."""
        if listing is None:
            return []
        flagged = self._flagged_sessions(cache, listing)
        lines = [
            f"data: {self.source.describe()}",
            f"sessions after cleaning: {len(flagged)}; excluded: {len(listing.excluded)}",
        ]
        for reason, n in listing.excluded["excluded_reason"].value_counts().items():
            lines.append(f"  excluded ({reason}): {n}")
        checks = compare_load_flags(flagged)
        if checks.empty:
            return [*lines, "no has_* metadata columns to compare the load checks with"]
        checks.index = [name.removeprefix("can_load_") for name in checks.index]
        lines.append("loads tried vs the metadata's has_* claims (sessions):")
        lines.extend(f"  {line}" for line in checks.to_string(col_space=15).splitlines())
        return lines

    @classmethod
    def report_sections(cls, cache: AnalysisCache) -> list:
        """QC distributions, worst sessions' traces, load checks (nmbatch.photometry.report)."""
        from nmbatch.photometry import report  # bokeh is for the driver, not the workers

        return report.report_sections(cache)
