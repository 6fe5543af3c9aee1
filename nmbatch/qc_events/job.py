"""The ``qc_events`` job: one "pass-qc" visit event per JSON form file whose QC log says PASS.

Per acquisition-level JSON form file, in the predecessor's order: find its QC status log
by the name template; take the log's overall QC status; take the visit metadata
from the log's ``visit`` block, else from the form's own metadata; require ptid,
date and module; build the event; write it to the sink under the key convention,
timestamped with the QC log's ``modified`` time. Each form file gets one row in
the ``outcomes`` table: ``logged``, ``not_passed``, ``no_qc_log``,
``invalid_metadata`` or ``no_form_metadata``, none of which is a failure. A file
that cannot be read, or a write the sink refuses, fails the item at its stage;
the run goes on and ``--retry-errors`` tries again.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from nmbatch.engine.config import get_analysis_config
from nmbatch.engine.errors import ConfigError, NothingToRun, StageError
from nmbatch.engine.job import Item, ItemContext, ItemResult, Job, Listing
from nmbatch.qc_events.models import parse_timestamp
from nmbatch.qc_events.project import FileEntry, ProjectTree
from nmbatch.qc_events.rules import (
    EventContext,
    build_pass_qc_event,
    choose_visit_metadata,
    overall_status,
    qc_log_name,
    qc_log_name_problem,
)
from nmbatch.qc_events.sinks import open_sink

OUTCOMES = ("logged", "not_passed", "no_qc_log", "invalid_metadata", "no_form_metadata")
DEMO_FOLDER = "demo_qc_events"
SINK_OFF = (
    "no event sink configured (--sink DIR or --sink s3://bucket/prefix): "
    "event logging is off; nothing was read or written"
)


@dataclass
class FormOutcome:
    """One row of the ``outcomes`` table: what happened to one JSON form file."""

    file_name: str
    outcome: str = ""
    detail: str = ""
    qc_log: str | None = None
    qc_status: str | None = None
    qc_gears: str | None = None
    metadata_source: str | None = None
    ptid: str | None = None
    visit_date: str | None = None
    module: str | None = None
    event_key: str | None = None
    event_location: str | None = None
    event_timestamp: str | None = None

    def result(self, outcome: str, detail: str = "") -> ItemResult:
        self.outcome, self.detail = outcome, detail
        # Columns of one value each, no type inference: a third of the cost of a row list.
        row = pd.DataFrame({k: [v] for k, v in asdict(self).items()}, dtype=object)
        return ItemResult(tables={"outcomes": row}, flags={"outcome": outcome})


OUTCOME_SCHEMA = pa.schema([(name, pa.string()) for name in FormOutcome.__dataclass_fields__])


@dataclass
class QCEventsListing(Listing):
    """The form files listed, and where this run's events go (for the summary)."""

    destination: str = ""
    environment: str = ""
    project: str = ""


class _TrackedOption(argparse.Action):
    """A flag that sets a tracked parameter: it adds ``--set <param>=<value>``.

    So ``--sink`` and ``--environment`` are recorded in the cache's manifest and a
    changed destination is shown as a parameter diff instead of finding every
    file "done" already.
    """

    def __init__(self, *args: Any, param: str, **kwargs: Any):
        self.param = param
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        if self.param == "sink" and value.strip() and not value.startswith("s3://"):
            value = str(Path(value).expanduser().resolve())
        sets = list(getattr(namespace, "set", None) or [])
        namespace.set = [*sets, f"{self.param}={json.dumps(value)}"]
        setattr(namespace, self.dest, value)


class QCEventsJob(Job):
    """QC-pass visit events for the JSON form files of an exported Flywheel project."""

    name = "qc_events"
    description = (
        "QC-pass visit events for the JSON form files of a Flywheel project, to a folder or S3"
    )
    id_column = "form_file"
    label_column = "subject"
    code_version = "1"
    result_libraries = ("pydantic",)
    worker_preload = ("nmbatch.qc_events.job",)

    def __init__(self, project: Path, default_sink: str = "", s3_endpoint: str | None = None):
        self.project = ProjectTree(project)
        self.default_sink = default_sink
        self.s3_endpoint = s3_endpoint

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--project", type=Path, metavar="DIR", help="the exported project")
        source.add_argument(
            "--demo",
            action="store_true",
            help=f"generate a small project under <output>/{DEMO_FOLDER} and log its events "
            "to a folder there (unless --sink is given)",
        )
        parser.add_argument(
            "--sink",
            action=_TrackedOption,
            param="sink",
            metavar="DEST",
            help="where events go: a folder or s3://bucket/prefix (tracked parameter 'sink'; "
            "without one, event logging is off)",
        )
        parser.add_argument(
            "--environment",
            action=_TrackedOption,
            param="environment",
            metavar="ENV",
            help="first part of every event key (tracked parameter 'environment', default prod)",
        )
        parser.add_argument(
            "--s3-endpoint",
            metavar="URL",
            help="S3 endpoint, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3, "
            "AWS_ENDPOINT_URL or the AWS configuration)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> QCEventsJob:
        """NothingToRun when no sink is configured, before any file is read or written.

        The sink is a tracked parameter, so it is looked up the way the engine
        resolves parameters (YAML, ``--config``, ``--set``, ``--sink``).
        """
        demo = Path(args.output) / DEMO_FOLDER
        default_sink = str(demo / "events") if args.demo else ""
        if not get_analysis_config(cls.name, args.config, args.set)["sink"] and not default_sink:
            raise NothingToRun(SINK_OFF)
        if args.demo:
            from nmbatch.qc_events.demo import ensure_demo

            project = ensure_demo(demo / "project").root
        elif args.project is None:
            raise ConfigError("give the exported Flywheel project with --project DIR (or --demo)")
        else:
            project = args.project
        return cls(project, default_sink, args.s3_endpoint)

    def destination(self, params: Mapping[str, Any]) -> str:
        return params["sink"] or self.default_sink

    def validate_params(self, params: Mapping[str, Any]) -> None:
        if not self.destination(params):
            raise NothingToRun(SINK_OFF)
        open_sink(self.destination(params), self.s3_endpoint)  # ConfigError for a bad one
        parts = str(params["environment"]).split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ConfigError(
                f"environment {params['environment']!r}: must be a key prefix such as 'prod' "
                "(no empty, '.' or '..' parts)"
            )
        if not str(params["gear_name"]).strip():
            raise ConfigError("gear_name must not be empty")

    def table_schemas(self, params: Mapping[str, Any]) -> dict[str, pa.Schema]:
        return {"outcomes": OUTCOME_SCHEMA}

    def list_items(self, params: Mapping[str, Any]) -> QCEventsListing:
        """The acquisition-level JSON form files; CSV and project-level files never are items."""
        self.project.project_info()  # DataSourceError now, not once per item
        items = [
            Item(f.path, label=f.subject, data={"path": f.path}, fingerprint=f.fingerprint)
            for f in self.project.form_files()
        ]
        sink = open_sink(self.destination(params), self.s3_endpoint)
        return QCEventsListing(
            items, sink.describe(), params["environment"], self.project.describe()
        )

    def run_item(self, item: Item, ctx: ItemContext) -> ItemResult:
        row = FormOutcome(file_name=Path(item.data["path"]).name)
        with ctx.stage("read_form_metadata"):
            form = self.project.form_file_entry(item.data["path"])
            forms_json = form.forms_json
            if not form.has_metadata:
                return row.result("no_form_metadata", "the form file has no metadata sidecar")
            if not isinstance(forms_json, Mapping) or not forms_json:
                return row.result("no_form_metadata", "no info.forms.json in its metadata")

        with ctx.stage("find_qc_log"):
            row.qc_log = qc_log_name(forms_json)
            if row.qc_log is None:
                return row.result("invalid_metadata", qc_log_name_problem(forms_json))
            qc_log = self.project.project_file(row.qc_log)
            if qc_log is None:
                return row.result("no_qc_log", f"no project file {row.qc_log}")

        with ctx.stage("qc_status"):
            if not qc_log.has_metadata:
                return row.result("not_passed", "the QC log has no metadata sidecar")
            qc = overall_status(qc_log.info.get("qc"))
            row.qc_status, row.qc_gears = qc.status, qc.gears_text() or None
            if not qc.passed:
                return row.result("not_passed", qc.problem or f"QC {qc.status}: {row.qc_gears}")

        with ctx.stage("visit_metadata"):
            chosen = choose_visit_metadata(qc_log.info, forms_json)
            row.metadata_source = chosen.source
            if chosen.metadata is not None:
                visit = chosen.metadata
                row.ptid, row.visit_date, row.module = visit.ptid, visit.date, visit.module
            if chosen.problem:
                return row.result("invalid_metadata", chosen.problem)

        with ctx.stage("build_event"):
            try:
                event = build_pass_qc_event(chosen.metadata, self._event_context(qc_log, ctx))
            except ValueError as exc:
                return row.result("invalid_metadata", f"not a valid visit event: {exc}")
            row.event_key = event.key(ctx.params["environment"])
            row.visit_date, row.event_timestamp = event.visit_date, event.timestamp.isoformat()

        with ctx.stage("write_event"):  # a SinkError fails the item here, with the sink's words
            sink = open_sink(self.destination(ctx.params), self.s3_endpoint)
            row.event_location = sink.write(row.event_key, event.to_json())
        return row.result("logged")

    def _event_context(self, qc_log: FileEntry, ctx: ItemContext) -> EventContext:
        timestamp = parse_timestamp(qc_log.modified)
        if timestamp is None:
            raise StageError(
                "build_event",
                f"QC log {qc_log.name} has no usable 'modified' time ({qc_log.modified!r}); "
                "the event's timestamp comes from it, never from the clock",
            )
        project = self.project.project_info()
        return EventContext(
            pipeline_adcid=project.pipeline_adcid,
            project_label=project.label,
            center_label=project.group,
            gear_name=ctx.params["gear_name"],
            timestamp=timestamp,
        )

    @classmethod
    def report_sections(cls, cache):
        """Counts by outcome and the files without an event (nmbatch.qc_events.report)."""
        from nmbatch.qc_events import report  # bokeh is for the driver, not the workers

        return report.report_sections(cache)

    def summary_lines(self, cache, listing: QCEventsListing | None) -> list[str]:
        table = cache.get_results("outcomes")
        if not len(table):
            return []
        counts = table["outcome"].value_counts()
        lines = [
            "form files by outcome: " + ", ".join(f"{o} {int(counts.get(o, 0))}" for o in OUTCOMES)
        ]
        if listing is not None:
            lines.append(
                f"pass-qc events of {listing.project} go to {listing.destination}, "
                f"under {listing.environment}/"
            )
        return lines
