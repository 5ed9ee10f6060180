"""Tests for analyzer.formats.bbolt.

Real data first: bbolt files inside the docker-explorer fixtures (read straight
from the .tgz), the committed samples (checked against the daemon's own
answers in truth/), and DBs written by the real bbolt 1.3.6 library
(tests/data/bbolt/gen.go). Hand-built pages cover what no real writer here can
produce: big-endian files, the 0xFFFF freelist escape, and hostile structures.
"""

from __future__ import annotations

import functools
import json
import struct
import tarfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.errors import BboltFormatError
from analyzer.formats.bbolt import (MAGIC, MAX_BUCKET_NESTING, NO_FREELIST, BboltDB,
                                    fnv1a_64)

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT.parent / "shared" / "peer-fixtures" / "docker-explorer"
SAMPLES = ROOT / "samples"
DATA = ROOT / "tests" / "data" / "bbolt"

VOLS_DB = "docker/volumes/metadata.db"
KV_DB = "docker/network/files/local-kv.db"
KV_PREFIX = b"docker/network/v1.0/"


@functools.cache
def tgz(name: str) -> tuple[dict[str, bytes], tuple[str, ...]]:
    """(bytes of every *.db member, all member names, dirs ending in /) of a fixture."""
    path = PEERS / name
    if not path.is_file():
        pytest.skip(f"peer fixture {name} not available")
    dbs: dict[str, bytes] = {}
    names = []
    with tarfile.open(path, "r:gz") as tf:
        for member in tf:
            names.append(member.name + ("/" if member.isdir() else ""))
            if member.isfile() and member.name.endswith(".db"):
                fh = tf.extractfile(member)
                assert fh is not None
                dbs[member.name] = fh.read()
    return dbs, tuple(names)


@functools.cache
def sample_dbs(sample: str) -> dict[str, bytes]:
    """*.db members of a committed sample's docker-root.tar.zst, keyed by data-root path."""
    zstandard = pytest.importorskip("zstandard")
    path = SAMPLES / sample / "docker-root.tar.zst"
    if not path.is_file():
        pytest.skip(f"sample {sample} not available")
    out = {}
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zr, \
            tarfile.open(fileobj=zr, mode="r|") as tf:
        for member in tf:
            if member.isfile() and member.name.endswith(".db"):
                fh = tf.extractfile(member)
                assert fh is not None
                out[member.name.split("var/lib/docker/", 1)[-1]] = fh.read()
    return out


def generated(name: str) -> bytes:
    return (DATA / name).read_bytes()


# ---------------------------------------------------------------------------
# docker-explorer fixtures
# ---------------------------------------------------------------------------

def test_vols_volume_metadata_matches_volume_dirs() -> None:
    dbs, names = tgz("vols.v2.tgz")
    db = BboltDB(dbs[VOLS_DB])
    assert (db.page_size, db.txid, db.meta_used, db.byteorder) == (4096, 6, 0, "little")
    assert [name for name, _ in db.root().buckets()] == [b"volumes"]
    on_disk = {n.split("/")[2] for n in names
               if n.startswith("docker/volumes/") and n.count("/") == 3 and n.endswith("/")}
    assert len(on_disk) == 3
    volumes = db.root().bucket(b"volumes")
    assert volumes is not None and volumes.is_inline
    items = list(volumes.items())
    assert [k for k, _, _ in items] == sorted(k.encode() for k in on_disk)
    for key, value, is_bucket in items:
        assert not is_bucket and value is not None
        assert json.loads(value) == {"Name": key.decode(), "Driver": "local",
                                     "Labels": None, "Options": None}
    assert db.get_path(b"volumes", b"f5479c534bbc6e2b9861973c2fbb4863ff5b7b5843c098d7fb1a027fe730a4dc")
    # the older meta (txid 5) still names only 2 of the 3 volumes, identical values: nothing to carve
    assert db.carve_deleted() == []


@pytest.mark.parametrize("fixture", ["aufs.v2.tgz", "overlay.v2.tgz", "overlay2.v2.tgz"])
def test_empty_volume_bucket_when_no_volume_dirs(fixture: str) -> None:
    dbs, names = tgz(fixture)
    assert not [n for n in names if n.startswith("docker/volumes/") and n.count("/") == 3]
    db = BboltDB(dbs[VOLS_DB])
    assert list(db.walk()) == []
    volumes = db.root().bucket(b"volumes")
    assert volumes is not None and list(volumes.items()) == []


KV_FACTS = {  # fixture: (txid, meta_used, key count, network names)
    "vols.v2.tgz": (61, 1, 8, ["bridge", "host", "none"]),
    "overlay.v2.tgz": (80, 0, 10, ["bridge", "host", "none"]),
    "overlay2.v2.tgz": (75, 1, 10, ["bridge", "host", "none"]),
    "aufs.v2.tgz": (80, 0, 6, ["bridge"]),
}


@pytest.mark.parametrize("fixture", sorted(KV_FACTS))
def test_libnetwork_store(fixture: str) -> None:
    txid, meta_used, count, networks = KV_FACTS[fixture]
    dbs, names = tgz(fixture)
    raw = dbs[KV_DB]
    db = BboltDB(raw)
    assert (db.txid, db.meta_used) == (txid, meta_used)
    items = list(db.root().bucket(b"libnetwork").items())  # type: ignore[union-attr]
    assert len(items) == count
    found = []
    for key, value, is_bucket in items:
        assert not is_bucket and key.startswith(KV_PREFIX) and key.endswith(b"/")
        assert value is not None and value in raw  # stored verbatim in the file
        if key.startswith(KV_PREFIX + b"network/"):
            doc = json.loads(value[8:])  # 8-byte little-endian libkv index, then JSON
            assert key == KV_PREFIX + b"network/" + doc["id"].encode() + b"/"
            found.append(doc["name"])
    assert sorted(found) == networks
    # Carving: a superseded sandbox record in a freed page, naming a container of this tgz.
    # In vols.v2 the key is gone from the live tree (deleted sandbox); elsewhere the
    # live record is a later revision (higher libkv index).
    carved = db.carve_deleted()
    assert len(carved) == 1
    page_id, key, value = carved[0]
    assert page_id in db.freelist() and key.startswith(KV_PREFIX + b"sandbox/")
    live = db.get_path(b"libnetwork", key)
    if fixture == "vols.v2.tgz":
        assert live is None
    else:
        assert live is not None
        assert struct.unpack("<Q", live[:8]) > struct.unpack("<Q", value[:8])
    cid = json.loads(value[8:])["Cid"]
    assert f"docker/containers/{cid}/" in names


def test_buildkit_and_builder_dbs() -> None:
    dbs, _ = tgz("vols.v2.tgz")
    cache = BboltDB(dbs["docker/buildkit/cache.db"])
    buckets = list(cache.root().buckets())
    assert [n for n, _ in buckets] == [b"_backlinks", b"_byresult", b"_links", b"_result"]
    assert all(b.is_inline and list(b.items()) == [] for _, b in buckets)
    for name in ("docker/buildkit/metadata.db", "docker/buildkit/snapshots.db",
                 "docker/builder/fscache.db"):
        db = BboltDB(dbs[name])
        assert (db.txid, list(db.root().items()), db.freelist()) == (1, [], [])


# ---------------------------------------------------------------------------
# committed samples: compare with what the daemon answered
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sample", ["overlay2", "vfs"])
def test_sample_volumes_and_networks_match_daemon(sample: str) -> None:
    dbs = sample_dbs(sample)
    truth = SAMPLES / sample / "truth"
    vols = json.loads((truth / "volumes.json").read_text())
    vols = vols["Volumes"] if isinstance(vols, dict) else vols
    db = BboltDB(dbs["volumes/metadata.db"])
    entries = {k.decode(): json.loads(v) for k, v, _ in db.root().bucket(b"volumes").items()}  # type: ignore[union-attr,arg-type]
    assert sorted(entries) == sorted(v["Name"] for v in vols)
    for vol in vols:
        assert entries[vol["Name"]]["Driver"] == vol["Driver"]
        assert (entries[vol["Name"]]["Labels"] or {}) == (vol["Labels"] or {})
    kv = BboltDB(dbs["network/files/local-kv.db"]).root().bucket(b"libnetwork")
    nets = {}
    for key, value, _ in kv.items():  # type: ignore[union-attr]
        if key.startswith(KV_PREFIX + b"network/"):
            doc = json.loads(value[8:])  # type: ignore[index]
            nets[doc["id"]] = doc["name"]
    truth_nets = json.loads((truth / "networks.json").read_text())
    assert nets == {n["Id"]: n["Name"] for n in truth_nets if n["Scope"] == "local"}


def test_sample_containerd_meta_db_nesting() -> None:
    db = BboltDB(sample_dbs("overlay2")["containerd/daemon/io.containerd.metadata.v1.bolt/meta.db"])
    assert db.get_path(b"v1", b"version") == b"\x06"  # signed varint 3
    paths = {p for p, _, _ in db.walk()}
    assert (b"v1",) in paths and all(p == (b"v1",) or p[:2] == (b"v1", b"moby") for p in paths)
    containers = db.root().bucket(b"v1").bucket(b"moby").bucket(b"containers")  # type: ignore[union-attr]
    assert containers is not None
    for cid, bucket in containers.buckets():
        assert len(cid) == 64
        assert bucket.get(b"createdat")[:1] == b"\x01"  # type: ignore[index]  # Go binary time v1


# ---------------------------------------------------------------------------
# DBs written by real bbolt 1.3.6 (tests/data/bbolt/gen.go)
# ---------------------------------------------------------------------------

def test_generated_small_pages_branch_overflow_inline() -> None:
    raw = generated("small_pages.db")
    db = BboltDB(raw)
    assert (db.page_size, db.txid, db.byteorder) == (1024, 4, "little")
    big = db.root().bucket(b"big")
    assert big is not None and not big.is_inline
    assert struct.unpack_from("<H", raw, big.root_page * 1024 + 8)[0] == 0x01  # a branch page
    keys = [k for k, _, _ in big.items()]
    deleted = {b"key-%04d" % i for i in range(0, 300, 50)}
    assert keys == sorted({b"key-%04d" % i for i in range(300)} - deleted | {b"huge"})
    assert big.get(b"key-0299") == b"value-0299" and big.get(b"key-0050") is None
    assert big.get(b"huge") == b"0123456789abcdef" * 200  # spans overflow pages
    outer = db.root().bucket(b"outer")
    assert outer is not None and outer.get(b"plain") == b"top"
    assert outer.get(b"inner") is None and outer.bucket(b"plain") is None
    inner = outer.bucket(b"inner")
    assert inner is not None and inner.is_inline and inner.sequence == 7
    assert list(inner.items()) == [(b"a", b"1", False), (b"b", b"2", False)]
    paged = outer.bucket(b"paged")
    assert paged is not None and not paged.is_inline and paged.sequence == 1
    assert db.get_path(b"outer", b"paged", b"p099") == b"x" * 99
    assert db.get_path(b"outer", b"nope", b"p099") is None
    assert [(k, b) for k, _, b in outer.items()] == [(b"inner", True), (b"paged", True), (b"plain", False)]
    counts: dict[tuple[bytes, ...], int] = {}
    for path, _, _ in db.walk():
        counts[path] = counts.get(path, 0) + 1
    assert counts == {(b"big",): 295, (b"outer",): 1, (b"outer", b"inner"): 2,
                      (b"outer", b"paged"): 100}
    carved = {(k, v) for _, k, v in db.carve_deleted()}
    assert (b"deleted-soon", b"secret-evidence") in carved
    assert {(b"key-%04d" % i, b"value-%04d" % i) for i in (50, 100, 150, 200, 250)} <= carved
    live = {(k, v) for _, k, v in db.walk()}
    assert not carved & live


def test_generated_no_freelist_sync() -> None:
    db = BboltDB(generated("nofreelist.db"))
    assert db.meta.freelist == NO_FREELIST and db.freelist() == []
    assert db.get_path(b"things", b"keep") == b"kept-value"
    assert db.get_path(b"things", b"gone") is None
    # the deleted key survives in the previous root page, inside an inline bucket
    assert [(k, v) for _, k, v in db.carve_deleted()] == [(b"gone", b"gone-value")]


def test_fnv1a_reference_vectors() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C


# ---------------------------------------------------------------------------
# hand-built pages
# ---------------------------------------------------------------------------

LEAF, BRANCH, FREELIST, META = 0x02, 0x01, 0x10, 0x04


def elements(order: str, entries: list, branch: bool = False) -> bytes:
    """Element array + data; ``entries`` are (flags, key, value) or (key, child)."""
    elems, data = b"", b""
    for i, entry in enumerate(entries):
        pos = 16 + 16 * len(entries) + len(data) - (16 + 16 * i)
        if branch:
            key, child = entry
            elems += struct.pack(order + "IIQ", pos, len(key), child)
            data += key
        else:
            flags, key, value = entry
            elems += struct.pack(order + "IIII", flags, pos, len(key), len(value))
            data += key + value
    return elems + data


def page(order: str, pgid: int, flags: int, count: int, body: bytes, ps: int) -> bytes:
    overflow = max(0, -(-(16 + len(body)) // ps) - 1)
    return (struct.pack(order + "QHHI", pgid, flags, count, overflow) + body).ljust(
        (overflow + 1) * ps, b"\0")


def bucket_value(order: str, root: int, seq: int = 0, inline: list | None = None) -> bytes:
    value = struct.pack(order + "QQ", root, seq)
    if inline is not None:
        value += struct.pack(order + "QHHI", 0, LEAF, len(inline), 0) + elements(order, inline)
    return value


def meta(order: str, index: int, ps: int, root: int, freelist: int, hwm: int, txid: int,
         corrupt: bool = False) -> bytes:
    body = struct.pack(order + "IIIIQQQQQ", MAGIC, 2, ps, 0, root, 0, freelist, hwm, txid)
    checksum = fnv1a_64(body) ^ (1 if corrupt else 0)
    return (struct.pack(order + "QHHI", index, META, 0, 0) + body
            + struct.pack(order + "Q", checksum)).ljust(ps, b"\0")


def build(order: str, pages: dict[int, bytes], root: int = 2, ps: int = 1024,
          freelist: int = NO_FREELIST, corrupt: tuple[bool, bool] = (False, False)) -> bytes:
    """Assemble a file: metas (txid 4 in page 0, 3 in page 1) + ``pages``."""
    hwm = max(pages) + len(pages[max(pages)]) // ps
    body = b"".join(pages.get(i, b"\0" * ps) for i in range(2, max(pages) + 1))
    return (meta(order, 0, ps, root, freelist, hwm, 4, corrupt[0])
            + meta(order, 1, ps, root, freelist, hwm, 3, corrupt[1]) + body)


def simple_db(order: str, ps: int = 1024) -> bytes:
    """Root leaf (page 2): inline bucket "in", paged bucket "pg" (branch 3 -> leaves 4, 5)."""
    inline = [(0, b"k1", b"v1"), (0, b"k2", b"v2" * 10)]
    root = [(1, b"in", bucket_value(order, 0, 9, inline)), (1, b"pg", bucket_value(order, 3, 5))]
    return build(order, {
        2: page(order, 2, LEAF, 2, elements(order, root), ps),
        3: page(order, 3, BRANCH, 2, elements(order, [(b"a", 4), (b"m", 5)], True), ps),
        4: page(order, 4, LEAF, 2, elements(order, [(0, b"a", b"1"), (0, b"b", b"2")]), ps),
        5: page(order, 5, LEAF, 2, elements(order, [(0, b"m", b"3"), (0, b"z", b"Z" * 3000)]), ps),
    }, ps=ps)


@pytest.mark.parametrize("order,name", [("<", "little"), (">", "big")])
@pytest.mark.parametrize("ps", [1024, 4096, 65536])
def test_hand_built_both_byte_orders(order: str, name: str, ps: int) -> None:
    db = BboltDB(simple_db(order, ps))
    assert (db.byteorder, db.page_size, db.txid, db.meta_used) == (name, ps, 4, 0)
    assert db.get_path(b"in", b"k2") == b"v2" * 10
    assert db.root().bucket(b"in").sequence == 9  # type: ignore[union-attr]
    assert db.root().bucket(b"pg").sequence == 5  # type: ignore[union-attr]
    assert [k for k, _, _ in db.root().bucket(b"pg").items()] == [b"a", b"b", b"m", b"z"]  # type: ignore[union-attr]
    assert db.get_path(b"pg", b"z") == b"Z" * 3000
    assert db.get_path(b"pg", b"0") is None and db.get_path(b"pg", b"b") == b"2"
    assert len(list(db.walk())) == 6


def test_meta_fallback_and_probe() -> None:
    good = simple_db("<")
    newer_bad = BboltDB(build("<", {2: good[2048:3072], 3: good[3072:4096], 4: good[4096:5120],
                                    5: good[5120:]}, corrupt=(True, False)))
    assert (newer_bad.meta_used, newer_bad.txid) == (1, 3)
    assert newer_bad.get_path(b"pg", b"a") == b"1"
    with pytest.raises(BboltFormatError):
        BboltDB(build("<", {2: good[2048:3072]}, corrupt=(True, True)))
    bad_magic = b"\0" * 1024 + good[1024:]  # meta 0 gone: page size found by probing
    assert BboltDB(bad_magic).meta_used == 1
    with pytest.raises(ValueError):
        BboltDB(good).get_path()


def test_freelist_count_escape_and_bounds() -> None:
    ids = [5, 6, 7]
    body = struct.pack("<Q", len(ids)) + struct.pack("<3Q", *ids)
    raw = simple_db("<")
    fl_id = len(raw) // 1024
    fl = struct.pack("<QHHI", fl_id, FREELIST, 0xFFFF, 0) + body
    raw = bytearray(raw + fl.ljust(1024, b"\0"))
    for i in range(2):  # point both metas at the freelist page
        off = i * 1024 + 16
        struct.pack_into("<Q", raw, off + 32, fl_id)
        struct.pack_into("<Q", raw, off + 56, fnv1a_64(bytes(raw[off:off + 56])))
    db = BboltDB(bytes(raw))
    assert db.freelist() == ids
    struct.pack_into("<Q", raw, fl_id * 1024 + 16, 10**6)  # count larger than the page
    with pytest.raises(BboltFormatError):
        BboltDB(bytes(raw)).freelist()


def test_hostile_cycle_shared_pages_and_bad_ids() -> None:
    o = "<"
    root = [(1, b"b", bucket_value(o, 3))]
    cycle = build(o, {2: page(o, 2, LEAF, 1, elements(o, root), 1024),
                      3: page(o, 3, BRANCH, 1, elements(o, [(b"a", 3)], True), 1024)})
    db = BboltDB(cycle)
    with pytest.raises(BboltFormatError):
        list(db.walk())
    with pytest.raises(BboltFormatError):
        db.get_path(b"b", b"a")
    # 60 buckets per level all sharing one page: exponential unless pages are visited once
    fan = [(1, b"%03d" % i, bucket_value(o, 3)) for i in range(60)]
    fan2 = [(1, b"%03d" % i, bucket_value(o, 4)) for i in range(60)]
    shared = build(o, {2: page(o, 2, LEAF, 60, elements(o, fan), 4096),
                       3: page(o, 3, LEAF, 60, elements(o, fan2), 4096),
                       4: page(o, 4, LEAF, 1, elements(o, [(0, b"x", b"y")]), 4096)}, ps=4096)
    start = time.monotonic()
    with pytest.raises(BboltFormatError):
        list(BboltDB(shared).walk())
    assert time.monotonic() - start < 2
    for child in (0, 1, 99, 2**64 - 1):
        bad = build(o, {2: page(o, 2, LEAF, 1, elements(o, [(1, b"b", bucket_value(o, child))]), 1024)})
        with pytest.raises(BboltFormatError):
            list(BboltDB(bad).walk())
    wrong_id = build(o, {2: page(o, 7, LEAF, 0, b"", 1024)})
    with pytest.raises(BboltFormatError):
        BboltDB(wrong_id).root().get(b"x")


def test_hostile_deep_inline_nesting() -> None:
    o = "<"
    value = bucket_value(o, 0, 0, [(0, b"leaf", b"bottom")])
    for _ in range(MAX_BUCKET_NESTING + 5):
        value = bucket_value(o, 0, 0, [(1, b"n", value)])
    db = BboltDB(build(o, {2: page(o, 2, LEAF, 1, elements(o, [(1, b"top", value)]), 1024)}))
    with pytest.raises(BboltFormatError):
        list(db.walk())
    assert db.carve_deleted() == []  # root page is live; nothing free


def test_hostile_element_bounds() -> None:
    o = "<"
    body = struct.pack(o + "IIII", 0, 16, 4, 2**31)  # value far beyond the page
    db = BboltDB(build(o, {2: page(o, 2, LEAF, 1, body, 1024)}))
    with pytest.raises(BboltFormatError):
        list(db.root().items())
    too_many = BboltDB(build(o, {2: page(o, 2, LEAF, 0xFFFE, b"", 1024)}))
    with pytest.raises(BboltFormatError):
        too_many.root().get(b"a")


# ---------------------------------------------------------------------------
# property tests: hostile bytes only ever raise BboltFormatError
# ---------------------------------------------------------------------------

def exercise(data: bytes) -> None:
    """Open and read everything; only BboltFormatError may escape the reader."""
    try:
        db = BboltDB(data)
    except BboltFormatError:
        return
    checks = (lambda: list(db.walk()), db.freelist,
              lambda: [list(b.items()) for _, b in db.root().buckets()],
              lambda: db.get_path(b"volumes", b"x"), lambda: db.get_path(b"libnetwork", b"a"),
              lambda: db.get_path(b"big", b"key-0100"), lambda: db.get_path(b"outer", b"inner", b"a"))
    for check in checks:
        try:
            check()
        except BboltFormatError:
            pass
    db.carve_deleted()  # best-effort: must never raise


def real_corpus() -> list[bytes]:
    corpus = [generated("small_pages.db"), generated("nofreelist.db"), simple_db(">")]
    if PEERS.is_dir():
        dbs, _ = tgz("vols.v2.tgz")
        corpus += [dbs[VOLS_DB], dbs[KV_DB]]
    return corpus


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3 * 1024))
def test_arbitrary_bytes(data: bytes) -> None:
    exercise(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_real_dbs(data: st.DataObject) -> None:
    corpus = real_corpus()
    raw = bytearray(corpus[data.draw(st.integers(0, len(corpus) - 1))])
    page_size = BboltDB(bytes(raw)).page_size
    low = data.draw(st.sampled_from([0, 2 * page_size]))  # metas too, or only tree pages
    for _ in range(data.draw(st.integers(1, 12))):
        raw[data.draw(st.integers(low, len(raw) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    exercise(bytes(raw))
