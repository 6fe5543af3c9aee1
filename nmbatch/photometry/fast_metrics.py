"""iblphotometry's sliding-window metrics, computed for all windows of one length at once.

Each kernel takes a :class:`~nmbatch.photometry.windows.WindowGroup` (the windows as rows,
finite values) and the metric's own keyword arguments (same names and defaults as the
function in ``iblphotometry.metrics``), and returns one value per row and, where the kernel
cannot vouch for a row, a mask of rows that the caller recomputes with iblphotometry's own
function. The kernels repeat iblphotometry's arithmetic row by row (same numpy reductions, so
the same bits) except ``ar_score``, whose least-squares fit is solved in closed form (within
about 1e-13; near-degenerate rows are left to ``numpy.linalg.lstsq`` as iblphotometry does).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import ndimage, signal, stats

from nmbatch.photometry.grubbs import n_outliers_rows
from nmbatch.photometry.windows import WindowGroup

# ar_score rows this close to a rank-deficient or exact fit, or explaining this little, are
# left to lstsq, whose rank decision and empty residuals decide NaN or an error there.
AR_MIN_SINGULAR_RATIO = 1e-6
AR_MIN_RELATIVE_RESIDUAL = 1e-12
AR_MIN_ABS_SCORE = 1e-3


class Estimate(NamedTuple):
    """One value per row; ``unsure`` marks rows to recompute with iblphotometry's function."""

    values: np.ndarray
    unsure: np.ndarray | None = None


def n_unique_samples(g: WindowGroup) -> Estimate:
    return Estimate(g.n_unique / g.length)


def median_absolute_deviance(g: WindowGroup) -> Estimate:
    return Estimate(np.median(np.abs(g.values - g.median), axis=1))


def _percentile_distance(z: np.ndarray, pc: tuple) -> np.ndarray:
    p = np.percentile(z, pc, axis=1)
    return p[1] - p[0]


def percentile_distance(g: WindowGroup, pc: tuple = (50, 95)) -> Estimate:
    return Estimate(_percentile_distance(g.z(), pc))


def percentile_asymmetry(g: WindowGroup, pc_comp: int = 95) -> Estimate:
    z = g.z()
    a = np.absolute(_percentile_distance(z, (50, pc_comp)))
    b = np.absolute(_percentile_distance(z, (100 - pc_comp, 50)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return Estimate(a / b)


def signal_skew(g: WindowGroup) -> Estimate:
    return Estimate(stats.skew(g.values, axis=1))


def _expected_max(g: WindowGroup) -> np.ndarray:
    return g.mean + g.std * np.sqrt(2 * np.log(g.length))


def n_expmax_violations(g: WindowGroup) -> Estimate:
    return Estimate(np.count_nonzero(np.abs(g.values) > _expected_max(g), axis=1).astype(float))


def expmax_violation(g: WindowGroup) -> Estimate:
    exp_max = _expected_max(g)[:, 0]
    out = np.zeros(len(g.rows))
    for i, (row, limit) in enumerate(zip(g.values, exp_max, strict=True)):
        over = np.abs(row) > limit
        n = int(np.count_nonzero(over))
        if n:  # iblphotometry sums the violations as one compressed array: same order here
            out[i] = np.sum(np.abs(row[over]) - limit) / n
    return Estimate(out)


def n_edges(g: WindowGroup, sd: float = 5, k: int = 2, uniform: bool = True) -> Estimate:
    a = g.values
    if uniform:
        kernel = np.array(k * [-1] + [0] + k * [1]) / 2 * k
    else:
        kernel = np.arange(-k, k + 1) / (k * (k + 1))
    a_sobel = np.stack([signal.convolve(row, kernel, mode="same") for row in a])
    median = np.median(a_sobel, axis=1, keepdims=True)
    mad = np.median(np.abs(median - a_sobel), axis=1, keepdims=True)
    dy_threshold = sd * mad / 0.67
    jumps = (a_sobel > (median + dy_threshold)) | (a_sobel < (median - dy_threshold))
    mad = np.median(np.abs(g.median - a), axis=1, keepdims=True)
    y_threshold = sd * mad / 0.67
    # scipy.signal.medfilt is this rank filter with zero padding, row by row
    a_median = ndimage.rank_filter(a, (2 * k + 1) // 2, size=(1, 2 * k + 1), mode="constant")
    a_median = np.roll(a_median, k, axis=1)
    outliers = (a > (a_median + y_threshold)) | (a < (a_median - y_threshold))
    edges = (jumps & outliers)[:, k:-k]
    starts = edges[:, :1].sum(axis=1) + np.count_nonzero(edges[:, 1:] & ~edges[:, :-1], axis=1)
    return Estimate(starts.astype(float))


def n_outliers(g: WindowGroup, w_size: int = 1000, alpha: float = 0.0005) -> Estimate:
    return Estimate(n_outliers_rows(g.values, w_size, alpha).astype(float))


def n_early_samples(g: WindowGroup, dt_tol: float = 0.001) -> Estimate:
    dt_all = np.diff(g.times, axis=1)
    dt = np.median(dt_all, axis=1, keepdims=True)
    return Estimate(np.count_nonzero(dt - dt_all > dt_tol, axis=1).astype(float))


def _power_spectra(g: WindowGroup) -> np.ndarray:
    return np.abs(np.fft.rfft(g.values - g.mean, axis=1)) ** 2


def low_freq_power_ratio(g: WindowGroup, f_cutoff: float = 3.18) -> Estimate:
    psd = _power_spectra(g)
    dt = np.median(np.diff(g.times, axis=1), axis=1)
    # np.fft.rfftfreq(n, dt) row by row: arange(n // 2 + 1) * (1 / (n * dt))
    freqs = np.arange(psd.shape[1]) * (1.0 / (g.length * dt))[:, np.newaxis]
    n_low = np.count_nonzero(freqs <= f_cutoff, axis=1)  # freqs rise: a prefix of each row
    low = np.array([row[:n].sum() for row, n in zip(psd, n_low, strict=True)])
    return Estimate(low / psd.sum(axis=1))


def spectral_entropy(g: WindowGroup, eps: float = np.finfo("float").eps) -> Estimate:
    psd = _power_spectra(g)
    psd_norm = psd / np.sum(psd, axis=1, keepdims=True)
    entropy = -1 * np.sum(psd_norm * np.log2(psd_norm + eps), axis=1)
    return Estimate(1 - entropy / np.log2(psd.shape[1]))


def ar_score(g: WindowGroup, order: int = 2) -> Estimate:
    """R-squared of an AR(order) fit without intercept, by the normal equations.

    Constant rows are NaN, as in iblphotometry. Rows near rank deficiency, an exact fit or a
    score near zero are marked unsure (lstsq's rank decision or rounding would decide them).
    """
    a, p = g.values, int(order)
    if p != order or p < 1 or g.length - p <= p:
        return Estimate(np.full(len(a), np.nan), np.ones(len(a), dtype=bool))
    n = g.length - p
    columns = [a[:, i : n + i] for i in range(p)]
    y = a[:, p:]
    gram = np.empty((len(a), p, p))
    for i in range(p):
        for j in range(i, p):
            gram[:, i, j] = gram[:, j, i] = np.einsum("ij,ij->i", columns[i], columns[j])
    rhs = np.stack([np.einsum("ij,ij->i", c, y) for c in columns], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        eig = np.linalg.eigvalsh(gram)
        well_posed = eig[:, 0] > (AR_MIN_SINGULAR_RATIO**2) * eig[:, -1]
        safe_gram = np.where(well_posed[:, None, None], gram, np.eye(p))
        coef = np.linalg.solve(safe_gram, rhs[:, :, np.newaxis])[:, :, 0]
        fitted = sum(coef[:, [i]] * columns[i] for i in range(p))
        residual = np.sum((y - fitted) ** 2, axis=1)
        ss_total = np.sum((y - np.mean(y, axis=1, keepdims=True)) ** 2, axis=1)
        score = 1 - residual / ss_total
    constant = g.n_unique == 1
    unsure = ~constant & (
        ~well_posed
        | ~np.isfinite(score)
        | (residual <= AR_MIN_RELATIVE_RESIDUAL * ss_total)
        | (np.abs(score) < AR_MIN_ABS_SCORE)
    )
    return Estimate(np.where(constant, np.nan, score), unsure)


KERNELS: dict[str, Callable[..., Estimate]] = {
    fn.__name__: fn
    for fn in (
        n_unique_samples,
        median_absolute_deviance,
        percentile_distance,
        percentile_asymmetry,
        signal_skew,
        n_expmax_violations,
        expmax_violation,
        n_edges,
        n_outliers,
        n_early_samples,
        low_freq_power_ratio,
        spectral_entropy,
        ar_score,
    )
}


def kernel_for(name: str, kwargs: dict) -> Callable[[WindowGroup], Estimate] | None:
    """The kernel of metric ``name`` bound to ``kwargs``; None if there is none for them.

    Keyword arguments a kernel does not take (such as the ``axis`` of the percentile
    metrics, meaningless on one window) leave the metric to iblphotometry.
    """
    kernel = KERNELS.get(name)
    if kernel is None:
        return None
    try:
        inspect.signature(kernel).bind(None, **kwargs)
    except TypeError:
        return None
    return lambda group: kernel(group, **kwargs)
