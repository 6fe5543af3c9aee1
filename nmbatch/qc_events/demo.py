"""Write exported Flywheel project trees: the demo, the tests' trees, the benchmark's tree.

Every file is written with its ``<name>.flywheel.json`` sidecar (``name``,
``modified``, ``info``) unless a spec asks for a missing or malformed one, in the
layout :mod:`nmbatch.qc_events.project` reads. :func:`make_demo` plants one form
file per outcome and returns the outcome each must get.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nmbatch.qc_events.project import SIDECAR_SUFFIX

Sidecar = Literal["ok", "missing", "malformed"]
DEMO_VERSION = 1  # bump when the demo's content changes, so a stale demo is rebuilt
GEARS = ("form-qc-coordinator", "form-qc-checker")
MODIFIED = "2024-01-15T10:20:00Z"


@dataclass
class FormSpec:
    """One acquisition-level JSON form file; ``forms_json`` None: a sidecar without it."""

    subject: str
    forms_json: Mapping[str, Any] | None
    session: str = "FORMS"
    acquisition: str = "UDS"
    file_name: str = ""
    sidecar: Sidecar = "ok"
    modified: str = MODIFIED

    def path(self) -> str:
        name = self.file_name or f"{self.subject}_{self.acquisition}.json"
        return (
            f"subjects/{self.subject}/sessions/{self.session}/acquisitions/{self.acquisition}"
            f"/files/{name}"
        )


@dataclass
class QCLogSpec:
    """One project-level QC status log: gear states (None: no ``qc`` block), visit block."""

    name: str
    gears: Mapping[str, str] | None
    visit: Mapping[str, Any] | None = None
    modified: str | None = MODIFIED
    sidecar: Sidecar = "ok"

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.gears is not None:
            info["qc"] = {g: {"validation": {"state": s}} for g, s in self.gears.items()}
        if self.visit is not None:
            info["visit"] = dict(self.visit)
        return info


def write_entry(
    path: Path, content: bytes, name: str, modified: str | None, info: Any, sidecar: Sidecar
) -> None:
    """A file and (unless ``sidecar`` says otherwise) its metadata sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if sidecar == "malformed":
        side.write_text('{"name": "' + name + '", "info": {"forms": ')
    elif sidecar == "ok":
        entry = {"name": name, "info": info}
        if modified is not None:
            entry["modified"] = modified
        side.write_text(json.dumps(entry))


def write_project_json(
    root: Path, label: str = "ingest-form", group: str = "alpha", adcid: int = 42
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    info = {"label": label, "group": group, "info": {"pipeline_adcid": adcid}}
    (root / "project.json").write_text(json.dumps(info))


def write_form(root: Path, spec: FormSpec) -> str:
    """Write a form file; returns its path in the project (the job's item id)."""
    relative = spec.path()
    info = {} if spec.forms_json is None else {"forms": {"json": dict(spec.forms_json)}}
    body = json.dumps(dict(spec.forms_json or {})).encode()
    write_entry(root / relative, body, Path(relative).name, spec.modified, info, spec.sidecar)
    return relative


def write_qc_log(root: Path, spec: QCLogSpec) -> None:
    body = f"QC status log {spec.name}\n".encode()
    path = root / "files" / spec.name
    write_entry(path, body, spec.name, spec.modified, spec.info(), spec.sidecar)


def write_project(
    root: Path, forms: list[FormSpec], qc_logs: list[QCLogSpec], **project: Any
) -> list[str]:
    """A whole project tree; returns the form files' paths in order."""
    write_project_json(root, **project)
    for log in qc_logs:
        write_qc_log(root, log)
    return [write_form(root, spec) for spec in forms]


def visit(ptid: str, date: str, module: str = "UDS", visitnum: str = "01", packet: str = "I"):
    """A form file's ``forms.json``."""
    return {
        "ptid": ptid,
        "visitnum": visitnum,
        "visitdate": date,
        "module": module,
        "packet": packet,
    }


@dataclass
class DemoProject:
    """A written demo project and the outcome each of its form files must get."""

    root: Path
    expected: dict[str, str] = field(default_factory=dict)


def make_demo(root: Path) -> DemoProject:
    """One or two form files per outcome, a project-level CSV upload and an acquisition CSV."""
    passed = dict.fromkeys(GEARS, "PASS")
    cases: list[tuple[str, FormSpec, QCLogSpec | None]] = [
        (
            "logged",
            FormSpec("110001", visit("110001", "2024-01-15")),
            QCLogSpec(
                "110001_2024-01-15_uds_qc-status.log",
                passed,
                visit={
                    "ptid": "110001",
                    "visitnum": "01",
                    "date": "2024-01-15",
                    "module": "UDS",
                    "packet": "I",
                },
            ),
        ),
        (
            "logged",
            FormSpec("110002", visit("110002", "2024-02-01", "FTLD"), acquisition="FTLD"),
            QCLogSpec("110002_2024-02-01_ftld_qc-status.log", passed),
        ),
        (
            "logged",
            FormSpec("0110003", visit(" 0110003", "03/05/2024")),
            QCLogSpec("110003_2024-03-05_uds_qc-status.log", passed),
        ),
        (
            "not_passed",
            FormSpec("110004", visit("110004", "2024-04-01")),
            QCLogSpec("110004_2024-04-01_uds_qc-status.log", {**passed, GEARS[1]: "FAIL"}),
        ),
        (
            "not_passed",
            FormSpec("110005", visit("110005", "2024-05-01")),
            QCLogSpec("110005_2024-05-01_uds_qc-status.log", {**passed, GEARS[1]: "IN REVIEW"}),
        ),
        (
            "not_passed",
            FormSpec("110006", visit("110006", "2024-06-01")),
            QCLogSpec("110006_2024-06-01_uds_qc-status.log", {}),
        ),
        ("no_qc_log", FormSpec("110007", visit("110007", "2024-07-01")), None),
        ("invalid_metadata", FormSpec("110008", visit("110008", "2024-13-45")), None),
        (
            "invalid_metadata",
            FormSpec("110009", visit("110009", "2024-09-01")),
            QCLogSpec(
                "110009_2024-09-01_uds_qc-status.log",
                passed,
                visit={"ptid": "110009", "date": "2024-09-01"},
            ),
        ),
        ("no_form_metadata", FormSpec("110010", None), None),
        (
            "no_form_metadata",
            FormSpec("110011", visit("110011", "2024-11-01"), sidecar="missing"),
            None,
        ),
    ]
    logs = [log for _, _, log in cases if log is not None]
    logs.append(QCLogSpec("110001_2024-01-15_uds_csv_qc-status.log", passed))
    paths = write_project(root, [spec for _, spec, _ in cases], logs)
    write_entry(
        root / "files" / "uploads_2024-01.csv",
        b"ptid,visitdate\n110001,2024-01-15\n",
        "uploads_2024-01.csv",
        MODIFIED,
        {},
        "ok",
    )
    acquisition_csv = root / Path(paths[0]).parent / "110001_UDS.csv"
    write_entry(acquisition_csv, b"ptid\n110001\n", acquisition_csv.name, MODIFIED, {}, "ok")
    return DemoProject(
        root, {path: outcome for path, (outcome, _, _) in zip(paths, cases, strict=True)}
    )


def ensure_demo(root: Path) -> DemoProject:
    """The demo project under ``root``, written once (``demo.json`` last: present = complete)."""
    marker = root / "demo.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("version") == DEMO_VERSION:
            return DemoProject(root, saved["expected"])
    demo = make_demo(root)
    marker.write_text(json.dumps({"version": DEMO_VERSION, "expected": demo.expected}))
    return demo


def write_bench_project(root: Path, n_forms: int, pass_fraction: float = 0.8) -> None:
    """``n_forms`` form files, one acquisition each, most with a PASS log and the rest FAIL."""
    write_project_json(root)
    (root / "files").mkdir(parents=True, exist_ok=True)
    n_pass = int(n_forms * pass_fraction)
    for i in range(n_forms):
        ptid, date = f"{100000 + i}", f"{2020 + i % 5}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        log = QCLogSpec(
            f"{ptid}_{date}_uds_qc-status.log", {GEARS[0]: "PASS" if i < n_pass else "FAIL"}
        )
        write_qc_log(root, log)
        spec = FormSpec(ptid, visit(ptid, date), session=f"S{i % 3}")
        write_form(root, spec)
