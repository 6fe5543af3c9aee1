"""One session's task performance: correctness, no-go rate, block structure, psychometric fits.

Contrasts stay in ALF units throughout: fractions of full contrast (0..1). The predecessor
compared percent contrasts with 0.5, which made every non-zero contrast "easy"; here the
threshold is :data:`EASY_CONTRAST_FRACTION` and :func:`check_trials` rejects tables whose
contrasts look like percent. No-go trials (choice 0) are left out of both fractions correct
(brainbox's ``compute_performance_easy`` counts them as errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nmbatch.ibl.sessions import session_type_from_protocol
from nmbatch.ibl.trials import NOGO_CHOICE
from nmbatch.task_performance.psychometric import (
    BLOCKS,
    PsychometricFitError,
    empty_fit_columns,
    fit_block,
)

EASY_CONTRAST_FRACTION = 0.5  # fraction of full contrast: "easy" means >= 50 %
SESSION_TYPES = ("training", "biased")
# Session types of the sessions table (nmbatch.ibl.sessions) -> the block protocol they run.
BLOCK_PROTOCOLS = {"training": "training", "biased": "biased", "ephys": "biased"}
UNBIASED = 0.5
BIASED_BLOCKS = (0.2, 0.8)
MIN_COMPLETE_BLOCK_LENGTH = 20  # biasedChoiceWorld never ends a block sooner
# Columns performance needs; the timing columns of the ALF table are not used here.
NEEDED_COLUMNS = ("choice", "feedbackType", "contrastLeft", "contrastRight", "probabilityLeft")


class TrialsTableError(ValueError):
    """A trials table cannot be analysed as ALF trials; the message says why."""


def check_trials(trials: pd.DataFrame) -> None:
    """Raise TrialsTableError, saying why, if a trials table cannot be analysed as ALF trials."""
    missing = [column for column in NEEDED_COLUMNS if column not in trials.columns]
    if missing:
        raise TrialsTableError(f"trials table lacks column(s) {', '.join(missing)}")
    largest = np.nanmax(trials[["contrastLeft", "contrastRight"]].to_numpy(), initial=0.0)
    if largest > 1.0:
        raise TrialsTableError(
            f"contrasts must be fractions of full contrast (0..1, as in ALF); the largest is "
            f"{largest:g}, which looks like percent"
        )
    if trials["probabilityLeft"].isna().any():
        raise TrialsTableError("probabilityLeft is missing on some trials")


def stimulus_contrast(trials: pd.DataFrame) -> np.ndarray:
    """Return each trial's contrast as a fraction (0..1), whichever side the stimulus was on."""
    return np.fmax(trials["contrastLeft"].to_numpy(), trials["contrastRight"].to_numpy())


def go_trials(trials: pd.DataFrame) -> np.ndarray:
    """Return a mask of the trials with a choice (no-go trials, choice 0, are False)."""
    return trials["choice"].to_numpy() != NOGO_CHOICE


def fraction_correct(trials: pd.DataFrame) -> float:
    """Return the fraction of go trials that were rewarded (NaN without go trials)."""
    correct = trials["feedbackType"].to_numpy()[go_trials(trials)] == 1
    return float(np.mean(correct)) if correct.size else np.nan


def fraction_correct_easy(trials: pd.DataFrame) -> float:
    """Return the fraction correct of go trials with contrast >= 50 % (fraction >= 0.5)."""
    easy = stimulus_contrast(trials) >= EASY_CONTRAST_FRACTION
    correct = trials["feedbackType"].to_numpy()[go_trials(trials) & easy] == 1
    return float(np.mean(correct)) if correct.size else np.nan


def nogo_fraction(trials: pd.DataFrame) -> float:
    """Return the fraction of trials without a choice (NaN for an empty table)."""
    return float(np.mean(~go_trials(trials))) if len(trials) else np.nan


@dataclass(frozen=True)
class BlockCheck:
    """The block structure of a session.

    ``min_block_length`` leaves out the last block, which the end of the session cut short,
    unless it is the only one.
    """

    valid: bool
    n_blocks: int
    min_block_length: int
    reason: str = ""


def block_runs(probability_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the probabilityLeft of each run of equal values and the run lengths."""
    values = np.round(np.asarray(probability_left, dtype=float), 6)
    if values.size == 0:
        return values, np.array([], dtype=int)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    lengths = np.diff(np.r_[starts, values.size])
    return values[starts], lengths


def _block_problem(values: np.ndarray, lengths: np.ndarray, session_type: str) -> str:
    """Return why the blocks do not fit the session type's protocol, or '' when they do."""
    if session_type == "training":
        return "" if np.all(values == UNBIASED) else "probabilityLeft is not 0.5 throughout"
    if values[0] != UNBIASED:
        return f"the first block has probabilityLeft {values[0]:g}, not 0.5"
    if values.size < 2:
        return "no 0.2 / 0.8 block follows the 0.5 block"
    if not np.all(np.isin(values[1:], BIASED_BLOCKS)):
        return "blocks after the first are not all 0.2 or 0.8"
    if np.any(lengths[1:-1] < MIN_COMPLETE_BLOCK_LENGTH):
        return f"a block before the last is shorter than {MIN_COMPLETE_BLOCK_LENGTH} trials"
    return ""


def check_blocks(probability_left: np.ndarray, session_type: str) -> BlockCheck:
    """Check the block structure against the protocol of ``session_type``.

    A training session is valid with probabilityLeft 0.5 throughout. A biased session is valid
    when it opens with a 0.5 block followed by one or more blocks alternating between 0.2 and
    0.8, every one of them but the last at least :data:`MIN_COMPLETE_BLOCK_LENGTH` trials long.
    """
    if session_type not in SESSION_TYPES:
        raise ValueError(f"session type {session_type!r} is not one of {SESSION_TYPES}")
    values, lengths = block_runs(probability_left)
    if values.size == 0:
        return BlockCheck(False, 0, 0, "no trials")
    complete = lengths[:-1] if lengths.size > 1 else lengths
    reason = _block_problem(values, lengths, session_type)
    return BlockCheck(not reason, int(values.size), int(complete.min()), reason)


def session_type_from_metadata(session_type: str | None, task_protocol: str | None) -> str | None:
    """Return 'training' or 'biased' from a sessions table's columns, or None if they do not say.

    The sessions table's ``session_type`` is used first, then the type its ``task_protocol``
    names (:func:`nmbatch.ibl.sessions.session_type_from_protocol`). ephysChoiceWorld runs the
    biased block structure, so 'ephys' counts as biased.
    """
    for kind in (session_type, session_type_from_protocol(task_protocol)):
        if isinstance(kind, str) and kind in BLOCK_PROTOCOLS:
            return BLOCK_PROTOCOLS[kind]
    return None


def session_type_from_trials(trials: pd.DataFrame) -> str:
    """Return 'training' when probabilityLeft is 0.5 throughout, else 'biased'."""
    return "training" if np.allclose(trials["probabilityLeft"], UNBIASED) else "biased"


def points_array_name(block: str) -> str:
    """The zarr array holding a block's fitted data: signed contrast, proportion right, trials."""
    return f"psychometric_{block}"


@dataclass
class SessionPerformance:
    """One session's performance row (without its id) and the data each fitted block used."""

    row: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _fits(
    trials: pd.DataFrame, session_type: str, blocks: BlockCheck, method: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """Return the psychometric columns of every block, fitted where the session allows it.

    A training session must fit its 0.5 block. A biased session with valid blocks fits each of
    its 0.5, 0.2 and 0.8 blocks that can be fitted and must fit at least one.
    """
    columns: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name in BLOCKS:
        columns.update(empty_fit_columns(name))
    names = ["50"] if session_type == "training" else list(BLOCKS) if blocks.valid else []
    problems = []
    for name in names:
        try:
            fit = fit_block(trials, BLOCKS[name], method)
        except PsychometricFitError as exc:
            if session_type == "training":
                raise
            problems.append(str(exc))
            continue
        columns.update(fit.as_columns(name))
        arrays[points_array_name(name)] = fit.points
    if names and len(problems) == len(names):
        raise PsychometricFitError("no block could be fitted: " + "; ".join(problems))
    columns["bias_shift"] = columns["psych_80_bias"] - columns["psych_20_bias"]
    return columns, arrays


def evaluate_session(
    trials: pd.DataFrame, method: str, session_type: str | None = None
) -> SessionPerformance:
    """Return one session's performance row and the fitted data of its blocks.

    Parameters
    ----------
    trials : DataFrame
        The session's ALF trials table.
    method : {'plotting', 'training'}
        psych_fit_method: the compute_psychometric parameter set.
    session_type : {'training', 'biased'}, optional
        The protocol the session ran, as its metadata say; it decides the block check and
        which blocks are fitted. None: inferred from probabilityLeft
        (:func:`session_type_from_trials`). ``session_type_source`` says which.

    Raises
    ------
    TrialsTableError
        The table is not usable (see :func:`check_trials`).
    PsychometricFitError
        A training session's 0.5 block, or every block of a valid biased session, cannot be
        fitted.
    """
    check_trials(trials)
    source = "metadata" if session_type is not None else "trials"
    session_type = session_type or session_type_from_trials(trials)
    blocks = check_blocks(trials["probabilityLeft"].to_numpy(), session_type)
    fits, arrays = _fits(trials, session_type, blocks, method)
    row = {
        "session_type": session_type,
        "session_type_source": source,
        "n_trials": len(trials),
        "fraction_correct": fraction_correct(trials),
        "fraction_correct_easy": fraction_correct_easy(trials),
        "nogo_fraction": nogo_fraction(trials),
        "block_structure_valid": blocks.valid,
        "block_problem": blocks.reason,
        "min_block_length": blocks.min_block_length,
        "n_blocks": blocks.n_blocks,
        **fits,
    }
    return SessionPerformance(row, arrays)


def session_performance(
    trials: pd.DataFrame, method: str, session_type: str | None = None
) -> dict[str, Any]:
    """Return one session's performance row alone (see :func:`evaluate_session`)."""
    return evaluate_session(trials, method, session_type).row
