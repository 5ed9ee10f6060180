"""A container's RW-layer changes (``docker diff``) for the triage rules.

What: :func:`rw_changes` lists what a container added (1), modified (0) and deleted (2)
relative to its image, each with the ``files`` index row of the RW-layer member.

Why: the ``rwlayer`` rules (dropped executables, cron, ssh keys, account files, deleted
files) only make sense for what the container itself changed, not for what the image
shipped.

Where the evidence sits: the RW directory is the ``layer_dirs`` row with role
``container-rw`` (``overlay2/<mount-id>/diff``, ``vfs/dir/<mount-id>`` ...); its lower
stack is the ``-init`` layer and the image's layer directories (``layers.cache_id``).
Overlay whiteouts are ``files.whiteout`` (char 0:0 or aufs ``.wh.``), opaque dirs
``files.opaque``.

When :func:`analyzer.analyses.changes.container_changes` exists (the ``diff`` command's
exact daemon-equivalent implementation) it is used for the path list and kinds; this
module then only attaches index rows. Otherwise a local derivation is used: stacked
drivers (overlay2, aufs, fuse-overlayfs) classify each RW entry against the union of
lower layers; full-copy drivers (vfs, overlay v1, btrfs, zfs) compare the RW copy with its
parent copy (naive diff on kind, size, mode, owner, mtime, sha256).

References: moby ``daemon/graphdriver/overlay2`` (``Changes`` via
``archive.OverlayChanges``), ``pkg/archive/changes.go``; Engine API
``GET /containers/{id}/changes``.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pandas as pd

from analyzer.analyses.triage.engine import Change, Context, na

#: drivers whose layer directories each hold a full copy of the filesystem
FULL_COPY_DRIVERS = {"vfs", "overlay", "btrfs", "zfs"}


def _external_changes(snap: Any, cid: str) -> list[dict[str, Any]] | None:
    try:
        from analyzer.analyses.changes import container_changes  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        return list(container_changes(snap, cid))
    except Exception:  # noqa: BLE001 - fall back to the local derivation
        return None


def rw_changes(ctx: Context, cid: str) -> list[Change]:
    """The container's changes, sorted by path (see the module docstring)."""
    rw = ctx.rw_dir(cid)
    if rw is None or not isinstance(na(rw["content_path"]), str):
        return []
    rw_files = ctx.layer_files(rw["content_path"])
    rw_files = rw_files[rw_files["rel"] != ""]
    by_rel = {rel: row for rel, (_, row) in zip(rw_files["rel"], rw_files.iterrows())}
    external = _external_changes(ctx.snap, cid)
    if external is not None:
        out = []
        for ch in external:
            path = str(ch.get("Path"))
            kind = int(ch.get("Kind", 0))
            row = by_rel.get(path)
            if row is None and kind == 2:
                row = _whiteout_row(by_rel, path)
            member = str(row["path"]) if row is not None else None
            out.append(Change(path=path, kind=kind, row=row, member=member))
        return sorted(out, key=lambda c: c.path)
    driver = str(na(rw.get("driver")) or "")
    if driver in FULL_COPY_DRIVERS:
        return _naive(ctx, cid, rw_files, by_rel)
    return _stacked(ctx, cid, rw_files)


def _whiteout_row(by_rel: dict[str, pd.Series], path: str) -> pd.Series | None:
    d, b = posixpath.split(path)
    return by_rel.get(posixpath.join(d, ".wh." + b))


def _lower_dirs(ctx: Context, cid: str) -> list[str]:
    """Content folders under the RW layer, top first: init layer, then image layers."""
    out = []
    init = ctx.layer_dir_by_owner.get(("container-init", cid))
    if init is not None and isinstance(na(init["content_path"]), str):
        out.append(init["content_path"])
    view = ctx.container_by_id(cid)
    image_id = na(view.row.get("image_id")) if view is not None else None
    if not image_id:
        return out
    images = ctx.snap.images
    hit = images[images["image_id"] == image_id]
    if hit.empty:
        return out
    chain = na(hit.iloc[0]["top_chain_id"])
    layers = ctx.snap.layers.set_index("chain_id")
    seen = set()
    while chain and chain in layers.index and chain not in seen:
        seen.add(chain)
        row = layers.loc[chain]
        cache = na(row["cache_id"])
        d = ctx.layer_dir_by_id.get(str(cache)) if cache else None
        if d is not None and isinstance(na(d["content_path"]), str):
            out.append(d["content_path"])
        chain = na(row["parent_chain_id"])
    return out


def _lower_set(ctx: Context, dirs: list[str]) -> set[str]:
    """Paths visible through the lower stack (bottom-up, whiteouts and opaque dirs applied)."""
    present: set[str] = set()
    for cp in reversed(dirs):
        f = ctx.layer_files(cp)
        f = f[f["rel"] != ""]
        for rel, wh, op in zip(f["rel"], f["whiteout"], f["opaque"]):
            name = posixpath.basename(rel)
            if bool(na(wh)):
                target = rel
                if name.startswith(".wh."):
                    target = posixpath.join(posixpath.dirname(rel), name[4:])
                _drop(present, target)
                continue
            if name.startswith(".wh."):  # aufs metadata (.wh..wh.plnk, .wh..wh.opq)
                continue
            if bool(na(op)):
                _drop(present, rel, keep_self=True)
            present.add(rel)
    return present


def _drop(present: set[str], path: str, keep_self: bool = False) -> None:
    head = path + "/"
    for p in [p for p in present if p.startswith(head)]:
        present.discard(p)
    if not keep_self:
        present.discard(path)


def _stacked(ctx: Context, cid: str, rw_files: pd.DataFrame) -> list[Change]:
    lower = _lower_set(ctx, _lower_dirs(ctx, cid))
    out = []
    for rel, (_, row) in zip(rw_files["rel"], rw_files.iterrows()):
        name = posixpath.basename(rel)
        if bool(na(row["whiteout"])):
            target = rel
            if name.startswith(".wh."):
                target = posixpath.join(posixpath.dirname(rel), name[4:])
            out.append(Change(path=target, kind=2, row=row, member=str(row["path"])))
            continue
        if name.startswith(".wh."):
            continue
        kind = 0 if rel in lower else 1
        out.append(Change(path=rel, kind=kind, row=row, member=str(row["path"])))
    return sorted(out, key=lambda c: c.path)


def _naive(ctx: Context, cid: str, rw_files: pd.DataFrame,
           by_rel: dict[str, pd.Series]) -> list[Change]:
    dirs = _lower_dirs(ctx, cid)
    if not dirs:
        return [Change(path=r, kind=1, row=row, member=str(row["path"]))
                for r, row in sorted(by_rel.items())]
    parent = ctx.layer_files(dirs[0])
    parent = parent[parent["rel"] != ""]
    pby = {rel: row for rel, (_, row) in zip(parent["rel"], parent.iterrows())}
    out = []
    for rel, row in by_rel.items():
        old = pby.get(rel)
        if old is None:
            out.append(Change(path=rel, kind=1, row=row, member=str(row["path"])))
        elif _differs(old, row):
            out.append(Change(path=rel, kind=0, row=row, member=str(row["path"])))
    for rel, old in pby.items():
        if rel not in by_rel:
            out.append(Change(path=rel, kind=2, row=None, member=None))
    return sorted(out, key=lambda c: c.path)


def _differs(a: pd.Series, b: pd.Series) -> bool:
    if "hardlink" in (str(a["kind"]), str(b["kind"])):
        return False  # the archive stores a second name of an inode as a link: not comparable
    for col in ("kind", "mode", "uid", "gid", "linkname"):
        if na(a[col]) != na(b[col]):
            return True
    if str(a["kind"]) == "dir":
        return na(a["mtime"]) != na(b["mtime"])
    for col in ("size", "mtime", "sha256"):
        if na(a[col]) != na(b[col]):
            return True
    return False


__all__ = ["rw_changes"]
