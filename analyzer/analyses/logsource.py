"""A container's log records: from the logs table, or from the evidence when the
table does not hold them all.

Logs are content, not metadata: the one pass keeps at most ``log_memory`` bytes
of log lines (``analyzer.pipeline.LOG_MEMORY``) and records a ``log.not_kept``
issue for containers whose logs went beyond it. For those, :func:`log_records`
reads the container's log files again from the evidence in one streaming pass,
spooling each file to a temporary folder on disk (memory stays bounded), then
decodes them in the order ``docker logs`` reads them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any, Iterator

from analyzer.formats import logfiles
from analyzer.formats.jsonlog import LogRecord

#: copy chunk when spooling a log member to disk
CHUNK = 1 << 20


def logs_complete(snap: Any, container_id: str) -> bool:
    """True if the logs table holds every record of this container's logs."""
    issues = snap.tables["issues"]
    gone = issues[(issues["code"].astype("string") == "log.not_kept")
                  & issues["path"].fillna("").str.contains(container_id, regex=False)]
    return gone.empty


def _table_records(snap: Any, container_id: str) -> Iterator[LogRecord]:
    logs = snap.tables["logs"]
    mine = logs[logs["container_id"] == container_id].sort_values("seq")
    for s, t, line, p in zip(mine["stream"], mine["time_ns"], mine["line"], mine["partial"]):
        yield LogRecord(stream=s, time_ns=int(t), line=line, partial=bool(p))


def _log_members(snap: Any, container_id: str) -> list[str]:
    files = snap.tables["files"]
    rx = re.compile(rf"containers/{container_id}/(?:[0-9a-f]{{64}}-json\.log(?:\.\d+)?(?:\.gz)?"
                    r"|local-logs/container\.log(?:\.\d+)?(?:\.gz)?"
                    r"|container-cached\.log(?:\.\d+)?(?:\.gz)?)")
    return [p for p in files.loc[files["kind"] == "file", "path"] if rx.fullmatch(p)]


def _spool(snap: Any, members: list[str], folder: str) -> dict[str, str]:
    """Copy the named members (relative to the data-root) from the evidence to ``folder``."""
    from analyzer.analyses.fsview import _evidence, _open_in_dir
    from analyzer.pipeline import open_source

    path, _ = _evidence(snap)
    prefix = str(snap.meta.get("root_prefix") or "")
    full = {(f"{prefix}/{m}" if prefix else m): m for m in members}
    out: dict[str, str] = {}
    if os.path.isdir(path):
        for whole, rel in full.items():
            dest = os.path.join(folder, str(len(out)))
            with _open_in_dir(path, whole) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            out[rel] = dest
        return out
    for member, payload in open_source(path):
        if member.path in full and payload is not None:
            rel = full[member.path]
            dest = out.get(rel) or os.path.join(folder, str(len(out)))
            with open(dest, "wb") as dst:  # a later duplicate replaces the earlier copy
                while True:
                    chunk = payload.read(CHUNK)
                    if not chunk:
                        break
                    dst.write(chunk)
            out[rel] = dest
    return out


def _evidence_records(snap: Any, container_id: str, max_file: int | None,
                      on_problem: Any = None) -> Iterator[LogRecord]:
    members = _log_members(snap, container_id)
    with tempfile.TemporaryDirectory(prefix="dra-logs-") as folder:
        spooled = _spool(snap, members, folder)
        for rel in logfiles.container_read_order(spooled, max_file):
            with open(spooled[rel], "rb") as fh:
                # the same decoder as everywhere: a corrupt .gz rotation or a broken
                # record is a problem reported, and the next file is still read
                yield from logfiles.iter_log_records([(rel, fh)], on_problem)


def log_records(snap: Any, container: Any, on_problem: Any = None) -> Iterator[LogRecord]:
    """Every log record of ``container`` (a containers row) in ``docker logs`` order.

    ``on_problem`` receives each problem met while re-reading the evidence (damaged
    rotations, malformed records); those in the pass are in the issues table.
    """
    cid = container["container_id"]
    if logs_complete(snap, cid):
        yield from _table_records(snap, cid)
        return
    from analyzer.model.values import loads_json

    max_file = logfiles.max_file_of(loads_json(container["hostconfig_json"]))
    yield from _evidence_records(snap, cid, max_file, on_problem)
