"""AnalysisCache: the predecessor's unit tests, crash leftovers, compaction, locking, retries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.decide import decide
from nmbatch.engine.errors import CacheLockedError, ConfigChangedError
from nmbatch.engine.session import adopt_former_cache
from nmbatch.synthetic.job import SyntheticJob

CONFIG = {"sliding_kwargs": {"w_len": 120, "step_len": 60}, "raw_metrics": ["n_early_samples"]}
SCHEMAS = {"qc": pa.schema([("band", pa.string()), ("value", pa.float64())])}


def make_cache(tmp_path, config=CONFIG, **kwargs) -> AnalysisCache:
    kwargs.setdefault("table_schemas", SCHEMAS)
    return AnalysisCache(
        "photometry_qc",
        config,
        data_dir=tmp_path,
        id_column="eid",
        label_column="subject",
        **kwargs,
    )


def rows(eid: str, value: float) -> pd.DataFrame:
    return pd.DataFrame({"band": ["GCaMP", "Isosbestic"], "value": [value, -value]})


def test_save_load_roundtrip(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.check_config()
        cache.add("e1", rows("e1", 1.0), label="mouse1", table="qc", arrays={"w": np.arange(4.0)})
        cache.add_error("e2", KeyError("no signal"), label="mouse2", stage="load_signal")
        cache.save()
    with make_cache(tmp_path) as cache:
        results = cache.get_results("qc")
        assert list(results.columns) == ["eid", "band", "value"]
        assert results["value"].tolist() == [1.0, -1.0]
        errors = cache.get_errors()
        assert errors[["eid", "subject", "stage", "error_type"]].values.tolist() == [
            ["e2", "mouse2", "load_signal", "KeyError"]
        ]
        np.testing.assert_array_equal(cache.read_arrays("e1")["w"], np.arange(4.0))
    manifest = json.loads((tmp_path / "photometry_qc" / "manifest.json").read_text())
    assert manifest["analysis"] == "photometry_qc"
    assert manifest["config"] == CONFIG
    assert (manifest["n_done"], manifest["n_failed"]) == (1, 1)
    assert {"created", "updated"} <= manifest.keys()


def test_resume_skips_completed(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.add("e1", rows("e1", 1.0), table="qc")
        cache.add_error("e2", ValueError("bad"), stage="qc")
        cache.save()
        cache.add("e3", rows("e3", 3.0), table="qc")  # never saved: lost like a crash would lose it
    with make_cache(tmp_path) as cache:
        assert cache.is_complete("e1")
        assert cache.is_failed("e2") and not cache.is_complete("e2")
        assert not cache.is_complete("e3")


def test_config_diff_detection(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.check_config()
        cache.add("e1", rows("e1", 1.0), table="qc")
        cache.save()
    changed = {**CONFIG, "sliding_kwargs": {"w_len": 180, "step_len": 60}}
    with make_cache(tmp_path, config=changed) as cache:
        with pytest.raises(ConfigChangedError, match="--on-config-change") as info:
            cache.check_config()
        assert [c.key for c in info.value.diff] == ["sliding_kwargs.w_len"]
        text = str(info.value)
        assert "sliding_kwargs.w_len:" in text and "cached:  120" in text and "current: 180" in text
        assert cache.is_complete("e1"), "nothing may be cleared before a decision"


def test_config_change_continue_keeps_results_and_records_history(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.check_config()
        cache.add("e1", rows("e1", 1.0), table="qc")
        cache.save()
    changed = {**CONFIG, "raw_metrics": []}
    with make_cache(tmp_path, config=changed) as cache:
        assert cache.check_config(on_change="continue") == "continue"
        assert cache.is_complete("e1")
        assert cache.manifest["config"] == changed
        entry = cache.manifest["config_history"][0]
        assert entry["decision"] == "continue"
        assert entry["changes"] == [
            {"key": "raw_metrics", "cached": ["n_early_samples"], "current": []}
        ]


def test_config_change_recompute_clears(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.check_config()
        cache.add("e1", rows("e1", 1.0), table="qc", arrays={"w": np.ones(2)})
        cache.save()
    with make_cache(tmp_path, config={**CONFIG, "raw_metrics": []}) as cache:
        assert cache.check_config(force=True) == "recompute"
        assert not cache.is_complete("e1")
        assert cache.get_results("qc").empty
        assert cache.read_arrays("e1") == {}


def test_interactive_prompt_takes_the_answer(tmp_path, monkeypatch, capsys):
    with make_cache(tmp_path) as cache:
        cache.check_config()
    monkeypatch.setattr("builtins.input", lambda prompt: "a")
    changed = {**CONFIG, "raw_metrics": []}
    with (
        make_cache(tmp_path, config=changed) as cache,
        pytest.raises(ConfigChangedError, match="aborted"),
    ):
        decide(cache, interactive=True)
    assert "raw_metrics:" in capsys.readouterr().out


def test_batch_saving(tmp_path):
    with make_cache(tmp_path, batch_size=3, save_interval=3600) as cache:
        items_dir = cache.directory / "items"
        for i in range(2):
            cache.add(f"e{i}", rows(f"e{i}", i), table="qc")
            assert not cache.save_if_needed()
        assert not list(items_dir.iterdir())
        cache.add("e2", rows("e2", 2), table="qc")
        assert cache.save_if_needed()
        assert len(list(items_dir.iterdir())) == 1
        cache.save_interval = 0
        cache.add("e3", rows("e3", 3), table="qc")
        assert cache.save_if_needed(), "a due save interval saves even a short batch"
        assert len(list(items_dir.iterdir())) == 2


def test_works_without_a_cache_directory():
    cache = AnalysisCache("photometry_qc", CONFIG, table_schemas=SCHEMAS)
    cache.check_config()
    cache.add("e1", rows("e1", 1.0), table="qc", arrays={"w": np.ones(3)})
    cache.save()
    assert cache.is_complete("e1")
    assert len(cache.get_results("qc")) == 2
    assert cache.read_arrays("e1")["w"].sum() == 3


def test_all_null_column_keeps_its_declared_type(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.add("e1", pd.DataFrame({"band": ["a"], "value": [None]}), table="qc")
        cache.save()
        cache.add("e2", pd.DataFrame({"band": ["b"], "value": [2.0]}), table="qc")
        cache.save()
        results = cache.get_results("qc")
    assert results["value"].dtype == np.float64
    assert results["value"].isna().tolist() == [True, False]


def test_undeclared_column_is_refused(tmp_path):
    with (
        make_cache(tmp_path) as cache,
        pytest.raises(ValueError, match="not in the declared schema"),
    ):
        cache.add("e1", pd.DataFrame({"band": ["a"], "surprise": [1]}), table="qc")


def test_retry_success_replaces_failure_and_counts_attempts(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.add_error("e1", ValueError("first"), stage="qc")
        cache.save()
    with make_cache(tmp_path) as cache:
        assert cache.attempts("e1") == 1
        cache.add("e1", rows("e1", 1.0), table="qc")
        cache.save()
        assert cache.get_errors().empty
        history = cache.get_error_history()
        assert history["error_message"].tolist() == ["first"]
        assert cache.item_states()["attempt"].tolist() == [2]
        assert (cache.n_done, cache.n_failed) == (1, 0)


def test_crash_leftovers_are_ignored_and_removed(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.add("e1", rows("e1", 1.0), table="qc")
        cache.save()
        directory = cache.directory
    # a crash while writing a file, and a crash between a batch's results and its items file
    (directory / "items" / ".0000000002-0000000002.x.parquet.1234abcd.tmp").write_bytes(b"PAR1")
    (first,) = (directory / "results" / "qc").iterdir()
    orphan = directory / "results" / "qc" / first.name.replace("0000000001", "0000000002")
    orphan.write_bytes(first.read_bytes())
    with make_cache(tmp_path) as cache:
        assert cache.get_results("qc")["eid"].tolist() == ["e1", "e1"]
        assert not orphan.exists()
        assert not list((directory / "items").glob(".*.tmp"))


def test_truncated_batch_file_is_quarantined_and_its_items_rerun(tmp_path):
    with make_cache(tmp_path) as cache:
        cache.add("e1", rows("e1", 1.0), table="qc")
        cache.save()
        cache.add("e2", rows("e2", 2.0), table="qc")
        cache.save()
        directory = cache.directory
    second = next((directory / "items").glob("0000000002-0000000002.*.parquet"))
    second.write_bytes(second.read_bytes()[:40])
    with make_cache(tmp_path) as cache:
        assert cache.is_complete("e1") and not cache.is_complete("e2")
        assert cache.get_results("qc")["eid"].unique().tolist() == ["e1"]
        assert list((directory / "corrupt").iterdir())
        cache.add("e2", rows("e2", 2.0), table="qc")
        cache.save()
        assert sorted(cache.get_results("qc")["eid"].unique()) == ["e1", "e2"]


def test_compaction_merges_batches_without_duplicates(tmp_path):
    with make_cache(tmp_path, merge_factor=4) as cache:
        for i in range(12):
            cache.add(f"e{i}", rows(f"e{i}", i), table="qc")
            cache.save()
        before = cache.get_results("qc")
        assert cache.compact()
        assert len(list((cache.directory / "items").iterdir())) == 3  # 3 segments of 4
        pd.testing.assert_frame_equal(cache.get_results("qc"), before)
        direct = pd.read_parquet(cache.directory / "results" / "qc")
        assert len(direct) == 24, "a reader of the folder itself sees every row once"
    with make_cache(tmp_path) as cache:
        assert cache.n_done == 12
        cache.add("e12", rows("e12", 12), table="qc")
        cache.save()
        assert len(cache.get_results("qc")) == 26


def test_crash_during_compaction_shows_no_duplicates(tmp_path):
    with make_cache(tmp_path, merge_factor=2) as cache:
        for i in range(4):
            cache.add(f"e{i}", rows(f"e{i}", i), table="qc")
            cache.save()
        directory = cache.directory
    qc = directory / "results" / "qc"
    live = qc.resolve()
    # A compaction that built the next version but was killed before swapping it in ...
    unfinished = live.with_name(live.name[:-6] + "000099")
    unfinished.mkdir()
    for part in live.iterdir():
        os.link(part, unfinished / part.name)
    assert len(pd.read_parquet(qc)) == 8, "readers see the live version only"
    with make_cache(tmp_path) as cache:  # ... is removed when the cache opens
        assert not unfinished.exists()
        results = cache.get_results("qc")
        assert len(results) == 8 and results["eid"].nunique() == 4
        assert cache.n_done == 4


def test_second_writer_is_refused_until_the_first_closes(tmp_path):
    first = make_cache(tmp_path)
    first.check_config()
    with pytest.raises(CacheLockedError, match="in use by another run"):
        make_cache(tmp_path)
    reader = AnalysisCache.open(tmp_path / "photometry_qc")
    assert reader.store.lock_holder()["pid"] > 0
    first.close()
    make_cache(tmp_path).close()


def test_lock_dies_with_a_killed_process(tmp_path):
    code = (
        "import sys, time; from nmbatch.engine.cache import AnalysisCache;"
        f"c = AnalysisCache('photometry_qc', {{}}, data_dir={str(tmp_path)!r});"
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CacheLockedError):
            make_cache(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    make_cache(tmp_path).close()


V1_ITEM_COLUMNS = [
    "eid", "subject", "status", "stage", "error_type", "error_message", "traceback",
    "worker", "attempt", "time", "duration_s", "flags", "config_hash",
]  # fmt: skip


def rewrite_as_format_1(folder) -> None:
    """The cache as nmbatch 0.1 left it: plain folders, parts named ``first-last.parquet``
    (no checksums), records without provenance or array checksums."""
    for link in [folder / "items", *(p for p in (folder / "results").iterdir() if p.is_symlink())]:
        version = link.resolve()
        link.unlink()
        link.mkdir()
        for part in version.glob("*.parquet"):
            first, last = (int(n) for n in part.name.partition(".")[0].split("-"))
            table = pq.read_table(part)
            if link.name == "items":
                table = table.select(V1_ITEM_COLUMNS)
            pq.write_table(table, link / f"{first:08d}-{last:08d}.parquet")
        shutil.rmtree(version)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest = {k: v for k, v in manifest.items() if "provenance" not in k}
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))
    shutil.rmtree(folder / "configs", ignore_errors=True)


def test_a_format_1_cache_is_upgraded_in_place_and_nothing_reruns(tmp_path, caplog):
    with make_cache(tmp_path) as cache:
        cache.check_config()
        for k in range(3):
            arrays = {"w": np.ones(k + 1)}
            cache.add(f"e{k}", rows(f"e{k}", k), label="m", table="qc", arrays=arrays)
            cache.save()
        cache.add_error("bad", KeyError("no signal"), label="m", stage="load_signal")
        cache.save()
    folder = tmp_path / "photometry_qc"
    rewrite_as_format_1(folder)
    (folder / "items" / "00000002-00000002.parquet").write_bytes(b"not parquet")

    with caplog.at_level("WARNING"), make_cache(tmp_path) as cache:
        cache.check_config()
        assert [cache.is_complete(f"e{k}") for k in range(3)] == [True, False, True]
        assert cache.get_errors()["eid"].tolist() == ["bad"]
        assert cache.get_results("qc")["value"].tolist() == [0.0, -0.0, 2.0, -2.0]
        assert cache.read_arrays("e2")["w"].tolist() == [1.0, 1.0, 1.0]
    assert "upgraded items to the current cache format" in caplog.text
    assert "moved damaged file items/00000002-00000002." in caplog.text
    assert all(link.is_symlink() for link in [folder / "items", folder / "results" / "qc"])
    assert pd.read_parquet(folder / "results" / "qc")["eid"].tolist() == ["e0", "e0", "e2", "e2"]


def test_a_cache_under_a_former_job_name_is_renamed_with_a_message(tmp_path, capsys):
    class Renamed(SyntheticJob):
        former_names = ("synthetic_old",)

    (tmp_path / "synthetic_old").mkdir()
    (tmp_path / "synthetic_old" / "manifest.json").write_text("{}")
    adopt_former_cache(Renamed, tmp_path)
    assert (tmp_path / "synthetic" / "manifest.json").read_text() == "{}"
    assert not (tmp_path / "synthetic_old").exists()
    assert "renamed the cache" in capsys.readouterr().out
    (tmp_path / "synthetic_old").mkdir()
    adopt_former_cache(Renamed, tmp_path)  # never over a cache under the current name
    assert (tmp_path / "synthetic_old").is_dir()
