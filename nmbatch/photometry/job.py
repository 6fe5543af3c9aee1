"""The photometry QC job: validate-as-you-go loading and iblphotometry QC, one item per session.

Per session the worker loads the photometry signal, then the ROI locations (either failing
fails the session at its stage, with ``load_error`` such as 'signal: ALFObjectNotFound'), then
tries the trials table (optional: only the ``can_load_trials`` flag records it), then runs the
QC. A metric that raises is stored as NaN and named in the ``metric_errors`` flag; the other
metrics are kept. The ``can_load_*`` flags are kept for failed sessions too, and after each
saved batch the cleaned sessions table with those flags is written to ``<cache>/sessions.pqt``.

The QC path (``--qc-path``, setting ``nmbatch.photometry.qc-path``) is a run setting, not a
tracked parameter: the fast path and iblphotometry's ``qc_signals`` give the same numbers.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import pyarrow as pa

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.job import Item, ItemContext, ItemResult
from nmbatch.engine.settings import setting
from nmbatch.ibl.loading import load_photometry_locations, load_photometry_signal, load_trials
from nmbatch.ibl.one_source import OneSource
from nmbatch.ibl.session_job import SessionJob, SessionListing
from nmbatch.ibl.sessions import compare_load_flags
from nmbatch.photometry.config import QCConfig
from nmbatch.photometry.fast_qc import report_fallbacks
from nmbatch.photometry.qc import QC_PATHS, MetricFailure, QCPath, qc_session

if TYPE_CHECKING:
    from nmbatch.engine.cache import AnalysisCache

SIGNAL_FLAG = "can_load_photometry_signal"
LOCATIONS_FLAG = "can_load_photometry_locations"
TRIALS_FLAG = "can_load_trials"
METRIC_ERRORS_FLAG = "metric_errors"
# None until tried; 'load_error' names the failed load ("signal: ArrowInvalid"), 'trials_error'
# the reason trials did not load (trials are optional, so it never fails a session);
# 'metric_errors' lists the metrics stored as NaN because they raised (metric, rows, error).
FLAG_DTYPES = {
    SIGNAL_FLAG: "boolean",
    LOCATIONS_FLAG: "boolean",
    TRIALS_FLAG: "boolean",
    "load_error": "string",
    "trials_error": "string",
    METRIC_ERRORS_FLAG: "string",
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


def describe_metric_errors(failures: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The ``metric_errors`` flag as one line per metric, joined with '; '."""
    if not failures:
        return None
    return "; ".join(MetricFailure.from_flag(f).describe() for f in failures)


def sessions_with_flags(
    sessions: pd.DataFrame, states: pd.DataFrame, id_column: str = "eid"
) -> pd.DataFrame:
    """Add the flags of each session's item state to the sessions table (NA if not run)."""
    flags = states.set_index(id_column)["flags"] if len(states) else pd.Series(dtype=object)
    out = sessions.copy()
    for name, dtype in FLAG_DTYPES.items():
        values = flags.map(lambda f, name=name: (f or {}).get(name))
        if name == METRIC_ERRORS_FLAG:
            values = values.map(describe_metric_errors)
        out[name] = pd.array(out[id_column].map(values), dtype=dtype)
    return out


def metric_failure_lines(states: pd.DataFrame) -> list[str]:
    """Sessions whose metrics were stored as NaN after an error, by metric and error type."""
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for flags in states["flags"] if len(states) else []:
        for failure in (flags or {}).get(METRIC_ERRORS_FLAG) or []:
            key = (failure["metric"], failure["error_type"])
            counts[key] += 1
            examples.setdefault(key, failure["message"])
    if not counts:
        return []
    lines = ["metrics stored as NaN because they raised (sessions; other metrics kept):"]
    for (metric, error_type), n in counts.most_common():
        lines.append(f"  {metric:<26} {error_type:<20} {n:>6}  e.g. {examples[metric, error_type]}")
    return lines


class PhotometryQCJob(SessionJob):
    """Photometry QC of IBL sessions with iblphotometry's metrics."""

    name: ClassVar[str] = "photometry"
    former_names: ClassVar[tuple[str, ...]] = ("photometry_qc",)
    description: ClassVar[str] = "iblphotometry QC per photometry session, with load checks"
    code_version: ClassVar[str] = "1"
    result_libraries: ClassVar[tuple[str, ...]] = ("ibl-photometry", "numpy", "scipy", "pandas")
    worker_preload: ClassVar[tuple[str, ...]] = ("nmbatch.photometry.preload",)

    def __init__(
        self,
        source: OneSource,
        sessions_file: Path | None = None,
        nm: Sequence[str] = (),
        subjects: Sequence[str] = (),
        qc_path: QCPath = "fast",
    ):
        super().__init__(source, sessions_file, nm, subjects)
        if qc_path not in QC_PATHS:
            raise ConfigError(f"--qc-path {qc_path}: choose one of {', '.join(QC_PATHS)}")
        self.qc_path = qc_path

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The session options, and which implementation computes the sliding metrics."""
        super().add_arguments(parser)
        parser.add_argument(
            "--qc-path",
            choices=QC_PATHS,
            help="fast: the project's own windowed metrics; reference: iblphotometry's "
            "qc_signals (slower, same numbers). Not a tracked parameter "
            f"(default: the nmbatch.photometry.qc-path setting, '{setting('photometry.qc-path')}')",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> PhotometryQCJob:
        """Build the job from the parsed command line."""
        qc_path = setting("photometry.qc-path", args.qc_path)
        return cls(OneSource.from_args(args), args.sessions, args.nm, args.subject, qc_path)

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """A bad metric setting stops the run before any item; say which metrics run slowly."""
        super().validate_params(params)
        config = QCConfig.from_params(params)
        if self.qc_path == "fast":
            report_fallbacks(config)

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
        with ctx.stage("qc"):  # the driver already said which metrics the fast path lacks
            result = qc_session(signal, locations, config, self.qc_path, report_fallbacks=False)
        if result.failures:
            ctx.flags[METRIC_ERRORS_FLAG] = [f.as_flag() for f in result.failures]
        return ItemResult(tables={"qc": result.table}, arrays=result.arrays, flags=dict(ctx.flags))

    def on_saved(self, cache: AnalysisCache, listing: SessionListing) -> None:
        """Write ``<cache>/sessions.pqt``: the cleaned sessions with ``can_load_*`` filled in."""
        flagged = sessions_with_flags(listing.sessions, cache.item_states(), self.id_column)
        cache.write_export(SESSIONS_EXPORT, flagged)

    def summary_lines(self, cache: AnalysisCache, listing: SessionListing | None) -> list[str]:
        """Exclusions by reason, metrics that raised, what loaded against the metadata's claims."""
        if listing is None:
            return []
        states = cache.item_states()
        flagged = sessions_with_flags(listing.sessions, states, self.id_column)
        lines = [f"data: {self.source.describe()}", *listing.exclusion_lines()]
        lines += metric_failure_lines(states)
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
