"""Write a snapshot's timeline as Timesketch JSONL, Sleuth Kit bodyfile or CSV.

Formats:

* ``timesketch`` — JSON Lines, one event per line, with the three fields Timesketch
  requires (``message``, ``datetime`` in ISO 8601 UTC with microseconds,
  ``timestamp_desc``), ``timestamp`` (integer microseconds since the epoch) and
  attributes ``data_type``, ``container``, ``container_id``, ``image``, ``image_id``,
  ``volume``, ``layer``, ``path``, ``evidence_path``, ``time_source``, ``time_raw`` and
  file metadata; empty attributes are left out. The first line is a ``data_type``
  ``analyzer:session`` record carrying the evidence sha256 (chain of custody).
* ``bodyfile`` — Sleuth Kit 3.x ``MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|
  ctime|crtime`` (https://wiki.sleuthkit.org/Body-file), readable by ``mactime -b FILE -z
  UTC``. One line per file of the RW layers and volumes (image layers with
  ``--all-layers``): MD5 ``0`` (the index keeps sha256 only), name
  ``[container:NAME] /path`` / ``[volume:NAME] /path`` / ``[layer:CHAIN12] /path``,
  symlinks as ``name -> target``, whiteouts as ``name (deleted, whiteout)``; inode = the
  member's row in the ``files`` index (tar has no inodes); mode like ``-rwxr-xr-x``; times
  in integer epoch seconds (UTC), ``0`` when unknown; crtime is always ``0`` (no archive
  format stores birth time). Non-file events (container created/started/finished, image
  and history creation, tags, volume creation, log lines with ``--logs``) are added as
  pseudo entries named ``[container:NAME] <start time> …`` with mode ``-`` and their one
  time in all four columns (mactime prints them as a single ``macb`` line; a ``0`` column
  would be listed by mactime as an entry at the epoch). ``|`` in names is written ``\\|``,
  ``\\`` as ``\\\\`` and control characters as ``\\xNN`` (what plaso's bodyfile parser
  un-escapes). Lines starting with ``#`` are comments (mactime skips them).
* ``csv`` — the event table with a header row (``datetime`` ISO 8601 UTC).

References: Timesketch ``docs/guides/user/import-from-json-csv.md``; TSK body-file wiki;
plaso ``plaso/parsers/bodyfile.py`` (escaping); triage catalogue §5.
"""

from __future__ import annotations

import csv
import json
import stat
from typing import Any, TextIO

import pandas as pd

from analyzer.analyses.timeline import EVENT_COLUMNS, file_entries, timeline_events
from analyzer.model.values import na as _na

FORMATS = ("timesketch", "bodyfile", "csv")
_KIND_BITS = {"file": stat.S_IFREG, "hardlink": stat.S_IFREG, "dir": stat.S_IFDIR,
              "symlink": stat.S_IFLNK, "char": stat.S_IFCHR, "block": stat.S_IFBLK,
              "fifo": stat.S_IFIFO}


def iso(ts: pd.Timestamp) -> str:
    """``2026-11-28T02:12:37.961012+00:00`` (microseconds, UTC)."""
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def micros(ts: pd.Timestamp) -> int:
    """Microseconds since the epoch (Timesketch ``timestamp``)."""
    return int(ts.value // 1000)


def mode_string(kind: str, mode: Any) -> str:
    """``-rwxr-xr-x`` / ``drwxr-xr-x`` / ``lrwxrwxrwx`` … from a ``files`` kind and mode."""
    bits = _KIND_BITS.get(str(kind))
    m = int(mode) if _na(mode) is not None else 0
    if bits is None:
        return "?" + stat.filemode(m)[1:]
    return stat.filemode(bits | (m & 0o7777))


def escape_name(name: str) -> str:
    """Bodyfile name escaping: ``\\`` → ``\\\\``, ``|`` → ``\\|``, control chars → ``\\xNN``."""
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "|":
            out.append("\\|")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _secs(t: Any) -> int:
    t = _na(t)
    return int(t.value // 1_000_000_000) if t is not None else 0


def _header(snap: Any) -> dict[str, Any]:
    m = snap.meta
    from analyzer import __version__

    return {"tool": "docker-root analyzer", "tool_version": __version__,
            "evidence_path": m.get("evidence_path"), "evidence_sha256": m.get("evidence_sha256"),
            "root_prefix": m.get("root_prefix"), "time_zone": "UTC"}


def write_timesketch(snap: Any, out: TextIO, events: pd.DataFrame) -> int:
    """Timesketch JSONL; returns the number of events written."""
    hdr = _header(snap)
    acquired = _na(snap.meta.get("acquired_at"))
    if acquired is not None:
        acq = pd.Timestamp(acquired)
        acq = acq.tz_localize("UTC") if acq.tzinfo is None else acq
        out.write(json.dumps({"message": "Snapshot acquired (newest mtime in the data-root); "
                              f"evidence sha256 {hdr['evidence_sha256']}",
                              "datetime": iso(acq), "timestamp": micros(acq),
                              "timestamp_desc": "Acquisition Time",
                              "data_type": "analyzer:session", **{k: v for k, v in hdr.items()
                                                                 if v is not None}},
                             ensure_ascii=False) + "\n")
    n = 0
    cols = [c for c in EVENT_COLUMNS if c not in ("datetime",)]
    for row in events.itertuples(index=False):
        ts = row.datetime
        doc: dict[str, Any] = {"message": row.message, "datetime": iso(ts),
                               "timestamp": micros(ts), "timestamp_desc": row.timestamp_desc}
        for c in cols:
            if c in doc:
                continue
            v = _na(getattr(row, c))
            if v is None or v == "":
                continue
            doc[c] = v.item() if hasattr(v, "item") else v
        out.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def write_csv(snap: Any, out: TextIO, events: pd.DataFrame) -> int:
    """CSV with a header row; returns the number of events."""
    w = csv.writer(out, lineterminator="\n")
    cols = list(EVENT_COLUMNS)
    w.writerow(cols + ["timestamp"])
    for row in events.itertuples(index=False):
        vals = []
        for c in cols:
            v = _na(getattr(row, c))
            if c == "datetime":
                v = iso(v)
            vals.append("" if v is None else v)
        w.writerow(vals + [micros(row.datetime)])
    return len(events)


def write_bodyfile(snap: Any, out: TextIO, events: pd.DataFrame, all_layers: bool) -> int:
    """Sleuth Kit 3.x bodyfile (see the module docstring); returns the lines written."""
    hdr = _header(snap)
    out.write(f"# docker-root analyzer {hdr['tool_version']} bodyfile (TSK 3.x); times are UTC "
              f"epoch seconds, 0 = unknown; evidence sha256 {hdr['evidence_sha256']}\n")
    out.write("# MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime\n")
    n = 0
    fe = file_entries(snap, all_layers)
    for r in fe.itertuples(index=False):
        if r.path == "/":
            continue
        name = r.name
        if str(r.kind) == "symlink" and _na(r.linkname):
            name = f"{name} -> {r.linkname}"
        if bool(_na(r.whiteout)):
            name = f"{name} (deleted, whiteout)"
        times = [_secs(r.atime), _secs(r.mtime), _secs(r.ctime), 0]
        if not any(times):
            continue
        size = int(_na(r.size) or 0)
        fields = ["0", escape_name(name), str(int(r.inode)), mode_string(r.kind, r.mode),
                  str(int(_na(r.uid) or 0)), str(int(_na(r.gid) or 0)), str(size)]
        out.write("|".join(fields + [str(t) for t in times]) + "\n")
        n += 1
    for row in events.itertuples(index=False):
        if row.data_type == "fs:stat":
            continue  # already one line per file above
        t = _secs(row.datetime)
        if not t:
            continue
        label = (f"[container:{row.container}]" if _na(row.container) else
                 f"[image:{row.image}]" if _na(row.image) else
                 f"[volume:{row.volume}]" if _na(row.volume) else "[docker]")
        name = f"{label} <{row.timestamp_desc.lower()}> {row.message}"
        times = [t, t, t, t]  # one instant: mactime prints a single "macb" line
        fields = ["0", escape_name(name[:2000]), "0", "-", "0", "0", "0"]
        out.write("|".join(fields + [str(x) for x in times]) + "\n")
        n += 1
    return n


def write_timeline(snap: Any, out: TextIO, fmt: str = "timesketch", *, logs: bool = False,
                   all_layers: bool = False) -> int:
    """Build the timeline of ``snap`` and write it as ``fmt``; returns entries written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown timeline format {fmt!r} (one of {', '.join(FORMATS)})")
    events = timeline_events(snap, logs=logs, all_layers=all_layers)
    if fmt == "timesketch":
        return write_timesketch(snap, out, events)
    if fmt == "csv":
        return write_csv(snap, out, events)
    return write_bodyfile(snap, out, events, all_layers)


__all__ = ["write_timeline", "write_timesketch", "write_bodyfile", "write_csv", "mode_string",
           "escape_name", "iso", "micros", "FORMATS"]
