"""Streaming, read-only tar reader for evidence archives.

Reads a (possibly compressed) tar once, front to back, never seeking and never
extracting. Every member becomes a :class:`~analyzer.sources.member.Member`;
its payload can be read while the reader is positioned on it.

Why not :mod:`tarfile`: in stream mode it silently treats a corrupt or
truncated header as the end of the archive (so a damaged evidence file would
look complete), it cannot resynchronise after damage, and it builds a heavy
``TarInfo`` per member. This reader handles exactly what evidence tars contain
(ustar, GNU long names/links and old-GNU times, pax records incl.
``SCHILY.xattr.*``/``LIBARCHIVE.xattr.*``, base-256 numbers, GNU sparse members
in old-GNU, pax 0.0/0.1 and pax 1.0 layout, whose payload is re-expanded with its
holes as zeros) and reports damage as issues:

* ``archive.truncated``: the stream ends inside a header or payload;
* ``archive.corrupt``: a header fails its checksum or holds impossible numbers,
  or the compressed stream is damaged; after a bad header the reader scans
  forward block by block (up to :data:`RESYNC_LIMIT`) for the next valid header;
* ``path.escape``: absolute or ``..`` member paths are reported and skipped.

Decompressor errors never escape: the block reader keeps every byte decoded
before the error (it reads with ``read1`` so a failing call loses nothing) and
the member loop reports the error where the stream ends; an error after the
end-of-archive marker (trailing garbage after a gzip/zstd stream) is harmless.

The evidence bytes (before decompression) are hashed with sha256 as they are
read; trailing bytes after the end of the archive are hashed too. Reading,
hashing and decompression run beside the parser (see
:func:`analyzer.sources.compression.open_reader`).

Fast path: runs of ordinary members (valid checksums, plain octal fields, pax
records among the common keys, clean ASCII paths, data inside the read buffer)
are decoded a buffer at a time by :mod:`analyzer.sources.tarscan` and come out of
:meth:`TarSource.items` as one :class:`~analyzer.sources.tarscan.MemberBatch`;
every other member goes through the exact per-member code below, which is the
reference (``TarSource(path, fast=False)`` uses it alone).

References: POSIX.1-2001 pax format; GNU tar manual "Tar Archive Format";
``shared/docs/docker-root-format.md`` §4.9 (whiteouts and xattrs in tars).
"""

from __future__ import annotations

import base64
import os

import numpy as np
import urllib.parse
from typing import BinaryIO, Callable, Iterator, Union

from analyzer.errors import NotASnapshot
from analyzer.formats.tarheader import (checksum_ok as _checksum_ok, cstr as _cstr,
                                         decode_name as _decode_name, num as _num,
                                         parse_pax as _parse_pax, pax_int as _pax_int,
                                         pax_time as _pax_time)
from analyzer.sources.base import EvidenceInfo, Progress, clean_path
from analyzer.sources.compression import (EvidenceReader, decompression_errors, open_reader,
                                          sniff)
from analyzer.sources.tarscan import MemberBatch, scan as _scan
from analyzer.sources.member import (BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, OTHER,
                                     SYMLINK, Member)

BLOCKSIZE = 512
#: decompressed bytes fetched per read; large reads keep per-member cost low
READ_CHUNK = 1 << 20
#: extension headers (pax, GNU long names) larger than this are hostile; skip them
MAX_EXT_HEADER = 1 << 20
#: how far (bytes) we scan for the next valid header after a corrupt one
RESYNC_LIMIT = 1 << 30
#: the fast path refills the buffer when fewer bytes than this are left in it (a
#: member whose chain does not fit in what is left goes through the exact code)
FAST_MIN = 256 << 10
#: bytes the fast path gathers in the buffer before a walk (larger batches amortise
#: the fixed cost of the vectorised decode)
FAST_FILL = 16 << 20
#: members walked (and decoded) at once at most
FAST_MEMBERS = 16384
#: default of ``TarSource(fast=...)``; ``DRA_FAST_PATH=0`` turns the fast path off
FAST_PATH = os.environ.get("DRA_FAST_PATH", "1") != "0"

_KINDS = {
    b"0": FILE, b"\x00": FILE, b"7": FILE, b"1": HARDLINK, b"2": SYMLINK, b"3": CHAR,
    b"4": BLOCK, b"5": DIR, b"6": FIFO,
}


class _Blocks:
    """Buffered forward-only reader over the decompressed tar stream.

    A decompression error ends the stream (``eof``) and is kept in ``error``;
    the bytes decoded before it stay readable.
    """

    def __init__(self, stream: BinaryIO | EvidenceReader,
                 on_chunk: "Callable[[], None] | None" = None) -> None:
        self.stream = stream
        # read1: one decompression step per call, so an error never discards
        # bytes that were already decoded within the same call
        self._read = getattr(stream, "read1", None) or stream.read
        self._on_chunk = on_chunk
        self._errors = decompression_errors()
        self.error: BaseException | None = None
        self.buf = b""
        self.off = 0
        self.pos = 0  # absolute offset in the decompressed stream
        self.eof = False

    def _fill(self, n: int) -> None:
        need = n - (len(self.buf) - self.off)
        parts = [self.buf[self.off:]]
        while need > 0 and not self.eof:
            try:
                chunk = self._read(max(READ_CHUNK, need))
            except self._errors as exc:  # damaged or cut compressed stream
                self.error = exc
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            need -= len(chunk)
            if self._on_chunk is not None:
                self._on_chunk()
        self.buf = parts[1] if len(parts) == 2 and not parts[0] else b"".join(parts)
        self.off = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        if len(self.buf) - self.off < n:
            self._fill(n)
        data = self.buf[self.off:self.off + n]
        self.off += len(data)
        self.pos += len(data)
        return data

    def view(self, n: int) -> memoryview:
        """Up to ``n`` bytes as a view of the buffer, without copying: at most what the
        buffer holds (a refill replaces an empty buffer, no join); empty only at the end
        of the stream. The view stays valid after later reads (buffers are immutable)."""
        if self.off >= len(self.buf):
            self._fill(1)
        k = min(n, len(self.buf) - self.off)
        view = memoryview(self.buf)[self.off:self.off + k]
        self.off += k
        self.pos += k
        return view

    def unread(self, n: int) -> None:
        """Step back over the last ``n`` bytes returned by :meth:`read` (``n`` <= 512)."""
        self.off -= n
        self.pos -= n

    def skip(self, n: int) -> int:
        """Skip ``n`` bytes; return how many were actually skipped."""
        done = 0
        while done < n:
            avail = len(self.buf) - self.off
            if avail == 0:
                self._fill(min(n - done, READ_CHUNK))
                avail = len(self.buf) - self.off
                if avail == 0:
                    break
            step = min(avail, n - done)
            self.off += step
            self.pos += step
            done += step
        return done


class Payload:
    """The content of the current member; readable until the next member."""

    def __init__(self, blocks: _Blocks, size: int) -> None:
        self._blocks = blocks
        self.remaining = size  # stored bytes of this member not yet read
        self.short = False  # set when the archive ended inside this payload

    def _read_stored(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            n = self.remaining
        data = self._blocks.read(n)
        self.remaining -= len(data)
        if len(data) < n:
            self.short = True
            self.remaining = 0
        return data

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of content (all that is left if ``n < 0``)."""
        return self._read_stored(n)

    def chunks(self) -> Iterator[memoryview]:
        """The rest of the content as views of the reader's chunks, without copying
        (hashing a large member costs the hash alone; ``hashlib`` releases the GIL
        while it digests them)."""
        while self.remaining:
            view = self._blocks.view(self.remaining)
            if not view:
                self.short = True
                self.remaining = 0
                return
            self.remaining -= len(view)
            yield view

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        if self.remaining:
            if self._blocks.skip(self.remaining) < self.remaining:
                self.short = True
            self.remaining = 0


class SparsePayload(Payload):
    """The content of a GNU sparse member, re-expanded: holes read as zeros.

    ``segments`` are the ``(offset, length)`` data regions, ascending and not
    overlapping, stored back to back in the archive; ``realsize`` is the
    length of the expanded file.
    """

    def __init__(self, blocks: _Blocks, stored: int, segments: list[tuple[int, int]],
                 realsize: int) -> None:
        super().__init__(blocks, stored)
        self._segments = segments
        self._seg = 0
        self._pos = 0
        self._left = realsize

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the expanded content."""
        if n < 0 or n > self._left:
            n = self._left
        out: list[bytes] = []
        segs = self._segments
        while n > 0:
            while self._seg < len(segs) and sum(segs[self._seg]) <= self._pos:
                self._seg += 1
            if self._seg < len(segs) and segs[self._seg][0] <= self._pos:
                take = min(n, sum(segs[self._seg]) - self._pos)
                data = self._read_stored(take)
            else:  # a hole, up to the next data region or the end
                end = segs[self._seg][0] if self._seg < len(segs) else self._pos + self._left
                take = min(n, end - self._pos)
                data = bytes(take)
            out.append(data)
            self._pos += len(data)
            self._left -= len(data)
            n -= len(data)
            if len(data) < take:  # the archive ended inside the stored data
                self._left = 0
                break
        return b"".join(out)

    def chunks(self) -> Iterator[bytes]:  # type: ignore[override]
        """The rest of the expanded content (holes as zeros), a bounded piece at a time."""
        while True:
            data = self.read(1 << 20)
            if not data:
                return
            yield data


_ZERO_BLOCK = bytes(BLOCKSIZE)
#: pax records that mark a GNU sparse member
_SPARSE_KEYS = ("GNU.sparse.major", "GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.realsize")


def _padded(size: int) -> int:
    return (size + BLOCKSIZE - 1) // BLOCKSIZE * BLOCKSIZE


def _header_problem(block: bytes) -> str | None:
    """Why ``block`` is not a usable header, or ``None`` if it is one."""
    if not _checksum_ok(block):
        return "bad checksum"
    try:
        size = _num(block[124:136])
    except ValueError:
        return "size is not a number"
    if size < 0:
        return "negative size"
    return None


#: what :meth:`TarSource.items` yields
Item = Union[tuple[Member, "Payload | None"], MemberBatch]


class TarSource:
    """A tar evidence file (plain or compressed), read once.

    ``fast=False`` decodes every member with the exact per-member code (the
    reference the fast path is tested against); ``threads=False`` keeps reading
    and decompression in the calling thread.
    """

    def __init__(self, path: str, progress: Progress | None = None, *, fast: bool | None = None,
                 threads: bool = True) -> None:
        self.path = path
        self.progress = progress
        self.fast = FAST_PATH if fast is None else fast
        self.threads = threads
        size = os.path.getsize(path)
        self.info = EvidenceInfo(path=os.path.abspath(path), kind="tar", size=size)

    def __iter__(self) -> Iterator[tuple[Member, Payload | None]]:
        for item in self.items():
            if isinstance(item, MemberBatch):
                yield from item.members()  # type: ignore[misc]
            else:
                yield item

    def items(self) -> Iterator[Item]:
        """Members in archive order: ``(member, payload)`` pairs, and runs of
        ordinary members as :class:`~analyzer.sources.tarscan.MemberBatch`."""
        with open(self.path, "rb") as raw:  # read-only; the evidence is never written
            head = raw.read(BLOCKSIZE)
            raw.seek(0)
            fmt = sniff(head)
            self.info.compression = "none" if fmt == "tar" else fmt
            reader = open_reader(raw, fmt, threads=self.threads)  # type: ignore[arg-type]

            def tick() -> None:
                if self.progress is not None:
                    self.progress(reader.count, self.info.members)

            try:
                yield from self._members(_Blocks(reader, tick))
            finally:
                reader.finish()
                self.info.sha256 = reader.sha.hexdigest()
                tick()

    # -- the member loop -------------------------------------------------------------
    def _fast_run(self, blocks: _Blocks) -> Iterator[MemberBatch]:
        """Emit the run of ordinary members at the current position (maybe none).

        The walk and decode of a buffer are kept (``self._plan``) while the exact
        code handles an unusual member inside it, so each buffer is decoded once.
        """
        plan = self._plan
        if plan is not None:
            buf, chains, stop_all, d, idx = plan
            if buf is not blocks.buf or idx >= len(chains) or chains[idx] != blocks.off:
                plan = self._plan = None
        if plan is None:
            if len(blocks.buf) - blocks.off < FAST_MIN and not blocks.eof:
                blocks._fill(FAST_FILL)
            buf = blocks.buf
            chains, stop_all, d = _scan(buf, blocks.off, len(buf), FAST_MEMBERS)
            if d is None:
                return
            idx = 0
        bad = np.flatnonzero(~d.ok[idx:])
        end = idx + int(bad[0]) if len(bad) else len(chains)
        if end > idx:
            stop = chains[end] if end < len(chains) else stop_all
            batch = MemberBatch(buf, d, idx, end)
            step = stop - blocks.off
            blocks.off += step
            blocks.pos += step
            self.info.members += batch.n
            yield batch
        # the exact code takes member ``end``; the plan resumes after it
        self._plan = (buf, chains, stop_all, d, end + 1) if end + 1 < len(chains) else None

    def _members(self, blocks: _Blocks) -> Iterator[Item]:
        issues = self.info.issues
        pax_global: dict[str, bytes] = {}
        pending: dict[str, bytes] = {}  # pax / GNU long-name state for the next header
        seen_any = False
        self._plan = None
        fast = self.fast
        while True:
            if fast and not pending and not pax_global:
                for batch in self._fast_run(blocks):
                    seen_any = True
                    yield batch
            header_pos = blocks.pos
            block = blocks.read(BLOCKSIZE)
            if len(block) < BLOCKSIZE:
                if not seen_any and blocks.error is None and block[257:262] != b"ustar":
                    raise NotASnapshot("the decompressed data is not a tar archive")
                if block or not seen_any:
                    self._ended(blocks, f"the archive ends inside a header at byte {header_pos}")
                else:
                    self._ended(blocks, f"the archive ends at byte {header_pos} without its "
                                "end-of-archive marker")
                return
            if block == _ZERO_BLOCK:
                return  # end-of-archive marker (a second zero block may follow)
            problem = _header_problem(block)
            if problem is not None:
                if not seen_any and header_pos == 0 and block[257:262] != b"ustar":
                    raise NotASnapshot("the decompressed data is not a tar archive")
                pending = {}  # extension records of a damaged member must not leak
                if not self._resync(blocks, header_pos, problem):
                    return
                continue
            seen_any = True
            typeflag = block[156:157]
            size = _num(block[124:136])
            padded = _padded(size)
            if typeflag in (b"x", b"g", b"L", b"K"):
                if size > MAX_EXT_HEADER:
                    issues.add("archive.corrupt",
                               f"oversized extension header ({size} bytes) skipped at byte "
                               f"{header_pos}; the next member may lack its long name or "
                               "attributes", severity="warning")
                    self.info.complete = False
                    if blocks.skip(padded) < padded:
                        self._ended(blocks, "the archive ends inside an extension header")
                        return
                    continue
                data = blocks.read(padded)[:size]
                if len(data) < size:
                    self._ended(blocks, "the archive ends inside an extension header")
                    return
                if typeflag == b"x":
                    pending.update(_parse_pax(data))
                elif typeflag == b"g":
                    pax_global.update(_parse_pax(data))
                elif typeflag == b"L":
                    pending["path"] = _cstr(data)
                else:
                    pending["linkpath"] = _cstr(data)
                continue
            records = {**pax_global, **pending}
            pending = {}
            if "size" in records:  # pax size overrides the header (members >= 8 GiB)
                try:
                    size = _pax_int(records["size"])
                except ValueError:
                    if not self._resync(blocks, header_pos, "an invalid pax size record"):
                        return
                    continue
                padded = _padded(size)
            self.info.members += 1
            sparse = typeflag == b"S" or any(k in records for k in _SPARSE_KEYS)
            start = blocks.pos
            consumed = 0  # bytes of the stored size used by a pax 1.0 sparse map
            segments: list[tuple[int, int]] = []
            try:
                member = self._member(block, typeflag, size, records)
                if sparse:
                    segments, realsize = self._sparse_map(block, blocks, size, records)
                    member.size = realsize
            except ValueError as exc:
                consumed = 0 if typeflag == b"S" else blocks.pos - start
                issues.add("archive.corrupt", f"the member header at byte {header_pos} holds "
                           f"invalid values ({exc}); member skipped", severity="error")
                self.info.complete = False
                if blocks.skip(padded - consumed) < padded - consumed:
                    self._ended(blocks, f"the archive ends inside the member at byte "
                                f"{header_pos}")
                    return
                continue
            if sparse and typeflag != b"S":
                consumed = blocks.pos - start
            stored = size - consumed
            if member.path is None:  # type: ignore[comparison-overlap]
                if blocks.skip(padded - consumed) < padded - consumed:
                    self._ended(blocks, f"the archive ends inside the member at byte "
                                f"{header_pos}")
                    return
                continue
            payload: Payload | None = None
            if member.kind == FILE and sparse and member.size:
                payload = SparsePayload(blocks, stored, segments, member.size)
            elif member.kind == FILE and stored:
                payload = Payload(blocks, stored)
            if payload is None:  # links/dirs may carry a size; their data is skipped
                if blocks.skip(padded - consumed) < padded - consumed:
                    yield member, None
                    self._ended(blocks, f"the archive ends inside {member.path}")
                    return
                yield member, None
                continue
            yield member, payload
            payload._finish()
            pad = padded - size
            if payload.short or blocks.skip(pad) < pad:
                self._ended(blocks, f"the archive ends inside the content of {member.path}")
                return

    def _member(self, block: bytes, typeflag: bytes, size: int,
                records: dict[str, bytes]) -> Member:
        """Build the member of a header; ``ValueError`` if a number is invalid."""
        name = _cstr(block[0:100])
        if block[257:263] == b"ustar\x00":  # POSIX ustar: prefix field
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        # pax 1.0 sparse members are stored as GNUSparseFile.<pid>/<name>
        raw_path = records.get("GNU.sparse.name") or records.get("path", name)
        raw_link = records.get("linkpath", _cstr(block[157:257]))
        kind = _KINDS.get(typeflag, FILE if typeflag == b"S" else OTHER)
        if typeflag == b"\x00" and raw_path.endswith(b"/"):  # pre-POSIX directory
            kind = DIR
        mtime = _pax_time(records["mtime"]) if "mtime" in records else \
            _num(block[136:148]) * 1_000_000_000
        atime = ctime = None
        if "atime" in records:
            atime = _pax_time(records["atime"])
        if "ctime" in records:
            ctime = _pax_time(records["ctime"])
        if block[257:265] == b"ustar  \x00":  # old GNU: atime/ctime in the header
            a, c = _num(block[345:357]), _num(block[357:369])
            atime = a * 1_000_000_000 if a else atime
            ctime = c * 1_000_000_000 if c else ctime
        xattrs: dict[str, bytes] = {}
        for key, value in records.items():
            if key.startswith("SCHILY.xattr."):
                xattrs[key[len("SCHILY.xattr."):]] = value
            elif key.startswith("LIBARCHIVE.xattr."):
                xname = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
                try:
                    xattrs.setdefault(xname, base64.b64decode(value + b"=="))
                except ValueError:
                    xattrs.setdefault(xname, value)
        path = _decode_name(raw_path)
        cleaned = clean_path(path)
        if cleaned is None:
            self.info.issues.add("path.escape", f"member path {path!r} is absolute or "
                                 "climbs out with '..'; ignored", path=path)
        # surrogate escapes (undecodable bytes) are never ASCII: skip the per-character
        # scan for the common all-ASCII path
        if not path.isascii() and any(0xDC80 <= ord(ch) <= 0xDCFF for ch in path):
            self.info.issues.add("path.nonutf8", f"member path {path!r} is not UTF-8",
                                 path=path, severity="info")
        link = _decode_name(raw_link)
        if kind == HARDLINK:
            link = clean_path(link) or link
        return Member(
            path=cleaned,  # type: ignore[arg-type]
            kind=kind,
            size=size if kind == FILE else 0,
            mode=_num(block[100:108]) & 0o7777,
            uid=_pax_int(records["uid"]) if "uid" in records else _num(block[108:116]),
            gid=_pax_int(records["gid"]) if "gid" in records else _num(block[116:124]),
            mtime=mtime, atime=atime, ctime=ctime,
            linkname=link if kind in (SYMLINK, HARDLINK) else "",
            devmajor=_num(block[329:337]) if kind in (CHAR, BLOCK) else 0,
            devminor=_num(block[337:345]) if kind in (CHAR, BLOCK) else 0,
            xattrs=xattrs,
        )

    def _sparse_map(self, block: bytes, blocks: _Blocks, size: int,
                    records: dict[str, bytes]) -> tuple[list[tuple[int, int]], int]:
        """Data regions and expanded size of a GNU sparse member.

        Old GNU (``S``): map in the header plus extension blocks (not part of
        ``size``). pax 0.0/0.1: ``GNU.sparse.map``. pax 1.0: a decimal map at the
        start of the stored data, padded to a block (consumed here).
        Raises ``ValueError`` on an impossible map.
        """
        numbers: list[int] = []
        if block[156:157] == b"S":
            realsize = _num(block[483:495])
            entries, more = block[386:482], block[482]
            while True:
                for i in range(0, len(entries), 24):
                    if entries[i:i + 24].strip(b"\x00"):
                        numbers += [_num(entries[i:i + 12]), _num(entries[i + 12:i + 24])]
                if not more:
                    break
                ext = blocks.read(BLOCKSIZE)
                if len(ext) < BLOCKSIZE:
                    raise ValueError("the archive ends inside the sparse map")
                entries, more = ext[:504], ext[504]
        elif records.get("GNU.sparse.major", b"").strip() == b"1":
            realsize = _pax_int(records.get("GNU.sparse.realsize", b""))
            text = b""
            count = -1
            while count < 0 or len(text.split(b"\n")) <= 1 + 2 * count:
                if len(text) >= min(size, MAX_EXT_HEADER):
                    raise ValueError("the sparse map is larger than its member")
                chunk = blocks.read(BLOCKSIZE)
                if len(chunk) < BLOCKSIZE:
                    raise ValueError("the archive ends inside the sparse map")
                text += chunk
                if count < 0 and b"\n" in text:
                    count = _pax_int(text.split(b"\n", 1)[0])
            numbers = [_pax_int(v) for v in text.split(b"\n")[1:1 + 2 * count]]
        else:
            realsize = _pax_int(records.get("GNU.sparse.realsize")
                                or records.get("GNU.sparse.size", b""))
            raw_map = records.get("GNU.sparse.map", b"")
            numbers = [_pax_int(v) for v in raw_map.split(b",")] if raw_map.strip() else []
        if len(numbers) % 2:
            raise ValueError("the sparse map has an odd number of values")
        segments = [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)
                    if numbers[i + 1]]
        end = 0
        for offset, length in segments:
            if offset < end or offset + length > realsize:
                raise ValueError("the sparse map is not ascending or exceeds the file size")
            end = offset + length
        if sum(length for _, length in segments) > size:
            raise ValueError("the sparse map holds more data than the member stores")
        return segments, realsize

    def _ended(self, blocks: _Blocks, message: str) -> None:
        """Record that the stream ended early, naming the decompressor's error if any."""
        err = blocks.error
        if err is None:
            self.info.issues.add("archive.truncated", message, severity="error")
        else:
            text = str(err) or type(err).__name__
            code = "archive.truncated" if isinstance(err, EOFError) or "end" in text.lower() \
                else "archive.corrupt"
            self.info.issues.add(code, f"{message}: the compressed stream could not be read to "
                                 f"the end ({text}); {self.info.members} members were read",
                                 severity="error", detail=type(err).__name__)
        self.info.complete = False

    def _resync(self, blocks: _Blocks, bad_pos: int, problem: str) -> bool:
        """Scan forward for the next valid header; ``False`` at end of stream."""
        self.info.complete = False
        scanned = 0
        while scanned < RESYNC_LIMIT:
            start = blocks.pos
            block = blocks.read(BLOCKSIZE)
            if len(block) < BLOCKSIZE:
                self.info.issues.add("archive.corrupt", f"invalid tar header at byte {bad_pos} "
                                     f"({problem}); no valid header follows", severity="error")
                if blocks.error is not None:
                    self._ended(blocks, "the stream ended while looking for a valid header")
                return False
            scanned += BLOCKSIZE
            if block != _ZERO_BLOCK and _header_problem(block) is None:
                self.info.issues.add("archive.corrupt", f"invalid tar header at byte {bad_pos} "
                                     f"({problem}); skipped {start - bad_pos} bytes to the next "
                                     "valid header", severity="error")
                blocks.unread(BLOCKSIZE)
                return True
        self.info.issues.add("archive.corrupt", f"invalid tar header at byte {bad_pos} "
                             f"({problem}); gave up after scanning {RESYNC_LIMIT} bytes",
                             severity="error")
        return False
