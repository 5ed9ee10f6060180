"""A container's log files: which ones ``docker logs`` reads, in which order, gunzipped.

What: given the member names of one container's log family —
``containers/<id>/<id>-json.log`` (json-file), ``containers/<id>/local-logs/container.log``
(local), ``containers/<id>/container-cached.log`` (dual-logging cache) plus
their rotations ``X.1`` … ``X.N`` or ``X.1.gz`` … — :func:`order_log_files`
returns them oldest first, as dockerd reads them; :func:`iter_log_file`
streams one file's decompressed bytes (gzip handled transparently, its FEXTRA
``lastTime`` captured); :func:`iter_log_records` chains both into
:class:`~analyzer.formats.jsonlog.LogRecord` objects.

Facts (moby/moby ``daemon/logger/loggerutils/logfile.go``, v20.10.24 and master):

* Rotation (``rotate``): on rotate ``X.(i-1)[.gz]`` → ``X.i[.gz]`` for
  i = max-file−1 … 2, ``X.(max-file−1)`` is deleted first, then ``X`` →
  ``X.1``; with ``compress`` ``X.1`` is gzip'd in the background to ``X.1.gz``
  (``compressFile``), which deletes ``X.1`` only once the ``.gz`` is complete.
  The gzip header's Extra field is raw JSON ``{"lastTime":"<RFC3339Nano>"}``
  (``rotateFileMetadata``), the time of the last entry in the file.
* Reading (``openRotatedFiles`` / ``openRotatedFile``): for
  i = max-file−1 down to 1, open ``X.i``; if absent open ``X.i.gz``; if both
  absent skip. So an uncompressed ``X.i`` *wins over* ``X.i.gz`` (a
  half-written ``.gz`` beside its source is ignored), and files numbered
  ≥ max-file (left over from a larger earlier setting) are **not** read.
  The current file ``X`` comes last (only if non-empty). v20.10.24 also
  skips a ``.gz`` whose ``lastTime`` is before ``--since`` and stops looking
  at older ones; master skips just that file.
* v20.10.24 decompresses ``X.i.gz`` to a temporary ``X.i.gz.tmp``
  (``tmpLogfileSuffix``) next to it while reading; such leftovers are
  recognised here and never read as logs.
* max-file defaults: json-file 1 (no rotation unless ``max-size``); local 5
  (``local/config.go``). Pass ``max_file`` from ``hostconfig.json``
  ``LogConfig.Config["max-file"]`` to reproduce dockerd exactly; without it every
  numbered file present is read.

References:
    ``moby/moby:daemon/logger/loggerutils/logfile.go`` (rotate, compressFile,
    openRotatedFiles, openRotatedFile, compressedFileOpener),
    ``moby/moby@v20.10.24:daemon/logger/loggerutils/logfile.go`` (decompressfile,
    tmpLogfileSuffix), ``moby/moby:daemon/logger/jsonfilelog/jsonfilelog.go`` (New:
    max-file default 1), ``moby/moby:daemon/logger/local/{local.go,config.go}``,
    RFC 1952 §2.3 (gzip header), ``/work/shared/docs/docker-root-format.md`` §8.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from analyzer.errors import FormatError
from analyzer.formats.jsonlog import (
    LogProblem,
    LogRecord,
    ProblemSink,
    iter_chunks,
    iter_jsonlog,
)
from analyzer.formats.locallog import iter_locallog
from analyzer.formats.timefmt import parse_rfc3339nano

__all__ = [
    "LogFileName",
    "GzipInfo",
    "parse_log_name",
    "order_log_files",
    "container_read_order",
    "max_file_of",
    "driver_of",
    "parse_gzip_header",
    "iter_log_file",
    "iter_log_records",
    "JSON_FILE",
    "LOCAL",
]

JSON_FILE = "json-file"
LOCAL = "local"

#: decompressed bytes produced per zlib call (bounds memory on gzip bombs)
GUNZIP_OUT_BYTES = 256 * 1024

#: the gzip header plus Extra field is at most 10 + 2 + 65535 bytes
_MAX_GZIP_HEADER = 10 + 2 + 0xFFFF

_NAME_RE = re.compile(r"(?P<base>.+\.log)(?:\.(?P<index>[1-9][0-9]{0,8}))?(?P<gz>\.gz)?(?P<tmp>\.tmp)?")


@dataclass(frozen=True, slots=True)
class LogFileName:
    """A log member name split into its parts.

    Attributes:
        name: the name as given.
        base: the current file's name (``…-json.log``, ``…/container.log``).
        index: rotation number (0 = the current file).
        compressed: ends in ``.gz``.
        temporary: a v20.10 ``.gz.tmp`` decompression leftover (never read by dockerd).
    """

    name: str
    base: str
    index: int
    compressed: bool
    temporary: bool = False


def parse_log_name(name: str) -> LogFileName | None:
    """Split ``<base>.log[.N][.gz][.tmp]``; ``None`` if ``name`` is not a log file name."""
    m = _NAME_RE.fullmatch(name)
    if m is None:
        return None
    return LogFileName(name, m["base"], int(m["index"] or 0), bool(m["gz"]), bool(m["tmp"]))


def driver_of(name: str) -> str:
    """Log driver whose format a member holds: :data:`JSON_FILE` or :data:`LOCAL`.

    ``*-json.log*`` is json-file; ``local-logs/container.log*`` and
    ``container-cached.log*`` are the local format.

    Raises:
        FormatError: the name is neither.
    """
    parsed = parse_log_name(name)
    base = parsed.base if parsed else name
    leaf = base.rpartition("/")[2]
    if leaf.endswith("-json.log"):
        return JSON_FILE
    if leaf in ("container.log", "container-cached.log"):
        return LOCAL
    raise FormatError(f"not a container log file name: {name!r}")


def max_file_of(hostconfig: Any) -> int | None:
    """The ``max-file`` log option of a parsed ``hostconfig.json`` (``None`` when unset)."""
    conf = ((hostconfig or {}).get("LogConfig") or {}).get("Config") or {} \
        if isinstance(hostconfig, dict) else {}
    try:
        return int(conf["max-file"]) if "max-file" in conf else None
    except (TypeError, ValueError):
        return None


def container_read_order(names: Iterable[str], max_file: int | None = None) -> list[str]:
    """All of one container's log files in the order ``docker logs`` reads them.

    Each family (json-file ``<id>-json.log``, local ``local-logs/container.log``, the
    dual-logging cache ``container-cached.log``) is ordered by :func:`order_log_files`,
    json-file first. ``max_file`` is the configured driver's option; the cache keeps
    its own defaults, so it is not applied there.
    """
    families: dict[tuple[str, str], list[str]] = {}
    for name in names:
        parsed = parse_log_name(name)
        families.setdefault((driver_of(name), parsed.base if parsed else name), []).append(name)
    out: list[str] = []
    for (_, base), members in sorted(families.items()):
        cache = base.rpartition("/")[2].startswith("container-cached.log")
        out.extend(order_log_files(members, max_file=None if cache else max_file))
    return out


def order_log_files(names: Iterable[str], max_file: int | None = None,
                    ignored: list[tuple[str, str]] | None = None) -> list[str]:
    """Return the log files in the order ``docker logs`` reads them (oldest first).

    Args:
        names: member names of one container's log files (one family, e.g. all
            ``<id>-json.log*``; several families are ordered one after another,
            sorted by base name).
        max_file: the container's ``max-file`` setting; files numbered
            ``>= max_file`` are then left out as dockerd does. ``None`` keeps all.
        ignored: if given, receives ``(name, reason)`` for each name not returned
            (``.gz`` shadowed by an uncompressed twin, beyond max-file,
            ``.tmp`` leftover, unrecognised).

    The current file is listed even when empty (dockerd skips empty ones, which
    yields the same output).
    """
    def skip(name: str, why: str) -> None:
        if ignored is not None:
            ignored.append((name, why))

    families: dict[str, dict[int, dict[bool, str]]] = {}
    for name in names:
        p = parse_log_name(name)
        if p is None:
            skip(name, "not a log file name")
            continue
        if p.temporary:
            skip(name, "temporary decompressed copy (.tmp) left by dockerd 20.10")
            continue
        if p.index == 0 and p.compressed:
            skip(name, "compressed current file is never produced by dockerd")
            continue
        families.setdefault(p.base, {}).setdefault(p.index, {})[p.compressed] = name
    out: list[str] = []
    for base in sorted(families):
        fam = families[base]
        for idx in sorted((i for i in fam if i > 0), reverse=True):
            variants = fam[idx]
            if max_file is not None and idx >= max_file:
                for n in variants.values():
                    skip(n, f"rotation {idx} >= max-file {max_file}: dockerd does not read it")
                continue
            if False in variants:
                out.append(variants[False])
                if True in variants:
                    skip(variants[True], "uncompressed twin exists (compression was in progress)")
            else:
                out.append(variants[True])
        if 0 in fam:
            out.append(fam[0][False])
    return out


@dataclass(frozen=True, slots=True)
class GzipInfo:
    """What the gzip header of a rotated log says.

    Attributes:
        extra: the raw FEXTRA bytes (``None`` when the flag is not set).
        last_time_ns: ``lastTime`` from the Extra JSON, ns since the epoch, or ``None``.
        mtime: the header's MTIME field (Go's writer leaves it 0).
    """

    extra: bytes | None
    last_time_ns: int | None
    mtime: int


def parse_gzip_header(head: bytes) -> GzipInfo:
    """Parse the fixed gzip header and the Extra field from the first bytes of a ``.gz``.

    ``head`` must hold at least 12 bytes plus XLEN when FEXTRA is set (at
    most :data:`_MAX_GZIP_HEADER`). dockerd stores raw JSON in Extra, not
    RFC 1952 sub-fields, so Python's :mod:`gzip` (which ignores Extra) cannot
    return it.

    Raises:
        FormatError: not a gzip header, or the Extra field is cut short.
    """
    if len(head) < 10 or head[0] != 0x1F or head[1] != 0x8B:
        raise FormatError("not a gzip stream")
    if head[2] != 8:
        raise FormatError(f"gzip compression method {head[2]} is not deflate")
    flags = head[3]
    mtime = int.from_bytes(head[4:8], "little")
    if not flags & 0x04:
        return GzipInfo(None, None, mtime)
    if len(head) < 12:
        raise FormatError("gzip header cut inside the Extra length")
    xlen = int.from_bytes(head[10:12], "little")
    if len(head) < 12 + xlen:
        raise FormatError("gzip header cut inside the Extra field")
    extra = bytes(head[12:12 + xlen])
    last: int | None = None
    try:
        meta = json.loads(extra)
        if isinstance(meta, dict) and isinstance(meta.get("lastTime"), str):
            last = parse_rfc3339nano(meta["lastTime"])
    except (ValueError, FormatError):
        last = None
    return GzipInfo(extra, last, mtime)


def _gunzip(chunks: Iterator[bytes], name: str, report: Callable[[int, str], None],
            info_out: list[GzipInfo] | None) -> Iterator[bytes]:
    head = bytearray()
    pending: list[bytes] = []
    # gather enough bytes for the header + Extra (bounded by _MAX_GZIP_HEADER)
    for chunk in chunks:
        head += chunk
        pending.append(chunk)
        if len(head) >= 12 and (not head[3] & 0x04 or len(head) >= 12 + int.from_bytes(head[10:12], "little")):
            break
        if len(head) >= _MAX_GZIP_HEADER:
            break
    try:
        info = parse_gzip_header(bytes(head[:_MAX_GZIP_HEADER]))
    except FormatError as exc:
        report(0, f"{name}: {exc}")
        return
    if info_out is not None:
        info_out.append(info)

    def all_chunks() -> Iterator[bytes]:
        yield from pending
        yield from chunks

    produced = 0
    d = zlib.decompressobj(wbits=31)
    try:
        for chunk in all_chunks():
            data = chunk
            while data:
                if d.eof:
                    if not data.strip(b"\x00"):
                        break  # zero padding after the last member
                    d = zlib.decompressobj(wbits=31)  # another member: Go reads multistream
                out = d.decompress(data, GUNZIP_OUT_BYTES)
                if out:
                    produced += len(out)
                    yield out
                data = d.unused_data if d.eof else d.unconsumed_tail
        out = d.flush()
        if out:
            produced += len(out)
            yield out
    except zlib.error as exc:
        report(produced, f"{name}: corrupt gzip data after {produced} decompressed bytes: {exc}")
        return
    if not d.eof:
        report(produced, f"{name}: gzip stream truncated after {produced} decompressed bytes")


def iter_log_file(data: BinaryIO | Iterable[bytes], name: str,
                  on_problem: ProblemSink | None = None,
                  gzip_info: list[GzipInfo] | None = None) -> Iterator[bytes]:
    """Yield the (decompressed) bytes of one log file, streaming.

    ``.gz`` names are gunzipped (all members, as Go's reader does); a
    truncated or corrupt stream ends early with a problem reported. When
    ``gzip_info`` is a list, the parsed :class:`GzipInfo` is appended to it
    once the header has been read.
    """
    chunks = iter_chunks(data)
    parsed = parse_log_name(name)
    if parsed is None or not parsed.compressed:
        yield from chunks
        return

    def report(offset: int, msg: str) -> None:
        if on_problem is not None:
            on_problem(LogProblem(name, 0, offset, msg))

    yield from _gunzip(chunks, name, report, gzip_info)


def iter_log_records(files: Iterable[tuple[str, BinaryIO | Iterable[bytes]]],
                     on_problem: ProblemSink | None = None, *,
                     driver: str | None = None,
                     daemon_version: tuple[int, int] | None = None,
                     display_tz: tzinfo | None = None) -> Iterator[LogRecord]:
    """Decode several log files, in the order given (see :func:`order_log_files`).

    Args:
        files: ``(name, data)`` pairs; ``data`` is a binary file object or byte chunks.
        driver: :data:`JSON_FILE` or :data:`LOCAL`; guessed from each name when ``None``.
        daemon_version, display_tz: passed to :func:`~analyzer.formats.locallog.iter_locallog`.

    Each file is decoded on its own (a record never spans two files), which is
    what current dockerd does; v20.10 concatenated the files into one stream,
    which only differs when a file ends in a half-written record.
    """
    for name, data in files:
        drv = driver or driver_of(name)
        raw = iter_log_file(data, name, on_problem)
        if drv == JSON_FILE:
            yield from iter_jsonlog(raw, name, on_problem)
        elif drv == LOCAL:
            yield from iter_locallog(raw, name, on_problem, daemon_version=daemon_version,
                                     display_tz=display_tz)
        else:
            raise FormatError(f"unknown log driver {drv!r}")

