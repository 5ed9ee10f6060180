"""Columns spilled to a temporary file during the build (issue 5's memory goal) come
back whole: on the first read of the table and in the case written from them."""

from __future__ import annotations

import os
import tempfile

import pandas as pd
import pyarrow as pa
import pytest

import analyzer
from analyzer import case as casemod
from analyzer.sources import capture
from analyzer.model.snapshot import Tables
from analyzer.model.spill import ColumnSpill, Deferred, attach
from tests.conftest import sample_path


def _chunks() -> list[pa.Array]:
    return [pa.array(["a", None, "ccc"]), pa.array([], pa.string()), pa.array(["d" * 70]),
            pa.array([None, None], pa.string()), pa.array([f"v{i}" for i in range(50)])]


def _filled(directory: str | None = None) -> ColumnSpill:
    spill = ColumnSpill("sha256", pa.string(), directory)
    for chunk in _chunks():
        spill.append(chunk)
    spill.append(pa.chunked_array([pa.array(["x"]), pa.array(["y", None])]))
    return spill


def test_spill_reads_back_any_row_range(tmp_path) -> None:
    spill = _filled(str(tmp_path))
    want = pa.concat_arrays(_chunks() + [pa.array(["x", "y", None])]).to_pylist()
    assert len(spill) == len(want) and not spill.in_memory
    st = os.fstat(spill._fh.fileno())  # an unlinked file in the folder asked for
    assert st.st_nlink == 0 and st.st_dev == os.stat(tmp_path).st_dev and st.st_size > 0
    assert os.listdir(tmp_path) == []
    for start, stop in [(0, None), (0, 3), (2, 6), (5, 7), (6, 40), (55, 59), (58, 99), (9, 9)]:
        assert spill.read(start, stop).to_pylist() == want[start:stop]
    spill.close()
    assert len(spill) == 0 and len(spill.read()) == 0


def test_a_write_failing_midway_keeps_the_rest_in_memory(tmp_path, monkeypatch) -> None:
    from analyzer.model import spill as spillmod

    calls = []
    real = os.pwrite

    def full(fd: int, data, offset: int) -> int:  # the disk fills at the third batch
        calls.append(offset)
        if len(calls) >= 3:
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(spillmod.os, "pwrite", full)
    with pytest.warns(RuntimeWarning, match="No space left"):
        spill = _filled(str(tmp_path))
    assert spill.in_memory and len(calls) == 3  # no write tried after the failure
    want = pa.concat_arrays(_chunks() + [pa.array(["x", "y", None])]).to_pylist()
    assert spill.read().to_pylist() == want


def test_an_unwritable_spill_folder_keeps_the_column_in_memory(tmp_path) -> None:
    with pytest.warns(RuntimeWarning, match="kept in memory"):
        spill = _filled(str(tmp_path / "missing"))
    assert spill.in_memory
    assert spill.read(1, 4).to_pylist() == [None, "ccc", "d" * 70]


def _deferred(values: list, position: int) -> Deferred:
    spill = ColumnSpill("sha256", pa.string())
    spill.append(pa.array(values, pa.string()))
    return Deferred(spill, position, lambda chunks: pd.Series(
        pa.chunked_array(chunks, pa.string()).to_pylist(), dtype="string"))


def test_a_table_gets_its_deferred_column_back_when_first_read() -> None:
    df = pd.DataFrame({"path": ["a", "b", "c"], "size": [1, 2, 3]})
    d = _deferred(["h1", None, "h3"], 1)
    tables = Tables({"files": df, "images": pd.DataFrame()}, {"files": [d]})
    assert tables.unmaterialized("files")[0] is df and "sha256" not in df
    tables["images"]  # other tables leave it deferred
    assert tables.unmaterialized("files")[1] == [d]
    got = tables["files"]
    assert list(got.columns) == ["path", "sha256", "size"]
    assert got["sha256"].tolist() == ["h1", pd.NA, "h3"]
    assert tables.unmaterialized("files")[1] == [] and len(d.spill.read()) == 0  # released
    # a slice of the table gets the rows of its own range
    part = attach(pd.DataFrame({"path": ["b", "c"]}, index=[1, 2]), [_deferred(
        ["h1", None, "h3"], 1)], start=1)
    assert part["sha256"].tolist() == [pd.NA, "h3"] and list(part.index) == [1, 2]


def test_ingest_writes_the_spilled_digests_and_the_table_gets_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    monkeypatch.setattr(casemod, "WRITE_ROWS", 97)  # many slices, crossing spill batches
    monkeypatch.setattr(capture, "PACK_ROWS", 64)
    snap = analyzer.open_snapshot(sample_path("overlay2"), case=str(tmp_path / "case"))
    _, deferred = snap.tables.unmaterialized("files")
    assert [d.name for d in deferred] == ["sha256"]  # writing the case did not read it back
    assert len(deferred[0].spill._parts) > 10
    assert "files" in snap.tables and snap.tables.rows("files") > 1000
    assert snap.tables.unmaterialized("files")[1]  # membership and counts kept it deferred
    assert os.listdir(tmp_path / "tmp") == []
    files = snap.files
    hashed = files[(files["kind"] == "file") & (files["size"] > 0)]["sha256"]
    assert hashed.notna().all() and hashed.str.fullmatch(r"[0-9a-f]{64}").all()
    assert files.loc[files["kind"] != "file", "sha256"].isna().all()
    saved = casemod.load_case(str(tmp_path / "case")).files
    assert list(saved.columns) == list(files.columns)
    pd.testing.assert_series_equal(saved["sha256"], files["sha256"])
    pd.testing.assert_frame_equal(saved.drop(columns="kind"), files.drop(columns="kind"))


def test_a_fresh_snapshot_pickles_with_its_deferred_columns() -> None:
    import pickle

    snap = analyzer.open_snapshot(sample_path("overlay2"))
    assert snap.tables.unmaterialized("files")[1]
    copy = pickle.loads(pickle.dumps(snap))
    assert copy.files["sha256"].notna().sum() == snap.files["sha256"].notna().sum() > 100


def test_a_case_folder_reads_each_table_when_first_used(tmp_path) -> None:
    from analyzer.errors import ExportError

    snap = analyzer.open_snapshot(sample_path("overlay2"), case=str(tmp_path / "case"))
    case = casemod.load_case(str(tmp_path / "case"))
    assert case.tables._lazy and "files" in case.tables
    assert case.tables.rows("files") == len(snap.files)  # from the Parquet footer
    assert "files" in case.tables._lazy  # counting did not read it
    assert case.find_container(snap.containers["name"].iloc[0])["container_id"] \
        == snap.containers["container_id"].iloc[0]
    assert "files" in case.tables._lazy  # a container lookup did not read it either
    pd.testing.assert_series_equal(case.files["sha256"], snap.files["sha256"])
    # a table damaged after the case was opened fails with a clear message when read
    case2 = casemod.load_case(str(tmp_path / "case"))
    (tmp_path / "case" / "volumes.parquet").write_bytes(b"PAR1 not parquet PAR1")
    with pytest.raises(ExportError, match="volumes.parquet"):
        case2.volumes


def test_a_damaged_case_table_stops_findings_instead_of_hiding_findings(tmp_path) -> None:
    """Tables are read lazily, so damage surfaces inside the rules: it must end the
    command with the damaged-case message, not become 'rule failed' or 'no changes'."""
    import io

    import pyarrow.parquet as pq

    from analyzer.cli.main import main

    case = tmp_path / "case"
    analyzer.open_snapshot(sample_path("overlay2"), case=str(case))
    files = pq.read_table(case / "files.parquet")
    pq.write_table(files.drop_columns(["sha256"]), case / "files.parquet")  # footer reads fine
    out, err = io.StringIO(), io.StringIO()
    status = main(["findings", str(case), "-q"], out=out, err=err)
    assert status == 3 and "files.parquet" in err.getvalue() and "damaged" in err.getvalue()
    # a table read fails once: the same error again, without reading the file again
    snap = casemod.load_case(str(case))
    reads = []
    reader, rows = snap.tables._lazy["files"]
    snap.tables._lazy["files"] = (lambda: reads.append(1) or reader(), rows)
    for _ in range(2):
        with pytest.raises(casemod.ExportError):
            snap.files
    assert reads == [1]


def test_tables_keep_their_order_whichever_was_read_first(tmp_path) -> None:
    analyzer.open_snapshot(sample_path("overlay2"), case=str(tmp_path / "case"))
    case = casemod.load_case(str(tmp_path / "case"))
    before = list(case.tables)
    case.issues, case.volumes
    assert list(case.tables) == before == list(casemod.schema.TABLES)


def test_a_case_rewritten_after_it_was_opened_is_not_mixed_in(tmp_path) -> None:
    analyzer.open_snapshot(sample_path("overlay2"), case=str(tmp_path / "case"))
    case = casemod.load_case(str(tmp_path / "case"))
    other = casemod.load_case(str(tmp_path / "case"))
    casemod.save_case(other, str(tmp_path / "case"))  # a later ingest replaces the folder
    with pytest.raises(casemod.ExportError, match="changed since it was opened"):
        case.files
