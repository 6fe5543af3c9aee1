"""The predecessor's rules as pure functions: QC-log names, QC status, visit metadata, events.

Nothing here reads a file or writes an event; :mod:`nmbatch.qc_events.job` calls
these in the predecessor's order, and the tree reader uses :func:`qc_log_name` to know
which QC log a form file depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from nmbatch.qc_events.models import PASS_QC, VisitEvent, VisitMetadata, parse_visit_date

QC_LOG_SUFFIX = "_qc-status.log"
PASS, FAIL, IN_REVIEW = "PASS", "FAIL", "IN REVIEW"
MetadataSource = Literal["qc_log", "form"]


def _ptid_for_name(forms_json: Mapping[str, Any]) -> str:
    ptid = forms_json.get("ptid")
    return str(ptid).strip().lstrip("0") if isinstance(ptid, str | int) else ""


def _module_for_name(forms_json: Mapping[str, Any]) -> str:
    module = forms_json.get("module")
    return module.strip().lower() if isinstance(module, str) else ""


def qc_log_name(forms_json: Mapping[str, Any]) -> str | None:
    """``{ptid}_{YYYY-MM-DD}_{module}_qc-status.log`` from a form file's ``forms.json``.

    The ptid loses surrounding spaces and leading zeros; None when it is then empty,
    when the visit date is missing or unparseable, or when there is no module.
    """
    ptid, module = _ptid_for_name(forms_json), _module_for_name(forms_json)
    visit_date = parse_visit_date(forms_json.get("visitdate"))
    if not ptid or not module or visit_date is None:
        return None
    return f"{ptid}_{visit_date.isoformat()}_{module}{QC_LOG_SUFFIX}"


def qc_log_name_problem(forms_json: Mapping[str, Any]) -> str:
    """Why :func:`qc_log_name` gave no name, in words."""
    problems = []
    if not _ptid_for_name(forms_json):
        problems.append(f"ptid {forms_json.get('ptid')!r} is empty without spaces/leading zeros")
    if parse_visit_date(forms_json.get("visitdate")) is None:
        problems.append(f"visitdate {forms_json.get('visitdate')!r} is missing or unparseable")
    if not _module_for_name(forms_json):
        problems.append(f"module {forms_json.get('module')!r} is missing")
    return "no QC log name: " + "; ".join(problems)


@dataclass(frozen=True)
class QCStatus:
    """A QC log's overall status (None: not known to have passed) and each gear's state."""

    status: str | None
    gears: dict[str, str]
    problem: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def gears_text(self) -> str:
        return ", ".join(f"{gear}:{state}" for gear, state in sorted(self.gears.items()))


def overall_status(qc: Any) -> QCStatus:
    """FAIL if any gear failed, else IN REVIEW if any is in review, else PASS.

    A missing or empty ``qc`` block is not a PASS, and neither is a gear whose
    ``validation.state`` is missing or not one of PASS / FAIL / IN REVIEW: only
    a log on which every gear says PASS passes.
    """
    if not isinstance(qc, Mapping) or not qc:
        return QCStatus(
            None, {}, "no QC results in the QC log's metadata (qc block missing or empty)"
        )
    gears: dict[str, str] = {}
    for gear, block in qc.items():
        validation = block.get("validation") if isinstance(block, Mapping) else None
        state = validation.get("state") if isinstance(validation, Mapping) else None
        gears[str(gear)] = str(state).strip().upper() if state is not None else ""
    states = set(gears.values())
    if FAIL in states:
        return QCStatus(FAIL, gears)
    if IN_REVIEW in states:
        return QCStatus(IN_REVIEW, gears)
    unknown = sorted(gear for gear, state in gears.items() if state != PASS)
    if unknown:
        return QCStatus(None, gears, f"no recognised validation state for gear(s) {unknown}")
    return QCStatus(PASS, gears)


@dataclass(frozen=True)
class ChosenMetadata:
    """The visit metadata an event is made from, where it came from, and what is wrong with it."""

    metadata: VisitMetadata | None
    source: MetadataSource | None
    problem: str = ""


def choose_visit_metadata(qc_log_info: Mapping[str, Any], forms_json: Any) -> ChosenMetadata:
    """The QC log's ``visit`` block when it is there and well-formed, else the form's metadata.

    The chosen metadata must have ptid, date and module; otherwise ``problem`` says
    what is missing (the visit gets no event).
    """
    visit = qc_log_info.get("visit")
    if isinstance(visit, Mapping) and visit:
        try:
            return _complete(VisitMetadata.model_validate(visit), "qc_log")
        except ValidationError:
            pass  # not usable: the form's own metadata is the fallback
    if not isinstance(forms_json, Mapping) or not forms_json:
        return ChosenMetadata(None, None, "no visit metadata in the QC log or the form file")
    try:
        return _complete(VisitMetadata.from_form(forms_json), "form")
    except ValidationError as exc:
        return ChosenMetadata(None, "form", f"form metadata: {_errors_text(exc)}")


def _complete(metadata: VisitMetadata, source: MetadataSource) -> ChosenMetadata:
    missing = metadata.missing_for_event()
    if missing:
        where = "the QC log's visit block" if source == "qc_log" else "the form's metadata"
        return ChosenMetadata(metadata, source, f"{where} lacks {', '.join(missing)}")
    return ChosenMetadata(metadata, source)


def _errors_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors()
    )


@dataclass(frozen=True)
class EventContext:
    """What an event takes from outside the visit: the project, the gear, the QC time."""

    pipeline_adcid: int
    project_label: str
    center_label: str
    gear_name: str
    timestamp: datetime


def build_pass_qc_event(metadata: VisitMetadata, context: EventContext) -> VisitEvent:
    """The "pass-qc" event of a visit; ValueError (with pydantic's reasons) if it is not valid."""
    fields = metadata.model_dump(exclude_none=True, exclude={"adcid", "naccid"})
    visit_date = parse_visit_date(metadata.date)
    if visit_date is None:
        raise ValueError(f"visit date {metadata.date!r} is not a date")
    fields["visit_date"] = visit_date.isoformat()
    try:
        return VisitEvent(
            action=PASS_QC,
            pipeline_adcid=context.pipeline_adcid,
            project_label=context.project_label,
            center_label=context.center_label,
            gear_name=context.gear_name,
            datatype="form",
            timestamp=context.timestamp,
            **fields,
        )
    except ValidationError as exc:
        raise ValueError(_errors_text(exc)) from None
