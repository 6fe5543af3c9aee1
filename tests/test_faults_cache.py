"""Damage to a cache on disk: every file a done item depends on is checked when a run opens it.

Truncated and bit-flipped parts of every kind, damaged array chunks, and a manifest that is
truncated, garbled, empty, of the wrong type or gone: each is found, said in a warning that
names the file, and what depended on it runs again; parameters never mix unseen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import nmbatch_status, run_job

from nmbatch.engine.cache import AnalysisCache
from nmbatch.engine.layout import Part

JOB = "nmbatch.synthetic"
ARGS = ("--items", "12", "--set", "work_ms=0", "--set", "series_length=20", "--workers", "1")


@pytest.fixture
def done_cache(tmp_path) -> Path:
    first = run_job(JOB, "--output", "out", *ARGS, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    return tmp_path / "out" / "synthetic"


def rerun(tmp_path, *extra):
    return run_job(JOB, "--output", "out", *ARGS, *extra, cwd=tmp_path)


def ran_again(result) -> int:
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("done now"))
    return int(line.split()[-1])


def flip_byte(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


def biggest_part(folder: Path) -> Path:
    return max(
        (p for p in folder.iterdir() if p.suffix == ".parquet"), key=lambda p: p.stat().st_size
    )


def items_in_span(cache_dir: Path, part: Path) -> set[str]:
    """The items whose records lie in the span of ``part`` (what damage to it costs)."""
    span = Part.parse(part.name).span
    ids = set()
    for other in (cache_dir / "items").iterdir():
        other_span = Part.parse(other.name).span
        if other_span.first <= span.last and span.first <= other_span.last:
            ids |= set(pd.read_parquet(other)["item_id"])
    return ids


@pytest.mark.parametrize(
    ("folder", "damage"),
    [
        ("results/values", "truncate"),
        ("results/values", "flip"),
        ("items", "truncate"),
        ("items", "flip"),  # the footer intact, a page damaged
    ],
)
def test_a_damaged_part_is_moved_aside_and_its_items_run_again(
    done_cache, tmp_path, folder, damage
):
    part = biggest_part(done_cache / folder)
    lost = items_in_span(done_cache, part)
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    else:
        flip_byte(part, 0.3)
    shown = nmbatch_status(done_cache)
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stderr
    again = rerun(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert part.name in again.stderr and "damaged" in again.stderr
    assert ran_again(again) == len(lost) > 0
    assert list((done_cache / "corrupt").iterdir())
    results = AnalysisCache.open(done_cache).get_results("values")
    assert sorted(results["item_id"]) == [f"item-{i:06d}" for i in range(12)]
    assert len(pd.read_parquet(done_cache / "results" / "values")) == 12


def test_a_damaged_array_chunk_reruns_its_item(done_cache, tmp_path):
    chunks = sorted((done_cache / "arrays.zarr" / "item-000005" / "series").rglob("c/*"))
    assert chunks, "the item has array chunks on disk"
    flip_byte(chunks[0], 0.9)
    again = rerun(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "item-000005" in again.stderr and "damaged array file" in again.stderr
    assert ran_again(again) == 1
    cache = AnalysisCache.open(done_cache)
    assert cache.read_arrays("item-000005")["series"].shape == (20,)
    assert cache.get_results("values")["item_id"].is_unique


@pytest.mark.parametrize(
    "content",
    [b'{"analysis": "synth', b"\x00\xff garbage", b"", b"[1, 2, 3]", b'{"config": 5}'],
    ids=["truncated", "garbled", "empty", "a list", "wrong types"],
)
def test_a_damaged_manifest_is_rebuilt_from_the_records(done_cache, tmp_path, content):
    (done_cache / "manifest.json").write_bytes(content)
    shown = nmbatch_status(done_cache)
    assert shown.returncode == 0 and "manifest.json" in shown.stdout, shown.stdout + shown.stderr
    again = rerun(tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "rebuilt" in again.stderr and ran_again(again) == 0
    manifest = json.loads((done_cache / "manifest.json").read_text())
    assert manifest["config"]["series_length"] == 20


def test_a_lost_manifest_never_lets_parameters_mix_unseen(done_cache, tmp_path):
    (done_cache / "manifest.json").unlink()
    changed = rerun(tmp_path, "--set", "scale=2")
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert "scale:\n    cached:  1.0\n    current: 2" in changed.stdout, "the diff, from configs/"
    for snapshot in (done_cache / "configs").iterdir():
        snapshot.unlink()
    unknown = rerun(tmp_path, "--set", "scale=2")
    assert unknown.returncode == 2
    assert "Cached parameters unknown" in unknown.stdout
    assert AnalysisCache.open(done_cache).n_done == 12, "nothing was cleared"
    kept = rerun(tmp_path, "--set", "scale=2", "--on-config-change", "continue")
    assert kept.returncode == 0 and ran_again(kept) == 0
    history = json.loads((done_cache / "manifest.json").read_text())["config_history"]
    assert history[-1]["decision"] == "continue" and "unknown" in history[-1]


def test_a_changed_library_version_is_shown_and_decided_like_a_parameter(done_cache, tmp_path):
    manifest_path = done_cache / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["provenance"]["libraries"]["numpy"] = "1.0.0"
    manifest_path.write_text(json.dumps(manifest))
    plan = rerun(tmp_path, "--plan")
    assert plan.returncode == 0
    assert "libraries.numpy:\n    cached:  '1.0.0'" in plan.stdout
    asked = rerun(tmp_path)
    assert asked.returncode == 2 and "Code or libraries changed" in asked.stdout
    redone = rerun(tmp_path, "--on-config-change", "recompute")
    assert redone.returncode == 0 and ran_again(redone) == 12
