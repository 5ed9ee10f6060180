"""``GET /system/df``: ``BuildCache`` and ``BuilderSize`` from the ``build_cache`` table.

The daemon (20.10, API 1.41) builds one ``types.BuildCache`` per record BuildKit's
``DiskUsage`` lists (field order: ID, Parent, Type, Description, InUse, Shared,
Size, CreatedAt, LastUsedAt, UsageCount); no records → ``null``. ``InUse`` is
always false offline (references are in-memory state). Times are
``time.Unix(ns/1e9, ns%1e9)`` - the daemon's local zone, so pass the host's UTC
offset; a missing ``cache.createdAt`` is Go's zero time (always ``Z``), a missing
last use is ``null``. The daemon's order is Go map order (random); records are
returned sorted by ID. ``BuilderSize`` is the sum of every listed record's
``Size`` (the CLI's "Build cache usage" line sums only unshared records).

From API 1.42 (dockerd 24+; the containerd image store samples are dockerd 26.1.5,
API 1.45; moby ``api/server/router/system/system_routes.go`` ``getDiskUsage`` and
``api/types/types.go`` ``BuildCache``): ``Parent`` is emptied and omitted;
the parents are a list whose JSON name is ``" Parents"`` - with a leading space, a
typo in the struct tag (``json:" Parents,omitempty"``), omitted when empty;
``BuilderSize`` is no longer computed (0, ``omitempty``: absent); no records give
``[]`` instead of ``null``.

Reference: ``docs/engine-api.md`` §9; :mod:`analyzer.parsers.buildcache` for the
on-disk facts and sources.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analyzer.formats.timefmt import format_rfc3339nano
from analyzer.render.engine.common import api_at_least, api_version

ZERO_TIME = "0001-01-01T00:00:00Z"
#: the JSON name of ``types.BuildCache.Parents`` - its struct tag has a leading space
#: (moby v26.1.5 ``api/types/types.go``: ``json:" Parents,omitempty"``)
PARENTS_KEY = " Parents"
#: how ``build_cache.parent_id`` joins several parents (``analyzer.parsers.buildcache.PARENT_SEP``)
PARENT_SEP = ","
#: int64 bounds of the stored Unix-ns values (Go rejects anything else)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _ns(raw: Any) -> int | None:
    """Unix ns from a stored JSON value text, as Go's ``Unmarshal`` into int64 reads it."""
    if not isinstance(raw, str):
        return None
    try:
        v = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not INT64_MIN <= v <= INT64_MAX:
        return None
    return v


def _listed(snap: Any) -> pd.DataFrame:
    df = snap.tables["build_cache"]
    return df[df["listed"].fillna(False).astype(bool)].sort_values("cache_id")


def _record(row: Any, tz_offset: int, api: str = "1.41") -> dict[str, Any]:
    created = _ns(row.created_raw)
    last = _ns(row.last_used_raw) if not pd.isna(row.last_used_at) else None
    size = row.size_bytes
    parent = "" if pd.isna(row.parent_id) else str(row.parent_id)
    if api_at_least(api, "1.42"):  # Parent emptied (omitted); " Parents" (sic) omitempty
        head: dict[str, Any] = {"ID": row.cache_id}
        if parent:
            head[PARENTS_KEY] = parent.split(PARENT_SEP)
    else:
        head = {"ID": row.cache_id, "Parent": parent}
    return {
        **head,
        "Type": row.record_type,
        "Description": "" if pd.isna(row.description) else row.description,
        "InUse": False,
        "Shared": bool(row.shared) if not pd.isna(row.shared) else False,
        "Size": 0 if pd.isna(size) else int(size),
        "CreatedAt": format_rfc3339nano(created, tz_offset) if created is not None else ZERO_TIME,
        "LastUsedAt": format_rfc3339nano(last, tz_offset) if last else None,
        "UsageCount": 0 if pd.isna(row.usage_count) else int(row.usage_count),
    }


def build_cache_records(snap: Any, tz_offset: int = 0, api: str | None = None
                        ) -> list[dict[str, Any]] | None:
    """The ``BuildCache`` list of ``GET /system/df`` (none: ``null`` at API 1.41, ``[]``
    from Docker 24 on).

    Args:
        snap: the Snapshot.
        tz_offset: the daemon host's UTC offset in seconds (times are printed in it).
        api: the API generation (default: the snapshot's, :func:`api_version`).
    """
    api = api or api_version(snap)
    rows = [_record(r, tz_offset, api) for r in _listed(snap).itertuples()]
    return rows or ([] if api_at_least(api, "1.42") else None)


def builder_size(snap: Any, api: str | None = None) -> int:
    """``BuilderSize``: the sum of ``Size`` over every listed build-cache record below API
    1.42; 0 from 1.42 on (the daemon no longer computes it and omits the 0)."""
    if api_at_least(api or api_version(snap), "1.42"):
        return 0
    sizes = _listed(snap)["size_bytes"]
    return int(sizes.fillna(0).sum()) if len(sizes) else 0
