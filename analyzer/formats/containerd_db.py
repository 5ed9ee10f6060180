"""containerd's bbolt databases, decoded into plain records.

Two files describe a containerd root's images and layers:

* ``io.containerd.metadata.v1.bolt/meta.db`` - per namespace (dockerd uses ``moby``):
  images (name → target descriptor), content blobs (digest → size, labels),
  snapshots (snapshotter/key → backend name, parent), leases, containers;
* ``io.containerd.snapshotter.v1.<name>/metadata.db`` - the snapshotter's own index:
  backend name → numeric id (the ``snapshots/<id>`` folder), kind, parent, and the
  size/inodes recorded when a snapshot was committed.

Encodings (containerd 1.7 ``metadata/buckets.go``, ``metadata/boltutil/helpers.go``,
``snapshots/storage/bolt.go``): integers are Go varints (``size`` zig-zag signed,
``id`` unsigned), times are Go ``time.MarshalBinary`` bytes, labels are a nested
bucket of string → string. Reference: ``shared/docs/docker-root-format.md`` §1.4, §9.5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from analyzer.errors import BboltFormatError
from analyzer.formats.bbolt import BboltDB, Bucket
from analyzer.formats.timefmt import decode_go_binary_time

#: containerd snapshotter names; in the containerd image store a container's Driver is one
SNAPSHOTTERS = ("overlayfs", "native", "stargz", "zfs-snapshotter", "btrfs-snapshotter")
#: snapshot kinds of the snapshotter's metadata.db (containerd snapshots.Kind)
KINDS = {1: "view", 2: "active", 3: "committed"}


def uvarint(b: bytes) -> int:
    """Go ``binary.Uvarint``; raises ``BboltFormatError`` on a truncated value."""
    out = shift = 0
    for i, byte in enumerate(b[:10]):
        out |= (byte & 0x7F) << shift
        if byte < 0x80:
            if out >> 64:
                raise BboltFormatError(f"varint overflows 64 bits: {b[:10].hex()}")
            return out
        shift += 7
    raise BboltFormatError(f"truncated varint {b[:10].hex()}")


def varint(b: bytes) -> int:
    """Go ``binary.Varint`` (zig-zag)."""
    u = uvarint(b)
    return (u >> 1) ^ -(u & 1)  # zig-zag of a uint64: always within int64


def _time(v: bytes | None) -> int | None:
    if not v:
        return None
    try:
        return decode_go_binary_time(v)
    except (ValueError, IndexError):
        return None


def _text(v: bytes | None) -> str | None:
    return v.decode("utf-8", "replace") if v is not None else None


def _labels(b: Bucket | None) -> dict[str, str]:
    if b is None:
        return {}
    return {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
            for k, v, is_bucket in b.items() if not is_bucket}


@dataclass
class MetaDB:
    """One namespace of ``meta.db``."""

    namespace: str
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → record
    blobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest → record
    snapshots: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # sn → key → rec
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)  # every namespace in the file
    problems: list[str] = field(default_factory=list)  # damaged records skipped


def moby_score(data: bytes | None) -> int:
    """Image records + snapshots in dockerd's namespace of a ``meta.db`` (0 if unreadable):
    how strongly a containerd root says "dockerd used me as its image store"."""
    if not data:
        return 0
    try:
        meta = read_meta_db(data)
    except Exception:  # noqa: BLE001 - any damage means "no evidence of use"
        return 0
    return len(meta.images) + sum(len(v) for v in meta.snapshots.values())


def pick_namespace(namespaces: list[str]) -> str:
    """dockerd's namespace: ``moby``, or ``moby-<uid>.<gid>`` under userns-remap."""
    if "moby" in namespaces:
        return "moby"
    remapped = [n for n in namespaces if re.fullmatch(r"moby-\d+\.\d+", n)]
    return remapped[0] if len(remapped) == 1 else "moby"


def _records(bucket: Bucket | None, decode: Any, problems: list[str]) -> Iterator[tuple[str, Any]]:
    """(key, decoded record) of each sub-bucket; a damaged record is skipped and noted."""
    for key, b in (bucket.buckets() if bucket else []):
        name = key.decode("utf-8", "replace")
        try:
            yield name, decode(b)
        except (BboltFormatError, ValueError, IndexError) as exc:
            problems.append(f"{name[:80]}: {exc}")


def read_meta_db(data: bytes, namespace: str | None = None) -> MetaDB:
    """Decode ``meta.db`` (``namespace`` = dockerd's by default, see :func:`pick_namespace`).

    Raises ``BboltFormatError`` when the file itself is damaged; a damaged record is
    skipped and listed in :attr:`MetaDB.problems`."""
    root = BboltDB(data).root()
    v1 = root.bucket(b"v1")
    out = MetaDB(namespace=namespace or "moby")
    if v1 is None:
        return out
    out.namespaces = sorted(k.decode("utf-8", "replace") for k, _ in v1.buckets())
    if namespace is None:
        out.namespace = namespace = pick_namespace(out.namespaces)
    ns = v1.bucket(namespace.encode())
    if ns is None:
        return out
    p = out.problems

    def image(b: Bucket) -> dict[str, Any]:
        target = b.bucket(b"target")
        return {
            "created_ns": _time(b.get(b"createdat")), "updated_ns": _time(b.get(b"updatedat")),
            "digest": _text(target.get(b"digest")) if target else None,
            "media_type": _text(target.get(b"mediatype")) if target else None,
            "size": varint(target.get(b"size") or b"\0") if target else None,
            "labels": _labels(b.bucket(b"labels")),
        }

    def blob(b: Bucket) -> dict[str, Any]:
        return {"size": varint(b.get(b"size") or b"\0"), "created_ns": _time(b.get(b"createdat")),
                "updated_ns": _time(b.get(b"updatedat")), "labels": _labels(b.bucket(b"labels"))}

    def snapshot(b: Bucket) -> dict[str, Any]:
        return {"name": _text(b.get(b"name")), "parent": _text(b.get(b"parent")),
                "created_ns": _time(b.get(b"createdat")),
                "updated_ns": _time(b.get(b"updatedat")), "labels": _labels(b.bucket(b"labels"))}

    def lease(b: Bucket) -> dict[str, Any]:
        rec: dict[str, Any] = {"created_ns": _time(b.get(b"createdat")),
                               "labels": _labels(b.bucket(b"labels")), "snapshots": [],
                               "content": []}
        lsn = b.bucket(b"snapshots")
        for sn, sb in (lsn.buckets() if lsn else []):
            rec["snapshots"] += [(sn.decode("utf-8", "replace"), k.decode("utf-8", "replace"))
                                 for k, _, isb in sb.items() if not isb]
        lc = b.bucket(b"content")
        rec["content"] = [k.decode("utf-8", "replace") for k, _, isb in
                          (lc.items() if lc else []) if not isb]
        return rec

    def container(b: Bucket) -> dict[str, Any]:
        return {"image": _text(b.get(b"image")), "snapshotter": _text(b.get(b"snapshotter")),
                "snapshot_key": _text(b.get(b"snapshotKey")),
                "created_ns": _time(b.get(b"createdat")), "labels": _labels(b.bucket(b"labels"))}

    out.images = dict(_records(ns.bucket(b"images"), image, p))
    content = ns.bucket(b"content")
    out.blobs = dict(_records(content.bucket(b"blob") if content else None, blob, p))
    snaps = ns.bucket(b"snapshots")
    for sn, sb in (snaps.buckets() if snaps else []):
        out.snapshots[sn.decode("utf-8", "replace")] = dict(_records(sb, snapshot, p))
    out.leases = dict(_records(ns.bucket(b"leases"), lease, p))
    out.containers = dict(_records(ns.bucket(b"containers"), container, p))
    return out


def read_snapshotter_db(data: bytes) -> dict[str, dict[str, Any]]:
    """Snapshots of a snapshotter's ``metadata.db`` by backend name (``<ns>/<seq>/<key>``)."""
    root = BboltDB(data).root()
    v1 = root.bucket(b"v1")
    snaps = v1.bucket(b"snapshots") if v1 else None

    def record(b: Bucket) -> dict[str, Any]:
        raw_id = b.get(b"id")
        kind = b.get(b"kind")
        size, inodes = b.get(b"size"), b.get(b"inodes")
        return {
            "id": uvarint(raw_id) if raw_id else None,
            "kind": KINDS.get(kind[0], str(kind[0])) if kind else None,
            "parent": _text(b.get(b"parent")),
            "size": varint(size) if size else None, "inodes": varint(inodes) if inodes else None,
            "created_ns": _time(b.get(b"createdat")), "updated_ns": _time(b.get(b"updatedat")),
            "labels": _labels(b.bucket(b"labels")),
        }

    return dict(_records(snaps, record, []))
