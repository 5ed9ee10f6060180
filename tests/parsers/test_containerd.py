"""The containerd image store: databases, naming, sizes, and every way the root can arrive.

Parity of the Engine documents with the daemon is in ``tests/test_parity.py`` (both
containerd samples); here are the rules underneath and the inputs the samples do
not cover directly: a tar of ``/`` holding both roots, a missing containerd root,
a damaged ``meta.db`` or blob.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import zstandard

import analyzer
from analyzer.formats import containerd_db as cdb
from analyzer.parsers import containerd as c8d
from tests.conftest import SAMPLES, Truth, sample_snapshot

MANAGED = SAMPLES / "containerd"
SYSTEM = SAMPLES / "containerd-system"


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with open(path, "rb") as fh:
        data = zstandard.ZstdDecompressor().stream_reader(fh).read()
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            out.append((m, tf.extractfile(m).read() if m.isfile() else None))
    return out


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


# -- encodings -------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2039808, 2**40])
def test_varints_round_trip(value: int) -> None:
    def put_uvarint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes(out + bytes([n]))

    assert cdb.uvarint(put_uvarint(value)) == value
    for signed in (value, -value):
        assert cdb.varint(put_uvarint((signed << 1) ^ (signed >> 63))) == signed


def test_truncated_varint_is_a_format_error() -> None:
    from analyzer.errors import BboltFormatError

    with pytest.raises(BboltFormatError):
        cdb.uvarint(b"\x80\x80")


def test_real_meta_db_decodes_like_ctr_lists_it() -> None:
    """meta.db of the managed sample against `ctr -n moby images ls` / `snapshots ls`."""
    member = "var/lib/docker/containerd/daemon/io.containerd.metadata.v1.bolt/meta.db"
    data = dict((m.name, d) for m, d in _members(MANAGED / "docker-root.tar.zst"))[member]
    meta = cdb.read_meta_db(data)
    assert meta.namespaces == ["moby", "moby_history"]
    ctr = (MANAGED / "truth" / "ctr-moby-images.txt").read_text().splitlines()[1:]
    names = {line.split()[0] for line in ctr if line.strip()}
    assert set(meta.images) == names
    snaps = (MANAGED / "truth" / "ctr-moby-snapshots.txt").read_text().splitlines()[1:]
    keys = {line.split()[0] for line in snaps if line.strip()}
    assert set(meta.snapshots["overlayfs"]) == keys
    base = meta.images["docker.io/library/base:1.0"]
    assert base["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert base["created_ns"] and base["updated_ns"] >= base["created_ns"]


# -- naming and sizes --------------------------------------------------------------------
@pytest.mark.parametrize("name,want", [
    ("docker.io/library/app:legacy", "app:legacy"),
    ("docker.io/user/app:1", "user/app:1"),
    ("docker.io/library/a/b:1", "library/a/b:1"),
    ("ghcr.io/x/y:2", "ghcr.io/x/y:2"),
    ("docker.io/library/app@sha256:" + "a" * 64, "app@sha256:" + "a" * 64),
])
def test_familiar_names(name: str, want: str) -> None:
    assert c8d.familiar(name) == want


def test_xattrs_that_overflow_the_inode_cost_a_block() -> None:
    impure = {"trusted.overlay.impure": "y"}
    origin = {"trusted.overlay.origin": "base64:" + "A" * 40}  # 29 bytes decoded
    uuid = {"trusted.overlay.uuid": "base64:6Fgt1AVhTHiEcYRxukAAZA=="}
    assert not c8d.xattr_block(json.dumps({**impure, **uuid}))
    assert not c8d.xattr_block(json.dumps(origin))
    assert c8d.xattr_block(json.dumps({**impure, **origin}))
    assert not c8d.xattr_block(None)


@pytest.mark.parametrize("name", ["containerd", "containerd-system"])
def test_snapshot_usage_matches_ctr(name: str) -> None:
    """Committed usage comes from the snapshotter DB, active usage is the block estimate:
    both as `ctr snapshots usage` printed them on the live daemon (one decimal, KiB)."""
    snap = sample_snapshot(name)
    want = {}
    for line in Truth(SAMPLES / name / "truth").bytes(
            "ctr-moby-snapshots-usage.txt").decode().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3:
            want[parts[0]] = f"{parts[1]} {parts[2]}"

    def ctr_size(n: int) -> str:  # containerd progress.Bytes
        units, x, i = ["B", "KiB", "MiB", "GiB"], float(n), 0
        while x >= 1024 and i < len(units) - 1:
            x, i = x / 1024, i + 1
        return f"{x:.1f} {units[i]}"

    dirs = snap.tables["layer_dirs"]
    mine = dirs[dirs["snapshot_key"].notna()]
    got = {k: ctr_size(int(b)) for k, b in zip(mine["snapshot_key"], mine["content_bytes"])}
    # a `docker diff` while recording made short-lived <id>-parent-view snapshots: gone
    want = {k: v for k, v in want.items() if "-parent-view-" not in k}
    assert got == want


def test_image_sizes_follow_the_daemon_rules() -> None:
    snap = sample_snapshot("containerd")
    images = snap.tables["images"].set_index("image_id")
    for doc in Truth(MANAGED / "truth").json("images.json"):
        row = images.loc[doc["Id"]]
        assert row["size_bytes"] == doc["Size"]
        assert row["size_bytes"] == row["content_bytes"] + row["unpacked_bytes"] or \
            row["target_media_type"].endswith("index.v1+json")


# -- how the root arrives ----------------------------------------------------------------
def test_one_tar_of_slash_with_both_roots(tmp_path: Path) -> None:
    """A tar of the whole `/` holds /var/lib/docker and /var/lib/containerd: the
    containerd root outside the data-root is found and mounted without --containerd."""
    both = _members(SYSTEM / "docker-root.tar.zst") + _members(SYSTEM / "containerd-root.tar.zst")
    path = _write(tmp_path / "slash.tar", both)
    snap = analyzer.open_snapshot(path)
    ref = sample_snapshot("containerd-system")
    assert snap.meta["image_store"] == "containerd"
    assert snap.meta["containerd_root"] == "var/lib/containerd"
    assert pd.isna(snap.meta["containerd_evidence_path"])
    for table in ("images", "layers", "containers"):
        cols = [c for c in snap.tables[table].columns if c not in ("config_path",)]
        pd.testing.assert_frame_equal(
            snap.tables[table][cols].sort_values(cols[0]).reset_index(drop=True),
            ref.tables[table][cols].sort_values(cols[0]).reset_index(drop=True))
    from analyzer.analyses.fsview import cat_file

    out = io.BytesIO()
    assert cat_file(snap, "intruder", "/etc/passwd", out) is None
    assert b"toor:x:0:0" in out.getvalue()


def test_docker_tar_alone_says_the_containerd_root_is_missing() -> None:
    snap = analyzer.open_snapshot(str(SYSTEM / "docker-root.tar.zst"))
    assert snap.meta["image_store"] == "containerd"
    issue = snap.issues[snap.issues["code"] == "store.containerd_missing"]
    assert len(issue) == 1 and "/var/lib/containerd" in issue["message"].iloc[0]
    assert len(snap.containers) == 5 and len(snap.images) == 0


def test_second_evidence_without_a_containerd_root_is_reported(tmp_path: Path) -> None:
    other = _write(tmp_path / "empty.tar", [(tarfile.TarInfo("etc/hostname"), None)])
    snap = analyzer.open_snapshot(str(SYSTEM / "docker-root.tar.zst"), containerd=other)
    assert "store.containerd_missing" in set(snap.issues["code"])


def test_damaged_meta_db_and_missing_blob_are_issues_not_crashes(tmp_path: Path) -> None:
    members = _members(MANAGED / "docker-root.tar.zst")
    damaged = []
    gone = None
    for info, data in members:
        if info.name.endswith("io.containerd.metadata.v1.bolt/meta.db"):
            data = data[:4096] + b"\xff" * (len(data) - 4096)
        elif gone is None and "/blobs/sha256/" in info.name and data and data[:1] == b"{" \
                and b'"config"' in data:
            gone = info.name  # drop one manifest
            continue
        damaged.append((info, data))
    snap = analyzer.open_snapshot(_write(tmp_path / "bad.tar", damaged))
    codes = set(snap.issues["code"])
    assert "bbolt.malformed" in codes or "containerd.partial" in codes
    assert len(snap.containers) == 13  # the rest is still read

    kept = [(i, d) for i, d in members if i.name != gone]
    snap = analyzer.open_snapshot(_write(tmp_path / "noblob.tar", kept))
    assert "containerd.partial" in set(snap.issues["code"])
    assert len(snap.images) == 23


def test_storage_analyses_cover_the_containerd_store() -> None:
    """Waste inside app:legacy follows the recipe, as on the overlay2 sample, except that
    26.1's builder made the repeated identical `COPY dup.txt` an empty layer and stored
    `rm -rf /opt/d && mkdir /opt/d` as per-entry whiteouts: 11 (chmod copy-up of a.txt)
    + 45 (deleted secret.txt) + 6 + 6 (old1, old2) = 68 bytes."""
    from analyzer.analyses import storage

    snap = sample_snapshot("containerd")
    legacy = snap.find_image("app:legacy")["image_id"]
    waste = storage.image_waste(snap).set_index("image_id")
    assert waste.loc[legacy, "wasted_bytes"] == 68
    roles = snap.tables["layer_dirs"]["role"].value_counts().to_dict()
    assert roles == {"image-layer": 16, "container-init": 13, "container-rw": 13,
                     "build-cache": 9, "layer-parent": 6}  # nothing is a real orphan
    summary, _ = storage.duplicates(snap)
    assert summary["files"] > 0


def test_a_migrated_root_reports_both_stores(tmp_path: Path) -> None:
    """Graphdriver data plus a containerd store with images (e.g. after 29.x migrated
    images): both are reported, the daemon's own (the containers' driver) is loaded."""
    c8d_members = [(i, d) for i, d in _members(MANAGED / "docker-root.tar.zst")
                   if i.name.startswith("var/lib/docker/containerd/")]
    both = _members(SAMPLES / "overlay2" / "docker-root.tar.zst") + c8d_members
    snap = analyzer.open_snapshot(_write(tmp_path / "migrated.tar", both))
    assert snap.meta["image_store"] == "both"
    assert snap.meta["driver"].split(",")[0] == "overlay2"
    assert "store.both" in set(snap.issues["code"])
    assert len(snap.images) == len(sample_snapshot("overlay2").images)


@pytest.mark.parametrize("edit", [
    lambda doc: {**doc, "config": "not-an-object"},
    lambda doc: {**doc, "layers": {"size": "x"}},
    lambda doc: {**doc, "config": {**doc["config"], "digest": 7, "size": "big"}},
    lambda doc: [doc],
])
def test_hostile_manifest_shapes_stay_one_image_issue(tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """A manifest blob of the wrong shape spoils that image only, never the load (the
    blob no longer hashes to its digest: `image.invalid`, and `verify` reports it)."""
    members = _members(MANAGED / "docker-root.tar.zst")
    legacy = sample_snapshot("containerd").find_image("app:legacy")["image_id"][7:]
    out = []
    for info, data in members:
        if info.name.endswith(f"/blobs/sha256/{legacy}"):
            data = json.dumps(edit(json.loads(data))).encode()
            info.size = len(data)
        out.append((info, data))
    snap = analyzer.open_snapshot(_write(tmp_path / "hostile.tar", out))
    assert "parse.error" not in set(snap.issues["code"])
    assert len(snap.images) == 23 and len(snap.containers) == 13
    ok = snap.find_image("base:1.0")  # the rest of the store still loads
    assert ok["size_bytes"] == 3106021


def _strip(members: list[tuple[tarfile.TarInfo, bytes | None]], head: str,
           new: str = "") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    for info, data in members:
        if not info.name.startswith(head) or info.name.rstrip("/") == head.rstrip("/"):
            continue
        info.pax_headers = {k: v for k, v in info.pax_headers.items()
                            if k not in ("path", "linkpath")}  # the names below win
        info.name = new + info.name[len(head):]
        if info.islnk():
            info.linkname = new + info.linkname[len(head):]
        out.append((info, data))
    return out


def test_data_root_at_the_archive_top_keeps_its_managed_containerd(tmp_path: Path) -> None:
    members = _strip(_members(MANAGED / "docker-root.tar.zst"), "var/lib/docker/")
    snap = analyzer.open_snapshot(_write(tmp_path / "top.tar", members))
    assert snap.meta["containerd_mount"] == "containerd/daemon"
    assert len(snap.images) == 23 and len(snap.layers) == 16
    assert "store.containerd_missing" not in set(snap.issues["code"])


def test_second_evidence_with_the_containerd_root_at_its_top(tmp_path: Path) -> None:
    """`tar -C /var/lib/containerd -cf c.tar .`: the root is the archive's top."""
    c8d = _strip(_members(SYSTEM / "containerd-root.tar.zst"), "var/lib/containerd/")
    snap = analyzer.open_snapshot(str(SYSTEM / "docker-root.tar.zst"),
                                  containerd=_write(tmp_path / "c.tar", c8d))
    assert snap.meta["containerd_root"] == "" and snap.meta["containerd_mount"] == "@containerd"
    from analyzer.analyses.fsview import cat_file

    out = io.BytesIO()
    assert cat_file(snap, "intruder", "/etc/passwd", out) is None
    assert out.getvalue().endswith(b"toor:x:0:0:root:/root:/bin/sh\n")


def test_a_containerd_root_docker_did_not_use_is_not_mounted(tmp_path: Path) -> None:
    """A graphdriver host in a tar of `/` whose /var/lib/containerd serves only another
    namespace (a Kubernetes node): it is not Docker's image store, nothing is moved."""
    k8s = []
    for info, data in _strip(_members(SYSTEM / "containerd-root.tar.zst"),
                             "var/lib/containerd/", "var/lib/containerd/"):
        if data and info.name.endswith("meta.db"):
            data = data.replace(b"moby", b"k8s\x00")  # same length: rename the namespace
        k8s.append((info, data))
    both = _members(SAMPLES / "overlay2" / "docker-root.tar.zst") + k8s
    snap = analyzer.open_snapshot(_write(tmp_path / "node.tar", both))
    assert snap.meta["image_store"] == "graphdriver"
    assert not snap.files["path"].str.startswith("@containerd").any()


def test_case_cache_tells_apart_runs_with_and_without_the_second_evidence(
        tmp_path: Path) -> None:
    from analyzer import case as casemod

    docker = str(SYSTEM / "docker-root.tar.zst")
    c8d = str(SYSTEM / "containerd-root.tar.zst")
    target = str(tmp_path / "case")
    snap = analyzer.open_snapshot(docker, containerd=c8d, case=target)
    assert len(snap.images) == 18
    assert casemod.usable_case(target, None, str(Path(c8d).resolve()))
    assert not casemod.usable_case(target, None, None)
    assert casemod.default_case_dir(docker) != casemod.default_case_dir(docker, c8d)
