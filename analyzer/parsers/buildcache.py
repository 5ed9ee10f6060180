"""The BuildKit build cache: ``buildkit/metadata_v2.db`` (+ ``snapshots.db``), or the
containerd worker's ``buildkit/containerd-<snapshotter>/metadata_v2.db``.

What dockerd's ``GET /system/df`` reports as ``BuildCache`` (and sums into
``BuilderSize``) is BuildKit's cache manager's ``DiskUsage``. Everything it
shows comes from disk, except "in use", which is in-memory state.

**metadata_v2.db** (BuildKit ``cache/metadata``): top-level bucket ``_main``
holds one sub-bucket per cache record, keyed by the record ID (a 25-character
BuildKit identity, e.g. ``vskj3h1ekmmt1p0p6agc71nfc``). Each key in a record
bucket is a metadata key; each value is the JSON of ``Value{value, index}``
(``{"value":<JSON>,"index":"..."}``); an **empty value means the key was
cleared** (``SetValue(nil)`` puts a nil value; the loader skips it). Other
top-level buckets: ``_index`` (``<index>::<id>`` → empty), ``_external``
(per-record blobs such as ``buildkit.contenthash.v0``). Keys used here
(``cache/metadata.go``):

==========================  ===========================================================
``cache.parent``            parent record ID (string)
``cache.equalMutable``      this immutable record is the committed twin of that mutable one
``snapshot.committed``      ``true`` → immutable; absent → mutable
``snapshot.size``           the size, once computed (int64; absent = unknown, −1)
``cache.description``       description (string)
``cache.recordType``        ``regular`` (default when absent), ``source.local``,
                            ``exec.cachemount``, ``frontend``, ``internal``,
                            ``source.git.checkout``
``cache.createdAt``         Unix ns (int64) → ``time.Unix(ns/1e9, ns%1e9)``
``cache.lastUsedAt``        Unix ns; only reported when ``cache.usageCount`` is set and ≠ 0
``cache.usageCount``        int
``cache.snapshot``          snapshot key when it differs from the record ID
``cache.blobonly``          no snapshot, only a blob (moby: size 0)
``cache.deleted``           deleted; the daemon drops it (and clears it) at start
==========================  ===========================================================

**Which records are listed** (``cache/manager.go`` ``init``/``getRecord``/
``DiskUsage``): every ``_main`` record is loaded at daemon start; a record whose
parent (or, for a twin, whose mutable record) cannot be loaded, or that is
marked deleted, is dropped. ``DiskUsage`` hides "duplicates that share data":
an immutable twin (``cache.equalMutable`` set) while it has no references, and
a mutable record while its twin is referenced. References live in memory only;
offline nothing is referenced, so **the twins are hidden and every other record
is listed, with ``InUse`` false** (a cache record used by a build running at
acquisition time would have shown ``InUse: true`` - that cannot be known from
disk).

**Size**: ``snapshot.size`` of the record when recorded. Otherwise the daemon
computes it (``cacheRecord.Size``) and persists it: a mutable record is sized
through its twin (``cm.Get`` returns the twin; the twin's ``snapshot.size``, else
the usage of the mutable's snapshot); blob-only records are 0 (moby keeps no
blobs); else the graphdriver snapshotter's ``Usage(snapshot key)``
(moby ``builder/builder-next/adapters/snapshot/snapshot.go``): the layer's
DiffSize when ``snapshots.db`` gives the key a ``chainid`` (the layerdb size),
else the ``size`` recorded there (decimal text), else the driver's DiffSize of
the graphdriver dir (``committed`` value, or the key itself). After one
``docker system df`` every listed size is recorded, so the fall-backs rarely
matter; ``size_source`` says which one was used. The driver-dir fall-back uses
the dir's content bytes and is only applied for non-naive-diff drivers.

**Shared** (``markShared`` + moby ``imagerefchecker``): a record is shared when
``snapshots.db`` gives its *record ID* a ``chainid``, that layer is in the layer
store, and its diff-id chain is a prefix of some loaded image's
``rootfs.diff_ids`` (equivalently: the chain id is one of an image's chain ids);
then its listed ancestors are shared too.

**Parent**: the parent record's ID (for a parent that is a mutable record with
a twin, the daemon hands out the twin, so the twin's ID).

**Order**: ``DiskUsage`` ranges over a Go map - the daemon's order is random;
rows here are sorted by record ID.

**BuilderSize**: the API sums ``Size`` over all listed records
(``api/server/router/system/system_routes.go``); the CLI's "Build cache usage"
line instead sums only records with ``Shared == false``
(``docker/cli cli/command/system/df.go``) - hence 316 vs 274 B in the overlay2
sample (the shared 20 B and 22 B layers are already counted as image layers).

**The containerd image store** (dockerd 24+ with the ``containerd-snapshotter``
feature; facts from dockerd 26.1.5, which vendors BuildKit v0.13.2): dockerd runs
BuildKit's *containerd worker* (moby ``builder/builder-next/controller.go``
``newSnapshotterController`` → buildkit ``worker/containerd.NewWorkerOpt``). Its root
is ``buildkit/containerd-<snapshotter>/`` with its own ``metadata_v2.db`` (same
buckets and keys as above, plus ``cache.blob``, ``cache.blobonly``, ``cache.chainID``,
``cache.mergeParents``, ``cache.lowerDiffParent``/``cache.upperDiffParent``); there is
no ``snapshots.db``: snapshots, content and images are containerd's, in namespace
``moby``. Which database is read (:func:`_worker`): the containerd worker's when one
exists and the containerd root's moby namespace has snapshots of that snapshotter (or
there is no graphdriver ``buildkit/metadata_v2.db``).

* *Listed* (``cache/manager.go`` ``init``/``getRecord``/``parentsOf``): parents are
  ``cache.parent``, else the merge parents, else the lower/upper diff parents, and
  all must load; a mutable record (not committed, not merge/diff) is dropped when
  the moby namespace has no snapshot keyed by its ID; a twin whose mutable record
  does not load is kept as a plain immutable record if its own snapshot exists, else
  dropped. ``DiskUsage`` then hides twins exactly as above.
* *Size*: ``snapshot.size`` when recorded (after one ``docker system df`` every listed
  record has it); else ``cacheRecord.size`` (``cache/refs.go``): containerd's
  ``Usage`` of the record's snapshot (the mutable record's snapshot for a twin; none
  for ``cache.blobonly`` records; a key missing counts 0) - the size recorded at
  commit, 0 for a view, the live usage of an active snapshot (here the ext4 estimate
  of :func:`analyzer.parsers.containerd.allocated_bytes`, i.e. the ``layer_dirs``
  ``content_bytes`` the caller passes as ``dir_sizes``) - **plus** the moby
  namespace's content size of ``cache.blob`` and of its compression variants
  (``walkBlobVariantsOnly``: blobs linked by ``containerd.io/gc.ref.content.blob-*``
  labels that carry ``buildkit.io/blob/mediatype``). E.g. 20654 = 20480 (5 blocks of
  the committed snapshot) + 174 (gzip blob). A mutable record is sized through its
  twin, or through the record the daemon would commit (same snapshot, no blob).
* *Shared* (``cache/manager.go`` ``markShared``, ``snapshot/imagerefchecker/checker.go``,
  wired in ``worker/base/worker.go`` with the containerd client's image service and the
  moby content store): every image of the moby namespace is walked (name order;
  indexes → their manifests); each manifest registers the concatenation of **all** its
  layer blob digests - not its prefixes. A listed record is shared when its
  ``layerDigestChain`` (``cache/refs.go``: the parent's chain + its ``cache.blob``;
  merge: the parents' chains; diff: the upper's chain when it has no blob of its own)
  is exactly one registered list; then all its listed ancestors are shared too. A
  manifest or index blob missing from the content store is skipped; an unknown media
  type or an unparsable document ends the walk (later images register nothing), as the
  checker's ``init`` returns on the first ``images.Dispatch`` error.
* *Parents*: BuildKit 0.13 reports a list (``UsageInfo.Parents``); the API's
  ``Parent`` is empty from 1.42 on. ``parent_id`` holds the list joined with
  :data:`PARENT_SEP`.
* *In use*: in-memory state, as above (``InUse`` false; a mutable record in use
  would have reported size 0).

Not reproduced: Docker 18.09-19.03 ``buildkit/metadata.db`` (same bucket
layout, but BuildKit < 0.8 took parent and committed state from the
snapshotter's ``Stat`` over ``snapshots.db``, not from ``cache.parent`` /
``snapshot.committed``; 20.10 migrates it to metadata_v2.db at start) is not
read; lazy records (a ``cache.blob`` missing from BuildKit's content store is
dropped by the daemon; moby's graphdriver mode leaves ``cache.blob`` unset); a
mutable record without a twin whose size is unknown (the daemon would commit
it - creating a new record - to size it); naive-diff drivers' size fall-back.
Containerd worker: lazy records (a blob-only record whose ``cache.blob`` is not in
the content store, or whose snapshot is labelled ``containerd.io/snapshot/remote``,
fails ``getRecord`` at daemon start - its metadata is cleared, yet the half-loaded
record stays in memory and is listed for that daemon run; it is listed here); the
remote-snapshotter label; ``InUse`` and the in-use size 0 of mutable records.

References (BuildKit as vendored by moby v20.10.24 = moby/buildkit
``eeb7b65ab7d6``, v0.8 branch):
    * ``moby/moby@v20.10.24:vendor/github.com/moby/buildkit/cache/metadata/metadata.go``
      (buckets ``_main``/``_index``/``_external``, ``Value``, empty values skipped)
    * ``…/cache/metadata.go`` (keys, ``getSize``, ``GetCreatedAt``, ``getLastUsed``)
    * ``…/cache/manager.go`` (``init``, ``getRecord``, ``get``, ``DiskUsage``, ``markShared``)
    * ``…/cache/refs.go`` (``cacheRecord.Size``, ``parentChain``)
    * ``…/client/diskusage.go`` (``UsageRecordType`` values)
    * ``moby/moby@v20.10.24:builder/builder-next/builder.go``
      (``DiskUsage`` → ``types.BuildCache``)
    * ``moby/moby@v20.10.24:builder/builder-next/adapters/snapshot/snapshot.go``
      (``snapshots.db``: ``parent``, ``committed``, ``iscommitted``, ``chainid``, ``size``)
    * ``moby/moby@v20.10.24:builder/builder-next/imagerefchecker/checker.go``
    * containerd worker: ``moby/moby@v26.1.5:builder/builder-next/controller.go``
      (``newSnapshotterController``), ``…/builder.go`` (``DiskUsage``: ``Parents``);
      ``moby/buildkit@v0.13.2`` (moby 26.1.5 ``vendor.mod``):
      ``worker/containerd/containerd.go`` (root ``containerd-<snapshotter>``,
      ``metadata_v2.db``, namespaced snapshotter, content store and image service),
      ``worker/base/worker.go``, ``cache/manager.go`` (``getRecord``, ``parentsOf``,
      ``DiskUsage``, ``markShared``), ``cache/refs.go`` (``size``, ``layerDigestChain``,
      ``isLazy``, ``walkBlobVariantsOnly``), ``cache/metadata.go`` (keys),
      ``snapshot/imagerefchecker/checker.go``, ``control/control.go`` (``DiskUsage``)
    * ``docker/cli@v20.10.24:cli/command/system/df.go`` (the CLI's total)
    * ``shared/docs/docker-root-format.md`` §9.4
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from analyzer.errors import BboltFormatError
from analyzer.parsers.rootview import RootView

METADATA_DB = "buildkit/metadata_v2.db"
SNAPSHOTS_DB = "buildkit/snapshots.db"
MAIN_BUCKET = b"_main"
DEFAULT_TYPE = "regular"
#: parent chains longer than this are treated as broken (a cycle in hostile data)
MAX_PARENT_DEPTH = 4096
#: int64 bounds (Go ``json.Unmarshal`` into int64 rejects values outside them)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

KEY_PARENT = "cache.parent"
KEY_EQUAL_MUTABLE = "cache.equalMutable"
KEY_COMMITTED = "snapshot.committed"
KEY_SIZE = "snapshot.size"
KEY_DESCRIPTION = "cache.description"
KEY_RECORD_TYPE = "cache.recordType"
KEY_CREATED_AT = "cache.createdAt"
KEY_LAST_USED_AT = "cache.lastUsedAt"
KEY_USAGE_COUNT = "cache.usageCount"
KEY_SNAPSHOT = "cache.snapshot"
KEY_BLOB_ONLY = "cache.blobonly"
KEY_DELETED = "cache.deleted"


@dataclass
class _Record:
    """One ``_main`` record: its decoded values and the raw JSON value texts."""

    rid: str
    values: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)

    def string(self, key: str) -> str:
        """A string value as Go reads it ("" when absent or not a string)."""
        v = self.values.get(key)
        return v if isinstance(v, str) else ""

    def integer(self, key: str) -> int | None:
        """An int64 value as Go reads it (``None`` when absent or not an integer)."""
        v = self.values.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not INT64_MIN <= v <= INT64_MAX:
            return None
        return v

    def flag(self, key: str) -> bool:
        """A bool value (false when absent or not a bool)."""
        return self.values.get(key) is True


def _value_of(doc: Any) -> tuple[bool, Any, str | None]:
    """(present, decoded value, raw JSON text) of a ``Value`` document.

    Go decodes struct fields case-insensitively; an absent ``value`` leaves a
    nil RawMessage, which no getter accepts.
    """
    if not isinstance(doc, dict):
        return False, None, None
    for k in doc:
        if k.lower() == "value":
            v = doc[k]
            return True, v, json.dumps(v, separators=(",", ":"))
    return False, None, None


def _read_records(view: RootView, rel: str = METADATA_DB) -> dict[str, _Record] | None:
    """Every ``_main`` record of a metadata_v2.db; ``None`` when the file is absent."""
    from analyzer.formats.bbolt import BboltDB

    data = view.read(rel)
    if data is None:
        return None
    out: dict[str, _Record] = {}
    try:
        main = BboltDB(data).root().bucket(MAIN_BUCKET)
        if main is None:
            return out
        for key, bucket in main.buckets():
            rec = _Record(key.decode("utf-8", "replace"))
            for k, value, is_bucket in bucket.items():
                if is_bucket or not value:
                    continue  # cleared keys are stored empty; the loader skips them
                name = k.decode("utf-8", "replace")
                try:
                    ok, decoded, raw = _value_of(json.loads(value))
                except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                    view.issues.add("json.malformed", f"{rel}: record {rec.rid} key "
                                    f"{name!r} does not parse ({exc})", path=rel,
                                    detail=type(exc).__name__)
                    continue
                if ok:
                    rec.values[name] = decoded
                    rec.raw[name] = raw or ""
            out[rec.rid] = rec
    except BboltFormatError as exc:
        view.issues.add("bbolt.malformed", f"{rel}: {exc}", path=rel)
    return out


def _read_snapshots(view: RootView) -> dict[str, dict[str, bytes]]:
    """``snapshots.db``: snapshot key → {field: bytes} (empty when absent/unreadable)."""
    from analyzer.formats.bbolt import BboltDB

    data = view.read(SNAPSHOTS_DB)
    if data is None:
        return {}
    out: dict[str, dict[str, bytes]] = {}
    try:
        for key, bucket in BboltDB(data).root().buckets():
            out[key.decode("utf-8", "replace")] = {
                k.decode("utf-8", "replace"): v for k, v, is_bucket in bucket.items()
                if not is_bucket and v is not None}
    except BboltFormatError as exc:
        view.issues.add("bbolt.malformed", f"{SNAPSHOTS_DB}: {exc}", path=SNAPSHOTS_DB)
    return out


def _walk_loads(records: Mapping[str, _Record],
                rule: Callable[[str, _Record, Callable[[str], bool]], bool]) -> dict[str, bool]:
    """Record id → whether the daemon's ``init`` keeps it, by ``rule(rid, rec, load)``
    (``load`` decides a parent or mutable record, memoised; a cycle or a chain deeper
    than ``MAX_PARENT_DEPTH`` never loads)."""
    state: dict[str, bool] = {}

    def load(rid: str, depth: int) -> bool:
        if rid in state:
            return state[rid]
        rec = records.get(rid)
        if rec is None or depth > MAX_PARENT_DEPTH:
            return False
        state[rid] = False  # provisional: a cycle never loads
        state[rid] = rule(rid, rec, lambda other: load(other, depth + 1))
        return state[rid]

    for rid in sorted(records):
        load(rid, 0)
    return state


def _loadable(records: dict[str, _Record]) -> dict[str, bool]:
    """Which records the daemon's ``init`` keeps (parents/mutables load, not deleted)."""
    def rule(rid: str, rec: _Record, load: Callable[[str], bool]) -> bool:
        mutable_id = rec.string(KEY_EQUAL_MUTABLE)
        if mutable_id:
            return load(mutable_id)
        parent = rec.string(KEY_PARENT)
        return (not parent or load(parent)) and not rec.flag(KEY_DELETED)

    return _walk_loads(records, rule)


def _snapshot_usage(key: str, snaps: Mapping[str, Mapping[str, bytes]],
                    layer_sizes: Mapping[str, int], dir_sizes: Mapping[str, int]
                    ) -> tuple[int | None, str | None]:
    """The graphdriver snapshotter's ``Usage(key)``: (size, source)."""
    entry = snaps.get(key, {})
    chain = key if key.startswith("sha256:") else (entry.get("chainid") or b"").decode(
        "ascii", "replace")
    if chain:
        return (layer_sizes[chain], "layer") if chain in layer_sizes else (None, None)
    size_text = entry.get("size")
    if size_text is not None:
        try:
            return int(size_text.decode("ascii")), "snapshots.db"
        except (UnicodeDecodeError, ValueError):
            return None, None
    graph_id = (entry.get("committed") or b"").decode("utf-8", "replace") or key
    if graph_id in dir_sizes:
        return dir_sizes[graph_id], "driver-dir"
    return None, None


def parse_build_cache(view: RootView, image_chains: set[str] | None = None,
                      layer_sizes: Mapping[str, int] | None = None,
                      dir_sizes: Mapping[str, int] | None = None,
                      containerd_store: Any = None) -> list[dict[str, Any]]:
    """One row per ``_main`` record of ``buildkit/metadata_v2.db`` (table ``build_cache``).

    Args:
        view: the data-root.
        image_chains: chain ids of every loaded image's layers (for ``shared``).
        layer_sizes: layerdb size by chain id (layers present, not being removed).
        dir_sizes: content bytes of graphdriver dirs by dir id (non-naive drivers only).
        containerd_store: the containerd image store the root used (its parsed
            databases are reused), None for a graphdriver root.
    """
    worker_db, cd = _worker(view, containerd_store)
    if worker_db != METADATA_DB:
        return _parse_containerd(view, worker_db, cd, dir_sizes or {})
    records = _read_records(view)
    if not records:
        return []
    image_chains = image_chains or set()
    layer_sizes = layer_sizes or {}
    dir_sizes = dir_sizes or {}
    snaps = _read_snapshots(view)
    loaded = _loadable(records)
    # a mutable record's twin: the last loaded immutable record naming it
    twin_of: dict[str, str] = {}
    for rid in sorted(records):
        target = records[rid].string(KEY_EQUAL_MUTABLE)
        if target and loaded.get(rid):
            twin_of[target] = rid

    rows: dict[str, dict[str, Any]] = {}
    for rid in sorted(records):
        rec = records[rid]
        equal_mutable = rec.string(KEY_EQUAL_MUTABLE) or None
        mutable = not equal_mutable and not rec.flag(KEY_COMMITTED)
        parent = records[equal_mutable].string(KEY_PARENT) if equal_mutable and \
            equal_mutable in records else rec.string(KEY_PARENT)
        if parent and parent in records and not records[parent].flag(KEY_COMMITTED) and \
                not records[parent].string(KEY_EQUAL_MUTABLE) and parent in twin_of:
            parent = twin_of[parent]  # cm.get of a mutable parent hands out its twin
        size, source = _size(rec, records, twin_of, snaps, layer_sizes, dir_sizes, mutable)
        chain = (snaps.get(rid, {}).get("chainid") or b"").decode("ascii", "replace") or None
        rows[rid] = _row(rid, rec, parent or None, mutable, equal_mutable,
                         bool(loaded.get(rid)), size, source, chain)
    _mark_shared(rows, image_chains, layer_sizes)
    return list(rows.values())


def _size(rec: _Record, records: Mapping[str, _Record], twin_of: Mapping[str, str],
          snaps: Mapping[str, Mapping[str, bytes]], layer_sizes: Mapping[str, int],
          dir_sizes: Mapping[str, int], mutable: bool) -> tuple[int | None, str | None]:
    """The size ``DiskUsage`` reports and where it came from."""
    own = rec.integer(KEY_SIZE)
    if own is not None and own != -1:
        return own, "record"
    sized = rec
    if mutable:
        twin = twin_of.get(rec.rid)
        if twin is None:
            return None, None  # the daemon would commit a new record to size it
        sized = records[twin]
        tsize = sized.integer(KEY_SIZE)
        if tsize is not None and tsize != -1:
            return tsize, "twin"
    if sized.flag(KEY_BLOB_ONLY):
        return 0, "blob-only"
    mutable_id = sized.string(KEY_EQUAL_MUTABLE)
    key_rec = records.get(mutable_id, sized) if mutable_id else sized
    size, source_ = _snapshot_usage(key_rec.string(KEY_SNAPSHOT) or key_rec.rid, snaps,
                                    layer_sizes, dir_sizes)
    return size, source_ if size is not None else None


def _row(rid: str, rec: _Record, parent_id: str | None, mutable: bool,
         equal_mutable: str | None, loaded: bool, size: int | None, source: str | None,
         chain_id: str | None) -> dict[str, Any]:
    """One ``build_cache`` row (both workers); ``shared`` is decided afterwards."""
    usage = rec.integer(KEY_USAGE_COUNT)
    last_ns = rec.integer(KEY_LAST_USED_AT)
    return {
        "cache_id": rid, "parent_id": parent_id,
        "record_type": rec.string(KEY_RECORD_TYPE) or DEFAULT_TYPE,
        "description": rec.string(KEY_DESCRIPTION),
        "mutable": mutable, "equal_mutable": equal_mutable,
        "deleted": rec.flag(KEY_DELETED), "listed": loaded and not equal_mutable,
        "shared": False, "size_bytes": size, "size_source": source,
        "created_at": _ts(rec.integer(KEY_CREATED_AT)),
        "created_raw": rec.raw.get(KEY_CREATED_AT),
        "last_used_at": _ts(last_ns) if usage is not None and last_ns else None,
        "last_used_raw": rec.raw.get(KEY_LAST_USED_AT),
        "usage_count": usage, "snapshot_id": rec.string(KEY_SNAPSHOT) or rid,
        "chain_id": chain_id,
    }


def _mark_shared(rows: dict[str, dict[str, Any]], image_chains: set[str],
                 layer_sizes: Mapping[str, int]) -> None:
    """``markShared``: records whose layer is part of an image, and their listed ancestors."""
    listed = {rid: r for rid, r in rows.items() if r["listed"]}
    for rid, row in listed.items():
        chain = row["chain_id"]
        if not chain or chain not in layer_sizes or chain not in image_chains:
            continue
        cur: str | None = rid
        for _ in range(MAX_PARENT_DEPTH):
            if cur is None or cur not in listed or listed[cur]["shared"] and cur != rid:
                break
            listed[cur]["shared"] = True
            cur = listed[cur]["parent_id"]


# -- the containerd worker (containerd image store) ------------------------------------

#: the containerd worker's root under the data-root (buildkit ``worker/containerd``:
#: ``<root>/containerd-<snapshotter>``) and its metadata database
WORKER_DB = "buildkit/containerd-{}/metadata_v2.db"
KEY_MERGE_PARENTS = "cache.mergeParents"
KEY_LOWER_DIFF_PARENT = "cache.lowerDiffParent"
KEY_UPPER_DIFF_PARENT = "cache.upperDiffParent"
KEY_BLOB = "cache.blob"
#: content labels linking a blob to its compression variants, and giving a blob's media type
BLOB_VARIANT_LABEL = "containerd.io/gc.ref.content.blob-"
BLOB_MEDIA_TYPE_LABEL = "buildkit.io/blob/mediatype"
#: a record's parents are joined with this in ``parent_id`` (merge and diff records have several)
PARENT_SEP = ","


@dataclass
class _Containerd:
    """What the containerd worker asks containerd about, in namespace ``moby``."""

    root: str  # the containerd root relative to the data-root
    snapshotter: str
    keys: dict[str, dict[str, Any]]  # snapshot key → meta.db record (backend name, parent)
    backend: dict[str, dict[str, Any]] | None  # backend name → snapshotter record (None: unread)
    blobs: dict[str, dict[str, Any]]  # content digest → meta.db record (size, labels)
    images: dict[str, dict[str, Any]]  # image name → meta.db record (target)

    def exists(self, key: str) -> bool:
        """``Snapshotter.Stat(key)`` succeeds."""
        return key in self.keys

    def usage(self, key: str, dir_sizes: Mapping[str, int]) -> int | None:
        """``Snapshotter.Usage(key)``: the size recorded at commit, 0 for a view, the live
        (estimated) usage of an active snapshot's folder; 0 when the key is unknown (the
        daemon ignores NotFound); ``None`` when it cannot be known offline."""
        meta = self.keys.get(key)
        if meta is None:
            return 0
        if self.backend is None:
            return None
        rec = self.backend.get(meta.get("name") or "")
        if rec is None:
            return 0
        kind = rec.get("kind")
        if kind == "committed":
            return int(rec.get("size") or 0)
        if kind == "view":
            return 0
        return dir_sizes.get(str(rec.get("id")))

    def blob_bytes(self, digest: str) -> int:
        """``ContentStore.Info(blob).Size`` plus its compression variants (``walkBlobVariantsOnly``:
        every blob reachable through ``containerd.io/gc.ref.content.blob-*`` labels that is in
        the store and has a ``buildkit.io/blob/mediatype`` label); 0 without the blob."""
        added: set[str] = set()
        total = 0
        first = self.blobs.get(digest)
        if first is not None:
            total += int(first.get("size") or 0)
            added.add(digest)
        visited: set[str] = set()
        todo = [digest]
        while todo:
            cur = todo.pop()
            if cur in visited:
                continue
            visited.add(cur)
            info = self.blobs.get(cur)
            if info is None:
                continue
            for k, v in sorted((info.get("labels") or {}).items()):
                if not k.startswith(BLOB_VARIANT_LABEL) or v == cur or not v.startswith("sha256:"):
                    continue
                var = self.blobs.get(v)
                if var is not None and BLOB_MEDIA_TYPE_LABEL in (var.get("labels") or {}) \
                        and v not in added:
                    total += int(var.get("size") or 0)
                    added.add(v)
                todo.append(v)
        return total


def _worker(view: RootView, store: Any = None) -> tuple[str, "_Containerd | None"]:
    """Which worker database the daemon reads: the containerd worker's
    (``buildkit/containerd-<sn>/metadata_v2.db``) when the root used the containerd image
    store, else the graphdriver worker's ``buildkit/metadata_v2.db``."""
    from analyzer.formats.containerd_db import SNAPSHOTTERS

    present = [sn for sn in SNAPSHOTTERS if view.read(WORKER_DB.format(sn)) is not None]
    if not present:
        return METADATA_DB, None
    cd = _read_containerd(view, present, store)
    if cd is None and view.read(METADATA_DB) is not None:
        return METADATA_DB, None  # a graphdriver daemon (the containerd worker db is a leftover)
    sn = cd.snapshotter if cd is not None else present[0]
    return WORKER_DB.format(sn), cd


def _read_containerd(view: RootView, present: list[str], store: Any) -> "_Containerd | None":
    """dockerd's namespace of the containerd root the root used (``store``, the
    :class:`~analyzer.parsers.containerd.ContainerdStore` already read; None when the root
    did not use the containerd image store), for the worker snapshotter in use."""
    from analyzer.formats import containerd_db as cdb
    from analyzer.parsers import containerd as cparse

    if store is None:
        return None
    meta = store.meta
    used = [sn for sn in present if meta.snapshots.get(sn)]
    if not used and not meta.images:
        return None
    sn = max(used, key=lambda n: len(meta.snapshots[n])) if used else present[0]
    backend: dict[str, dict[str, Any]] | None = store.snapshots if sn == store.snapshotter \
        else None
    if backend is None:
        sdata = view.read(f"{cparse.snapshotter_dir(store.root, sn)}/metadata.db")
        try:
            backend = cdb.read_snapshotter_db(sdata) if sdata is not None else None
        except BboltFormatError:
            backend = None
    return _Containerd(root=store.root, snapshotter=sn, keys=meta.snapshots.get(sn, {}),
                       backend=backend, blobs=meta.blobs, images=meta.images)


def _parents(rec: _Record) -> tuple[str, list[str]]:
    """(kind, parent ids) of a record (``cacheRecord.kind`` / ``parentsOf``)."""
    parent = rec.string(KEY_PARENT)
    if parent:
        return "layer", [parent]
    merge = rec.values.get(KEY_MERGE_PARENTS)
    if isinstance(merge, list) and all(isinstance(m, str) for m in merge) and merge:
        return "merge", list(merge)
    lower, upper = rec.string(KEY_LOWER_DIFF_PARENT), rec.string(KEY_UPPER_DIFF_PARENT)
    if lower or upper:
        return "diff", [p for p in (lower, upper) if p]
    return "base", []


def _load_containerd(records: Mapping[str, _Record], cd: "_Containerd | None"
                     ) -> tuple[dict[str, bool], set[str]]:
    """Which records BuildKit 0.13's ``init``/``getRecord`` keeps, and the twins whose
    mutable record is gone but whose own snapshot exists (they become plain records)."""
    orphan_twins: set[str] = set()

    def rule(rid: str, rec: _Record, load: Callable[[str], bool]) -> bool:
        kind, parents = _parents(rec)
        ok = all(load(p) for p in parents)
        mutable_id = rec.string(KEY_EQUAL_MUTABLE)
        if ok and mutable_id:
            if load(mutable_id):
                return True
            if cd is not None and not cd.exists(rec.string(KEY_SNAPSHOT) or rid):
                return False  # neither the mutable record nor this one's snapshot exists
            orphan_twins.add(rid)  # equalMutable is cleared; a plain immutable record
        if ok and rec.flag(KEY_DELETED):
            ok = False
        mutable = not rec.flag(KEY_COMMITTED) and kind not in ("merge", "diff")
        if ok and mutable and cd is not None and not cd.exists(rid):
            ok = False  # a mutable record's snapshot must exist (keyed by the record id)
        return ok

    state = _walk_loads(records, rule)
    return state, {t for t in orphan_twins if state.get(t)}


def _image_layer_keys(view: RootView, cd: "_Containerd | None") -> set[str]:
    """BuildKit's ``imagerefchecker``: for every image of the moby namespace (in name order),
    the concatenated layer blob digests of each manifest reachable from its target. An
    unknown media type or an unparsable document stops the walk (later images are not
    registered); a blob missing from the content store is skipped."""
    from analyzer.parsers import containerd as cparse

    keys: set[str] = set()
    if cd is None:
        return keys

    done: dict[tuple[str, str], bool] = {}  # an index listing itself (or a diamond) is
    # walked once: without this a hostile index fans out exponentially

    def dispatch(digest: Any, media_type: Any, depth: int) -> bool:
        key = (str(digest), str(media_type))
        if key not in done:
            done[key] = True  # a cycle back to a document being walked: keep going
            done[key] = walk(digest, media_type, depth)
        return done[key]

    def walk(digest: Any, media_type: Any, depth: int) -> bool:
        if depth > 16:
            return True
        if media_type not in cparse.MANIFEST_TYPES + cparse.INDEX_TYPES:
            return False
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            return True
        data = view.read(f"{cd.root}/{cparse.BLOBS}/{digest[7:]}")
        if data is None:
            return True
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False
        if not isinstance(doc, dict):
            return False
        if media_type in cparse.MANIFEST_TYPES:
            layers = doc.get("layers") or []
            if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
                return False
            key = "".join(str(x.get("digest") or "") for x in layers)
            if key:
                keys.add(key)
            return True
        children = doc.get("manifests") or []
        if not isinstance(children, list) or not all(isinstance(x, dict) for x in children):
            return False
        return all(dispatch(c.get("digest"), c.get("mediaType"), depth + 1) for c in children)

    for name in sorted(cd.images):
        img = cd.images[name]
        if not dispatch(img.get("digest"), img.get("media_type"), 0):
            break
    return keys


def _parse_containerd(view: RootView, rel: str, cd: "_Containerd | None",
                      dir_sizes: Mapping[str, int]) -> list[dict[str, Any]]:
    """``build_cache`` rows of the containerd worker (BuildKit 0.13, dockerd 26)."""
    records = _read_records(view, rel)
    if not records:
        return []
    loaded, orphan_twins = _load_containerd(records, cd)
    twin_of: dict[str, str] = {}
    for rid in sorted(records):
        target = records[rid].string(KEY_EQUAL_MUTABLE)
        if target and loaded.get(rid) and rid not in orphan_twins:
            twin_of[target] = rid

    def resolve(pid: str) -> str:  # cm.get of a mutable record hands out its twin
        return twin_of.get(pid, pid)

    rows: dict[str, dict[str, Any]] = {}
    chains: dict[str, list[str]] = {}

    def chain_of(rid: str, depth: int = 0) -> list[str]:
        """``layerDigestChain``: the blob digests from the base layer up."""
        if rid in chains:
            return chains[rid]
        rec = records.get(rid)
        if rec is None or depth > MAX_PARENT_DEPTH:
            return []
        chains[rid] = []  # a cycle ends here
        kind, parents = _parents(rec)
        parents = [resolve(p) for p in parents]
        blob = rec.string(KEY_BLOB)
        if kind == "merge":
            out = [d for p in parents for d in chain_of(p, depth + 1)]
        elif kind == "diff":
            upper = resolve(rec.string(KEY_UPPER_DIFF_PARENT))
            out = chain_of(upper, depth + 1) if not blob and rec.string(
                KEY_UPPER_DIFF_PARENT) else [blob]
        elif kind == "layer":
            out = chain_of(parents[0], depth + 1) + [blob]
        else:
            out = [blob]
        chains[rid] = out
        return out

    for rid in sorted(records):
        rec = records[rid]
        equal_mutable = (rec.string(KEY_EQUAL_MUTABLE) or None) if rid not in orphan_twins \
            else None
        kind, parents = _parents(rec)
        mutable = not equal_mutable and not rec.flag(KEY_COMMITTED) and \
            kind not in ("merge", "diff")
        size, source = _size_containerd(rec, records, twin_of, cd, dir_sizes, mutable)
        rows[rid] = _row(rid, rec, PARENT_SEP.join(resolve(p) for p in parents) or None,
                         mutable, equal_mutable, bool(loaded.get(rid)), size, source,
                         rec.string("cache.chainID") or None)
    # markShared: a listed record whose blob chain is exactly an image manifest's layer
    # list is shared, and so are all its listed ancestors
    image_keys = _image_layer_keys(view, cd)
    listed = {rid: r for rid, r in rows.items() if r["listed"]}
    for rid in sorted(listed):
        if listed[rid]["shared"] or "".join(chain_of(rid)) not in image_keys:
            continue
        todo = [rid]
        seen: set[str] = set()
        while todo:
            cur = todo.pop()
            if cur in seen or cur not in listed:
                continue
            seen.add(cur)
            listed[cur]["shared"] = True
            todo.extend((listed[cur]["parent_id"] or "").split(PARENT_SEP))
    return list(rows.values())


def _size_containerd(rec: _Record, records: Mapping[str, _Record], twin_of: Mapping[str, str],
                     cd: "_Containerd | None", dir_sizes: Mapping[str, int], mutable: bool
                     ) -> tuple[int | None, str | None]:
    """The size ``DiskUsage`` reports in the containerd worker.

    ``snapshot.size`` when recorded; else ``cacheRecord.size``: the usage of the
    record's snapshot (of its mutable record's for a twin; none for blob-only records)
    plus the content-store size of its blob and the blob's compression variants. A
    mutable record is sized through its twin (``cm.get`` hands the twin out), or, without
    one, through the record the daemon would commit (the same snapshot, no blob).
    """
    own = rec.integer(KEY_SIZE)
    if own is not None and own != -1:
        return own, "record"
    sized = rec
    if mutable:
        twin = twin_of.get(rec.rid)
        if twin is not None:
            sized = records[twin]
            tsize = sized.integer(KEY_SIZE)
            if tsize is not None and tsize != -1:
                return tsize, "twin"
    if cd is None:
        return None, None
    mutable_id = sized.string(KEY_EQUAL_MUTABLE)
    key_rec = records.get(mutable_id, sized) if mutable_id else sized
    total = 0
    if not sized.flag(KEY_BLOB_ONLY):
        usage = cd.usage(key_rec.string(KEY_SNAPSHOT) or key_rec.rid, dir_sizes)
        if usage is None:
            return None, None
        total += usage
    blob = sized.string(KEY_BLOB)
    if blob:
        total += cd.blob_bytes(blob)
    return total, "snapshot" if not sized.flag(KEY_BLOB_ONLY) else "blob-only"


def _ts(ns: int | None) -> Any:
    """A pandas UTC timestamp of Unix ns, or ``None`` (also when out of range)."""
    import pandas as pd

    if ns is None:
        return None
    try:
        return pd.Timestamp(ns, unit="ns", tz="UTC")
    except (OverflowError, ValueError):
        return None
