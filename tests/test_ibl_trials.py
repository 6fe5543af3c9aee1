"""The trials simulator writes ALF-shaped tables whose behaviour follows its stated ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nmbatch.ibl.trials import (
    BLOCK_LENGTH_RANGE,
    CONTRAST_SETS,
    LEFTWARD_CHOICE,
    NOGO_CHOICE,
    RESPONSE_WINDOW,
    RIGHTWARD_CHOICE,
    TRIALS_COLUMNS,
    UNBIASED_BLOCK_LENGTH,
    block_bias,
    probability_rightward,
    simulate_block_probabilities,
    simulate_trials,
)

EVENTS = [
    "intervals_0",
    "stimOn_times",
    "goCue_times",
    "firstMovement_times",
    "response_times",
    "feedback_times",
    "intervals_1",
]


@pytest.fixture(scope="module")
def biased() -> pd.DataFrame:
    return simulate_trials(np.random.default_rng(1), 3000, protocol="biased", nogo_rate=0.05)


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return values[starts], np.diff(np.r_[starts, values.size])


def test_table_has_alf_columns_and_is_reproducible():
    a = simulate_trials(np.random.default_rng(5), 200)
    b = simulate_trials(np.random.default_rng(5), 200)
    assert tuple(a.columns) == TRIALS_COLUMNS
    assert (a.dtypes == np.float64).all()
    assert len(a) == 200
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(simulate_trials(np.random.default_rng(6), 200))


@pytest.mark.parametrize("protocol", ["training", "biased"])
def test_contrasts_are_fractions_on_one_side(protocol):
    trials = simulate_trials(np.random.default_rng(2), 500, protocol=protocol)
    left, right = trials["contrastLeft"], trials["contrastRight"]
    assert (left.isna() ^ right.isna()).all()  # exactly one side has a stimulus
    shown = np.fmax(left, right)
    assert set(shown) == set(CONTRAST_SETS[protocol])
    assert shown.max() == 1.0


def test_outcomes_follow_ibl_conventions(biased):
    choice, feedback = biased["choice"], biased["feedbackType"]
    assert set(choice) == {RIGHTWARD_CHOICE, LEFTWARD_CHOICE, NOGO_CHOICE}
    stim_right = biased["contrastRight"].notna()
    correct = np.where(stim_right, choice == RIGHTWARD_CHOICE, choice == LEFTWARD_CHOICE)
    assert ((feedback == 1) == correct).all()
    assert (feedback[choice == NOGO_CHOICE] == -1).all()
    assert ((biased["rewardVolume"] > 0) == correct).all()
    assert 0.03 < (choice == NOGO_CHOICE).mean() < 0.07  # nogo_rate 0.05


def test_event_times_are_ordered_within_and_across_trials(biased):
    go = biased["choice"] != NOGO_CHOICE
    assert (biased.loc[go, EVENTS].diff(axis=1).iloc[:, 1:] >= 0).all().all()
    nogo = biased[~go]
    assert nogo["firstMovement_times"].isna().all()
    without_movement = [e for e in EVENTS if e != "firstMovement_times"]
    assert (nogo[without_movement].diff(axis=1).iloc[:, 1:] >= 0).all().all()
    np.testing.assert_allclose(nogo["response_times"] - nogo["goCue_times"], RESPONSE_WINDOW)
    assert (biased["intervals_0"].to_numpy()[1:] >= biased["intervals_1"].to_numpy()[:-1]).all()


def test_training_blocks_are_unbiased():
    probability_left = simulate_block_probabilities(np.random.default_rng(3), 700, "training")
    assert (probability_left == 0.5).all()


def test_biased_blocks_open_unbiased_then_alternate(biased):
    values, lengths = _runs(biased["probabilityLeft"].to_numpy())
    assert values[0] == 0.5 and lengths[0] == UNBIASED_BLOCK_LENGTH
    assert set(values[1:]) == {0.2, 0.8}  # exact values: brainbox selects blocks with ==
    low, high = BLOCK_LENGTH_RANGE
    assert ((lengths[1:-1] >= low) & (lengths[1:-1] <= high)).all()
    assert lengths[-1] <= high
    # The stimulus side follows the block prior.
    for p in (0.2, 0.8):
        in_block = biased["probabilityLeft"] == p
        assert biased.loc[in_block, "contrastLeft"].notna().mean() == pytest.approx(p, abs=0.04)


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        simulate_trials(np.random.default_rng(0), 10, protocol="ephys")


def test_block_bias_moves_towards_the_likely_side():
    assert block_bias(0.5, 3.0, 10.0) == 3.0
    assert block_bias(0.2, 3.0, 10.0) == -2.0
    assert block_bias(0.8, 3.0, 10.0) == 8.0


def test_model_is_psychofit_erf_with_left_and_right_lapses():
    p = probability_rightward(np.array([-1e6, 5.0, 1e6]), 5.0, 20.0, 0.1, 0.05)
    np.testing.assert_allclose(p, [0.1, 0.1 + (1 - 0.15) / 2, 0.95])


def test_choices_follow_the_stated_curve():
    """Rightward (choice -1) proportions per signed contrast match the model within 4 SE."""
    truth = {"bias": 6.0, "threshold": 15.0, "lapse_left": 0.08, "lapse_right": 0.12}
    trials = simulate_trials(np.random.default_rng(4), 6000, protocol="training", **truth)
    go = trials[trials["choice"] != NOGO_CHOICE]
    signed = 100 * (go["contrastRight"].fillna(0) - go["contrastLeft"].fillna(0))
    rightward = (go["choice"] == RIGHTWARD_CHOICE).groupby(signed).agg(["mean", "size"])
    expected = probability_rightward(rightward.index.to_numpy(), **truth)
    se = np.sqrt(expected * (1 - expected) / rightward["size"])
    assert (np.abs(rightward["mean"] - expected) < 4 * se).all()
