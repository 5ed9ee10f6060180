"""``diff`` / ``GET /containers/{id}/changes`` against the daemon's recorded answers,
hand-made aufs and overlay2 stacks (whiteouts, opaque directories), and peer fixtures.

The daemon's naive diff ranges over Go maps, so sibling order changes from call to
call: sample answers are compared as sets, and both orders are checked to be
depth-first pre-orders with each directory's deletions after its other entries.
The native aufs walk is deterministic and is compared exactly.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pandas as pd
import pytest

import analyzer
from analyzer.analyses.changes import container_changes, docker_diff_text
from analyzer.analyses.fsview import merged_tree
from analyzer.cli.main import main
from analyzer.model import schema
from analyzer.model.snapshot import Snapshot
from tests.conftest import PEERS, SAMPLE_NAMES, SAMPLES, Truth, sample_path, sample_snapshot

DE = PEERS / "docker-explorer"


def _cases() -> list[tuple[str, str]]:
    out = []
    for sample in SAMPLE_NAMES:
        truth = Truth(SAMPLES / sample / "truth")
        out += [(sample, name) for name in truth.names("changes-", ".json")]
    return out


def _daemon_shaped(changes: list[dict[str, Any]]) -> bool:
    """A pre-order where each path follows its parent's subtree start, and deletions
    come last among a directory's direct entries."""
    paths = [c["Path"] for c in changes]
    for i, c in enumerate(changes):
        parent = c["Path"].rpartition("/")[0] or "/"
        if parent in paths and paths.index(parent) > i:
            return False
        # everything between the parent and this entry lies under the parent
        if parent in paths:
            start = paths.index(parent)
            if any(not p.startswith(parent + "/") for p in paths[start + 1:i]):
                return False
        later = [d for d in changes[i + 1:] if (d["Path"].rpartition("/")[0] or "/") == parent]
        if c["Kind"] == 2 and any(d["Kind"] != 2 for d in later):
            return False
    return True


@pytest.mark.parametrize("sample,name", _cases())
def test_changes_equal_daemon(sample: str, name: str) -> None:
    snap = sample_snapshot(sample)
    truth = Truth(SAMPLES / sample / "truth")
    want = truth.json(f"changes-{name}.json") or []
    got = container_changes(snap, name)
    key = lambda c: (c["Path"], c["Kind"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    assert len(got) == len({c["Path"] for c in got})
    assert _daemon_shaped(want) and _daemon_shaped(got)
    if truth.has(f"docker-diff-{name}.txt"):
        lines = truth.bytes(f"docker-diff-{name}.txt").decode().splitlines()
        assert sorted(docker_diff_text(got).splitlines()) == sorted(lines)


def test_every_sample_container_has_truth() -> None:
    for sample in SAMPLE_NAMES:
        snap = sample_snapshot(sample)
        truth = Truth(SAMPLES / sample / "truth")
        assert set(snap.containers["name"]) <= set(truth.names("changes-", ".json"))


def test_cli_diff_json_and_lines() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["diff", sample_path("overlay2"), "intruder", "--json", "-q"], out, err) == 0
    doc = json.loads(out.getvalue())
    want = Truth(SAMPLES / "overlay2" / "truth").json("changes-intruder.json")
    assert sorted(map(json.dumps, doc)) == sorted(map(json.dumps, want))
    out = io.StringIO()
    assert main(["diff", sample_path("overlay2"), "web-gz", "--json", "-q"], out, err) == 0
    assert out.getvalue() == "null\n"  # the daemon's answer for no change
    out = io.StringIO()
    assert main(["diff", sample_path("overlay2"), "exited-0", "-q"], out, err) == 0
    assert out.getvalue() == "C /tmp\nA /tmp/out.txt\n"


# -- hand-made stacks ----------------------------------------------------------------
T0 = 1_700_000_000_000_000_000  # ns
T1 = T0 + 5_000_000_123


def _f(path: str, kind: str = "file", mtime: int = T0, mode: int | None = None, **kw: Any
       ) -> dict[str, Any]:
    row = {"path": path, "kind": kind, "size": kw.pop("size", 0),
           "mode": mode if mode is not None else (0o755 if kind == "dir" else 0o644),
           "uid": 0, "gid": 0, "mtime": pd.Timestamp(mtime, unit="ns", tz="UTC"),
           "devmajor": 0 if kind == "char" else None, "devminor": 0 if kind == "char" else None}
    row.update(kw)
    return row


def _snapshot(driver: str, files: list[dict[str, Any]], dirs: list[dict[str, Any]],
              layers: list[dict[str, Any]], mount: str) -> Snapshot:
    tables = {name: schema.frame(name) for name in schema.TABLES}
    tables["files"] = schema.frame("files", files)
    tables["layer_dirs"] = schema.frame("layer_dirs", [{"driver": driver, **d} for d in dirs])
    tables["layers"] = schema.frame("layers", layers)
    top = layers[-1]["chain_id"]
    tables["images"] = schema.frame("images", [{"image_id": "sha256:" + "1" * 64,
                                                "top_chain_id": top}])
    tables["containers"] = schema.frame("containers", [{
        "container_id": "c" * 64, "name": "box", "image_id": "sha256:" + "1" * 64,
        "driver": driver, "mount_id": mount, "init_id": mount + "-init"}])
    return Snapshot(tables, {"driver": driver, "root_prefix": ""})


def _aufs() -> Snapshot:
    d = "aufs/diff/"
    b, l2, m = "base", "upper", "m1"
    files = [
        _f(d + b, "dir"), _f(d + b + "/etc", "dir"), _f(d + b + "/etc/a"), _f(d + b + "/etc/b"),
        _f(d + b + "/opt", "dir"), _f(d + b + "/opt/d", "dir"), _f(d + b + "/opt/d/old"),
        _f(d + b + "/usr", "dir"), _f(d + b + "/usr/bin", "dir"), _f(d + b + "/usr/bin/x"),
        # image layer 2: deletes /etc/b, replaces /opt/d wholesale
        _f(d + l2, "dir"), _f(d + l2 + "/etc", "dir"), _f(d + l2 + "/etc/.wh.b"),
        _f(d + l2 + "/opt", "dir"), _f(d + l2 + "/opt/d", "dir"),
        _f(d + l2 + "/opt/d/.wh..wh..opq"), _f(d + l2 + "/opt/d/new"),
        # init layer (never reported)
        _f(d + m + "-init", "dir"), _f(d + m + "-init/etc", "dir"),
        _f(d + m + "-init/etc/hosts"), _f(d + m + "-init/.wh..wh.aufs"),
        # the container's branch
        _f(d + m, "dir"), _f(d + m + "/.wh..wh.aufs"), _f(d + m + "/.wh..wh.plnk", "dir"),
        _f(d + m + "/.wh..wh.orph", "dir"),
        _f(d + m + "/etc", "dir", mtime=T1), _f(d + m + "/etc/.wh.a"),
        _f(d + m + "/opt", "dir"), _f(d + m + "/opt/d", "dir", mtime=T1),
        _f(d + m + "/opt/d/.wh..wh..opq"), _f(d + m + "/opt/d/fresh"),
        _f(d + m + "/tmp", "dir", mode=0o1777), _f(d + m + "/tmp/z", size=3),
        _f(d + m + "/usr", "dir"), _f(d + m + "/usr/bin", "dir"), _f(d + m + "/usr/bin/y"),
    ]
    dirs = [{"dir_id": b, "content_path": d + b, "lower": None},
            {"dir_id": l2, "content_path": d + l2, "lower": b},
            {"dir_id": m + "-init", "content_path": d + m + "-init", "lower": f"{l2}:{b}"},
            {"dir_id": m, "content_path": d + m, "lower": f"{m}-init:{l2}:{b}"}]
    layers = [{"chain_id": "sha256:" + "a" * 64, "cache_id": b},
              {"chain_id": "sha256:" + "b" * 64, "cache_id": l2,
               "parent_chain_id": "sha256:" + "a" * 64}]
    return _snapshot("aufs", files, dirs, layers, m)


def test_aufs_native_walk_exact() -> None:
    got = container_changes(_aufs(), "box")
    assert [(c["Path"], c["Kind"]) for c in got] == [
        ("/etc", 0),  # mtime differs from the lower /etc
        ("/etc/a", 2),  # .wh.a
        ("/opt/d", 0),
        ("/opt/d/.wh..opq", 2),  # what moby's aufsDeletedFile makes of .wh..wh..opq
        ("/opt/d/fresh", 1),
        ("/tmp", 1), ("/tmp/z", 1),
        ("/usr/bin", 0),  # equal to the lower dir: skipped, then added as the parent
        ("/usr/bin/y", 1),
    ]  # /.wh..wh.* skipped; /opt and /usr equal to the lower dirs


def test_aufs_naive_and_merged_view() -> None:
    snap = _aufs()
    got = container_changes(snap, "box", algorithm="naive")
    assert [(c["Path"], c["Kind"]) for c in got] == [
        ("/etc", 0), ("/etc/a", 2),
        ("/opt", 0), ("/opt/d", 0), ("/opt/d/fresh", 1), ("/opt/d/new", 2),
        ("/tmp", 1), ("/tmp/z", 1),
        ("/usr", 0), ("/usr/bin", 0), ("/usr/bin/y", 1)]
    view = merged_tree(snap, "box").set_index("path")
    assert set(view.index) == {"/", "/etc", "/etc/hosts", "/opt", "/opt/d", "/opt/d/fresh",
                               "/tmp", "/tmp/z", "/usr", "/usr/bin", "/usr/bin/x",
                               "/usr/bin/y"}
    assert view.loc["/etc/hosts", "layer"] == "init"
    assert view.loc["/usr/bin/x", "layer"] == "sha256:" + "a" * 64
    image = merged_tree(snap, "sha256:" + "1" * 64).set_index("path")
    assert "/etc/b" not in image.index and "/etc/a" in image.index
    assert [p for p in image.index if p.startswith("/opt/d/")] == ["/opt/d/new"]


def _overlay2() -> Snapshot:
    b, m = "base", "m1"
    o = "overlay2/"
    files = [
        _f(o + b + "/diff", "dir"), _f(o + b + "/diff/opt", "dir"),
        _f(o + b + "/diff/opt/d", "dir"), _f(o + b + "/diff/opt/d/old"),
        _f(o + b + "/diff/opt/keep"), _f(o + b + "/diff/bin", "dir"),
        _f(o + b + "/diff/bin/ping", xattrs_json='{"security.capability": "base64:AQ=="}'),
        _f(o + m + "-init/diff", "dir"), _f(o + m + "-init/diff/.dockerenv"),
        _f(o + m + "/diff", "dir"), _f(o + m + "/diff/opt", "dir"),
        _f(o + m + "/diff/opt/d", "dir", xattrs_json='{"trusted.overlay.opaque": "y"}'),
        _f(o + m + "/diff/opt/d/new"), _f(o + m + "/diff/opt/keep", "char"),
        _f(o + m + "/diff/bin", "dir"), _f(o + m + "/diff/bin/ping"),  # capability dropped
    ]
    dirs = [{"dir_id": b, "content_path": o + b + "/diff", "link_id": "B"},
            {"dir_id": m + "-init", "content_path": o + m + "-init/diff", "link_id": "I",
             "lower": "l/B"},
            {"dir_id": m, "content_path": o + m + "/diff", "link_id": "M", "lower": "l/I:l/B"}]
    layers = [{"chain_id": "sha256:" + "a" * 64, "cache_id": b}]
    return _snapshot("overlay2", files, dirs, layers, m)


def test_overlay2_opaque_and_whiteouts() -> None:
    snap = _overlay2()
    got = [(c["Path"], c["Kind"]) for c in container_changes(snap, "box")]
    assert got == [("/bin", 0), ("/bin/ping", 0),  # security.capability differs
                   ("/opt", 0), ("/opt/d", 0), ("/opt/d/new", 1), ("/opt/d/old", 2),
                   ("/opt/keep", 2)]
    # the pre-18.06 native walk reported an opaque directory as deleted
    native = [(c["Path"], c["Kind"]) for c in container_changes(snap, "box", "native")]
    assert native == [("/bin/ping", 0), ("/opt", 0), ("/opt/d", 2), ("/opt/d/new", 1),
                      ("/opt/keep", 2)]
    view = merged_tree(snap, "box")
    assert "/opt/keep" not in set(view["path"])
    assert [p for p in view["path"] if p.startswith("/opt/d/")] == ["/opt/d/new"]


# -- peer fixtures (docker-explorer) ---------------------------------------------------
def _listing(name: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(DE / f"{name}.tgz") as tf:
        return {m.name.rstrip("/"): m for m in tf.getmembers()}


@pytest.mark.skipif(not (DE / "aufs.v2.tgz").exists(), reason="peer fixtures absent")
def test_peer_aufs_v2_branches_hold_only_aufs_metadata() -> None:
    snap = analyzer.open_snapshot(str(DE / "aufs.v2.tgz"))
    names = _listing("aufs.v2")
    for _, c in snap.containers.iterrows():
        head = f"docker/aufs/diff/{c['mount_id']}/"
        inside = [n[len(head):] for n in names if n.startswith(head)]
        assert inside and all(p.split("/")[0].startswith(".wh..wh.") for p in inside)
        assert container_changes(snap, c["container_id"]) == []


@pytest.mark.skipif(not (DE / "aufs.v1.tgz").exists(), reason="peer fixtures absent")
def test_peer_aufs_v1_native_walk() -> None:
    snap = analyzer.open_snapshot(str(DE / "aufs.v1.tgz"))
    names = _listing("aufs.v1")
    rw = "docker/aufs/diff/de44dd97cfd1c8d1c1aad7f75a435603991a7a39fa4f6b20a69bf4458809209c"
    assert {n for n in names if n.startswith(rw + "/") and ".wh." not in n} == {
        rw + "/tmp", rw + "/tmp/toto", rw + "/root", rw + "/root/.ash_history"}
    lower = "docker/aufs/diff/df557f39d413a1408f5c28d8aab2892f927237ec22e903ef04b331305130ab38"
    assert names[lower + "/root"].mtime != names[rw + "/root"].mtime
    assert lower + "/root/.ash_history" not in names
    got = container_changes(snap, "de44dd97cfd1")
    assert got == [{"Path": "/root", "Kind": 0}, {"Path": "/root/.ash_history", "Kind": 1},
                   {"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/toto", "Kind": 1}]


@pytest.mark.skipif(not (DE / "overlay.v2.tgz").exists(), reason="peer fixtures absent")
def test_peer_overlay_v1_upper_vs_init() -> None:
    """Independent reading: entries of ``<mount>/upper`` that the init layer's upper
    lacks are the container's own; each is added unless the image ``root/`` has it."""
    snap = analyzer.open_snapshot(str(DE / "overlay.v2.tgz"))
    names = _listing("overlay.v2")
    for _, c in snap.containers.iterrows():
        up, init = f"docker/overlay/{c['mount_id']}/upper/", f"docker/overlay/{c['init_id']}/upper/"
        lid_member = f"docker/overlay/{c['mount_id']}/lower-id"
        assert lid_member in names
        with tarfile.open(DE / "overlay.v2.tgz") as tf:
            lower_id = tf.extractfile(lid_member).read().decode().strip()
        root = f"docker/overlay/{lower_id}/root"
        own = {n[len(up) - 1:] for n in names if n.startswith(up)} - {
            n[len(init) - 1:] for n in names if n.startswith(init)}
        got = {(x["Path"], x["Kind"]) for x in container_changes(snap, c["container_id"])}
        want = set()
        for p in own:
            want.add((p, 0 if root + p in names else 1))
            parent = p.rpartition("/")[0]
            if parent and parent not in own:
                want.add((parent, 0))
        assert got == want
        if own:
            assert got == {("/root", 0), ("/root/.ash_history", 1), ("/test", 1)}
