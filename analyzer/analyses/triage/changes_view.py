"""A container's RW-layer changes (``docker diff``) for the triage rules.

What: :func:`rw_changes` lists what a container added (1), modified (0) and deleted (2)
relative to its image, each with the ``files`` index row of the RW-layer member.

Why: the ``rwlayer`` rules (dropped executables, cron, ssh keys, account files, deleted
files) only make sense for what the container itself changed, not for what the image
shipped. The change list is the ``diff`` command's own
(:func:`analyzer.analyses.changes.container_changes`, equal to the daemon's); this
module only attaches the index rows the rules quote as evidence.
"""

from __future__ import annotations

import posixpath

import pandas as pd

from analyzer.analyses.changes import container_changes
from analyzer.analyses.triage.engine import Change, Context, na
from analyzer.errors import AnalyzerError, ExportError


def rw_changes(ctx: Context, cid: str) -> list[Change]:
    """The container's changes, sorted by path, with their RW-layer index rows."""
    rw = ctx.rw_dir(cid)
    if rw is None or not isinstance(na(rw["content_path"]), str):
        return []
    try:
        changes = container_changes(ctx.snap, cid) or []
    except ExportError:  # a damaged case table is the user's to hear about, not "no changes"
        raise
    except AnalyzerError:  # driver contents not in the snapshot (zfs, devicemapper)
        return []
    rw_files = ctx.layer_files(rw["content_path"])
    rw_files = rw_files[rw_files["rel"] != ""]
    by_rel = {rel: row for rel, (_, row) in zip(rw_files["rel"], rw_files.iterrows())}
    out = []
    for ch in changes:
        path = str(ch.get("Path"))
        kind = int(ch.get("Kind", 0))
        row = by_rel.get(path)
        if row is None and kind == 2:
            row = _whiteout_row(by_rel, path)
        member = str(row["path"]) if row is not None else None
        out.append(Change(path=path, kind=kind, row=row, member=member))
    return sorted(out, key=lambda c: c.path)


def _whiteout_row(by_rel: dict[str, pd.Series], path: str) -> pd.Series | None:
    """The aufs-style ``.wh.<name>`` entry that records a deletion, if any."""
    d, b = posixpath.split(path)
    return by_rel.get(posixpath.join(d, ".wh." + b))


__all__ = ["rw_changes"]
