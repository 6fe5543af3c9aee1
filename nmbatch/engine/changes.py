"""What changed since the cached records were made: parameters, code, libraries.

:func:`check_config_against` compares a run's parameters and provenance with the
cache's, also when the manifest is gone or damaged (from the hashes every record
carries and the snapshots in ``configs/``). It decides nothing: the caller chooses
recompute / continue / abort, and :meth:`ConfigCheck.raise_if_undecided` stops a run
nobody decided for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nmbatch.engine.config import ConfigChange, diff_config, format_diff
from nmbatch.engine.errors import ConfigChangedError
from nmbatch.engine.index import ItemIndex
from nmbatch.engine.manifest import load_snapshot, now
from nmbatch.engine.outcome import Stamp
from nmbatch.engine.store import Store

DECISIONS = ("recompute", "continue", "abort")


@dataclass
class ConfigCheck:
    """The outcome of comparing a run with its cache.

    ``state`` is 'new' (nothing cached), 'unchanged', or 'changed' (a decision is
    needed). ``unknown`` says why the cached parameters cannot be shown, when they
    cannot (the manifest and its snapshot are both lost).
    """

    state: str
    changes: list[ConfigChange] = field(default_factory=list)
    provenance_changes: list[ConfigChange] = field(default_factory=list)
    unknown: str | None = None
    rebuilt: str | None = None
    cached_hash: str | None = None

    def describe(self) -> str:
        """The diff a person reads before choosing."""
        parts = []
        if self.unknown:
            parts.append(f"Cached parameters unknown: {self.unknown}\n")
        if self.changes:
            parts.append(format_diff(self.changes))
        if self.provenance_changes:
            parts.append(
                format_diff(self.provenance_changes, "Code or libraries changed since last run:")
            )
        return "\n".join(parts)

    def raise_if_undecided(self, decision: str | None, name: str, with_diff: bool = False) -> None:
        """Stop unless ``decision`` is 'recompute' or 'continue' (the message can hold the diff)."""
        everything = self.changes + self.provenance_changes
        diff = f"{self.describe()}\n" if with_diff else ""
        if decision == "abort":
            raise ConfigChangedError(
                "aborted: parameters, code or libraries changed since the last run", everything
            )
        if decision not in ("recompute", "continue"):
            raise ConfigChangedError(
                f"{diff}parameters, code or libraries of {name} changed since the last run "
                f"({'see above' if with_diff else 'see the diff above'}) and there is no terminal "
                "to ask at: rerun with --on-config-change recompute|continue|abort "
                "(or --force to recompute)",
                everything,
            )

    def history_entry(self, decision: str) -> dict[str, Any]:
        """What the manifest keeps of a decision."""
        return {
            "replaced": now(),
            "decision": decision,
            "config_hash": self.cached_hash,
            "changes": [_plain(c) for c in self.changes],
            "provenance_changes": [_plain(c) for c in self.provenance_changes],
            **({"unknown": self.unknown} if self.unknown else {}),
        }


def _plain(change: ConfigChange) -> dict[str, Any]:
    return {"key": change.key, "cached": change.cached, "current": change.current}


def check_config_against(
    store: Store,
    manifest: Mapping[str, Any],
    manifest_problem: str | None,
    index: ItemIndex,
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    stamp: Stamp,
) -> ConfigCheck:
    """Compare this run's parameters and provenance with the cache's (see the module doc)."""
    if manifest:
        cached_config = manifest.get("config", {})
        cached_provenance = manifest.get("provenance") or {}
        return _compare(
            cached_config, cached_provenance, config, provenance, manifest.get("config_hash")
        )
    if not index.status:
        return ConfigCheck("new")
    # The manifest is lost or damaged, but records exist: their hashes say what made them.
    config_hashes = Counter(s.config_hash for s in index.done_states())
    provenance_hashes = Counter(s.provenance_hash for s in index.done_states())
    if set(config_hashes) <= {stamp.config_hash} and set(provenance_hashes) <= {
        stamp.provenance_hash or None
    }:
        return ConfigCheck("unchanged", rebuilt=f"{manifest_problem}: rebuilt from the records")
    common = config_hashes.most_common(1)[0][0] if config_hashes else None
    cached_config = load_snapshot(store, "config", common)
    cached_provenance = load_snapshot(
        store, "provenance", provenance_hashes.most_common(1)[0][0] if provenance_hashes else None
    )
    if cached_config is None:
        hashes = ", ".join(sorted(h for h in config_hashes if h))
        return ConfigCheck(
            "changed",
            unknown=f"{manifest_problem}, and no copy of the parameters with hash {hashes} that "
            f"made the cached records (this run's: {stamp.config_hash})",
            cached_hash=common,
        )
    check = _compare(cached_config, cached_provenance or {}, config, provenance, common)
    check.rebuilt = f"{manifest_problem}: rebuilt from the records and configs/"
    return check


def _compare(
    cached_config: Mapping[str, Any],
    cached_provenance: Mapping[str, Any],
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    cached_hash: str | None,
) -> ConfigCheck:
    changes = diff_config(cached_config, config)
    provenance_changes = diff_config(cached_provenance, provenance) if provenance else []
    state = "changed" if changes or provenance_changes else "unchanged"
    return ConfigCheck(state, changes, provenance_changes, cached_hash=cached_hash)
