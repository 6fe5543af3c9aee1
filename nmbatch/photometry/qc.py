"""Photometry QC of one session with iblphotometry's metrics, reshaped for storage.

The long signal table is split into bands by iblphotometry (``fpio.from_photometry_df``);
the sliding metrics run on each band and brain region, by the fast path
(:mod:`nmbatch.photometry.fast_qc`, the default) or by iblphotometry's own ``qc_signals``
(:mod:`nmbatch.photometry.signal_qc`, the reference): both give the same numbers. The raw
metrics run on the long table (:mod:`nmbatch.photometry.raw_metrics`). The result is one
wide row per (band, brain region) with each sliding metric's mean over windows and the raw
metrics repeated, plus the per-window values as arrays. A metric that raises is NaN, and its
error is listed in :attr:`SessionQC.failures`; only a failure of the whole session raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from iblphotometry import fpio

from nmbatch.photometry.config import QCConfig
from nmbatch.photometry.fast_qc import fast_sliding_qc
from nmbatch.photometry.raw_metrics import raw_metric_values
from nmbatch.photometry.signal_qc import SignalQC, reference_sliding_qc

WINDOW_CENTRE = "window_centre"
QC_PATHS = ("fast", "reference")
QCPath = Literal["fast", "reference"]
MAX_MESSAGE = 200  # characters of an error message kept in a failure record


@dataclass(frozen=True)
class MetricFailure:
    """A metric that raised on a session: stored as NaN on the rows named."""

    metric: str
    rows: tuple[str, ...]  # 'band/brain_region' of the signals it failed on; () for raw metrics
    error_type: str
    message: str

    def describe(self) -> str:
        """One line, e.g. ``n_outliers (GCaMP/VTA): ValueError: ...``."""
        where = f" ({', '.join(self.rows)})" if self.rows else ""
        return f"{self.metric}{where}: {self.error_type}: {self.message}"

    def as_flag(self) -> dict[str, object]:
        """The failure as plain data for the item's flags."""
        return {
            "metric": self.metric,
            "rows": list(self.rows),
            "error_type": self.error_type,
            "message": self.message,
        }

    @classmethod
    def from_flag(cls, flag: Mapping[str, Any]) -> MetricFailure:
        """The failure back from :meth:`as_flag`'s plain data."""
        return cls(flag["metric"], tuple(flag["rows"]), flag["error_type"], flag["message"])


@dataclass
class SessionQC:
    """One session's QC.

    Attributes
    ----------
    table : DataFrame
        One row per (band, brain region); columns ``band, brain_region, roi, fiber, row,
        n_windows``, then each sliding metric's mean over windows (NaN windows skipped), then
        each raw metric.
    arrays : dict of str to ndarray
        ``window_centre`` and one array per sliding metric, each of shape (rows, windows),
        NaN-padded where a band has fewer windows; row ``i`` is the table's ``row == i``.
    failures : list of MetricFailure
        Metrics that raised, by metric and error (their values are NaN).
    """

    table: pd.DataFrame
    arrays: dict[str, np.ndarray]
    failures: list[MetricFailure] = field(default_factory=list)


def split_bands(signal: pd.DataFrame, locations: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Return ``{band: DataFrame(index=times, columns=brain regions)}`` via iblphotometry.

    Raises
    ------
    ValueError
        The table has no rows or no frame names a band, or two ROIs name the same brain
        region (their columns would collide).
    """
    if signal.empty:
        raise ValueError("the photometry signal has no frames (an empty table)")
    regions = locations["brain_region"]
    repeated = sorted(set(regions[regions.duplicated()]))
    if repeated:
        raise ValueError(f"locations name brain region(s) {repeated} for more than one ROI")
    bands = fpio.from_photometry_df(signal, rename=regions.to_dict())
    if not bands:
        raise ValueError(
            "no frame of the photometry signal names a band (every 'name' is empty or 'None')"
        )
    return bands


def _failures(errors: Mapping[tuple[str, str], BaseException]) -> list[MetricFailure]:
    """Group errors by (metric, error type, message); a raw metric's rows are ()."""
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for (metric, row), exc in errors.items():
        message = (str(exc).splitlines() or [""])[0][:MAX_MESSAGE]
        grouped.setdefault((metric, type(exc).__name__, message), []).append(row)
    return [
        MetricFailure(metric, tuple(r for r in rows if r), etype, message)
        for (metric, etype, message), rows in grouped.items()
    ]


def _lay_out(per_row: list[SignalQC], names: list[str]) -> dict[str, np.ndarray]:
    """Per-window values as (rows, windows) arrays, NaN-padded; failed metrics stay NaN."""
    width = max((len(r.centres) for r in per_row), default=0)
    arrays = {name: np.full((len(per_row), width), np.nan) for name in [WINDOW_CENTRE, *names]}
    for i, result in enumerate(per_row):
        n = len(result.centres)
        arrays[WINDOW_CENTRE][i, :n] = result.centres
        for name, values in result.values.items():
            arrays[name][i, :n] = values
    return arrays


def qc_session(
    signal: pd.DataFrame,
    locations: pd.DataFrame,
    config: QCConfig,
    path: QCPath = "fast",
    report_fallbacks: bool = True,
) -> SessionQC:
    """Run the configured QC on one session's long signal table and ROI locations.

    ``path`` chooses the sliding metrics' implementation (same numbers); ``report_fallbacks``
    logs the metrics the fast path leaves to ``qc_signals`` (once per process).
    """
    if path not in QC_PATHS:
        raise ValueError(f"unknown QC path {path!r}; known: {', '.join(QC_PATHS)}")
    bands = split_bands(signal, locations)
    rows = pd.DataFrame(
        [(band, region) for band, df in bands.items() for region in df.columns],
        columns=["band", "brain_region"],
    )
    by_region = locations.set_index("brain_region")
    table = rows.assign(
        roi=rows["brain_region"].map(pd.Series(locations.index, index=by_region.index)),
        fiber=rows["brain_region"].map(by_region["fiber"]),
        row=np.arange(len(rows), dtype=np.int32),
    )
    names = config.sliding_names
    per_row = []
    errors: dict[tuple[str, str], BaseException] = {}
    for band, region in rows.itertuples(index=False):
        if path == "fast":
            result = fast_sliding_qc(bands[band][region], config, report_fallbacks)
        else:
            result = reference_sliding_qc(bands, band, region, config)
        per_row.append(result)
        errors.update({(name, f"{band}/{region}"): exc for name, exc in result.errors.items()})
    arrays = _lay_out(per_row, names) if names else {}
    table["n_windows"] = np.array([len(r.centres) for r in per_row], dtype=np.int32)
    for name in names:  # padding is NaN, and NaN windows are skipped
        table[name] = pd.DataFrame(arrays[name]).mean(axis=1).to_numpy()
    raw_values, raw_errors = raw_metric_values(signal, config)
    for name in config.raw_names:
        table[name] = raw_values.get(name, np.nan)
    errors.update({(name, ""): exc for name, exc in raw_errors.items()})
    return SessionQC(table=table, arrays=arrays, failures=_failures(errors))
