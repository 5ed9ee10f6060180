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

**containerd image store** (no tar-split; the content store keeps the compressed
blobs): every blob of ``io.containerd.content.v1.content/blobs/sha256`` must hash to
its file name (``digest``) and have the size every description of it gives (``size``:
meta.db content records of every namespace, image records, index and manifest
descriptors); every layer blob must decompress (gzip, zstd or plain tar) to a tar whose
sha256 is the layer's diff id (the image config's ``rootfs.diff_ids`` and the blob's
``containerd.io/uncompressed`` label); the tar's entries are then compared with the
unpacked snapshot folder (``layers.cache_id`` → ``layer_dirs.content_path``) exactly as
above, with sha256 instead of CRC-64 for contents and the overlay whiteout/opaque
mapping of the ``overlayfs`` snapshotter. The layer reports ``blob`` (its blob is
altered or unreadable) and ``diff_id`` problems, then the file problems: when the blob
itself was altered the snapshot is compared with what the blob holds now, which names
the edited files. Blob verdicts (``ok``, ``tampered``, ``missing`` = recorded in meta.db
but not in the evidence) are in :attr:`VerifyResults.blobs`. The evidence files holding
the containerd root (the data-root's, or the ``--containerd`` one, mapped with
:mod:`analyzer.model.evidence`) are each streamed once; memory holds metadata and a
sha256 per layer-tar and snapshot entry, meta.db and the JSON blobs. File contents are
hashed from the evidence, not taken from the index, so verify describes the evidence as
it is now. With both stores present and the graphdriver active, the content store's
blobs are checked too (one more pass).

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
import io
import json
import math
import os
import tarfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Iterator

from analyzer.errors import TarSplitFormatError, UsageError
from analyzer.formats import tarsplit
from analyzer.parsers.containerd import BLOBS, META_DB
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

#: drivers/snapshotters that store whiteouts as 0:0 char devices and opaque xattrs
WHITEOUT_DRIVERS = ("overlay2", "overlayfs")
#: problem kinds, in report order (``blob``: the layer's compressed blob in the containerd
#: content store is altered, missing or unreadable; ``digest``: a blob's content does not
#: hash to its name)
KINDS = ("content", "size", "added", "removed", "type", "mode", "owner", "mtime", "linkname",
         "xattr", "diff_id", "blob", "digest")


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
    #: containerd store: the compressed layer blob, and its check (match: its content
    #: hashes to its digest; mismatch; missing: not in the content store; skipped)
    blob_digest: str | None = None
    blob_check: str = "skipped"


@dataclass
class BlobResult:
    """The verdict on one blob of a containerd content store."""

    digest: str  # sha256:<hex>, from the file name
    path: str  # files-table path (relative to the data-root; ``@containerd/…`` if mounted)
    kind: str = "other"  # layer, index, manifest, config, other
    size: int | None = None  # bytes in the evidence (None: missing)
    expected_sizes: dict[str, int] = field(default_factory=dict)  # where → descriptor size
    sha256: str | None = None  # of the bytes in the evidence
    compression: str | None = None  # layer blobs: gzip, zstd, none
    diff_id: str | None = None  # layer blobs: the diff id the blob must decompress to
    uncompressed_sha256: str | None = None
    diff_id_check: str = "skipped"  # match, mismatch, skipped
    status: str = "ok"  # ok, tampered, missing
    problems: list[Problem] = field(default_factory=list)
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
    image_store: str | None = None  # graphdriver, containerd, both, none
    #: the containerd root (evidence member path) and, when it is a second evidence, that file
    containerd_root: str | None = None
    containerd_evidence_path: str | None = None
    containerd_evidence_sha256: str | None = None
    blobs: list[BlobResult] = field(default_factory=list)  # the containerd content store

    @property
    def tampered(self) -> list[LayerResult]:
        """Layers with at least one problem."""
        return [lr for lr in self.layers if lr.status == "tampered"]

    @property
    def tampered_blobs(self) -> list[BlobResult]:
        """Content-store blobs whose bytes do not match their digest or descriptor size."""
        return [b for b in self.blobs if b.status == "tampered"]

    @property
    def exit_status(self) -> int:
        """0 when nothing was tampered, 1 otherwise (like ``sha256sum -c``)."""
        return 1 if self.tampered or self.tampered_blobs else 0

    def blob_counts(self) -> dict[str, int]:
        """Content-store blobs per status."""
        out = {"ok": 0, "tampered": 0, "missing": 0}
        for b in self.blobs:
            out[b.status] += 1
        return out

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
        if self.blobs:
            doc["blob_summary"] = self.blob_counts()
        return doc


@dataclass(slots=True)
class _Disk:
    """What the evidence holds at one path of a layer folder."""

    kind: str
    size: int
    crc: int | str | None  # CRC-64 of the content (tar-split), or sha256 hex (containerd)
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
    crc: int | str | None  # CRC-64 (tar-split) or sha256 hex (containerd layer blob)
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


def _disk(member: Any, size: int, digest: Any, inode: Any, content: str | None) -> "_Disk":
    """The record of one layer-folder member (both passes): its metadata as archived,
    with the size, content digest (CRC-64 or sha256), inode and content path resolved."""
    return _Disk(kind=member.kind, size=size, crc=digest, mode=member.mode, uid=member.uid,
                 gid=member.gid, mtime=member.mtime, linkname=member.linkname,
                 dev=(member.devmajor, member.devminor),
                 xattrs={k: v for k, v in member.xattrs.items() if k in KEPT_XATTRS},
                 inode=inode, content=content)


class _Folders:
    """What both streaming passes share: which content folder a path is in, and whether
    the archive kept extended attributes (overlay ones in particular)."""

    def __init__(self, folders: Any) -> None:
        self.folders = folders
        self.depths = sorted({f.count("/") + 1 for f in folders})
        self.xattrs = False  # some member carries an xattr
        self.overlay_xattrs = False  # some member carries a trusted.* / user.overlay.* one

    def folder_of(self, path: str) -> tuple[str, str] | None:
        """(content folder, path inside it) of a path, or None."""
        parts = path.split("/")
        for d in self.depths:
            if len(parts) >= d:
                folder = "/".join(parts[:d])
                if folder in self.folders:
                    return folder, "/".join(parts[d:])
        return None

    def note_xattrs(self, member: Any) -> None:
        if member.xattrs:
            self.xattrs = True
            if not self.overlay_xattrs:
                self.overlay_xattrs = any(k.startswith(("trusted.", "user.overlay."))
                                          for k in member.xattrs)


class _Pass(_Folders):
    """State of the one streaming pass."""

    def __init__(self, folders: dict[str, str], splits: dict[str, str], buffer_limit: int,
                 random_access: bool) -> None:
        super().__init__(folders)  # full content-folder path → chain id
        self.splits = splits  # full tar-split path → chain id
        self.records: dict[str, dict[str, _Disk]] = {f: {} for f in folders}
        self.by_path: dict[str, _Disk] = {}  # full path → record (hardlink resolution)
        self.split_bytes: dict[str, bytes] = {}
        self.split_problems: dict[str, str] = {}
        self.buffer: dict[str, bytes] = {}
        self.buffered = 0
        self.buffer_limit = 0 if random_access else buffer_limit
        self.overflow = False

    def member(self, member: Any, payload: BinaryIO | None) -> None:
        path = member.path
        self.note_xattrs(member)
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
        rec = _disk(member, size, crc, inode, content)
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
                what = "sha256" if isinstance(exp.crc, str) else "CRC-64"
                problems.append(Problem(inner, "content", f"{what} {_sum_text(exp.crc)} in the "
                                        f"layer tar, {_sum_text(rec.crc)} on disk{where}"))
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
    if not full and driver in WHITEOUT_DRIVERS:
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
        if not full and rec.kind == CHAR and rec.dev == (0, 0) and driver in WHITEOUT_DRIVERS:
            parent, _, base = inner.rpartition("/")
            problems.append(Problem(f"{parent}/{WH}{base}" if parent else f"{WH}{base}",
                                    "added", f"0:0 character device (whiteout) {inner} on disk, "
                                    "not in the layer tar"))
            continue
        problems.append(Problem(inner, "added", f"{rec.kind} on disk, not in the layer tar"))
    if not full and driver in WHITEOUT_DRIVERS:
        for inner, rec in disk.items():
            if rec.kind == DIR and inner not in opq_set and \
                    any(rec.xattrs.get(x) == b"y" for x in OPAQUE_XATTRS):
                problems.append(Problem(f"{inner}/{OPQ}" if inner else OPQ, "added",
                                        "the folder is opaque on disk; the layer tar has no "
                                        "opaque marker"))


def _sum_text(value: int | str | None) -> str:
    """A file checksum for messages: CRC-64 (int) in hex, sha256 (hex str) as is."""
    if isinstance(value, str):
        return value
    return f"{value or 0:016x}"


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
    if _containerd_active(snap):
        return _verify_containerd(evidence, snap)
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
    if str(meta.get("image_store") or "") == "both" and isinstance(
            meta.get("containerd_root"), str):  # the other store's blobs: a second pass
        cstate, _infos = _containerd_pass(evidence, snap, {}, set())
        out.blobs = _blob_results(cstate, _meta_db(cstate, out), {})
        out.image_store = "both"
        out.containerd_root = meta.get("containerd_root")
    return out


# --- the containerd image store ----------------------------------------------------------
#
# No tar-split: the content store keeps each layer as the compressed blob that was pulled
# or built. One pass per evidence file (the data-root's, and a second one given with
# --containerd) hashes every blob, decompresses every layer blob once (gzip or zstd) while
# hashing the tar and every file in it, and records the snapshot folders' entries; the
# comparisons run at the end (blobs, meta.db and snapshots come in any order). Memory:
# metadata and a sha256 per layer-tar entry and per snapshot entry, meta.db, and JSON blobs
# (indexes, manifests, configs) up to MAX_JSON_BLOB each.

#: a blob that looks like JSON and is at most this big is parsed for the descriptors it holds
MAX_JSON_BLOB = 16 << 20
#: meta.db larger than this is not read (blob sizes then come from the manifests only)
MAX_META_DB = 1 << 30
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"
SNAPSHOTTER_MARK = "io.containerd.snapshotter.v1."
CONTENT_BLOBS, CONTENT_META = BLOBS, META_DB  # the containerd parser's layout names
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HEX = frozenset("0123456789abcdef")


class _Tap:
    """Reads through ``raw`` (after ``head``), sha256-hashing and counting what passes."""

    def __init__(self, raw: Any, head: bytes = b"") -> None:
        self.raw = raw
        self.head = head
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                data = self.head + self.raw.read()
                self.head = b""
            else:
                data, self.head = self.head[:n], self.head[n:]
        else:
            data = self.raw.read() if n is None or n < 0 else self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(READ_CHUNK):
            pass


@dataclass(slots=True)
class _TarItem:
    """One entry of a layer tar, shaped like a tar-split file entry for :func:`_own_tree`."""

    name: str
    header: tarsplit.TarHeader
    size: int
    crc_value: str | None  # sha256 hex of the payload (regular files with content)


@dataclass
class _LayerTar:
    """What a layer blob decompressed to."""

    compression: str  # gzip, zstd, none
    sha256: str | None = None  # sha256:<hex> of the whole tar (None: not readable)
    entries: list[_TarItem] | None = None  # kept for the blobs of image layers only
    error: str | None = None


@dataclass
class _SeenBlob:
    """A content-store blob met in the evidence."""

    path: str  # files-table path
    kind: str
    size: int
    sha256: str
    layer: _LayerTar | None = None
    doc: Any = None  # parsed JSON (indexes, manifests, configs)
    problem: str | None = None


def _tar_item(ti: tarfile.TarInfo, tf: tarfile.TarFile) -> _TarItem:
    typeflag = ti.type.decode("latin-1") if isinstance(ti.type, bytes) else str(ti.type)
    if typeflag in ("\0", ""):
        typeflag = "0"
    xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
              for k, v in ti.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    sha: str | None = None
    if ti.isreg() and ti.size:
        fh = tf.extractfile(ti)
        h = hashlib.sha256()
        while fh is not None:
            chunk = fh.read(READ_CHUNK)
            if not chunk:
                break
            h.update(chunk)
        sha = h.hexdigest()
    header = tarsplit.TarHeader(name=ti.name, typeflag=typeflag, mode=ti.mode & 0o7777,
                                uid=ti.uid, gid=ti.gid, mtime=math.floor(ti.mtime) * 10**9,
                                size=ti.size, linkname=ti.linkname, devmajor=ti.devmajor,
                                devminor=ti.devminor, xattrs=xattrs)
    return _TarItem(name=ti.name, header=header, size=ti.size if ti.isreg() else 0,
                    crc_value=sha)


def _read_layer_blob(tap: _Tap, head: bytes, keep_entries: bool) -> _LayerTar:
    """Decompress a layer blob (read through ``tap``), hashing the tar and its files."""
    import gzip

    from analyzer.sources.compression import decompression_errors

    comp = "gzip" if head.startswith(_GZIP_MAGIC) else "zstd" if head.startswith(
        _ZSTD_MAGIC) else "none"
    out = _LayerTar(compression=comp)
    try:
        if comp == "gzip":
            dec: Any = gzip.GzipFile(fileobj=tap, mode="rb")  # type: ignore[arg-type]
        elif comp == "zstd":
            import zstandard

            dec = zstandard.ZstdDecompressor().stream_reader(
                tap, read_size=READ_CHUNK, read_across_frames=True, closefd=False)
        else:
            dec = tap
        dtap = _Tap(dec)
        entries: list[_TarItem] = []
        with tarfile.open(fileobj=dtap, mode="r|") as tf:  # type: ignore[call-overload]
            for ti in tf:
                if keep_entries:
                    entries.append(_tar_item(ti, tf))
        dtap.drain()  # the end-of-archive blocks and padding are part of the diff id
        out.sha256 = "sha256:" + dtap.sha.hexdigest()
        out.entries = entries if keep_entries else None
    except (tarfile.TarError, *decompression_errors()) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    return out


def _read_blob(payload: BinaryIO | None, path: str, keep_entries: bool) -> _SeenBlob:
    """Hash one content-store blob; decompress it if it is a layer, parse it if JSON."""
    head = b""
    while payload is not None and len(head) < 512:
        chunk = payload.read(512 - len(head))
        if not chunk:
            break
        head += chunk
    tap = _Tap(payload if payload is not None else io.BytesIO(b""), head)
    blob = _SeenBlob(path=path, kind="other", size=0, sha256="")
    from analyzer.sources.compression import looks_like_tar

    if head.startswith((_GZIP_MAGIC, _ZSTD_MAGIC)) or looks_like_tar(head):
        blob.kind = "layer"
        blob.layer = _read_layer_blob(tap, head, keep_entries)
    elif head[:1] in (b"{", b"["):
        chunks: list[bytes] = []
        got = 0
        while got <= MAX_JSON_BLOB:
            chunk = tap.read(READ_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        if len(data) <= MAX_JSON_BLOB:
            try:
                blob.doc = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                blob.doc = None
        if isinstance(blob.doc, dict):
            if isinstance(blob.doc.get("manifests"), list):
                blob.kind = "index"
            elif "layers" in blob.doc and "config" in blob.doc:
                blob.kind = "manifest"
            elif "rootfs" in blob.doc:
                blob.kind = "config"
    tap.drain()
    blob.size = tap.count
    blob.sha256 = tap.sha.hexdigest()
    return blob


class _CPass(_Folders):
    """State of the pass(es) over a containerd store."""

    def __init__(self, croot: str, folders: dict[str, list[str]], layer_blobs: set[str]) -> None:
        super().__init__(folders)  # files-table folder → chain ids
        self.blob_dir = f"{croot}/{CONTENT_BLOBS}/"
        self.meta_db_path = f"{croot}/{CONTENT_META}"
        self.layer_blobs = layer_blobs  # hex digests of image-layer blobs: keep their entries
        self.records: dict[str, dict[str, _Disk]] = {f: {} for f in folders}
        self.seen_folders: set[str] = set()
        self.blobs: dict[str, _SeenBlob] = {}  # hex → what the evidence holds
        self.meta_db: bytes | None = None
        self.meta_db_problem: str | None = None
        self.by_path: dict[tuple[str, str], _Disk] = {}

    def member(self, evidence: str, parts: list[Any], member: Any,
               payload: BinaryIO | None) -> None:
        from analyzer.model.evidence import relative

        if member.path is None:
            return
        rel = relative(parts, member.path)
        if rel is None:
            return
        self.note_xattrs(member)
        if rel == self.meta_db_path:
            data = payload.read(MAX_META_DB + 1) if payload is not None else b""
            if member.kind != FILE or len(data) > MAX_META_DB:
                self.meta_db_problem = "not a regular file" if member.kind != FILE else \
                    f"larger than {MAX_META_DB} bytes; not read"
            else:
                self.meta_db = data
            return
        if rel.startswith(self.blob_dir):
            hexd = rel[len(self.blob_dir):]
            if len(hexd) != 64 or not set(hexd) <= _HEX:
                return
            if member.kind != FILE:
                self.blobs[hexd] = _SeenBlob(path=rel, kind="other", size=0, sha256="",
                                             problem=f"a {member.kind}, not a regular file")
                return
            self.blobs[hexd] = _read_blob(payload, rel, hexd in self.layer_blobs)
            return
        hit = self.folder_of(rel)
        if hit is None:
            return
        folder, inner = hit
        if inner == "":
            self.seen_folders.add(folder)
        kind = member.kind
        sha: str | None = None
        size = member.size
        inode = member.path
        content: str | None = None
        if kind == FILE:
            h = hashlib.sha256()
            size = 0
            while payload is not None:
                chunk = payload.read(READ_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
            sha, content = h.hexdigest(), member.path
        elif kind == HARDLINK:
            target = self.by_path.get((evidence, member.linkname))
            if target is not None:
                sha, size, inode, content = target.crc, target.size, target.inode, target.content
            else:
                inode, size = member.linkname, -1
        rec = _disk(member, size, sha, inode, content)
        self.records[folder][inner] = rec
        if kind in (FILE, HARDLINK):
            self.by_path[(evidence, member.path)] = rec


def _containerd_active(snap: Any) -> bool:
    """True when the daemon's image store (the layers table) is a containerd snapshotter."""
    if str(snap.meta.get("image_store") or "") not in ("containerd", "both"):
        return False
    dirs = snap.tables.get("layer_dirs")
    layers = snap.tables["layers"]
    if dirs is None or dirs.empty or layers.empty:
        return str(snap.meta.get("image_store") or "") == "containerd"
    cache = set(layers["cache_id"].dropna().astype(str))
    for dir_id, path in zip(dirs["dir_id"], dirs["content_path"]):
        if str(dir_id) in cache and isinstance(path, str) and SNAPSHOTTER_MARK in path:
            return True
    return False


def _croot_rel(meta: dict[str, Any]) -> str:
    """Where the containerd root's files are in the files table."""
    from analyzer.model.evidence import evidence_parts
    from analyzer.parsers.containerd import EXTERNAL, MANAGED

    mount = meta.get("containerd_mount")
    if isinstance(mount, str) and mount:
        return mount
    return EXTERNAL if len(evidence_parts(meta)) > 1 else MANAGED


def _evidence_plan(evidence: str, meta: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(evidence file, its parts) to stream for the containerd store, data-root's first.

    Raises:
        UsageError: the containerd evidence named in the tables is no longer there.
    """
    from analyzer.model.evidence import EvidencePart, evidence_parts

    recorded = str(meta.get("evidence_path") or "")
    parts = []
    for p in evidence_parts(meta):
        ev = evidence if p.evidence in (recorded, "") else p.evidence
        parts.append(EvidencePart(ev, p.prefix, p.mount))
    croot = parts[1] if len(parts) > 1 else parts[0]
    if not os.path.exists(croot.evidence):
        raise UsageError(f"the containerd root's evidence {croot.evidence!r} is no longer "
                         "there; verify needs the evidence itself")
    plan: dict[str, list[Any]] = {}
    for p in parts[1:] if len(parts) > 1 else parts:
        plan.setdefault(p.evidence, []).append(p)
    return list(plan.items())


def _descriptor_sizes(seen: dict[str, _SeenBlob], meta_db: Any) -> dict[str, dict[str, int]]:
    """digest hex → {where it is described: size}: meta.db content and image records,
    and the descriptors of every index and manifest in the store."""
    out: dict[str, dict[str, int]] = {}

    def add(digest: Any, where: str, size: Any) -> None:
        if isinstance(digest, str) and digest.startswith("sha256:") and isinstance(size, int) \
                and not isinstance(size, bool):
            out.setdefault(digest[7:], {})[where] = size

    for ns, db in (meta_db or {}).items():
        for digest, rec in db.blobs.items():
            add(digest, f"meta.db content record ({ns})", rec.get("size"))
        for name, rec in db.images.items():
            add(rec.get("digest"), f"meta.db image record {ns}/{name}", rec.get("size"))
    for hexd, blob in sorted(seen.items()):
        doc = blob.doc
        if not isinstance(doc, dict):
            continue
        descs: list[Any] = []
        if blob.kind == "index":
            descs = doc.get("manifests") or []
        elif blob.kind == "manifest":
            descs = [doc.get("config")] + list(doc.get("layers") or [])
        for d in descs:
            if isinstance(d, dict):
                add(d.get("digest"), f"{blob.kind} sha256:{hexd[:12]}", d.get("size"))
    return out


def _blob_results(state: _CPass, meta_db: Any, expected_diff: dict[str, set[str]]
                  ) -> list[BlobResult]:
    """The verdict on every blob of the content store (and on recorded blobs missing)."""
    sizes = _descriptor_sizes(state.blobs, meta_db)
    labels: dict[str, str | None] = {}
    for db in reversed(list((meta_db or {}).values())):  # moby's label wins
        for d, r in db.blobs.items():
            if isinstance(d, str) and d.startswith("sha256:"):
                labels[d[7:]] = (r.get("labels") or {}).get(UNCOMPRESSED_LABEL) or \
                    labels.get(d[7:])
    recorded = set(labels)
    out: list[BlobResult] = []
    for hexd, seen in sorted(state.blobs.items()):
        res = BlobResult(digest=f"sha256:{hexd}", path=seen.path, kind=seen.kind,
                         size=seen.size, sha256=f"sha256:{seen.sha256}" if seen.sha256 else None,
                         expected_sizes=dict(sorted(sizes.get(hexd, {}).items())))
        out.append(res)
        if seen.problem:
            res.problems.append(Problem("", "digest", f"the blob is {seen.problem}"))
            res.status = "tampered"
            continue
        if seen.sha256 != hexd:
            res.problems.append(Problem("", "digest", f"the content hashes to sha256:"
                                        f"{seen.sha256}, not to its name"))
        for where, size in res.expected_sizes.items():
            if size != seen.size:
                res.problems.append(Problem("", "size", f"{size} bytes in the {where}, "
                                            f"{seen.size} in the evidence"))
        if meta_db is not None and hexd not in recorded:
            res.notes.append("not in meta.db's content records (containerd does not know this "
                             "blob: left over, or put there by hand)")
        wants = set(expected_diff.get(hexd, set()))
        if labels.get(hexd):
            wants.add(labels[hexd])
        layer = seen.layer
        if layer is not None:
            res.compression = layer.compression
            res.uncompressed_sha256 = layer.sha256
            if layer.error:
                res.problems.append(Problem("", "diff_id", "the layer blob does not "
                                            f"decompress to a tar: {layer.error}"))
        if wants:
            res.diff_id = sorted(wants)[0]
            if layer is None:
                res.problems.append(Problem("", "diff_id", "a layer blob (it has a diff id) "
                                            "that is neither gzip, zstd nor a tar"))
            elif layer.sha256 is not None:
                bad = sorted(w for w in wants if w != layer.sha256)
                res.diff_id_check = "mismatch" if bad else "match"
                for w in bad:
                    res.problems.append(Problem("", "diff_id", f"decompresses to "
                                                f"{layer.sha256}, not to the diff id {w}"))
        res.status = "tampered" if res.problems else "ok"
    for hexd in sorted(recorded - set(state.blobs)):
        out.append(BlobResult(digest=f"sha256:{hexd}", path=f"{state.blob_dir}{hexd}",
                              status="missing", expected_sizes=dict(sorted(
                                  sizes.get(hexd, {}).items())),
                              notes=["recorded in meta.db, not in the evidence (garbage-"
                                     "collected, not acquired, or deleted)"]))
    return out


def _containerd_pass(evidence: str, snap: Any, folders: dict[str, list[str]],
                     layer_blobs: set[str]) -> tuple[_CPass, list[tuple[str, Any]]]:
    """Stream every evidence file holding the containerd root once."""
    meta = snap.meta
    state = _CPass(_croot_rel(meta), folders, layer_blobs)
    infos = []
    for ev, parts in _evidence_plan(evidence, meta):
        source, members = _iter_source(ev)
        for member, payload in members:
            state.member(ev, parts, member, payload)
        infos.append((ev, source.info))
    return state, infos


def _verify_containerd(evidence: str, snap: Any) -> VerifyResults:
    """Verify the containerd image store: blobs, diff ids, unpacked snapshots."""
    meta = snap.meta
    active = meta.get("driver") if isinstance(meta.get("driver"), str) else None
    layers = snap.tables["layers"]
    dirs = snap.tables.get("layer_dirs")
    folder_of_dir: dict[str, tuple[str, str]] = {}
    if dirs is not None and not dirs.empty:
        for dir_id, drv, path in zip(dirs["dir_id"], dirs["driver"], dirs["content_path"]):
            if isinstance(path, str) and SNAPSHOTTER_MARK in path:
                folder_of_dir[str(dir_id)] = (str(drv), path)
    images = _images_of(snap)
    results: list[LayerResult] = []
    folders: dict[str, list[str]] = {}
    layer_blobs: set[str] = set()
    expected_diff: dict[str, set[str]] = {}
    for row in layers.sort_values("chain_id").itertuples(index=False):
        chain = str(row.chain_id)
        cache = row.cache_id if isinstance(row.cache_id, str) else None
        drv, folder = folder_of_dir.get(cache or "", (active, None))
        blob = getattr(row, "blob_digest", None)
        blob = blob if isinstance(blob, str) and blob.startswith("sha256:") else None
        diff = row.diff_id if isinstance(row.diff_id, str) else None
        res = LayerResult(chain_id=chain, diff_id=diff, cache_id=cache, driver=drv,
                          content_path=folder, images=images.get(chain, []), blob_digest=blob)
        results.append(res)
        if folder:
            folders.setdefault(folder, []).append(chain)
        if blob:
            layer_blobs.add(blob[7:])
            if diff:
                expected_diff.setdefault(blob[7:], set()).add(diff)
    state, infos = _containerd_pass(evidence, snap, folders, layer_blobs)
    croot_ev, croot_info = infos[-1]
    main_info = infos[0][1] if infos[0][0] == evidence else None
    separate = croot_ev != evidence
    out = VerifyResults(
        evidence_path=os.path.abspath(evidence),
        evidence_sha256=main_info.sha256 if main_info else str(meta.get("evidence_sha256") or ""),
        driver=active, root_prefix=str(meta.get("root_prefix") or "").strip("/"),
        crc_backend="sha256", xattrs_captured=state.xattrs,
        overlay_xattrs_captured=state.overlay_xattrs, layers=results,
        image_store=str(meta.get("image_store") or "") or None,
        containerd_root=meta.get("containerd_root") if isinstance(
            meta.get("containerd_root"), str) else None,
        containerd_evidence_path=os.path.abspath(croot_ev) if separate else None,
        containerd_evidence_sha256=croot_info.sha256 if separate else None)
    _evidence_notes(out, meta, infos, evidence, separate)
    meta_db = _meta_db(state, out)
    out.blobs = _blob_results(state, meta_db, expected_diff)
    by_digest = {b.digest: b for b in out.blobs}
    if not state.overlay_xattrs and folders:
        out.notes.append("no trusted.* xattrs in the archive (not captured, e.g. no --xattrs "
                         "or not root): opaque markers (.wh..wh..opq) could not be checked")
    if not state.xattrs:
        out.notes.append("no member of the archive carries xattrs (not captured, or none "
                         "exist): file capabilities were not compared")
    prepared: list[tuple[LayerResult, dict[str, _Expect], dict[str, _Disk], list[str],
                         list[str]]] = []
    for res in results:
        if not res.blob_digest:
            res.status = "unverifiable"
            res.reason = "no layer blob known (the image's manifest is not in the content store)"
            continue
        seen = state.blobs.get(res.blob_digest[7:])
        blob = by_digest.get(res.blob_digest)
        if seen is None or blob is None or blob.status == "missing":
            res.blob_check = "missing"
            res.status = "unverifiable"
            res.reason = f"the layer blob {res.blob_digest[:19]} is not in the content store"
            continue
        res.blob_check = "mismatch" if any(p.kind in ("digest", "size")
                                           for p in blob.problems) else "match"
        if res.blob_check == "mismatch":
            why = [p.detail for p in blob.problems if p.kind == "digest"]
            sizes = sorted(set(blob.expected_sizes.values()) - {blob.size})
            if sizes:
                why.append(f"{blob.size} bytes, not the {', '.join(map(str, sizes))} its "
                           "descriptors give")
            res.problems.append(Problem("", "blob", f"the layer blob {res.blob_digest[:19]} "
                                        "is altered: " + "; ".join(why)))
        layer = seen.layer
        if layer is None or layer.error or layer.sha256 is None:
            why = layer.error if layer is not None and layer.error else "not gzip, zstd or a tar"
            res.problems.append(Problem("", "blob", f"the layer blob does not decompress to a "
                                        f"tar: {why}"))
            res.status = "tampered"
            continue
        if res.diff_id:
            res.diff_id_check = "match" if layer.sha256 == res.diff_id else "mismatch"
            if res.diff_id_check == "mismatch":
                res.problems.append(Problem("", "diff_id", f"the layer blob decompresses to "
                                            f"{layer.sha256}, not to the diff id "
                                            f"{res.diff_id}"))
        label = next((((db.blobs.get(res.blob_digest) or {}).get("labels") or {}).get(
            UNCOMPRESSED_LABEL) for db in (meta_db or {}).values()
            if res.blob_digest in db.blobs), None)
        if label and res.diff_id and label != res.diff_id:
            res.problems.append(Problem("", "diff_id", f"meta.db labels the blob "
                                        f"{UNCOMPRESSED_LABEL}={label}; the image config "
                                        f"says {res.diff_id}"))
        if res.blob_check == "mismatch" or res.diff_id_check == "mismatch":
            res.notes.append("the layer tar is not the one the image names: the snapshot "
                             "was compared with what the blob holds now")
        if not res.content_path:
            res.notes.append("no unpacked snapshot for this layer: blob and diff id checked")
            res.status = "tampered" if res.problems else "ok"
            continue
        disk = state.records.get(res.content_path, {})
        if not disk and res.content_path not in state.seen_folders:
            if res.problems:
                res.status = "tampered"
            else:
                res.status = "unverifiable"
                res.reason = (f"the snapshot folder {res.content_path} is not in the snapshot "
                              "(the blob and its diff id were verified)")
            continue
        items: Any = layer.entries or []  # _TarItem quacks like a tar-split FileEntry
        tree, wh, opq, unsafe = _own_tree(items, res.chain_id, overlay_whiteouts=True)
        for name in unsafe:
            res.notes.append(f"entry {name!r} is absolute or climbs out with '..'; not "
                             "compared (the daemon refuses such names)")
        prepared.append((res, tree, disk, wh, opq))
    norm = _Normalise.learn((exp.header, disk[k]) for _r, tree, disk, *_rest in prepared
                            for k, exp in tree.items() if k in disk)
    out.notes.extend(norm.describe())
    order = {k: i for i, k in enumerate(KINDS)}
    for res, tree, disk, wh, opq in prepared:
        _compare(res, tree, disk, driver=res.driver or "overlayfs", whiteouts=wh, opaque=opq,
                 full=False, xattrs=state.xattrs, overlay_xattrs=state.overlay_xattrs,
                 norm=norm)
    for res in results:
        res.problems.sort(key=lambda p: (p.path, order.get(p.kind, 99)))
        if res.status != "unverifiable":
            res.status = "tampered" if res.problems else "ok"
    return out


def _meta_db(state: _CPass, out: VerifyResults) -> dict[str, Any] | None:
    """Every namespace of the meta.db met in the pass (``moby`` first), or None (with a
    note)."""
    from analyzer.errors import BboltFormatError
    from analyzer.formats import containerd_db as cdb
    if state.meta_db is None:
        out.notes.append("meta.db " + (f"is {state.meta_db_problem}" if state.meta_db_problem
                                       else "is not in the evidence") +
                         ": blob sizes were checked against the manifests only")
        return None
    try:
        first = cdb.read_meta_db(state.meta_db)  # dockerd's namespace
        # the content store is shared: a blob is recorded in the namespace that wrote it
        # (BuildKit's history blobs in moby_history ...)
        return {first.namespace: first, **{ns: cdb.read_meta_db(state.meta_db, ns)
                                           for ns in first.namespaces
                                           if ns != first.namespace}}
    except BboltFormatError as exc:
        out.notes.append(f"meta.db is unreadable ({exc}): blob sizes were checked against "
                         "the manifests only")
        return None


def _evidence_notes(out: VerifyResults, meta: dict[str, Any], infos: list[tuple[str, Any]],
                    evidence: str, separate: bool) -> None:
    """Notes on evidence that changed since the tables were read, or is incomplete."""
    for ev, info in infos:
        is_croot = separate and ev != evidence
        recorded = meta.get("containerd_evidence_sha256" if is_croot else "evidence_sha256")
        if isinstance(recorded, str) and recorded and info.sha256 and recorded != info.sha256:
            out.notes.append(f"the evidence {os.path.basename(ev)} now hashes to {info.sha256}, "
                             f"not to {recorded} as when its tables were read: results may "
                             "not describe the same evidence")
        if not info.complete:
            out.notes.append(f"the evidence {os.path.basename(ev)} is incomplete (truncated or "
                             "corrupt); missing files may be reported as removed")
    if separate and all(ev != evidence for ev, _ in infos):
        out.notes.append("the data-root evidence holds no layer contents (the containerd root "
                         "is a second evidence) and was not read again")


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
                         f"{'s' if len(lr.problems) != 1 else ''}, "
                         f"{'snapshot' if lr.blob_digest else 'layer'} folder "
                         f"{lr.content_path})")
            for p in lr.problems:
                lines.append(f"    {p.kind:<9} {p.path or '(layer tar)'}  {p.detail}")
    for b in results.blobs:
        if b.status == "tampered":
            lines.append(f"blob {b.digest[:19]} ({b.kind}): TAMPERED ({b.path})")
            for p in b.problems:
                lines.append(f"    {p.kind:<9} {p.detail}")
    if results.blobs:
        bc = results.blob_counts()
        lines.append(f"{bc['ok']} ok, {bc['tampered']} tampered, {bc['missing']} missing (of "
                     f"{len(results.blobs)} content-store blobs)")
    c = results.counts()
    lines.append(f"{c['ok']} ok, {c['tampered']} tampered, {c['unverifiable']} unverifiable "
                 f"(of {len(results.layers)} image layers)")
    return "\n".join(lines) + "\n"


__all__ = ["BUFFER_LIMIT", "KINDS", "BlobResult", "LayerResult", "Problem", "VerifyResults",
           "evidence_of", "render_text", "verify"]
