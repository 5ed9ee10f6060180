"""The one pass: evidence → members → index, captured metadata, decoded logs.

This is the only module that connects sources (bytes in) with parsers
(Docker artefacts out). :func:`read_evidence` walks the snapshot once;
:func:`build_snapshot` picks the data-root and runs every parser over what the
pass kept. Nothing here reads the evidence twice.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from analyzer.errors import AnalyzerError, NoDataRootFound, NotASnapshot, UsageError
from analyzer.issues import IssueLog
from analyzer.sources.base import EvidenceInfo, Progress, link_escapes
from analyzer.sources.capture import MAX_CAPTURE, FileIndex, log_container, wants_capture
from analyzer.sources.locate import RootCandidate, RootFinder

if TYPE_CHECKING:  # pragma: no cover
    from analyzer.model.snapshot import Snapshot

#: bytes per read when hashing file contents
HASH_CHUNK = 1 << 20
#: bytes of log lines kept in memory for the logs table; logs are content, not metadata,
#: so beyond this the pass only hashes them (``logs`` then re-reads the evidence)
LOG_MEMORY = 256 << 20
#: malformed-record issues kept per log file (a garbage file must not flood the table)
MAX_LOG_ISSUES = 20
#: duplicate-member and escaping-link issues kept per snapshot (then one summary)
MAX_MEMBER_ISSUES = 20


@dataclass
class LogFile:
    """One container log file met during the pass, with its decoded records."""

    path: str  # full path inside the snapshot
    container_id: str
    records: list[Any] = field(default_factory=list)  # formats.logrecord.LogRecord
    last_time: str | None = None  # gzip FEXTRA lastTime of compressed rotations


@dataclass
class RawSnapshot:
    """Everything the single pass kept; input of :func:`build_snapshot`."""

    info: EvidenceInfo
    files: pa.Table
    captured: dict[str, bytes]
    logs: list[LogFile]
    roots: list[RootCandidate]
    hash_files: bool


def open_source(path: str, progress: Progress | None = None) -> Any:
    """The right source for ``path``: a directory or a (compressed) tar file."""
    from analyzer.sources.directory import DirectorySource
    from analyzer.sources.tarstream import TarSource

    if os.path.isdir(path):
        return DirectorySource(path, progress)
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file or directory")
    if not os.path.isfile(path):
        raise NotASnapshot(f"{path} is neither a regular file nor a directory")
    return TarSource(path, progress)


def _hash_stream(payload: BinaryIO) -> str:
    sha = hashlib.sha256()
    while True:
        chunk = payload.read(HASH_CHUNK)
        if not chunk:
            return sha.hexdigest()
        sha.update(chunk)


class _TeeHash:
    """Reads through ``payload`` while hashing what passes."""

    def __init__(self, payload: BinaryIO, enabled: bool) -> None:
        self.payload = payload
        self.sha = hashlib.sha256() if enabled else None

    def read(self, n: int = -1) -> bytes:
        data = self.payload.read(n)
        if self.sha is not None:
            self.sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def finish(self) -> str | None:
        """Read what the decoder left and return the hex digest."""
        while self.read(HASH_CHUNK):
            pass
        return self.sha.hexdigest() if self.sha is not None else None


def read_evidence(path: str, *, hash_files: bool = True, progress: Progress | None = None,
                  log_memory: int = LOG_MEMORY) -> RawSnapshot:
    """Walk the evidence once and keep the index, small metadata and logs.

    Args:
        path: a tar file (plain or compressed) or a directory.
        hash_files: compute sha256 of every regular file's content.
        progress: called with (evidence bytes read, members seen).
        log_memory: bytes of log lines to keep for the logs table (the rest is only hashed).

    Raises:
        NotASnapshot, UnsupportedCompression, UsageError: the input is unusable.
    """
    source = open_source(path, progress)
    info: EvidenceInfo = source.info
    index = FileIndex()
    finder = RootFinder()
    captured: dict[str, bytes] = {}
    logs: list[LogFile] = []
    budget = [log_memory]  # shared by every log file of the pass
    not_kept: set[str] = set()
    escapes = 0
    for member, payload in source:
        if member.path is None:  # unsafe path, already reported by the source
            continue
        name = member.name
        finder.observe(member.path, name)
        if member.kind == "symlink" and link_escapes(member.path, member.linkname):
            escapes += 1
            if escapes <= MAX_MEMBER_ISSUES:
                info.issues.add("link.escape", f"{member.path} -> {member.linkname} points "
                                "out of the snapshot; it is never followed", path=member.path)
        sha = None
        if payload is not None:
            cid = log_container(member.path, name)
            if cid is not None:
                tee = _TeeHash(payload, hash_files)
                if budget[0] > 0:
                    logs.append(_decode_log(member.path, cid, tee, info.issues, budget))
                if budget[0] <= 0 and cid not in not_kept:
                    not_kept.add(cid)
                    info.issues.add("log.not_kept", f"container {cid[:12]}: logs beyond the "
                                    f"{log_memory} bytes kept in memory are not in the logs "
                                    "table; `logs` reads them from the evidence",
                                    path=member.path.rpartition("/")[0], severity="info")
                sha = tee.finish()
            elif wants_capture(member.path, name):
                data = payload.read(MAX_CAPTURE + 1)
                if len(data) > MAX_CAPTURE:
                    info.issues.add("member.too_large", f"{member.path} is larger than "
                                    f"{MAX_CAPTURE} bytes; not parsed", path=member.path)
                    sha = None
                else:
                    captured[member.path] = data
                    sha = hashlib.sha256(data).hexdigest() if hash_files else None
            elif hash_files:
                sha = _hash_stream(payload)
        index.add(member, sha)
    if escapes > MAX_MEMBER_ISSUES:
        info.issues.add("link.escape", f"{escapes - MAX_MEMBER_ISSUES} more symlinks point out "
                        "of the snapshot")
    table = index.table()
    files = _drop_duplicates(table, info.issues)
    if len(files) < len(table):  # a log file met twice: its last copy wins too
        last = {log.path: i for i, log in enumerate(logs)}
        logs = [log for i, log in enumerate(logs) if last[log.path] == i]
    return RawSnapshot(info=info, files=files, captured=captured, logs=logs,
                       roots=finder.candidates(), hash_files=hash_files)


def _drop_duplicates(files: pa.Table, issues: IssueLog) -> pa.Table:
    """Keep only the last row of each path, as extracting the tar would, and record
    ``archive.duplicate`` for each path met more than once."""
    n = len(files)
    if n == 0 or pc.count_distinct(files["path"]).as_py() == n:
        return files
    rows = files.append_column("_row", pa.array(range(n), pa.int64()))
    grouped = rows.group_by("path").aggregate([("_row", "max"), ("_row", "count")])
    dups = grouped.filter(pc.greater(grouped["_row_count"], 1)).sort_by("_row_max")
    for path, count in zip(dups["path"].to_pylist()[:MAX_MEMBER_ISSUES],
                           dups["_row_count"].to_pylist()[:MAX_MEMBER_ISSUES]):
        issues.add("archive.duplicate", f"{path} appears {count} times in the archive; the "
                   "last copy is used", path=path)
    if len(dups) > MAX_MEMBER_ISSUES:
        issues.add("archive.duplicate", f"{len(dups) - MAX_MEMBER_ISSUES} more paths appear "
                   "more than once; the last copies are used")
    return files.filter(pc.is_in(rows["_row"], value_set=grouped["_row_max"]))


def _decode_log(path: str, cid: str, stream: BinaryIO, issues: IssueLog,
                budget: list[int]) -> LogFile:
    """Decode one log file while it streams past (json-file or local, maybe gzip'd)."""
    from analyzer.formats import jsonlog, locallog

    out = LogFile(path=path, container_id=cid)
    reader: Any = stream
    if path.endswith(".gz"):
        reader = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[arg-type]
    problems: list[Any] = []
    name = path.rpartition("/")[2]
    decode = jsonlog.iter_jsonlog if "-json.log" in name else locallog.iter_locallog
    try:
        for rec in decode(reader, source=path, on_problem=problems.append):
            budget[0] -= len(rec.line) + 64  # + the record's fixed cost
            if budget[0] <= 0:
                break
            out.records.append(rec)
    except (OSError, EOFError, AnalyzerError) as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    for p in problems[:MAX_LOG_ISSUES]:
        issues.add("log.malformed", str(p), path=path)
    if len(problems) > MAX_LOG_ISSUES:
        issues.add("log.malformed", f"{path}: {len(problems) - MAX_LOG_ISSUES} more malformed "
                   "records", path=path)
    return out


def choose_root(raw: RawSnapshot, root: str | None) -> RootCandidate:
    """The data-root to analyse: the one the user named, else the strongest."""
    if root is not None:
        wanted = root.strip("/")
        for cand in raw.roots:
            if cand.prefix == wanted:
                return cand
        found = ", ".join(repr(c.prefix or ".") for c in raw.roots) or "none"
        raise UsageError(f"--root {root!r} is not a data-root in this snapshot (found: {found})")
    if not raw.roots:
        hint = "" if raw.info.complete else " (the archive is damaged; see the issues above)"
        raise NoDataRootFound("no Docker data-root found in the snapshot: no image store, "
                              "containers or volume database under any folder" + hint)
    best = raw.roots[0]
    if len(raw.roots) > 1:
        others = ", ".join(repr(c.prefix or ".") for c in raw.roots[1:])
        raw.info.issues.add("root.multiple", f"several data-roots found; using {best.prefix or '.'!r}"
                            f" (others: {others}); choose with --root", severity="warning")
    return best


def build_snapshot(raw: RawSnapshot, root: str | None = None,
                   params: dict[str, Any] | None = None) -> "Snapshot":
    """Pick the data-root and turn what the pass kept into the model's tables."""
    from analyzer.model.snapshot import Snapshot
    from analyzer.parsers.build import build_tables

    cand = choose_root(raw, root)
    tables, meta = build_tables(raw, cand)
    meta["parameters"] = json.dumps({"root": root, "hash_files": raw.hash_files,
                                     **(params or {})}, sort_keys=True)
    return Snapshot(tables=tables, meta=meta)


def load(path: str, *, root: str | None = None, hash_files: bool = True,
         progress: Progress | None = None) -> "Snapshot":
    """Read ``path`` once and return the :class:`~analyzer.model.snapshot.Snapshot`."""
    raw = read_evidence(path, hash_files=hash_files, progress=progress)
    return build_snapshot(raw, root=root)


__all__ = ["RawSnapshot", "LogFile", "read_evidence", "build_snapshot", "load", "choose_root"]
