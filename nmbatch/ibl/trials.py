"""IBL ALF trials tables: their conventions, and a seeded simulator with known ground truth.

Conventions (IBL ALF ``_ibl_trials.table``):

- ``contrastLeft`` / ``contrastRight`` are fractions of full contrast (0..1); the side without a
  stimulus is NaN. A 0 % stimulus still has a side (0.0 on that side, NaN on the other).
- ``choice`` is the wheel turn: -1 (clockwise) brings a RIGHT stimulus to the centre, so -1 is a
  rightward choice; +1 is a leftward choice; 0 is a no-go (the response window timed out).
  ``brainbox.behavior.training.compute_performance`` counts ``choice == -1`` as rightward.
- ``feedbackType`` is +1 (correct, rewarded) or -1 (error or no-go).
- ``probabilityLeft`` is the block's prior probability that the stimulus is on the left.

The psychometric curve is psychofit's ``erf_psycho_2gammas`` on the signed contrast in percent
(``contrastRight - contrastLeft``, times 100, so right stimuli are positive)::

    P(rightward) = lapse_left
                   + (1 - lapse_left - lapse_right) * (1 + erf((c - bias) / threshold)) / 2

``lapse_left`` is the rightward-choice rate for strong LEFT stimuli, ``lapse_right`` the
leftward-choice rate for strong RIGHT stimuli. In a 0.8 block (left stimuli likely) the mouse
chooses left more often, the curve moves right and ``bias`` grows: ``bias_80 - bias_20 > 0``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psychofit

TRIALS_COLUMNS = (
    "intervals_0",
    "intervals_1",
    "stimOn_times",
    "goCue_times",
    "response_times",
    "firstMovement_times",
    "feedback_times",
    "choice",
    "feedbackType",
    "contrastLeft",
    "contrastRight",
    "probabilityLeft",
    "rewardVolume",
)

RIGHTWARD_CHOICE = -1.0
LEFTWARD_CHOICE = 1.0
NOGO_CHOICE = 0.0

PROTOCOLS = ("training", "biased")
# Contrast sets as fractions of full contrast: trainingChoiceWorld keeps 50 %,
# biasedChoiceWorld drops it.
CONTRAST_SETS = {
    "training": (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0),
    "biased": (0.0, 0.0625, 0.125, 0.25, 1.0),
}
UNBIASED_BLOCK_LENGTH = 90  # biasedChoiceWorld opens with 90 trials at probabilityLeft 0.5
BLOCK_LENGTH_RANGE = (20, 100)  # biased block lengths, truncated exponential ...
BLOCK_LENGTH_TAU = 60.0  # ... with this scale (trials)
RESPONSE_WINDOW = 60.0  # s; a trial without a response by then is a no-go
REWARD_VOLUME = 1.5  # uL per correct trial


def block_bias(probability_left: float, bias: float, bias_shift: float) -> float:
    """Return the psychometric bias (% contrast) the simulator uses in a block.

    The 0.5 block has ``bias``; the 0.2 block ``bias - bias_shift / 2`` and the 0.8 block
    ``bias + bias_shift / 2``, so that a fitted ``bias_80 - bias_20`` should equal ``bias_shift``.
    """
    if probability_left == 0.5:
        return bias
    return bias + np.sign(probability_left - 0.5) * bias_shift / 2


def probability_rightward(
    signed_contrast: np.ndarray,
    bias: float | np.ndarray,
    threshold: float,
    lapse_left: float,
    lapse_right: float,
) -> np.ndarray:
    """Return P(rightward choice) at signed contrasts (%), from psychofit's own model function."""
    signed_contrast = np.asarray(signed_contrast, dtype=float)
    bias = np.broadcast_to(np.asarray(bias, dtype=float), signed_contrast.shape)
    out = np.empty_like(signed_contrast)
    for b in np.unique(bias):
        at = bias == b
        pars = np.array([b, threshold, lapse_left, lapse_right])
        out[at] = psychofit.erf_psycho_2gammas(pars, signed_contrast[at])
    return out


def simulate_block_probabilities(
    rng: np.random.Generator, n_trials: int, protocol: str = "biased"
) -> np.ndarray:
    """Return probabilityLeft per trial for a protocol.

    'training' is 0.5 throughout; 'biased' opens with a 0.5 block of 90 trials, then alternates
    0.2 / 0.8 blocks (first one at random) whose lengths follow a truncated exponential in 20..100.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if protocol == "training":
        return np.full(n_trials, 0.5)
    values = [np.full(min(UNBIASED_BLOCK_LENGTH, n_trials), 0.5)]
    filled = len(values[0])
    probability = rng.choice([0.2, 0.8])
    low, high = BLOCK_LENGTH_RANGE
    while filled < n_trials:
        length = int(rng.exponential(BLOCK_LENGTH_TAU))
        while not low <= length <= high:
            length = int(rng.exponential(BLOCK_LENGTH_TAU))
        length = min(length, n_trials - filled)
        values.append(np.full(length, probability))
        filled += length
        probability = 0.8 if probability == 0.2 else 0.2
    return np.concatenate(values)


def _simulate_times(
    rng: np.random.Generator, choice: np.ndarray, correct: np.ndarray
) -> dict[str, np.ndarray]:
    """Return plausible, monotonic trial event times (s) for the given outcomes."""
    n = len(choice)
    nogo = choice == NOGO_CHOICE
    quiescence = rng.uniform(0.2, 0.8, n)  # wheel still before the stimulus appears
    cue_delay = rng.uniform(0.0, 0.002, n)  # go cue and stimulus onset within ms
    reaction = np.clip(rng.lognormal(np.log(0.35), 0.6, n), 0.08, 20.0)
    movement = rng.gamma(4.0, 0.06, n)  # first movement to threshold crossing
    reaction[nogo] = np.nan
    response_delay = np.where(nogo, RESPONSE_WINDOW, reaction + movement)
    feedback_delay = rng.uniform(0.0, 0.001, n)
    # Correct: 1 s of stimulus at centre; error or no-go: 2 s of noise; then ~0.5 s ITI.
    after_feedback = np.where(correct, 1.0, 2.0) + rng.uniform(0.45, 0.55, n)
    duration = quiescence + cue_delay + response_delay + feedback_delay + after_feedback
    end = rng.uniform(0.5, 2.0) + np.cumsum(duration)
    start = np.concatenate([end[:1] - duration[:1], end[:-1]])  # each trial starts as the last ends
    stim_on = start + quiescence
    go_cue = stim_on + cue_delay
    response = go_cue + response_delay
    feedback = response + feedback_delay
    return {
        "intervals_0": start,
        "intervals_1": end,
        "stimOn_times": stim_on,
        "goCue_times": go_cue,
        "response_times": response,
        "firstMovement_times": go_cue + reaction,
        "feedback_times": feedback,
    }


def simulate_trials(
    rng: np.random.Generator,
    n_trials: int,
    protocol: str = "biased",
    bias: float = 0.0,
    threshold: float = 20.0,
    lapse_left: float = 0.1,
    lapse_right: float = 0.1,
    bias_shift: float = 10.0,
    nogo_rate: float = 0.02,
) -> pd.DataFrame:
    """Simulate one session's ALF trials table from a known psychometric curve.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the same seed gives the same table.
    n_trials : int
        Number of trials (rows).
    protocol : {'training', 'biased'}
        'training': probabilityLeft 0.5 throughout, contrasts 0-100 % with 50 %;
        'biased': a 90-trial 0.5 block, then alternating 0.2 / 0.8 blocks of 20..100 trials.
    bias, threshold : float
        psychofit ``erf_psycho_2gammas`` bias and threshold (slope) in % contrast, in the 0.5 block.
    lapse_left, lapse_right : float
        Lapse rates on strong left / strong right stimuli (the model's two gammas).
    bias_shift : float
        Expected ``bias_80 - bias_20`` (%): 0.2 blocks use ``bias - bias_shift/2``, 0.8 blocks
        ``bias + bias_shift/2`` (see :func:`block_bias`).
    nogo_rate : float
        Probability of a no-go trial (choice 0), independent of the stimulus, so that the
        psychometric curve of the go trials is exactly the one above.

    Returns
    -------
    DataFrame
        Columns :data:`TRIALS_COLUMNS`, all float64, like ``_ibl_trials.table.pqt``.
    """
    probability_left = simulate_block_probabilities(rng, n_trials, protocol)
    levels = np.asarray(CONTRAST_SETS[protocol])
    contrast = rng.choice(levels, n_trials)
    stim_left = rng.random(n_trials) < probability_left
    signed_contrast = np.where(stim_left, -contrast, contrast) * 100.0
    biases = np.array([block_bias(p, bias, bias_shift) for p in probability_left])
    p_right = probability_rightward(signed_contrast, biases, threshold, lapse_left, lapse_right)
    choice = np.where(rng.random(n_trials) < p_right, RIGHTWARD_CHOICE, LEFTWARD_CHOICE)
    choice[rng.random(n_trials) < nogo_rate] = NOGO_CHOICE
    correct = np.where(stim_left, choice == LEFTWARD_CHOICE, choice == RIGHTWARD_CHOICE)
    table = {
        **_simulate_times(rng, choice, correct),
        "choice": choice,
        "feedbackType": np.where(correct, 1.0, -1.0),
        "contrastLeft": np.where(stim_left, contrast, np.nan),
        "contrastRight": np.where(stim_left, np.nan, contrast),
        "probabilityLeft": probability_left,
        "rewardVolume": np.where(correct, REWARD_VOLUME, 0.0),
    }
    return pd.DataFrame({name: np.asarray(table[name], dtype=float) for name in TRIALS_COLUMNS})
