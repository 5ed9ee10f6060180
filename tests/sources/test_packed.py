"""The compressed member index gives back exactly the rows it was given."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.sources.packed import PackedTable


def _table(n: int, chunk: int) -> pa.Table:
    t = pa.table({"path": [f"overlay2/{i % 7:064x}/diff/f{i}" for i in range(n)],
                  "size": pa.array(range(n), pa.int64()),
                  "sha256": pa.array([None if i % 3 else "ab" * 32 for i in range(n)],
                                     pa.string())})
    return pa.Table.from_batches(t.to_batches(max_chunksize=chunk), schema=t.schema)


def test_round_trip_and_compression() -> None:
    t = _table(5000, 1024)
    packed = PackedTable.from_table(t)
    assert len(packed) == 5000
    assert packed.to_table().equals(t)
    assert packed.nbytes < t.nbytes / 3  # the shared prefixes compress
    only_path = [b.column_names for b in packed.batches(columns=[0])]
    assert only_path and all(names == ["path"] for names in only_path)


def test_take_batches_releases_the_table() -> None:
    t = _table(300, 64)
    packed = PackedTable.from_table(t)
    got = pa.Table.from_batches(list(packed.take_batches()), schema=t.schema)
    assert got.equals(t)
    assert len(packed) == 0 and packed.to_table().num_rows == 0


def test_extend_moves_rows() -> None:
    a, b = PackedTable.from_table(_table(10, 4)), PackedTable.from_table(_table(5, 4))
    a.extend(b)
    assert len(a) == 15 and len(b) == 0
    assert a.to_table().column("size").to_pylist() == list(range(10)) + list(range(5))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), chunk=st.integers(1, 17), data=st.data())
def test_drop_rows_matches_a_mask(n: int, chunk: int, data: st.DataObject) -> None:
    t = _table(n, chunk)
    rows = sorted(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)) if n else [])
    packed = PackedTable.from_table(t)
    packed.drop_rows(np.array(rows, np.int64))
    keep = np.ones(n, bool)
    keep[rows] = False
    assert len(packed) == int(keep.sum())
    assert packed.to_table().equals(t.filter(pa.array(keep))) if n else len(packed) == 0


def test_take_reads_only_the_rows_asked() -> None:
    t = _table(100, 8)
    packed = PackedTable.from_table(t)
    rows = np.array([0, 7, 8, 55, 99])
    assert packed.take(rows, column=1) == rows.tolist()
    assert packed.take(np.array([], np.int64)) == []
