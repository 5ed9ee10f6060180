"""Read-only reader for bbolt (etcd-io/bbolt, formerly BoltDB) database files.

Docker's data-root holds small bbolt files (``volumes/metadata.db``,
``network/files/local-kv.db``, ``buildkit/*.db``, ``builder/fscache.db``,
containerd ``meta.db``). This module decodes one from its bytes: it picks the
newest valid meta page (either byte order), walks the B+tree of the root bucket
and nested buckets (paged or inline), follows overflow pages, reads the
freelist and - forensic bonus - carves leaf entries left in unused pages.

Why hand-written: no maintained pure-Python bbolt reader exists. Of the ~330
PyPI names containing "bolt", the only bolt-DB one is ``boltdb`` ("python port
of boltdb"): a single 0.0.2 release (2020-10), never updated; the rest are
unrelated (Neo4j Bolt, Lightning BOLTs, Boltzmann...). The format is small and
stable (version 2), and a bounded reader that only raises
:class:`BboltFormatError` on hostile bytes is safer than binding Go code.

Format reference: ``shared/docs/docker-root-format.md`` §9.1.

References:
    * etcd-io/bbolt ``internal/common/page.go`` (header, elements, flags),
      ``internal/common/meta.go`` (Validate: checksum must match - 1.3.x also
      accepted 0; Sum64), ``bucket.go`` (inline buckets), ``freelist.go``
      (0xFFFF count escape), ``db.go`` (meta choice, getPageSizeFromSecondMeta).
    * Debian ``golang-github-coreos-bbolt-dev`` 1.3.6 wrote ``tests/data/bbolt``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

from analyzer.errors import BboltFormatError

MAGIC = 0xED0CDAED
VERSION = 2
BRANCH_PAGE, LEAF_PAGE, META_PAGE, FREELIST_PAGE = 0x01, 0x02, 0x04, 0x10
BUCKET_LEAF_FLAG = 0x01
NO_FREELIST = 0xFFFFFFFFFFFFFFFF  # meta.freelist when NoFreelistSync is on
FREELIST_COUNT_ESCAPE = 0xFFFF  # page.count value meaning "real count is the first u64"
HEADER_SIZE = 16  # page header: id u64, flags u16, count u16, overflow u32
ELEMENT_SIZE = 16  # branch and leaf elements are both 16 bytes
BUCKET_HEADER_SIZE = 16  # root u64, sequence u64
META_OFFSET = HEADER_SIZE  # the meta struct follows the page header
META_CHECKSUMMED = 56  # magic..txid: the bytes FNV-1a 64 covers
FNV64_OFFSET, FNV64_PRIME = 0xCBF29CE484222325, 0x100000001B3

# Bounds (hostile input must fail fast, never loop or exhaust the stack):
# bbolt itself probes 1 KiB << 0..14 for the second meta page, so page sizes
# outside [1 KiB, 16 MiB] (or not a power of two) cannot be recovered by bbolt either.
MIN_PAGE_SIZE = 1024
MAX_PAGE_SIZE = 16 * 1024 * 1024
# bbolt splits pages at minKeysPerPage = 2, so a tree of height h has at least
# 2**(h-1) pages; 64 levels exceed any file that fits in memory.
MAX_TREE_DEPTH = 64
# Real schemas nest buckets ~6 deep (containerd); 128 stays far below Python's
# recursion limit while walk() recurses once per nesting level.
MAX_BUCKET_NESTING = 128


@dataclass(frozen=True)
class Meta:
    """One decoded, validated meta page."""

    index: int  # 0 or 1
    page_size: int
    root: int
    sequence: int
    freelist: int
    high_water: int  # meta.pgid: number of pages in use
    txid: int


@dataclass(frozen=True)
class _Page:
    """A page (with its overflow pages) as a standalone buffer."""

    pgid: int
    flags: int
    count: int
    buf: memoryview


@dataclass
class _Budget:
    """Work limits shared by one traversal: each page once, bounded element count."""

    elements_left: int
    visited: set[int] = field(default_factory=set)

    def charge(self, n: int) -> None:
        """Consume ``n`` elements; a valid file cannot hold more than len/16."""
        self.elements_left -= n
        if self.elements_left < 0:
            raise BboltFormatError("tree references more elements than the file can hold")


def fnv1a_64(data: bytes) -> int:
    """FNV-1a 64-bit hash (Go's hash/fnv New64a), used for meta checksums."""
    h = FNV64_OFFSET
    for b in data:
        h = ((h ^ b) * FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def _header(order: str, buf: bytes | memoryview, off: int = 0) -> tuple[int, int, int, int]:
    """Unpack (id, flags, count, overflow) of the page header at ``off``."""
    if off + HEADER_SIZE > len(buf):
        raise BboltFormatError("page header beyond end of buffer")
    return struct.unpack_from(order + "QHHI", buf, off)


def _leaf_elements(order: str, buf: bytes | memoryview, count: int) -> list[tuple[int, bytes, bytes]]:
    """Decode ``count`` leaf elements of a page buffer into (flags, key, value)."""
    if HEADER_SIZE + count * ELEMENT_SIZE > len(buf):
        raise BboltFormatError("leaf element array exceeds its page")
    out = []
    for i in range(count):
        addr = HEADER_SIZE + i * ELEMENT_SIZE
        flags, pos, ksize, vsize = struct.unpack_from(order + "IIII", buf, addr)
        start = addr + pos
        if start + ksize + vsize > len(buf):
            raise BboltFormatError("leaf key/value exceeds its page")
        out.append((flags, bytes(buf[start:start + ksize]),
                    bytes(buf[start + ksize:start + ksize + vsize])))
    return out


def _branch_elements(order: str, buf: bytes | memoryview, count: int) -> list[tuple[bytes, int]]:
    """Decode ``count`` branch elements of a page buffer into (key, child pgid)."""
    if count == 0 or HEADER_SIZE + count * ELEMENT_SIZE > len(buf):
        raise BboltFormatError("branch element array empty or exceeds its page")
    out = []
    for i in range(count):
        addr = HEADER_SIZE + i * ELEMENT_SIZE
        pos, ksize, child = struct.unpack_from(order + "IIQ", buf, addr)
        if addr + pos + ksize > len(buf):
            raise BboltFormatError("branch key exceeds its page")
        out.append((bytes(buf[addr + pos:addr + pos + ksize]), child))
    return out


class Bucket:
    """A bucket: a B+tree rooted at a page, or an inline leaf page inside a value."""

    def __init__(self, db: BboltDB, root: int, sequence: int, inline: bytes | None,
                 depth: int) -> None:
        if depth > MAX_BUCKET_NESTING:
            raise BboltFormatError("buckets nested too deeply")
        self._db, self.root_page, self.sequence = db, root, sequence
        self._inline, self.depth = inline, depth

    @property
    def is_inline(self) -> bool:
        """True when the bucket's page is stored inside its parent's value."""
        return self._inline is not None

    def _inline_entries(self) -> list[tuple[int, bytes, bytes]]:
        assert self._inline is not None
        _, flags, count, _ = _header(self._db._order, self._inline)
        if flags != LEAF_PAGE:
            raise BboltFormatError("inline bucket page is not a leaf")
        return _leaf_elements(self._db._order, self._inline, count)

    def _entries(self, budget: _Budget) -> Iterator[tuple[int, bytes, bytes]]:
        """Yield (flags, key, raw value) in key order, charging ``budget``."""
        if self._inline is not None:
            entries = self._inline_entries()
            budget.charge(len(entries))
            yield from entries
            return
        stack = [(self.root_page, 1)]
        while stack:
            pgid, depth = stack.pop()
            if depth > MAX_TREE_DEPTH:
                raise BboltFormatError("B+tree deeper than %d levels" % MAX_TREE_DEPTH)
            if pgid in budget.visited:
                raise BboltFormatError("page %d referenced twice (cycle or shared page)" % pgid)
            page = self._db._page(pgid)
            budget.visited.update(range(pgid, pgid + len(page.buf) // self._db.page_size))
            budget.charge(page.count)
            if page.flags == LEAF_PAGE:
                yield from _leaf_elements(self._db._order, page.buf, page.count)
            elif page.flags == BRANCH_PAGE:
                children = _branch_elements(self._db._order, page.buf, page.count)
                stack.extend((child, depth + 1) for _, child in reversed(children))
            else:
                raise BboltFormatError("page %d is neither branch nor leaf" % pgid)

    def _lookup(self, key: bytes) -> tuple[int, bytes] | None:
        """Find ``key``: (flags, raw value) or None. Bounded by MAX_TREE_DEPTH."""
        if self._inline is not None:
            entries = self._inline_entries()
        else:
            pgid = self.root_page
            for _ in range(MAX_TREE_DEPTH):
                page = self._db._page(pgid)
                if page.flags == LEAF_PAGE:
                    entries = _leaf_elements(self._db._order, page.buf, page.count)
                    break
                if page.flags != BRANCH_PAGE:
                    raise BboltFormatError("page %d is neither branch nor leaf" % pgid)
                children = _branch_elements(self._db._order, page.buf, page.count)
                pgid = children[0][1]
                for child_key, child in children:
                    if child_key <= key:
                        pgid = child
            else:
                raise BboltFormatError("B+tree deeper than %d levels" % MAX_TREE_DEPTH)
        for flags, k, v in entries:
            if k == key:
                return flags, v
        return None

    def get(self, key: bytes) -> bytes | None:
        """Value of ``key``; None if absent or if ``key`` names a nested bucket."""
        found = self._lookup(key)
        return None if found is None or found[0] & BUCKET_LEAF_FLAG else found[1]

    def bucket(self, key: bytes) -> Bucket | None:
        """The nested bucket named ``key``, or None."""
        found = self._lookup(key)
        if found is None or not found[0] & BUCKET_LEAF_FLAG:
            return None
        return self._db._open_bucket(found[1], self.depth + 1)

    def items(self) -> Iterator[tuple[bytes, bytes | None, bool]]:
        """Yield (key, value or None for buckets, is_bucket) in key order."""
        budget = self._db._new_budget()
        for flags, k, v in self._entries(budget):
            is_bucket = bool(flags & BUCKET_LEAF_FLAG)
            yield k, None if is_bucket else v, is_bucket

    def buckets(self) -> Iterator[tuple[bytes, Bucket]]:
        """Yield (name, Bucket) for every nested bucket, in key order."""
        budget = self._db._new_budget()
        for flags, k, v in self._entries(budget):
            if flags & BUCKET_LEAF_FLAG:
                yield k, self._db._open_bucket(v, self.depth + 1)


class BboltDB:
    """A bbolt file held in memory. Raises only BboltFormatError on bad bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._view = memoryview(self._data)  # pages are zero-copy slices
        metas = self._find_metas()
        if not metas:
            raise BboltFormatError("no valid bbolt meta page (bad magic, version or checksum)")
        self.meta = max(metas, key=lambda m: m.txid)
        self.metas = metas
        self.page_size, self.txid = self.meta.page_size, self.meta.txid
        self.meta_used = self.meta.index
        self.page_count = len(self._data) // self.page_size

    @property
    def byteorder(self) -> str:
        """'little' or 'big' (bbolt writes the host's native order)."""
        return "little" if self._order == "<" else "big"

    def _read_meta(self, offset: int, index: int) -> tuple[Meta, str] | None:
        """Decode and validate the meta struct of the page at ``offset``."""
        start = offset + META_OFFSET
        if start + META_CHECKSUMMED + 8 > len(self._data):
            return None
        for order in ("<", ">"):
            magic, version, page_size, _flags, root, seq, freelist, hwm, txid, checksum = (
                struct.unpack_from(order + "IIIIQQQQQQ", self._data, start))
            if magic != MAGIC:
                continue
            if version != VERSION or checksum != fnv1a_64(
                    self._data[start:start + META_CHECKSUMMED]):
                return None
            if not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE or page_size & (page_size - 1):
                return None
            return Meta(index, page_size, root, seq, freelist, hwm, txid), order
        return None

    def _find_metas(self) -> list[Meta]:
        """Both valid metas if possible; probe page sizes when meta 0 is bad."""
        found = []
        first = self._read_meta(0, 0)
        if first is not None:
            found.append(first)
            offsets = [first[0].page_size]
        else:
            offsets = [MIN_PAGE_SIZE << i for i in range(15)]
        for off in offsets:
            second = self._read_meta(off, 1)
            if second is not None and second[0].page_size == off and (
                    first is None or second[1] == first[1]):
                found.append(second)
                break
        if found:
            self._order = found[0][1]
        return [m for m, _ in found]

    def _page(self, pgid: int) -> _Page:
        """Page ``pgid`` including overflow pages; its id must match."""
        if not 2 <= pgid < self.page_count:
            raise BboltFormatError("page id %d outside the file" % pgid)
        off = pgid * self.page_size
        pid, flags, count, overflow = _header(self._order, self._data, off)
        if pid != pgid:
            raise BboltFormatError("page %d header says id %d" % (pgid, pid))
        if pgid + overflow >= self.page_count:
            raise BboltFormatError("page %d overflows past the end of the file" % pgid)
        end = off + (overflow + 1) * self.page_size
        return _Page(pgid, flags, count, self._view[off:end])

    def _new_budget(self) -> _Budget:
        """A valid file holds at most len/16 elements (each takes 16 bytes)."""
        return _Budget(len(self._data) // ELEMENT_SIZE + 1)

    def _open_bucket(self, value: bytes, depth: int) -> Bucket:
        """Bucket from a bucket-flagged leaf value (16-byte header + inline page)."""
        if len(value) < BUCKET_HEADER_SIZE:
            raise BboltFormatError("bucket value shorter than its header")
        root, seq = struct.unpack_from(self._order + "QQ", value, 0)
        inline = value[BUCKET_HEADER_SIZE:] if root == 0 else None
        return Bucket(self, root, seq, inline, depth)

    def root(self) -> Bucket:
        """The root bucket; its entries are the top-level buckets."""
        return Bucket(self, self.meta.root, self.meta.sequence, None, 0)

    def get_path(self, *keys: bytes) -> bytes | None:
        """Value at bucket path ``keys[:-1]``, key ``keys[-1]``; None if absent."""
        if not keys:
            raise ValueError("get_path needs at least one key")
        bucket: Bucket | None = self.root()
        for name in keys[:-1]:
            bucket = bucket.bucket(name) if bucket is not None else None
        return bucket.get(keys[-1]) if bucket is not None else None

    def walk(self) -> Iterator[tuple[tuple[bytes, ...], bytes, bytes]]:
        """Yield (bucket path, key, value) for every non-bucket entry, depth first."""
        yield from self._walk(self.root(), (), self._new_budget())

    def _walk(self, bucket: Bucket, path: tuple[bytes, ...],
              budget: _Budget) -> Iterator[tuple[tuple[bytes, ...], bytes, bytes]]:
        for flags, k, v in bucket._entries(budget):
            if flags & BUCKET_LEAF_FLAG:
                yield from self._walk(self._open_bucket(v, bucket.depth + 1), path + (k,), budget)
            else:
                yield path, k, v

    def freelist(self) -> list[int]:
        """Page ids in the persisted freelist ([] when not persisted)."""
        if self.meta.freelist == NO_FREELIST:
            return []
        page = self._page(self.meta.freelist)
        if page.flags != FREELIST_PAGE:
            raise BboltFormatError("freelist page %d has flags %#x" % (page.pgid, page.flags))
        skip, count = 0, page.count
        if count == FREELIST_COUNT_ESCAPE:
            skip, count = 1, struct.unpack_from(self._order + "Q", page.buf, HEADER_SIZE)[0]
        if HEADER_SIZE + (skip + count) * 8 > len(page.buf):
            raise BboltFormatError("freelist count exceeds its page")
        return list(struct.unpack_from("%s%dQ" % (self._order, count), page.buf,
                                       HEADER_SIZE + skip * 8))

    def carve_deleted(self) -> list[tuple[int, bytes, bytes]]:
        """Best-effort: (page id, key, value) leaf entries whose pair is not live,
        found in every page the live tree does not use - a superset of the
        freelist and of the pages >= the high-water mark that also covers
        pending pages and NoFreelistSync files. Inline buckets there are searched
        too; damaged pages are skipped. Each (key, value) is reported once."""
        walked, seen = self._new_budget(), set()
        try:
            seen = {(k, v) for _, k, v in self._walk(self.root(), (), walked)}
        except BboltFormatError:
            pass  # partial live set: carve what we can
        reserved = walked.visited | {0, 1, self.meta.freelist}
        budget, out = self._new_budget(), []  # all carved pages share one budget
        for pgid in sorted(set(range(2, self.page_count)) - reserved):
            found: list[tuple[bytes, bytes]] = []
            try:
                page = self._page(pgid)
                if page.flags == LEAF_PAGE:
                    self._carve_leaf(page.buf, page.count, budget, found, 0)
            except BboltFormatError:
                if budget.elements_left < 0:
                    break
            for k, v in found:
                if (k, v) not in seen:
                    seen.add((k, v))
                    out.append((pgid, k, v))
        return out

    def _carve_leaf(self, buf: bytes | memoryview, count: int, budget: _Budget,
                    out: list[tuple[bytes, bytes]], depth: int) -> None:
        """Append the leaf's plain entries to ``out``; recurse into inline buckets."""
        budget.charge(count)
        for flags, k, v in _leaf_elements(self._order, buf, count):
            if not flags & BUCKET_LEAF_FLAG:
                out.append((k, v))
            elif (depth < MAX_BUCKET_NESTING and len(v) >= BUCKET_HEADER_SIZE + HEADER_SIZE
                  and not any(v[:8])):
                _, iflags, icount, _ = _header(self._order, v, BUCKET_HEADER_SIZE)
                if iflags == LEAF_PAGE:
                    self._carve_leaf(v[BUCKET_HEADER_SIZE:], icount, budget, out, depth + 1)
