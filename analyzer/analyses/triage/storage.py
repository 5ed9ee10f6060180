"""Storage and evidence-quality rules: orphaned layer storage, BuildKit use, live capture,
lost archive metadata (catalogue DX-027, DX-062, DX-063, DX-064).

Where the evidence sits: ``layer_dirs`` (role ``orphan``, ``has_merged``), ``layers``,
``containers``, ``files`` (char devices, xattrs, owners), ``build_cache`` and the
``buildkit/`` folder.

References: ATT&CK T1070.004 File Deletion, T1612 Build Image on Host;
docker-forensics-toolkit USAGE ("images without a corresponding container may indicate a
deleted container").
"""

from __future__ import annotations

from typing import Iterator

from analyzer.analyses.triage.engine import Context, Finding, Rule, na, rule

F = "storage"
SNAPSHOT = {"type": "snapshot", "id": "", "name": "evidence"}


@rule("DRA-ST-001", "Orphaned layer storage (deleted container or image)", "low", ["T1070.004"],
      F, "DX-027")
def orphans(ctx: Context, r: Rule) -> Iterator[Finding]:
    d = ctx.snap.layer_dirs
    for _, row in d[d["role"].astype(str) == "orphan"].iterrows():
        files = int(na(row["files"]) or 0)
        yield r.finding({"type": "layer", "id": str(row["dir_id"]), "name": str(row["dir_id"])},
                        {"path": str(row["path"]), "content_path": na(row["content_path"]),
                         "files": files, "content_bytes": na(row["content_bytes"])},
                        "A storage-driver directory that no image layer or container references: "
                        "left over from a removed container or image (whose configuration is "
                        "gone) or from BuildKit/an interrupted pull. Its files may be the only "
                        "remains of a deleted attacker container.",
                        severity="medium" if files > 1 and not str(row["dir_id"]).isalnum()
                        else r.severity)


@rule("DRA-ST-002", "Container layer without container configuration", "medium", ["T1070.004"], F,
      "DX-027")
def dangling_mounts(ctx: Context, r: Rule) -> Iterator[Finding]:
    files = ctx.files["path"]
    known = set(ctx.snap.containers["container_id"])
    mounts = files[files.str.match(r"^image/[^/]+/layerdb/mounts/[0-9a-f]{64}$")]
    for p in mounts:
        cid = p.rsplit("/", 1)[1]
        if cid in known:
            continue
        yield r.finding({"type": "container", "id": cid, "name": cid[:12]},
                        {"path": p, "missing": f"containers/{cid}/config.v2.json"},
                        "The layer store still records a writable layer for a container whose "
                        "configuration folder is gone — the container was removed incompletely "
                        "or its folder was deleted by hand.")


@rule("DRA-ST-003", "BuildKit used on this host", "low", ["T1612"], F, "DX-062")
def buildkit(ctx: Context, r: Rule) -> Iterator[Finding]:
    bc = ctx.snap.build_cache
    files = ctx.files
    bk = files[files["path"].str.startswith("buildkit/")]
    if bc.empty and not bk["path"].str.endswith(".db").any():
        return
    newest = na(bk["mtime"].max()) if len(bk) else None
    yield r.finding(SNAPSHOT, {"path": "buildkit/", "cache_records": len(bc),
                               "newest_mtime": newest},
                    "BuildKit state with build-cache records is present: images were built on "
                    "this host. Compare the times with the incident window.")


@rule("DRA-ST-004", "Snapshot captured live", "info", [], F, "DX-063")
def live_capture(ctx: Context, r: Rule) -> Iterator[Finding]:
    d = ctx.snap.layer_dirs
    live = d[d["has_merged"].fillna(False).astype(bool)]
    if live.empty:
        return
    yield r.finding(SNAPSHOT, {"merged_dirs": sorted(live["path"].astype(str))[:50],
                               "count": len(live)},
                    "Mounted overlay 'merged' views were captured: the tar was made while "
                    "containers ran. Their files duplicate layer content and may be "
                    "inconsistent; analyses use the layer directories, not merged/.")


@rule("DRA-ST-005", "Evidence lost file metadata", "info", [], F, "DX-064")
def lost_metadata(ctx: Context, r: Rule) -> Iterator[Finding]:
    f = ctx.files
    if f.empty:
        return
    problems = []
    if not (f["kind"].astype(str) == "char").any():
        problems.append("no character devices: overlay whiteouts (deletions) cannot be seen")
    if f["xattrs_json"].isna().all():
        problems.append("no extended attributes: opaque directories and file capabilities "
                        "are unknown")
    uids = set(f["uid"].dropna().astype(int))
    if len(uids) == 1 and 0 not in uids:
        problems.append(f"every member owned by uid {uids.pop()}: archived by a non-root user")
    if f["atime"].isna().all():
        problems.append("no atime/ctime: only modification times are available")
    if not problems:
        return
    yield r.finding(SNAPSHOT, {"problems": problems},
                    "The archive does not carry all file metadata, so some detections cannot "
                    "work on it: " + "; ".join(problems) + ".")
