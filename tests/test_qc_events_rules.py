"""The predecessor's rules on named examples: QC-log names, QC status, VisitMetadata's names."""

from __future__ import annotations

import pytest

from nmbatch.qc_events.models import VisitMetadata
from nmbatch.qc_events.rules import overall_status, qc_log_name


@pytest.mark.parametrize(
    ("forms_json", "name"),
    [
        ({"ptid": "110001", "visitdate": "2024-01-15", "module": "UDS"}, "110001_2024-01-15_uds"),
        ({"ptid": "  0012 ", "visitdate": "2024-01-15", "module": "FTLD"}, "12_2024-01-15_ftld"),
        ({"ptid": 110001, "visitdate": "01/15/2024", "module": "lbd"}, "110001_2024-01-15_lbd"),
        ({"ptid": "110001", "visitdate": "2024/01/15", "module": "UDS"}, "110001_2024-01-15_uds"),
        ({"ptid": "000", "visitdate": "2024-01-15", "module": "UDS"}, None),
        ({"ptid": "   ", "visitdate": "2024-01-15", "module": "UDS"}, None),
        ({"ptid": "110001", "visitdate": "2024-13-01", "module": "UDS"}, None),
        ({"ptid": "110001", "visitdate": "yesterday", "module": "UDS"}, None),
        ({"ptid": "110001", "module": "UDS"}, None),
        ({"ptid": "110001", "visitdate": "2024-01-15"}, None),
    ],
)
def test_qc_log_name_template(forms_json, name):
    assert qc_log_name(forms_json) == (f"{name}_qc-status.log" if name else None)


@pytest.mark.parametrize(
    ("qc", "status"),
    [
        ({"a": {"validation": {"state": "PASS"}}, "b": {"validation": {"state": "PASS"}}}, "PASS"),
        ({"a": {"validation": {"state": "PASS"}}, "b": {"validation": {"state": "FAIL"}}}, "FAIL"),
        (
            {"a": {"validation": {"state": "IN REVIEW"}}, "b": {"validation": {"state": "FAIL"}}},
            "FAIL",
        ),
        ({"a": {"validation": {"state": "IN REVIEW"}}, "b": {"validation": {}}}, "IN REVIEW"),
        ({"a": {"validation": {"state": "PASS"}}, "b": {}}, None),
        ({}, None),
        (None, None),
        ("PASS", None),
    ],
)
def test_overall_status(qc, status):
    assert overall_status(qc).status == status


def test_visit_metadata_names_without_key_errors():
    full = VisitMetadata(ptid="1", visitnum="01", date="2024-01-15", module="UDS", packet="I")
    assert full.model_dump(exclude_none=True) == {
        "ptid": "1",
        "visit_number": "01",
        "visit_date": "2024-01-15",
        "module": "UDS",
        "packet": "I",
    }
    assert full.model_dump(mode="raw", exclude_none=True)["date"] == "2024-01-15"
    bare = VisitMetadata(ptid="1")
    assert bare.model_dump(exclude_none=True) == {"ptid": "1"}
    assert bare.model_dump()["visit_date"] is None and bare.model_dump()["visit_number"] is None
    assert bare.missing_for_event() == ["date", "module"]
