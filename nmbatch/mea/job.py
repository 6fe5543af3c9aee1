"""The ``mea`` job: retina CMOS-MEA recordings (CMCR/CMTR) to one HDF5 file per recording.

Items are the rows of a mapping CSV (``cmcr_path, cmtr_path, matched``) whose
``matched`` is true; the item id is the recording name (the CMCR's file name
without extension). Rows that are not processed are counted and reported in the
summary, never failed: unmatched rows, rows missing a path, and repeats of a
recording already listed (the first row wins). Output files go directly in the
output folder as ``<recording>.h5`` (the engine's cache for the job is
``<output>/mea/``); a recording whose file already holds every requested step
with the current parameters is complete and skipped, unless ``--overwrite``.
The lab sheet's export (step 8) and the label folder (step 9) default to
``gsheet_table.csv`` (or ``.xlsx``) and ``labels/`` next to the mapping CSV.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pandas as pd
import pyarrow as pa

from nmbatch.engine.errors import ConfigError, DataSourceError
from nmbatch.engine.job import Item, ItemContext, ItemResult, Job, Listing
from nmbatch.mea import output
from nmbatch.mea.axon.run_settings import ApSettings
from nmbatch.mea.demo import ensure_demo
from nmbatch.mea.errors import InputError
from nmbatch.mea.pipeline import RecordingFiles, Sources, process_recording
from nmbatch.mea.sheet import read_sheet
from nmbatch.mea.soma import check_params as check_soma_params
from nmbatch.mea.steps import format_steps, parse_steps, resolve

log = logging.getLogger(__name__)

CSV_COLUMNS = ("cmcr_path", "cmtr_path", "matched")
SHEET_NAMES = ("gsheet_table.csv", "gsheet_table.xlsx")
LABEL_FOLDER = "labels"
MAX_RECORDING_LINES = 20  # per-recording summary lines (the predecessor's "Units, Steps")
TRUE = {"true", "1", "yes", "y", "t"}
POSITIVE = (
    "eimage_highpass_hz",
    "eimage_filter_order",
    "eimage_samples_after",
    "eimage_max_spikes",
    "eimage_max_seconds",
    "frame_percentile",
    "frame_threshold",
    "sta_frames",
    "soma_baseline_frames",
    "soma_smooth_sigma_frames",
    "soma_savgol_window",
    "soma_threshold",
    "rf_baseline_frames",
    "rf_temporal_sigma",
    "rf_min_peak_z",
    "rf_center_bound_px",
    "rf_sigma_min",
    "rf_sigma_max",
    "rf_max_evaluations",
    "dsgc_noise_pixel_px",
    "dsgc_electrode_px",
    "dsgc_n_shuffles",
)
AT_MOST_ONE = ("soma_threshold",)


def recording_name(cmcr_path: str) -> str:
    """The recording name of a CMCR path (Windows or POSIX): its file name without extension."""
    path = PureWindowsPath(cmcr_path) if "\\" in cmcr_path else PurePosixPath(cmcr_path)
    return path.stem


def _in_range(key: str, value: Any) -> bool:
    """Numbers must be >= 0, > 0 for the keys in POSITIVE, <= 1 for AT_MOST_ONE; text is free."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return key not in POSITIVE
    if key in AT_MOST_ONE and value > 1:
        return False
    return value > 0 if key in POSITIVE else value >= 0


def default_sheet(folder: Path) -> Path:
    """The sheet export next to the mapping CSV: the first of SHEET_NAMES that exists."""
    return next(
        (folder / n for n in SHEET_NAMES if (folder / n).is_file()), folder / SHEET_NAMES[0]
    )


def read_mapping(path: Path) -> list[tuple[int, dict[str, str]]]:
    """The mapping CSV's rows with their line numbers; DataSourceError naming line and cause."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataSourceError(
            f"{path}, line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "save the mapping CSV as UTF-8"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataSourceError(f"{path} lacks column(s) {', '.join(missing)}")
    rows = []
    for row in reader:
        short = [c for c in CSV_COLUMNS if row.get(c) is None]
        if short:
            given = sum(v is not None for k, v in row.items() if k is not None)
            raise DataSourceError(
                f"{path}, line {reader.line_num}: a short row ({given} of "
                f"{len(reader.fieldnames)} fields; {', '.join(short)} missing)"
            )
        rows.append((reader.line_num, row))
    return rows


def _steps_option(value: str) -> tuple[int, ...] | str:
    if value.strip().lower() == "all":
        return "all"  # resolved by the job: step 10 is in it only with a model
    try:
        return parse_steps(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass
class RecordingListing(Listing):
    """The recordings listed, and the CSV rows not processed (by reason: names)."""

    rows_not_processed: dict[str, list[str]] = field(default_factory=dict)


class MeaJob(Job):
    """CMCR/CMTR recordings through the MEA pipeline steps to ``<recording>.h5``."""

    name = "mea"
    description = "Retina MEA recordings (CMCR/CMTR) through pipeline steps to one HDF5 each"
    id_column = "recording"
    label_column = "cmtr_file"
    code_version = "2"
    result_libraries = ("McsPyDataTools", "h5py", "numpy", "scipy", "torch")

    def __init__(
        self,
        csv_path: Path,
        output_dir: Path,
        stimuli: Path | None = None,
        steps: Sequence[int] | str = "all",
        overwrite: bool = False,
        sheet: Path | None = None,
        labels: Path | None = None,
        ap: ApSettings | None = None,
    ):
        self.csv_path = Path(csv_path)
        self.output_dir = Path(output_dir)
        self.stimuli = Path(stimuli) if stimuli else self.csv_path.parent / "stimuli"
        self.sheet_given, self.labels_given = sheet is not None, labels is not None
        self.sheet = Path(sheet) if sheet else default_sheet(self.csv_path.parent)
        self.labels = Path(labels) if labels else self.csv_path.parent / LABEL_FOLDER
        self.ap = ap or ApSettings()  # step 10's model file and device (run settings)
        numbers = parse_steps(steps) if isinstance(steps, str) else tuple(sorted(set(steps)))
        if isinstance(steps, str) and steps.strip().lower() == "all":
            numbers = self.ap.steps_in_all(numbers)
        try:
            resolve(numbers)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.steps = numbers
        self.overwrite = overwrite

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--csv",
            type=Path,
            help="mapping CSV with cmcr_path, cmtr_path, matched (rows with matched true run)",
        )
        source.add_argument(
            "--demo",
            action="store_true",
            help="generate synthetic recordings once under <output>/demo_mea and process them",
        )
        parser.add_argument(
            "--stimuli",
            type=Path,
            help="stimulus folder (playlist.csv, movie_length.csv, configs/, movies/); "
            "default: 'stimuli' next to the CSV",
        )
        parser.add_argument(
            "--sheet",
            type=Path,
            help="the lab sheet exported as CSV or XLSX (step 8); default: gsheet_table.csv "
            "(or .xlsx) next to the CSV",
        )
        parser.add_argument(
            "--labels",
            type=Path,
            help="folder of cell-type label files (step 9: CSV, JSON, parquet, legacy .pkl); "
            "default: 'labels' next to the CSV",
        )
        parser.add_argument(
            "--steps",
            type=_steps_option,
            default="all",
            help="steps to run: e.g. 1-5, 6-11, 3,4 or all (every available step; default)",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="recompute the requested steps even where an output file has them",
        )
        ApSettings.add_arguments(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> MeaJob:
        stimuli = args.stimuli
        if args.demo:
            demo = ensure_demo(Path(args.output) / "demo_mea")
            csv_path, stimuli = demo.csv, stimuli or demo.stimuli
        elif args.csv is None:
            raise ConfigError("give the recordings' mapping file with --csv (or run --demo)")
        else:
            csv_path = args.csv
        ap = ApSettings.from_args(args, demo=args.demo)
        return cls(
            csv_path,
            args.output,
            stimuli,
            args.steps,
            args.overwrite,
            args.sheet,
            args.labels,
            ap,
        )

    def table_schemas(self, params: Mapping[str, Any]) -> dict[str, pa.Schema]:
        return {
            "recordings": pa.schema(
                [
                    ("output_path", pa.string()),
                    ("output_bytes", pa.int64()),
                    ("n_units", pa.int32()),
                    ("n_units_without_spikes", pa.int32()),
                    ("n_spikes", pa.int64()),
                    ("duration_s", pa.float64()),
                    ("steps_completed", pa.string()),
                    ("n_steps", pa.int32()),
                    ("steps_run", pa.string()),
                    ("warnings", pa.string()),
                ]
            )
        }

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """ConfigError unless the requested steps' parameters are present and sensible."""
        needed = [k for s in resolve(self.steps) for k in s.params]
        missing = [k for k in needed if k not in params]
        if missing:
            raise ConfigError(f"mea: missing parameter(s) {', '.join(missing)}")
        bad = [k for k in needed if not _in_range(k, params[k])]
        if bad:
            raise ConfigError(f"mea: parameter(s) out of range: {', '.join(bad)}")
        if 6 in self.steps:
            frames = int(params["eimage_samples_before"]) + int(params["eimage_samples_after"])
            problem = check_soma_params(params, frames)
            if problem:
                raise ConfigError(f"mea: {problem}")
        if 10 in self.steps:
            self.ap.validate(params)

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters with ``ap_model_sha256`` filled in from the --ap-model file."""
        return self.ap.resolve_params(params)

    def list_items(self, params: Mapping[str, Any]) -> RecordingListing:
        """One item per matched CSV row; other rows are counted in ``rows_not_processed``."""
        if not self.csv_path.is_file():
            raise DataSourceError(f"CSV mapping file not found: {self.csv_path}")
        if any(s.needs_stimuli for s in resolve(self.steps)) and not self.stimuli.is_dir():
            raise DataSourceError(
                f"stimulus folder not found: {self.stimuli} (steps {format_steps(self.steps)} "
                "need it; give it with --stimuli)"
            )
        rows = read_mapping(self.csv_path)
        self._check_sheet_and_labels(params)
        items: list[Item] = []
        skipped: dict[str, list[str]] = {"unmatched": [], "missing path": [], "repeated": []}
        seen: set[str] = set()
        for line, row in rows:
            cmcr, cmtr = (row[c].strip() for c in ("cmcr_path", "cmtr_path"))
            name = recording_name(cmcr) if cmcr else f"line {line}"
            if row["matched"].strip().lower() not in TRUE:
                skipped["unmatched"].append(name)
            elif not cmcr or not cmtr:
                skipped["missing path"].append(name)
            elif name in seen:
                skipped["repeated"].append(name)
            else:
                seen.add(name)
                data = {"cmcr": str(self._path(cmcr)), "cmtr": str(self._path(cmtr))}
                items.append(Item(id=name, label=recording_name(cmtr) + ".cmtr", data=data))
        not_processed = {k: v for k, v in skipped.items() if v}
        counts = ", ".join(f"{len(v)} {k}" for k, v in not_processed.items())
        log.info(
            "%s: %d recordings%s",
            self.csv_path,
            len(items),
            f"; not processed: {counts}" * bool(counts),
        )
        return RecordingListing(items, not_processed)

    def _check_sheet_and_labels(self, params: Mapping[str, Any]) -> None:
        """DataSourceError for a sheet or label folder that was asked for and cannot be used."""
        if 8 in self.steps and (self.sheet_given or self.sheet.is_file()):
            try:
                sheet = read_sheet(self.sheet)
            except InputError as exc:
                raise DataSourceError(f"{exc} (--sheet)") from None
            column = params["sheet_match_column"]
            if column not in sheet.columns:
                raise DataSourceError(
                    f"sheet {self.sheet} has no column {column!r} (sheet_match_column); its "
                    f"columns: {', '.join(sheet.columns)}"
                )
        if 9 in self.steps and self.labels_given and not self.labels.is_dir():
            raise DataSourceError(f"label folder not found: {self.labels} (--labels)")

    def _path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.csv_path.parent / path

    def output_path(self, recording: str) -> Path:
        """Where a recording's HDF5 file goes."""
        return self.output_dir / f"{recording}.h5"

    def is_complete(self, item: Item, params: Mapping[str, Any]) -> bool:
        """The output file holds every requested step with the current parameters.

        The file, not the cache, decides: ``--overwrite`` and a later ``--steps`` set run
        recordings the cache already has done.
        """
        if self.overwrite:
            return False
        state = output.read_state(self.output_path(item.id))
        return state is not None and all(
            state.done(s.number, s.parameters(params)) for s in resolve(self.steps)
        )

    def run_item(self, item: Item, ctx: ItemContext) -> ItemResult:
        rec = RecordingFiles(item.id, Path(item.data["cmcr"]), Path(item.data["cmtr"]))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        sources = Sources(self.stimuli, self.sheet, self.labels)
        row = process_recording(
            rec,
            resolve(self.steps),
            ctx.params,
            self.output_dir,
            sources,
            self.overwrite,
            ctx,
            self.ap.step_settings(),
        )
        return ItemResult(tables={"recordings": pd.DataFrame([row])}, flags=dict(ctx.flags))

    def summary_lines(self, cache, listing: RecordingListing | None) -> list[str]:
        lines = []
        table = cache.get_results("recordings")
        if len(table):
            lines.append(
                f"MEA files in {self.output_dir}: {len(table)} recordings, "
                f"{int(table['n_units'].sum())} units "
                f"({int(table['n_units_without_spikes'].sum())} without spikes)"
            )
            for row in table.sort_values("recording").head(MAX_RECORDING_LINES).itertuples():
                lines.append(f"  {row.recording}: Units: {row.n_units}, Steps: {row.n_steps}")
            if len(table) > MAX_RECORDING_LINES:
                lines.append(f"  ... and {len(table) - MAX_RECORDING_LINES} more")
            warned = table[table["warnings"].fillna("") != ""]
            if len(warned):
                lines.append(
                    f"Recordings with warnings: {len(warned)} (see the item flags), e.g. "
                    f"{warned['warnings'].iloc[0].split(' | ')[0]}"
                )
        for reason, names in (listing.rows_not_processed if listing else {}).items():
            lines.append(f"CSV rows not processed ({reason}): {len(names)}, e.g. {names[0]}")
        return lines

    @classmethod
    def report_sections(cls, cache) -> list:
        """Unit counts; units, somas, fields and tuning per recording (nmbatch.mea.report)."""
        from nmbatch.mea import report  # bokeh is for the driver, not the workers

        return report.report_sections(cache)
