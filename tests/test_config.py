"""Tracked parameters: defaults, overrides, dotted diffs."""

from __future__ import annotations

import pytest

from nmbatch.engine.config import (
    config_hash,
    deep_merge,
    diff_config,
    flatten,
    format_config,
    format_diff,
    get_analysis_config,
)
from nmbatch.engine.errors import ConfigError


def test_defaults_come_from_the_shipped_job_file():
    params = get_analysis_config("synthetic")
    assert params == {"work_ms": 50, "scale": 1.0, "series_length": 0}


def test_set_parses_yaml_values_and_nested_keys():
    params = get_analysis_config("synthetic", sets=["scale=2.5", "work_ms=0"])
    assert params["scale"] == 2.5 and params["work_ms"] == 0


def test_unknown_parameter_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'scale'"):
        get_analysis_config("synthetic", sets=["scal=2"])


def test_config_file_overrides_merge_and_unknown_keys_fail(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("scale: 3\n")
    assert get_analysis_config("synthetic", config_files=[good])["scale"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("nope: 1\n")
    with pytest.raises(ConfigError, match="unknown parameter 'nope'"):
        get_analysis_config("synthetic", config_files=[bad])


def test_unknown_analysis_lists_known_ones():
    with pytest.raises(ConfigError, match="synthetic"):
        get_analysis_config("no_such_job")


def test_deep_merge_keeps_sibling_keys():
    base = {"sliding_kwargs": {"w_len": 120, "step_len": 60}, "raw": [1]}
    assert deep_merge(base, {"sliding_kwargs": {"w_len": 180}}) == {
        "sliding_kwargs": {"w_len": 180, "step_len": 60},
        "raw": [1],
    }


def test_diff_uses_dotted_keys_and_marks_absent_sides():
    cached = {"sliding_kwargs": {"w_len": 120, "detrend": True}, "raw_metrics": ["a"]}
    current = {"sliding_kwargs": {"w_len": 180}, "raw_metrics": ["a"], "new": 1}
    changes = {c.key: c for c in diff_config(cached, current)}
    assert set(changes) == {"sliding_kwargs.w_len", "sliding_kwargs.detrend", "new"}
    assert (changes["sliding_kwargs.w_len"].cached, changes["sliding_kwargs.w_len"].current) == (
        120,
        180,
    )
    assert not changes["sliding_kwargs.detrend"].current_present
    assert not changes["new"].cached_present
    text = format_diff(list(changes.values()))
    assert "sliding_kwargs.w_len:\n    cached:  120\n    current: 180" in text


def test_hash_ignores_key_order_and_flatten_keeps_lists():
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert flatten({"a": {"b": [1, 2]}}) == {"a.b": [1, 2]}


def test_format_config_shows_nested_keys_indented():
    text = format_config("photometry_qc", {"sliding_kwargs": {"w_len": 120}, "raw_metrics": ["x"]})
    assert text.splitlines() == [
        "=== photometry_qc config ===",
        "sliding_kwargs:",
        "  w_len: 120",
        "raw_metrics: ['x']",
    ]
