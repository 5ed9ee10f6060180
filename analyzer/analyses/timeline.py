"""Timeline events of a snapshot: images, layers, containers, files, volumes and logs.

What: :func:`timeline_events` returns one row per dated event (a pandas DataFrame, sorted
by time); :func:`file_entries` returns one row per file with its three times, the input
of a Sleuth Kit bodyfile. :mod:`analyzer.render.timeline` writes both as Timesketch
JSONL, bodyfile or CSV.

Why: an incident is reconstructed by lining up what the daemon recorded (container
created/started/finished, image tags), what the image author claimed (image and history
``created``), and what the filesystem kept (file and layer-directory times) — plaso does
not read hostconfig, imagedb or layerdb, this does.

Where the evidence sits, and whose clock wrote it:

====================================  ==========================================  ============
event                                 source                                      clock
====================================  ==========================================  ============
image created, history step           ``imagedb/content/sha256/<id>`` ``created``  image author
image tag set                          ``imagedb/metadata/.../lastUpdated``         host
layer directory modified               mtime of ``<driver>/<id>`` and its content   host
container created / started / ended    ``config.v2.json`` ``Created``, ``State``    host
file modified / accessed / changed     tar header mtime, pax atime/ctime            host
volume created                         ctime of ``volumes/<name>/_data``            host
log line                               json-file ``time`` / local ``time_nano``     host
====================================  ==========================================  ============

File times come from the archive: mtime always, atime/ctime only where the archive kept
them (pax or incremental GNU headers); missing times are NA here and ``0`` in a
bodyfile. A ctime in an archive is the inode change time at acquisition — weak evidence.

References: Timesketch import format (``google/timesketch`` docs
``import-from-json-csv.md``: ``message``, ``datetime``, ``timestamp_desc``); plaso time
descriptions (``plaso/lib/definitions.py``) and data types (``docker:container:*``,
``fs:stat``); triage catalogue §5.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from analyzer.model.values import loads_json
from analyzer.model.values import na as _na

#: columns of :func:`timeline_events`, in output order
EVENT_COLUMNS = ("datetime", "timestamp_desc", "message", "data_type", "container",
                 "container_id", "image", "image_id", "volume", "layer", "path", "evidence_path",
                 "time_source", "time_raw", "kind", "mode", "uid", "gid", "size", "sha256",
                 "stream")

#: plaso's standard time descriptions
CREATED, MODIFIED, ACCESSED, CHANGED = ("Creation Time", "Content Modification Time",
                                        "Last Access Time", "Metadata Modification Time")
STARTED, ENDED, UPDATED, WRITTEN = "Start Time", "End Time", "Last Update Time", "Written Time"


def _loads(text: Any) -> dict[str, Any]:
    """A JSON object cell as a dict (``{}`` for NA, malformed or non-object text)."""
    doc = loads_json(text)
    return doc if isinstance(doc, dict) else {}


def _image_names(snap: Any) -> dict[str, str]:
    t = snap.image_tags
    out: dict[str, list[str]] = {}
    for iid, ref in zip(t["image_id"], t["reference"]):
        out.setdefault(iid, []).append(str(ref))
    return {k: sorted(v)[0] for k, v in out.items()}


def _short(iid: str) -> str:
    return iid[7:19] if iid.startswith("sha256:") else iid[:12]


class _Areas:
    """Which layer directory / volume a member belongs to, with its display label."""

    def __init__(self, snap: Any, all_layers: bool) -> None:
        names = {cid: n for cid, n in zip(snap.containers["container_id"], snap.containers["name"])}
        image_of = {cid: iid for cid, iid in zip(snap.containers["container_id"],
                                                 snap.containers["image_id"])}
        inames = _image_names(snap)
        chain_by_cache = {str(c): str(ch) for c, ch in zip(snap.layers["cache_id"],
                                                           snap.layers["chain_id"]) if _na(c)}
        self.prefixes: dict[str, dict[str, Any]] = {}
        roles = {"container-rw"} | ({"image-layer", "container-init", "orphan"} if all_layers
                                    else set())
        for _, d in snap.layer_dirs.iterrows():
            role, cp = str(d["role"]), _na(d["content_path"])
            if role not in roles or not isinstance(cp, str):
                continue
            owner = str(_na(d["owner"]) or "")
            if role in ("container-rw", "container-init"):
                name = str(_na(names.get(owner)) or owner[:12])
                iid = str(_na(image_of.get(owner)) or "")
                label = f"container:{name}" + ("/init" if role == "container-init" else "")
                self.prefixes[cp] = {"label": label, "container": name, "container_id": owner,
                                     "image_id": iid or None, "image": inames.get(iid),
                                     "layer": "rw" if role == "container-rw" else "init",
                                     "volume": None}
            else:
                chain = chain_by_cache.get(str(d["dir_id"]), owner)
                layer = f"image:{chain}" if role == "image-layer" else f"orphan:{d['dir_id']}"
                short = _short(chain) if role == "image-layer" and chain else str(d["dir_id"])[:12]
                self.prefixes[cp] = {"label": f"layer:{short}" if role == "image-layer"
                                     else f"orphan:{short}", "container": None,
                                     "container_id": None, "image_id": None, "image": None,
                                     "layer": layer, "volume": None}
        for name in snap.volumes["name"].dropna():
            self.prefixes[f"volumes/{name}/_data"] = {"label": f"volume:{name}", "container": None,
                                                     "container_id": None, "image_id": None,
                                                     "image": None, "layer": f"volume:{name}",
                                                     "volume": str(name)}
        self.depths = sorted({p.count("/") + 1 for p in self.prefixes})

    def place(self, member: str) -> tuple[dict[str, Any], str] | None:
        parts = member.split("/")
        for depth in self.depths:
            if depth > len(parts):
                break
            hit = self.prefixes.get("/".join(parts[:depth]))
            if hit is not None:
                return hit, "/" + "/".join(parts[depth:])
        return None


def file_entries(snap: Any, all_layers: bool = False) -> pd.DataFrame:
    """One row per file in RW layers and volumes (and image/init/orphan layers with
    ``all_layers``): ``name`` (``[container:web-1] /etc/passwd``), ``path`` (container or
    volume view), ``evidence_path``, owner columns and the ``files`` metadata
    (kind, mode, uid, gid, size, sha256, linkname, mtime, atime, ctime, whiteout), plus
    ``inode``: the member's row number in the ``files`` index (tar has no inodes)."""
    areas = _Areas(snap, all_layers)
    f = snap.files
    rows = []
    for idx, member in zip(range(len(f)), f["path"].astype(str)):
        got = areas.place(member)
        if got is None:
            continue
        info, path = got
        rows.append((idx, member, path, info))
    cols = ["kind", "mode", "uid", "gid", "size", "sha256", "linkname", "mtime", "atime", "ctime",
            "whiteout"]
    if not rows:
        return pd.DataFrame(columns=["inode", "name", "path", "evidence_path", "label",
                                     "container", "container_id", "image", "image_id", "volume",
                                     "layer"] + cols)
    idxs = [r[0] for r in rows]
    sub = f.iloc[idxs][cols].reset_index(drop=True)
    meta = pd.DataFrame([{"inode": r[0], "evidence_path": r[1], "path": r[2],
                          "label": r[3]["label"], "container": r[3]["container"],
                          "container_id": r[3]["container_id"], "image": r[3]["image"],
                          "image_id": r[3]["image_id"], "volume": r[3]["volume"],
                          "layer": r[3]["layer"]} for r in rows])
    out = pd.concat([meta, sub], axis=1)
    out.insert(1, "name", "[" + out["label"] + "] " + out["path"])
    return out


def _event(**kw: Any) -> dict[str, Any]:
    return kw


def timeline_events(snap: Any, *, logs: bool = False, all_layers: bool = False) -> pd.DataFrame:
    """Every dated event, sorted by time (columns :data:`EVENT_COLUMNS`); see the module
    docstring for the sources."""
    ev: list[dict[str, Any]] = []
    inames = _image_names(snap)
    ev += _image_events(snap, inames)
    ev += _layer_dir_events(snap, inames)
    ev += _container_events(snap, inames)
    ev += _volume_events(snap)
    ev += _file_events(snap, all_layers)
    if logs:
        ev += _log_events(snap, inames)
    df = pd.DataFrame(ev, columns=list(EVENT_COLUMNS))
    df["datetime"] = pd.to_datetime(df["datetime"], utc=True)
    for col in ("uid", "gid", "size"):
        df[col] = pd.array([None if _na(v) is None else int(v) for v in df[col]], dtype="Int64")
    df = df[df["datetime"].notna()]
    return df.sort_values(["datetime", "data_type", "message"], kind="stable").reset_index(drop=True)


def _image_events(snap: Any, inames: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    imgs = snap.images
    parents = set(imgs["parent_id"].dropna())
    top = set()
    for iid, tagged, created, raw, path, tag_at, tag_raw in zip(
            imgs["image_id"], imgs["tagged"], imgs["created_at"], imgs["created_raw"],
            imgs["config_path"], imgs["last_tag_at"], imgs["last_tag_raw"]):
        name = inames.get(iid, "<none>")
        if bool(_na(tagged)) or iid not in parents:
            top.add(iid)
        if _na(created) is not None:
            out.append(_event(datetime=created, timestamp_desc=CREATED, data_type=
                              "docker:image:configuration", image=name, image_id=iid,
                              message=f"Image {name} ({_short(iid)}) created (config 'created', "
                                      "author-controlled clock)",
                              evidence_path=_na(path), time_source="image config created",
                              time_raw=_na(raw)))
        if _na(tag_at) is not None:
            out.append(_event(datetime=tag_at, timestamp_desc=UPDATED, data_type=
                              "docker:image:metadata", image=name, image_id=iid,
                              message=f"Image {name} ({_short(iid)}) tagged/updated "
                                      "(imagedb lastUpdated)",
                              evidence_path=f"image/{_driver(snap)}/imagedb/metadata/sha256/"
                                            f"{iid[7:]}/lastUpdated",
                              time_source="imagedb metadata lastUpdated", time_raw=_na(tag_raw)))
    h = snap.image_history
    for iid, step, created, raw, by, empty in zip(h["image_id"], h["step"], h["created_at"],
                                                  h["created_raw"], h["created_by"],
                                                  h["empty_layer"]):
        if iid not in top or _na(created) is None:
            continue
        name = inames.get(iid, "<none>")
        cmd = str(_na(by) or "").replace("\n", " ")
        out.append(_event(datetime=created, timestamp_desc=CREATED, data_type="docker:image:history",
                          image=name, image_id=iid,
                          message=f"Image {name} history step {int(step)}"
                                  f"{' (no layer)' if bool(_na(empty)) else ''}: {cmd[:300]}",
                          time_source="image config history[].created", time_raw=_na(raw)))
    return out


def _driver(snap: Any) -> str:
    return str((snap.meta.get("driver") or "overlay2")).split(",")[0]


def _layer_dir_events(snap: Any, inames: dict[str, str]) -> list[dict[str, Any]]:
    f = snap.files
    mtimes = dict(zip(f[f["kind"].astype(str) == "dir"]["path"],
                      f[f["kind"].astype(str) == "dir"]["mtime"]))
    names = dict(zip(snap.containers["container_id"], snap.containers["name"]))
    chain_by_cache = {str(c): str(ch) for c, ch in zip(snap.layers["cache_id"],
                                                       snap.layers["chain_id"]) if _na(c)}
    out = []
    for _, d in snap.layer_dirs.iterrows():
        role, owner = str(d["role"]), str(_na(d["owner"]) or "")
        if role in ("container-rw", "container-init"):
            who = f"container {names.get(owner, owner[:12])}"
            container, cid = names.get(owner), owner
            layer = "rw" if role == "container-rw" else "init"
        elif role == "image-layer":
            chain = chain_by_cache.get(str(d["dir_id"]), owner)
            who, container, cid, layer = f"layer {_short(chain)}", None, None, f"image:{chain}"
        else:
            who, container, cid, layer = "no owner (orphan)", None, None, f"orphan:{d['dir_id']}"
        seen = set()
        for p in (d["path"], d["content_path"]):
            p = _na(p)
            if not isinstance(p, str) or p in seen or _na(mtimes.get(p)) is None:
                continue
            seen.add(p)
            out.append(_event(datetime=mtimes[p], timestamp_desc=MODIFIED,
                              data_type="docker:layer:directory", container=container,
                              container_id=cid, layer=layer, evidence_path=p, path=p,
                              message=f"Layer directory {p} modified ({role}, {who})",
                              time_source="archive mtime", kind="dir"))
    return out


def _container_events(snap: Any, inames: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for _, c in snap.containers.iterrows():
        cfg = _loads(c["config_json"])
        state = cfg.get("State") or {}
        name, cid = str(c["name"]), str(c["container_id"])
        iid = str(_na(c["image_id"]) or "")
        image = str(_na(c["image_ref"]) or inames.get(iid) or "")
        try:
            args = json.loads(c["args_json"]) if isinstance(c["args_json"], str) else []
        except ValueError:
            args = []
        cmd = " ".join([str(_na(c["path"]) or "")] + [str(a) for a in args or []])
        flags = []
        if bool(_na(c["privileged"])):
            flags.append("privileged")
        if str(_na(c["pid_mode"]) or "") == "host":
            flags.append("pid=host")
        if str(_na(c["network_mode"]) or "") == "host":
            flags.append("net=host")
        base = dict(data_type="docker:container:configuration", container=name, container_id=cid,
                    image=image, image_id=iid or None, evidence_path=_na(c["config_path"]))
        summary = f" ({', '.join(flags)})" if flags else ""
        for when, desc, verb, raw in (
                (c["created_at"], CREATED, "created", cfg.get("Created")),
                (c["started_at"], STARTED, "started", state.get("StartedAt")),
                (c["finished_at"], ENDED, f"finished (exit {_na(c['exit_code'])})",
                 state.get("FinishedAt"))):
            if _na(when) is None:
                continue
            src = {CREATED: "config.v2.json Created", STARTED: "config.v2.json State.StartedAt",
                   ENDED: "config.v2.json State.FinishedAt"}[desc]
            out.append(_event(datetime=when, timestamp_desc=desc, time_source=src, time_raw=raw,
                              message=f"Container {name} {verb} from {image}{summary}: "
                                      f"{cmd.strip()[:200]}", **base))
    return out


def _volume_events(snap: Any) -> list[dict[str, Any]]:
    out = []
    for name, created, anon in zip(snap.volumes["name"], snap.volumes["created_at"],
                                   snap.volumes["anonymous"]):
        if _na(created) is None:
            continue
        out.append(_event(datetime=created, timestamp_desc=CREATED, data_type="docker:volume",
                          volume=str(name), layer=f"volume:{name}",
                          evidence_path=f"volumes/{name}/_data",
                          message=f"Volume {name} created (ctime of volumes/{name}/_data, "
                                  "moves when files are added)",
                          time_source="archive ctime"))
    return out


def _file_events(snap: Any, all_layers: bool) -> list[dict[str, Any]]:
    fe = file_entries(snap, all_layers)
    out = []
    if fe.empty:
        return out
    for r in fe.itertuples(index=False):
        if r.path == "/":
            continue
        what = "deleted (whiteout)" if bool(_na(r.whiteout)) else str(r.kind)
        mode = _na(r.mode)
        for col, desc, verb in (("mtime", MODIFIED, "modified"), ("atime", ACCESSED, "accessed"),
                                ("ctime", CHANGED, "metadata changed")):
            t = _na(getattr(r, col))
            if t is None:
                continue
            out.append(_event(datetime=t, timestamp_desc=desc, data_type="fs:stat",
                              container=r.container, container_id=r.container_id, image=r.image,
                              image_id=r.image_id, volume=r.volume, layer=r.layer, path=r.path,
                              evidence_path=r.evidence_path,
                              time_source="archive " + col, kind=str(r.kind),
                              mode=f"{int(mode):04o}" if mode is not None else None,
                              uid=_na(r.uid), gid=_na(r.gid), size=_na(r.size),
                              sha256=_na(r.sha256),
                              message=f"{r.name} {verb} ({what})"))
    return out


def _log_events(snap: Any, inames: dict[str, str]) -> list[dict[str, Any]]:
    names = dict(zip(snap.containers["container_id"], snap.containers["name"]))
    out = []
    lg = snap.logs
    for cid, seq, stream, t, line, src in zip(lg["container_id"], lg["seq"], lg["stream"],
                                              lg["time"], lg["line"], lg["source"]):
        text = bytes(line).decode("utf-8", "replace").rstrip("\n")
        name = names.get(cid, str(cid)[:12])
        out.append(_event(datetime=t, timestamp_desc=WRITTEN, data_type="docker:container:log:entry",
                          container=name, container_id=cid, evidence_path=str(src),
                          stream=str(stream), time_source="log record time",
                          message=f"[{name} {stream}] {text[:1000]}"))
    return out


def events_between(df: pd.DataFrame, start: Any = None, end: Any = None) -> pd.DataFrame:
    """Events with ``start <= datetime <= end`` (either bound optional)."""
    mask = pd.Series(True, index=df.index)
    if start is not None:
        mask &= df["datetime"] >= pd.Timestamp(start, tz="UTC") if pd.Timestamp(
            start).tzinfo is None else df["datetime"] >= pd.Timestamp(start)
    if end is not None:
        mask &= df["datetime"] <= pd.Timestamp(end, tz="UTC") if pd.Timestamp(
            end).tzinfo is None else df["datetime"] <= pd.Timestamp(end)
    return df[mask]


__all__ = ["timeline_events", "file_entries", "events_between", "EVENT_COLUMNS"]
