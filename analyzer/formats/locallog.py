"""Streaming decoder of the ``local`` log driver's frames.

What: ``containers/<id>/local-logs/container.log`` (+ ``container.log.1.gz`` …;
defaults max-size 20 MiB, max-file 5, compress on) and the dual-logging
cache ``containers/<id>/container-cached.log`` (20.10+, same format) are a
sequence of frames without separators::

    [u32 BE n][n bytes protobuf LogEntry][u32 BE n]

``LogEntry`` (proto3): 1 ``source`` string, 2 ``time_nano`` int64 (plain
varint; negative = 10 bytes), 3 ``line`` bytes (no trailing newline),
4 ``partial`` bool, 5 ``partial_log_metadata`` {1 ``last`` bool, 2 ``id``
string, 3 ``ordinal`` int32}, 6 ``attrs`` repeated {1 ``key``, 2 ``value``}
(newer daemons). :func:`iter_locallog` yields the same
:class:`~analyzer.formats.jsonlog.LogRecord` objects as the json-file decoder.

Why hand-written protobuf: six fields, two tiny sub-messages, and the
``protobuf`` package would add a runtime dependency plus a ``.proto`` compile
step for ~60 lines of varint code; a hand decoder also lets us report *which*
byte is bad and keep going, which generated code does not.

Facts (moby/moby v20.10.24 and master ``b985e23``):

* Reader — ``daemon/logger/local/read.go`` ``decoder.Decode``: reads the
  4-byte size, refuses sizes above ``maxMsgLen`` = 1e6, reads ``n + 4`` bytes
  and unmarshals the first ``n`` — the **suffix is not checked** when reading
  forward (only ``getTailReader``, used for ``--tail N``, compares prefix and
  suffix and fails with "log message header and footer indicate different
  message sizes"). A short read at EOF is retried (``maxDecodeRetry``) and then
  is an error.
* Newline — the reader re-appends the ``\\n`` the copier stripped:
  master: ``if msg.PLogMetaData == nil || msg.PLogMetaData.Last``; v20.10.24
  (and everything before commit 990b0e28ba, first released in v23.0.0):
  only ``if msg.PLogMetaData == nil``, so the *last* fragment of a >16 KiB
  line gets **no** newline and ``docker logs`` glues the next line to it.
  ``PLogMetaData`` is set iff the ``partial`` field is true
  (``local.go`` ``protoToMessage``). Select the behaviour with
  ``daemon_version``.
* Time — ``protoToMessage``: master ``time.Unix(0, ns).UTC()``; before
  commit afe281964d (first in v25.0.0) ``time.Unix(0, ns)`` in the daemon's
  local zone, so ``docker logs --timestamps`` printed e.g. ``+01:00`` offsets.
  Pass ``display_tz`` (the daemon host's zone) with ``daemon_version < (25, 0)``
  to reproduce that; records then carry ``tz_offset``.
* Errors — v20.10.24 sends any decode error to the client as ``Error grabbing
  logs: …`` and stops; master logs it and skips the rest of that file. We
  report a :class:`~analyzer.formats.jsonlog.LogProblem` and resynchronise.
* Protobuf (gogo-generated ``entry.pb.go``): a known field with the wrong wire
  type is an error; unknown fields are skipped by wire type; a repeated
  sub-message field merges; a repeated scalar field — last wins.

Resynchronisation: after a damaged frame we scan forward (bounded memory)
for the next offset where ``prefix == suffix <= MAX_FRAME_BYTES`` and the
payload decodes to an entry with a non-empty ``source``; the bytes skipped
are reported once.

References:
    ``moby/moby:daemon/logger/local/{doc.go,local.go,read.go,config.go}``,
    ``moby/moby@v20.10.24:daemon/logger/local/{local.go,read.go}``,
    ``moby/moby:daemon/logger/internal/logdriver/entry.proto``,
    ``moby/moby@v20.10.24:api/types/plugins/logdriver/entry.proto`` (no field 6),
    ``moby/moby:daemon/logger/loggerutils/cache/local_cache.go``,
    ``/work/shared/docs/docker-root-format.md`` §8.2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import BinaryIO, Iterable, Iterator

from analyzer.formats.jsonlog import (
    PROBLEM_EXCERPT_BYTES,
    LogProblem,
    LogRecord,
    ProblemSink,
    iter_chunks,
)

__all__ = [
    "LocalEntry",
    "ProtoError",
    "decode_log_entry",
    "iter_locallog",
    "MAX_FRAME_BYTES",
    "NEWLINE_AFTER_LAST_PARTIAL_SINCE",
    "UTC_TIMESTAMPS_SINCE",
]

#: Largest payload accepted, = dockerd's ``maxMsgLen`` (read.go): the writer
#: never produces more (lines are cut at 16 KiB by the copier) and the reader
#: refuses more, so a bigger length is damage, never data.
MAX_FRAME_BYTES = 1_000_000

#: size of the big-endian length prefix and suffix
_LEN = 4

#: dockerd version (major, minor) from which the reader appends ``\\n`` after
#: the last fragment of a partial line (commit 990b0e28ba)
NEWLINE_AFTER_LAST_PARTIAL_SINCE = (23, 0)

#: dockerd version from which local-driver times are shown in UTC (commit afe281964d)
UTC_TIMESTAMPS_SINCE = (25, 0)

#: a varint has at most 10 bytes (64 bits / 7)
_MAX_VARINT_BYTES = 10

#: nesting limit when skipping (deprecated) protobuf groups
_MAX_GROUP_DEPTH = 32


class ProtoError(ValueError):
    """Internal: a LogEntry payload does not decode (reported as a problem, never raised out)."""


@dataclass(slots=True)
class LocalEntry:
    """A decoded ``LogEntry`` protobuf (field defaults as in proto3)."""

    source: str = ""
    time_nano: int = 0
    line: bytes = b""
    partial: bool = False
    has_meta: bool = False
    last: bool = False
    partial_id: str = ""
    ordinal: int = 0
    attrs: list[tuple[str, str]] = field(default_factory=list)


def _varint(b: bytes, i: int, end: int) -> tuple[int, int]:
    """Read an unsigned varint at ``b[i:end]``; return (value as uint64, next index)."""
    result = 0
    shift = 0
    for k in range(_MAX_VARINT_BYTES):
        if i >= end:
            raise ProtoError("truncated varint")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            if k == _MAX_VARINT_BYTES - 1 and c > 1:
                raise ProtoError("varint overflows 64 bits")
            return result, i
        shift += 7
    raise ProtoError("varint longer than 10 bytes")


def _int64(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


def _int32(u: int) -> int:
    # proto int32 is encoded sign-extended to 64 bits; Go truncates to 32
    u &= 0xFFFFFFFF
    return u - (1 << 32) if u >= 1 << 31 else u


def _len_delim(b: bytes, i: int, end: int) -> tuple[int, int]:
    n, i = _varint(b, i, end)
    if n > end - i:
        raise ProtoError("length-delimited field runs past its message")
    return i, i + n


def _skip(b: bytes, i: int, end: int, wire: int, field_no: int, depth: int = 0) -> int:
    """Skip one field value of ``wire`` type starting at ``i``; return the next index."""
    if wire == 0:
        return _varint(b, i, end)[1]
    if wire == 1:
        if end - i < 8:
            raise ProtoError("truncated fixed64")
        return i + 8
    if wire == 2:
        return _len_delim(b, i, end)[1]
    if wire == 5:
        if end - i < 4:
            raise ProtoError("truncated fixed32")
        return i + 4
    if wire == 3:  # start group: skip to the matching end group
        if depth >= _MAX_GROUP_DEPTH:
            raise ProtoError("groups nested too deep")
        while True:
            key, i = _varint(b, i, end)
            w, f = key & 7, key >> 3
            if w == 4:
                if f != field_no:
                    raise ProtoError("mismatched end group")
                return i
            i = _skip(b, i, end, w, f, depth + 1)
    raise ProtoError(f"illegal wire type {wire}")


def _decode_meta(b: bytes, i: int, end: int, e: LocalEntry) -> None:
    while i < end:
        key, i = _varint(b, i, end)
        f, w = key >> 3, key & 7
        if f == 0 or w == 4:
            raise ProtoError(f"illegal tag {key} in PartialLogEntryMetadata")
        if f == 1:
            if w != 0:
                raise ProtoError("wrong wire type for partial_log_metadata.last")
            v, i = _varint(b, i, end)
            e.last = v != 0
        elif f == 2:
            if w != 2:
                raise ProtoError("wrong wire type for partial_log_metadata.id")
            s, i = _len_delim(b, i, end)
            e.partial_id = b[s:i].decode("utf-8", "replace")
        elif f == 3:
            if w != 0:
                raise ProtoError("wrong wire type for partial_log_metadata.ordinal")
            v, i = _varint(b, i, end)
            e.ordinal = _int32(v)
        else:
            i = _skip(b, i, end, w, f)


def _decode_attr(b: bytes, i: int, end: int) -> tuple[str, str]:
    k = v = ""
    while i < end:
        key, i = _varint(b, i, end)
        f, w = key >> 3, key & 7
        if f == 0 or w == 4:
            raise ProtoError(f"illegal tag {key} in LogAttr")
        if f in (1, 2):
            if w != 2:
                raise ProtoError("wrong wire type for LogAttr field")
            s, i = _len_delim(b, i, end)
            text = b[s:i].decode("utf-8", "replace")
            if f == 1:
                k = text
            else:
                v = text
        else:
            i = _skip(b, i, end, w, f)
    return k, v


def decode_log_entry(payload: bytes) -> LocalEntry:
    """Decode one ``LogEntry`` protobuf payload (the bytes between prefix and suffix).

    Strings (``source``, ids, attrs) are decoded as UTF-8 with replacement;
    ``line`` stays raw bytes (the local driver, unlike json-file, is lossless).

    Raises:
        ProtoError: truncated or invalid wire data, or a known field with the
            wrong wire type (as gogo-protobuf's generated ``Unmarshal`` would).
    """
    b = bytes(payload)
    e = LocalEntry()
    i, end = 0, len(b)
    while i < end:
        key, i = _varint(b, i, end)
        f, w = key >> 3, key & 7
        if f == 0 or w == 4:
            raise ProtoError(f"illegal tag {key} (field {f}, wire type {w})")
        if f == 1:
            if w != 2:
                raise ProtoError("wrong wire type for source")
            s, i = _len_delim(b, i, end)
            e.source = b[s:i].decode("utf-8", "replace")
        elif f == 2:
            if w != 0:
                raise ProtoError("wrong wire type for time_nano")
            v, i = _varint(b, i, end)
            e.time_nano = _int64(v)
        elif f == 3:
            if w != 2:
                raise ProtoError("wrong wire type for line")
            s, i = _len_delim(b, i, end)
            e.line = b[s:i]
        elif f == 4:
            if w != 0:
                raise ProtoError("wrong wire type for partial")
            v, i = _varint(b, i, end)
            e.partial = v != 0
        elif f == 5:
            if w != 2:
                raise ProtoError("wrong wire type for partial_log_metadata")
            s, i = _len_delim(b, i, end)
            e.has_meta = True
            _decode_meta(b, s, i, e)
        elif f == 6:
            if w != 2:
                raise ProtoError("wrong wire type for attrs")
            s, i = _len_delim(b, i, end)
            e.attrs.append(_decode_attr(b, s, i))
        else:
            i = _skip(b, i, end, w, f)
    return e


def _tz_offset(ns: int, tz: tzinfo) -> int:
    try:
        dt = datetime.fromtimestamp(ns // 1_000_000_000, tz)
    except (OverflowError, OSError, ValueError):
        return 0
    off = dt.utcoffset()
    return int(off.total_seconds()) if off is not None else 0


class _Window:
    """A bounded read-ahead buffer over a chunk iterator, addressed by file offset."""

    #: drop consumed bytes once this many have accumulated
    COMPACT_AT = 1 << 20

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.data = bytearray()
        self.base = 0        # file offset of data[0]
        self.eof = False

    def have(self, off: int, n: int) -> bool:
        """Make ``[off, off+n)`` available if the stream has it; True if it does."""
        while self.base + len(self.data) < off + n and not self.eof:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.eof = True
            else:
                self.data += chunk
        return self.base + len(self.data) >= off + n

    def get(self, off: int, n: int) -> bytes:
        s = off - self.base
        return bytes(self.data[s:s + n])

    def u32(self, off: int) -> int:
        s = off - self.base
        return struct.unpack_from(">I", self.data, s)[0]

    def end(self) -> int:
        """File offset one past the last byte read so far."""
        return self.base + len(self.data)

    def release(self, off: int) -> None:
        """Forget bytes before ``off`` (they will not be needed again)."""
        drop = off - self.base
        if drop >= self.COMPACT_AT:
            del self.data[:drop]
            self.base = off

    def find_candidate(self, off: int) -> int:
        """Offset >= ``off`` of the next byte pair ``00 0x`` (how a length <= 1e6 starts), or -1."""
        while True:
            s = off - self.base
            j = self.data.find(b"\x00", s)
            while j >= 0 and j + 1 < len(self.data):
                if self.data[j + 1] <= 0x0F:
                    return self.base + j
                j = self.data.find(b"\x00", j + 1)
            # nothing usable buffered from ``off`` (or a 00 at the very end): read more
            off = self.base + (j if j >= 0 else len(self.data))
            if not self.have(self.end(), 1):
                return -1
            self.release(off)


def iter_locallog(stream: BinaryIO | Iterable[bytes], source: str,
                  on_problem: ProblemSink | None = None, *,
                  daemon_version: tuple[int, int] | None = None,
                  display_tz: tzinfo | None = None) -> Iterator[LogRecord]:
    """Decode ``local``-driver frames into :class:`~analyzer.formats.jsonlog.LogRecord` objects.

    Args:
        stream: binary file object or iterable of byte chunks (already decompressed).
        source: file name stored in every record and problem.
        on_problem: receives a :class:`~analyzer.formats.jsonlog.LogProblem` for
            each damaged region (oversized length, truncated frame, prefix ≠
            suffix, bad protobuf). Decoding goes on after resynchronising.
        daemon_version: (major, minor) of the dockerd whose ``docker logs`` output
            ``line`` should match; ``None`` = current behaviour. Before
            :data:`NEWLINE_AFTER_LAST_PARTIAL_SINCE` the last fragment of a
            partial line gets no ``\\n``.
        display_tz: the daemon host's time zone; used only when
            ``daemon_version`` is before :data:`UTC_TIMESTAMPS_SINCE`, to set each
            record's ``tz_offset`` like old daemons printed it.

    Frames whose suffix differs from the prefix but whose payload decodes are
    still yielded (dockerd reads them the same way) and reported.
    """
    legacy_newline = daemon_version is not None and tuple(daemon_version) < NEWLINE_AFTER_LAST_PARTIAL_SINCE
    local_tz = display_tz if (display_tz is not None and daemon_version is not None
                              and tuple(daemon_version) < UTC_TIMESTAMPS_SINCE) else None
    win = _Window(iter_chunks(stream))
    frame_no = 0

    def report(off: int, msg: str, excerpt: bytes | None = None) -> None:
        if on_problem is not None:
            if excerpt is None:
                excerpt = win.get(off, PROBLEM_EXCERPT_BYTES) if off >= win.base else b""
            on_problem(LogProblem(source, frame_no, off, msg, excerpt))

    def to_record(e: LocalEntry, off: int) -> LogRecord:
        is_partial = e.partial
        last = e.last if is_partial else None
        newline = (not is_partial) if legacy_newline else (not is_partial or bool(last))
        return LogRecord(
            stream=e.source,
            time_ns=e.time_nano,
            line=e.line + b"\n" if newline else e.line,
            partial=is_partial and not last,
            attrs=dict(e.attrs) if e.attrs else None,
            source=source,
            line_no=frame_no,
            offset=off,
            tz_offset=_tz_offset(e.time_nano, local_tz) if local_tz is not None else 0,
            partial_id=e.partial_id if is_partial else None,
            partial_ordinal=e.ordinal if is_partial else None,
            partial_last=last,
        )

    def try_frame(off: int, strict: bool) -> tuple[LocalEntry | None, int, str]:
        """Decode the frame at ``off``: (entry or None, its total size, problem text or '')."""
        if not win.have(off, _LEN):
            return None, 0, "truncated length prefix"
        n = win.u32(off)
        if n > MAX_FRAME_BYTES:
            return None, 0, f"frame length {n} exceeds {MAX_FRAME_BYTES}"
        if not win.have(off, n + 2 * _LEN):
            return None, 0, f"truncated frame: {win.end() - off} of {n + 2 * _LEN} bytes present"
        suffix = win.u32(off + _LEN + n)
        if strict and suffix != n:
            return None, 0, "suffix differs"
        try:
            entry = decode_log_entry(win.get(off + _LEN, n))
        except ProtoError as exc:
            return None, n + 2 * _LEN, f"bad LogEntry protobuf: {exc}" + ("" if suffix == n else
                                                                        f"; suffix {suffix} != prefix {n}")
        if suffix != n:
            return entry, n + 2 * _LEN, f"frame suffix {suffix} != prefix {n}"
        return entry, n + 2 * _LEN, ""

    def resync(after: int) -> int:
        """Offset of the next plausible frame after ``after``, or -1."""
        pos = after + 1
        while True:
            cand = win.find_candidate(pos)
            if cand < 0:
                return -1
            entry, size, problem = try_frame(cand, strict=True)
            if entry is not None and not problem and size > 2 * _LEN and entry.source:
                return cand
            pos = cand + 1

    off = 0
    while win.have(off, 1):
        win.release(off)
        frame_no += 1
        entry, size, problem = try_frame(off, strict=False)
        if entry is not None:
            if problem:
                report(off, problem)
            yield to_record(entry, off)
            off += size
            continue
        if size and problem.startswith("bad LogEntry") and "suffix" not in problem:
            # framing is intact (prefix == suffix), only the payload is bad: skip this frame
            report(off, problem)
            off += size
            continue
        excerpt = win.get(off, PROBLEM_EXCERPT_BYTES)
        nxt = resync(off)
        if nxt < 0:
            report(off, f"{problem}; no further valid frame, {win.end() - off} bytes skipped", excerpt)
            return
        report(off, f"{problem}; resynchronised after skipping {nxt - off} bytes", excerpt)
        off = nxt
