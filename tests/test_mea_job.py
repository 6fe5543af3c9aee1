"""The mea job's steps 1-5 on generated recordings: outputs match the planted truth; skip,
overwrite, two-stage, resume and bad inputs behave as specified. Items run through
``run_item``; steps 6-11 are in test_mea_later_steps.py."""

import argparse
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pytest
from mea_helpers import PARAMS, run_item

from nmbatch.engine.errors import ConfigError, DataSourceError, StageError
from nmbatch.engine.job import Item
from nmbatch.engine.session import cache_for_job
from nmbatch.mea.demo import DEMO_VERSION, FLASH_CONFIG, FLASH_MOVIE, NOISE_MOVIE, make_demo
from nmbatch.mea.job import MeaJob
from nmbatch.mea.steps import registered
from nmbatch.mea.synthetic_visual import RF_LAG_FRAMES, trial_starts

FAST = dict(PARAMS, eimage_max_seconds=0.5)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Two good recordings (a short noise movie, no bar) and one tiny one per bad input."""
    folder = tmp_path_factory.mktemp("mea_demo")
    yield make_demo(
        folder, n_recordings=2, n_units=5, noise_frames=1200, bar_repeats=0, bad_inputs=True
    )
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def first(demo, tmp_path_factory):
    """Steps 1-5 on every item of the demo CSV."""
    job = MeaJob(demo.csv, tmp_path_factory.mktemp("mea_out"), steps="1-5")
    listing = job.list_items(PARAMS)
    return job, listing, {item.id: (item, *run_item(job, item)) for item in listing.items}


def good(demo):
    return list(demo.models)


def early_failures(demo):
    """The bad inputs that steps 1-5 meet (the others fail later steps)."""
    early = ("open_recording", "step1_", "step2_", "step3_", "step4_", "step5_")
    return {n: f for n, f in demo.failures.items() if f[0].startswith(early)}


def copy_output(first, name, folder):
    job, _, _ = first
    folder.mkdir(exist_ok=True)
    shutil.copy2(job.output_path(name), folder / f"{name}.h5")
    return folder


def test_items_are_the_matched_rows(demo, first):
    job, listing, runs = first
    assert sorted(runs) == sorted(good(demo) + list(demo.failures) + list(demo.warnings))
    assert listing.rows_not_processed == {"unmatched": demo.unmatched}
    item = runs[good(demo)[0]][0]
    assert item.label == f"{item.id}.cmtr" and Path(item.data["cmcr"]).is_absolute()


def test_results_table_rows(demo, first):
    job, listing, runs = first
    schema = job.table_schemas(PARAMS)["recordings"]
    for name in good(demo):
        result = runs[name][1]
        table = result.tables["recordings"]
        pa.Table.from_pandas(table, schema=schema, preserve_index=False)
        row = table.iloc[0]
        assert row.n_units == 5 and row.steps_completed == "1,2,3,4,5" and row.steps_run == "1-5"
        assert row.output_path == str(job.output_path(name))
        assert row.output_bytes == job.output_path(name).stat().st_size
        assert row.duration_s == pytest.approx(demo.models[name].n_samples / 20_000)
        assert result.flags["completed_steps"] == [1, 2, 3, 4, 5]
    assert runs[good(demo)[0]][1].tables["recordings"].n_units_without_spikes.iloc[0] == 1


def test_units_spikes_and_electrical_images(demo, first):
    job, _, _ = first
    for name, model in demo.models.items():
        with h5py.File(job.output_path(name)) as f:
            assert f["pipeline/completed_steps"][()].tolist() == [1, 2, 3, 4, 5]
            for unit in model.units:
                g = f[f"units/unit_{unit.unit_id:03d}"]
                np.testing.assert_array_equal(g["spike_times"][()], unit.spikes)
                assert (g.attrs["row"], g.attrs["col"]) == (unit.row, unit.col)
                if unit.silent:
                    assert g.attrs["n_spikes"] == 0 and "eimage_sta" not in g
                    continue
                eimage = g["eimage_sta"][()]
                assert eimage.shape == (50, 65, 65)
                peak = np.unravel_index(np.ptp(eimage, axis=0).argmax(), (65, 65))
                assert peak == (unit.row - 1, unit.col - 1)


def test_dense_noise_sta_peaks_at_the_planted_fields(demo, first):
    job, _, _ = first
    for name, model in demo.models.items():
        with h5py.File(job.output_path(name)) as f:
            for unit in model.units:
                g = f[f"units/unit_{unit.unit_id:03d}"]
                if unit.silent:
                    assert f"sta_{NOISE_MOVIE}" not in g
                    continue
                if unit.rf_sign == 0:  # no receptive field: the STA is noise
                    continue
                sta = g[f"sta_{NOISE_MOVIE}"][()]
                assert sta.shape == (60, 15, 15)
                lag, y, x = np.unravel_index(np.abs(sta - 127.5).argmax(), sta.shape)
                assert max(abs(y - unit.rf_center[0]), abs(x - unit.rf_center[1])) <= 1.5
                assert lag == 59 - RF_LAG_FRAMES


def _frame_sample(model, frame):
    times = model.frame_times
    period = round(np.median(np.diff(times)))
    return times[frame] if frame < times.size else times[-1] + period


def test_sections_and_trials_match_the_planted_timeline(demo, first):
    job, _, _ = first
    pre, post = PARAMS["section_pre_margin_frames"], PARAMS["section_post_margin_frames"]
    for name, model in demo.models.items():
        with h5py.File(job.output_path(name)) as f:
            np.testing.assert_array_equal(f["stimulus/frame_times"][()], model.frame_times)
            for movie in model.playlist:
                first_frame = model.movie_start[movie.name]
                end = min(first_frame + movie.n_frames + post, model.frame_times.size)
                span = [max(first_frame - pre, 0), end]
                section = f[f"stimulus/section_time/{movie.name}"][()]
                assert section.tolist() == [[_frame_sample(model, k) for k in span]]
            start = model.movie_start[FLASH_MOVIE] + trial_starts(FLASH_CONFIG)
            windows = [[_frame_sample(model, s), _frame_sample(model, s + 12)] for s in start]
            for unit in model.units:
                g = f[f"units/unit_{unit.unit_id:03d}/spike_times_sectioned/{FLASH_MOVIE}"]
                assert g["trials_start_end"][()].tolist() == windows
                counts = [
                    np.count_nonzero((unit.spikes >= a) & (unit.spikes < b)) for a, b in windows
                ]
                assert np.diff(g["trials_spike_offsets"][()]).tolist() == counts
                trial_spikes = np.split(
                    g["trials_spike_times"][()], g["trials_spike_offsets"][1:-1]
                )
                assert all(
                    ((t >= a) & (t < b)).all()
                    for t, (a, b) in zip(trial_spikes, windows, strict=True)
                )
                assert "trials_start_end" not in f[g.parent.name + f"/{NOISE_MOVIE}"]


def test_metadata_and_recorded_parameters(demo, first):
    job, _, _ = first
    name = good(demo)[0]
    with h5py.File(job.output_path(name)) as f:
        cmcr = f["metadata/cmcr_meta"].attrs
        duration_us = round(demo.models[name].n_samples * 50)
        assert cmcr["ID.Instance"] == f"{name}.cmcr" and cmcr["LB.RecordingDuration"] == duration_us
        assert f["metadata/cmtr_meta"].attrs["ProgramName"] == "CMOS-MEA-Tools"
        record = f["pipeline/steps/step1_load_recording"].attrs
        assert record["eimage_highpass_hz"] == 100.0 and record["eimage_samples_after"] == 40
        assert f["pipeline/steps/step4_dense_noise_sta"].attrs["sta_frames"] == 60


def test_bad_inputs_fail_at_their_stage_and_the_others_finish(demo, first):
    job, listing, runs = first
    for name, (stage, phrase) in early_failures(demo).items():
        _, error, ctx = runs[name]
        assert isinstance(error, StageError), name
        assert error.stage == ctx.failed_stage == stage
        assert phrase in str(error) and name in str(error)
    assert all(not isinstance(runs[name][1], StageError) for name in good(demo))
    partial = [n for n, (s, _) in demo.failures.items() if s == "step2_section_time"][0]
    with h5py.File(job.output_path(partial)) as f:
        assert f["pipeline/completed_steps"][()].tolist() == [1] and "stimulus" not in f
    others = [n for n in early_failures(demo) if n != partial]
    assert not any(job.output_path(n).exists() for n in others)
    assert not list(job.output_dir.glob(".*.tmp"))


def test_is_complete_needs_every_requested_step_with_the_same_parameters(demo, first):
    job, listing, runs = first
    item = runs[good(demo)[0]][0]
    partial = [runs[n][0] for n, (s, _) in demo.failures.items() if s.startswith("step2")][0]
    assert job.is_complete(item, PARAMS) and not job.is_complete(partial, PARAMS)
    assert MeaJob(demo.csv, job.output_dir, steps="1").is_complete(partial, PARAMS)
    assert not MeaJob(demo.csv, job.output_dir, overwrite=True).is_complete(item, PARAMS)
    assert not job.is_complete(item, dict(PARAMS, sta_frames=30))
    assert job.is_complete(item, dict(PARAMS, eimage_highpass_hz=100))


def test_a_complete_recording_is_left_alone(demo, first):
    job, listing, runs = first
    item = runs[good(demo)[0]][0]
    before = job.output_path(item.id).stat().st_mtime_ns
    result, _ = run_item(job, item)
    assert result.tables["recordings"].steps_run.iloc[0] == ""
    assert job.output_path(item.id).stat().st_mtime_ns == before


def test_overwrite_recomputes_only_the_requested_steps(demo, first, tmp_path):
    name = good(demo)[1]
    out = copy_output(first, name, tmp_path / "out")
    job = MeaJob(demo.csv, out, steps="4", overwrite=True)
    item = first[2][name][0]
    with h5py.File(out / f"{name}.h5") as f:
        step1_done = f["pipeline/steps/step1_load_recording"].attrs["completed_at"]
    result, _ = run_item(job, item, dict(PARAMS, sta_frames=30))
    assert result.tables["recordings"].steps_run.iloc[0] == "4"
    with h5py.File(out / f"{name}.h5") as f:
        assert f["pipeline/completed_steps"][()].tolist() == [1, 2, 3, 4, 5]
        assert f["pipeline/steps/step1_load_recording"].attrs["completed_at"] == step1_done
        assert f[f"units/unit_001/sta_{NOISE_MOVIE}"].shape == (30, 15, 15)
        assert f["pipeline/steps/step4_dense_noise_sta"].attrs["sta_frames"] == 30


def test_second_stage_runs_from_the_h5_alone(demo, first, tmp_path):
    name = good(demo)[0]
    out = copy_output(first, name, tmp_path / "out")
    gone = Item(
        name,
        f"{name}.cmtr",
        {"cmcr": str(tmp_path / "gone.cmcr"), "cmtr": str(tmp_path / "gone.cmtr")},
    )
    result, ctx = run_item(MeaJob(demo.csv, out, steps="3-4", overwrite=True), gone)
    assert not isinstance(result, StageError), result
    assert result.tables["recordings"].steps_run.iloc[0] == "3-4"
    error, ctx = run_item(MeaJob(demo.csv, out, steps="5", overwrite=True), gone)
    assert isinstance(error, StageError) and ctx.failed_stage == "open_recording"
    assert "CMCR file not found" in str(error)
    with h5py.File(out / f"{name}.h5") as f:
        assert f["pipeline/completed_steps"][()].tolist() == [1, 2, 3, 4, 5]


def test_a_later_step_alone_needs_its_inputs(demo, tmp_path):
    name = good(demo)[0]
    job = MeaJob(demo.csv, tmp_path, steps="3")
    item = next(i for i in job.list_items(PARAMS).items if i.id == name)
    error, ctx = run_item(job, item)
    assert ctx.failed_stage == "step3_section_spikes"
    assert "needs step(s) 1 (load_recording), 2 (section_time)" in str(error)
    assert not (tmp_path / f"{name}.h5").exists()


def test_rerunning_a_step_drops_the_results_built_on_it(demo, first, tmp_path):
    name = good(demo)[1]
    out = copy_output(first, name, tmp_path / "out")
    result, _ = run_item(MeaJob(demo.csv, out, steps="2", overwrite=True), first[2][name][0])
    assert result.tables["recordings"].steps_completed.iloc[0] == "1,2,5"
    with h5py.File(out / f"{name}.h5") as f:
        assert "spike_times_sectioned" not in f["units/unit_001"]
        assert f"sta_{NOISE_MOVIE}" not in f["units/unit_001"]


def test_resume_after_a_failure_keeps_the_steps_done(demo, tmp_path):
    stimuli = tmp_path / "stimuli"
    shutil.copytree(demo.stimuli, stimuli)
    movie = stimuli / "movies" / f"{NOISE_MOVIE}.npy"
    hidden = movie.rename(tmp_path / "movie.npy")
    job = MeaJob(demo.csv, tmp_path / "out", stimuli=stimuli, steps="1-5")
    item = next(i for i in job.list_items(FAST).items if i.id == good(demo)[0])
    final = job.output_path(item.id)
    stale = final.with_name(f".{final.name}.deadbeef.tmp")
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by a killed worker")
    error, ctx = run_item(job, item, FAST)
    assert ctx.failed_stage == "step4_dense_noise_sta" and "movie file not found" in str(error)
    assert ctx.flags["completed_steps"] == [1, 2, 3]
    assert not stale.exists() and not job.is_complete(item, FAST)
    with h5py.File(final) as f:
        assert f["pipeline/completed_steps"][()].tolist() == [1, 2, 3]
        assert not any(k.startswith("sta_") for k in f["units/unit_001"])
    hidden.rename(movie)
    result, _ = run_item(job, item, FAST)
    assert result.tables["recordings"].steps_run.iloc[0] == "4-5"
    assert job.is_complete(item, FAST)


def test_list_items_refuses_unusable_sources(demo, tmp_path):
    with pytest.raises(DataSourceError, match="CSV mapping file not found"):
        MeaJob(tmp_path / "none.csv", tmp_path).list_items(PARAMS)
    bad = tmp_path / "bad.csv"
    bad.write_text("cmcr_path,matched\nx.cmcr,True\n")
    with pytest.raises(DataSourceError, match="lacks column"):
        MeaJob(bad, tmp_path, stimuli=demo.stimuli).list_items(PARAMS)
    with pytest.raises(DataSourceError, match="stimulus folder not found"):
        MeaJob(demo.csv, tmp_path, stimuli=tmp_path / "none").list_items(PARAMS)
    MeaJob(demo.csv, tmp_path, stimuli=tmp_path / "none", steps="1,5").list_items(PARAMS)
    with pytest.raises(ConfigError, match="missing parameter.*sta_frames"):
        MeaJob(demo.csv, tmp_path).validate_params(
            {k: v for k, v in PARAMS.items() if k != "sta_frames"}
        )
    with pytest.raises(ConfigError, match="out of range: eimage_max_spikes"):
        MeaJob(demo.csv, tmp_path).validate_params(dict(PARAMS, eimage_max_spikes=0))
    with pytest.raises(ConfigError, match="soma_savgol_window 6 must be odd"):
        MeaJob(demo.csv, tmp_path, steps="6").validate_params(dict(PARAMS, soma_savgol_window=6))
    with pytest.raises(ConfigError, match="out of range: soma_threshold"):
        MeaJob(demo.csv, tmp_path, steps="6").validate_params(dict(PARAMS, soma_threshold=1.5))
    with pytest.raises(DataSourceError, match="sheet export not found.*--sheet"):
        MeaJob(demo.csv, tmp_path, sheet=tmp_path / "none.csv", steps="8").list_items(PARAMS)
    with pytest.raises(DataSourceError, match="no column 'file'.*columns: filename"):
        MeaJob(demo.csv, tmp_path, steps="8").list_items(dict(PARAMS, sheet_match_column="file"))
    with pytest.raises(DataSourceError, match="label folder not found"):
        MeaJob(demo.csv, tmp_path, labels=tmp_path / "none", steps="9").list_items(PARAMS)
    MeaJob(demo.csv, tmp_path, labels=tmp_path / "none", steps="8").list_items(PARAMS)


def test_repeated_and_pathless_rows_are_reported_not_run(tmp_path):
    csv = tmp_path / "map.csv"
    csv.write_text(
        "cmcr_path,cmtr_path,matched\n"
        "a/R1.cmcr,a/R1.cmtr,True\n"
        "b/R1.cmcr,b/R1.cmtr,true\n"
        "C:\\data\\R2.cmcr,,True\n"
        "R3.cmcr,R3.cmtr,False\n"
    )
    job = MeaJob(csv, tmp_path, steps="1")
    listing = job.list_items(PARAMS)
    assert [i.id for i in listing.items] == ["R1"]
    assert listing.rows_not_processed == {
        "unmatched": ["R3"],
        "missing path": ["R2"],
        "repeated": ["R1"],
    }


def _parse(*argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path, default=Path("out"))
    MeaJob.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_line_options(tmp_path):
    job = MeaJob.from_args(
        _parse("--csv", str(tmp_path / "m.csv"), "--steps", "1-3", "--overwrite")
    )
    assert job.steps == (1, 2, 3) and job.overwrite and job.stimuli == tmp_path / "stimuli"
    assert job.sheet == tmp_path / "gsheet_table.csv" and job.labels == tmp_path / "labels"
    every = tuple(s.number for s in registered() if s.number != 10)  # 10 needs --ap-model
    assert MeaJob.from_args(_parse("--csv", "m.csv")).steps == every
    assert {1, 2, 3, 4, 5, 6, 7, 8, 9, 11} <= set(every)
    given = MeaJob.from_args(
        _parse("--csv", "m.csv", "--sheet", "s.xlsx", "--labels", "lab", "--steps", "8-9")
    )
    assert (given.sheet, given.labels, given.steps) == (Path("s.xlsx"), Path("lab"), (8, 9))
    with pytest.raises(ConfigError, match="--csv"):
        MeaJob.from_args(_parse())
    for argv in (["--steps", "1-12"], ["--csv", "m.csv", "--demo"]):
        with pytest.raises(SystemExit):
            _parse(*argv)


def test_demo_option_reuses_a_generated_demo(tmp_path):
    folder = tmp_path / "demo_mea"
    folder.mkdir()
    (folder / "demo.json").write_text(json.dumps({"version": DEMO_VERSION}))
    (folder / "mapping.csv").write_text("cmcr_path,cmtr_path,matched\n")
    job = MeaJob.from_args(_parse("--demo", "--output", str(tmp_path)))
    assert job.csv_path == folder / "mapping.csv" and job.stimuli == folder / "stimuli"
    assert sorted(os.listdir(folder)) == ["demo.json", "mapping.csv"]


def test_summary_lines(demo, first):
    job, listing, runs = first
    cache = cache_for_job(job, PARAMS, None)  # in memory
    for name in good(demo):
        cache.add(name, tables=runs[name][1].tables)
    lines = job.summary_lines(cache, listing)
    assert "2 recordings, 10 units (1 without spikes)" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:3]] == sorted(good(demo))
    assert lines[1].endswith("Units: 5, Steps: 5")
    assert lines[3] == f"CSV rows not processed (unmatched): 1, e.g. {demo.unmatched[0]}"
