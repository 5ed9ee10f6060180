"""The BuildKit build cache: ``buildkit/metadata_v2.db`` (+ ``snapshots.db``).

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

Not reproduced: Docker 18.09-19.03 ``buildkit/metadata.db`` (same bucket
layout, but BuildKit < 0.8 took parent and committed state from the
snapshotter's ``Stat`` over ``snapshots.db``, not from ``cache.parent`` /
``snapshot.committed``; 20.10 migrates it to metadata_v2.db at start) is not
read; lazy records (a ``cache.blob`` missing from BuildKit's content store is
dropped by the daemon; moby's graphdriver mode leaves ``cache.blob`` unset); a
mutable record without a twin whose size is unknown (the daemon would commit
it - creating a new record - to size it); naive-diff drivers' size fall-back.

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
    * ``docker/cli@v20.10.24:cli/command/system/df.go`` (the CLI's total)
    * ``shared/docs/docker-root-format.md`` §9.4
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

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


def _read_records(view: RootView) -> dict[str, _Record] | None:
    """Every ``_main`` record of metadata_v2.db; ``None`` when the file is absent."""
    from analyzer.formats.bbolt import BboltDB

    rel = METADATA_DB
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


def _loadable(records: dict[str, _Record]) -> dict[str, bool]:
    """Which records the daemon's ``init`` keeps (parents/mutables load, not deleted)."""
    state: dict[str, bool] = {}

    def load(rid: str, depth: int) -> bool:
        if rid in state:
            return state[rid]
        rec = records.get(rid)
        if rec is None or depth > MAX_PARENT_DEPTH:
            return False
        state[rid] = False  # provisional: a cycle never loads
        mutable_id = rec.string(KEY_EQUAL_MUTABLE)
        if mutable_id:
            ok = load(mutable_id, depth + 1)
        else:
            parent = rec.string(KEY_PARENT)
            ok = (not parent or load(parent, depth + 1)) and not rec.flag(KEY_DELETED)
        state[rid] = ok
        return ok

    for rid in sorted(records):
        load(rid, 0)
    return state


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
                      dir_sizes: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per ``_main`` record of ``buildkit/metadata_v2.db`` (table ``build_cache``).

    Args:
        view: the data-root.
        image_chains: chain ids of every loaded image's layers (for ``shared``).
        layer_sizes: layerdb size by chain id (layers present, not being removed).
        dir_sizes: content bytes of graphdriver dirs by dir id (non-naive drivers only).
    """
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
        usage = rec.integer(KEY_USAGE_COUNT)
        created_ns = rec.integer(KEY_CREATED_AT)
        last_ns = rec.integer(KEY_LAST_USED_AT)
        chain = (snaps.get(rid, {}).get("chainid") or b"").decode("ascii", "replace") or None
        rows[rid] = {
            "cache_id": rid, "parent_id": parent or None,
            "record_type": rec.string(KEY_RECORD_TYPE) or DEFAULT_TYPE,
            "description": rec.string(KEY_DESCRIPTION),
            "mutable": mutable, "equal_mutable": equal_mutable,
            "deleted": rec.flag(KEY_DELETED),
            "listed": bool(loaded.get(rid)) and not equal_mutable,
            "shared": False, "size_bytes": size, "size_source": source,
            "created_at": _ts(created_ns), "created_raw": rec.raw.get(KEY_CREATED_AT),
            "last_used_at": _ts(last_ns) if usage is not None and last_ns else None,
            "last_used_raw": rec.raw.get(KEY_LAST_USED_AT),
            "usage_count": usage,
            "snapshot_id": rec.string(KEY_SNAPSHOT) or rid,
            "chain_id": chain,
        }
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


def _ts(ns: int | None) -> Any:
    """A pandas UTC timestamp of Unix ns, or ``None`` (also when out of range)."""
    import pandas as pd

    if ns is None:
        return None
    try:
        return pd.Timestamp(ns, unit="ns", tz="UTC")
    except (OverflowError, ValueError):
        return None
