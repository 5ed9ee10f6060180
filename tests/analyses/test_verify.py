"""Layer verification (analyzer.analyses.verify) on real roots and the tampered sample.

Clean daemon-made samples and the docker-explorer peer roots must verify ``ok``
for every layer that has a tar-split (diff id rebuilt and matched); the derived
``samples/overlay2-tampered`` must be reported with exactly the edits its
``tampered.json`` lists, whatever the order of the archive (tar-split before or
after the layer files), from a tar or an extracted directory, with either CRC
backend; the CLI exits 1 on it, 0 on clean roots, 2 for a case whose evidence is gone.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

import analyzer
from analyzer.analyses.verify import VerifyResults, render_text, verify
from analyzer.model.evidence import locate
from analyzer.cli.main import main
from analyzer.errors import UsageError
from analyzer.formats import tarsplit
from tests.conftest import (PEERS, SAMPLE_NAMES, SAMPLES, sample_args, sample_containerd,
                            sample_path, sample_snapshot)

TAMPERED = SAMPLES / "overlay2-tampered"
TAMPERED_TAR = TAMPERED / "docker-root.tar.zst"
PEER_ROOTS = [PEERS / "docker-explorer" / name for name in ("overlay2.v2.tgz", "vols.v2.tgz")]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


def edits() -> set[tuple[str, str, str]]:
    doc = json.loads((TAMPERED / "tampered.json").read_text(encoding="utf-8"))
    return {(e["chain_id"], e["path"], e["kind"]) for e in doc["edits"]}


def found(results: VerifyResults) -> set[tuple[str, str, str]]:
    return {(lr.chain_id, p.path, p.kind) for lr in results.layers for p in lr.problems}


def assert_clean(results: VerifyResults, snap: Any, rebuilt: bool = True) -> None:
    if snap.meta.get("image_store") == "containerd":  # no tar-split: blobs and snapshots
        assert results.blobs and not results.tampered_blobs
        for lr in results.layers:
            assert lr.status == "ok", (lr.chain_id, lr.reason, lr.problems[:5])
            assert (lr.blob_check, lr.diff_id_check) == ("match", "match"), lr.chain_id
        assert all(b.diff_id_check == "match" for b in results.blobs if b.kind == "layer")
        assert results.exit_status == 0
        return
    with_split = set(snap.layers.loc[snap.layers["has_tar_split"], "chain_id"])
    assert with_split, "the root has layers with a tar-split"
    for lr in results.layers:
        if lr.chain_id in with_split:
            assert lr.status == "ok", (lr.chain_id, lr.reason, lr.problems[:5])
            if rebuilt and lr.diff_id:
                assert lr.diff_id_check == "match", lr.chain_id
    assert results.exit_status == 0


@pytest.fixture(scope="module")
def tampered() -> tuple[Any, VerifyResults]:
    snap = analyzer.open_snapshot(str(TAMPERED_TAR))
    return snap, verify(str(TAMPERED_TAR), snap)


# --- clean roots -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_clean_samples_verify_ok(name: str) -> None:
    snap = sample_snapshot(name)
    results = verify(sample_path(name), snap)
    assert_clean(results, snap)
    assert {lr.driver for lr in results.layers} == {snap.meta["driver"]}
    assert sum(lr.files_checked for lr in results.layers) > 0


def test_the_committed_samples_cover_overlay2_and_vfs() -> None:
    assert {"overlay2", "vfs"} <= set(SAMPLE_NAMES)
    assert "overlay2-tampered" not in SAMPLE_NAMES  # not a parity sample (no truth/)


@pytest.mark.parametrize("path", PEER_ROOTS, ids=lambda p: p.name)
def test_peer_roots_verify_ok(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    snap = analyzer.open_snapshot(str(path))
    results = verify(str(path), snap)
    assert_clean(results, snap)
    # re-tarred by an ordinary user: owners are learned, not reported file by file
    assert any("owners on disk differ consistently" in n for n in results.notes)


def test_overlay2_whiteouts_and_opaque_folders_are_checked() -> None:
    snap = sample_snapshot("overlay2")
    results = verify(sample_path("overlay2"), snap)
    assert results.overlay_xattrs_captured  # the sample was tarred with --xattrs as root
    assert results.crc_backend == tarsplit.CRC64_BACKEND


# --- the tampered sample ---------------------------------------------------------------------

def test_tampered_sample_reports_exactly_the_edits(tampered: tuple[Any, VerifyResults]) -> None:
    _snap, results = tampered
    assert found(results) == edits()
    touched = {chain for chain, _p, _k in edits()}
    for lr in results.layers:
        assert lr.status == ("tampered" if lr.chain_id in touched else "ok"), lr.chain_id
    assert results.exit_status == 1
    by_chain = {lr.chain_id: lr for lr in results.layers}
    # files edited → the rebuilt tar no longer matches; metadata-only edit → it still does
    for chain, _path, kind in edits():
        if kind == "mode":
            assert by_chain[chain].diff_id_check == "match"
        elif kind in ("content", "size", "removed"):
            assert by_chain[chain].diff_id_check == "mismatch"


def test_tampered_text_and_json(tampered: tuple[Any, VerifyResults]) -> None:
    _snap, results = tampered
    text = render_text(results)
    assert "TAMPERED" in text and "app/www/.backdoor.sh" in text
    assert text.rstrip().endswith("(of 17 image layers)")
    doc = json.loads(json.dumps(results.to_dict()))
    assert doc["summary"]["tampered"] == len({c for c, _p, _k in edits()})


def test_pure_python_crc_gives_the_same_verdict(monkeypatch: pytest.MonkeyPatch,
                                                tampered: tuple[Any, VerifyResults]) -> None:
    snap, _ = tampered
    monkeypatch.setattr(tarsplit, "_FAST", None)
    assert found(verify(str(TAMPERED_TAR), snap)) == edits()


def test_tar_split_before_or_after_the_layer_files(tmp_path: Path,
                                                   tampered: tuple[Any, VerifyResults]) -> None:
    """Reorder the archive so every tar-split comes before the overlay2 folders."""
    snap, _ = tampered
    out = tmp_path / "reordered.tar"
    with open(TAMPERED_TAR, "rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tin, \
            tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tout:
        members = tin.getmembers()
        first = [m for m in members if "/image/" in f"/{m.name}"]
        rest = [m for m in members if "/image/" not in f"/{m.name}"]
        assert first and rest
        for m in first + rest:
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
    results = verify(str(out), snap)
    assert found(results) == edits()


def test_buffer_limit_only_skips_the_rebuild(tampered: tuple[Any, VerifyResults]) -> None:
    snap, _ = tampered
    results = verify(str(TAMPERED_TAR), snap, buffer_limit=0)
    assert found(results) == edits()
    for lr in results.layers:
        if lr.files_checked:  # content needed and not kept: not rebuilt, and said so
            assert lr.diff_id_check == "skipped"
            assert any("not rebuilt" in n for n in lr.notes)


def test_extracted_directory_is_read_back_for_the_rebuild(tmp_path: Path,
                                                          tampered: tuple[Any, VerifyResults]
                                                          ) -> None:
    if os.geteuid() != 0 or shutil.which("tar") is None:
        pytest.skip("needs root (device nodes, owners) and GNU tar")
    plain = tmp_path / "root.tar"
    with open(TAMPERED_TAR, "rb") as raw, open(plain, "wb") as sink:
        zstandard.ZstdDecompressor().copy_stream(raw, sink)
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-x", "-p", "--numeric-owner", "-f", str(plain), "-C", str(root)],
                   check=True, capture_output=True)
    snap = analyzer.open_snapshot(str(root))
    results = verify(str(root), snap)
    assert found(results) == edits()
    touched = {chain for chain, _p, _k in edits()}
    assert all(lr.diff_id_check == "match" for lr in results.layers
               if lr.chain_id not in touched)


# --- unverifiable layers ----------------------------------------------------------------------

def test_missing_tar_split_and_folder_are_unverifiable(tmp_path: Path) -> None:
    """Drop one layer's tar-split and another layer's folder from the clean sample."""
    snap = sample_snapshot("overlay2")
    layers = snap.layers.sort_values("chain_id")
    no_split, no_dir = layers.iloc[0], layers.iloc[1]
    split_path = f"image/overlay2/layerdb/sha256/{no_split.chain_id[7:]}/tar-split.json.gz"
    folder = no_dir.driver_dir.rsplit("/", 1)[0]
    out = tmp_path / "cut.tar"
    with open(sample_path("overlay2"), "rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tin, \
            tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            inner = m.name.removeprefix("var/lib/docker/").rstrip("/")
            if inner == split_path or inner == folder or inner.startswith(folder + "/"):
                continue
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
    results = verify(str(out), snap)  # the tables still list both layers
    by_chain = {lr.chain_id: lr for lr in results.layers}
    assert by_chain[no_split.chain_id].status == "unverifiable"
    assert "no tar-split" in by_chain[no_split.chain_id].reason
    assert by_chain[no_dir.chain_id].status == "unverifiable"
    assert "not in the snapshot" in by_chain[no_dir.chain_id].reason
    assert results.exit_status == 0
    assert any("hashes to" in n for n in results.notes)  # not the evidence of these tables


# --- command line ------------------------------------------------------------------------------

def test_cli_exit_status() -> None:
    status, out, _err = run("verify", str(TAMPERED_TAR), "--json", "--no-cache", "-q")
    assert status == 1
    doc = json.loads(out)
    assert {(lr["chain_id"], p["path"], p["kind"]) for lr in doc["layers"]
            for p in lr["problems"]} == edits()
    status, out, _err = run("verify", sample_path("overlay2"), "--no-cache", "-q")
    assert status == 0 and "17 ok, 0 tampered" in out


def test_cli_case_folder_uses_and_needs_its_evidence(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence.tar.zst"
    shutil.copyfile(TAMPERED_TAR, evidence)
    case = tmp_path / "case"
    assert run("ingest", str(evidence), "--case", str(case), "-q")[0] == 0
    assert run("verify", str(case), "-q")[0] == 1
    evidence.unlink()
    status, _out, err = run("verify", str(case), "-q")
    assert status == UsageError.exit_code == 2
    assert "no longer there" in err
    status, _out, err = run("verify", str(tmp_path / "nope.tar"), "-q")
    assert status == 2


# --- the containerd image store -----------------------------------------------------------------

CONTAINERD_SAMPLES = [n for n in SAMPLE_NAMES if n.startswith("containerd")]


def _copy_archive(src: str, dst: Path, edit: Any) -> None:
    """Copy a .tar.zst to a plain tar, ``edit(member, payload)`` giving the members to write."""
    with open(src, "rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tin, \
            tarfile.open(dst, mode="w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            payload = tin.extractfile(m).read() if m.isreg() else None  # type: ignore[union-attr]
            for m2, p2 in edit(m, payload):
                if p2 is not None:
                    m2.size = len(p2)
                tout.addfile(m2, io.BytesIO(p2) if p2 is not None else None)


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]


def _layer_of(snap: Any, inner: str) -> tuple[Any, str]:
    """(layers row, snapshot folder) of the image layer whose snapshot holds ``inner``."""
    dirs = snap.tables["layer_dirs"]
    files = set(snap.tables["files"]["path"])
    for row in snap.layers.sort_values("chain_id").itertuples():
        folder = dirs.loc[dirs["dir_id"] == row.cache_id, "content_path"].iloc[0]
        if f"{folder}/{inner}" in files:
            return row, folder
    raise AssertionError(inner)


@pytest.fixture(scope="module", params=CONTAINERD_SAMPLES)
def c8d_tampered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[str, Any, VerifyResults, set[tuple[str, str, str]], str]:
    """A copy of a containerd sample with four snapshot edits and one rewritten layer blob."""
    name = request.param
    snap = sample_snapshot(name)
    meta = snap.meta
    run_sh, run_dir = _layer_of(snap, "app/run.sh")
    secret, secret_dir = _layer_of(snap, "app/secret.txt")
    hello, hello_dir = _layer_of(snap, "srv/hello.txt")
    index, _index_dir = _layer_of(snap, "app/www/index.html")
    croot_rel = index.blob_digest and run_dir.split("/io.containerd.snapshotter.v1.")[0]
    blob_rel = f"{croot_rel}/io.containerd.content.v1.content/blobs/sha256/{index.blob_digest[7:]}"
    evidence, blob_member = locate(meta, blob_rel)
    targets = {locate(meta, f"{run_dir}/app/run.sh")[1]: "content",
               locate(meta, f"{secret_dir}/app/secret.txt")[1]: "mode",
               locate(meta, f"{hello_dir}/srv/hello.txt")[1]: "add", blob_member: "blob"}
    new_blob: dict[str, bytes] = {}

    def edit(m: tarfile.TarInfo, payload: bytes | None) -> list[tuple[tarfile.TarInfo, Any]]:
        what = targets.get(m.name)
        if what == "content":
            return [(m, _flip(payload or b""))]
        if what == "mode":
            m.mode |= 0o4000
            return [(m, payload)]
        if what == "add":
            extra = tarfile.TarInfo(m.name.rsplit("/srv/", 1)[0] + "/planted.sh")
            extra.mode, extra.mtime = 0o755, m.mtime
            return [(m, payload), (extra, b"#!/bin/sh\nid\n")]
        if what == "blob":  # one byte of index.html inside the layer tar, recompressed
            tar = gzip.decompress(payload or b"")
            with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
                info = tf.getmember("app/www/index.html")
            new_blob["bytes"] = gzip.compress(_flip(tar, info.offset_data), mtime=0)
            return [(m, new_blob["bytes"])]
        return [(m, payload)]

    tmp = tmp_path_factory.mktemp(f"{name}-tampered")
    out = tmp / os.path.basename(evidence).removesuffix(".zst")
    _copy_archive(evidence, out, edit)
    assert len(new_blob) == 1
    main, croot = sample_path(name), sample_containerd(name)
    if croot is None:
        main = str(out)
    else:
        croot = str(out)
    tsnap = analyzer.open_snapshot(main, containerd=croot)
    expected = {(run_sh.chain_id, "app/run.sh", "content"),
                (secret.chain_id, "app/secret.txt", "mode"),
                (hello.chain_id, "planted.sh", "added"),
                (index.chain_id, "", "blob"), (index.chain_id, "", "diff_id"),
                (index.chain_id, "app/www/index.html", "content")}
    return main, tsnap, verify(main, tsnap), expected, index.blob_digest


def test_containerd_tampering_is_reported_exactly(
        c8d_tampered: tuple[str, Any, VerifyResults, set[tuple[str, str, str]], str]) -> None:
    _main, _snap, results, expected, blob = c8d_tampered
    assert found(results) == expected
    touched = {chain for chain, _p, _k in expected}
    for lr in results.layers:
        assert lr.status == ("tampered" if lr.chain_id in touched else "ok"), lr.chain_id
    rewritten = {chain for chain, _p, kind in expected if kind == "blob"}
    for lr in results.layers:
        if lr.chain_id in rewritten:  # the rewritten blob: digest and diff id fail
            assert (lr.blob_check, lr.diff_id_check) == ("mismatch", "mismatch")
        else:  # snapshot edits: the blob still proves the layer tar
            assert (lr.blob_check, lr.diff_id_check) == ("match", "match"), lr.chain_id
    bad = results.tampered_blobs
    assert [b.digest for b in bad] == [blob]
    kinds = {p.kind for p in bad[0].problems}
    assert {"digest", "diff_id"} <= kinds <= {"digest", "diff_id", "size"}
    assert bad[0].kind == "layer" and bad[0].compression == "gzip"
    assert results.exit_status == 1
    text = render_text(results)
    assert f"blob {blob[:19]} (layer): TAMPERED" in text and "app/run.sh" in text


def test_containerd_cli(c8d_tampered: tuple[str, Any, VerifyResults, set[tuple[str, str, str]],
                                            str]) -> None:
    main, snap, _results, expected, _blob = c8d_tampered
    extra = snap.meta.get("containerd_evidence_path")
    status, out, _err = run("verify", main, *(["--containerd", extra] if extra else []),
                            "--json", "-q")
    assert status == 1
    doc = json.loads(out)
    assert {(lr["chain_id"], p["path"], p["kind"]) for lr in doc["layers"]
            for p in lr["problems"]} == expected
    assert doc["blob_summary"]["tampered"] == 1
    assert doc["image_store"] == "containerd"
    assert (doc["containerd_evidence_sha256"] is not None) == bool(extra)


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_clean_cli_and_counts(name: str) -> None:
    status, out, _err = run("verify", *sample_args(name), "-q")
    assert status == 0
    snap = sample_snapshot(name)
    n = len(snap.layers)
    assert out.rstrip().endswith(f"{n} ok, 0 tampered, 0 unverifiable (of {n} image layers)")
    assert " 0 tampered, 0 missing (of " in out
