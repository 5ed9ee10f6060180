"""The memory-bounded paths of ingest (issue 5) give the same tables as the simple ones."""

from __future__ import annotations

import pandas as pd
import pytest

from analyzer import case as casemod
from analyzer import pipeline
from analyzer.model import schema
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
    files = build.files_frame(raw, cand.prefix)
    assert raw.files is None  # the index was handed over, not copied
    schema.validate("files", files)
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
    files = build.files_frame(raw, cand.prefix)
    fast = build.IndexedView(cand.prefix, files, {}, raw.info.issues)
    plain = build.RootView(cand.prefix, files, {}, raw.info.issues)
    assert fast.top_dirs() == plain.top_dirs()
    probes = files["path"].iloc[::7].tolist() + ["", "nope", "vfs/dir", "vfs/dir/", "zzz/\udcff"]
    assert [fast.exists(p) for p in probes] == [plain.exists(p) for p in probes]


def test_duplicate_members_keep_the_last_copy() -> None:
    import pyarrow as pa

    from analyzer.issues import IssueLog

    t = pa.table({"path": ["a", "b", "a", "c", "b", "a"], "v": [1, 2, 3, 4, 5, 6]})
    issues = IssueLog()
    out = pipeline._drop_duplicates(t, issues)
    assert out.to_pydict() == {"path": ["c", "b", "a"], "v": [4, 5, 6]}
    assert [r["code"] for r in issues.records()] == ["archive.duplicate"] * 2
