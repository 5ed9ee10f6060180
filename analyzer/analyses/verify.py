"""Layer integrity: check every image layer's directory against its tar-split.

What: for each read-only layer that has a ``tar-split.json.gz``, :func:`verify`
compares what the layer's content folder holds in the evidence with what the
layer tar held when the daemon applied it:

* **content / size** — the CRC-64/GO-ISO and length of every regular file's
  payload against the tar-split entry (a changed size is reported as ``size``
  only; same size but other bytes as ``content``);
* **added / removed** — entries on disk that the tar never had, and tar entries
  missing on disk. overlay2 stores the tar's ``.wh.<name>`` whiteouts as 0:0
  character devices named ``<name>`` and ``.wh..wh..opq`` as the
  ``trusted.overlay.opaque=y`` (or ``user.overlay.opaque``) xattr of the folder;
  both are mapped back (a missing opaque xattr is reported only when the archive
  kept ``trusted.*`` xattrs somewhere, §4.9).
  aufs and fuse-overlayfs keep whiteouts as ``.wh.`` files (aufs' own
  ``.wh..wh.aufs/plnk/orph`` bookkeeping at the branch root is ignored);
* **type, mode, owner, mtime, linkname, xattr** — the disk entry against the
  tar header recorded in the segments: file type, permission bits (incl.
  setuid/setgid/sticky; not for symlinks), uid/gid, mtime to the second (not for
  whiteouts, whose time is the extraction time, nor hardlink entries),
  symlink target, hardlink identity (both names are one inode in the
  acquisition), and ``security.capability`` (the one xattr Docker records),
  when the archive kept xattrs. Owners and modes are compared after learning,
  over all layers, what the acquisition did to all of them (a re-tar by an
  ordinary user owns everything and applies its umask; ``userns-remap`` shifts
  ids): see :class:`_Normalise`; single deviations are still reported;
* **diff id** — where possible the layer tar is rebuilt in tar-split order and
  its sha256 compared with the layer's diff id: this is what proves that the
  tar-split itself (the reference of every other check) is genuine. With a
  directory as evidence the files are read back at the end; with a tar the
  content of layer files is buffered during the pass up to
  :data:`BUFFER_LIMIT` bytes in total (layers needing more are checked file by
  file only, and say so). A mismatch is a problem of kind ``diff_id`` only when
  no file problem explains it.

Full-copy drivers (vfs, btrfs, overlay v1 ``root/``): a layer's folder holds the
parent's whole tree plus its own changes, with deletions applied. The expected
tree is therefore rebuilt by applying the tar-splits from the base layer up
(whiteouts delete, opaque markers clear the lower contents of a folder), and
the folder is compared with it; files inherited unchanged are checked against
the header and CRC of the layer that wrote them (the problem's detail says
which), and directory mtimes only for directories this layer's tar recorded
(applying a child layer legitimately changes the others).

Per layer the verdict is ``ok``, ``tampered`` (each problem with its path inside
the layer and kind) or ``unverifiable`` (why: no tar-split, a malformed one, a
driver whose layer contents are not in the snapshot — zfs datasets,
devicemapper thin devices, windowsfilter VHDX — a content folder missing from
the snapshot, a full-copy layer whose ancestors cannot be rebuilt).

Why one more pass: the tables keep metadata and sha256 of files, not CRC-64s,
and ``tar-split.json.gz`` is not captured by the main pass. The pass keeps per
file 8 bytes of CRC plus metadata, the tar-split bytes (headers only) and the
bounded content buffer; tar-splits may come before or after the layer files in
the archive, so everything is compared at the end.

Limits (inherent): container RW and ``-init`` layers have no tar-split; xattrs
other than ``security.capability`` are not in layer tars; a tampered tar-split
together with matching files is caught only by the diff-id check; the diff id
itself is trusted as recorded in ``layerdb`` (the image config's
``rootfs.diff_ids`` and the chain ids are checked by the main pass).

References: ``shared/docs/docker-root-format.md`` §4 (drivers), §4.9
(whiteouts/xattrs in the acquisition tar), §6 (tar-split, CRC, re-assembly, limits);
moby ``daemon/internal/layer/layer_store.go`` (assembleTarTo),
``vendor/github.com/moby/go-archive/archive.go`` and ``archive_linux.go``
(how a layer tar is applied: chmod/chown/chtimes, overlay whiteout conversion).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Iterator

from analyzer.errors import TarSplitFormatError, UsageError
from analyzer.formats import tarsplit
from analyzer.sources.member import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK

#: bytes of layer-file content kept in memory (tar evidence) to rebuild layer tars
BUFFER_LIMIT = 256 << 20
#: a tar-split.json.gz larger than this is not read (it holds headers only)
MAX_TAR_SPLIT = 256 << 20
READ_CHUNK = 1 << 20

#: drivers whose layer folder holds only the layer's own files
DIFF_DRIVERS = ("overlay2", "fuse-overlayfs", "aufs")
#: drivers whose layer folder is a full copy of the parent plus the layer's changes
FULL_DRIVERS = ("vfs", "btrfs", "overlay")
UNREADABLE = {
    "zfs": "zfs layers are ZFS datasets; a tar of the data-root holds only their mount points",
    "devicemapper": "devicemapper layers are thin devices inside the pool's loop file; their "
                    "files cannot be read without parsing dm-thin metadata and the filesystem",
    "windowsfilter": "windowsfilter layers are VHDX files; not read",
}
#: aufs bookkeeping at a branch root (not part of any layer tar)
AUFS_META = (".wh..wh.aufs", ".wh..wh.plnk", ".wh..wh.orph")
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
#: xattrs kept per disk entry (the only ones a layer tar or overlay2 conveys)
KEPT_XATTRS = frozenset(OPAQUE_XATTRS + ("security.capability",))
WH = ".wh."
OPQ = ".wh..wh..opq"
#: tar typeflag → member kind of the applied entry
_TYPE_KIND = {"0": FILE, "7": FILE, "1": HARDLINK, "2": SYMLINK, "3": CHAR, "4": BLOCK,
              "5": DIR, "6": FIFO}

#: problem kinds, in report order
KINDS = ("content", "size", "added", "removed", "type", "mode", "owner", "mtime", "linkname",
         "xattr", "diff_id")


@dataclass
class Problem:
    """One difference between a layer folder and its tar-split."""

    path: str  # cleaned path inside the layer; whiteouts/opaque markers in tar naming (.wh.)
    kind: str  # one of KINDS
    detail: str = ""


@dataclass
class LayerResult:
    """The verdict on one image layer."""

    chain_id: str
    diff_id: str | None
    cache_id: str | None
    driver: str | None
    content_path: str | None  # relative to the data-root
    images: list[str] = field(default_factory=list)
    status: str = "ok"  # ok, tampered, unverifiable
    reason: str = ""  # why unverifiable
    problems: list[Problem] = field(default_factory=list)
    entries: int = 0  # tar-split entries compared
    files_checked: int = 0  # regular files whose CRC was compared
    diff_id_check: str = "skipped"  # match, mismatch, skipped
    notes: list[str] = field(default_factory=list)


@dataclass
class VerifyResults:
    """Everything :func:`verify` found."""

    evidence_path: str
    evidence_sha256: str
    driver: str | None
    root_prefix: str
    crc_backend: str
    xattrs_captured: bool  # some member carries xattrs: file capabilities compared
    overlay_xattrs_captured: bool  # trusted.*/user.overlay.* seen: opaque markers compared
    layers: list[LayerResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def tampered(self) -> list[LayerResult]:
        """Layers with at least one problem."""
        return [lr for lr in self.layers if lr.status == "tampered"]

    @property
    def exit_status(self) -> int:
        """0 when nothing was tampered, 1 otherwise (like ``sha256sum -c``)."""
        return 1 if self.tampered else 0

    def counts(self) -> dict[str, int]:
        """Layers per status."""
        out = {"ok": 0, "tampered": 0, "unverifiable": 0}
        for lr in self.layers:
            out[lr.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (the ``verify --json`` output)."""
        doc = asdict(self)
        doc["summary"] = self.counts()
        return doc


@dataclass(slots=True)
class _Disk:
    """What the evidence holds at one path of a layer folder."""

    kind: str
    size: int
    crc: int | None  # CRC-64 of the content (regular files, resolved hardlinks)
    mode: int
    uid: int
    gid: int
    mtime: int
    linkname: str
    dev: tuple[int, int]
    xattrs: dict[str, bytes]
    inode: str  # full path of the first name of the inode (hardlink identity)
    content: str | None  # full path whose payload holds the content


@dataclass(slots=True)
class _Expect:
    """One entry of the tree a layer folder should hold."""

    name: str  # the tar entry name (for reports)
    header: tarsplit.TarHeader
    size: int
    crc: int | None
    own: bool  # written by this layer (not inherited)
    origin: str  # chain id of the layer that wrote it


# --- the pass ---------------------------------------------------------------------------

def evidence_of(snapshot_path: str, snap: Any) -> str:
    """The evidence to read: ``snapshot_path`` itself, or a case folder's evidence.

    Raises:
        UsageError: a case folder whose evidence is gone (verification needs the
            file contents, which the case's tables do not hold).
    """
    from analyzer import case as casemod

    if os.path.isdir(snapshot_path) and casemod.is_case_dir(snapshot_path):
        evidence = snap.meta.get("evidence_path")
        if not evidence or not os.path.exists(evidence):
            raise UsageError(f"{snapshot_path} is a case folder whose evidence {evidence!r} is "
                             "no longer there; verify needs the evidence itself (file contents "
                             "are not kept in a case)")
        return str(evidence)
    return snapshot_path


class _Pass:
    """State of the one streaming pass."""

    def __init__(self, folders: dict[str, str], splits: dict[str, str], buffer_limit: int,
                 random_access: bool) -> None:
        self.folders = folders  # full content-folder path → chain id
        self.depths = sorted({f.count("/") + 1 for f in folders})
        self.splits = splits  # full tar-split path → chain id
        self.records: dict[str, dict[str, _Disk]] = {f: {} for f in folders}
        self.by_path: dict[str, _Disk] = {}  # full path → record (hardlink resolution)
        self.split_bytes: dict[str, bytes] = {}
        self.split_problems: dict[str, str] = {}
        self.buffer: dict[str, bytes] = {}
        self.buffered = 0
        self.buffer_limit = 0 if random_access else buffer_limit
        self.overflow = False
        self.xattrs = False  # some member carries an xattr
        self.overlay_xattrs = False  # some member carries a trusted.* / user.overlay.* one

    def folder_of(self, path: str) -> tuple[str, str] | None:
        parts = path.split("/")
        for d in self.depths:
            if len(parts) >= d:
                folder = "/".join(parts[:d])
                if folder in self.folders:
                    return folder, "/".join(parts[d:])
        return None

    def member(self, member: Any, payload: BinaryIO | None) -> None:
        path = member.path
        if member.xattrs:
            self.xattrs = True
            if not self.overlay_xattrs:
                self.overlay_xattrs = any(k.startswith(("trusted.", "user.overlay."))
                                          for k in member.xattrs)
        chain = self.splits.get(path)
        if chain is not None:
            if member.kind != FILE:
                self.split_problems[chain] = f"{path} is a {member.kind}, not a file"
                return
            data = payload.read(MAX_TAR_SPLIT + 1) if payload is not None else b""
            if len(data) > MAX_TAR_SPLIT:
                self.split_problems[chain] = f"tar-split is larger than {MAX_TAR_SPLIT} bytes"
            else:
                self.split_bytes[chain] = data
            return
        hit = self.folder_of(path)
        if hit is None:
            return
        folder, inner = hit
        crc: int | None = None
        size = member.size
        inode = path
        content: str | None = None
        kind = member.kind
        if kind == FILE:
            crc, size = self._read(path, payload)
            content = path
        elif kind == HARDLINK:
            target = self.by_path.get(member.linkname)
            if target is not None:
                crc, size, inode, content = target.crc, target.size, target.inode, target.content
            else:  # first name outside the layer folders: identity known, content not
                inode, size = member.linkname, -1
        rec = _Disk(kind=kind, size=size, crc=crc, mode=member.mode, uid=member.uid,
                    gid=member.gid, mtime=member.mtime, linkname=member.linkname,
                    dev=(member.devmajor, member.devminor),
                    xattrs={k: v for k, v in member.xattrs.items() if k in KEPT_XATTRS},
                    inode=inode, content=content)
        self.records[folder][inner] = rec
        if kind in (FILE, HARDLINK):
            self.by_path[path] = rec

    def _read(self, path: str, payload: BinaryIO | None) -> tuple[int, int]:
        crc = 0
        size = 0
        keep: list[bytes] | None = [] if not self.overflow and self.buffer_limit else None
        if payload is not None:
            while True:
                chunk = payload.read(READ_CHUNK)
                if not chunk:
                    break
                crc = tarsplit.crc64(chunk, crc)
                size += len(chunk)
                if keep is not None:
                    if self.buffered + size > self.buffer_limit:
                        keep = None
                        self.overflow = True
                    else:
                        keep.append(chunk)
        if keep is not None and size:
            self.buffer[path] = b"".join(keep)
            self.buffered += size
        return crc, size


def _read_tar_split(data: bytes) -> list[tarsplit.FileEntry]:
    return [item for item in tarsplit.iter_items(data) if isinstance(item, tarsplit.FileEntry)]


# --- expected trees ---------------------------------------------------------------------

def _own_tree(entries: list[tarsplit.FileEntry], chain: str, overlay_whiteouts: bool
              ) -> tuple[dict[str, _Expect], list[str], list[str], list[str]]:
    """The entries a layer tar applies: (tree, whiteouts, opaque folders, unsafe names).

    Whiteouts and opaque markers are returned separately (as the paths they
    delete / the folders they make opaque) when ``overlay_whiteouts``;
    otherwise (aufs, fuse-overlayfs) they are ordinary files of the tree.
    """
    tree: dict[str, _Expect] = {}
    whiteouts: list[str] = []
    opaque: list[str] = []
    unsafe: list[str] = []
    for e in entries:
        inner = tarsplit.clean_path(e.name)
        if inner is None or e.header is None:
            unsafe.append(e.name)
            continue
        if inner == "":  # the daemon skips the layer root entry ("./"): nothing applied
            continue
        parent, _, base = inner.rpartition("/")
        if overlay_whiteouts and base == OPQ:
            opaque.append(parent)
            continue
        if overlay_whiteouts and base.startswith(WH):
            whiteouts.append(f"{parent}/{base[len(WH):]}" if parent else base[len(WH):])
            continue
        tree[inner] = _Expect(name=e.name, header=e.header, size=e.size, crc=e.crc_value,
                              own=True, origin=chain)
    return tree, whiteouts, opaque, unsafe


def _apply(lower: dict[str, _Expect], own: dict[str, _Expect], whiteouts: list[str],
           opaque: list[str]) -> dict[str, _Expect]:
    """The full tree after applying a layer on ``lower`` (full-copy drivers)."""
    tree = {k: _Expect(v.name, v.header, v.size, v.crc, False, v.origin)
            for k, v in lower.items()}
    gone = [p for p in whiteouts]
    for path in gone:
        tree.pop(path, None)
        prefix = path + "/"
        for k in [k for k in tree if k.startswith(prefix)]:
            del tree[k]
    for folder in opaque:
        prefix = folder + "/" if folder else ""
        for k in [k for k in tree if k.startswith(prefix) and k != folder]:
            del tree[k]
    tree.update(own)
    return tree


# --- comparison -------------------------------------------------------------------------

def _sec(ns: int) -> int:
    return ns // 1_000_000_000


def _compare(result: LayerResult, expected: dict[str, _Expect], disk: dict[str, _Disk],
             *, driver: str, whiteouts: list[str], opaque: list[str], full: bool,
             xattrs: bool, overlay_xattrs: bool, norm: "_Normalise") -> None:
    """Fill ``result.problems`` from the expected tree and the disk records."""
    problems = result.problems
    seen: set[str] = set()
    for inner, exp in expected.items():
        h = exp.header
        seen.add(inner)
        where = "" if exp.own else f" (inherited from layer {exp.origin[:19]})"
        rec = disk.get(inner)
        want_kind = _TYPE_KIND.get(h.typeflag, FILE)
        if rec is None:
            problems.append(Problem(inner, "removed", f"in the layer tar{where}, not on disk"))
            continue
        result.entries += 1
        got_kind = rec.kind
        if want_kind == HARDLINK:
            target = tarsplit.clean_path(h.linkname)
            trec = disk.get(target) if target is not None else None
            if got_kind not in (FILE, HARDLINK):
                problems.append(Problem(inner, "type", f"a hardlink in the layer tar, a "
                                        f"{got_kind} on disk{where}"))
            elif trec is None or trec.inode != rec.inode:
                problems.append(Problem(inner, "linkname", f"hardlink to {h.linkname!r} in "
                                        f"the layer tar; on disk not the same file{where}"))
        elif want_kind == FILE:
            if got_kind not in (FILE, HARDLINK):
                problems.append(Problem(inner, "type", f"a regular file in the layer tar, a "
                                        f"{got_kind} on disk{where}"))
                continue
            if rec.size < 0:
                result.notes.append(f"{inner}: a hardlink to a file outside the layer "
                                    "folders; content not compared")
            elif rec.size != exp.size:
                problems.append(Problem(inner, "size", f"{exp.size} bytes in the layer tar, "
                                        f"{rec.size} on disk{where}"))
            elif exp.size and rec.crc != exp.crc:
                problems.append(Problem(inner, "content", f"CRC-64 {exp.crc or 0:016x} in the "
                                        f"layer tar, {rec.crc or 0:016x} on disk{where}"))
            else:
                result.files_checked += 1
        elif got_kind != want_kind:
            problems.append(Problem(inner, "type", f"a {want_kind} in the layer tar, a "
                                    f"{got_kind} on disk{where}"))
            continue
        elif want_kind == SYMLINK and rec.linkname != h.linkname:
            problems.append(Problem(inner, "linkname", f"-> {h.linkname!r} in the layer tar, "
                                    f"-> {rec.linkname!r} on disk{where}"))
        elif want_kind in (CHAR, BLOCK) and rec.dev != (h.devmajor, h.devminor):
            problems.append(Problem(inner, "type", f"device {h.devmajor}:{h.devminor} in "
                                    f"the layer tar, {rec.dev[0]}:{rec.dev[1]} on disk{where}"))
        _metadata(problems, inner, exp, rec, where, full=full, xattrs=xattrs, norm=norm)
    # overlay2 whiteouts: 0:0 character devices
    for path in whiteouts if not full else ():  # full copies: applied, path gone
        seen.add(path)
        parent, _, base = path.rpartition("/")
        name = f"{parent}/{WH}{base}" if parent else f"{WH}{base}"
        rec = disk.get(path)
        if rec is None:
            problems.append(Problem(name, "removed", "whiteout in the layer tar; no 0:0 "
                                    "character device on disk"))
        elif rec.kind != CHAR or rec.dev != (0, 0):
            problems.append(Problem(name, "type", f"whiteout in the layer tar; a {rec.kind} "
                                    f"on disk at {path}"))
    if not full and driver in ("overlay2",):
        for folder in opaque:
            rec = disk.get(folder)
            is_opq = rec is not None and any(rec.xattrs.get(x) == b"y" for x in OPAQUE_XATTRS)
            if overlay_xattrs and not is_opq:
                name = f"{folder}/{OPQ}" if folder else OPQ
                problems.append(Problem(name, "removed", "opaque marker in the layer tar; the "
                                        "folder has no overlay opaque xattr on disk"))
    # added entries
    opq_set = set(opaque)
    for inner, rec in disk.items():
        if inner in seen or inner == "":
            continue
        if driver == "aufs" and inner.split("/", 1)[0] in AUFS_META:
            continue
        if not full and rec.kind == CHAR and rec.dev == (0, 0) and driver == "overlay2":
            parent, _, base = inner.rpartition("/")
            problems.append(Problem(f"{parent}/{WH}{base}" if parent else f"{WH}{base}",
                                    "added", f"0:0 character device (whiteout) {inner} on disk, "
                                    "not in the layer tar"))
            continue
        problems.append(Problem(inner, "added", f"{rec.kind} on disk, not in the layer tar"))
    if not full and driver == "overlay2":
        for inner, rec in disk.items():
            if rec.kind == DIR and inner not in opq_set and \
                    any(rec.xattrs.get(x) == b"y" for x in OPAQUE_XATTRS):
                problems.append(Problem(f"{inner}/{OPQ}" if inner else OPQ, "added",
                                        "the folder is opaque on disk; the layer tar has no "
                                        "opaque marker"))


def _metadata(problems: list[Problem], inner: str, exp: _Expect, rec: _Disk, where: str, *,
              full: bool, xattrs: bool, norm: "_Normalise") -> None:
    """Compare the header's type-independent metadata with the disk entry."""
    h = exp.header
    kind = _TYPE_KIND.get(h.typeflag, FILE)
    want_mode = h.mode & ~norm.umask
    # a non-root extraction (the only source of a umask here) also keeps u+w on folders
    lenient = norm.umask and kind == DIR and rec.mode == want_mode | 0o200
    if kind != SYMLINK and rec.mode != want_mode and not lenient:
        problems.append(Problem(inner, "mode", f"{h.mode:04o} in the layer tar, "
                                f"{rec.mode:04o} on disk{where}"))
    uid, gid = norm.owners.get((h.uid, h.gid), (h.uid, h.gid))
    if (rec.uid, rec.gid) != (uid, gid):
        problems.append(Problem(inner, "owner", f"{uid}:{gid} in the layer tar, "
                                f"{rec.uid}:{rec.gid} on disk{where}"))
    want = max(h.mtime, 0)  # the daemon clamps times before the epoch to the epoch
    check_time = kind != HARDLINK and not (full and kind == DIR and not exp.own)
    if check_time and _sec(rec.mtime) != _sec(want):
        problems.append(Problem(inner, "mtime", f"{_sec(want)} in the layer tar, "
                                f"{_sec(rec.mtime)} on disk{where}"))
    if xattrs and kind in (FILE, HARDLINK):
        cap_t = h.xattrs.get("security.capability")
        cap_d = rec.xattrs.get("security.capability")
        if cap_t != cap_d:
            problems.append(Problem(inner, "xattr", "security.capability "
                                    f"{'absent' if cap_t is None else cap_t.hex()} in the layer "
                                    f"tar, {'absent' if cap_d is None else cap_d.hex()} on "
                                    f"disk{where}"))


# --- reassembly -------------------------------------------------------------------------

def _digest(data: bytes, get: Any) -> str:
    sha = hashlib.sha256()
    tarsplit.assemble(tarsplit.iter_items(data, headers=False), get, sha.update)
    return "sha256:" + sha.hexdigest()


def _reassemble(result: LayerResult, split: bytes, folder: str, disk: dict[str, _Disk],
                buffer: dict[str, bytes], directory: str | None, limit: int) -> None:
    """Rebuild the layer tar and compare its sha256 with the diff id."""
    if not result.diff_id:
        result.notes.append("no diff id recorded (pre-1.10 layer): the tar was not rebuilt")
        return

    def get(entry: tarsplit.FileEntry) -> bytes | BinaryIO | None:
        inner = tarsplit.clean_path(entry.name)
        rec = disk.get(inner) if inner is not None else None
        if rec is None or rec.kind not in (FILE, HARDLINK) or rec.content is None:
            return b""  # missing on disk: the daemon would fail; the digest will differ
        if directory is not None:  # the walk saw no symlink on the way; never follow one
            path = os.path.join(directory, *rec.content.split("/"))
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                return b""
            return os.fdopen(fd, "rb")
        return buffer.get(rec.content)

    try:
        digest = _digest(split, get)
    except LookupError:
        result.diff_id_check = "skipped"
        result.notes.append(f"the layer tar was not rebuilt: its files did not fit the "
                            f"{limit:,}-byte content buffer of a streamed archive "
                            "(file-by-file checks were done)")
        return
    if digest == result.diff_id:
        result.diff_id_check = "match"
        return
    result.diff_id_check = "mismatch"
    explained = any(p.kind in ("content", "size", "removed", "type") for p in result.problems)
    if not explained:
        result.problems.append(Problem("", "diff_id", f"the rebuilt layer tar hashes to "
                                       f"{digest}, not to the diff id {result.diff_id}: the "
                                       "tar-split or the diff id was altered"))


# --- entry point ------------------------------------------------------------------------

def _layer_driver(driver_dir: str | None, active: str | None) -> str | None:
    if driver_dir:
        first = driver_dir.split("/", 1)[0]
        if first:
            return first
    return active


@dataclass
class _Normalise:
    """What the acquisition (or a user-namespace remap) did to every owner and mode.

    Learned over all compared entries of all layers: ``owners`` maps each tar
    owner to the disk owner most entries with that tar owner have (identity on a
    faithful root-run acquisition; ``0:0 → 1000:1000`` for files re-tarred by an
    ordinary user; the remap base under ``userns-remap``), ``umask`` is the
    permission mask that explains the most entries (an extraction by a non-root
    tool applies its umask, and leaves folders owner-writable, which is then
    accepted too). Entries that deviate from the majority are reported; the owner
    mapping is learned only when most entries' owners differ (a faithful
    acquisition compares owners exactly).
    """

    owners: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    umask: int = 0

    @classmethod
    def learn(cls, pairs: Iterator[tuple[tarsplit.TarHeader, _Disk]]) -> "_Normalise":
        owner_counts: dict[tuple[int, int], Counter[tuple[int, int]]] = {}
        mode_counts: Counter[tuple[int, int]] = Counter()
        for h, rec in pairs:
            owner_counts.setdefault((h.uid, h.gid), Counter())[(rec.uid, rec.gid)] += 1
            if _TYPE_KIND.get(h.typeflag, FILE) != SYMLINK:
                mode_counts[(h.mode, rec.mode)] += 1
        owners = {}
        same = sum(c[o] for o, c in owner_counts.items())
        total = sum(sum(c.values()) for c in owner_counts.values())
        if same * 2 < total:  # most owners differ: the whole acquisition is shifted
            for tar_owner, counts in owner_counts.items():
                top = max(counts.items(), key=lambda kv: (kv[1], kv[0] == tar_owner))[0]
                if top != tar_owner:
                    owners[tar_owner] = top
        candidates = {0} | {t & ~d & 0o7777 for (t, d) in mode_counts if not d & ~t}
        union = 0
        for c in candidates:
            union |= c
        candidates.add(union)

        def score(mask: int) -> tuple[int, int]:
            ok = sum(n for (t, d), n in mode_counts.items() if t & ~mask == d)
            return ok, -bin(mask).count("1")

        umask = max(sorted(candidates), key=score)
        if score(umask)[0] <= score(0)[0]:
            umask = 0
        return cls(owners=owners, umask=umask)

    def describe(self) -> list[str]:
        """Notes for the results."""
        out = []
        if self.owners:
            shown = ", ".join(f"{a[0]}:{a[1]} → {b[0]}:{b[1]}"
                              for a, b in sorted(self.owners.items())[:5])
            out.append(f"owners on disk differ consistently from the layer tars ({shown}): the "
                       "acquisition did not keep owners, or the daemon remapped user "
                       "namespaces; owners were compared under that mapping")
        if self.umask:
            out.append(f"modes on disk are the layer tars' modes less {self.umask:04o} almost "
                       "everywhere (an extraction under that umask); modes were compared "
                       "under that mask")
        return out


def _images_of(snap: Any) -> dict[str, list[str]]:
    """chain id → tags (or short ids of untagged images) of the images using the layer."""
    layers = snap.tables["layers"]
    parent = dict(zip(layers["chain_id"], layers["parent_chain_id"]))
    labelled: list[tuple[int, list[str], Any]] = []
    images = snap.tables["images"]
    for image_id, top in zip(images["image_id"], images["top_chain_id"]):
        try:
            tags = sorted(snap.image_tags_of(image_id))
        except Exception:  # noqa: BLE001 - naming is cosmetic
            tags = []
        labelled.append((0 if tags else 1,
                         tags or [str(image_id).removeprefix("sha256:")[:12]], top))
    out: dict[str, list[str]] = {}
    for _untagged, label, top in sorted(labelled, key=lambda x: (x[0], x[1])):
        chain, hops = top, 0
        while isinstance(chain, str) and chain and hops < 1000:
            for t in label:
                if t not in out.setdefault(chain, []):
                    out[chain].append(t)
            chain, hops = parent.get(chain), hops + 1
    # name a layer by its tagged images; untagged (intermediate) image ids only otherwise
    return {c: [n for n in names if ":" in n or "@" in n] or names for c, names in out.items()}


def _iter_source(path: str) -> tuple[Any, Iterator[tuple[Any, BinaryIO | None]]]:
    from analyzer.pipeline import open_source

    source = open_source(path)
    return source, iter(source)


def verify(snapshot_path: str, snap: Any, *, buffer_limit: int = BUFFER_LIMIT) -> VerifyResults:
    """Verify every image layer of ``snap`` against its tar-split, reading the evidence once.

    Args:
        snapshot_path: the evidence (tar or directory) or a case folder of it.
        snap: the :class:`~analyzer.model.snapshot.Snapshot` of that evidence.
        buffer_limit: bytes of layer content kept to rebuild layer tars from a
            streamed archive (0 disables the diff-id check for tar evidence).

    Raises:
        UsageError: a case folder whose evidence is gone.
        SnapshotError: the evidence is unreadable.
    """
    evidence = evidence_of(snapshot_path, snap)
    meta = snap.meta
    root = str(meta.get("root_prefix") or "").strip("/")
    pre = f"{root}/" if root else ""
    active = meta.get("driver")
    if not isinstance(active, str):  # NaN/None from a case folder
        active = None
    elif "," in active:  # several drivers present: the first is the daemon's
        active = active.split(",")[0]
    layers = snap.tables["layers"]
    images = _images_of(snap)
    results: list[LayerResult] = []
    folders: dict[str, str] = {}
    splits: dict[str, str] = {}
    rows: dict[str, Any] = {}
    for row in layers.sort_values("chain_id").itertuples(index=False):
        chain = str(row.chain_id)
        driver_dir = row.driver_dir if isinstance(row.driver_dir, str) else None
        driver = _layer_driver(driver_dir, active)
        res = LayerResult(chain_id=chain, diff_id=row.diff_id if isinstance(row.diff_id, str)
                          else None, cache_id=row.cache_id if isinstance(row.cache_id, str)
                          else None, driver=driver, content_path=driver_dir,
                          images=images.get(chain, []))
        results.append(res)
        rows[chain] = row
        store = driver or (active or "").split(",")[0]
        if chain.startswith("sha256:"):
            splits[f"{pre}image/{store}/layerdb/sha256/{chain[7:]}/tar-split.json.gz"] = chain
        else:  # pre-1.10 graph layer
            splits[f"{pre}graph/{chain}/tar-data.json.gz"] = chain
        if driver_dir and driver not in UNREADABLE:
            folders[f"{pre}{driver_dir}"] = chain
    random_access = os.path.isdir(evidence)
    state = _Pass(folders, splits, buffer_limit, random_access)
    source, members = _iter_source(evidence)
    seen_folders: set[str] = set()
    for member, payload in members:
        if member.path is None:
            continue
        if member.path in folders:
            seen_folders.add(member.path)
        state.member(member, payload)
    info = source.info
    out = VerifyResults(evidence_path=os.path.abspath(evidence), evidence_sha256=info.sha256,
                        driver=active, root_prefix=root, crc_backend=tarsplit.CRC64_BACKEND,
                        xattrs_captured=state.xattrs,
                        overlay_xattrs_captured=state.overlay_xattrs, layers=results)
    recorded = meta.get("evidence_sha256")
    if recorded and info.sha256 and recorded != info.sha256:
        out.notes.append(f"the evidence now hashes to {info.sha256}, not to {recorded} as when "
                         "its tables were read: results may not describe the same evidence")
    if not info.complete:
        out.notes.append("the evidence is incomplete (truncated or corrupt); missing files may "
                         "be reported as removed")
    if not state.xattrs:
        out.notes.append("no member of the archive carries xattrs (not captured, or none "
                         "exist): file capabilities were not compared")
    if not state.overlay_xattrs and any(lr.driver == "overlay2" for lr in results):
        out.notes.append("no trusted.* xattrs in the archive (not captured, e.g. no --xattrs "
                         "or not root): opaque markers (.wh..wh..opq) could not be checked")
    if state.overflow:
        out.notes.append(f"layer content exceeded the {buffer_limit >> 20} MiB buffer; some "
                         "layer tars were not rebuilt")
    parsed: dict[str, list[tarsplit.FileEntry] | str] = {}

    def entries_of(chain: str) -> list[tarsplit.FileEntry] | str:
        if chain not in parsed:
            if chain in state.split_problems:
                parsed[chain] = f"tar-split unusable: {state.split_problems[chain]}"
            elif chain not in state.split_bytes:
                parsed[chain] = "no tar-split.json.gz for this layer in the snapshot"
            else:
                try:
                    parsed[chain] = _read_tar_split(state.split_bytes[chain])
                except TarSplitFormatError as exc:
                    parsed[chain] = f"malformed tar-split.json.gz: {exc}"
        return parsed[chain]

    trees: dict[str, dict[str, _Expect] | str] = {}

    def full_tree(chain: str, depth: int = 0) -> dict[str, _Expect] | str:
        if chain in trees:
            return trees[chain]
        got = entries_of(chain)
        if isinstance(got, str):
            trees[chain] = got
            return got
        row = rows.get(chain)
        parent = row.parent_chain_id if row is not None else None
        lower: dict[str, _Expect] | str = {}
        if isinstance(parent, str) and parent:
            if parent not in rows or depth > 200:
                lower = f"parent layer {parent[:19]} is not in the layer database"
            else:
                lower = full_tree(parent, depth + 1)
                if isinstance(lower, str):
                    lower = f"parent layer {parent[:19]}: {lower}"
        if isinstance(lower, str):
            trees[chain] = lower
            return lower
        own, wh, opq, _unsafe = _own_tree(got, chain, overlay_whiteouts=True)
        trees[chain] = _apply(lower, own, wh, opq)
        return trees[chain]

    prepared: list[tuple[LayerResult, dict[str, _Expect], dict[str, _Disk], list[str],
                         list[str], bool, str]] = []
    for res in results:
        driver = res.driver
        if driver in UNREADABLE:
            res.status, res.reason = "unverifiable", UNREADABLE[driver]
            continue
        if not res.content_path or driver not in DIFF_DRIVERS + FULL_DRIVERS:
            res.status = "unverifiable"
            res.reason = f"no content folder known for driver {driver!r}"
            continue
        got = entries_of(res.chain_id)
        if isinstance(got, str):
            res.status, res.reason = "unverifiable", got
            continue
        folder = f"{pre}{res.content_path}"
        disk = state.records.get(folder, {})
        if not disk and folder not in seen_folders:
            res.status = "unverifiable"
            res.reason = f"the content folder {res.content_path} is not in the snapshot"
            continue
        full = driver in FULL_DRIVERS
        if full:
            tree = full_tree(res.chain_id)
            if isinstance(tree, str):
                res.status = "unverifiable"
                res.reason = f"the full tree of this {driver} layer cannot be rebuilt: {tree}"
                continue
            _own, wh, opq, unsafe = _own_tree(got, res.chain_id, overlay_whiteouts=True)
        else:
            tree, wh, opq, unsafe = _own_tree(got, res.chain_id,
                                              overlay_whiteouts=driver == "overlay2")
        for name in unsafe:
            res.notes.append(f"entry {name!r} is absolute or climbs out with '..'; not "
                             "compared (the daemon refuses such names)")
        prepared.append((res, tree, disk, wh, opq, full, folder))
    norm = _Normalise.learn((exp.header, disk[k]) for _r, tree, disk, *_rest in prepared
                            for k, exp in tree.items() if k in disk)
    out.notes.extend(norm.describe())
    order = {k: i for i, k in enumerate(KINDS)}
    for res, tree, disk, wh, opq, full, folder in prepared:
        _compare(res, tree, disk, driver=res.driver or "", whiteouts=wh, opaque=opq, full=full,
                 xattrs=state.xattrs, overlay_xattrs=state.overlay_xattrs, norm=norm)
        _reassemble(res, state.split_bytes[res.chain_id], folder, disk, state.buffer,
                    evidence if random_access else None, buffer_limit)
        res.problems.sort(key=lambda p: (p.path, order.get(p.kind, 99)))
        res.status = "tampered" if res.problems else "ok"
    return out


def render_text(results: VerifyResults, verbose_ok: bool = True) -> str:
    """``sha256sum -c``-like lines: one per layer, problems indented, then a summary."""
    lines = []
    for lr in results.layers:
        names = f" ({', '.join(lr.images[:3])}{', …' if len(lr.images) > 3 else ''})" \
            if lr.images else ""
        head = f"{lr.chain_id[:19]}{names}"
        if lr.status == "ok":
            if verbose_ok:
                lines.append(f"{head}: OK")
        elif lr.status == "unverifiable":
            lines.append(f"{head}: UNVERIFIABLE ({lr.reason})")
        else:
            lines.append(f"{head}: TAMPERED ({len(lr.problems)} problem"
                         f"{'s' if len(lr.problems) != 1 else ''}, layer folder "
                         f"{lr.content_path})")
            for p in lr.problems:
                lines.append(f"    {p.kind:<9} {p.path or '(layer tar)'}  {p.detail}")
    c = results.counts()
    lines.append(f"{c['ok']} ok, {c['tampered']} tampered, {c['unverifiable']} unverifiable "
                 f"(of {len(results.layers)} image layers)")
    return "\n".join(lines) + "\n"


__all__ = ["BUFFER_LIMIT", "KINDS", "LayerResult", "Problem", "VerifyResults", "evidence_of",
           "render_text", "verify"]
