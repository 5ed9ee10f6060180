"""Streaming decoder of the ``json-file`` log driver's files.

What: ``containers/<id>/<id>-json.log`` and its rotations ``.1`` … ``.N``
(``.N.gz`` when ``compress=true``; gunzip them with
:mod:`analyzer.formats.logfiles` first) hold one JSON object per line::

    {"log":"hello\\n","stream":"stdout","attrs":{"tag":"web"},"time":"2024-01-02T03:04:05.123456789Z"}

:func:`iter_jsonlog` turns such a byte stream into :class:`LogRecord` objects
whose ``line`` is exactly the bytes ``docker logs`` prints for the record.
:class:`LogRecord` and :class:`LogProblem` are shared with the ``local``
driver decoder (:mod:`analyzer.formats.locallog`).

Why a hand-rolled reader around :mod:`json`: the files can be gigabytes, a
live-host tar can cut the last line in half, and tampered or damaged lines
must be reported and skipped, never end the read. Memory stays bounded by
:data:`MAX_LINE_BYTES` plus one read chunk.

Facts this module relies on (checked in moby/moby at v20.10.24 and master
``b985e23``, 2026-08):

* Writer — ``daemon/logger/jsonfilelog/jsonfilelog.go`` ``marshalMessage``:
  the driver appends ``\\n`` to the line unless the message is a partial
  fragment that is not the last (``PLogMetaData != nil && !Last``); the
  copier (``daemon/logger/copier.go``) cuts lines at its 16 KiB buffer, so a
  record without trailing ``\\n`` is a fragment and the next record of the
  same stream continues it. All fragments of one line carry the timestamp
  of the first fragment (``partialTS``). ``jsonlog/jsonlogbytes.go``
  ``MarshalJSONBuf`` writes keys ``log``, ``stream``, ``attrs`` (each only if
  non-empty) then ``time``; escapes ``<``, ``>``, ``&``, control bytes as
  ``\\u00XX`` (``\\n``, ``\\r``, ``\\"``, ``\\\\`` short), U+2028/U+2029 as
  ``\\u202X``, and every invalid UTF-8 byte as ``\\ufffd`` — so binary output
  is lossy in json-file. ``time`` is ``t.Format(RFC3339Nano)`` (UTC, trailing
  zeros trimmed; ``jsonlog/time_marshalling.go``).
* Reader — ``daemon/logger/jsonfilelog/read.go``: a Go ``json.Decoder`` over
  the file (a *stream* of JSON values: whitespace between values, not
  newlines, separates them — two objects on one line are two records), into
  ``jsonlog.JSONLog{Log string; Stream string; Created time.Time "time";
  Attrs map[string]string}``; ``Line = []byte(l.Log)``. So:

  - ``line`` is the UTF-8 encoding of the decoded ``log`` string, its ``\\n``
    included (the reader adds nothing);
  - Go's decoder replaces each invalid UTF-8 byte inside a JSON string by
    U+FFFD and an unpaired ``\\uD8xx`` surrogate escape by U+FFFD; this
    module does the same (Python would keep lone surrogates / fail);
  - Go matches object keys to struct fields case-insensitively (exact match
    preferred), ignores unknown keys, the last duplicate wins; ``null`` leaves
    a field unset; a missing ``time`` is the Go zero time
    ``0001-01-01T00:00:00Z``; a missing ``stream`` is ``""`` and such a record is
    never printed (see :mod:`analyzer.render.logs`);
  - a ``log`` of the wrong JSON type, or an unparsable ``time``, is a decode
    error for the whole record.

* Errors — v20.10.24 ``read.go`` retries up to ``maxJSONDecodeRetry`` (20000)
  times on a ``json.SyntaxError`` by starting a *new* decoder on the file,
  discarding whatever the old one had buffered (so output after a corrupt
  line depends on buffer boundaries), and ends the whole ``docker logs``
  stream with ``Error grabbing logs: …`` on any other error; master
  (``loggerutils/logfile.go`` ``tailFiles``) logs a warning and skips the
  rest of that file. Neither is reproducible offline: we report the bad line
  as a :class:`LogProblem` and go on with the next line.

References:
    ``moby/moby:daemon/logger/jsonfilelog/{jsonfilelog.go,read.go}``,
    ``moby/moby:daemon/logger/jsonfilelog/jsonlog/{jsonlog.go,jsonlogbytes.go,time_marshalling.go}``,
    ``moby/moby@v20.10.24:daemon/logger/jsonfilelog/read.go`` (decode retries),
    ``moby/moby:daemon/logger/copier.go`` (16 KiB fragments, shared timestamp),
    Go ``encoding/json/decode.go`` (``unquote``: U+FFFD replacement; field folding),
    ``/work/shared/docs/docker-root-format.md`` §8.1.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator

from analyzer.errors import FormatError
from analyzer.formats.timefmt import GO_ZERO_TIME_NS, parse_rfc3339nano_tz

if TYPE_CHECKING:  # pragma: no cover
    from analyzer.issues import IssueLog

__all__ = [
    "LogRecord",
    "LogProblem",
    "ProblemSink",
    "issue_sink",
    "iter_chunks",
    "iter_jsonlog",
    "go_decode_utf8",
    "MAX_LINE_BYTES",
    "READ_CHUNK_BYTES",
]

#: Longest json-file line we buffer. A genuine line holds at most 16 KiB of
#: raw output (the copier's buffer), which escaping can grow ×6 (``\\u00XX``)
#: to ~96 KiB, plus ``attrs`` (tag, labels, env chosen with ``--log-opt``) and
#: ~60 bytes of keys and time. 4 MiB leaves ample room for odd but honest
#: files while bounding memory against a corrupt file with no newline at all.
MAX_LINE_BYTES = 4 * 1024 * 1024

#: bytes asked of a file object per read
READ_CHUNK_BYTES = 64 * 1024

#: at most this many bytes of a bad line are kept in a :class:`LogProblem`
PROBLEM_EXCERPT_BYTES = 200


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log message as ``docker logs`` sees it (json-file line or local frame).

    Attributes:
        stream: ``"stdout"`` or ``"stderr"`` (anything else — e.g. ``""`` from a
            record without ``stream`` — is kept, but ``docker logs`` never prints it).
        time_ns: ns since the Unix epoch (UTC); :data:`~analyzer.formats.timefmt.GO_ZERO_TIME_NS`
            when the record had no time.
        line: the bytes ``docker logs`` writes for this record (no timestamp
            prefix): json-file: UTF-8 of ``log`` incl. its ``\\n``; local: the raw
            ``line`` plus the ``\\n`` the reader re-appends (see :mod:`locallog`).
        partial: the record is a fragment of a longer line and does not end it
            (json-file: no trailing ``\\n``; local: ``partial`` and not ``last``).
        attrs: extra attributes (``tag``, labels, env) or ``None``.
        source: name of the file the record came from.
        line_no: 1-based line number (json-file) or frame number (local) in ``source``.
        offset: byte offset of the line / frame in the (decompressed) file.
        tz_offset: zone offset, in seconds east of UTC, that dockerd prints for
            this time with ``--timestamps`` (json-file keeps the offset written
            in ``time``; always 0 for what Docker itself writes).
        partial_id, partial_ordinal, partial_last: the local driver's
            ``PartialLogEntryMetadata`` (``None`` for json-file and whole lines).
    """

    stream: str
    time_ns: int
    line: bytes
    partial: bool = False
    attrs: dict[str, str] | None = None
    source: str = ""
    line_no: int = 0
    offset: int = 0
    tz_offset: int = 0
    partial_id: str | None = None
    partial_ordinal: int | None = None
    partial_last: bool | None = None


@dataclass(frozen=True, slots=True)
class LogProblem:
    """A piece of a log file that could not be decoded (reported, not raised).

    Attributes:
        source: file name given to the decoder.
        line_no: 1-based line (json-file) or frame number (local); 0 when unknown.
        offset: byte offset in the (decompressed) file where the problem starts.
        message: one human line.
        excerpt: up to :data:`PROBLEM_EXCERPT_BYTES` of the offending bytes.
    """

    source: str
    line_no: int
    offset: int
    message: str
    excerpt: bytes = b""

    def __str__(self) -> str:
        return f"{self.source}:{self.line_no} (offset {self.offset}): {self.message}"


#: callback receiving each problem; ``list.append`` works
ProblemSink = Callable[[LogProblem], None]


def issue_sink(issues: "IssueLog", path_prefix: str = "") -> ProblemSink:
    """Adapt an :class:`analyzer.issues.IssueLog` to a :data:`ProblemSink` (code ``log.malformed``)."""

    def sink(p: LogProblem) -> None:
        issues.add("log.malformed", f"{p.message} (line/frame {p.line_no}, offset {p.offset})",
                   path=path_prefix + p.source, detail=repr(p.excerpt))

    return sink


def iter_chunks(data: BinaryIO | Iterable[bytes], chunk_size: int = READ_CHUNK_BYTES) -> Iterator[bytes]:
    """Yield the bytes of a binary file object (read in chunks) or of an iterable of chunks."""
    read = getattr(data, "read", None)
    if read is not None:
        while True:
            chunk = read(chunk_size)
            if not chunk:
                return
            yield bytes(chunk)
    else:
        for chunk in data:  # type: ignore[union-attr]
            if chunk:
                yield bytes(chunk)


# --- Go-compatible text decoding -------------------------------------------------

_GO_REPLACE = "analyzer.go_replace"


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune reports (RuneError, 1) for every invalid byte, so
    # each bad byte becomes one U+FFFD and decoding resumes at the next byte.
    # Python's "replace" would swallow a whole truncated sequence at once.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error(_GO_REPLACE, _go_replace)

_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def go_decode_utf8(b: bytes) -> str:
    """Decode bytes as Go does for JSON strings: each invalid UTF-8 byte → U+FFFD."""
    return b.decode("utf-8", _GO_REPLACE)


def _go_string(s: str) -> str:
    # Python's json keeps unpaired \\uD8xx escapes as lone surrogates; Go's
    # unquote turns each into U+FFFD (a valid pair is combined by both).
    return _LONE_SURROGATE_RE.sub("\ufffd", s) if _LONE_SURROGATE_RE.search(s) else s


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Pairs(list):  # type: ignore[type-arg]
    """A decoded JSON object as its ordered (key, value) pairs (keeps duplicates)."""


_DECODER = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_reject_constant)
_GO_WS = " \t\r\n"
_FIELDS = ("log", "stream", "time", "attrs")


class _BadRecord(Exception):
    """Internal: one JSON value is not a usable log record."""


def _record_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Map object keys to JSONLog fields like Go: exact name, else case-insensitive; last wins."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        name = key if key in _FIELDS else key.casefold()
        if name not in _FIELDS:
            continue  # unknown keys are ignored by Go
        if value is None:
            continue  # JSON null leaves a Go field unchanged
        if name == "attrs":
            if not isinstance(value, _Pairs):
                raise _BadRecord(f"attrs is a {type(value).__name__}, not an object")
            attrs = out.setdefault("attrs", {})  # Go merges into the existing map
            for ak, av in value:
                if av is None:
                    continue
                if not isinstance(av, str):
                    raise _BadRecord(f"attrs[{ak!r}] is not a string")
                attrs[_go_string(ak)] = _go_string(av)
        else:
            if not isinstance(value, str):
                raise _BadRecord(f"{name} is a {type(value).__name__}, not a string")
            out[name] = _go_string(value)
    return out


def _make_record(value: Any, source: str, line_no: int, offset: int) -> LogRecord | None:
    if value is None:
        return None  # Go decodes `null` into an empty message, never printed
    if not isinstance(value, _Pairs):
        raise _BadRecord(f"JSON {type(value).__name__} is not a log object")
    f = _record_fields(value)
    time_ns, tz = GO_ZERO_TIME_NS, 0
    if "time" in f:
        try:
            time_ns, tz = parse_rfc3339nano_tz(f["time"])
        except FormatError as exc:
            raise _BadRecord(f"bad time: {exc}") from None
    line = f.get("log", "").encode("utf-8")
    return LogRecord(
        stream=f.get("stream", ""),
        time_ns=time_ns,
        line=line,
        partial=bool(line) and not line.endswith(b"\n"),
        attrs=f.get("attrs") or None,
        source=source,
        line_no=line_no,
        offset=offset,
        tz_offset=tz,
    )


def _decode_line(raw: bytes, source: str, line_no: int, offset: int,
                 report: Callable[[int, int, str, bytes], None]) -> Iterator[LogRecord]:
    """Decode every JSON value on one line (Go's decoder reads a stream of values)."""
    text = go_decode_utf8(raw)
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _GO_WS:
            pos += 1
        if pos >= end:
            return
        try:
            value, nxt = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            report(line_no, offset, f"malformed JSON: {exc}", raw)
            return  # the rest of the line cannot be trusted
        try:
            rec = _make_record(value, source, line_no, offset)
        except _BadRecord as exc:
            report(line_no, offset, f"not a usable log record: {exc}", raw)
        else:
            if rec is not None:
                yield rec
        pos = nxt


def iter_jsonlog(stream: BinaryIO | Iterable[bytes], source: str,
                 on_problem: ProblemSink | None = None) -> Iterator[LogRecord]:
    """Decode a json-file log stream into :class:`LogRecord` objects, in file order.

    Args:
        stream: a binary file object (read in :data:`READ_CHUNK_BYTES` chunks) or
            an iterable of byte chunks (e.g. a decompressing generator). Already
            decompressed: see :func:`analyzer.formats.logfiles.iter_log_file`.
        source: file name stored in every record and problem.
        on_problem: called with a :class:`LogProblem` for each bad line (bad
            JSON, wrong field types, bad time, over-long line, half-written last
            line). Decoding always goes on with the next line.

    Never raises on bad data; only errors of ``stream`` itself propagate.
    Blank lines are skipped silently (Go's decoder skips whitespace too).
    """

    def report(line_no: int, offset: int, message: str, raw: bytes) -> None:
        if on_problem is not None:
            on_problem(LogProblem(source, line_no, offset, message, bytes(raw[:PROBLEM_EXCERPT_BYTES])))

    buf = bytearray()
    buf_offset = 0          # file offset of buf[0]
    line_no = 0
    skipping = False        # inside an over-long line, dropping bytes until its '\n'
    for chunk in iter_chunks(stream):
        buf += chunk
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if skipping:
                skipping = False  # the over-long line was already counted and reported
            else:
                line_no += 1
                yield from _decode_line(bytes(buf[start:nl]), source, line_no, buf_offset + start, report)
            start = nl + 1
        if start:
            del buf[:start]
            buf_offset += start
        if len(buf) > MAX_LINE_BYTES:
            if not skipping:
                line_no += 1
                report(line_no, buf_offset, f"line longer than {MAX_LINE_BYTES} bytes; skipped", buf)
                skipping = True
            buf_offset += len(buf)
            buf.clear()
    if buf and not skipping:
        line_no += 1
        raw = bytes(buf)
        problems: list[tuple[int, int, str, bytes]] = []
        recs = list(_decode_line(raw, source, line_no, buf_offset,
                                 lambda *a: problems.append(a)))
        if problems:
            report(line_no, buf_offset,
                   f"last line has no newline and does not decode (half-written?): {problems[0][2]}", raw)
        yield from recs
