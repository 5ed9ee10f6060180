"""Merged filesystem views (``files``) and file extraction (``cat``) on the overlay2 sample."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import analyzer
from analyzer.analyses import fsview
from analyzer.analyses.fsview import Entry, Tree, cat_file, merged_tree
from analyzer.case import save_case
from analyzer.cli.main import main
from analyzer.errors import SnapshotError, UsageError
from analyzer.model.snapshot import Snapshot
from tests.conftest import sample_path, sample_snapshot

INTRUDER_LINE = b"toor:x:0:0:root:/root:/bin/sh\n"  # samples/make_samples.sh


@pytest.fixture(scope="module")
def snap() -> Snapshot:
    return sample_snapshot("overlay2")


def test_legacy_image_view(snap: Snapshot) -> None:
    view = merged_tree(snap, "app:legacy").set_index("path")
    assert "/app/secret.txt" not in view.index  # deleted by a later layer (whiteout)
    assert [p for p in view.index if p.startswith("/opt/d/")] == ["/opt/d/f"]  # opaque dir
    # /app/dup.txt is in two layers: the view shows the top one
    files = snap.files
    holders = files[files["path"].str.endswith("/diff/app/dup.txt")]["path"].str.split("/").str[1]
    layers = snap.layers.set_index("cache_id")
    chain = [c for c, _ in fsview.image_chain(snap, snap.find_image("app:legacy"))]
    ranks = sorted(chain.index(layers.loc[d, "chain_id"]) for d in holders)
    assert len(ranks) == 2
    assert view.loc["/app/dup.txt", "layer"] == chain[ranks[-1]]
    assert view.loc["/app/dup.txt", "member_path"].startswith(
        f"overlay2/{layers.reset_index().set_index('chain_id').loc[chain[ranks[-1]], 'cache_id']}/")
    assert view.loc["/", "kind"] == "dir"


def test_intruder_view(snap: Snapshot) -> None:
    view = merged_tree(snap, "intruder").set_index("path")
    assert "/tmp/.x/miner" in view.index and view.loc["/tmp/.x/miner", "layer"] == "rw"
    assert "/etc/group" not in view.index
    assert view.loc["/etc/passwd", "layer"] == "rw"
    assert view.loc["/etc/hostname", "layer"] == "init"
    assert not view.index.str.contains(r"/\.wh\.").any()
    assert (view["kind"].astype(str) != "char").all()  # no whiteout devices left


def _tar_extract(member: str, tmp_path: Path) -> bytes:
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-xf", sample_path("overlay2"), "-C", str(out), member],
                   check=True)
    return (out / member).read_bytes()


def test_cat_passwd_matches_tar(snap: Snapshot, tmp_path: Path) -> None:
    if not shutil.which("zstd"):
        pytest.skip("zstd not installed")
    sink = io.BytesIO()
    assert cat_file(snap, "intruder", "/etc/passwd", sink) is None
    data = sink.getvalue()
    assert data.endswith(INTRUDER_LINE)
    member = merged_tree(snap, "intruder").set_index("path").loc["/etc/passwd", "member_path"]
    assert data == _tar_extract(f"{snap.meta['root_prefix']}/{member}", tmp_path)


def test_cat_follows_links_inside_the_view(snap: Snapshot) -> None:
    sink = io.BytesIO()
    cat_file(snap, "app:legacy", "/app/link-to-a", sink)  # symlink -> /app/a.txt
    a = io.BytesIO()
    cat_file(snap, "app:legacy", "app/a.txt", a)
    assert sink.getvalue() == a.getvalue() == b"alpha file\n"
    h1 = io.BytesIO()
    cat_file(snap, "app:legacy", "/app/h1", h1)  # tar hardlink: bytes of its target
    assert h1.getvalue() == b"linked\n"
    with pytest.raises(UsageError):
        cat_file(snap, "app:legacy", "/app", io.BytesIO())
    with pytest.raises(UsageError):
        cat_file(snap, "intruder", "/etc/group", io.BytesIO())


def test_symlink_resolution_is_capped_and_confined() -> None:
    t = Tree()
    d = Entry("dir", 0, 0o755, 0, 0, 0, None, 0, 0, None, None, "x", None)
    t.put("/", d)
    t.put("/a", Entry("symlink", 0, 0o777, 0, 0, 0, "/b", 0, 0, None, None, "x", None))
    t.put("/b", Entry("symlink", 0, 0o777, 0, 0, 0, "a", 0, 0, None, None, "x", None))
    t.put("/f", Entry("file", 1, 0o644, 0, 0, 0, None, 0, 0, None, None, "x", "f"))
    t.put("/up", Entry("symlink", 0, 0o777, 0, 0, 0, "../../../../f", 0, 0, None, None, "x", None))
    with pytest.raises(UsageError):
        t.resolve("/a")
    assert t.resolve("/up") == "/f"  # '..' stops at the view's root
    assert t.resolve("/a", follow_last=False) == "/a"


def test_cli_files_and_cat_out(snap: Snapshot, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["files", sample_path("overlay2"), "intruder", "/tmp", "-q"], out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["MODE", "UID", "GID"]
    assert any(ln.endswith("/tmp/.x/miner") and " rw " in ln for ln in lines)
    out = io.StringIO()
    assert main(["files", sample_path("overlay2"), "intruder", "/etc/passwd", "--json", "-q"],
                out, err) == 0
    (rec,) = json.loads(out.getvalue())
    assert rec["path"] == "/etc/passwd" and rec["layer"] == "rw" and rec["mtime"].endswith("Z")
    target = tmp_path / "passwd.out"
    assert main(["cat", sample_path("overlay2"), "intruder", "/tmp/.x/miner", "--out",
                 str(target), "-q"], io.StringIO(), err) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # never executable
    assert target.read_bytes().startswith(b"#!/bin/sh")
    err = io.StringIO()
    assert main(["cat", sample_path("overlay2"), "intruder", "/etc/passwd", "--out",
                 str(target), "-q"], io.StringIO(), err) == 2  # never overwrites
    assert "cannot create" in err.getvalue()


def test_cat_from_directory_evidence(snap: Snapshot, tmp_path: Path) -> None:
    """A directory snapshot is read in place, and no symlink is followed on the way."""
    member = merged_tree(snap, "intruder").set_index("path").loc["/etc/passwd", "member_path"]
    rel = Path(snap.meta["root_prefix"]) / member
    (tmp_path / rel).parent.mkdir(parents=True)
    real = io.BytesIO()
    cat_file(snap, "intruder", "/etc/passwd", real)
    (tmp_path / rel).write_bytes(real.getvalue())
    meta = dict(snap.meta, evidence_path=str(tmp_path), evidence_kind="directory")
    dsnap = Snapshot(snap.tables, meta)
    sink = io.BytesIO()
    assert cat_file(dsnap, "intruder", "/etc/passwd", sink) is None
    assert sink.getvalue() == real.getvalue()
    # a symlinked folder on the way is refused, not followed
    top = tmp_path / rel.parts[0]
    os.rename(top, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", top)
    with pytest.raises(UsageError):
        cat_file(dsnap, "intruder", "/etc/passwd", io.BytesIO())


def test_cat_through_case_folder(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence.tar.zst"
    shutil.copyfile(sample_path("overlay2"), evidence)
    snap = analyzer.open_snapshot(str(evidence))
    case = save_case(snap, str(tmp_path / "case"))
    out = io.StringIO()
    assert main(["cat", case, "intruder", "/etc/passwd", "-q"], out, io.StringIO()) == 0
    assert out.getvalue().encode().endswith(INTRUDER_LINE)
    evidence.unlink()
    with pytest.raises(SnapshotError, match="no longer there"):
        cat_file(analyzer.open_snapshot(case), "intruder", "/etc/passwd", io.BytesIO())
    err = io.StringIO()
    assert main(["cat", case, "intruder", "/etc/passwd", "-q"], io.StringIO(), err) == 3
    assert "no longer there" in err.getvalue()


# --- the containerd image store ------------------------------------------------------------------

CONTAINERD_SAMPLES = [n for n in ("containerd", "containerd-system")
                      if os.path.isfile(sample_path(n))]


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_intruder_passwd(name: str, tmp_path: Path) -> None:
    """``files``/``cat`` of the intruder's /etc/passwd on the containerd store: the RW
    snapshot's copy (with the appended ``toor`` line), bytes straight from the evidence that
    holds the containerd root, hashing to the index's sha256."""
    import hashlib

    import zstandard

    from analyzer.model.evidence import locate
    from tests.conftest import sample_args

    snap = sample_snapshot(name)
    view = merged_tree(snap, "intruder").set_index("path")
    row = view.loc["/etc/passwd"]
    assert row["layer"] == "rw" and "/io.containerd.snapshotter.v1.overlayfs/snapshots/" in \
        row["member_path"]
    assert "/etc/group" not in view.index and "/tmp/.x/miner" in view.index
    sink = io.BytesIO()
    assert cat_file(snap, "intruder", "/etc/passwd", sink) is None
    data = sink.getvalue()
    assert data.endswith(INTRUDER_LINE)
    assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == row["size"]
    # the same bytes as the member of the evidence file that holds it (a second archive
    # for a system containerd)
    evidence, member = locate(snap.meta, row["member_path"])
    with open(evidence, "rb") as raw:
        import tarfile

        with tarfile.open(fileobj=zstandard.ZstdDecompressor().stream_reader(raw),
                          mode="r|") as tf:
            got = next(tf.extractfile(m).read() for m in tf  # type: ignore[union-attr]
                       if m.name == member)
    assert got == data
    # the CLI
    out, err = io.StringIO(), io.StringIO()
    assert main(["files", *sample_args(name), "intruder", "/etc/passwd", "--json", "-q"],
                out, err) == 0, err.getvalue()
    (rec,) = json.loads(out.getvalue())
    assert rec["path"] == "/etc/passwd" and rec["layer"] == "rw"
    assert rec["sha256"] == row["sha256"]
    target = tmp_path / "passwd"
    assert main(["cat", *sample_args(name), "intruder", "/etc/passwd", "--out", str(target),
                 "-q"], io.StringIO(), err) == 0, err.getvalue()
    assert target.read_bytes() == data and b"toor:x:0:0:" in data
