"""Step 5: the CMCR's and CMTR's root attributes and file facts."""

from __future__ import annotations

from datetime import UTC, datetime

from nmbatch.mea.steps.registry import StepInput, step


@step(5, needs_raw=True, outputs=("metadata/cmcr_meta", "metadata/cmtr_meta"))
def metadata(inp: StepInput) -> None:
    """Write ``metadata/cmcr_meta`` and ``metadata/cmtr_meta`` (attributes only)."""
    cmcr, cmtr = inp.raw.root_attributes()
    parent = inp.out.require_group("metadata")
    for name, attrs, path in (
        ("cmcr_meta", cmcr, inp.raw.cmcr_path),
        ("cmtr_meta", cmtr, inp.raw.cmtr_path),
    ):
        group = parent.create_group(name)
        group.attrs.update(attrs)
        stat = path.stat()
        group.attrs.update(
            file_path=str(path),
            file_size_bytes=stat.st_size,
            file_modified=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
        )
