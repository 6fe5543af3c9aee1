"""Psychometric fits with the IBL's own code (``brainbox.behavior.training.compute_psychometric``).

``compute_psychometric`` fits psychofit's ``erf_psycho_2gammas`` to the proportion of rightward
choices (``choice == -1``) at each signed contrast (%) and returns ``[bias, threshold, gamma1,
gamma2]``. ``gamma1`` is the lower asymptote (rightward choices on strong LEFT stimuli) and is
reported as ``lapse_left``; ``gamma2`` (leftward choices on strong RIGHT stimuli) as
``lapse_right``. Its ``plotting`` flag picks one of two parameter sets (see :data:`FIT_METHODS`).

No-go trials (``choice == 0``) are left out before fitting: ``compute_performance`` would count
them as "not rightward", which moves the curve towards leftward choices and inflates
``lapse_right``; a no-go says nothing about which side the mouse would have chosen.

psychofit restarts its optimiser from points drawn with NumPy's global random generator; each
fit here runs with that generator seeded (and its state restored afterwards) so that a session
gives the same parameters on every run and every worker.

A fit is stored whatever it looks like, and marked ``suspect`` (with the reason) when a person
should not trust it: a parameter pinned at a bound of the optimiser's box, or an R^2 below zero
(the curve explains the choices worse than their mean does). An early-training session with four
contrast levels and an animal that barely discriminates typically comes back with the bias and
both lapses at their bounds and an R^2 far below zero. A lapse of 0 is the model's own floor (a
mouse that never lapses), not a limit of the optimiser, and is not flagged.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from brainbox.behavior.training import compute_performance, compute_psychometric
from one.alf.io import AlfBunch
from psychofit import erf_psycho_2gammas

from nmbatch.ibl.trials import NOGO_CHOICE

# psych_fit_method -> compute_psychometric(plotting=...).
# 'plotting': parstart [0, 40, .1, .1], parmin [-50, 10, 0, 0], parmax [50, 50, .2, .2], 10 fits.
# 'training': parstart [mean(c), 20, .05, .05], parmin [min(c), 0, 0, 0], parmax [max(c), 100, 1,
# 1], 5 fits: the set the IBL training-status criteria use.
FIT_METHODS = {"plotting": True, "training": False}
# Block name (as in column names) -> probabilityLeft.
BLOCKS = {"50": 0.5, "20": 0.2, "80": 0.8}
PARAMETERS = ("bias", "threshold", "lapse_left", "lapse_right")  # compute_psychometric's order
FIT_FIELDS = (*PARAMETERS, "r_squared", "n_trials", "suspect", "suspect_reason")
BOUND_TOLERANCE = 1e-3  # of the bound's range: closer than this to a bound is "at" it
MIN_BLOCK_TRIALS = 10  # go trials a block needs to be fitted
MIN_CONTRAST_LEVELS = 4  # distinct signed contrasts: the model has four parameters
FIT_SEED = 0

_global_rng_lock = threading.Lock()


class PsychometricFitError(ValueError):
    """A block's trials cannot support a psychometric fit; the message says why."""


@dataclass(frozen=True)
class PsychometricFit:
    """One block's fitted parameters (contrasts in %), goodness of fit and trial count.

    ``suspect`` says the fit is not to be trusted and ``suspect_reason`` why ('' when it is
    fine). ``points`` are the data fitted: rows signed contrast (%), proportion rightward and
    number of go trials, one column per contrast level.
    """

    bias: float
    threshold: float
    lapse_left: float
    lapse_right: float
    r_squared: float
    n_trials: int
    suspect: bool = False
    suspect_reason: str = ""
    points: np.ndarray = field(default_factory=lambda: np.empty((3, 0)), compare=False, repr=False)

    def as_columns(self, block: str) -> dict[str, float | int | bool | str]:
        """Return the fit as ``psych_<block>_<field>`` columns (``points`` is not a column)."""
        return {f"psych_{block}_{name}": getattr(self, name) for name in FIT_FIELDS}


def fit_bounds(method: str, contrasts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The optimiser's box (parmin, parmax) of compute_psychometric for ``method``.

    The same numbers brainbox passes to psychofit (see :data:`FIT_METHODS`): 'training' bounds
    the bias by the smallest and largest signed contrast of the data.
    """
    if FIT_METHODS[method]:
        return np.array([-50.0, 10.0, 0.0, 0.0]), np.array([50.0, 50.0, 0.2, 0.2])
    low, high = float(np.min(contrasts)), float(np.max(contrasts))
    return np.array([low, 0.0, 0.0, 0.0]), np.array([high, 100.0, 1.0, 1.0])


def suspect_reasons(
    pars: np.ndarray, parmin: np.ndarray, parmax: np.ndarray, r_squared: float
) -> list[str]:
    """Why a fit should not be trusted: parameters at a bound, R^2 below zero or undefined."""
    reasons = []
    for name, value, low, high in zip(PARAMETERS, pars, parmin, parmax, strict=True):
        tolerance = BOUND_TOLERANCE * (high - low)
        is_lapse_floor = name.startswith("lapse") and low == 0.0
        if value <= low + tolerance and not is_lapse_floor:
            reasons.append(f"{name} at its lower bound {low:g}")
        elif value >= high - tolerance:
            reasons.append(f"{name} at its upper bound {high:g}")
    if np.isnan(r_squared):
        reasons.append("R^2 undefined (the same proportion rightward at every contrast)")
    elif r_squared < 0:
        reasons.append(f"R^2 {r_squared:.3g} < 0 (worse than a flat line at the mean)")
    return reasons


def fit_columns(block: str) -> list[str]:
    """Return the column names of one block's fit, in :data:`FIT_FIELDS` order."""
    return [f"psych_{block}_{name}" for name in FIT_FIELDS]


def empty_fit_columns(block: str) -> dict[str, float | None]:
    """Return one block's columns for a block that was not fitted (all missing)."""
    return {
        column: np.nan if name in PARAMETERS or name == "r_squared" else None
        for name, column in zip(FIT_FIELDS, fit_columns(block), strict=True)
    }


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator for a block of code, then put its old state back."""
    with _global_rng_lock:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def _as_bunch(trials: pd.DataFrame) -> AlfBunch:
    """Return the go trials as the ALF bunch brainbox expects.

    probabilityLeft is rounded to 6 decimals because brainbox selects blocks with ``==``: a value
    stored as float32 (0.2000000029) would otherwise match no block.
    """
    go = trials[trials["choice"] != NOGO_CHOICE]
    bunch = AlfBunch({column: go[column].to_numpy() for column in go.columns})
    bunch["probabilityLeft"] = np.round(bunch["probabilityLeft"].astype(float), 6)
    return bunch


def _weighted_r_squared(observed: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> float:
    """Return R^2 of the curve against the per-contrast proportions, weighted by trial counts."""
    mean = np.average(observed, weights=weights)
    total = np.sum(weights * (observed - mean) ** 2)
    if total == 0:
        return np.nan
    return float(1.0 - np.sum(weights * (observed - predicted) ** 2) / total)


def fit_block(trials: pd.DataFrame, probability_left: float, method: str) -> PsychometricFit:
    """Fit the psychometric curve to the go trials of one block.

    Parameters
    ----------
    trials : DataFrame
        ALF trials table (contrasts as fractions, as stored).
    probability_left : float
        The block to fit (0.5, 0.2 or 0.8).
    method : {'plotting', 'training'}
        Which of compute_psychometric's parameter sets to use.

    Raises
    ------
    PsychometricFitError
        Fewer than :data:`MIN_BLOCK_TRIALS` go trials, fewer than :data:`MIN_CONTRAST_LEVELS`
        contrast levels, or a fit that is not finite.
    """
    if method not in FIT_METHODS:
        raise ValueError(f"psych_fit_method {method!r} is not one of {sorted(FIT_METHODS)}")
    bunch = _as_bunch(trials)
    in_block = bunch["probabilityLeft"] == probability_left
    n_trials = int(np.sum(in_block))
    block = f"probabilityLeft={probability_left:g} block"
    if n_trials < MIN_BLOCK_TRIALS:
        raise PsychometricFitError(
            f"{block} has {n_trials} go trials, fewer than the {MIN_BLOCK_TRIALS} a fit needs"
        )
    rightward, contrasts, counts = compute_performance(
        bunch, block=probability_left, prob_right=True
    )
    if len(contrasts) < MIN_CONTRAST_LEVELS:
        levels = ", ".join(f"{c:g}" for c in contrasts)
        raise PsychometricFitError(
            f"{block} has go trials at {len(contrasts)} signed contrast levels ({levels} %), "
            f"a fit needs at least {MIN_CONTRAST_LEVELS}"
        )
    with _seeded_global_rng(FIT_SEED):
        pars = compute_psychometric(bunch, block=probability_left, plotting=FIT_METHODS[method])
    if not np.all(np.isfinite(pars)):
        raise PsychometricFitError(f"{block}: the psychometric fit did not converge ({pars})")
    predicted = erf_psycho_2gammas(pars, contrasts)
    r_squared = _weighted_r_squared(rightward, predicted, counts)
    reasons = suspect_reasons(pars, *fit_bounds(method, contrasts), r_squared)
    return PsychometricFit(
        bias=float(pars[0]),
        threshold=float(pars[1]),
        lapse_left=float(pars[2]),
        lapse_right=float(pars[3]),
        r_squared=r_squared,
        n_trials=n_trials,
        suspect=bool(reasons),
        suspect_reason="; ".join(reasons),
        points=np.vstack([contrasts, rightward, counts]).astype(float),
    )
