"""The predecessor's correctness properties, one hypothesis test each, on generated project trees.

Each example writes a real project tree (the job's own generator) and runs the
job's listing and per-item function in this process, through the engine's
worker function, with a real folder sink.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmbatch.engine.cli import run as run_cli
from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.outcome import Stamp
from nmbatch.engine.worker import TaskSpec, run_one
from nmbatch.qc_events.demo import (
    FormSpec,
    QCLogSpec,
    visit,
    write_entry,
    write_form,
    write_project,
    write_project_json,
    write_qc_log,
)
from nmbatch.qc_events.job import QCEventsJob
from nmbatch.qc_events.models import VisitEvent, VisitMetadata
from nmbatch.qc_events.rules import EventContext, build_pass_qc_event, qc_log_name

EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATES = st.sampled_from(["PASS", "FAIL", "IN REVIEW", "pass", "", "passed", None])
GEAR_NAMES = st.sampled_from(["form-qc-checker", "form-qc-coordinator", "form-transformer"])
PTIDS = st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True)
DATES = st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2030, 12, 31).date())
MODULES = st.sampled_from(["UDS", "FTLD", "LBD", "MDS"])
NOTES_BODY = (
    '{"action":"pass-qc","study":"adrc","pipeline_adcid":42,"project_label":"ingest-form",'
    '"center_label":"alpha","gear_name":"form-scheduler","ptid":"110001","visit_date":"2024-01-15",'
    '"visit_number":"01","datatype":"form","module":"UDS","packet":"I",'
    '"timestamp":"2024-01-15T10:20:00Z"}'
)
NOTES_KEY = "prod/log-pass-qc-20240115-102000-42-ingest-form-110001-2024-01-15.json"


@contextmanager
def tree() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="qc-events-") as folder:
        yield Path(folder)


def run_as_worker(job: QCEventsJob, item, params: dict) -> dict[str, Any]:
    """Run one item as a worker does; its record's fields and its tables, as a dict."""
    spec = TaskSpec(
        job,
        params,
        job.table_schemas(params),
        job.id_column,
        job.label_column,
        Stamp.of(params, {}),
        "",
    )
    record, tables, _ = run_one(spec, item, 1, "test")
    outcome = {
        "status": record.status,
        "stage": record.stage,
        "error_type": record.error_type,
        "error_message": record.error_message,
        "tables": tables,
    }
    if record.status == "done":
        outcome["row"] = tables["outcomes"].to_pylist()[0]
    return outcome


def run_tree(root: Path, sink: Path) -> dict[str, dict[str, Any]]:
    """List the project and run every item as a worker would: item id -> outcome."""
    job = QCEventsJob(root / "project")
    params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(sink))}"])
    job.validate_params(params)
    return {item.id: run_as_worker(job, item, params) for item in job.list_items(params).items}


def written_events(sink: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(sink)): json.loads(p.read_text())
        for p in sink.rglob("*.json")
        if not p.name.startswith(".")
    }


def one_visit_project(root: Path, forms_json: dict | None, log: QCLogSpec | None) -> str:
    """A project with one form file (and its QC log, if any); returns the form's path."""
    logs = [] if log is None else [log]
    return write_project(root / "project", [FormSpec("110001", forms_json)], logs)[0]


def log_for(forms_json: dict, gears: dict | None, **kwargs: Any) -> QCLogSpec:
    return QCLogSpec(qc_log_name(forms_json), gears, **kwargs)


@EXAMPLES
@given(
    gears=st.none() | st.dictionaries(GEAR_NAMES, STATES, max_size=3),
    ptid=PTIDS,
    date=DATES,
)
def test_pass_qc_events_only(gears, ptid, date):
    """Property 1 (and 3): an event only when every gear says PASS, and only "pass-qc"."""
    forms_json = visit(ptid, date.isoformat())
    with tree() as root:
        path = one_visit_project(root, forms_json, log_for(forms_json, gears))
        outcome = run_tree(root, root / "sink")[path]
        events = written_events(root / "sink")
    all_pass = bool(gears) and all(
        s is not None and s.strip().upper() == "PASS" for s in gears.values()
    )
    assert outcome["status"] == "done"
    assert outcome["row"]["outcome"] == ("logged" if all_pass else "not_passed")
    assert len(events) == (1 if all_pass else 0)
    assert all(e["action"] == "pass-qc" for e in events.values())
    if gears and any(s == "FAIL" for s in gears.values()):
        assert outcome["row"]["qc_status"] == "FAIL"


FILE_KINDS = st.sampled_from(["form.json", "upload.csv", "notes.txt", "FORM2.JSON", "scan.dcm"])


@EXAMPLES
@given(
    acquisition_files=st.lists(st.tuples(st.integers(0, 2), FILE_KINDS), max_size=8),
    project_files=st.lists(FILE_KINDS, max_size=4),
    with_sidecars=st.booleans(),
)
def test_only_acquisition_level_json_files_are_items(
    acquisition_files, project_files, with_sidecars
):
    """Property 2: the items are the acquisition-level JSON files, never CSV or project files."""
    sidecar = "ok" if with_sidecars else "missing"
    with tree() as root:
        project = root / "project"
        write_project_json(project)
        expected = set()
        for subject, kind in acquisition_files:
            path = f"subjects/S{subject}/sessions/V1/acquisitions/A/files/{subject}-{kind}"
            write_entry(project / path, b"{}", Path(path).name, "2024-01-01T00:00:00Z", {}, sidecar)
            if kind.lower().endswith(".json"):
                expected.add(path)
        for kind in project_files:
            write_entry(project / "files" / f"p-{kind}", b"{}", kind, None, {}, sidecar)
        job = QCEventsJob(project)
        params = get_analysis_config("qc_events", sets=["sink=/nowhere"])
        items = job.list_items(params).items
    assert {i.id for i in items} == expected
    assert all(i.label == i.id.split("/")[1] for i in items)


VISIT_BLOCKS = st.none() | st.fixed_dictionaries(
    {"ptid": PTIDS, "date": DATES.map(str), "module": MODULES},
    optional={"visitnum": st.sampled_from(["01", "02"]), "packet": st.sampled_from(["I", "F"])},
)


@EXAMPLES
@given(block=VISIT_BLOCKS, broken_block=st.booleans(), form_packet=st.sampled_from(["I", "F"]))
def test_visit_metadata_priority(block, broken_block, form_packet):
    """Property 4: the QC log's visit block first; the form's metadata when there is none."""
    forms_json = visit("110001", "2024-01-15", packet=form_packet)
    visit_block = {"ptid": ["not", "text"]} if broken_block else block
    with tree() as root:
        path = one_visit_project(
            root, forms_json, log_for(forms_json, {"g": "PASS"}, visit=visit_block)
        )
        row = run_tree(root, root / "sink")[path]["row"]
        (event,) = written_events(root / "sink").values()
    if visit_block and not broken_block:
        assert row["metadata_source"] == "qc_log"
        assert (event["ptid"], event["visit_date"], event["module"]) == (
            block["ptid"],
            block["date"],
            block["module"],
        )
        assert event.get("packet") == block.get("packet")
        assert event.get("visit_number") == block.get("visitnum")
    else:
        assert row["metadata_source"] == "form"
        assert (event["ptid"], event["visit_date"], event["packet"]) == (
            "110001",
            "2024-01-15",
            form_packet,
        )


BLANKS = st.sampled_from([None, "", "   "])


@EXAMPLES
@given(
    ptid=PTIDS | BLANKS,
    date=DATES.map(str) | BLANKS | st.just("2024-02-30"),
    module=MODULES | BLANKS,
    visitnum=st.none() | st.just("02"),
)
def test_visit_metadata_is_validated(ptid, date, module, visitnum):
    """Property 6: an event only with ptid, date and module; otherwise invalid_metadata, no event.

    The metadata comes from the QC log's visit block (the log is found by the form's
    metadata), so every combination, visitnum and date absent included, reaches validation.
    """
    forms_json = visit("110001", "2024-01-15")
    block = {"ptid": ptid, "date": date, "module": module, "visitnum": visitnum}
    with tree() as root:
        path = one_visit_project(root, forms_json, log_for(forms_json, {"g": "PASS"}, visit=block))
        outcome = run_tree(root, root / "sink")[path]
        events = written_events(root / "sink")
    complete = all(v and v.strip() for v in (ptid, module)) and date and date.strip()
    valid = bool(complete) and date != "2024-02-30"
    assert outcome["status"] == "done", outcome.get("error_message")
    assert outcome["row"]["outcome"] == ("logged" if valid else "invalid_metadata")
    assert len(events) == int(valid)
    if not valid:
        assert outcome["row"]["detail"]


DEFECTS = st.sampled_from(
    [
        "none",
        "form_sidecar_missing",
        "form_sidecar_malformed",
        "log_sidecar_missing",
        "log_sidecar_malformed",
        "log_missing",
        "log_modified_missing",
        "form_deleted",
    ]
)


@EXAMPLES
@given(defects=st.lists(DEFECTS, min_size=1, max_size=5), sink_broken=st.booleans())
def test_errors_never_stop_the_others(defects, sink_broken):
    """Property 7: each bad input or refused write is that item's own outcome; the rest go on."""
    with tree() as root:
        project = root / "project"
        forms, logs = [], []
        for i, defect in enumerate(defects):
            forms_json = visit(str(110001 + i), "2024-01-15")
            sidecar = {"form_sidecar_missing": "missing", "form_sidecar_malformed": "malformed"}
            forms.append(FormSpec(str(110001 + i), forms_json, sidecar=sidecar.get(defect, "ok")))
            if defect != "log_missing":
                logs.append(
                    log_for(
                        forms_json,
                        {"g": "PASS"},
                        sidecar={
                            "log_sidecar_missing": "missing",
                            "log_sidecar_malformed": "malformed",
                        }.get(defect, "ok"),
                        modified=None
                        if defect == "log_modified_missing"
                        else "2024-01-15T10:20:00Z",
                    )
                )
        paths = write_project(project, forms, logs)
        sink = root / "sink"
        if sink_broken:  # a file where the environment folder must go: every write fails
            sink.mkdir()
            (sink / "prod").write_text("not a folder")
        job = QCEventsJob(project)
        params = get_analysis_config("qc_events", sets=[f"sink={json.dumps(str(sink))}"])
        listing = job.list_items(params)
        for path, defect in zip(paths, defects, strict=True):
            if defect == "form_deleted":
                (project / path).unlink()
        outcomes = {i.id: run_as_worker(job, i, params) for i in listing.items}
    expected_failure = {
        "form_sidecar_malformed": "read_form_metadata",
        "log_sidecar_malformed": "find_qc_log",
        "log_modified_missing": "build_event",
        "form_deleted": "read_form_metadata",
        "none": "write_event" if sink_broken else None,
    }
    expected_outcome = {
        "form_sidecar_missing": "no_form_metadata",
        "log_sidecar_missing": "not_passed",
        "log_missing": "no_qc_log",
        "none": "logged",
    }
    assert set(outcomes) == set(paths)
    for path, defect in zip(paths, defects, strict=True):
        outcome = outcomes[path]
        stage = expected_failure.get(defect)
        if stage:
            assert outcome["status"] == "failed", (defect, outcome)
            assert outcome["stage"] == stage
            assert outcome["error_message"]
            if stage == "write_event":
                assert outcome["error_type"] == "SinkError", outcome["error_message"]
                assert "not a folder" in outcome["error_message"]
            if defect in ("form_sidecar_malformed", "log_sidecar_malformed"):
                assert "not valid JSON" in outcome["error_message"]
                assert ".flywheel.json" in outcome["error_message"]
        else:
            assert outcome["status"] == "done", (defect, outcome)
            assert (
                outcome["tables"]["outcomes"].to_pylist()[0]["outcome"] == expected_outcome[defect]
            )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    project_exists=st.booleans(),
    sink_given_empty=st.sampled_from([[], ["--sink", ""], ["--set", 'sink=""']]),
    environment=st.sampled_from([[], ["--environment", "dev"]]),
    extra=st.sampled_from([[], ["--workers", "2"], ["--limit", "1"], ["--retry-errors"]]),
)
def test_no_sink_means_event_logging_is_off(
    project_exists, sink_given_empty, environment, extra, capsys
):
    """Property 8: with no sink, the job says logging is off, exits 0 and touches nothing."""
    with tree() as root:
        project = root / "project"
        if project_exists:
            write_project(project, [FormSpec("110001", visit("110001", "2024-01-15"))], [])
        before = sorted(root.rglob("*"))
        argv = ["--project", str(project), "--output", str(root / "out")]
        code = run_cli(QCEventsJob, [*argv, *sink_given_empty, *environment, *extra])
        printed = capsys.readouterr().out
        after = sorted(root.rglob("*"))
    assert code == 0
    assert "event logging is off" in printed
    assert before == after, "nothing was written: no cache, no events"


def test_event_matches_the_notes_example():
    """Property 10: the consumers' example visit gives their example body and key, byte for byte."""
    metadata = VisitMetadata.from_form(visit("110001", "2024-01-15"))
    context = EventContext(
        42, "ingest-form", "alpha", "form-scheduler", datetime(2024, 1, 15, 10, 20, tzinfo=UTC)
    )
    event = build_pass_qc_event(metadata, context)
    assert event.to_json().decode() == NOTES_BODY
    assert event.key("prod") == NOTES_KEY


KEY = re.compile(
    r"(?P<env>[^/]+)/log-pass-qc-(?P<stamp>\d{8}-\d{6})-(?P<adcid>\d+)-(?P<project>[^/\\]+)"
    r"-(?P<ptid>[!-~]+)-(?P<date>\d{4}-\d{2}-\d{2})\.json"
)


@EXAMPLES
@given(
    ptid=st.from_regex(r"[0-9A-Za-z]{1,10}", fullmatch=True),
    date=DATES,
    module=MODULES,
    visitnum=st.none() | st.just("03"),
    packet=st.none() | st.just("F"),
    adcid=st.integers(0, 999),
    project_label=st.sampled_from(["ingest-form", "ingest/form", "a\\b"]),
    stamp=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_event_structure_is_compatible(
    ptid, date, module, visitnum, packet, adcid, project_label, stamp
):
    """Property 10: the consumers' field names and order, None fields left out, the key."""
    forms_json = {"ptid": ptid, "visitdate": date.isoformat(), "module": module}
    forms_json |= {"visitnum": visitnum} if visitnum else {}
    forms_json |= {"packet": packet} if packet else {}
    context = EventContext(
        adcid, project_label, "alpha", "form-scheduler", stamp.replace(tzinfo=UTC)
    )
    event = build_pass_qc_event(VisitMetadata.from_form(forms_json), context)
    body = json.loads(event.to_json())
    reference = list(json.loads(NOTES_BODY))
    assert list(body) == [k for k in reference if k in body]
    assert set(reference) - set(body) <= {"visit_number", "packet"}
    assert ("visit_number" in body) == bool(visitnum) and ("packet" in body) == bool(packet)
    assert VisitEvent.model_validate(body) == event
    match = KEY.fullmatch(event.key("prod"))
    assert match, event.key("prod")
    assert match["stamp"] == stamp.strftime("%Y%m%d-%H%M%S")
    assert match["project"] == project_label.replace("/", "-").replace("\\", "-")
    assert (match["adcid"], match["ptid"], match["date"]) == (str(adcid), ptid, date.isoformat())
    assert body["timestamp"].startswith(stamp.strftime("%Y-%m-%dT%H:%M:%S"))


CHANGES = st.sampled_from(
    ["nothing", "qc_log_revalidated", "form_metadata", "project", "other_qc_log", "csv_upload"]
)


@EXAMPLES
@given(change=CHANGES, state=st.sampled_from(["PASS", "FAIL"]))
def test_fingerprints_change_with_the_inputs_and_only_then(change, state):
    """Reruns: a form file's fingerprint changes when what its event depends on changes."""
    forms_json = visit("110001", "2024-01-15")
    with tree() as root:
        project = root / "project"
        logs = [log_for(forms_json, {"g": state}), QCLogSpec("9_2024-01-01_uds_qc-status.log", {})]
        write_project(project, [FormSpec("110001", forms_json)], logs)
        job = QCEventsJob(project)
        params = get_analysis_config("qc_events", sets=["sink=/nowhere"])
        (before,) = job.list_items(params).items
        if change == "qc_log_revalidated":
            flipped = {"PASS": "FAIL", "FAIL": "PASS"}[state]
            write_qc_log(
                project, log_for(forms_json, {"g": flipped}, modified="2024-02-01T00:00:00Z")
            )
        elif change == "form_metadata":
            write_form(project, FormSpec("110001", {**forms_json, "packet": "F"}))
        elif change == "project":
            write_project_json(project, adcid=43)
        elif change == "other_qc_log":
            write_qc_log(project, QCLogSpec("9_2024-01-01_uds_qc-status.log", {"g": "PASS"}))
        elif change == "csv_upload":
            write_entry(project / "files/upload.csv", b"a\n", "upload.csv", None, {}, "ok")
        (after,) = job.list_items(params).items
    relevant = change in ("qc_log_revalidated", "form_metadata", "project")
    assert (before.fingerprint != after.fingerprint) == relevant
    assert before.id == after.id
