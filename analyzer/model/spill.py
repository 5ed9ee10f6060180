"""Columns of a table held in a temporary file until the table is first read.

At 10^7 members the ``files`` table holds ~270 bytes per member; with hashing on,
the ``sha256`` column alone is ~64 of them (hex text) and no loader of the build reads
it. The build therefore writes that column, batch by batch as the member index is
unpacked, to an unlinked temporary file (:class:`ColumnSpill`) and leaves it out of
the DataFrame; :class:`~analyzer.model.snapshot.Tables` puts it back when the table
is first read, and :func:`analyzer.case.save_case` joins it slice by slice while
writing the case, so ``ingest`` never holds it in memory (issue 5's memory goal).

The file is unlinked as soon as it is created (``tempfile.TemporaryFile``): nothing
is left behind, even when the process ends with ``os._exit``. It lives in the
temporary folder (``TMPDIR``), never beside the evidence; where ``/tmp`` is a tmpfs,
its pages are memory again (shared memory, outside the process's RSS), so point
``TMPDIR`` at a disk folder for a large ingest. If it cannot be written (no space,
no folder), the batches from then on stay in memory and a ``RuntimeWarning`` says so.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from typing import IO, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from analyzer.packing import holding, pack, unpack


class ColumnSpill:
    """One column, appended batch by batch, read back by row range.

    Each batch is kept as an LZ4-compressed Arrow IPC stream (the member index's own
    format, :mod:`analyzer.packing`) at a recorded offset of the file.
    """

    def __init__(self, name: str, type_: pa.DataType, directory: str | None = None) -> None:
        self.schema = pa.schema([(name, type_)])
        self._dir = directory
        self._fh: IO[bytes] | None = None
        self._failed = False
        # per batch: (offset in the file, size) or the packed buffer itself, and its rows
        self._parts: list[tuple[tuple[int, int] | pa.Buffer, int]] = []
        self._end = 0
        self.num_rows = 0

    def __len__(self) -> int:
        return self.num_rows

    @property
    def in_memory(self) -> bool:
        """True if the file could not be written and the batches are held in memory."""
        return self._failed

    def append(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Add ``values`` after the rows already held."""
        if not len(values):
            return
        if isinstance(values, pa.ChunkedArray):
            values = pa.concat_arrays(values.chunks)
        buf = pack(pa.record_batch([values.cast(self.schema[0].type)], schema=self.schema))
        where: tuple[int, int] | pa.Buffer = buf
        error = None
        if not self._failed:
            try:
                where = (self._write(buf), buf.size)
            except OSError as exc:
                self._failed, error = True, exc
        self._parts.append((where, len(values)))
        self.num_rows += len(values)
        if error is not None:
            warnings.warn(f"cannot write a temporary file ({error}); the "
                          f"{self.schema[0].name} column is kept in memory", RuntimeWarning,
                          stacklevel=2)

    def _write(self, buf: pa.Buffer) -> int:
        """Write ``buf`` whole at the end of the file (unbuffered: a failure shows here,
        not at a later flush); returns its offset."""
        if self._fh is None:
            self._fh = tempfile.TemporaryFile(prefix="dra-spill-", dir=self._dir, buffering=0)
            # a snapshot dropped unread closes it too
            self._finalizer = weakref.finalize(self, self._fh.close)
        view, at = memoryview(buf), self._end
        while view:
            done = os.pwrite(self._fh.fileno(), view, at + (buf.size - len(view)))
            view = view[done:]
        self._end += buf.size
        return at

    def _batch(self, where: tuple[int, int] | pa.Buffer) -> pa.Array:
        if isinstance(where, pa.Buffer):
            return unpack(where).column(0)
        assert self._fh is not None
        data = os.pread(self._fh.fileno(), where[1], where[0])
        if len(data) != where[1]:
            raise OSError(f"the temporary file of {self.schema[0].name} is short")
        return unpack(pa.py_buffer(data)).column(0)

    def read(self, start: int = 0, stop: int | None = None) -> pa.ChunkedArray:
        """Rows ``[start, stop)`` (all by default); only the batches holding them are read."""
        stop = self.num_rows if stop is None else min(stop, self.num_rows)
        chunks = [self._batch(self._parts[i][0]).slice(int(local[0]), len(local))
                  for i, local in holding((n for _, n in self._parts),
                                          np.arange(start, max(start, stop)))]
        return pa.chunked_array(chunks, self.schema[0].type)

    def close(self) -> None:
        """Release the file (its space) and any batches held in memory."""
        if self._fh is not None:
            self._finalizer()
            self._fh = None
        self._parts, self.num_rows = [], 0


@dataclass
class Deferred:
    """A column of a table held in a :class:`ColumnSpill`: where it goes back
    (``position`` in the table's column order) and how its Arrow chunks become the
    column's pandas dtype (``to_series``, which may release them from the list)."""

    spill: ColumnSpill
    position: int
    to_series: Callable[[list[pa.Array]], pd.Series]

    @property
    def name(self) -> str:
        return self.spill.schema[0].name

    def series(self, start: int = 0, stop: int | None = None) -> pd.Series:
        """Rows ``[start, stop)`` as the pandas column."""
        chunks = self.spill.read(start, stop).chunks
        return self.to_series(chunks)


def attach(df: pd.DataFrame, deferred: list[Deferred], start: int = 0) -> pd.DataFrame:
    """``df`` (rows ``start``... of the full table) with the deferred columns inserted
    in place at their positions; the spills are kept."""
    for d in sorted(deferred, key=lambda d: d.position):
        ser = d.series(start, start + len(df))
        ser.index = df.index
        df.insert(min(d.position, df.shape[1]), d.name, ser)
    return df


__all__ = ["ColumnSpill", "Deferred", "attach"]
