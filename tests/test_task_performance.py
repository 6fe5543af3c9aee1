"""Task performance: metrics on hand-made trials, fit recovery on simulated ones, the job's errors.

Fit-recovery tolerances: on 2000 simulated training trials (six contrast levels 0-100 %, bias
5 %, threshold 20 %, lapses 0.1 / 0.05) the fitted parameters scatter, over 50 seeds, with an SD
of 1.0 % contrast (bias), 2.2 % (threshold) and 0.014 (each lapse); on 3000 biased trials
bias_shift scatters with an SD of 2.2 %. The tolerances are about three SD, so a correct fit
passes for almost any seed, while a sign, unit or lapse-order mistake (an error of 10 % contrast,
or of 0.05 in a lapse) fails.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_job
from one.api import One

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.errors import ConfigError, StageError
from nmbatch.engine.job import Item, ItemContext
from nmbatch.engine.parts import to_arrow
from nmbatch.engine.session import cache_for_job
from nmbatch.ibl.demo import DemoInfo, make_demo_one_cache
from nmbatch.ibl.one_source import OneSource
from nmbatch.ibl.trials import block_bias, simulate_trials
from nmbatch.task_performance.job import TaskPerformanceJob, performance_schema
from nmbatch.task_performance.performance import (
    EASY_CONTRAST_FRACTION,
    check_blocks,
    check_trials,
    fraction_correct,
    fraction_correct_easy,
    nogo_fraction,
    session_performance,
    session_type_from_metadata,
    session_type_from_trials,
)
from nmbatch.task_performance.psychometric import (
    FIT_METHODS,
    PsychometricFitError,
    fit_block,
)

DEMO_SESSIONS = 22  # 6 subjects x 3 training days, 2 biased days, 2 excluded sessions
TRUTH = {"bias": 5.0, "threshold": 20.0, "lapse_left": 0.1, "lapse_right": 0.05}
TOLERANCE = {"bias": 3.0, "threshold": 6.5, "lapse_left": 0.05, "lapse_right": 0.05}


def hand_made(contrast_left, contrast_right, choice, feedback, probability_left=0.5):
    """A minimal ALF trials table from per-trial lists."""
    n = len(choice)
    return pd.DataFrame(
        {
            "choice": np.asarray(choice, dtype=float),
            "feedbackType": np.asarray(feedback, dtype=float),
            "contrastLeft": np.asarray(contrast_left, dtype=float),
            "contrastRight": np.asarray(contrast_right, dtype=float),
            "probabilityLeft": np.broadcast_to(np.asarray(probability_left, dtype=float), n),
        }
    )


# -- metrics on hand-made trials ----------------------------------------------------------------

NAN = np.nan
# contrast:   0.25L  1.0R  0.5L  0.5R  0.0R  1.0L  0.0625R  1.0R (no-go)
EASY_TRIALS = hand_made(
    contrast_left=[0.25, NAN, 0.5, NAN, NAN, 1.0, NAN, NAN],
    contrast_right=[NAN, 1.0, NAN, 0.5, 0.0, NAN, 0.0625, 1.0],
    choice=[-1, -1, 1, 1, -1, 1, -1, 0],
    feedback=[-1, 1, 1, -1, 1, 1, 1, -1],
)


def test_easy_means_at_least_fifty_percent_in_alf_fractions():
    assert EASY_CONTRAST_FRACTION == 0.5
    # Easy go trials: 1.0R correct, 0.5L correct, 0.5R wrong, 1.0L correct -> 3 / 4.
    # 0.25 and 0.0625 are not easy; the 1.0R no-go is left out.
    assert fraction_correct_easy(EASY_TRIALS) == pytest.approx(3 / 4)
    only_quarter = EASY_TRIALS.iloc[[0]]
    assert np.isnan(fraction_correct_easy(only_quarter))  # 0.25 alone: no easy trial


def test_fraction_correct_leaves_out_nogo_trials():
    assert fraction_correct(EASY_TRIALS) == pytest.approx(5 / 7)
    assert nogo_fraction(EASY_TRIALS) == pytest.approx(1 / 8)


def test_percent_contrasts_are_refused():
    percent = EASY_TRIALS.assign(contrastRight=EASY_TRIALS["contrastRight"] * 100)
    with pytest.raises(ValueError, match="looks like percent"):
        check_trials(percent)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="lacks column.*probabilityLeft"):
        check_trials(EASY_TRIALS.drop(columns="probabilityLeft"))


# -- block checks on hand-made blocks -----------------------------------------------------------


def blocks(*runs: tuple[float, int]) -> np.ndarray:
    return np.concatenate([np.full(n, p) for p, n in runs])


def test_biased_blocks_valid():
    check = check_blocks(blocks((0.5, 90), (0.8, 45), (0.2, 23), (0.8, 7)), "biased")
    assert check.valid and check.reason == ""
    assert check.n_blocks == 4
    assert check.min_block_length == 23  # the last block (7) was cut by the session end


@pytest.mark.parametrize(
    ("runs", "reason"),
    [
        (((0.8, 50), (0.2, 50)), "first block has probabilityLeft 0.8"),
        (((0.5, 90),), "no 0.2 / 0.8 block"),
        (((0.5, 90), (0.8, 40), (0.5, 30), (0.2, 30)), "not all 0.2 or 0.8"),
        (((0.5, 90), (0.8, 40), (0.2, 5), (0.8, 30)), "shorter than 20 trials"),
    ],
)
def test_biased_blocks_invalid(runs, reason):
    check = check_blocks(blocks(*runs), "biased")
    assert not check.valid
    assert reason in check.reason


def test_training_blocks():
    assert check_blocks(blocks((0.5, 400)), "training").valid
    check = check_blocks(blocks((0.5, 300), (0.8, 40)), "training")
    assert not check.valid and check.n_blocks == 2 and check.min_block_length == 300


def test_float32_block_values_still_match():
    values = blocks((0.5, 90), (0.2, 40), (0.8, 40)).astype(np.float32).astype(float)
    check = check_blocks(values, "biased")
    assert check.valid and check.n_blocks == 3


def test_session_type_from_metadata_then_trials():
    assert session_type_from_metadata("training", None) == "training"
    assert session_type_from_metadata(None, "_iblrig_tasks_biasedChoiceWorld8.0.0") == "biased"
    assert session_type_from_metadata("misc", "_iblrig_tasks_ephysChoiceWorld6.4.2") == "biased"
    assert session_type_from_metadata(None, None) is None
    unbiased = hand_made([0.5], [NAN], [1], [1])
    assert session_type_from_trials(unbiased) == "training"
    assert session_type_from_trials(unbiased.assign(probabilityLeft=0.8)) == "biased"


# -- psychometric fits on simulated trials -------------------------------------------------------


@pytest.fixture(scope="module")
def training_trials() -> pd.DataFrame:
    return simulate_trials(np.random.default_rng(11), 2000, protocol="training", **TRUTH)


@pytest.mark.parametrize("method", sorted(FIT_METHODS))
def test_fit_recovers_known_curve(training_trials, method):
    fit = fit_block(training_trials, 0.5, method)
    for name, truth in TRUTH.items():
        assert getattr(fit, name) == pytest.approx(truth, abs=TOLERANCE[name]), name
    assert fit.n_trials == int((training_trials["choice"] != 0).sum())
    assert fit.r_squared > 0.95


def test_fit_is_reproducible_and_leaves_global_rng_alone(training_trials):
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    first = fit_block(training_trials, 0.5, "plotting")
    assert np.random.rand() == expected_next
    assert fit_block(training_trials, 0.5, "plotting") == first


def test_biased_session_bias_shift_has_ibl_sign():
    shift = 16.0
    trials = simulate_trials(np.random.default_rng(12), 3000, "biased", bias_shift=shift, **TRUTH)
    row = session_performance(trials, "plotting", "biased")
    assert row["block_structure_valid"]
    assert row["psych_80_bias"] > row["psych_20_bias"]
    assert row["bias_shift"] == pytest.approx(shift, abs=7.0)
    assert row["psych_20_bias"] == pytest.approx(block_bias(0.2, 5.0, shift), abs=6.0)
    assert row["psych_80_bias"] == pytest.approx(block_bias(0.8, 5.0, shift), abs=6.0)
    assert row["psych_50_n_trials"] <= 90


def test_training_session_fits_only_the_unbiased_block(training_trials):
    row = session_performance(training_trials, "training", "training")
    assert np.isfinite(row["psych_50_bias"])
    assert np.isnan(row["psych_20_bias"]) and row["psych_80_n_trials"] is None
    assert np.isnan(row["bias_shift"])


def test_invalid_biased_blocks_are_not_fitted():
    trials = simulate_trials(np.random.default_rng(13), 600, "biased")
    trials["probabilityLeft"] = 0.8  # no opening 0.5 block
    row = session_performance(trials, "plotting", "biased")
    assert not row["block_structure_valid"]
    assert all(np.isnan(row[f"psych_{b}_bias"]) for b in ("50", "20", "80"))


def test_too_few_contrast_levels_cannot_be_fitted():
    trials = simulate_trials(np.random.default_rng(14), 500, "training")
    right = trials["contrastRight"].notna()
    trials.loc[right, "contrastRight"] = 1.0
    trials.loc[~right, "contrastLeft"] = 1.0
    with pytest.raises(PsychometricFitError, match=r"2 signed contrast levels \(-100, 100 %\)"):
        session_performance(trials, "plotting", "training")


def test_unknown_fit_method_is_refused(training_trials):
    with pytest.raises(ValueError, match="psych_fit_method 'best'"):
        fit_block(training_trials, 0.5, "best")


# -- the job, item by item on a real ONE cache, as the engine runs it ---------------------------


def run(job: TaskPerformanceJob, item: Item, params: dict) -> dict:
    """Run one item with run_item; record what the engine would record."""
    ctx = ItemContext(item, params)
    try:
        result = job.run_item(item, ctx)
    except Exception as exc:
        return {"status": "failed", "stage": ctx.failed_stage, "error": exc, "flags": ctx.flags}
    return {"status": "done", "result": result, "flags": ctx.flags}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoInfo:
    """A demo ONE cache with planted cases and biased sessions (each subject's 4th day on).

    The photometry is kept minimal (30 s, one ROI): this job reads only the trials.
    """
    root = tmp_path_factory.mktemp("task_performance") / "demo_one_cache"
    return make_demo_one_cache(root, n_sessions=DEMO_SESSIONS, duration_s=30.0, n_rois=1)


@pytest.fixture(scope="module")
def params() -> dict:
    return get_analysis_config("task_performance")


@pytest.fixture(scope="module")
def job(demo) -> TaskPerformanceJob:
    return TaskPerformanceJob(OneSource(demo.root, demo=True))


@pytest.fixture(scope="module")
def items(job, params) -> dict[str, Item]:
    return {item.id: item for item in job.list_items(params).items}


@pytest.fixture(scope="module")
def outcomes(job, items, params) -> dict[str, dict]:
    return {eid: run(job, item, params) for eid, item in items.items()}


@pytest.fixture(scope="module")
def demo_sessions(demo) -> pd.DataFrame:
    return pd.read_parquet(demo.sessions_file).set_index("eid")


def test_shipped_parameters(params):
    assert params["psych_fit_method"] == "plotting"
    assert params["min_ntrials"] == 400
    assert "habituation" in params["exclude_session_types"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"psych_fit_method": "best"}, "psych_fit_method must be one of"),
        ({"min_ntrials": -1}, "min_ntrials must be a whole number"),
    ],
)
def test_bad_parameters_are_refused(job, params, change, message):
    with pytest.raises(ConfigError, match=message):
        job.validate_params({**params, **change})


def test_cleaning_and_selection(demo, items, job, params):
    cases = demo.cases
    left_out = {cases["habituation"], cases["conflict"], *demo.excluded_eids}
    assert set(items) == set(demo.eids) - left_out
    only = TaskPerformanceJob(job.source, subjects=["NMD-02"]).list_items(params)
    assert {item.label for item in only.items} == {"NMD-02"}


def test_every_session_with_trials_gives_one_row(demo, outcomes, demo_sessions):
    schema = performance_schema()
    for eid, outcome in outcomes.items():
        if eid == demo.cases["no_trials"]:
            continue
        assert outcome["status"] == "done", outcome.get("error")
        row = outcome["result"].tables["performance"]
        table = to_arrow(row, schema, eid, "eid")  # the engine's cast to the declared schema
        assert table.num_rows == 1 and table.schema.names[0] == "eid"
        record = row.iloc[0]
        expected_type = demo_sessions.loc[eid, "session_type"]
        assert record["session_type"] == expected_type
        assert record["session_type_source"] == "metadata"
        assert record["n_trials"] == demo_sessions.loc[eid, "n_trials"]
        assert record["block_structure_valid"]
        assert np.isfinite(record["psych_50_bias"])
        assert np.isfinite(record["bias_shift"]) == (expected_type == "biased")
        assert outcome["flags"] == {"can_load_trials": True}


def test_trials_in_alf_are_found_there(demo, outcomes):
    outcome = outcomes[demo.cases["trials_in_alf"]]
    assert outcome["result"].tables["performance"]["trials_collection"].item() == "alf"
    ordinary = next(o for eid, o in outcomes.items() if eid not in demo.cases.values())
    assert ordinary["result"].tables["performance"]["trials_collection"].item() == "alf/task_00"


def test_no_trials_fails_at_load_trials(demo, outcomes):
    outcome = outcomes[demo.cases["no_trials"]]
    assert outcome["status"] == "failed" and outcome["stage"] == "load_trials"
    assert type(outcome["error"]).__name__ == "ALFObjectNotFound"
    assert "_ibl_trials.table.pqt" in str(outcome["error"])
    assert outcome["flags"] == {"can_load_trials": False}


def test_too_few_trials_fail_at_performance(job, items, params, demo_sessions):
    eid = next(iter(items))
    n = demo_sessions.loc[eid, "n_trials"]
    outcome = run(job, items[eid], {**params, "min_ntrials": 1000})
    assert outcome["status"] == "failed" and outcome["stage"] == "performance"
    assert isinstance(outcome["error"], StageError)
    assert outcome["error"].stage == "performance"
    assert str(outcome["error"]) == f"{n} trials, fewer than min_ntrials=1000"


def test_session_type_falls_back_to_probability_left(job, items, params, demo_sessions):
    biased = demo_sessions.index[demo_sessions["session_type"] == "biased"]
    eid = next(e for e in biased if e in items)
    blind = Item(eid, items[eid].label, {"eid": eid, "session_type": None, "task_protocol": None})
    row = run(job, blind, params)["result"].tables["performance"].iloc[0]
    assert row["session_type"] == "biased" and row["session_type_source"] == "trials"


@pytest.fixture(scope="module")
def unfittable_source(demo, tmp_path_factory) -> tuple[OneSource, str]:
    """A copy of the demo cache whose first training session shows only 100 % contrasts."""
    root = tmp_path_factory.mktemp("unfittable") / "one_cache"
    shutil.copytree(demo.root, root)
    one = One(cache_dir=root, mode="local")
    sessions = pd.read_parquet(demo.sessions_file)
    eid = sessions.loc[sessions["session_type"] == "training", "eid"].iloc[0]
    trials = one.load_dataset(eid, "_ibl_trials.table.pqt", collection="alf/task_00")
    for side in ("contrastLeft", "contrastRight"):
        trials.loc[trials[side].notna(), side] = 1.0
    path = one.eid2path(eid) / "alf" / "task_00" / "_ibl_trials.table.pqt"
    trials.to_parquet(path, index=False)
    return OneSource(root), eid


def test_unfittable_trials_fail_at_performance(unfittable_source, items, params):
    source, eid = unfittable_source
    outcome = run(TaskPerformanceJob(source), items[eid], params)
    assert outcome["status"] == "failed" and outcome["stage"] == "performance"
    assert isinstance(outcome["error"], StageError)
    assert str(outcome["error"]) == (
        "cannot fit the psychometric curve: probabilityLeft=0.5 block has go trials at 2 "
        "signed contrast levels (-100, 100 %), a fit needs at least 4"
    )


def test_summary_lines(job, items, outcomes, params, tmp_path):
    with cache_for_job(job, params, tmp_path) as cache:
        for eid, outcome in outcomes.items():
            if outcome["status"] == "done":
                result = outcome["result"]
                cache.add(eid, label=items[eid].label, tables=result.tables, flags=result.flags)
        cache.save()
        results = cache.get_results("performance")
        lines = job.summary_lines(cache, None)
    n_biased = int((results["session_type"] == "biased").sum())
    assert lines[0].startswith(f"performance: {len(results)} sessions (")
    assert f"{n_biased} biased" in lines[0]
    assert f"median fraction_correct {results['fraction_correct'].median():.3f}" in lines[0]
    assert f"of {n_biased} biased sessions" in lines[1]


def test_command_line_runs_the_demo(demo, tmp_path):
    done = run_job(
        "nmbatch.task_performance",
        "--demo",
        str(demo.root),
        "--output",
        "out",
        "--workers",
        "1",
        "--no-progress",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr  # the no_trials session fails, as planted
    assert "load_trials  ALFObjectNotFound" in done.stdout
    assert "median fraction_correct" in done.stdout
    results = AnalysisCache.open(tmp_path / "out" / "task_performance").get_results("performance")
    assert len(results) == len(demo.eids) - 5  # 2 excluded, habituation, conflict, no trials
