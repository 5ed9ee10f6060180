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
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.allocators import bound_memory, trim
from analyzer.errors import AnalyzerError, NoDataRootFound, NotASnapshot, UsageError
from analyzer.issues import IssueLog
from analyzer.model.evidence import CONTAINERD_MOUNT, MANAGED_CONTAINERD
from analyzer.sources.base import EvidenceInfo, Progress, link_escapes
from analyzer.sources import capture, locate
from analyzer.sources.capture import (MAX_CAPTURE, FileIndex, capture_limit, keep_captured,
                                      log_container, wants_capture)
from analyzer.sources.locate import RootCandidate, RootFinder
from analyzer.sources.packed import PackedTable
from analyzer.sources.tarscan import K_FILE, MemberBatch

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
#: what the per-member code must see: capture, logs and the data-root finder
WATCH = capture.PREFILTER | locate.PREFILTER


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
    files: PackedTable  # the member index, compressed (taken over by the build)
    captured: dict[str, bytes]
    logs: list[LogFile]
    roots: list[RootCandidate]
    hash_files: bool
    containerd_roots: list[str] = field(default_factory=list)  # prefixes of containerd roots
    containerd_prefix: str | None = None  # the containerd root in use (set by mount_containerd)
    containerd_info: EvidenceInfo | None = None  # its evidence, when not the same snapshot
    containerd_rel: str | None = None  # where that root is in the files table


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


def _hash_stream(payload: BinaryIO, head: bytes = b"") -> str:
    sha = hashlib.sha256(head)
    chunks = getattr(payload, "chunks", None)
    if chunks is not None:  # tar members: the reader's chunks as views, no copies
        for view in chunks():
            sha.update(view)
        return sha.hexdigest()
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
    bound_memory()
    source = open_source(path, progress)
    state = _Pass(source.info, hash_files, log_memory)
    items = source.items() if hasattr(source, "items") else iter(source)
    for item in items:
        if isinstance(item, MemberBatch):  # a run of ordinary tar members, decoded at once
            state.batch(item)
        else:
            state.member(*item)
    return state.finish()


class _Pass:
    """The state of :func:`read_evidence`: what each member does to the index, the
    captured files, the logs and the data-root finder, member by member or for a
    whole :class:`MemberBatch` (same effects, same order)."""

    def __init__(self, info: EvidenceInfo, hash_files: bool, log_memory: int) -> None:
        self.info = info
        self.hash_files = hash_files
        self.log_memory = log_memory
        self.index = FileIndex()
        self.finder = RootFinder()
        self.captured: dict[str, bytes] = {}
        self.logs: list[LogFile] = []
        self.budget = [log_memory]  # shared by every log file of the pass
        self.not_kept: set[str] = set()
        self.escapes = 0

    def member(self, member: Any, payload: Any) -> None:
        """One member from the exact reader (or a directory source)."""
        if member.path is None:  # unsafe path, already reported by the source
            return
        name = member.name
        self.finder.observe(member.path, name)
        if member.kind == "symlink":
            self._symlink(member.path, member.linkname)
        sha = None
        if payload is not None:
            sha = self._content(member.path, name, payload)
        self.index.add(member, sha)

    def batch(self, batch: MemberBatch) -> None:
        """A run of members: Python only for the rows :data:`WATCH` passes, symlinks
        and hashing; the index rows are appended as columns."""
        watch = np.flatnonzero(batch.mask("watch", WATCH.mask))
        paths = dict(zip(watch.tolist(), batch.path_list(watch)))
        for p in paths.values():
            self.finder.observe(p, p.rpartition("/")[2])
        has_data = (batch.kind == K_FILE) & (batch.size > 0)
        # rows a log or capture rule may want: their bytes go through _content
        special = {i: p for i, p in paths.items() if has_data[i]}
        links = batch.symlink_rows()
        targets: dict[int, str] = {}
        if len(links):
            targets = dict(zip(links.tolist(), batch.link.take(pa.array(links, pa.int64()))
                               .to_pylist()))
            paths.update(zip(links.tolist(), batch.path_list(links)))
        sha: list[str | None] = [None] * batch.n
        for i in sorted(special.keys() | targets.keys()):  # issues in archive order
            if i in targets:
                self._symlink(paths[i], targets[i])
            else:
                p = special[i]
                sha[i] = self._content(p, p.rpartition("/")[2], batch.payload(i))
        if self.hash_files:
            view = memoryview(batch.buf)
            offs, sizes = batch.data_off, batch.size
            for i in np.flatnonzero(has_data).tolist():
                if i not in special:
                    o = int(offs[i])
                    sha[i] = hashlib.sha256(view[o:o + int(sizes[i])]).hexdigest()
        self.index.add_columns(batch.columns(), sha if self.hash_files else None)

    def _symlink(self, path: str, target: str) -> None:
        if link_escapes(path, target):
            self.escapes += 1
            if self.escapes <= MAX_MEMBER_ISSUES:
                self.info.issues.add("link.escape", f"{path} -> {target} points out of the "
                                     "snapshot; it is never followed", path=path)

    def _content(self, path: str, name: str, payload: Any) -> str | None:
        """Read one member's bytes: decode a log, keep captured metadata, or only hash.
        Returns the content's sha256 (``None`` when not hashing)."""
        info, hash_files = self.info, self.hash_files
        cid = log_container(path, name)
        if cid is not None:
            tee = _TeeHash(payload, hash_files)
            if self.budget[0] > 0:
                self.logs.append(_decode_log(path, cid, tee, info.issues, self.budget))
            if self.budget[0] <= 0 and cid not in self.not_kept:
                self.not_kept.add(cid)
                info.issues.add("log.not_kept", f"container {cid[:12]}: logs beyond the "
                                f"{self.log_memory} bytes kept in memory are not in the logs "
                                "table; `logs` reads them from the evidence",
                                path=path.rpartition("/")[0], severity="info")
            return tee.finish()
        if wants_capture(path, name):
            limit = capture_limit(path)
            data = payload.read(limit + 1)
            if len(data) > limit and limit == MAX_CAPTURE:
                info.issues.add("member.too_large", f"{path} is larger than "
                                f"{MAX_CAPTURE} bytes; not parsed", path=path)
                return None
            if len(data) > limit or not keep_captured(path, data):
                # a containerd layer blob: content, not metadata; only hashed
                return _hash_stream(payload, data) if hash_files else None
            self.captured[path] = data
            return hashlib.sha256(data).hexdigest() if hash_files else None
        return _hash_stream(payload) if hash_files else None

    def finish(self) -> RawSnapshot:
        """The pass's result, once every member was seen."""
        info, logs = self.info, self.logs
        if self.escapes > MAX_MEMBER_ISSUES:
            info.issues.add("link.escape", f"{self.escapes - MAX_MEMBER_ISSUES} more symlinks "
                            "point out of the snapshot")
        files, keys = self.index.packed()
        members = len(files)
        _drop_duplicates(files, keys, info.issues)
        del keys
        trim()
        if len(files) < members:  # a log file met twice: its last copy wins too
            last = {log.path: i for i, log in enumerate(logs)}
            logs = [log for i, log in enumerate(logs) if last[log.path] == i]
        return RawSnapshot(info=info, files=files, captured=self.captured, logs=logs,
                           roots=self.finder.candidates(), hash_files=self.hash_files,
                           containerd_roots=self.finder.containerd_roots())


def _drop_duplicates(files: PackedTable, keys: np.ndarray, issues: IssueLog) -> None:
    """Keep only the last row of each path, as extracting the tar would, and record
    ``archive.duplicate`` for each path met more than once. ``keys`` holds the
    :func:`~analyzer.textcols.path_keys` of every row (8 B/member; count_distinct's
    hash table cost ~400 B/member): only rows whose key repeats are looked at."""
    if not len(files):
        return
    ordered = np.sort(keys)
    twice = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    if not len(twice):
        return
    hit = np.flatnonzero(np.isin(keys, twice))
    # only the candidate rows become Python strings
    rows = list(zip(hit.tolist(), files.take(hit, column=0)))
    count: dict[str, int] = {}
    last: dict[str, int] = {}
    for row, path in rows:
        count[path] = count.get(path, 0) + 1
        last[path] = row
    dups = sorted((row, path) for path, row in last.items() if count[path] > 1)
    if not dups:
        return
    for row, path in dups[:MAX_MEMBER_ISSUES]:
        issues.add("archive.duplicate", f"{path} appears {count[path]} times in the archive; "
                   "the last copy is used", path=path)
    if len(dups) > MAX_MEMBER_ISSUES:
        issues.add("archive.duplicate", f"{len(dups) - MAX_MEMBER_ISSUES} more paths appear "
                   "more than once; the last copies are used")
    files.drop_rows(np.array([row for row, path in rows
                              if count[path] > 1 and last[path] != row], np.int64))


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
    except (OSError, EOFError, zlib.error, AnalyzerError) as exc:
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


def _score(raw: RawSnapshot, prefix: str) -> int:
    """How much of dockerd's namespace the containerd root at ``prefix`` holds."""
    from analyzer.formats.containerd_db import moby_score
    from analyzer.parsers.containerd import META_DB

    return moby_score(raw.captured.get(f"{prefix}/{META_DB}" if prefix else META_DB))


def mount_containerd(raw: RawSnapshot, cand: RootCandidate,
                     extra: RawSnapshot | None = None) -> None:
    """Decide which containerd root the data-root used, and make it visible under it.

    dockerd's own containerd keeps its root in ``<data-root>/containerd/daemon``
    (nothing to move). A system containerd keeps it in ``/var/lib/containerd``,
    outside the data-root: in the same snapshot (a tar of ``/``) or in a second one
    (``extra``, from ``--containerd``). Such a root is used only when dockerd's
    namespace in it holds images or snapshots (a Kubernetes node's containerd is not
    Docker's image store); its index rows and captured files are then renamed to
    ``<data-root>/@containerd/...`` so parsers see one tree. Sets
    ``raw.containerd_prefix`` (where the root is in its evidence), ``raw.containerd_rel``
    (where it is in the files table) and ``raw.containerd_info`` (its evidence, when
    not the main one).
    """
    head = cand.prefix + "/" if cand.prefix else ""
    managed = f"{head}{MANAGED_CONTAINERD}"
    src_raw = raw
    if extra is not None:
        src_raw = extra
        outside = list(extra.containerd_roots)
        raw.info.issues.extend(extra.info.issues)
        if not outside:
            raw.info.issues.add("store.containerd_missing", f"{extra.info.path} holds no "
                                "containerd root (no io.containerd.metadata.v1.bolt/meta.db)",
                                severity="error")
            return
        scores = {p: _score(extra, p) for p in outside}
    else:
        if managed in raw.containerd_roots and _score(raw, managed):
            raw.containerd_prefix, raw.containerd_rel = managed, MANAGED_CONTAINERD
            return
        # roots elsewhere in the snapshot; with the data-root at the top, everything else
        # is inside it (a docker-in-docker or kind node's root in a layer or volume)
        outside = [p for p in raw.containerd_roots
                   if head and p != managed and not (p + "/").startswith(head)]
        scores = {p: _score(raw, p) for p in outside}  # each meta.db is parsed once
        outside = [p for p in outside if scores[p]]
        if not outside:
            if managed in raw.containerd_roots:
                raw.containerd_prefix, raw.containerd_rel = managed, MANAGED_CONTAINERD
            return
    best = max(outside, key=lambda p: (scores[p], -p.count("/")))
    if len(outside) > 1:
        raw.info.issues.add("containerd.multiple", f"several containerd roots found "
                            f"({', '.join(repr(p or '.') for p in outside)}); using {best!r}",
                            severity="warning")
    raw.containerd_prefix, raw.containerd_rel = best, CONTAINERD_MOUNT
    raw.containerd_info = extra.info if extra is not None else None
    src = best + "/" if best else ""
    dst = f"{head}{CONTAINERD_MOUNT}/"
    raw.captured.update({dst + p[len(src):]: d for p, d in list(src_raw.captured.items())
                         if p.startswith(src)})
    # the containerd root's rows move under ``dst``, after the data-root's own rows
    same = extra is None
    kept = PackedTable(raw.files.schema) if same else raw.files
    moved = PackedTable(raw.files.schema)
    for batch in (src_raw.files.take_batches() if same else src_raw.files.batches()):
        paths = batch.column(0)
        inside = pc.starts_with(paths, src) if src else pc.is_valid(paths)
        sub = batch.filter(inside)
        moved.append(sub.set_column(0, "path", pc.binary_join_element_wise(
            dst, pc.utf8_slice_codeunits(sub.column(0), len(src)), "")))
        if same:
            kept.append(batch.filter(pc.invert(inside)))
    kept.extend(moved)
    raw.files = kept


def build_snapshot(raw: RawSnapshot, root: str | None = None,
                   params: dict[str, Any] | None = None,
                   containerd: RawSnapshot | None = None) -> "Snapshot":
    """Pick the data-root and turn what the pass kept into the model's tables.

    ``containerd`` is the pass over a second snapshot holding the containerd root
    (``--containerd``) when the first one holds only ``/var/lib/docker``."""
    from analyzer.model.snapshot import Snapshot
    from analyzer.parsers.build import build_tables

    cand = choose_root(raw, root)
    mount_containerd(raw, cand, containerd)
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
