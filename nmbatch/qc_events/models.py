"""The visit event and the visit metadata it is made from (pydantic models).

The event's fields, their order and the object key follow the event consumers'
convention (the form-scheduler gear's), so that a consumer cannot tell these
events from the ones the form-scheduler gear wrote before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

EventAction = Literal["submit", "delete", "not-pass-qc", "pass-qc"]
PASS_QC: EventAction = "pass-qc"
RAW = "raw"  # model_dump(mode=RAW): VisitMetadata's own field names (date, visitnum)

# Visit dates as forms and QC logs write them; the first that parses wins.
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_visit_date(value: Any) -> date | None:
    """A visit date from form or QC-log metadata, or None when it is absent or unparseable."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if ISO_DATE.fullmatch(text):  # the usual form, without strptime's cost
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:  # an ISO date-time ("2024-01-15T00:00:00"): its date
        return datetime.fromisoformat(text).date() if "T" in text else None
    except ValueError:
        return None


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time (a Flywheel ``modified`` stamp) in UTC; naive times are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class VisitKeys(BaseModel):
    """What identifies a visit; every field is optional, as upstream metadata may lack any."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    adcid: int | None = None
    ptid: str | None = None
    visitnum: str | None = None
    module: str | None = None
    date: str | None = None
    naccid: str | None = None


class VisitMetadata(VisitKeys):
    """Visit keys plus the form packet: everything a visit event needs from the visit.

    Serialised for event creation, ``date`` becomes ``visit_date`` and ``visitnum``
    ``visit_number``; ``model_dump(mode="raw")`` keeps the own names (how QC logs
    are annotated upstream). Absent fields are simply absent, never a KeyError.
    """

    packet: str | None = None

    @model_serializer(mode="wrap")
    def _to_visit_event_fields(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data = handler(self)
        if info.mode == RAW:
            return data
        for own, event_name in (("date", "visit_date"), ("visitnum", "visit_number")):
            if own in data:
                data[event_name] = data.pop(own)
        return data

    @classmethod
    def from_form(cls, forms_json: Mapping[str, Any]) -> VisitMetadata:
        """From a JSON form file's ``forms.json`` metadata, whose date is ``visitdate``."""
        return cls.model_validate({**forms_json, "date": forms_json.get("visitdate")})

    def missing_for_event(self) -> list[str]:
        """The required fields (ptid, date, module) this metadata lacks."""
        return [name for name in ("ptid", "date", "module") if not getattr(self, name)]


class VisitEvent(BaseModel):
    """One visit event, serialised as JSON without the fields that are None."""

    model_config = ConfigDict(extra="forbid")

    action: EventAction
    study: str = "adrc"
    pipeline_adcid: int
    project_label: str
    center_label: str
    gear_name: str
    ptid: str = Field(pattern=r"^[!-~]{1,10}$")
    visit_date: str
    visit_number: str | None = None
    datatype: str
    module: str | None = None
    packet: str | None = None
    timestamp: datetime

    @field_validator("visit_date")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        if not ISO_DATE.fullmatch(value):
            raise ValueError(f"visit_date must be a date as YYYY-MM-DD, not {value!r}")
        date.fromisoformat(value)  # a ValueError for 2024-02-30
        return value

    @model_validator(mode="after")
    def _module_for_forms(self) -> VisitEvent:
        if self.datatype == "form" and not self.module:
            raise ValueError("module is required when datatype is 'form'")
        return self

    def to_json(self) -> bytes:
        """The object body consumers read."""
        return self.model_dump_json(exclude_none=True).encode()

    def key(self, environment: str) -> str:
        """``{environment}/log-{action}-{YYYYMMDD-HHMMSS}-{adcid}-{project}-{ptid}-{date}.json``.

        The same visit, action and second give the same key: a rerun overwrites the
        object with the same event.
        """
        stamp = self.timestamp.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
        project = self.project_label.replace("/", "-").replace("\\", "-")
        return (
            f"{environment}/log-{self.action}-{stamp}-{self.pipeline_adcid}-{project}"
            f"-{self.ptid}-{self.visit_date}.json"
        )
