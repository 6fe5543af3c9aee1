"""The MEA job end to end through its command line: bad inputs, skips, overwrite, two stages.

Step lists are explicit (1-9,11): step 10 may or may not be registered."""

from __future__ import annotations

import h5py
import pytest
from conftest import run_job

from nmbatch.engine.cache import AnalysisCache
from nmbatch.mea.demo import make_demo

JOB = "nmbatch.mea"
STEPS = "1-9,11"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two good recordings plus one tiny recording per kind of bad input."""
    return make_demo(
        tmp_path_factory.mktemp("mea") / "demo",
        n_recordings=2,
        n_units=4,
        noise_frames=600,
        bar_repeats=1,
        bad_inputs=True,
    )


def count(summary: str, row: str) -> int:
    """A count from the closing summary, e.g. ``count(out, 'done now')``."""
    line = next(line for line in summary.splitlines() if line.strip().startswith(row))
    return int(line.removeprefix("  " + row).split()[0])


def args(demo, out: str = "out", *extra: str) -> list[str]:
    return [
        "--csv",
        str(demo.csv),
        "--stimuli",
        str(demo.stimuli),
        "--output",
        out,
        "--workers",
        "2",
        "--steps",
        STEPS,
        *extra,
    ]


def test_bad_inputs_fail_at_their_step_and_the_rest_finish(demo, tmp_path):
    result = run_job(JOB, *args(demo), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "run again, output missing" not in result.stdout, "a first run's items are new"
    cache = AnalysisCache.open(tmp_path / "out" / "mea")
    errors = cache.get_errors().set_index("recording")
    assert set(errors.index) == set(demo.failures)
    for name, (stage, phrase) in demo.failures.items():
        assert errors.loc[name, "stage"] == stage, name
        assert phrase in errors.loc[name, "error_message"], name
    good = set(demo.models) | set(demo.warnings)
    assert set(cache.get_results("recordings")["recording"]) == good
    for name in good:
        with h5py.File(tmp_path / "out" / f"{name}.h5") as f:
            assert set(f["pipeline/completed_steps"][()]) == {1, 2, 3, 4, 5, 6, 7, 8, 9, 11}
            assert {"cmcr_meta", "cmtr_meta", "cell_type", "dsgc"} <= set(f["metadata"])
    states = cache.item_states().set_index("recording")
    for name, (stage, phrase) in demo.warnings.items():
        assert any(stage in w and phrase in w for w in states.loc[name, "flags"]["warnings"])
    assert "Recordings with warnings:" in result.stdout
    assert all(name not in errors.index for name in demo.unmatched)
    assert "Units:" in result.stdout

    again = run_job(JOB, *args(demo), cwd=tmp_path)
    assert count(again.stdout, "skipped, output exists") == len(good)
    assert count(again.stdout, "done now") == 0

    overwrite = run_job(JOB, *args(demo, "out", "--overwrite"), cwd=tmp_path)
    assert overwrite.returncode == 1
    assert count(overwrite.stdout, "run again, output missing") == len(good) + len(demo.failures)
    assert count(overwrite.stdout, "done now") == len(good), "the file decides, not the cache"


def test_second_stage_reads_only_the_output_files(demo, tmp_path):
    name = next(iter(demo.models))
    first = run_job(JOB, *args(demo, "out", "--steps", "1-2", "--only", name), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_job(JOB, *args(demo, "out", "--steps", "3", "--only", name), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    with h5py.File(tmp_path / "out" / f"{name}.h5") as f:
        steps = [int(s) for s in f["pipeline/completed_steps"][()]]
    assert {1, 2, 3} <= set(steps)


@pytest.mark.parametrize(
    "content, phrase",
    [
        (
            b"cmcr_path,cmtr_path,matched\na.cmcr,a.cmtr,True\nR\xe9c.cmcr,b.cmtr,True\n",
            "line 3: not UTF-8",
        ),
        (b"cmcr_path,cmtr_path,matched\na.cmcr,a.cmtr,True\nb.cmcr\n", "line 3: a short row"),
    ],
)
def test_an_unreadable_mapping_csv_exits_2_naming_file_and_line(tmp_path, content, phrase):
    mapping = tmp_path / "mapping.csv"
    mapping.write_bytes(content)
    result = run_job(JOB, "--csv", str(mapping), "--output", "out", "--steps", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(mapping) in result.stderr and phrase in result.stderr
    assert "Traceback" not in result.stderr
