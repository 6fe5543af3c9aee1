"""Reading a Flywheel project exported to disk, behind the narrow interface the job needs.

Layout (one file per Flywheel file, plus ``<file name>.flywheel.json`` beside it
holding that file entry's ``name``, ``modified`` and ``info``)::

    <project>/project.json   {"label": ..., "group": ..., "info": {"pipeline_adcid": ...}}
    <project>/files/...      project-level files: QC status logs, CSV uploads
    <project>/subjects/<subject>/sessions/<session>/acquisitions/<acquisition>/files/...
                             acquisition-level files: the JSON form files

The job asks a :class:`ProjectSource` for four things: the project's labels, the
acquisition-level JSON form files (on the driver, with a fingerprint of what each
depends on), a form file's entry and a project-level file's entry by name.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmbatch.engine.errors import DataSourceError
from nmbatch.qc_events.rules import qc_log_name

SIDECAR_SUFFIX = ".flywheel.json"
FORM_SUFFIX = ".json"


class SidecarError(Exception):
    """A metadata sidecar that exists but cannot be read as a file entry."""


@dataclass(frozen=True)
class ProjectInfo:
    """The labels every event carries."""

    label: str
    group: str
    pipeline_adcid: int


@dataclass(frozen=True)
class FileEntry:
    """One Flywheel file entry: its name, ``modified`` stamp and custom ``info``."""

    name: str
    modified: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    has_metadata: bool = True

    @property
    def forms_json(self) -> Any:
        """A form file's form metadata, ``info.forms.json`` (None when absent)."""
        forms = self.info.get("forms")
        return forms.get("json") if isinstance(forms, Mapping) else None


@dataclass(frozen=True)
class FormFile:
    """An acquisition-level JSON form file as listed: where it is and what it depends on."""

    path: str
    subject: str
    fingerprint: str


class ProjectSource(ABC):
    """What the job reads from a Flywheel project (an export on disk, or a live client)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the project is, for messages."""

    @abstractmethod
    def project_info(self) -> ProjectInfo:
        """Project label, group label and ``pipeline_adcid``; DataSourceError if unusable."""

    @abstractmethod
    def form_files(self) -> list[FormFile]:
        """Every acquisition-level JSON form file, in a stable order (driver side)."""

    @abstractmethod
    def form_file_entry(self, path: str) -> FileEntry:
        """The entry of a listed form file; ``has_metadata`` False when it has none."""

    @abstractmethod
    def project_file(self, name: str) -> FileEntry | None:
        """The project-level file called ``name``, or None when there is none."""


def read_sidecar(path: Path, name: str) -> FileEntry:
    """The file entry in a sidecar; SidecarError naming the file when it is malformed."""
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise SidecarError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise SidecarError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise SidecarError(f"{path}: expected a JSON object, got {type(data).__name__}")
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise SidecarError(f"{path}: 'info' is {type(info).__name__}, not an object")
    modified = data.get("modified")
    return FileEntry(
        str(data.get("name") or name), modified if isinstance(modified, str) else None, info
    )


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            names = [e.name for e in entries if e.is_dir()]
    except FileNotFoundError:
        return []
    return sorted(names)


def _file_entries(path: str) -> dict[str, os.DirEntry]:
    """The regular files in a folder by name (from the directory listing: no stat per file)."""
    try:
        with os.scandir(path) as entries:
            return {e.name: e for e in entries if e.is_file()}
    except FileNotFoundError:
        return {}


def _qc_log_stamp(log_name: str, project_files: Mapping[str, os.DirEntry]) -> bytes:
    """What a form's event takes from its QC log: a digest of the log's sidecar, or its absence.

    The bytes, not a stat: a re-validation that keeps the size within the file
    system's timestamp granularity must still count, and reading costs about the same.
    """
    if not log_name or log_name not in project_files:
        return b"absent"
    sidecar = project_files.get(log_name + SIDECAR_SUFFIX)
    raw = _read_or_none(sidecar.path) if sidecar is not None else None
    return hashlib.sha1(raw).digest() if raw is not None else b"no metadata"


def _is_form_file(name: str) -> bool:
    return name.lower().endswith(FORM_SUFFIX) and not name.endswith(SIDECAR_SUFFIX)


def _read_or_none(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _form_metadata(sidecar: bytes | None) -> Any:
    """``info.forms.json`` of raw sidecar bytes, or None (the driver never fails on them)."""
    try:
        info = json.loads(sidecar).get("info", {}) if sidecar else {}
        return info.get("forms", {}).get("json")
    except (ValueError, AttributeError):
        return None


class ProjectTree(ProjectSource):
    """A Flywheel project exported to a folder (the layout in this module's docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root).expanduser().resolve()

    def describe(self) -> str:
        return str(self.root)

    def _project_json(self) -> bytes:
        try:
            return (self.root / "project.json").read_bytes()
        except FileNotFoundError:
            raise DataSourceError(
                f"{self.root} is not an exported Flywheel project: no project.json"
            ) from None
        except OSError as exc:
            raise DataSourceError(f"{self.root / 'project.json'}: {exc.strerror}") from None

    def project_info(self) -> ProjectInfo:
        return _parse_project(self.root, self._project_json())

    def _acquisition_folders(self) -> Iterator[tuple[str, str]]:
        """(subject, relative files folder) of every acquisition, in sorted order.

        Plain strings and scandir, no pathlib: this runs once per acquisition.
        """
        base = str(self.root)
        for subject in _subdirs(f"{base}/subjects"):
            sessions = f"subjects/{subject}/sessions"
            for session in _subdirs(f"{base}/{sessions}"):
                acquisitions = f"{sessions}/{session}/acquisitions"
                for acquisition in _subdirs(f"{base}/{acquisitions}"):
                    yield subject, f"{acquisitions}/{acquisition}/files"

    def form_files(self) -> list[FormFile]:
        """Walk the acquisitions with scandir; read only what the fingerprints need.

        A form file's fingerprint covers its sidecar's bytes (its form metadata names
        the QC log: the one JSON parse per file), the name of that QC log and its
        sidecar's bytes, and ``project.json``: a change to anything its event depends
        on changes it, and nothing else does.
        """
        base = str(self.root)
        project_digest = hashlib.sha1(self._project_json()).digest()
        project_files = _file_entries(f"{base}/files")
        qc_log_stamps: dict[str, bytes] = {}
        found: list[FormFile] = []
        for subject, folder in self._acquisition_folders():
            names = _file_entries(f"{base}/{folder}")
            for name in sorted(n for n in names if _is_form_file(n)):
                sidecar = names.get(name + SIDECAR_SUFFIX)
                raw = _read_or_none(sidecar.path) if sidecar is not None else None
                log_name = qc_log_name_of(_form_metadata(raw))
                if log_name not in qc_log_stamps:
                    qc_log_stamps[log_name] = _qc_log_stamp(log_name, project_files)
                digest = hashlib.sha1(project_digest)
                digest.update(hashlib.sha1(raw).digest() if raw is not None else b"no metadata")
                digest.update(log_name.encode() + b"\0" + qc_log_stamps[log_name])
                found.append(FormFile(f"{folder}/{name}", subject, digest.hexdigest()[:16]))
        return found

    def form_file_entry(self, path: str) -> FileEntry:
        file = self.root / path
        if not file.is_file():
            raise FileNotFoundError(f"form file {file} is gone")
        sidecar = file.with_name(file.name + SIDECAR_SUFFIX)
        if not sidecar.exists():
            return FileEntry(file.name, has_metadata=False)
        return read_sidecar(sidecar, file.name)

    def project_file(self, name: str) -> FileEntry | None:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            return None
        file = self.root / "files" / name
        if not file.is_file():
            return None
        sidecar = file.with_name(name + SIDECAR_SUFFIX)
        if not sidecar.exists():
            return FileEntry(name, has_metadata=False)
        return read_sidecar(sidecar, name)


def qc_log_name_of(forms_json: Any) -> str:
    """The QC log a form's metadata points to, or '' when it points to none."""
    return (qc_log_name(forms_json) or "") if isinstance(forms_json, Mapping) else ""


def _parse_project(root: Path, raw: bytes) -> ProjectInfo:
    where = root / "project.json"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataSourceError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataSourceError(f"{where}: expected a JSON object")
    label, group = data.get("label"), data.get("group")
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    adcid = info.get("pipeline_adcid")
    if isinstance(adcid, str) and adcid.strip().isdigit():
        adcid = int(adcid)
    problems = []
    if not isinstance(label, str) or not label:
        problems.append("'label' (the project label) is missing")
    if not isinstance(group, str) or not group:
        problems.append("'group' (the center label) is missing")
    if isinstance(adcid, bool) or not isinstance(adcid, int):
        problems.append(f"'info.pipeline_adcid' is {adcid!r}, not an integer")
    if problems:
        raise DataSourceError(f"{where}: {'; '.join(problems)}")
    return ProjectInfo(label, group, adcid)
