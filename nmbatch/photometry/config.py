"""The photometry QC parameters, checked and resolved to iblphotometry's metric functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

# iblphotometry 0.3.4: fpio must be imported before anything that imports neurophotometrics.
from iblphotometry import fpio  # noqa: F401
from iblphotometry import metrics as ibl_metrics

from nmbatch.engine.errors import ConfigError

ROW_COLUMNS = (  # leading columns of the wide table, before the metric columns
    ("band", pa.string()),
    ("brain_region", pa.string()),
    ("roi", pa.string()),
    ("fiber", pa.string()),
    ("row", pa.int32()),  # row of this (band, brain region) in the per-window arrays
    ("n_windows", pa.int32()),
)
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

    def kwargs_of(self, name: str) -> dict[str, Any]:
        """The extra keyword arguments of metric ``name`` (``metrics_kwargs``), maybe none."""
        return dict(self.metrics_kwargs.get(name, {}))

    def table_schema(self) -> pa.Schema:
        """Schema of the wide QC table (without the session id column)."""
        metric_fields = [(name, pa.float64()) for name in self.sliding_names + self.raw_names]
        return pa.schema([*ROW_COLUMNS, *metric_fields])
