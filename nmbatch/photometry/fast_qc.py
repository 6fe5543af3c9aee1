"""The fast QC path: every sliding metric of one signal from one shared set of windows.

The windows and their detrend are built once per signal (:mod:`nmbatch.photometry.windows`)
and every metric runs as a vectorised kernel over them (:mod:`nmbatch.photometry.fast_metrics`),
giving ``qc_signals``' numbers. What ``qc_signals`` does beyond the windows is kept where it
changes them: ``n_outliers`` on the whole signal replaces the outliers of its last partial
block in place, so it and the metrics after it see that changed signal. Windows a kernel
leaves alone (short, non-finite, near-degenerate) go through iblphotometry's own function, and
a metric without a kernel runs through ``qc_signals`` itself (logged once per process).
``qc_signals`` also computes each metric on the whole signal; the job does not keep that value,
so it is not computed here.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from nmbatch.photometry.config import QCConfig
from nmbatch.photometry.fast_metrics import kernel_for
from nmbatch.photometry.grubbs import after_whole_signal_n_outliers
from nmbatch.photometry.signal_qc import SignalQC, one_metric, window_centres
from nmbatch.photometry.windows import SignalWindows, build_windows

log = logging.getLogger(__name__)
_reported_fallbacks: set[str] = set()


def uncovered_metrics(config: QCConfig) -> list[str]:
    """Sliding metrics (with their configured arguments) the fast path leaves to ``qc_signals``."""
    return [
        name for name in config.sliding_names if kernel_for(name, config.kwargs_of(name)) is None
    ]


def report_fallbacks(config: QCConfig) -> None:
    """Log, once per process and metric, which metrics run through ``qc_signals`` instead."""
    new = [name for name in uncovered_metrics(config) if name not in _reported_fallbacks]
    if new:
        _reported_fallbacks.update(new)
        log.warning(
            "photometry QC: no fast implementation of %s with these arguments; "
            "running it through iblphotometry's qc_signals (same numbers, slower)",
            ", ".join(new),
        )


def _kernel_values(
    kernel: Callable, metric: Callable, kwargs: Mapping[str, Any], windows: SignalWindows
) -> np.ndarray:
    """Per-window values: the kernel where it vouches for them, iblphotometry elsewhere."""
    values = np.full(len(windows), np.nan)
    by_function = list(windows.single)
    for group in windows.groups:
        estimate = kernel(group)
        values[group.rows] = estimate.values
        if estimate.unsure is not None:
            by_function.extend(group.rows[estimate.unsure])
    for row in by_function:
        values[row] = float(metric(windows.series(row), **kwargs))
    return values


def _n_outliers_arguments(kwargs: Mapping[str, Any], metric: Callable) -> tuple[int, float]:
    bound = inspect.signature(metric).bind(None, **kwargs)
    bound.apply_defaults()
    return bound.arguments["w_size"], bound.arguments["alpha"]


class _LazyWindows:
    """The windows of the signal's current values, cut when a kernel first needs them.

    A failure to cut them (linregress refusing a window) fails every windowed metric, as it
    does in ``qc_signals``; new values (``n_outliers``' edits) mean new windows.
    """

    def __init__(self, times: np.ndarray, values: np.ndarray, sliding_kwargs: Mapping[str, Any]):
        self.times, self.signal_values, self.sliding_kwargs = times, values, sliding_kwargs
        self._windows: SignalWindows | None = None
        self._error: Exception | None = None

    def replace_values(self, values: np.ndarray) -> None:
        if values is not self.signal_values:
            self.signal_values, self._windows, self._error = values, None, None

    def get(self) -> SignalWindows:
        if self._windows is None and self._error is None:
            try:
                self._windows = build_windows(self.times, self.signal_values, self.sliding_kwargs)
            except Exception as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._windows


def fast_sliding_qc(signal: pd.Series, config: QCConfig, report: bool = True) -> SignalQC:
    """The configured sliding metrics of one signal (index: times), as ``qc_signals`` gives them.

    ``report`` logs the metrics left to ``qc_signals`` (once per process).
    """
    if report:
        report_fallbacks(config)
    times = np.asarray(signal.index)
    windows = _LazyWindows(times, signal.to_numpy(), config.sliding_kwargs)
    result = SignalQC(window_centres(times, config.sliding_kwargs))
    for metric in config.sliding_metrics:
        name = metric.__name__
        kwargs = config.kwargs_of(name)
        try:
            if name == "n_outliers":  # as qc_signals' whole-signal call leaves the signal
                w_size, alpha = _n_outliers_arguments(kwargs, metric)
                edited = after_whole_signal_n_outliers(windows.signal_values, w_size, alpha)
                windows.replace_values(edited)
            kernel = kernel_for(name, kwargs)
            if kernel is None:
                frame = pd.DataFrame({"signal": windows.signal_values}, index=signal.index)
                _, result.values[name] = one_metric(
                    {"band": frame}, "band", "signal", metric, kwargs, config.sliding_kwargs
                )
            else:
                result.values[name] = _kernel_values(kernel, metric, kwargs, windows.get())
        except Exception as exc:
            result.errors[name] = exc
    return result
