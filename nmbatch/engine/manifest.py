"""``manifest.json`` and the snapshots behind it: read, check, rebuild, write.

The manifest is the human-readable summary of a cache (analysis, config, provenance,
counts). It is not the only copy of anything that matters: every record carries the
hashes of its parameters and provenance, and ``configs/`` keeps each parameter set and
provenance by hash, so a damaged or deleted manifest is rebuilt from them, and where
it cannot be, the run says so instead of accepting any parameters as new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nmbatch.engine.layout import CONFIGS_PREFIX, FORMAT, FORMAT_VERSION, MANIFEST_KEY
from nmbatch.engine.store import Store

EXPECTED_TYPES = {
    "analysis": str,
    "config": dict,
    "config_hash": str,
    "item": dict,
}


@dataclass(frozen=True)
class ManifestRead:
    """What reading the manifest gave: its content, or None and why not."""

    data: dict[str, Any] | None
    problem: str | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_manifest(store: Store) -> ManifestRead:
    """The manifest if it is usable; otherwise None and a sentence saying what is wrong."""
    try:
        raw = store.read_bytes(MANIFEST_KEY)
    except KeyError:
        return ManifestRead(None, "manifest.json is missing")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        kind = "empty" if not raw.strip() else "truncated or not JSON"
        return ManifestRead(None, f"manifest.json is {kind} ({exc})")
    if not isinstance(data, dict):
        return ManifestRead(None, f"manifest.json holds a {type(data).__name__}, not an object")
    wrong = [k for k, t in EXPECTED_TYPES.items() if k in data and not isinstance(data[k], t)]
    missing = [k for k in EXPECTED_TYPES if k not in data]
    if wrong or missing:
        what = ", ".join(
            [*(f"{k} has the wrong type" for k in wrong), *(f"no {k}" for k in missing)]
        )
        return ManifestRead(None, f"manifest.json is damaged: {what}")
    return ManifestRead(data)


def is_newer_format(data: dict[str, Any]) -> bool:
    version = data.get("format_version", 1)
    return isinstance(version, int) and version > FORMAT_VERSION


def write_manifest(store: Store, manifest: dict[str, Any]) -> None:
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "updated": now()}
    store.write_bytes(MANIFEST_KEY, json.dumps(manifest, indent=2, default=str).encode())


def _snapshot_key(kind: str, digest: str) -> str:
    return f"{CONFIGS_PREFIX}/{kind}-{digest}.json"


def save_snapshot(store: Store, kind: str, digest: str, value: dict[str, Any]) -> None:
    """Keep ``value`` (a parameter set or a provenance) under its hash, once."""
    key = _snapshot_key(kind, digest)
    if not store.exists(key):
        store.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())


def load_snapshot(store: Store, kind: str, digest: str | None) -> dict[str, Any] | None:
    """The parameter set or provenance with hash ``digest``, if it was kept and is readable."""
    if not digest:
        return None
    try:
        value = json.loads(store.read_bytes(_snapshot_key(kind, digest)))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
