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
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

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
FIT_FIELDS = ("bias", "threshold", "lapse_left", "lapse_right", "r_squared", "n_trials")
MIN_BLOCK_TRIALS = 10  # go trials a block needs to be fitted
MIN_CONTRAST_LEVELS = 4  # distinct signed contrasts: the model has four parameters
FIT_SEED = 0

_global_rng_lock = threading.Lock()


class PsychometricFitError(ValueError):
    """A block's trials cannot support a psychometric fit; the message says why."""


@dataclass(frozen=True)
class PsychometricFit:
    """One block's fitted parameters (contrasts in %), goodness of fit and trial count."""

    bias: float
    threshold: float
    lapse_left: float
    lapse_right: float
    r_squared: float
    n_trials: int

    def as_columns(self, block: str) -> dict[str, float | int]:
        """Return the fit as ``psych_<block>_<field>`` columns."""
        return {f"psych_{block}_{name}": value for name, value in asdict(self).items()}


def fit_columns(block: str) -> list[str]:
    """Return the column names of one block's fit, in :data:`FIT_FIELDS` order."""
    return [f"psych_{block}_{name}" for name in FIT_FIELDS]


def empty_fit_columns(block: str) -> dict[str, float | None]:
    """Return one block's columns for a block that was not fitted (all missing)."""
    return {
        column: None if column.endswith("_n_trials") else np.nan for column in fit_columns(block)
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
    return PsychometricFit(
        bias=float(pars[0]),
        threshold=float(pars[1]),
        lapse_left=float(pars[2]),
        lapse_right=float(pars[3]),
        r_squared=_weighted_r_squared(rightward, predicted, counts),
        n_trials=n_trials,
    )
