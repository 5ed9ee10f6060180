"""Volume rules: web shells and executables in named/anonymous volumes and web roots
(catalogue DX-041, DX-030 for volumes).

Where the evidence sits: ``volumes/<name>/_data/…`` members of the ``files`` index
(``volumes`` table for names and ``container_mounts`` for who mounts them); for web roots
inside containers, the RW-layer changes (:mod:`.changes_view`). Files written to volumes
survive container removal, which makes volumes a favourite place for web shells.

References: ATT&CK T1505.003 Web Shell, T1105 Ingress Tool Transfer; Falco/Sigma web-shell
file-drop rules.
"""

from __future__ import annotations

import posixpath
from typing import Iterator

from analyzer.analyses.triage import patterns as P
from analyzer.analyses.triage.engine import Context, Finding, Rule, na, rule

F = "volumes"


def _vol_ev(ctx: Context, row, name: str, rel: str) -> dict:  # type: ignore[no-untyped-def]
    mode = na(row["mode"])
    return {"volume": name, "path": rel, "member": str(row["path"]), "size": na(row["size"]),
            "mode": oct(int(mode)) if mode is not None else None, "uid": na(row["uid"]),
            "mtime": na(row["mtime"]), "sha256": na(row["sha256"]),
            "mounted_by": ctx.containers_using_volume(name),
            "mount_points": _mount_points(ctx, name)}


def _mount_points(ctx: Context, name: str) -> list[str]:
    m = ctx.snap.container_mounts
    return sorted(set(m[m["name"] == name]["destination"].dropna().astype(str)))


@rule("DRA-VO-001", "Web shell in volume", "high", ["T1505.003"], F, "DX-041")
def webshell_volume(ctx: Context, r: Rule) -> Iterator[Finding]:
    vf = ctx.volume_files
    for (_, row), name, rel in zip(vf.iterrows(), vf["volume"], vf["rel"]):
        if str(row["kind"]) not in ("file", "hardlink"):
            continue
        if not str(rel).lower().endswith(P.WEBSHELL_EXT):
            continue
        yield r.finding(ctx.volume_ref(name), _vol_ev(ctx, row, name, rel),
                        f"A server-side script ({rel}) sits in volume {name}. Web shells are "
                        "dropped into volumes because they survive container re-creation and "
                        "are served by every container that mounts the volume. CMS uploads and "
                        "plugins are the benign explanation; check the mtime against deploys.")


@rule("DRA-VO-002", "Executable in volume", "medium", ["T1105"], F, "DX-030")
def exec_volume(ctx: Context, r: Rule) -> Iterator[Finding]:
    vf = ctx.volume_files
    for (_, row), name, rel in zip(vf.iterrows(), vf["volume"], vf["rel"]):
        if str(row["kind"]) not in ("file", "hardlink") or not int(na(row["size"]) or 0):
            continue
        mode = int(na(row["mode"]) or 0)
        if not mode & 0o111 or str(rel).lower().endswith(P.WEBSHELL_EXT):
            continue
        hidden = any(p.startswith(".") for p in str(rel).strip("/").split("/"))
        sev = "high" if hidden or posixpath.basename(str(rel)).lower() in P.MALWARE_NAMES \
            else r.severity
        yield r.finding(ctx.volume_ref(name), _vol_ev(ctx, row, name, rel),
                        f"An executable file ({rel}) is stored in volume {name}; volumes outlive "
                        "containers, so a payload there is re-run by any container that mounts "
                        "it. Application data volumes rarely hold executables.", severity=sev)


@rule("DRA-VO-003", "Server-side script added under a web root in a container", "high",
      ["T1505.003"], F, "DX-041")
def webshell_rw(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for ch in ctx.changes(c.id):
            if ch.kind != 1 or ch.row is None or str(ch.row["kind"]) != "file":
                continue
            root = next((w for w in P.WEB_ROOTS if ch.path.startswith(w + "/")), None)
            if root is None or not ch.path.lower().endswith(P.WEBSHELL_EXT):
                continue
            yield r.finding(c.ref, {"path": ch.path, "member": ch.member, "web_root": root,
                                    "size": na(ch.row["size"]), "mtime": na(ch.row["mtime"]),
                                    "sha256": na(ch.row["sha256"])},
                            f"A script ({ch.path}) was added under the web root {root} inside "
                            "the running container, not shipped by the image: the classic "
                            "web-shell drop after an application exploit.")
