"""The BuildKit build cache (``buildkit/metadata_v2.db``) against the daemon's answers.

Every committed sample with ``truth/system-df.json``: our ``BuildCache`` records
equal the daemon's and ``BuilderSize`` matches. The daemon lists records in Go
map order (``cache.Manager.DiskUsage`` ranges over a map - random on every
call), so records are compared as a mapping by ID. The overlay2 sample ran one
BuildKit build; the vfs sample never used BuildKit (its DBs are empty, the
daemon answered ``null`` / 0). The containerd samples (dockerd 26.1.5, API 1.45)
ran one BuildKit build through the containerd worker
(``buildkit/containerd-overlayfs/metadata_v2.db``): no ``BuilderSize``, parents as
``" Parents"`` lists, ``Shared`` from the moby namespace's image manifests.
"""

from __future__ import annotations

import functools
import random
import re
import tarfile
from typing import Any

import pandas as pd
import pytest

from analyzer.issues import IssueLog
from analyzer.model import schema
from analyzer.parsers import buildcache
from analyzer.parsers.rootview import RootView
from analyzer.render.engine.buildcache import build_cache_records, builder_size
from tests.conftest import SAMPLES, Truth

BUILDKIT = "var/lib/docker/buildkit/"
#: fuzz variants per database (seeded: reproducible)
FLIP_VARIANTS = 60
#: bytes flipped per variant
FLIPS_PER_VARIANT = 8
PAGE = 4096  # the sample DBs' page size


@functools.cache
def buildkit_files(sample: str) -> dict[str, bytes]:
    """``buildkit/*.db`` of a sample's tar, keyed relative to the data-root."""
    from analyzer.sources.compression import open_decompressed

    out: dict[str, bytes] = {}
    path = SAMPLES / sample / "docker-root.tar.zst"
    with open(path, "rb") as raw, open_decompressed(raw, "zstd") as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            if m.isfile() and m.name.startswith(BUILDKIT) and m.name.endswith(".db"):
                fh = tar.extractfile(m)
                assert fh is not None
                out["buildkit/" + m.name[len(BUILDKIT):]] = fh.read()
    return out


def view_of(captured: dict[str, bytes]) -> RootView:
    return RootView("", pd.DataFrame({"path": pd.Series([], dtype="string")}), captured,
                    IssueLog())


def _by_id(records: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
    return None if records is None else {r["ID"]: r for r in records}


def test_records_and_builder_size_match_the_daemon(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    if not truth.has("system-df.json"):
        pytest.skip("no system-df.json")
    expected = truth.json("system-df.json")
    got = build_cache_records(snap)
    assert _by_id(got) == _by_id(expected["BuildCache"])
    if got:
        assert len(got) == len(_by_id(got) or {})  # no duplicate IDs
        assert [r["ID"] for r in got] == sorted(r["ID"] for r in got)
        want = _by_id(expected["BuildCache"]) or {}
        assert all(list(r) == list(want[r["ID"]]) for r in got)  # Go field order
    # API 1.45 (dockerd 26) omits BuilderSize (0, omitempty); 1.41 sums every record
    assert builder_size(snap) == expected.get("BuilderSize", 0)
    schema.validate("build_cache", snap.tables["build_cache"])


def test_cli_total_counts_only_unshared(sample: tuple[Any, Truth]) -> None:
    """``docker system df -v`` prints the unshared sum, not the API's BuilderSize."""
    snap, truth = sample
    if not truth.has("docker-system-df-v.txt"):
        pytest.skip("no docker-system-df-v.txt")
    from analyzer.render.tables import human_size

    m = re.search(r"^Build cache usage: (\S+)$", truth.bytes("docker-system-df-v.txt").decode(),
                  re.M)
    assert m, "expected the build cache total in the sample's CLI output"
    unshared = sum(r["Size"] for r in build_cache_records(snap) or [] if not r["Shared"])
    if m.group(1)[:-1].isdigit():  # 20.10 printed small totals as plain bytes
        assert unshared == int(m.group(1)[:-1])
    assert human_size(unshared, 4) == m.group(1)  # 26.x: "20.48kB" (4 significant digits)


def test_overlay2_records_in_detail() -> None:
    """Twins are hidden, mutable records are sized through them, parents follow."""
    from tests.conftest import sample_snapshot

    df = sample_snapshot("overlay2").tables["build_cache"].set_index("cache_id")
    twins = df[df["equal_mutable"].notna()]
    assert len(twins) == 3 and not twins["listed"].any()
    assert set(twins["equal_mutable"]) == set(df[df["mutable"]].index)
    assert set(df[df["mutable"]]["size_source"]) == {"twin"}
    assert df.loc["vskj3h1ekmmt1p0p6agc71nfc", "parent_id"] == "1ldm1urzwo3irzm2l9ovd1b4i"


def _sample_inputs(snap: Any) -> tuple[set[str], dict[str, int], dict[str, int]]:
    from analyzer.render.engine.system import image_chains

    chains = {c for cs in image_chains(snap).values() for c in cs}
    layers = snap.tables["layers"]
    sizes = {c: int(s) for c, s in zip(layers["chain_id"], layers["size_bytes"])}
    dirs = snap.tables["layer_dirs"]
    dir_sizes = {d: int(b) for d, b in zip(dirs["dir_id"], dirs["content_bytes"]) if not pd.isna(b)}
    return chains, sizes, dir_sizes


def test_sizes_without_recorded_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every ``snapshot.size`` removed, the daemon's own fall-backs give the same sizes.

    Then the sizes come from the layer store (``snapshots.db`` chainid), blob-only
    records, ``snapshots.db`` ``size``; without those, from the driver dirs.
    """
    from tests.conftest import sample_snapshot

    snap = sample_snapshot("overlay2")
    truth = {r["ID"]: r["Size"] for r in Truth(SAMPLES / "overlay2" / "truth")
             .json("system-df.json")["BuildCache"]}
    inputs = _sample_inputs(snap)
    read_records, read_snaps = buildcache._read_records, buildcache._read_snapshots

    def no_sizes(view: RootView) -> Any:
        recs = read_records(view)
        for rec in (recs or {}).values():
            rec.values.pop(buildcache.KEY_SIZE, None)
        return recs

    monkeypatch.setattr(buildcache, "_read_records", no_sizes)
    rows = buildcache.parse_build_cache(view_of(buildkit_files("overlay2")), *inputs)
    got = {r["cache_id"]: r for r in rows if r["listed"]}
    assert {k: r["size_bytes"] for k, r in got.items()} == truth
    assert {r["size_source"] for r in got.values()} == {"layer", "blob-only", "snapshots.db"}

    def no_snapshot_sizes(view: RootView) -> Any:
        snaps = read_snaps(view)
        for entry in snaps.values():
            entry.pop("size", None)
        return snaps

    monkeypatch.setattr(buildcache, "_read_snapshots", no_snapshot_sizes)
    rows = buildcache.parse_build_cache(view_of(buildkit_files("overlay2")), *inputs)
    got = {r["cache_id"]: r for r in rows if r["listed"]}
    assert {k: r["size_bytes"] for k, r in got.items()} == truth
    assert "driver-dir" in {r["size_source"] for r in got.values()}


def test_no_buildkit_files() -> None:
    assert buildcache.parse_build_cache(view_of({})) == []


def _flip(data: bytes, rng: random.Random, positions: list[int]) -> bytes:
    buf = bytearray(data)
    for pos in positions:
        buf[pos] ^= rng.randrange(1, 256)
    return bytes(buf)


@pytest.mark.parametrize("db", [buildcache.METADATA_DB, buildcache.SNAPSHOTS_DB])
def test_malformed_db_is_an_issue_not_an_exception(db: str) -> None:
    files = buildkit_files("overlay2")
    data = files[db]
    rng = random.Random(20261128)
    # both meta pages damaged: unreadable → one bbolt.malformed issue
    broken = _flip(data, rng, [16 + rng.randrange(56) for _ in range(4)] +
                   [PAGE + 16 + rng.randrange(56) for _ in range(4)])
    view = view_of({**files, db: broken})
    rows = buildcache.parse_build_cache(view)
    codes = [i.code for i in view.issues]
    assert "bbolt.malformed" in codes
    if db == buildcache.METADATA_DB:
        assert rows == []
    else:  # the records still parse; only snapshot facts (chain ids) are lost
        assert rows and all(r["chain_id"] is None for r in rows)
    # truncated, and random flips anywhere: never an exception
    for cut in (0, 100, PAGE, 2 * PAGE + 123, len(data) - 1):
        buildcache.parse_build_cache(view_of({**files, db: data[:cut]}))
    for _ in range(FLIP_VARIANTS):
        pos = [rng.randrange(len(data)) for _ in range(FLIPS_PER_VARIANT)]
        view = view_of({**files, db: _flip(data, rng, pos)})
        rows = buildcache.parse_build_cache(view)
        schema.frame("build_cache", rows)
        assert all(i.code in ("bbolt.malformed", "json.malformed") for i in view.issues)


def test_malformed_value_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that is not JSON loses that key only (json.malformed)."""
    from analyzer.formats import bbolt

    items = bbolt.Bucket.items

    def bad_items(self: Any) -> Any:
        for k, v, is_bucket in items(self):
            yield k, (b"{not json" if k == b"cache.description" else v), is_bucket

    monkeypatch.setattr(bbolt.Bucket, "items", bad_items)
    view = view_of(buildkit_files("overlay2"))
    rows = buildcache.parse_build_cache(view)
    assert len(rows) == 10 and all(r["description"] == "" for r in rows)
    assert {i.code for i in view.issues} == {"json.malformed"}


def test_times_follow_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """No usage count → no LastUsedAt; no createdAt → Go's zero time; host offset printed."""
    from tests.conftest import sample_snapshot

    snap = sample_snapshot("overlay2")
    df = snap.tables["build_cache"].copy()
    df["last_used_at"] = pd.NaT
    df["created_raw"] = None
    fake = type("S", (), {"tables": {**snap.tables, "build_cache": df}, "meta": snap.meta})()
    recs = build_cache_records(fake)
    assert recs and all(r["LastUsedAt"] is None and r["CreatedAt"] == "0001-01-01T00:00:00Z"
                        for r in recs)
    one = build_cache_records(snap, tz_offset=3600)
    assert one and all(r["CreatedAt"].endswith("+01:00") for r in one)


# -- the containerd worker (containerd image store, dockerd 26) -----------------------

CONTAINERD_SAMPLES = ["containerd", "containerd-system"]


def _reparse(name: str) -> pd.DataFrame:
    """The sample's build_cache table, read again (after the test's monkeypatches)."""
    import analyzer
    from tests.conftest import sample_containerd

    snap = analyzer.open_snapshot(str(SAMPLES / name / "docker-root.tar.zst"), hash_files=False,
                                  containerd=sample_containerd(name))
    return snap.tables["build_cache"].set_index("cache_id")


def _listed_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["listed"].astype(bool)]


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_worker_records(name: str) -> None:
    """The records come from ``buildkit/containerd-overlayfs/metadata_v2.db``; twins hidden,
    mutable local-source records sized through them, chain ids from ``cache.chainID``."""
    from tests.conftest import sample_snapshot

    df = sample_snapshot(name).tables["build_cache"].set_index("cache_id")
    truth = {r["ID"]: r for r in Truth(SAMPLES / name / "truth").json("system-df.json")
             ["BuildCache"]}
    assert set(_listed_rows(df).index) == set(truth)
    twins = df[df["equal_mutable"].notna()]
    assert len(twins) == 3 and not twins["listed"].any()
    assert set(df[df["mutable"]]["size_source"]) == {"twin"}
    assert df["chain_id"].dropna().str.startswith("sha256:").all()


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_sizes_without_recorded_sizes(name: str, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    """With every ``snapshot.size`` removed, ``cacheRecord.size`` gives the daemon's sizes:
    snapshot usage (recorded at commit; estimated for the active local-source snapshots)
    plus the content-store size of the record's blob; blob-only records only the blob."""
    truth = {r["ID"]: r["Size"] for r in Truth(SAMPLES / name / "truth")
             .json("system-df.json")["BuildCache"]}
    read_records = buildcache._read_records

    def no_sizes(view: RootView, rel: str = buildcache.METADATA_DB) -> Any:
        recs = read_records(view, rel)
        for rec in (recs or {}).values():
            rec.values.pop(buildcache.KEY_SIZE, None)
        return recs

    monkeypatch.setattr(buildcache, "_read_records", no_sizes)
    got = _listed_rows(_reparse(name))
    assert got["size_bytes"].astype(int).to_dict() == truth
    assert set(got["size_source"]) == {"snapshot", "blob-only"}


def test_containerd_shared_needs_a_whole_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    """``imagerefchecker`` registers only each manifest's complete layer list: without the
    record of the image's top layer, its ancestors (a prefix of that image) are not shared;
    the base layer still is (it is the whole of ``base:1.0``)."""
    read_records = buildcache._read_records

    def without_top(view: RootView, rel: str = buildcache.METADATA_DB) -> Any:
        recs = read_records(view, rel)
        (recs or {}).pop("03chtv6f7g45aeozlalyeuoww", None)
        return recs

    monkeypatch.setattr(buildcache, "_read_records", without_top)
    df = _listed_rows(_reparse("containerd"))
    assert set(df[df["shared"].astype(bool)].index) == {"uqjip00xagit9fc4jpud3qmau"}


def test_containerd_missing_snapshots_drop_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutable record needs its snapshot (key = record id) in namespace moby; a twin
    whose mutable record is gone stays only if its own snapshot exists (here it does not)."""
    read_cd = buildcache._read_containerd

    def without_key(view: RootView, present: list[str], store: Any) -> Any:
        cd = read_cd(view, present, store)
        assert cd is not None
        cd.keys = {k: v for k, v in cd.keys.items() if k != "zi883rz4jj4ek8w79m9rxlbi5"}
        return cd

    monkeypatch.setattr(buildcache, "_read_containerd", without_key)
    df = _reparse("containerd")
    assert not df.loc["zi883rz4jj4ek8w79m9rxlbi5", "listed"]
    assert not df.loc["tp2jh3sq5nt1qbiijxesckbo0", "listed"]  # its twin
    assert df["listed"].sum() == 6


def test_containerd_worker_db_is_captured() -> None:
    from analyzer.sources.capture import CAPTURE

    assert CAPTURE.search("var/lib/docker/buildkit/containerd-overlayfs/metadata_v2.db")
    assert CAPTURE.search("var/lib/docker/buildkit/metadata_v2.db")
