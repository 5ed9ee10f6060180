"""Layer verification (analyzer.analyses.verify) on real roots and the tampered sample.

Clean daemon-made samples and the docker-explorer peer roots must verify ``ok``
for every layer that has a tar-split (diff id rebuilt and matched); the derived
``samples/overlay2-tampered`` must be reported with exactly the edits its
``tampered.json`` lists, whatever the order of the archive (tar-split before or
after the layer files), from a tar or an extracted directory, with either CRC
backend; the CLI exits 1 on it, 0 on clean roots, 2 for a case whose evidence is gone.
"""

from __future__ import annotations

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
from analyzer.cli.main import main
from analyzer.errors import UsageError
from analyzer.formats import tarsplit
from tests.conftest import PEERS, SAMPLE_NAMES, SAMPLES, sample_path, sample_snapshot

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
