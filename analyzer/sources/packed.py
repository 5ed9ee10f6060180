"""The member index kept compressed in memory between the pass and the table build.

The index is the one structure of a pass that grows with the archive: as Arrow columns
it costs ~220 bytes per member (paths under a data-root repeat their ``overlay2/<64
hex>/diff/`` prefixes), which at 10^7 members put the end of the pass above the memory
goal of issue 5. Each full batch is therefore kept as an Arrow IPC stream with LZ4
buffer compression (:mod:`analyzer.packing`): 213 MB of batches become 23 MB at 10^6
members.

:class:`PackedTable` is what the pass hands to the build (``RawSnapshot.files``); the
build unpacks it batch by batch, releasing each packed batch as it goes
(:meth:`PackedTable.take_batches`), so the index is never held both packed and
unpacked, and members outside the data-root are never held unpacked at all.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa

from analyzer.packing import holding, pack, unpack


class PackedTable:
    """A table held as compressed record batches, in row order."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._parts: list[tuple[pa.Buffer, int]] = []  # (packed batch, rows)
        self.num_rows = 0

    @classmethod
    def from_table(cls, table: pa.Table) -> "PackedTable":
        """A packed copy of ``table`` (batch by batch)."""
        out = cls(table.schema)
        for batch in table.to_batches():
            out.append(batch)
        return out

    def __len__(self) -> int:
        return self.num_rows

    @property
    def nbytes(self) -> int:
        """Bytes held (compressed)."""
        return sum(buf.size for buf, _ in self._parts)

    def append(self, batch: pa.RecordBatch) -> None:
        """Add ``batch`` (same schema) after the rows already held."""
        if batch.num_rows:
            self._parts.append((pack(batch), batch.num_rows))
            self.num_rows += batch.num_rows

    def extend(self, other: "PackedTable") -> None:
        """Move ``other``'s rows (same schema) after these; ``other`` is left empty."""
        self._parts.extend(other._parts)
        self.num_rows += other.num_rows
        other._parts, other.num_rows = [], 0

    def batches(self, columns: Sequence[int] | None = None) -> Iterator[pa.RecordBatch]:
        """Each batch unpacked in turn (only ``columns`` when given); the table is kept."""
        for buf, _ in self._parts:
            yield unpack(buf, columns)

    def take_batches(self) -> Iterator[pa.RecordBatch]:
        """Each batch unpacked in turn, each packed batch released once yielded: the
        table is empty afterwards."""
        parts, self._parts, self.num_rows = self._parts, [], 0
        parts.reverse()
        while parts:
            buf, _ = parts.pop()
            batch = unpack(buf)
            del buf
            yield batch

    def _holding(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """:func:`~analyzer.packing.holding` over the packed batches."""
        return holding((n for _, n in self._parts), rows)

    def take(self, rows: np.ndarray, column: int = 0) -> list:
        """The values of ``column`` at ``rows`` (sorted, 0-based over the whole table)
        as Python objects; only the batches holding one of them are unpacked."""
        out: list = []
        for i, local in self._holding(rows):
            col = unpack(self._parts[i][0], [column]).column(0)
            out.extend(col.take(pa.array(local, pa.int64())).to_pylist())
        return out

    def to_table(self) -> pa.Table:
        """All rows as one Arrow table (unpacked; the packed table is kept)."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def drop_rows(self, rows: np.ndarray) -> None:
        """Remove the rows numbered ``rows`` (sorted, 0-based over the whole table);
        only the batches holding one of them are unpacked and packed again."""
        for i, local in list(self._holding(rows)):
            buf, n = self._parts[i]
            keep = np.ones(n, bool)
            keep[local] = False
            kept = unpack(buf).filter(pa.array(keep))
            self._parts[i] = (pack(kept), kept.num_rows)
            self.num_rows -= n - kept.num_rows
        self._parts = [(buf, n) for buf, n in self._parts if n]

__all__ = ["PackedTable"]
