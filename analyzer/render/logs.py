"""Byte-exact ``docker logs [--timestamps] [--details]`` output from decoded log records.

What: :func:`write_docker_logs` writes to two binary streams exactly the bytes
the ``docker logs`` CLI prints on its stdout and stderr for a container, given
the container's :class:`~analyzer.formats.jsonlog.LogRecord` objects in file
order (see :func:`analyzer.formats.logfiles.order_log_files` and
:func:`~analyzer.formats.logfiles.iter_log_records`).

How ``docker logs`` output is produced (moby/moby v20.10.24 and master):

1. The log driver's reader yields messages (``daemon/logger/jsonfilelog/read.go``,
   ``daemon/logger/local/read.go``): json-file ``Line`` = the ``log`` string,
   its ``\\n`` included; local ``Line`` = raw bytes + a re-appended ``\\n``
   (details in those modules; the record's ``line`` already holds this).
2. ``--tail N`` keeps the last N records across the files; ``--since`` /
   ``--until`` filter by timestamp (``loggerutils/logfile.go``; see below).
3. The API writes each message (v20.10.24 ``api/server/httputils/write_log_stream.go``
   ``WriteLogStream``; master ``daemon/server/httputils/logstream/logstream.go``
   ``Write``)::

       line = msg.Line
       if details:    line = attrs_sorted_by_key("k=v" url.QueryEscape'd, ","-joined) + " " + line
       if timestamps: line = msg.Timestamp.Format("2006-01-02T15:04:05.000000000Z07:00") + " " + line
       source "stdout" → stdout stream, "stderr" → stderr stream, anything else → dropped

   Nothing else is added: no newline after a partial fragment, so a >16 KiB
   line split into fragments prints, with ``--timestamps``, *one prefix per
   fragment* glued inside the logical line (all fragments carry the first
   fragment's time, ``daemon/logger/copier.go``). An empty line still gets its
   prefix. The format is fixed-width (9 digits, ``jsonmessage.RFC3339NanoFixed``
   in 20.10, a private ``rfc3339NanoFixed`` const on master); the offset is
   that of the message's ``time.Time``: ``Z`` for json-file written by Docker
   (UTC), the daemon's local zone for the local driver before v25.0.
4. Without a TTY the streams are multiplexed with ``stdcopy`` 8-byte frame
   headers (``[stream, 0, 0, 0, u32 BE size]``) and the CLI
   (``docker/cli:cli/command/container/logs.go``) demultiplexes them with
   ``stdcopy.StdCopy`` onto its stdout/stderr — the headers never reach the
   user. With ``Config.Tty`` the route does not multiplex
   (``container_routes.go``: ``mux = !tty``) and the CLI ``io.Copy``'s everything
   to stdout. The CLI always asks for both streams.
5. Errors during reading are sent in band as ``Error grabbing logs: <err>\\n`` on
   the system-error stream; the CLI's ``StdCopy`` turns that frame into an error
   it prints and exits non-zero. We never produce it (decoders report problems
   instead), so output for damaged files differs from dockerd by design.

Filtering facts (only applied when asked):

* ``tail``: counted in records (json lines / local frames) from the end of the
  readable files, before since/until; ``0`` prints nothing; negative = all
  (the CLI's default ``all`` fails ``Atoi`` → −1).
* ``since``: master's ``forwarder`` drops records before *since* only until the
  first record at or after it, then stops checking (timestamps need not be
  monotonic); v20.10.24 drops every record before since. ``since_mode``
  selects the behaviour.
* ``until``: output stops at the first record after *until* (both versions).

References:
    ``moby/moby@v20.10.24:api/server/httputils/write_log_stream.go``,
    ``moby/moby:daemon/server/httputils/logstream/logstream.go``,
    ``moby/moby:daemon/server/router/container/container_routes.go`` (getContainersLogs),
    ``moby/moby@v20.10.24:api/server/router/container/container_routes.go``,
    ``moby/moby@v20.10.24:daemon/logs.go`` (ContainerLogs: tail parsing, since/until),
    ``moby/moby:daemon/logger/loggerutils/logfile.go`` (tailFiles, forwarder),
    ``moby/moby@v20.10.24:daemon/logger/loggerutils/logfile.go`` (tailFiles),
    ``moby/moby@v20.10.24:pkg/stdcopy/stdcopy.go``, ``moby/moby:api/pkg/stdcopy/stdcopy.go``,
    ``docker/cli:cli/command/container/logs.go`` (runLogs).
"""

from __future__ import annotations

from collections import deque
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import quote_plus

from analyzer.formats.jsonlog import LogRecord
from analyzer.formats.timefmt import format_rfc3339nano_fixed

__all__ = ["write_docker_logs", "render_line", "details_prefix", "select_records"]

SINCE_CURRENT = "current"
SINCE_V20 = "v20.10"


def details_prefix(attrs: dict[str, str] | None) -> bytes:
    """The ``--details`` prefix: ``k=v`` pairs sorted by key, QueryEscape'd, ``,``-joined, then a space.

    Go's ``url.QueryEscape`` keeps ``A-Za-z0-9-_.~``, writes space as ``+`` and
    every other byte as ``%XX`` (upper case) — ``quote_plus(s, safe="")``.
    """
    items = sorted((attrs or {}).items())
    body = ",".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in items)
    return body.encode("ascii") + b" "


def render_line(rec: LogRecord, timestamps: bool = False, details: bool = False) -> bytes:
    """The bytes ``docker logs`` prints for one record (on its stream)."""
    line = rec.line
    if details:
        line = details_prefix(rec.attrs) + line
    if timestamps:
        line = format_rfc3339nano_fixed(rec.time_ns, rec.tz_offset).encode("ascii") + b" " + line
    return line


def select_records(records: Iterable[LogRecord], *, since_ns: int | None = None,
                   until_ns: int | None = None, tail: int | None = None,
                   since_mode: str = SINCE_CURRENT) -> Iterator[LogRecord]:
    """Apply ``--tail``, then ``--since``/``--until``, as dockerd does.

    ``tail`` keeps memory bounded to ``tail`` records.
    """
    if tail is not None and tail >= 0:
        if tail == 0:
            return
        records = deque(records, maxlen=tail)
    checking_since = since_ns is not None
    for rec in records:
        if checking_since:
            if rec.time_ns < since_ns:  # type: ignore[operator]
                continue
            if since_mode == SINCE_CURRENT:
                checking_since = False
        if until_ns is not None and rec.time_ns > until_ns:
            return
        yield rec


def write_docker_logs(records: Iterable[LogRecord], stdout: BinaryIO, stderr: BinaryIO,
                      timestamps: bool = False, *, details: bool = False, tty: bool = False,
                      since_ns: int | None = None, until_ns: int | None = None,
                      tail: int | None = None, since_mode: str = SINCE_CURRENT) -> None:
    """Write what ``docker logs [--timestamps] [--details]`` prints, byte for byte.

    Args:
        records: the container's records in the order dockerd reads them.
        stdout, stderr: binary streams receiving the CLI's stdout / stderr bytes.
        timestamps: ``--timestamps`` (fixed 9-digit RFC 3339 prefix + space).
        details: ``--details`` (sorted, query-escaped attrs + space).
        tty: the container's ``Config.Tty``; then everything goes to ``stdout``.
        since_ns, until_ns, tail: ``--since`` / ``--until`` (ns since epoch) / ``--tail``.
        since_mode: ``"current"`` (stop checking after the first match) or ``"v20.10"``.

    Records whose stream is neither ``stdout`` nor ``stderr`` are not printed.
    """
    for rec in select_records(records, since_ns=since_ns, until_ns=until_ns, tail=tail,
                              since_mode=since_mode):
        if rec.stream == "stdout":
            out = stdout
        elif rec.stream == "stderr":
            out = stdout if tty else stderr
        else:
            continue
        out.write(render_line(rec, timestamps, details))
