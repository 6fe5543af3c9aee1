"""Tracked analysis parameters: defaults per job, overrides, diffs.

Each analysis has a flat YAML file ``jobs/<name>.yaml`` of the parameters that
shape its results. The reserved key ``extends`` names shared files merged first
(``extends: [general]`` pulls in ``jobs/general.yaml``), so the predecessor's
``{**GENERAL, **PHOTOMETRY_QC}`` becomes ``get_analysis_config('photometry')``.

Only these parameters are tracked in a cache. Paths, worker counts and other run
settings live in the Dask config (``nmbatch.*``, see ``dask.yaml``) and on the
command line, and never trigger a recompute.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from nmbatch.engine.errors import ConfigError

EXTENDS_KEY = "extends"
_MISSING = object()


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of parameters, got {type(data).__name__}")
    return data


def _job_file_text(name: str) -> str:
    resource = files("nmbatch.jobs") / f"{name}.yaml"
    if not resource.is_file():
        known = sorted(
            p.name[:-5] for p in files("nmbatch.jobs").iterdir() if p.name.endswith(".yaml")
        )
        raise ConfigError(f"no parameter file jobs/{name}.yaml (known: {', '.join(known)})")
    return resource.read_text()


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``; nested mappings merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_job_defaults(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read ``jobs/<name>.yaml`` and the files it ``extends``, merged in order."""
    if name in _seen:
        raise ConfigError(f"jobs/{name}.yaml extends itself: {' -> '.join((*_seen, name))}")
    own = _read_yaml(_job_file_text(name), f"jobs/{name}.yaml")
    parents = own.pop(EXTENDS_KEY, []) or []
    if isinstance(parents, str):
        parents = [parents]
    merged: dict[str, Any] = {}
    for parent in parents:
        merged = deep_merge(merged, load_job_defaults(parent, (*_seen, name)))
    return deep_merge(merged, own)


def _check_known(override: Mapping[str, Any], defaults: Mapping[str, Any], origin: str) -> None:
    """Reject top-level keys the job does not have: a typo must not become a new parameter."""
    for key in override:
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{origin}: unknown parameter '{key}'{hint}")


def parse_set(assignment: str) -> tuple[list[str], Any]:
    """Split ``'sliding_kwargs.w_len=180'`` into a key path and a YAML-parsed value."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key.path=value, got '{assignment}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {assignment}: value is not valid YAML: {exc}") from exc
    return key.strip().split("."), value


def apply_set(params: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """Set one dotted key; the top-level key must exist, nested keys may be new."""
    _check_known({path[0]: None}, params, "--set")
    updated = dict(params)
    node = updated
    for i, part in enumerate(path[:-1]):
        child = node.get(part, {})
        if not isinstance(child, Mapping):
            raise ConfigError(
                f"--set {'.'.join(path)}: '{'.'.join(path[: i + 1])}' is not a mapping"
            )
        node[part] = dict(child)
        node = node[part]
    node[path[-1]] = value
    return updated


def get_analysis_config(
    name: str,
    config_files: Iterable[str | Path] = (),
    sets: Iterable[str] = (),
) -> dict[str, Any]:
    """Return the tracked parameters of an analysis.

    Parameters
    ----------
    name : str
        Analysis name, e.g. ``'photometry'`` (reads ``jobs/photometry.yaml``).
    config_files : iterable of path
        YAML files of overrides (``--config``), merged in order.
    sets : iterable of str
        ``key.path=value`` overrides (``--set``), applied last.

    Raises
    ------
    ConfigError
        Unknown analysis or parameter, or a file that cannot be read.
    """
    defaults = load_job_defaults(name)
    params = defaults
    for path in config_files:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"--config {path}: {exc.strerror}") from exc
        override = _read_yaml(text, str(path))
        _check_known(override, params, str(path))
        params = deep_merge(params, override)
    for assignment in sets:
        params = apply_set(params, *parse_set(assignment))
    check_types(params, defaults)
    return params


_TYPE_NAMES = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "a mapping",
}


def _kind(value: Any) -> type | None:
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return kind
    return None


def _fits(value: Any, default: Any) -> bool:
    expected, got = _kind(default), _kind(value)
    if default is None or expected is None:
        return True
    if expected is float:
        return got in (int, float)
    return got is expected


def check_types(params: Mapping[str, Any], defaults: Mapping[str, Any], prefix: str = "") -> None:
    """Refuse a value whose type differs from its default's (a whole number for a list, ...).

    The job's YAML defaults are the schema: every parameter keeps its default's type
    (an int is fine for a float; ``null`` defaults take anything), list items keep the
    type of the default's items, and nested mappings are checked key by key. Keys that
    the defaults do not have (new metric names in a mapping) are the job's to check.
    """
    for key, default in defaults.items():
        if key not in params:
            continue
        value, dotted = params[key], f"{prefix}{key}"
        if not _fits(value, default):
            raise ConfigError(
                f"parameter {dotted} must be {_TYPE_NAMES[_kind(default)]}, like its default "
                f"{default!r}, not {value!r}"
            )
        if isinstance(default, Mapping):
            check_types(value, default, dotted + ".")
        elif isinstance(default, list) and default:
            item_kinds = {_kind(v) for v in default}
            if len(item_kinds) == 1:
                example = default[0]
                bad = [v for v in value if not _fits(v, example)]
                if bad:
                    raise ConfigError(
                        f"parameter {dotted} must be a list of {_TYPE_NAMES[_kind(example)]}, "
                        f"like its default {default!r}; {bad[0]!r} is not"
                    )


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


@dataclass(frozen=True)
class ConfigChange:
    """One parameter that differs: ``cached`` or ``current`` is None when absent on that side."""

    key: str
    cached: Any
    current: Any
    cached_present: bool = True
    current_present: bool = True


def diff_config(cached: Mapping[str, Any], current: Mapping[str, Any]) -> list[ConfigChange]:
    """Dotted-key differences between cached and current parameters, sorted by key."""
    old, new = flatten(cached), flatten(current)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if _canonical(a) != _canonical(b):
            changes.append(
                ConfigChange(
                    key,
                    None if a is _MISSING else a,
                    None if b is _MISSING else b,
                    a is not _MISSING,
                    b is not _MISSING,
                )
            )
    return changes


def _canonical(value: Any) -> str:
    if value is _MISSING:
        return "<missing>"
    return json.dumps(value, sort_keys=True, default=str)


def config_hash(params: Mapping[str, Any]) -> str:
    """Short stable hash of a parameter set (or a provenance); stored with every record."""
    return hashlib.sha256(_canonical(dict(params)).encode()).hexdigest()[:12]


def library_versions(distributions: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions a job declares as shaping its results."""
    versions = {}
    for dist in distributions:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def provenance(code_version: str, libraries: Iterable[str]) -> dict[str, Any]:
    """What besides parameters makes a result: nmbatch, the job's code, its libraries.

    Compared like parameters (:func:`diff_config`): a change shows as
    ``libraries.ibl-photometry: cached '0.3.4', current '0.3.5'``.
    """
    return {
        "nmbatch_version": metadata.version("nmbatch"),
        "code_version": str(code_version),
        "libraries": library_versions(libraries),
    }


def _config_lines(params: Mapping[str, Any], indent: str = "") -> list[str]:
    lines = []
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            lines += [f"{indent}{key}:", *_config_lines(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key}: {value!r}")
    return lines


def format_config(name: str, params: Mapping[str, Any]) -> str:
    """The predecessor's display: one parameter a line, nested ones indented under their key."""
    return "\n".join([f"=== {name} config ===", *_config_lines(params), ""])


def format_diff(changes: list[ConfigChange], title: str = "Config changed since last run:") -> str:
    """The predecessor's diff display: each dotted key with its cached and current value."""
    lines = [title, ""]
    for change in changes:
        cached = repr(change.cached) if change.cached_present else "(absent)"
        current = repr(change.current) if change.current_present else "(absent)"
        lines += [f"  {change.key}:", f"    cached:  {cached}", f"    current: {current}", ""]
    return "\n".join(lines)
