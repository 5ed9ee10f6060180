"""The memory-bounded paths of ingest (issue 5) give the same tables as the simple ones."""

from __future__ import annotations

import pandas as pd
import pytest

from analyzer import case as casemod
from analyzer import pipeline
from analyzer.model import schema
from analyzer.model.spill import attach
from analyzer.parsers import build, drivers
from tests.conftest import sample_path, sample_snapshot


def test_case_written_in_slices_reads_back_equal(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = sample_snapshot("overlay2")
    casemod.save_case(snap, str(tmp_path / "whole"))
    monkeypatch.setattr(casemod, "WRITE_ROWS", 97)  # many slices, a short last one
    casemod.save_case(snap, str(tmp_path / "sliced"))
    assert len(snap.files) > 97
    whole = casemod.load_case(str(tmp_path / "whole"))
    sliced = casemod.load_case(str(tmp_path / "sliced"))
    for name in schema.TABLES:
        pd.testing.assert_frame_equal(sliced.tables[name], whole.tables[name])


def test_windowed_scans_match_a_single_window(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = pipeline.read_evidence(sample_path("overlay2"), hash_files=False)
    cand = pipeline.choose_root(raw, None)
    files, deferred = build.files_frame(raw, cand.prefix)
    assert raw.files is None  # the index was handed over, not copied
    assert "sha256" not in files and [d.name for d in deferred] == ["sha256"]
    schema.validate("files", attach(files, deferred))
    pattern = drivers.LAYOUTS["overlay2"][0]
    whole = drivers.content_sizes(files, pattern)
    groups = drivers.unique_groups(files, drivers.DIR_OF["overlay2"])
    monkeypatch.setattr(drivers, "WINDOW", 37)
    pd.testing.assert_frame_equal(drivers.content_sizes(files, pattern), whole)
    assert drivers.unique_groups(files, drivers.DIR_OF["overlay2"]) == groups
    # the Python-regex fallback (a lookahead RE2 lacks) agrees with pandas
    rx = r"^overlay2/(?!l$)([^/]+)$"
    want = set(files["path"].astype(object).str.extract(rx, expand=False).dropna())
    assert drivers.unique_groups(files, rx) == want


def test_indexed_view_lookups_match_the_plain_view() -> None:
    raw = pipeline.read_evidence(sample_path("vfs"), hash_files=False)
    cand = pipeline.choose_root(raw, None)
    files, _ = build.files_frame(raw, cand.prefix)
    fast = build.IndexedView(cand.prefix, files, {}, raw.info.issues)
    plain = build.RootView(cand.prefix, files, {}, raw.info.issues)
    assert fast.top_dirs() == plain.top_dirs()
    probes = files["path"].iloc[::7].tolist() + ["", "nope", "vfs/dir", "vfs/dir/", "zzz/\udcff"]
    assert [fast.exists(p) for p in probes] == [plain.exists(p) for p in probes]


def test_duplicate_members_keep_the_last_copy() -> None:
    import pyarrow as pa

    from analyzer.issues import IssueLog

    from analyzer.sources.packed import PackedTable
    from analyzer.textcols import path_keys

    t = pa.table({"path": ["a", "b", "a", "c", "b", "a", "d"], "v": [1, 2, 3, 4, 5, 6, 7]})
    packed = PackedTable.from_table(pa.Table.from_batches(t.to_batches(max_chunksize=2)))
    issues = IssueLog()
    pipeline._drop_duplicates(packed, path_keys(t.column("path").combine_chunks()), issues)
    assert packed.to_table().to_pydict() == {"path": ["c", "b", "a", "d"], "v": [4, 5, 6, 7]}
    assert len(packed) == 4
    assert [r["code"] for r in issues.records()] == ["archive.duplicate"] * 2


def test_narrow_columns_keep_every_real_value(tmp_path) -> None:
    """mode, owners and device numbers are 32-bit in the files table: the largest real
    values stay, a crafted pax value beyond 32 bits becomes empty and is reported."""
    import io
    import tarfile

    members = []
    for name, uid in (("max", 2**32 - 1), ("huge", 2**40), ("root", 0)):
        ti = tarfile.TarInfo(name)
        ti.uid, ti.gid, ti.mode = uid, 7, 0o4755
        ti.pax_headers = {"uid": str(uid)}
        members.append(ti)
    dev = tarfile.TarInfo("dev")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 4095, 2**20 - 1
    members.append(dev)
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for ti in members:
            tf.addfile(ti, io.BytesIO(b""))
    raw = pipeline.read_evidence(str(path), hash_files=False)
    files = attach(*build.files_frame(raw, "")).set_index("path")
    schema.validate("files", files.reset_index())
    assert files.loc["max", "uid"] == 2**32 - 1 and files.loc["root", "uid"] == 0
    assert pd.isna(files.loc["huge", "uid"]) and files.loc["huge", "gid"] == 7
    assert files.loc["max", "mode"] == 0o4755
    assert (files.loc["dev", "devmajor"], files.loc["dev", "devminor"]) == (4095, 2**20 - 1)
    ranged = [r for r in raw.info.issues.records() if r["code"] == "archive.field_range"]
    assert len(ranged) == 1 and "1 member(s) have a uid" in ranged[0]["message"]


def test_old_case_values_beyond_32_bits_are_not_wrapped(tmp_path) -> None:
    """A case folder written while ``files.uid`` was 64-bit is read back without wrapping
    a crafted 2**40 owner to 0 (root)."""
    snap = sample_snapshot("overlay2")
    casemod.save_case(snap, str(tmp_path / "case"))
    path = tmp_path / "case" / "files.parquet"
    old = pd.read_parquet(path)
    old["uid"] = old["uid"].astype("Int64")
    old.loc[0, "uid"] = 2**40
    old.to_parquet(path, index=False)
    files = casemod.load_case(str(tmp_path / "case")).tables["files"]
    schema.validate("files", files)
    assert pd.isna(files.loc[0, "uid"])
    assert files["uid"].iloc[1:].tolist() == snap.files["uid"].iloc[1:].tolist()
