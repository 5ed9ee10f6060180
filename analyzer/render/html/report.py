"""``python -m analyzer report``: one self-contained HTML file about a data-root.

The page holds inline CSS, charts as inline SVG (:mod:`analyzer.render.plots`),
plain HTML tables (readable with JavaScript off; a few lines of inline script add
sorting and filtering) and no URL at all: a Content-Security-Policy forbids any
fetch, and everything taken from the evidence is escaped by jinja2's autoescape.

Sections: summary (provenance, layout, counts, issues, a triage badge), triage
(the findings of :mod:`analyzer.analyses.triage`, severity first, and the layer
integrity verdicts of :mod:`analyzer.analyses.verify` when the caller passes them:
that check streams the evidence again, so the report never runs it itself), storage (the
``docker system df`` numbers and where the bytes are), the image/layer DAG,
duplicates, waste, images, containers, volumes, networks, orphans and growth.
Long tables are cut at ``max_rows`` rows ("N more not shown") and the DAG draws
at most ``max_dag_images`` images, so a root with hundreds of images still gives
a page of a few hundred kilobytes. Every number comes from
:mod:`analyzer.analyses.storage` or the ``GET /system/df`` document; the page
states the tool version, the parameters and the evidence sha256.

:func:`report_model` returns the data the template renders (tests and notebooks
can read it); :func:`render_report` returns the HTML text.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jinja2
import pandas as pd
from markupsafe import Markup

from analyzer.analyses import storage
from analyzer.model.values import loads_json as _loads
from analyzer.model.values import na
from analyzer.render import plots
from analyzer.render.engine.common import Context
from analyzer.render.engine.system import system_df
from analyzer.render.tables import df_summary, human_size, info_doc, system_df_table

TEMPLATE = "report.html.j2"
MAX_ROWS = 200
MAX_DAG_IMAGES = 60


@dataclass
class Cell:
    """One table cell: display text, plus an optional sort key, tooltip and CSS class."""

    text: str
    sort: Any = None
    title: str | None = None
    cls: str = ""


@dataclass
class Table:
    """A table as the template draws it: at most ``max_rows`` rows of ``total``."""

    id: str
    columns: list[tuple[str, str]]  # (header, css class: "num", "mono" or "")
    rows: list[list[Cell]] = field(default_factory=list)
    total: int = 0
    empty: str = "none"

    @property
    def hidden(self) -> int:
        """Rows not shown."""
        return self.total - len(self.rows)


# -- cell helpers -----------------------------------------------------------------------
def _na(v: Any) -> bool:
    return na(v) is None


def size_cell(n: Any) -> Cell:
    """Bytes as a human size; exact bytes in the tooltip and the sort key."""
    if _na(n) or (isinstance(n, (int, float)) and n < 0):
        return Cell("n/a", -1, None, "num")
    n = int(n)
    return Cell(human_size(n), n, f"{n:,} bytes", "num")


def int_cell(n: Any) -> Cell:
    """An integer (right aligned)."""
    return Cell("" if _na(n) else str(int(n)), -1 if _na(n) else int(n), None, "num")


def id_cell(ident: Any, n: int = 12) -> Cell:
    """An id shortened like docker prints it; the full id in the tooltip."""
    if _na(ident):
        return Cell("")
    s = str(ident)
    return Cell(s.split(":", 1)[-1][:n], s, s, "mono")


def text_cell(v: Any, cls: str = "") -> Cell:
    """Any value as text (NA → empty)."""
    if _na(v):
        return Cell("", "", None, cls)
    if isinstance(v, bool):
        return Cell("yes" if v else "no", int(v), None, cls)
    if isinstance(v, pd.Timestamp):
        return Cell(v.strftime("%Y-%m-%d %H:%M:%S UTC"), v.isoformat(), v.isoformat(),
                    cls or "nowrap")
    return Cell(str(v), str(v), None, cls)


def flag_cell(v: Any, warn: bool = False) -> Cell:
    """A boolean as yes/no, highlighted when ``warn`` and true."""
    if _na(v):
        return Cell("", -1)
    return Cell("yes" if v else "no", int(bool(v)), None, "warn" if (warn and v) else "")


def _table(id_: str, columns: list[tuple[str, str]], rows: Iterable[list[Cell]], total: int,
           max_rows: int, empty: str = "none") -> Table:
    rows = list(rows)
    return Table(id_, columns, rows[:max_rows], total, empty)


# -- sections ---------------------------------------------------------------------------
def _summary(snap: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    from analyzer import __version__

    info = info_doc(snap)
    m = info["snapshot"]
    c = snap.containers
    facts = [
        ("Evidence file", os.path.basename(str(m.get("evidence_path") or "")) or "?"),
        ("Evidence path", m.get("evidence_path")),
        ("Evidence size", f"{human_size(m.get('evidence_bytes') or 0)} "
                          f"({int(m.get('evidence_bytes') or 0):,} bytes; "
                          f"{m.get('evidence_kind')}, {m.get('compression')})"),
        ("Evidence sha256", f"{m.get('evidence_sha256')} (of the {m.get('sha256_kind')})"),
        ("Read completely", "yes" if m.get("complete") else "NO (damaged archive)"),
        ("Data-root prefix", m.get("root_prefix") or "(archive root)"),
        ("Data-roots found", ", ".join(_loads(m.get("roots_found")) or []) or "none"),
        ("Host data-root", m.get("host_data_root") or "unknown"),
        ("Storage driver", m.get("driver") or "none"),
        *_store_facts(m),
        ("Docker version hints", ", ".join(map(str, _loads(m.get("docker_version_hints")) or []))
         or "none"),
        ("Acquired about", m.get("acquired_at")),
        ("Read by", f"docker-root analyzer {m.get('tool_version')} "
                    f"(parameters {m.get('parameters')})"),
        ("Report by", f"docker-root analyzer {__version__} "
                      f"(parameters {json.dumps(parameters, sort_keys=True)})"),
    ]
    running = int(c["running"].fillna(False).sum())
    counts = [
        ("images", f"{len(storage.listed_images(snap))} listed, {len(snap.images)} in all"),
        ("tags", str(len(snap.image_tags))),
        ("layers", str(len(snap.layers))),
        ("layer directories", str(len(snap.layer_dirs))),
        ("containers", f"{len(c)} ({running} running)"),
        ("volumes", str(len(snap.volumes))),
        ("networks", str(len(snap.networks))),
        ("log records", str(len(snap.logs))),
        ("files indexed", str(len(snap.files))),
    ]
    issues = snap.issues
    sev = issues["severity"].astype(str).value_counts().to_dict() if len(issues) else {}
    return {"facts": [(k, "" if _na(v) else str(v)) for k, v in facts], "counts": counts,
            "issue_counts": sev, "meta": m}


#: what each image store means, as the summary says it
STORE_WORDS = {
    "graphdriver": "graphdriver: images in image/{driver}/, layers in {driver}/ of the data-root",
    "containerd": "containerd: images in containerd's meta.db and content store, layers and "
                  "containers' RW layers as {driver} snapshots",
    "both": "both: a graphdriver store and a containerd root are present; the daemon "
            "used the {driver} one",
    "none": "none: no image store found",
}


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _store_facts(m: dict[str, Any]) -> list[tuple[str, Any]]:
    """Which image store the root used and, for containerd, where its root and evidence are."""
    from analyzer.model.evidence import evidence_parts

    store = _text(m.get("image_store"))
    driver = (_text(m.get("driver")) or "?").split(",")[0]
    facts: list[tuple[str, Any]] = [
        ("Image store", STORE_WORDS.get(store or "", "{store}").format(driver=driver,
                                                                       store=store) if store
         else None)]
    croot = m.get("containerd_root")
    if isinstance(croot, str):
        outside = len(evidence_parts(m)) > 1
        facts.append(("Containerd root", f"{croot or '(archive root)'} (" + (
            "a system containerd outside the data-root; its files show as @containerd/…"
            if outside else "dockerd's own containerd, inside the data-root") + ")"))
        ev = _text(m.get("containerd_evidence_path"))
        if ev:
            facts += [("Containerd evidence", os.path.basename(ev)),
                      ("Containerd evidence path", ev),
                      ("Containerd evidence sha256", m.get("containerd_evidence_sha256"))]
        else:
            facts.append(("Containerd evidence", "the evidence file above"))
    elif store in ("containerd", "both"):
        facts.append(("Containerd root", "NOT IN THE EVIDENCE: this root used the containerd "
                      "image store, but the archive holds no containerd root, so its images "
                      "and layers are not in it (tar /var/lib/containerd too)"))
    return facts


def _issues_table(snap: Any, max_rows: int) -> Table:
    rows = [[text_cell(r.severity, "warn" if str(r.severity) in ("warning", "error") else ""),
             text_cell(r.code, "mono"), text_cell(r.message), text_cell(r.path, "mono")]
            for r in snap.issues.itertuples()]
    return _table("t-issues", [("severity", ""), ("code", "mono"), ("message", ""),
                               ("path", "mono")], rows, len(rows), max_rows,
                  "no issue: the evidence read cleanly")


def _graph_stats(snap: Any) -> dict[str, Any]:
    g = snap.graph
    nodes = Counter(kind for _, kind in g.nodes(data="kind"))
    edges = Counter(kind for _, _, kind in g.edges(data="kind"))
    return {"nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
            "node_kinds": sorted(nodes.items()), "edge_kinds": sorted(edges.items())}


def _layers_table(lu: pd.DataFrame, max_rows: int) -> Table:
    lu = lu.sort_values(["size_bytes", "chain_id"], ascending=[False, True])
    rows = [[id_cell(r.chain_id), id_cell(r.cache_id, 26), size_cell(r.size_bytes),
             int_cell(r.images), int_cell(r.containers), text_cell(r.sharing)]
            for r in lu.itertuples()]
    return _table("t-layers", [("chain id", "mono"), ("directory", "mono"), ("size", "num"),
                               ("images", "num"), ("containers", "num"), ("sharing", "")],
                  rows, len(rows), max_rows)


def _images_table(usage: pd.DataFrame, max_rows: int) -> Table:
    rows = [[text_cell(r.tags), id_cell(r.image_id), text_cell(r.created_at),
             size_cell(r.size_bytes), size_cell(r.shared_bytes), size_cell(r.unique_bytes),
             size_cell(r.freed_if_deleted_bytes), int_cell(r.containers)]
            for r in usage.itertuples()]
    return _table("t-images", [("tags", ""), ("image id", "mono"), ("created", ""),
                               ("size", "num"), ("shared", "num"), ("unique", "num"),
                               ("freed if deleted", "num"), ("containers", "num")],
                  rows, len(rows), max_rows)


def _ports(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        if p.get("PublicPort"):
            out.append(f"{p.get('IP', '')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
        else:
            out.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(dict.fromkeys(out))


def _image_cell(ref: Any) -> Cell:
    """The image a container names; a bare image id is shortened like ``docker ps``."""
    if isinstance(ref, str) and ref.startswith("sha256:") and len(ref) == 71:
        return id_cell(ref)
    return text_cell(ref)


def _containers_table(snap: Any, doc: dict[str, Any], max_rows: int) -> Table:
    docs = {d["Id"]: d for d in doc["Containers"]}
    mounts: dict[str, list[str]] = {}
    for m in snap.container_mounts.itertuples():
        src = m.name if not _na(m.name) else m.source
        text = f"{'' if _na(m.type) else m.type} {'' if _na(src) else src} → {m.destination}"
        if not _na(m.rw) and not m.rw:
            text += " (ro)"
        mounts.setdefault(m.container_id, []).append(text)
    rows = []
    c = snap.containers.sort_values(["created_at", "container_id"], ascending=[False, True])
    for r in c.itertuples():
        d = docs.get(r.container_id, {})
        status = d.get("Status") or ("" if _na(r.status) else str(r.status))
        rows.append([
            text_cell(r.name), id_cell(r.container_id),
            Cell(status or str(r.status), str(r.status), f"state: {r.status}",
                 "nowrap ok" if r.running is True else "nowrap"),
            _image_cell(d.get("Image") or r.image_ref), flag_cell(r.privileged, warn=True),
            text_cell(r.network_mode, "warn" if r.network_mode == "host" else ""),
            Cell("\n".join(mounts.get(r.container_id, [])), len(mounts.get(r.container_id, [])),
                 None, "paths"),
            size_cell(r.size_rw_bytes), text_cell(_ports(d.get("Ports") or []), "mono"),
            text_cell(r.created_at)])
    return _table("t-containers", [("name", ""), ("id", "mono"), ("status", ""), ("image", ""),
                                   ("privileged", ""), ("network", ""), ("mounts", ""),
                                   ("RW size", "num"), ("ports", "mono"), ("created", "")],
                  rows, len(rows), max_rows)


def _volumes_table(snap: Any, max_rows: int) -> Table:
    names = dict(zip(snap.containers["container_id"], snap.containers["name"]))
    users: dict[str, set[str]] = {}
    for m in snap.container_mounts.itertuples():
        if not _na(m.name):
            users.setdefault(m.name, set()).add(names.get(m.container_id, m.container_id[:12]))
    v = snap.volumes.sort_values(["size_bytes", "name"], ascending=[False, True])
    rows = [[text_cell(r.name, "mono"), text_cell(r.driver), flag_cell(r.anonymous),
             size_cell(r.size_bytes), int_cell(r.ref_count),
             text_cell(", ".join(sorted(users.get(r.name, set())))), text_cell(r.created_at)]
            for r in v.itertuples()]
    return _table("t-volumes", [("name", "mono"), ("driver", ""), ("anonymous", ""),
                                ("size", "num"), ("containers", "num"), ("used by", ""),
                                ("created", "")], rows, len(rows), max_rows)


def _subnets(text: Any) -> str:
    data = _loads(text)
    out = []
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict):
            sub = item.get("Subnet") or item.get("subnet") or ""
            gw = item.get("Gateway") or item.get("gateway") or ""
            out.append(f"{sub} gw {gw}" if gw else str(sub))
        else:
            out.append(str(item))
    return ", ".join(out)


def _networks_table(snap: Any, max_rows: int) -> Table:
    rows = [[text_cell(r.name), id_cell(r.network_id), text_cell(r.driver), text_cell(r.scope),
             text_cell(_subnets(r.subnets_json), "mono"), flag_cell(r.internal),
             int_cell(r.endpoints), text_cell(r.created_at)]
            for r in snap.networks.sort_values("name").itertuples()]
    return _table("t-networks", [("name", ""), ("id", "mono"), ("driver", ""), ("scope", ""),
                                 ("subnets", "mono"), ("internal", ""), ("endpoints", "num"),
                                 ("created", "")], rows, len(rows), max_rows)


def _dups_table(dups: pd.DataFrame, max_rows: int) -> Table:
    rows = []
    for r in dups.itertuples():
        paths = list(r.example_paths) if isinstance(r.example_paths, (list, tuple)) else []
        rows.append([id_cell(r.sha256, 16), size_cell(r.size), int_cell(r.copies),
                     size_cell(r.wasted_bytes), Cell("\n".join(paths), "", None, "mono paths")])
    return _table("t-dups", [("sha256", "mono"), ("size", "num"), ("copies", "num"),
                             ("beyond first copy", "num"), ("example paths", "mono")],
                  rows, len(rows), max_rows, "no content is stored twice")


def _waste_table(waste: pd.DataFrame, usage: pd.DataFrame, max_rows: int) -> Table:
    tags = dict(zip(usage["image_id"], usage["tags"]))
    w = waste.assign(_w=pd.to_numeric(waste["wasted_bytes"], errors="coerce")).sort_values(
        ["_w", "image_id"], ascending=[False, True], na_position="last")
    rows = []
    for r in w.itertuples():
        eff = pd.to_numeric(pd.Series([r.efficiency]), errors="coerce").iloc[0]
        rows.append([text_cell(tags.get(r.image_id, "<none>")), id_cell(r.image_id),
                     int_cell(r.layers), size_cell(r.total_bytes), size_cell(r.wasted_bytes),
                     Cell(plots.efficiency_text(eff, r.wasted_bytes),
                          -1 if pd.isna(eff) else float(eff), None, "num")])
    return _table("t-waste", [("tags", ""), ("image id", "mono"), ("layers", "num"),
                              ("bytes in layers", "num"), ("wasted", "num"),
                              ("efficiency", "num")], rows, len(rows), max_rows)


def _orphans(snap: Any, og: dict[str, pd.DataFrame], max_rows: int) -> dict[str, Any]:
    o, d, v = og["orphan_dirs"], og["dangling_images"], og["unused_volumes"]
    s, lg = og["stopped_containers"], og["logs"]
    tables = {
        "orphan_dirs": _table("t-orphan-dirs", [("directory", "mono"), ("driver", ""),
                                                ("files", "num"), ("bytes", "num")],
                              [[text_cell(r.path, "mono"), text_cell(r.driver), int_cell(r.files),
                                size_cell(r.content_bytes)] for r in o.itertuples()],
                              len(o), max_rows, "no orphan layer directory"),
        "dangling": _table("t-dangling", [("image id", "mono"), ("created", ""), ("size", "num")],
                           [[id_cell(r.image_id), text_cell(r.created_at), size_cell(r.size_bytes)]
                            for r in d.itertuples()], len(d), max_rows, "no dangling image"),
        "unused_volumes": _table("t-unused-volumes", [("name", "mono"), ("driver", ""),
                                                      ("anonymous", ""), ("size", "num")],
                                 [[text_cell(r.name, "mono"), text_cell(r.driver),
                                   flag_cell(r.anonymous), size_cell(r.size_bytes)]
                                  for r in v.itertuples()], len(v), max_rows, "every volume is used"),
        "stopped": _table("t-stopped", [("name", ""), ("id", "mono"), ("status", ""),
                                        ("RW bytes", "num")],
                          [[text_cell(r.name), id_cell(r.container_id), text_cell(r.status),
                            size_cell(r.size_rw_bytes)] for r in s.sort_values(
                              ["size_rw_bytes", "name"], ascending=[False, True]).itertuples()],
                          len(s), max_rows, "no stopped container"),
        "logs": _table("t-logs", [("container", ""), ("id", "mono"), ("log files", "num"),
                                  ("log bytes", "num")],
                       [[text_cell(r.name), id_cell(r.container_id), int_cell(r.log_files),
                         size_cell(r.log_bytes)] for r in lg.itertuples()],
                       len(lg), max_rows, "no container log file"),
    }
    totals = [
        ("orphan layer directories", len(o), int(o["content_bytes"].fillna(0).sum())),
        ("dangling images", len(d), int(d["size_bytes"].fillna(0).sum())),
        ("unused volumes", len(v), int(v["size_bytes"].fillna(0).sum())),
        ("stopped containers' RW layers", len(s), int(s["size_rw_bytes"].fillna(0).sum())),
        ("container logs", len(lg), int(lg["log_bytes"].fillna(0).sum())),
    ]
    return {"tables": tables, "totals": totals}


# -- triage -------------------------------------------------------------------------
#: severities, most severe first (the triage section's order)
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
#: evidence keys shown first (where the finding is)
_EVIDENCE_FIRST = ("path", "paths", "volume_path", "member", "file", "field", "value", "matched")
#: characters of one evidence value shown (the CLI's --json has everything)
EVIDENCE_VALUE_CHARS = 200
#: evidence lines shown per finding
EVIDENCE_LINES = 10


def _evidence_value(v: Any) -> str:
    if isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list, tuple)) for x in v):
        text = ", ".join("" if x is None else str(x) for x in v)
    elif isinstance(v, (dict, list, tuple)):
        text = json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
    else:
        text = "" if v is None else str(v)
    text = " ".join(text.split())  # one line per key (newlines in log lines, commands)
    if len(text) > EVIDENCE_VALUE_CHARS:
        text = text[:EVIDENCE_VALUE_CHARS - 1] + "…"
    return text


def evidence_lines(ev: dict[str, Any]) -> list[str]:
    """A finding's evidence as ``key: value`` lines, where-keys first, values shortened."""
    keys = [k for k in _EVIDENCE_FIRST if k in ev] + [k for k in ev if k not in _EVIDENCE_FIRST]
    lines = [f"{k}: {_evidence_value(ev[k])}" for k in keys]
    if len(lines) > EVIDENCE_LINES:
        lines = lines[:EVIDENCE_LINES] + [f"(+{len(lines) - EVIDENCE_LINES} more fields)"]
    return lines


def _object_cell(obj: dict[str, Any]) -> Cell:
    kind = str(obj.get("type") or "")
    name = "" if _na(obj.get("name")) else str(obj.get("name") or "")
    ident = "" if _na(obj.get("id")) else str(obj.get("id") or "")
    short = ident.split(":", 1)[-1][:12]
    text = f"{kind} {name}" if name else f"{kind} {short}"
    if name and short and short != name:
        text += f" ({short})"
    return Cell(text, f"{kind} {name} {ident}", ident or None, "")


def _findings_table(found: list[Any], max_rows: int) -> Table:
    from analyzer.analyses.triage.engine import severity_rank

    rows = []
    for f in found:
        rows.append([
            Cell(f.severity, severity_rank(f.severity), None, f"sev sev-{f.severity}"),
            text_cell(f.rule, "mono nowrap"), text_cell(f.title),
            text_cell(", ".join(f.attack), "mono"), _object_cell(f.object),
            Cell("\n".join(evidence_lines(f.evidence)), "", None, "mono paths evidence"),
            Cell(f.explanation, "", None, "expl")])
    return _table("t-triage", [("severity", ""), ("rule", "mono"), ("title", ""),
                               ("ATT&CK", "mono"), ("object", ""), ("evidence", "mono"),
                               ("explanation", "")], rows, len(rows), max_rows,
                  "no finding: no rule of the catalogue matched")


def _integrity(results: Any, max_rows: int,
               containerd: bool = False) -> dict[str, Any] | None:
    """The layer-integrity block: counts per verdict and one row per problem (and, for
    the containerd store, per problem of a content-store blob)."""
    if results is None:
        return None
    rows = []
    for b in getattr(results, "blobs", []):
        if b.status != "tampered":
            continue
        for p in b.problems:
            rows.append([Cell("tampered", 0, None, "sev sev-critical"), id_cell(b.digest),
                         text_cell(f"content-store blob ({b.kind})"), text_cell(p.kind, "mono"),
                         text_cell("(blob)", "mono paths"), text_cell(p.detail),
                         text_cell(b.path, "mono paths")])
    for lr in results.layers:
        if lr.status == "ok":
            continue
        images = ", ".join(lr.images[:3]) + (", …" if len(lr.images) > 3 else "")
        if lr.status == "unverifiable":
            rows.append([Cell("unverifiable", 1, None, "sev sev-low"), id_cell(lr.chain_id),
                         text_cell(images), text_cell(""), text_cell("", "mono paths"),
                         text_cell(lr.reason), text_cell(lr.content_path, "mono paths")])
            continue
        for p in lr.problems:
            rows.append([Cell("tampered", 0, None, "sev sev-critical"), id_cell(lr.chain_id),
                         text_cell(images), text_cell(p.kind, "mono"),
                         text_cell(p.path or "(layer tar)", "mono paths"), text_cell(p.detail),
                         text_cell(lr.content_path, "mono paths")])
    blobs = list(getattr(results, "blobs", []))
    table = _table("t-integrity", [("verdict", ""), ("layer", "mono"), ("images", ""),
                                   ("problem", "mono"), ("path in layer", "mono"),
                                   ("detail", ""), ("layer folder", "mono")],
                   rows, len(rows), max_rows,
                   "every verifiable image layer matches its blob and snapshot, every blob "
                   "its digest" if containerd else
                   "every verifiable image layer matches its tar-split")
    return {"counts": results.counts(), "layers": len(results.layers),
            "tampered": len(results.tampered), "table": table, "notes": list(results.notes),
            "blobs": len(blobs), "blob_counts": results.blob_counts() if blobs else None,
            "tampered_blobs": sum(1 for b in blobs if b.status == "tampered")}


def _triage(snap: Any, max_rows: int, verify_results: Any = None) -> dict[str, Any]:
    from analyzer.analyses.triage import run_rules

    errors: list[str] = []
    found = run_rules(snap, errors=errors)
    counts = Counter(f.severity for f in found)
    top = next((s for s in SEVERITY_ORDER if counts.get(s)), None)
    containerd = plots.containerd_store(snap)
    return {"total": len(found), "top": top,
            "counts": [(s, counts.get(s, 0)) for s in SEVERITY_ORDER],
            "table": _findings_table(found, max_rows), "errors": errors,
            "integrity": _integrity(verify_results, max_rows, containerd),
            "integrity_what": "image layers against their compressed blobs and unpacked "
                              "snapshots, blobs against their digests" if containerd else
                              "image layers against their tar-split"}


# -- the model and the page -------------------------------------------------------------------
def report_model(snap: Any, ctx: Context, max_rows: int = MAX_ROWS,
                 max_dag_images: int = MAX_DAG_IMAGES,
                 verify_results: Any = None) -> dict[str, Any]:
    """Everything the report shows, as plain data (tables are :class:`Table`).

    ``verify_results`` (a :class:`~analyzer.analyses.verify.VerifyResults` of the same
    evidence, e.g. from ``report --verify``) adds the layer-integrity verdicts to the
    triage section; without it the page says the check was not run.
    """
    from analyzer import __version__

    parameters = {"max_rows": max_rows, "max_dag_images": max_dag_images,
                  "host_root": ctx.root,
                  "reference_time": pd.Timestamp(ctx.now_ns, unit="ns", tz="UTC").isoformat(),
                  "verify": verify_results is not None}
    doc = system_df(snap, ctx)
    usage = storage.image_usage(snap)
    lu = storage.layer_usage(snap)
    dsum, dups = storage.duplicates(snap, top=max(20, min(max_rows, 50)))
    waste = storage.image_waste(snap)
    og = storage.orphans_and_growth(snap)
    breakdown = plots.storage_breakdown(snap, doc, layer_usage=lu, orphans=og)
    dag_fig, dag = plots.dag_figure(snap, max_images=max_dag_images, layer_usage=lu)
    driver = (snap.meta.get("driver") or "").split(",")[0]
    listed = storage.listed_images(snap)
    wasted = pd.to_numeric(waste["wasted_bytes"], errors="coerce")
    summary = _summary(snap, parameters)
    return {
        "title": f"Docker data-root report: {summary['facts'][0][1]}",
        "summary": summary,
        "provenance": {"tool_version": __version__,
                       "evidence": summary["facts"][0][1],
                       "sha256": snap.meta.get("evidence_sha256"),
                       "containerd_evidence": os.path.basename(
                           _text(snap.meta.get("containerd_evidence_path")) or "") or None,
                       "containerd_sha256": _text(snap.meta.get("containerd_evidence_sha256")),
                       "parameters": json.dumps(parameters, sort_keys=True)},
        "issues": _issues_table(snap, max_rows),
        "triage": _triage(snap, max_rows, verify_results),
        "df": df_summary(doc), "df_text": system_df_table(doc),
        "breakdown": breakdown.to_dict("records"),
        "breakdown_total": int(breakdown["bytes"].sum()),
        "breakdown_reclaimable": int(breakdown["reclaimable_bytes"].sum()),
        "storage_svg": plots.to_svg(plots.storage_figure(breakdown), "storage"),
        "graph": _graph_stats(snap), "dag": dag,
        "dag_svg": plots.to_svg(dag_fig, "dag", scale=1.3),
        "layers": _layers_table(lu, max_rows),
        "dedup": dsum, "dedup_table": _dups_table(dups, max_rows),
        "dedup_svg": plots.to_svg(plots.duplicates_figure(dups), "dups"),
        "full_copy": driver in ("vfs", "btrfs", "zfs"), "driver": driver,
        "waste_total": int(wasted.fillna(0).sum()), "waste_measurable": bool(wasted.notna().any()),
        "waste_table": _waste_table(waste, usage, max_rows),
        "waste_svg": plots.to_svg(plots.waste_figure(usage, waste), "waste"),
        "images": _images_table(usage, max_rows),
        "intermediate_images": int(len(snap.images)) - len(listed),
        "containers": _containers_table(snap, doc, max_rows),
        "volumes": _volumes_table(snap, max_rows),
        "networks": _networks_table(snap, max_rows),
        "orphans": _orphans(snap, og, max_rows),
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = lambda n: human_size(n or 0)
    env.filters["size4"] = lambda n: human_size(n or 0, 4)  # docker system df precision
    env.filters["bytes"] = lambda n: f"{int(n or 0):,}"
    return env


def render_report(snap: Any, ctx: Context, max_rows: int = MAX_ROWS,
                  max_dag_images: int = MAX_DAG_IMAGES, verify_results: Any = None) -> str:
    """The report of a snapshot as one self-contained HTML document (``verify_results``:
    see :func:`report_model`)."""
    model = report_model(snap, ctx, max_rows=max_rows, max_dag_images=max_dag_images,
                         verify_results=verify_results)
    for key in ("storage_svg", "dag_svg", "dedup_svg", "waste_svg"):
        model[key] = Markup(model[key])  # matplotlib escaped its text
    return _environment().get_template(TEMPLATE).render(**model)
