"""One signal's sliding-window QC, and the reference path: iblphotometry's ``qc_signals``.

The reference path calls ``qc_signals`` once per (signal, metric), in the configured metric
order, on the same band tables: a metric that raises costs only its own values (stored as
NaN with the error), and the metrics after ``n_outliers`` see the signal as ``qc_signals``
leaves it (it replaces outliers of the signal's last partial block in place).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from iblphotometry.qc import qc_signals

from nmbatch.photometry.config import QCConfig
from nmbatch.photometry.windows import window_starts


@dataclass
class SignalQC:
    """The sliding metrics of one (band, brain region) signal.

    Attributes
    ----------
    centres : ndarray
        Window centres in seconds.
    values : dict of str to ndarray
        Per-window values of each metric that succeeded (one per centre).
    errors : dict of str to Exception
        The error of each metric that failed; its values are NaN.
    """

    centres: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)


def window_centres(times: np.ndarray, sliding_kwargs: Mapping[str, Any]) -> np.ndarray:
    """The window centres of a signal, or none where ``qc_signals`` cannot make windows."""
    w_len = sliding_kwargs["w_len"]
    try:
        return window_starts(times, w_len, sliding_kwargs["step_len"]) + w_len / 2
    except (IndexError, ValueError):  # no samples, or a NaN first or last time
        return np.array([])


def tidy_windows(tidy: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Window centres and values from the tidy output of ``qc_signals`` for one metric."""
    if "window" not in tidy.columns:  # no window fits in the recording
        return np.array([]), np.array([])
    windows = tidy[tidy["window"].notna()]
    return windows["window"].to_numpy(float), windows["value"].to_numpy(float)


def one_metric(
    bands: dict[str, pd.DataFrame],
    band: str,
    region: str,
    metric: Callable,
    kwargs: Mapping[str, Any],
    sliding_kwargs: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``qc_signals`` for one metric on one signal: its window centres and values."""
    tidy = qc_signals(
        bands,
        [metric],
        metrics_kwargs={metric.__name__: dict(kwargs)},
        signal_band=band,
        brain_region=region,
        sliding_kwargs=dict(sliding_kwargs),
    )
    return tidy_windows(tidy)


def reference_sliding_qc(
    bands: dict[str, pd.DataFrame], band: str, region: str, config: QCConfig
) -> SignalQC:
    """The sliding metrics of ``bands[band][region]`` through ``qc_signals``, metric by metric."""
    times = np.asarray(bands[band].index)
    result = SignalQC(window_centres(times, config.sliding_kwargs))
    for metric in config.sliding_metrics:
        name = metric.__name__
        try:
            centres, values = one_metric(
                bands, band, region, metric, config.kwargs_of(name), config.sliding_kwargs
            )
        except Exception as exc:
            result.errors[name] = exc
            continue
        result.centres, result.values[name] = centres, values
    return result
