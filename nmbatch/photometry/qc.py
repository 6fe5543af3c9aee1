"""Photometry QC of one session with iblphotometry's own metrics, reshaped for storage.

Sliding metrics run through :func:`iblphotometry.qc.qc_signals` on each band and brain region
(so the numbers are exactly iblphotometry's); raw metrics run on the long, interleaved table
because some of them (``n_band_inversions``) need its ``color`` column. The result is one wide
row per (band, brain region) with each sliding metric's mean over windows and the raw metrics
repeated, plus the per-window values as arrays.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

# iblphotometry 0.3.4: fpio must be imported before anything that imports neurophotometrics.
from iblphotometry import fpio
from iblphotometry import metrics as ibl_metrics
from iblphotometry.qc import qc_signals

from nmbatch.engine.errors import ConfigError

ROW_COLUMNS = (  # leading columns of the wide table, before the metric columns
    ("band", pa.string()),
    ("brain_region", pa.string()),
    ("roi", pa.string()),
    ("fiber", pa.string()),
    ("row", pa.int32()),  # row of this (band, brain region) in the per-window arrays
    ("n_windows", pa.int32()),
)
WINDOW_CENTRE = "window_centre"
_NOT_METRICS = {"noise_simulation"}  # public functions of iblphotometry.metrics that take a metric


def available_metrics() -> dict[str, Callable]:
    """Return the metric functions of ``iblphotometry.metrics`` by name."""
    return {
        name: fn
        for name, fn in inspect.getmembers(ibl_metrics, inspect.isfunction)
        if fn.__module__ == ibl_metrics.__name__
        and not name.startswith("_")
        and name not in _NOT_METRICS
    }


def resolve_metrics(names: Sequence[str]) -> tuple[Callable, ...]:
    """Map metric names to iblphotometry functions; an unknown name is a ConfigError."""
    known = available_metrics()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"unknown photometry metric(s) {unknown}; iblphotometry.metrics has {sorted(known)}"
        )
    return tuple(known[name] for name in names)


@dataclass(frozen=True)
class QCConfig:
    """The QC parameters, checked and resolved to functions.

    Build it with :meth:`from_params` from the job's tracked parameters.
    """

    raw_metrics: tuple[Callable, ...]
    sliding_metrics: tuple[Callable, ...]
    sliding_kwargs: Mapping[str, Any]
    metrics_kwargs: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> QCConfig:
        """Check ``raw_metrics``, ``sliding_metrics``, ``sliding_kwargs``, ``metrics_kwargs``.

        Raises
        ------
        ConfigError
            An unknown metric, a metric listed twice, window settings missing or not positive,
            or ``metrics_kwargs`` for a metric that is not configured (most likely a typo).
        """
        raw = list(params.get("raw_metrics") or [])
        sliding = list(params.get("sliding_metrics") or [])
        raw_fns, sliding_fns = resolve_metrics(raw), resolve_metrics(sliding)
        twice = sorted({name for name in raw + sliding if (raw + sliding).count(name) > 1})
        if twice:
            raise ConfigError(f"photometry metric(s) listed more than once: {twice}")
        sliding_kwargs = dict(params.get("sliding_kwargs") or {})
        for key in ("w_len", "step_len"):
            value = sliding_kwargs.get(key)
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"sliding_kwargs.{key} must be a positive number of seconds")
        metrics_kwargs = {k: dict(v) for k, v in (params.get("metrics_kwargs") or {}).items()}
        stray = sorted(set(metrics_kwargs) - set(raw + sliding))
        if stray:
            raise ConfigError(f"metrics_kwargs given for metric(s) not configured: {stray}")
        return cls(raw_fns, sliding_fns, sliding_kwargs, metrics_kwargs)

    @property
    def raw_names(self) -> list[str]:
        """Raw metric names, in configured order."""
        return [fn.__name__ for fn in self.raw_metrics]

    @property
    def sliding_names(self) -> list[str]:
        """Sliding metric names, in configured order."""
        return [fn.__name__ for fn in self.sliding_metrics]

    def table_schema(self) -> pa.Schema:
        """Schema of the wide QC table (without the session id column)."""
        metric_fields = [(name, pa.float64()) for name in self.sliding_names + self.raw_names]
        return pa.schema([*ROW_COLUMNS, *metric_fields])


@dataclass
class SessionQC:
    """One session's QC.

    Attributes
    ----------
    table : DataFrame
        One row per (band, brain region); columns :data:`ROW_COLUMNS`, then each sliding
        metric's mean over windows (NaN windows skipped), then each raw metric.
    arrays : dict of str to ndarray
        ``window_centre`` and one array per sliding metric, each of shape (rows, windows),
        NaN-padded where a band has fewer windows; row ``i`` is the table's ``row == i``.
    """

    table: pd.DataFrame
    arrays: dict[str, np.ndarray]


def split_bands(signal: pd.DataFrame, locations: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Return ``{band: DataFrame(index=times, columns=brain regions)}`` via iblphotometry.

    Raises
    ------
    ValueError
        Two ROIs name the same brain region (their columns would collide).
    """
    regions = locations["brain_region"]
    repeated = sorted(set(regions[regions.duplicated()]))
    if repeated:
        raise ValueError(f"locations name brain region(s) {repeated} for more than one ROI")
    return fpio.from_photometry_df(signal, rename=regions.to_dict())


def raw_metric_values(signal: pd.DataFrame, config: QCConfig) -> dict[str, float]:
    """Run the raw metrics on the long table, indexed by frame time as they expect."""
    long = signal.set_index("times")
    return {
        fn.__name__: float(fn(long, **config.metrics_kwargs.get(fn.__name__, {})))
        for fn in config.raw_metrics
    }


def _window_arrays(
    tidy: pd.DataFrame, rows: pd.DataFrame, names: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lay the per-window rows of ``qc_signals`` out as (rows, windows) arrays."""
    if "window" not in tidy.columns:  # no window fits in the recording
        tidy = tidy.assign(window=np.nan)
    windows = tidy[tidy["window"].notna()]
    per_row = {key: group for key, group in windows.groupby(["band", "brain_region"], sort=False)}
    groups = [per_row.get((band, region)) for band, region in rows.itertuples(index=False)]
    counts = np.array(
        [0 if g is None else int((g["metric"] == names[0]).sum()) for g in groups], dtype=int
    )
    width = int(counts.max(initial=0))
    arrays = {name: np.full((len(rows), width), np.nan) for name in [WINDOW_CENTRE, *names]}
    for i, group in enumerate(groups):
        if group is None:
            continue
        for name in names:
            arrays[name][i, : counts[i]] = group.loc[group["metric"] == name, "value"]
        first = group[group["metric"] == names[0]]
        arrays[WINDOW_CENTRE][i, : counts[i]] = first["window"]
    return arrays, counts


def qc_session(signal: pd.DataFrame, locations: pd.DataFrame, config: QCConfig) -> SessionQC:
    """Run the configured QC on one session's long signal table and ROI locations."""
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
    arrays: dict[str, np.ndarray] = {}
    counts = np.zeros(len(rows), dtype=int)
    if names:
        tidy = qc_signals(
            bands,
            list(config.sliding_metrics),
            metrics_kwargs=dict(config.metrics_kwargs),
            sliding_kwargs=dict(config.sliding_kwargs),
        )
        arrays, counts = _window_arrays(tidy, rows, names)
    table["n_windows"] = counts.astype(np.int32)
    for name in names:  # padding is NaN, and NaN windows are skipped
        table[name] = pd.DataFrame(arrays[name]).mean(axis=1).to_numpy()
    for name, value in raw_metric_values(signal, config).items():
        table[name] = value
    return SessionQC(table=table, arrays=arrays)
