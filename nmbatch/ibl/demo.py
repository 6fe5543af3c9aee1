"""A seeded synthetic ONE cache of IBL photometry sessions, with planted faults of known kind.

The cache has the real ALF layout (``<lab>/Subjects/<subject>/<date>/<number>/alf/...``) and
real ONE cache tables (``sessions.pqt``, ``datasets.pqt`` saved with ``iblutil.io.parquet``),
so ``one.api.One(cache_dir=root, mode='local')`` searches and loads it like downloaded data.
Next to it, ``metadata/sessions.pqt`` is the project's sessions table (NM, ``has_*`` flags,
``session_status`` ...) as the lab's metadata query would give it: it says what the metadata
*claims*, and the planted cases make some of those claims false.

Planted cases (:class:`DemoInfo` ``cases`` maps each name to its eid):

- ``missing_locations``: the locations dataset is listed in the cache table but not on disk;
- ``corrupt_signal``: the signal file is truncated (not a readable parquet file);
- ``trials_in_alf``: the trials table lives in ``alf/`` (older sessions), not ``alf/task_00``;
- ``no_trials``: no trials table at all (photometry only);
- ``band_glitch``: one dropped frame and one early frame (``n_band_inversions`` and
  ``n_early_samples`` are exactly 1);
- ``habituation``: a habituation session;
- ``conflict``: a second session of a subject on one day, marked 'conflict'.

All sessions of ``excluded_subject`` are meant to be excluded by the job configuration.
The demo writes no raw data: ``has_raw_*`` are metadata claims only.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from iblutil.io import parquet
from one.alf.cache import DATASETS_COLUMNS, SESSIONS_COLUMNS

from nmbatch.ibl.loading import (
    LOCATIONS_DATASET,
    PHOTOMETRY_COLLECTION,
    SIGNAL_DATASET,
    TRIALS_DATASET,
)
from nmbatch.ibl.signals import plant_band_glitch, simulate_photometry
from nmbatch.ibl.trials import simulate_trials

GENERATOR_VERSION = 2
# Eids and dataset ids are uuid3 of relative paths in this namespace: stable across rebuilds.
DEMO_NAMESPACE = uuid.UUID("6f1c2a52-5d0e-4a57-9a39-0c3e8b7f2d11")
METADATA_DIR = "metadata"
SESSIONS_FILE = "sessions.pqt"
MARKER_FILE = "demo.json"
PROJECT = "ibl_fibrephotometry"
TRIAL_S_LOWER_BOUND = 3.0  # simulated trials last 4.1 s on average, rarely under 3 s

PROTOCOLS = {
    "habituation": "_iblrig_tasks_habituationChoiceWorld8.0.0",
    "training": "_iblrig_tasks_trainingChoiceWorld8.0.0",
    "biased": "_iblrig_tasks_biasedChoiceWorld8.0.0",
}
NM_REGIONS = {  # the first region is the cell-body target; fibres go there first
    "DA": ("VTA", "SNc", "NAc"),
    "5HT": ("DR", "MR", "OFC"),
    "NE": ("LC", "PFC", "HPC"),
    "ACh": ("NBM", "SI", "MS"),
}
NM_LINES = {"DA": "DAT-Cre", "5HT": "SERT-Cre", "NE": "Dbh-Cre", "ACh": "ChAT-Cre"}


@dataclass(frozen=True)
class Subject:
    """A demo animal: its name, lab and the neuromodulator its fibres record."""

    name: str
    lab: str
    nm: str


SUBJECTS = (
    Subject("NMD-01", "mainenlab", "DA"),
    Subject("NMD-02", "mainenlab", "5HT"),
    Subject("NMD-03", "wittenlab", "DA"),
    Subject("NMD-04", "wittenlab", "NE"),
    Subject("NMD-05", "hoferlab", "ACh"),
    Subject("NMD-06", "cortexlab", "5HT"),
)
EXCLUDED_SUBJECT = Subject("NMD-99", "cortexlab", "NE")
FIRST_DAY = datetime.date(2024, 3, 4)
TRAINING_DAYS = 3  # each subject's first sessions run trainingChoiceWorld, then biased

CASES = (
    "habituation",
    "missing_locations",
    "corrupt_signal",
    "trials_in_alf",
    "no_trials",
    "band_glitch",
    "conflict",
)
EXCLUDED_SUBJECT_SESSIONS = 2
# ordinary sessions up to subject 1's second day (the conflict's partner), the conflict itself,
# and the excluded subject's sessions
MIN_PLANTED_SESSIONS = len(SUBJECTS) + 2 + 1 + EXCLUDED_SUBJECT_SESSIONS


@dataclass(frozen=True)
class DemoInfo:
    """Where a demo cache is and its ground truth.

    Attributes
    ----------
    root : Path
        The ONE cache directory (``One(cache_dir=root, mode='local')``).
    eids : tuple of str
        Every session, in generation order.
    cases : dict of str to str
        Planted case name -> eid (empty when generated with ``planted=False``).
    excluded_subject : str or None
        The subject the job configuration excludes (None without planted cases).
    excluded_eids : tuple of str
        That subject's sessions.
    """

    root: Path
    eids: tuple[str, ...]
    cases: Mapping[str, str] = field(default_factory=dict)
    excluded_subject: str | None = None
    excluded_eids: tuple[str, ...] = ()

    @property
    def ordinary_eids(self) -> tuple[str, ...]:
        """Sessions with no planted case and not of the excluded subject."""
        special = {*self.cases.values(), *self.excluded_eids}
        return tuple(eid for eid in self.eids if eid not in special)

    @property
    def sessions_file(self) -> Path:
        """The project's sessions table (NM, ``has_*`` flags, ``session_status``)."""
        return self.root / METADATA_DIR / SESSIONS_FILE


@dataclass
class _Spec:
    """What to generate for one session."""

    subject: Subject
    date: datetime.date
    number: int
    session_type: str
    day_n: int
    session_n: int
    case: str | None = None

    @property
    def rel_path(self) -> str:
        """``lab/Subjects/subject/date/number``: the session folder under the cache root."""
        s = self.subject
        return f"{s.lab}/Subjects/{s.name}/{self.date.isoformat()}/{self.number:03d}"

    @property
    def eid(self) -> str:
        """A uuid3 of the relative session path."""
        return str(uuid.uuid3(DEMO_NAMESPACE, self.rel_path))


def _locations(n_rois: int, nm: str) -> pd.DataFrame:
    """The ROI table: one fibre per ROI, in the subject's NM regions."""
    rois = [f"Region{k}G" for k in range(n_rois)]
    return pd.DataFrame(
        {
            "fiber": [f"fiber{k:02d}" for k in range(n_rois)],
            "brain_region": list(NM_REGIONS[nm][:n_rois]),
        },
        index=pd.Index(rois, name="ROI"),
    )


def _plan(n_sessions: int, planted: bool) -> list[_Spec]:
    """Decide subject, day, type and planted case of every session, deterministically."""
    if planted and n_sessions < MIN_PLANTED_SESSIONS:
        raise ValueError(
            f"a demo with planted cases needs at least {MIN_PLANTED_SESSIONS} sessions"
        )
    n_extra = EXCLUDED_SUBJECT_SESSIONS + 1 if planted else 0  # + the conflicting duplicate
    counts = dict.fromkeys(SUBJECTS, 0)
    specs = []
    for i in range(n_sessions - n_extra):
        subject = SUBJECTS[i % len(SUBJECTS)]
        counts[subject] += 1
        n = counts[subject]
        session_type = "training" if n <= TRAINING_DAYS else "biased"
        date = FIRST_DAY + datetime.timedelta(days=n - 1)
        specs.append(_Spec(subject, date, 1, session_type, n, n))
    if not planted:
        return specs
    # Subject 0's first session is habituation; the other faults go to the next ordinary
    # sessions; subject 1's second day gets a later session marked 'conflict'.
    specs[0].session_type = "habituation"
    for spec, case in zip(specs, CASES, strict=False):
        spec.case = case
    good = specs[len(SUBJECTS) + 1]
    specs.append(
        _Spec(good.subject, good.date, 2, good.session_type, good.day_n, good.session_n, "conflict")
    )
    for k in range(EXCLUDED_SUBJECT_SESSIONS):
        date = FIRST_DAY + datetime.timedelta(days=k)
        specs.append(_Spec(EXCLUDED_SUBJECT, date, 1, "biased", k + 1, k + 1))
    return specs


def _write_session(
    root: Path, spec: _Spec, duration_s: float, n_rois: int, seed: int, position: int
) -> tuple[dict, list[tuple[str, int | None]]]:
    """Write one session's datasets; return its metadata row and (rel_path, size) per dataset."""
    rng = np.random.default_rng([seed, position])
    folder = root / spec.rel_path
    datasets: list[tuple[str, int | None]] = []

    def write(rel: str, df: pd.DataFrame, index: bool) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path, index=index)
        datasets.append((rel, path.stat().st_size))

    signal = simulate_photometry(rng, duration_s, n_rois)
    if spec.case == "band_glitch":
        signal = plant_band_glitch(signal, rng)
    write(f"{PHOTOMETRY_COLLECTION}/{SIGNAL_DATASET}", signal, index=False)
    if spec.case == "corrupt_signal":
        path = folder / PHOTOMETRY_COLLECTION / SIGNAL_DATASET
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        datasets[-1] = (datasets[-1][0], path.stat().st_size)

    locations = _locations(n_rois, spec.subject.nm)
    locations_rel = f"{PHOTOMETRY_COLLECTION}/{LOCATIONS_DATASET}"
    if spec.case == "missing_locations":
        datasets.append((locations_rel, None))  # listed in the cache table, never written
    else:
        write(locations_rel, locations, index=True)

    n_trials = 0
    if spec.case != "no_trials":
        protocol = "biased" if spec.session_type == "biased" else "training"
        # enough trials (about 4 s each) for the task to outlast the recording, as it does in
        # the lab, so that tools which cut the recording to the task keep all of it
        n_trials = max(int(rng.integers(400, 900)), int(duration_s / TRIAL_S_LOWER_BOUND))
        trials = simulate_trials(rng, n_trials, protocol=protocol, bias=rng.normal(0, 5))
        collection = "alf" if spec.case == "trials_in_alf" else "alf/task_00"
        write(f"{collection}/{TRIALS_DATASET}", trials, index=False)

    row = {
        "eid": spec.eid,
        "subject": spec.subject.name,
        "start_time": f"{spec.date.isoformat()}T{9 + spec.number:02d}:00:00",
        "number": spec.number,
        "lab": spec.subject.lab,
        "projects": PROJECT,
        "task_protocol": PROTOCOLS[spec.session_type],
        "session_type": spec.session_type,
        "NM": spec.subject.nm,
        "strain": "C57BL/6J",
        "line": NM_LINES[spec.subject.nm],
        "genotype": "Cre/wt",
        "datasets": [rel for rel, _ in datasets],
        "n_trials": n_trials,
        "roi": list(locations["brain_region"]),
        "target": NM_REGIONS[spec.subject.nm][0],
        "date": spec.date,
        "day_n": spec.day_n,
        "session_n": spec.session_n,
        "has_raw_task": True,
        "has_raw_photometry": True,
        "has_extracted_task": n_trials > 0,
        "has_extracted_photometry_signal": True,
        "has_extracted_photometry_locations": True,
        "session_status": "conflict" if spec.case == "conflict" else "good",
    }
    row["data_complete"] = all(row[k] for k in row if k.startswith("has_extracted_"))
    row["trials_complete"] = row["has_extracted_task"]
    return row, datasets


def _one_tables(
    specs: list[_Spec], rows: list[dict], datasets: list[list[tuple[str, int | None]]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build ONE's sessions and datasets cache tables in the dtypes ONE expects."""
    sessions = pd.DataFrame(
        {
            "id": [s.eid for s in specs],
            "lab": [s.subject.lab for s in specs],
            "subject": [s.subject.name for s in specs],
            "date": [s.date for s in specs],
            "number": [s.number for s in specs],
            "task_protocol": [r["task_protocol"] for r in rows],
            "projects": PROJECT,
        }
    )
    sessions = sessions.astype(SESSIONS_COLUMNS).set_index("id").sort_index()
    records = [
        {
            "eid": spec.eid,
            "id": str(uuid.uuid3(DEMO_NAMESPACE, f"{spec.rel_path}/{rel}")),
            "rel_path": rel,
            "file_size": size,
            "hash": None,  # no md5 check on load
            "exists": True,
            "qc": "NOT_SET",
        }
        for spec, session_datasets in zip(specs, datasets, strict=True)
        for rel, size in session_datasets
    ]
    dsets = pd.DataFrame(records).astype(DATASETS_COLUMNS)
    dsets["default_revision"] = True
    return sessions, dsets.set_index(["eid", "id"]).sort_index()


def _generate(
    root: Path, n_sessions: int, duration_s: float, n_rois: int, seed: int, planted: bool
) -> DemoInfo:
    """Write a complete demo cache into ``root`` (an empty or missing folder)."""
    specs = _plan(n_sessions, planted)
    written = [
        _write_session(root, spec, duration_s, n_rois, seed, i) for i, spec in enumerate(specs)
    ]
    rows = [row for row, _ in written]
    sessions, dsets = _one_tables(specs, rows, [d for _, d in written])
    meta = {
        "date_created": datetime.datetime.now().isoformat(sep=" ", timespec="minutes"),
        "origin": "nmbatch-demo",
    }
    parquet.save(root / "sessions.pqt", sessions, meta)
    parquet.save(root / "datasets.pqt", dsets, meta)
    (root / METADATA_DIR).mkdir(exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / METADATA_DIR / SESSIONS_FILE, index=False)
    excluded = tuple(s.eid for s in specs if s.subject == EXCLUDED_SUBJECT)
    return DemoInfo(
        root=root,
        eids=tuple(s.eid for s in specs),
        cases={s.case: s.eid for s in specs if s.case},
        excluded_subject=EXCLUDED_SUBJECT.name if planted else None,
        excluded_eids=excluded,
    )


def read_demo_info(root: Path, args: Mapping[str, object] | None = None) -> DemoInfo | None:
    """Return the ground truth of the demo in ``root``, or None if there is none to reuse.

    Parameters
    ----------
    root : Path
        A folder that may hold a demo cache.
    args : mapping, optional
        The generator arguments the demo must have been made with; None accepts any.
    """
    marker = Path(root) / METADATA_DIR / MARKER_FILE
    if not marker.is_file():
        return None
    recorded = json.loads(marker.read_text())
    if recorded.get("generator_version") != GENERATOR_VERSION:
        return None
    if args is not None and recorded.get("args") != dict(args):
        return None
    info = recorded["info"]
    return DemoInfo(
        root=Path(root),
        eids=tuple(info["eids"]),
        cases=info["cases"],
        excluded_subject=info["excluded_subject"],
        excluded_eids=tuple(info["excluded_eids"]),
    )


def make_demo_one_cache(
    root: Path,
    n_sessions: int = 36,
    duration_s: float = 300.0,
    n_rois: int = 3,
    seed: int = 0,
    planted: bool = True,
) -> DemoInfo:
    """Generate a demo ONE cache in ``root``, or reuse the one there if it has the same arguments.

    Parameters
    ----------
    root : Path
        The cache directory. If it exists it must be a demo cache (it holds the marker file);
        a demo made with other arguments or an older generator is replaced.
    n_sessions : int
        Number of sessions (at least 10 with planted cases).
    duration_s : float
        Photometry recording length per session, seconds (30 Hz per band).
    n_rois : int
        ROIs (fibres) per session, 1 to 3.
    seed : int
        Seed of every random draw: the same arguments give the same data.
    planted : bool
        Plant the faulty sessions and the excluded subject (see the module docstring).

    Returns
    -------
    DemoInfo
        Where it is and which eid is which planted case.
    """
    root = Path(root)
    if not 1 <= n_rois <= 3:
        raise ValueError("n_rois must be 1, 2 or 3")
    args = {
        "n_sessions": n_sessions,
        "duration_s": float(duration_s),
        "n_rois": n_rois,
        "seed": seed,
        "planted": planted,
    }
    info = read_demo_info(root, args)
    if info is not None:
        return info
    is_demo = (root / METADATA_DIR / MARKER_FILE).is_file()
    if root.exists() and any(root.iterdir()) and not is_demo:
        raise FileExistsError(f"{root} exists and is not a demo ONE cache; not touching it")
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = _generate(tmp, n_sessions, duration_s, n_rois, seed, planted)
    recorded = {"generator_version": GENERATOR_VERSION, "args": args, "info": asdict(info)}
    del recorded["info"]["root"]
    (tmp / METADATA_DIR / MARKER_FILE).write_text(json.dumps(recorded, indent=2))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return DemoInfo(**{**asdict(info), "root": root})
