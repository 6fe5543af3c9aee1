"""Step 10 in the mea job: model options, the tracked model hash, and a run through the CLI."""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import dask.config
import h5py
import pytest
import torch
from conftest import run_job
from mea_helpers import PARAMS, angle_error

from nmbatch.engine.errors import ConfigError
from nmbatch.engine.job import ItemContext
from nmbatch.mea import output
from nmbatch.mea.axon.model_file import file_sha256, load_model, save_model
from nmbatch.mea.axon.network import AxonNet
from nmbatch.mea.axon.run_settings import DEMO_MODEL, ApSettings
from nmbatch.mea.demo import ONH, make_demo
from nmbatch.mea.job import MeaJob
from nmbatch.mea.steps import parse_steps

JOB = "nmbatch.mea"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    MeaJob.add_arguments(parser)
    args = parser.parse_args(argv)
    args.output = Path("out")
    return args


def test_step_10_needs_a_model_and_sensible_parameters(tmp_path):
    job = MeaJob(tmp_path / "m.csv", tmp_path, steps="10")
    with pytest.raises(ConfigError, match="needs a trained model: give it with --ap-model"):
        job.validate_params(PARAMS)
    job = MeaJob(tmp_path / "m.csv", tmp_path, steps="10", ap=ApSettings(DEMO_MODEL))
    job.validate_params(PARAMS)
    for key, value in (("ap_threshold", 1.5), ("onh_r2_thresholds", []), ("ap_input_scaling", "x")):
        with pytest.raises(ConfigError, match=f"out of range: {key}"):
            job.validate_params(dict(PARAMS, **{key: value}))
    MeaJob(tmp_path / "m.csv", tmp_path, steps="1-5").validate_params(PARAMS)  # no model needed


def test_the_model_file_becomes_a_tracked_hash(tmp_path):
    job = MeaJob(tmp_path / "m.csv", tmp_path, steps="10", ap=ApSettings(DEMO_MODEL))
    sha = file_sha256(DEMO_MODEL)
    assert job.resolve_params(PARAMS)["ap_model_sha256"] == sha
    assert job.resolve_params(dict(PARAMS, ap_model_sha256=sha))["ap_model_sha256"] == sha
    with pytest.raises(ConfigError, match="ap_model_sha256 is set to abc, but"):
        job.resolve_params(dict(PARAMS, ap_model_sha256="abc"))
    torch.save(AxonNet(), tmp_path / "whole.pth")
    for path, phrase in ((tmp_path / "no.pth", "not found"), (tmp_path / "whole.pth", "never")):
        job = MeaJob(tmp_path / "m.csv", tmp_path, steps="10", ap=ApSettings(path))
        with pytest.raises(ConfigError, match=phrase):
            job.resolve_params(PARAMS)


def test_all_steps_hold_step_10_only_with_a_model(tmp_path):
    assert 10 not in MeaJob(tmp_path / "m.csv", tmp_path).steps
    with_model = MeaJob(tmp_path / "m.csv", tmp_path, ap=ApSettings(DEMO_MODEL)).steps
    assert (10 in with_model) == (10 in parse_steps("all"))  # "all" needs step 6 registered
    assert MeaJob.from_args(parse("--csv", "m.csv", "--steps", "10")).steps == (10,)


def test_model_options_and_settings(tmp_path):
    assert ApSettings.from_args(parse("--csv", "m.csv"), demo=True).model == DEMO_MODEL
    job = MeaJob.from_args(parse("--csv", "m.csv", "--ap-model", "lab.pth", "--ap-device", "cpu"))
    assert job.ap.model == Path("lab.pth").resolve() and job.ap.device == "cpu"
    with dask.config.set({"nmbatch.mea.ap-model": str(tmp_path / "site.pth")}):
        assert MeaJob.from_args(parse("--csv", "m.csv")).ap.model == tmp_path / "site.pth"
    assert MeaJob.from_args(parse("--csv", "m.csv")).ap.model is None


def test_a_bad_model_file_stops_the_run_before_any_work(tmp_path):
    (tmp_path / "m.csv").write_text("cmcr_path,cmtr_path,matched\na.cmcr,a.cmtr,True\n")
    torch.save(AxonNet(), tmp_path / "whole.pth")
    for model, phrase in (("missing.pth", "AP model file not found"), ("whole.pth", "never")):
        result = run_job(
            JOB,
            "--csv",
            "m.csv",
            "--steps",
            "10",
            "--ap-model",
            model,
            "--output",
            "out",
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        assert phrase in result.stderr
        assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """One demo recording through steps 1-6 (run_item); then its raw files are moved away."""
    folder = tmp_path_factory.mktemp("ap_job")
    demo = make_demo(
        folder / "demo",
        n_recordings=1,
        n_units=8,
        noise_frames=60,
        bar_repeats=0,
        sensor_seconds=1.5,
    )
    job = MeaJob(demo.csv, folder / "out", steps="1-6")
    item = job.list_items(PARAMS).items[0]
    job.run_item(item, ItemContext(item, PARAMS))
    shutil.move(folder / "demo" / "recordings", folder / "gone")  # step 10 needs no raw data
    yield demo, job.output_path(item.id), folder
    shutil.rmtree(folder)


def test_step_10_through_the_command_line_and_a_model_change(recording, tmp_path):
    demo, path, folder = recording
    base = ["--csv", str(demo.csv), "--output", str(folder / "out"), "--steps", "10"]
    result = run_job(JOB, *base, "--ap-model", str(DEMO_MODEL), "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = next(iter(demo.models.values()))
    with h5py.File(path) as f:
        assert list(f["pipeline/completed_steps"][()]) == [1, 2, 3, 4, 5, 6, 10]
        record = f["pipeline/steps/step10_ap_tracking"].attrs
        assert record["ap_model_sha256"] == file_sha256(DEMO_MODEL)
        found = 0
        for unit in model.units:
            result_ = f[f"units/{output.unit_name(unit.unit_id)}/ap_tracking"].attrs
            if unit.axon is not None and result_["detected"]:
                found += angle_error(result_["direction_deg"], unit.axon.direction_deg) < 20
            if unit.axon is None and not unit.silent:
                assert not result_["detected"], unit.unit_id
        assert found >= sum(u.axon is not None for u in model.units) - 1
        onh = f["metadata/ap_tracking"].attrs
        assert onh["onh_found"] and math.hypot(onh["onh_row"] - ONH[0], onh["onh_col"] - ONH[1]) < 5

    other = load_model(DEMO_MODEL)
    with torch.no_grad():
        other.fc_out.bias += 0.5
    save_model(other, tmp_path / "other.pth")
    changed = [*base, "--ap-model", str(tmp_path / "other.pth"), "--workers", "1"]
    result = run_job(JOB, *changed, cwd=tmp_path)
    assert result.returncode == 2 and "ap_model_sha256" in result.stdout + result.stderr
    result = run_job(JOB, *changed, "--on-config-change", "recompute", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with h5py.File(path) as f:
        record = f["pipeline/steps/step10_ap_tracking"].attrs
        assert record["ap_model_sha256"] == file_sha256(tmp_path / "other.pth")
