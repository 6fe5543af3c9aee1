"""The qc_events job end to end through its command line, as a user runs it, with a folder sink."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_job

from nmbatch.engine.cache import AnalysisCache
from nmbatch.qc_events.demo import (
    FormSpec,
    QCLogSpec,
    make_demo,
    visit,
    write_entry,
    write_project,
    write_qc_log,
)
from nmbatch.qc_events.job import OUTCOMES

JOB = "nmbatch.qc_events"
PASSED = {"form-qc-coordinator": "PASS", "form-qc-checker": "PASS"}


def count(summary: str, row: str) -> int:
    """A count from the closing summary, e.g. ``count(out, 'done now')``; 0 when not shown."""
    lines = [line.strip() for line in summary.splitlines() if line.strip().startswith(row)]
    return int(lines[0].removeprefix(row).split()[0]) if lines else 0


def outcomes(output: Path) -> dict[str, dict]:
    """The latest ``outcomes`` row of each form file."""
    table = AnalysisCache.open(output / "qc_events").get_results("outcomes")
    return {row["form_file"]: row for row in table.to_dict("records")}


def events(sink: Path) -> dict[str, dict]:
    return {str(p.relative_to(sink)): json.loads(p.read_text()) for p in sink.rglob("*.json")}


def stamps(sink: Path) -> dict[str, int]:
    return {str(p.relative_to(sink)): p.stat().st_mtime_ns for p in sink.rglob("*")}


def test_demo_runs_alone_and_an_unchanged_rerun_writes_nothing(tmp_path):
    first = run_job(JOB, "--demo", "--workers", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    output = tmp_path / "nmbatch-output"
    expected = json.loads((output / "demo_qc_events/project/demo.json").read_text())["expected"]
    assert set(expected.values()) == set(OUTCOMES), "the demo covers every outcome"
    rows = outcomes(output)
    assert {path: row["outcome"] for path, row in rows.items()} == expected
    sink = output / "demo_qc_events/events"
    logged = {row["event_key"] for row in rows.values() if row["outcome"] == "logged"}
    assert set(events(sink)) == logged
    assert "form files by outcome: logged 3, not_passed 3" in first.stdout
    assert str(sink) in first.stdout

    before = stamps(sink)
    again = run_job(JOB, "--demo", "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert count(again.stdout, "done now") == 0
    assert stamps(sink) == before, "an unchanged tree writes nothing new"


def edge_case_tree(root: Path) -> dict[str, str]:
    """Name-template edge cases, gears, missing and malformed sidecars: path -> expectation."""
    cases = [
        ("logged", FormSpec("007", visit("007", "2024-01-15")), "7_2024-01-15_uds"),
        ("logged", FormSpec("110002", visit("  110002 ", "2024-01-16")), "110002_2024-01-16_uds"),
        ("logged", FormSpec("110003", visit("110003", "01/20/2024")), "110003_2024-01-20_uds"),
        ("invalid_metadata", FormSpec("000", visit("000", "2024-01-15")), None),
        ("invalid_metadata", FormSpec("110005", visit("110005", "15.01.2024")), None),
        ("invalid_metadata", FormSpec("110006", visit("110006", "2024-02-30")), None),
        ("not_passed", FormSpec("110007", visit("110007", "2024-01-15")), "110007_2024-01-15_uds"),
        (
            "no_form_metadata",
            FormSpec("110008", visit("110008", "2024-01-15"), sidecar="missing"),
            None,
        ),
        ("not_passed", FormSpec("110009", visit("110009", "2024-01-15")), "110009_2024-01-15_uds"),
        (
            "read_form_metadata",
            FormSpec("110010", visit("110010", "2024-01-15"), sidecar="malformed"),
            None,
        ),
        ("find_qc_log", FormSpec("110011", visit("110011", "2024-01-15")), "110011_2024-01-15_uds"),
        (
            "no_qc_log",
            FormSpec("110012", visit("110012", "2024-01-15", "LBD"), acquisition="LBD"),
            None,
        ),
    ]
    logs = [
        QCLogSpec(f"{stem}_qc-status.log", PASSED)
        for expectation, _, stem in cases
        if stem and expectation == "logged"
    ]
    logs += [
        QCLogSpec("110007_2024-01-15_uds_qc-status.log", {**PASSED, "form-transformer": "FAIL"}),
        QCLogSpec("110009_2024-01-15_uds_qc-status.log", PASSED, sidecar="missing"),
        QCLogSpec("110011_2024-01-15_uds_qc-status.log", PASSED, sidecar="malformed"),
        # a QC log for the LBD form would be found; this one is for a CSV upload, never an item
        QCLogSpec("110012_2024-01-15_lbd_csv_qc-status.log", PASSED),
    ]
    paths = write_project(root, [spec for _, spec, _ in cases], logs)
    write_entry(root / "files/upload.csv", b"ptid\n1\n", "upload.csv", None, {}, "ok")
    csv = root / Path(paths[0]).with_name("007_UDS.csv")
    write_entry(
        csv, b"ptid\n7\n", csv.name, None, {"forms": {"json": visit("7", "2024-01-15")}}, "ok"
    )
    return {path: expectation for path, (expectation, _, _) in zip(paths, cases, strict=True)}


def test_edge_cases_each_get_their_outcome_and_the_run_goes_on(tmp_path):
    project, sink = tmp_path / "project", tmp_path / "events"
    expected = edge_case_tree(project)
    args = ["--project", str(project), "--sink", str(sink), "--workers", "2", "--output", "out"]

    partial = run_job(JOB, *args, "--limit", "4", cwd=tmp_path)
    assert partial.returncode in (0, 1), partial.stdout + partial.stderr
    assert count(partial.stdout, "done now") + count(partial.stdout, "failed now") == 4

    full = run_job(JOB, *args, cwd=tmp_path)
    assert full.returncode == 1, "two malformed sidecars fail their items"
    assert count(full.stdout, "listed") == len(expected), "CSV files are never items"
    assert (
        count(full.stdout, "skipped, done before") + count(full.stdout, "skipped, failed before")
        >= 4
    )
    cache = AnalysisCache.open(tmp_path / "out/qc_events")
    errors = {row["form_file"]: row for row in cache.get_errors().to_dict("records")}
    failing = {path: stage for path, stage in expected.items() if stage not in OUTCOMES}
    assert {path: row["stage"] for path, row in errors.items()} == failing
    for row in errors.values():
        assert "not valid JSON" in row["error_message"] and ".flywheel.json" in row["error_message"]
    rows = outcomes(tmp_path / "out")
    assert {p: r["outcome"] for p, r in rows.items()} == {
        p: e for p, e in expected.items() if e in OUTCOMES
    }
    by_subject = {p.split("/")[1]: r for p, r in rows.items()}
    assert by_subject["110007"]["qc_status"] == "FAIL"
    assert "form-transformer:FAIL" in by_subject["110007"]["qc_gears"]
    assert (
        "sidecar" in by_subject["110009"]["detail"] and "sidecar" in by_subject["110008"]["detail"]
    )
    assert "unparseable" in by_subject["110005"]["detail"]
    logged = {r["ptid"] for r in rows.values() if r["outcome"] == "logged"}
    assert logged == {"007", "110002", "110003"}, "leading zeros stay in the event, spaces go"
    assert set(events(sink)) == {r["event_key"] for r in rows.values() if r["event_key"]}

    for path in failing:  # the person fixes the two malformed sidecars
        if expected[path] == "find_qc_log":
            write_qc_log(project, QCLogSpec("110011_2024-01-15_uds_qc-status.log", PASSED))
        else:
            write_project(project, [FormSpec("110010", visit("110010", "2024-01-15"))], [])
    retried = run_job(JOB, *args, "--retry-errors", cwd=tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    rows = outcomes(tmp_path / "out")
    assert rows[next(p for p, e in expected.items() if e == "find_qc_log")]["outcome"] == "logged"
    assert (
        rows[next(p for p, e in expected.items() if e == "read_form_metadata")]["outcome"]
        == "no_qc_log"
    )


def test_a_qc_log_revalidated_as_pass_gets_its_event_on_the_next_run(tmp_path):
    """Needs the engine's fingerprints: a done item whose inputs changed runs again."""
    project, sink = tmp_path / "project", tmp_path / "events"
    forms = [FormSpec("110001", visit("110001", "2024-01-15"))]
    log = "110001_2024-01-15_uds_qc-status.log"
    write_project(project, forms, [QCLogSpec(log, {"form-qc-checker": "FAIL"})])
    args = ["--project", str(project), "--sink", str(sink), "--workers", "1", "--output", "out"]
    first = run_job(JOB, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert not events(sink)

    write_qc_log(
        project, QCLogSpec(log, {"form-qc-checker": "PASS"}, modified="2024-02-01T08:00:00Z")
    )
    second = run_job(JOB, *args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert count(second.stdout, "done now") == 1
    (key,) = events(sink)
    assert key == "prod/log-pass-qc-20240201-080000-42-ingest-form-110001-2024-01-15.json"

    before = stamps(sink)
    third = run_job(JOB, *args, cwd=tmp_path)
    assert count(third.stdout, "done now") == 0
    assert stamps(sink) == before


def test_a_new_sink_is_a_parameter_change_not_a_silent_skip(tmp_path):
    demo = make_demo(tmp_path / "project")
    first_sink, second_sink = tmp_path / "a", tmp_path / "b"
    args = ["--project", str(demo.root), "--workers", "1", "--output", "out"]
    first = run_job(JOB, *args, "--sink", str(first_sink), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr

    moved = run_job(JOB, *args, "--sink", str(second_sink), "--environment", "dev", cwd=tmp_path)
    assert moved.returncode == 2, "no terminal to ask at: the change stops the run"
    assert "sink:" in moved.stdout and str(second_sink) in moved.stdout
    assert "environment:" in moved.stdout
    assert not second_sink.exists()

    recomputed = run_job(
        JOB,
        *args,
        "--sink",
        str(second_sink),
        "--environment",
        "dev",
        "--on-config-change",
        "recompute",
        cwd=tmp_path,
    )
    assert recomputed.returncode == 0, recomputed.stdout + recomputed.stderr
    assert {k.replace("prod/", "dev/") for k in events(first_sink)} == set(events(second_sink))


def test_no_sink_says_logging_is_off_and_exits_0(tmp_path):
    demo = make_demo(tmp_path / "project")
    result = run_job(JOB, "--project", str(demo.root), "--output", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "event logging is off" in result.stdout
    assert not (tmp_path / "out").exists()
    missing = run_job(JOB, "--sink", "ev", "--output", "out", cwd=tmp_path)
    assert missing.returncode == 2 and "--project" in missing.stderr
