"""Indicator-of-compromise matching (``findings --ioc FILE``).

What: reads a CSV of indicators (``type,value[,note]``; a header row is optional) and
reports every match in the snapshot as a finding (rule ``DRA-IOC-<TYPE>``).

Indicator types and what they are matched against:

``sha256``   ``files.sha256`` of every member (RW layers, volumes, image layers) — critical.
``md5``      not matchable: the ``files`` index keeps sha256 only, so md5 indicators are
             skipped and a note says so.
``filename`` base name of every member (exact, case-sensitive) — high.
``path``     shell glob (``fnmatch``) over the path as the owning container/volume/layer
             sees it and over the data-root relative member path — high.
``image``    repository, ``repo:tag``/``repo@digest`` references and ``Config.Image`` of
             containers (glob allowed; ``docker.io/`` and ``library/`` ignored) — critical.
``ip``, ``domain``  container command/env/labels, image config and history, and log lines
             (whole-token match) — high.

Where the evidence sits: ``files``, ``image_tags``, ``containers``, ``images``,
``image_history``, ``logs``.

References: triage catalogue §4 (IOC lists); hashes are never invented in the shipped
sample list (catalogue §3).
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import re
from typing import Any, Iterator

from analyzer.analyses.triage.engine import Context, Finding, na
from analyzer.errors import UsageError

TYPES = {"sha256", "md5", "filename", "path", "image", "ip", "domain"}
ALIASES = {"sha-256": "sha256", "hash": "sha256", "file": "filename", "name": "filename",
           "path_glob": "path", "glob": "path", "image_repo": "image", "repo": "image",
           "ipv4": "ip", "ip-dst": "ip", "hostname": "domain", "fqdn": "domain"}
SEV = {"sha256": "critical", "image": "critical", "filename": "high", "path": "high",
       "ip": "high", "domain": "high"}
ATTACK = {"sha256": ["T1105"], "filename": ["T1105"], "path": ["T1105"],
          "image": ["T1204.003", "T1610"], "ip": ["T1071"], "domain": ["T1071"]}


def read_iocs(path: str) -> tuple[list[dict[str, str]], str]:
    """Parse the IOC CSV; returns the indicators and the file's sha256."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UsageError(f"--ioc {path}: {exc.strerror or exc}") from exc
    text = raw.decode("utf-8-sig", "replace")
    out = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        typ = row[0].strip().lower()
        if n == 1 and typ == "type":
            continue
        typ = ALIASES.get(typ, typ)
        value = row[1].strip() if len(row) > 1 else ""
        if typ not in TYPES or not value:
            raise UsageError(f"--ioc {path}:{n}: expected 'type,value[,note]' with type one of "
                             f"{', '.join(sorted(TYPES))}; got {row!r}")
        out.append({"type": typ, "value": value.lower() if typ in ("sha256", "md5", "domain")
                    else value, "note": ",".join(row[2:]).strip(), "line": str(n)})
    return out, hashlib.sha256(raw).hexdigest()


def _finding(ioc: dict[str, str], obj: dict[str, Any], evidence: dict[str, Any], what: str,
             ioc_sha: str, path: str) -> Finding:
    ev = {"ioc_type": ioc["type"], "ioc_value": ioc["value"], "ioc_note": ioc["note"],
          "ioc_file": path, "ioc_file_sha256": ioc_sha, "ioc_line": int(ioc["line"]), **evidence}
    return Finding(rule=f"DRA-IOC-{ioc['type'].upper()}", title=f"IOC match ({ioc['type']})",
                   severity=SEV.get(ioc["type"], "high"), attack=list(ATTACK.get(ioc["type"], [])),
                   object=obj, evidence=ev,
                   explanation=f"An indicator from the IOC list ({ioc['type']} "
                               f"{ioc['value']!r}{' — ' + ioc['note'] if ioc['note'] else ''}) "
                               f"matched {what}.")


def match_iocs(ctx: Context, path: str, notes: list[str] | None = None) -> list[Finding]:
    """All matches of the IOC file ``path`` in the snapshot."""
    from analyzer.analyses.triage.locate import Locator

    iocs, sha = read_iocs(path)
    out: list[Finding] = []
    md5 = [i for i in iocs if i["type"] == "md5"]
    if md5 and notes is not None:
        notes.append(f"--ioc: {len(md5)} md5 indicator(s) skipped: the files index keeps "
                     "sha256 only (no md5 column)")
    loc = Locator(ctx)
    files = ctx.files
    members = files[files["kind"].astype(str).isin(["file", "hardlink", "symlink"])]
    placed: list[tuple[str, Any, Any]] = []
    merged = re.compile(r"^[^/]+/[^/]+/merged/")  # live overlay views duplicate layer files
    for member, sha256 in zip(members["path"], members["sha256"]):
        p = loc.place(str(member))
        if p is None and merged.match(str(member)):
            continue
        placed.append((str(member), p, na(sha256)))
    for ioc in iocs:
        t, v = ioc["type"], ioc["value"]
        if t in ("sha256", "filename", "path"):
            for member, p, sha256 in placed:
                inner = p.path if p else "/" + member
                if t == "sha256":
                    hit = sha256 == v
                elif t == "filename":
                    hit = inner.rsplit("/", 1)[-1] == v
                else:
                    hit = fnmatch.fnmatchcase(inner, v) or fnmatch.fnmatchcase(member, v)
                if not hit:
                    continue
                obj = p.object if p else {"type": "snapshot", "id": "", "name": "data-root"}
                out.append(_finding(ioc, obj, {"path": inner, "member": member,
                                               "area": p.area if p else "data-root",
                                               "sha256": sha256}, f"the file {inner}", sha, path))
        elif t == "image":
            out.extend(_match_image(ctx, ioc, sha, path))
        elif t in ("ip", "domain"):
            out.extend(_match_text(ctx, ioc, sha, path))
    return out


def _norm_image(ref: str) -> str:
    for head in ("docker.io/library/", "docker.io/", "library/"):
        if ref.startswith(head):
            return ref[len(head):]
    return ref


def _image_hit(pattern: str, ref: str) -> bool:
    pattern, ref = _norm_image(pattern), _norm_image(ref)
    repo = ref.split("@")[0]
    if ":" in repo.rpartition("/")[2]:
        repo = repo.rsplit(":", 1)[0]
    return any(fnmatch.fnmatchcase(x, pattern) for x in (ref, repo))


def _match_image(ctx: Context, ioc: dict[str, str], sha: str, path: str) -> Iterator[Finding]:
    tags = ctx.snap.image_tags
    for iid, ref in zip(tags["image_id"], tags["reference"]):
        if _image_hit(ioc["value"], str(ref)):
            yield _finding(ioc, ctx.image_ref(iid), {"reference": ref, "field":
                                                     "repositories.json"},
                           f"the image reference {ref}", sha, path)
    for c in ctx.containers:
        ref = str(na(c.row["image_ref"]) or "")
        if ref and _image_hit(ioc["value"], ref):
            yield _finding(ioc, c.ref, {"field": "Config.Image", "value": ref,
                                        "file": c.config_path},
                           f"the image container {c.name} was created from ({ref})", sha, path)


def _token(value: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.-])" + re.escape(value) + r"(?![\w-]|\.\w)", re.I)


def _match_text(ctx: Context, ioc: dict[str, str], sha: str, path: str) -> Iterator[Finding]:
    rx = _token(ioc["value"])
    for c in ctx.containers:
        fields = {"Path + Args": " ".join(c.command()), "Config.Env": " ".join(c.env()),
                  "Config.Labels": " ".join(f"{k}={v}" for k, v in c.labels().items()),
                  "HostConfig.ExtraHosts/Dns": " ".join(map(str, (c.hostconfig.get("ExtraHosts")
                                                                  or []) +
                                                        (c.hostconfig.get("Dns") or [])))}
        for field, text in fields.items():
            if rx.search(text):
                yield _finding(ioc, c.ref, {"field": field, "value": text[:500],
                                            "file": c.config_path},
                               f"{field} of container {c.name}", sha, path)
    h = ctx.snap.image_history
    for iid, step, by in zip(h["image_id"], h["step"], h["created_by"]):
        if isinstance(na(by), str) and rx.search(by) and iid in ctx.top_level_images:
            yield _finding(ioc, ctx.image_ref(iid), {"field": f"history[{int(step)}].created_by",
                                                     "value": by[:500]},
                           "a build step of the image", sha, path)
    logs = ctx.snap.logs
    for cid, g in logs.groupby("container_id", sort=False):
        hits = []
        for seq, t, line, src in zip(g["seq"], g["time"], g["line"], g["source"]):
            text = bytes(line).decode("utf-8", "replace")
            if rx.search(text):
                hits.append({"seq": int(seq), "time": na(t), "line": text.rstrip("\n")[:500],
                             "source": str(src)})
        if hits:
            c = ctx.container_by_id(str(cid))
            obj = c.ref if c else {"type": "container", "id": str(cid), "name": str(cid)[:12]}
            yield _finding(ioc, obj, {"field": "log", "lines": hits[:20], "count": len(hits),
                                      "source": hits[0]["source"]},
                           f"{len(hits)} log line(s)", sha, path)


__all__ = ["read_iocs", "match_iocs", "TYPES"]
