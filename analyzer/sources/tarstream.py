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
skipped as opaque payload) and reports damage as issues:

* ``archive.truncated``: the stream ends inside a header or payload;
* ``archive.corrupt``: a header fails its checksum; the reader scans forward
  block by block (up to :data:`RESYNC_LIMIT`) for the next valid header;
* ``path.escape``: absolute or ``..`` member paths are reported and skipped.

The evidence bytes (before decompression) are hashed with sha256 as they are
read; trailing bytes after the end of the archive are hashed too.

References: POSIX.1-2001 pax format; GNU tar manual "Tar Archive Format";
``shared/docs/docker-root-format.md`` §4.9 (whiteouts and xattrs in tars).
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.parse
from typing import BinaryIO, Iterator

from analyzer.errors import NotASnapshot
from analyzer.sources.base import EvidenceInfo, Progress, clean_path
from analyzer.sources.compression import decompression_errors, open_decompressed, sniff
from analyzer.sources.member import (BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, OTHER,
                                     SYMLINK, Member)

BLOCKSIZE = 512
#: decompressed bytes fetched per read; large reads keep per-member cost low
READ_CHUNK = 1 << 20
#: extension headers (pax, GNU long names) larger than this are hostile; skip them
MAX_EXT_HEADER = 1 << 20
#: how far (bytes) we scan for the next valid header after a corrupt one
RESYNC_LIMIT = 1 << 30

_KINDS = {
    b"0": FILE, b"\x00": FILE, b"7": FILE, b"1": HARDLINK, b"2": SYMLINK, b"3": CHAR,
    b"4": BLOCK, b"5": DIR, b"6": FIFO,
}


class _HashingReader:
    """File wrapper that sha256-hashes and counts every byte read through it."""

    def __init__(self, raw: BinaryIO, progress: Progress | None) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.count = 0
        self.progress = progress
        self.members = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.count += len(data)
        if self.progress is not None:
            self.progress(self.count, self.members)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # used by some decompressors
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) whatever is left of the evidence file."""
        while self.read(READ_CHUNK):
            pass


class _Blocks:
    """Buffered forward-only reader over the decompressed tar stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buf = b""
        self.off = 0
        self.pos = 0  # absolute offset in the decompressed stream
        self.eof = False

    def _fill(self, n: int) -> None:
        while len(self.buf) - self.off < n and not self.eof:
            chunk = self.stream.read(max(READ_CHUNK, n))
            if not chunk:
                self.eof = True
                break
            self.buf = self.buf[self.off:] + chunk
            self.off = 0

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        if len(self.buf) - self.off < n:
            self._fill(n)
        data = self.buf[self.off:self.off + n]
        self.off += len(data)
        self.pos += len(data)
        return data

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
        self.remaining = size
        self.short = False  # set when the archive ended inside this payload

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.remaining:
            n = self.remaining
        data = self._blocks.read(n)
        self.remaining -= len(data)
        if len(data) < n:
            self.short = True
            self.remaining = 0
        return data

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        if self.remaining:
            if self._blocks.skip(self.remaining) < self.remaining:
                self.short = True
            self.remaining = 0


def _num(field: bytes) -> int:
    """Decode a tar numeric field (octal text or GNU base-256)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
        if field[0] & 0x40:  # negative base-256
            value -= 1 << (8 * len(field) - 1)
        return value
    text = field.split(b"\x00", 1)[0].strip()
    return int(text, 8) if text else 0


def _checksum_ok(block: bytes) -> bool:
    try:
        stored = _num(block[148:156])
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 256 + sum(block[156:])
    if stored == unsigned:
        return True
    signed = sum((b - 256 if b > 127 else b) for b in block[:148] + block[156:]) + 256
    return stored == signed


def _cstr(field: bytes) -> bytes:
    return field.split(b"\x00", 1)[0]


def _decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _pax_time(value: bytes) -> int:
    """pax time ``seconds[.fraction]`` → ns."""
    text = value.decode("ascii", "replace").strip()
    neg = text.startswith("-")
    sec, _, frac = text.lstrip("-").partition(".")
    ns = int(sec or 0) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    return -ns if neg else ns


def _parse_pax(data: bytes) -> dict[str, bytes]:
    """Parse pax extended header records (``"%d %s=%s\\n"``); values stay bytes."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0 or pos + length > len(data):
            break
        record = data[space + 1:pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value
        pos += length
    return out


class TarSource:
    """A tar evidence file (plain or compressed), read once."""

    def __init__(self, path: str, progress: Progress | None = None) -> None:
        self.path = path
        self.progress = progress
        size = os.path.getsize(path)
        self.info = EvidenceInfo(path=os.path.abspath(path), kind="tar", size=size)

    def __iter__(self) -> Iterator[tuple[Member, Payload | None]]:
        with open(self.path, "rb") as raw:  # read-only; the evidence is never written
            head = raw.read(BLOCKSIZE)
            raw.seek(0)
            fmt = sniff(head)
            self.info.compression = "none" if fmt == "tar" else fmt
            hashing = _HashingReader(raw, self.progress)
            stream = open_decompressed(hashing, fmt)  # type: ignore[arg-type]
            try:
                yield from self._members(_Blocks(stream), hashing)
            finally:
                hashing.drain()
                self.info.sha256 = hashing.sha.hexdigest()
                if self.progress is not None:
                    self.progress(hashing.count, self.info.members)

    # -- the member loop -------------------------------------------------------------
    def _members(self, blocks: _Blocks, hashing: _HashingReader
                 ) -> Iterator[tuple[Member, Payload | None]]:
        issues = self.info.issues
        damaged = decompression_errors()
        pax_global: dict[str, bytes] = {}
        pending: dict[str, bytes] = {}  # pax / GNU long-name state for the next header
        seen_any = False
        try:
            while True:
                header_pos = blocks.pos
                block = blocks.read(BLOCKSIZE)
                if len(block) < BLOCKSIZE:
                    if block or seen_any is False:
                        self._truncated(f"the archive ends inside a header at byte {header_pos}")
                    else:
                        self._truncated(f"the archive ends at byte {header_pos} without its "
                                        "end-of-archive marker")
                    return
                if block == b"\x00" * BLOCKSIZE:
                    return  # end-of-archive marker (a second zero block may follow)
                if not _checksum_ok(block):
                    if not seen_any and header_pos == 0:
                        raise NotASnapshot("the decompressed data is not a tar archive")
                    if not self._resync(blocks, header_pos):
                        return
                    continue
                seen_any = True
                typeflag = block[156:157]
                size = _num(block[124:136])
                if size < 0:
                    issues.add("archive.corrupt", f"negative member size at byte {header_pos}",
                               severity="error")
                    self.info.complete = False
                    return
                padded = (size + BLOCKSIZE - 1) // BLOCKSIZE * BLOCKSIZE
                if typeflag in (b"x", b"g", b"L", b"K"):
                    if size > MAX_EXT_HEADER:
                        issues.add("archive.corrupt",
                                   f"oversized extension header ({size} bytes) skipped at byte "
                                   f"{header_pos}", severity="warning")
                        blocks.skip(padded)
                        continue
                    data = blocks.read(padded)[:size]
                    if len(data) < size:
                        self._truncated("the archive ends inside an extension header")
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
                member = self._member(block, typeflag, size, records)
                self.info.members += 1
                hashing.members = self.info.members
                stored = size
                if typeflag == b"S" or "GNU.sparse.realsize" in records or \
                        "GNU.sparse.size" in records:
                    stored = self._sparse_stored(block, blocks, size)
                    padded = (stored + BLOCKSIZE - 1) // BLOCKSIZE * BLOCKSIZE
                elif member.kind != FILE:
                    stored = size  # some archivers give links/dirs a size; skip it
                if member.path is None:  # type: ignore[comparison-overlap]
                    blocks.skip(padded)
                    continue
                payload = Payload(blocks, stored) if member.kind == FILE and stored else None
                if member.kind != FILE or payload is None:
                    if blocks.skip(padded) < padded:
                        yield member, None
                        self._truncated(f"the archive ends inside {member.path}")
                        return
                    yield member, None
                    continue
                yield member, payload
                payload._finish()
                pad = padded - stored
                if payload.short or blocks.skip(pad) < pad:
                    self._truncated(f"the archive ends inside the content of {member.path}")
                    return
        except damaged as exc:  # the compressed stream is damaged or cut short
            text = str(exc) or type(exc).__name__
            code = "archive.truncated" if isinstance(exc, EOFError) or "end" in text.lower() \
                else "archive.corrupt"
            issues.add(code, f"the compressed stream could not be read to the end ({text}); "
                       f"{self.info.members} members were read", severity="error",
                       detail=type(exc).__name__)
            self.info.complete = False

    def _member(self, block: bytes, typeflag: bytes, size: int,
                records: dict[str, bytes]) -> Member:
        name = _cstr(block[0:100])
        if block[257:263] == b"ustar\x00":  # POSIX ustar: prefix field
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        raw_path = records.get("path", name)
        raw_link = records.get("linkpath", _cstr(block[157:257]))
        kind = _KINDS.get(typeflag, FILE if typeflag == b"S" else OTHER)
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
        if any(0xDC80 <= ord(ch) <= 0xDCFF for ch in path):
            self.info.issues.add("path.nonutf8", f"member path {path!r} is not UTF-8",
                                 path=path, severity="info")
        link = _decode_name(raw_link)
        if kind == HARDLINK:
            link = clean_path(link) or link
        member = Member(
            path=cleaned,  # type: ignore[arg-type]
            kind=kind,
            size=int(records["size"]) if "size" in records else (size if kind == FILE else 0),
            mode=_num(block[100:108]) & 0o7777,
            uid=int(records["uid"]) if "uid" in records else _num(block[108:116]),
            gid=int(records["gid"]) if "gid" in records else _num(block[116:124]),
            mtime=mtime, atime=atime, ctime=ctime,
            linkname=link if kind in (SYMLINK, HARDLINK) else "",
            devmajor=_num(block[329:337]) if kind in (CHAR, BLOCK) else 0,
            devminor=_num(block[337:345]) if kind in (CHAR, BLOCK) else 0,
            xattrs=xattrs,
        )
        if "GNU.sparse.realsize" in records:
            member.size = int(records["GNU.sparse.realsize"])
        elif "GNU.sparse.size" in records:
            member.size = int(records["GNU.sparse.size"])
        elif typeflag == b"S":
            member.size = _num(block[483:495]) or size
        return member

    def _sparse_stored(self, block: bytes, blocks: _Blocks, size: int) -> int:
        """Bytes stored for a GNU sparse member (after its extension blocks)."""
        if block[156:157] == b"S" and block[482]:  # old GNU: extended sparse headers
            while True:
                ext = blocks.read(BLOCKSIZE)
                if len(ext) < BLOCKSIZE or not ext[504]:
                    break
        return size

    def _truncated(self, message: str) -> None:
        self.info.issues.add("archive.truncated", message, severity="error")
        self.info.complete = False

    def _resync(self, blocks: _Blocks, bad_pos: int) -> bool:
        """Scan forward for the next valid header; ``False`` at end of stream."""
        self.info.complete = False
        scanned = 0
        while scanned < RESYNC_LIMIT:
            start = blocks.pos
            block = blocks.read(BLOCKSIZE)
            if len(block) < BLOCKSIZE:
                self.info.issues.add("archive.corrupt", f"invalid tar header at byte {bad_pos}; "
                                     "no valid header follows", severity="error")
                return False
            scanned += BLOCKSIZE
            if block != b"\x00" * BLOCKSIZE and _checksum_ok(block):
                self.info.issues.add("archive.corrupt", f"invalid tar header at byte {bad_pos}; "
                                     f"skipped {start - bad_pos} bytes to the next valid header",
                                     severity="error")
                # un-read the header: read() leaves it at buf[off-512:off]
                blocks.off -= BLOCKSIZE
                blocks.pos -= BLOCKSIZE
                return True
        self.info.issues.add("archive.corrupt", f"invalid tar header at byte {bad_pos}; gave up "
                             f"after scanning {RESYNC_LIMIT} bytes", severity="error")
        return False
