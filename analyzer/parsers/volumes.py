"""Volumes: ``volumes/metadata.db`` (bbolt bucket ``volumes``) and ``volumes/<name>/``.

A volume is listed when the database names it or when its folder exists
(volumes created before 1.11 have no database entry). Its creation time, as
the API reports it, is the ctime of ``volumes/<name>`` (only present when the
archive kept ctimes, e.g. GNU tar ``--format=posix``); its size follows the
daemon's directory walk of ``_data``.

Reference: ``shared/docs/docker-root-format.md`` §9.2, §5.2.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analyzer.errors import BboltFormatError
from analyzer.parsers.drivers import content_sizes, unique_groups
from analyzer.parsers.rootview import RootView

ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def read_volume_db(view: RootView) -> dict[str, dict[str, Any]]:
    """Volume records of ``volumes/metadata.db`` by name (empty when absent)."""
    from analyzer.formats.bbolt import BboltDB

    rel = "volumes/metadata.db"
    data = view.read(rel)
    if data is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    try:
        db = BboltDB(data)
        bucket = db.root().bucket(b"volumes")
        if bucket is None:
            return {}
        for key, value, is_bucket in bucket.items():
            if is_bucket:  # the volume store keeps no nested buckets: a damaged element
                view.issues.add("bbolt.malformed", f"{rel}: entry {key[:80]!r} is marked as a "
                                "nested bucket, which the volume store never writes (damaged "
                                "page?)", path=rel)
                continue
            if not value:
                continue
            name = key.decode("utf-8", "replace")
            try:
                rec = json.loads(value)
            except ValueError as exc:
                view.issues.add("json.malformed", f"{rel}: record {name!r} does not parse ({exc})",
                                path=rel)
                continue
            out[name] = rec if isinstance(rec, dict) else {}
    except BboltFormatError as exc:
        view.issues.add("bbolt.malformed", f"{rel}: {exc}", path=rel)
    return out


def parse_volumes(view: RootView, mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per volume, with sizes and reference counts."""
    db = read_volume_db(view)
    files = view.files
    dir_names = unique_groups(files, r"^volumes/([^/]+)/")
    dir_rows = files[files["path"].str.fullmatch(r"volumes/[^/]+") & (files["kind"] == "dir")]
    dir_times = {p.split("/", 1)[1]: (c, m) for p, c, m in
                 zip(dir_rows["path"], dir_rows["ctime"], dir_rows["mtime"])}
    dir_names |= set(dir_times)
    sizes = content_sizes(files, r"^volumes/([^/]+)/_data(?:/(.*))?$").set_index("dir_id")
    refs: dict[str, set[str]] = {}
    for mp in mounts:
        if mp.get("name"):
            refs.setdefault(mp["name"], set()).add(mp["container_id"])
    rows = []
    for name in sorted(set(db) | dir_names):
        rec = db.get(name, {})
        labels = rec.get("Labels")
        opts_doc = view.json(f"volumes/{name}/opts.json", "volume options")
        ctime, _mtime = dir_times.get(name, (None, None))
        has_data = view.exists(f"volumes/{name}/_data")
        rows.append({
            "name": name, "driver": rec.get("Driver") or ("local" if name in dir_names else None),
            "labels_json": json.dumps(labels) if labels is not None else None,
            "options_json": json.dumps(rec.get("Options")) if rec.get("Options") is not None
            else (json.dumps(opts_doc) if opts_doc is not None else None),
            "anonymous": isinstance(labels, dict) and ANONYMOUS_LABEL in labels,
            "created_at": ctime if ctime is not None and not pd.isna(ctime) else None,
            "in_db": name in db, "dir_present": has_data,
            "files": int(sizes.loc[name, "files"]) if name in sizes.index else (0 if has_data else None),
            "size_bytes": int(sizes.loc[name, "content_bytes"]) if name in sizes.index
            else (0 if has_data else None),
            "ref_count": len(refs.get(name, ())),
        })
    for name, cids in refs.items():
        if name not in db and name not in dir_names:
            view.issues.add("volume.missing", f"volume {name!r} used by {len(cids)} container(s) "
                            "is not in the snapshot", path=f"volumes/{name}", severity="info")
    return rows
