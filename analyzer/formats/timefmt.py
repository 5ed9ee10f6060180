"""Go time formats as Docker writes them, in integer nanoseconds.

What: parse and format the timestamp encodings that appear in a Docker
data-root, without losing the nanoseconds Python's ``datetime`` would drop.

* RFC3339Nano text (``2024-01-02T03:04:05.123456789Z``) — json-file log
  ``time`` fields (``containers/<id>/<id>-json.log``), the gzip FEXTRA
  ``lastTime`` of rotated logs, ``config.v2.json`` state times, image
  ``created``. Go's ``time.RFC3339Nano`` layout trims trailing fractional
  zeros (the fraction has 0–9 digits, and the dot disappears with it), so the
  width varies; ``lastUpdated`` files carry a local ``±hh:mm`` offset.
* ``RFC3339NanoFixed`` (``2006-01-02T15:04:05.000000000Z07:00``) — always 9
  fractional digits: the prefix ``docker logs --timestamps`` prints.
* Go ``time.Time.MarshalBinary`` — ``createdat``/``updatedat`` values in
  containerd bbolt databases (``io.containerd.metadata.v1.bolt/meta.db``,
  snapshotter ``metadata.db``; format doc §9.5).

Why integers: ``datetime`` keeps microseconds only, and two log records 300 ns
apart must stay distinct and ordered. Every function here works on
``int`` nanoseconds since 1970-01-01T00:00:00Z (negative before the epoch)
plus, where Go keeps one, a zone offset in seconds east of UTC.

The Go zero time ``0001-01-01T00:00:00Z`` (``time.Time{}``) means "never"
(a container never started, a json-file record without ``time``). It is an
ordinary instant for :func:`parse_rfc3339nano` (it returns
:data:`GO_ZERO_TIME_NS`); :func:`parse_rfc3339nano_opt` maps it to ``None``.

Errors: malformed input raises :class:`analyzer.errors.FormatError` (the
base of the artefact-format errors, because these helpers serve logs, bbolt
and JSON alike; callers that need a narrower class translate it).

References:
    Go ``time/format.go`` (``RFC3339Nano``, ``.999999999`` trims zeros, ``Z07:00``
    prints ``Z`` for a zero offset), Go ``time/time.go`` (``MarshalBinary``:
    version byte, seconds since year 1, nanoseconds, offset minutes, −1 = UTC;
    version 2 adds offset seconds).
    ``moby/moby:daemon/logger/jsonfilelog/jsonlog/time_marshalling.go``
    (``fastTimeMarshalJSON`` = ``t.Format(RFC3339Nano)``, years 0–9999 only).
    ``moby/moby:daemon/server/httputils/logstream/logstream.go`` and
    ``moby/moby@v20.10.24:pkg/jsonmessage/jsonmessage.go`` (``RFC3339NanoFixed``).
    ``/work/shared/docs/docker-root-format.md`` §8.1, §9.5.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING

from analyzer.errors import FormatError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "NS_PER_SECOND",
    "GO_ZERO_TIME_NS",
    "UNIX_TO_GO_INTERNAL_SECONDS",
    "parse_rfc3339nano",
    "parse_rfc3339nano_tz",
    "parse_rfc3339nano_opt",
    "format_rfc3339nano",
    "format_rfc3339nano_fixed",
    "decode_go_binary_time",
    "decode_go_binary_time_tz",
    "to_pandas_ts",
]

NS_PER_SECOND = 1_000_000_000
_SECONDS_PER_DAY = 86_400

#: seconds from 0001-01-01T00:00:00Z to the Unix epoch (Go's ``unixToInternal``)
UNIX_TO_GO_INTERNAL_SECONDS = 62_135_596_800

#: the Go zero time ``0001-01-01T00:00:00Z`` in ns since the Unix epoch
GO_ZERO_TIME_NS = -UNIX_TO_GO_INTERNAL_SECONDS * NS_PER_SECOND

#: the longest RFC3339 text we look at (``-0001-01-01T00:00:00.123456789+hh:mm`` is 37);
#: anything longer is not a timestamp and is rejected before the regex runs
MAX_RFC3339_LEN = 64

_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})"
    r"(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y = year - (1 if month <= 2 else 0)
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of :func:`_days_from_civil`: (year, month, day)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def parse_rfc3339nano_tz(s: str) -> tuple[int, int]:
    """Parse RFC 3339 text into ``(ns since the Unix epoch, offset seconds)``.

    Accepts what Go's ``time.Parse(time.RFC3339Nano, s)`` accepts for the
    inputs Docker writes: a 0–9 digit fraction, ``Z`` or ``±hh:mm``. The
    offset is returned because Go keeps it and prints it back
    (``docker logs --timestamps`` shows a json-file time written as
    ``+02:00`` with ``+02:00``).

    Raises:
        FormatError: not an RFC 3339 timestamp, or an impossible date/time
            (month 13, 31 April, hour 24, second 60 — Go rejects leap seconds).
    """
    if not isinstance(s, str) or len(s) > MAX_RFC3339_LEN:
        raise FormatError(f"not an RFC 3339 timestamp: {s!r:.80}")
    m = _RFC3339_RE.fullmatch(s)
    if m is None:
        raise FormatError(f"not an RFC 3339 timestamp: {s!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    if not 1 <= month <= 12:
        raise FormatError(f"month out of range in {s!r}")
    dim = 29 if (month == 2 and _is_leap(year)) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= dim:
        raise FormatError(f"day out of range in {s!r}")
    if hour > 23 or minute > 59 or second > 59:
        raise FormatError(f"time of day out of range in {s!r}")
    offset = 0
    if zone != "Z":
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 23 or om > 59:
            raise FormatError(f"zone offset out of range in {s!r}")
        offset = (oh * 3600 + om * 60) * (-1 if zone[0] == "-" else 1)
    nanos = int(frac.ljust(9, "0")) if frac else 0
    secs = _days_from_civil(year, month, day) * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    return (secs - offset) * NS_PER_SECOND + nanos, offset


def parse_rfc3339nano(s: str) -> int:
    """Parse RFC 3339 text into ns since the Unix epoch (UTC).

    The Go zero time gives :data:`GO_ZERO_TIME_NS`; see
    :func:`parse_rfc3339nano_opt` to get ``None`` instead.

    >>> parse_rfc3339nano("1970-01-01T00:00:01.5Z")
    1500000000
    """
    return parse_rfc3339nano_tz(s)[0]


def parse_rfc3339nano_opt(s: str) -> int | None:
    """Like :func:`parse_rfc3339nano`, but the Go zero time (Docker's "never") is ``None``."""
    ns = parse_rfc3339nano(s)
    return None if ns == GO_ZERO_TIME_NS else ns


def _format(ns: int, offset_s: int, fixed: bool) -> str:
    if not isinstance(ns, int) or not isinstance(offset_s, int):
        raise FormatError("timestamps must be integers (ns, offset seconds)")
    secs, nanos = divmod(ns + offset_s * NS_PER_SECOND, NS_PER_SECOND)
    days, sod = divmod(secs, _SECONDS_PER_DAY)
    year, month, day = _civil_from_days(days)
    hh, rem = divmod(sod, 3600)
    mm, ss = divmod(rem, 60)
    # Go pads the year to 4 digits and writes a '-' before negative years.
    ytxt = f"{year:04d}" if year >= 0 else f"-{-year:04d}"
    out = f"{ytxt}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
    if fixed:
        out += f".{nanos:09d}"
    elif nanos:
        out += "." + f"{nanos:09d}".rstrip("0")
    if offset_s == 0:
        return out + "Z"
    sign = "-" if offset_s < 0 else "+"
    oh, om = divmod(abs(offset_s) // 60, 60)
    return f"{out}{sign}{oh:02d}:{om:02d}"


def format_rfc3339nano(ns: int, offset_s: int = 0) -> str:
    """Format like Go's ``t.Format(time.RFC3339Nano)``: fraction trimmed of zeros.

    ``offset_s`` is the zone offset to print (seconds east of UTC; 0 → ``Z``).

    >>> format_rfc3339nano(1_500_000_000)
    '1970-01-01T00:00:01.5Z'
    """
    return _format(ns, offset_s, fixed=False)


def format_rfc3339nano_fixed(ns: int, offset_s: int = 0) -> str:
    """Format like Go's ``RFC3339NanoFixed``: always 9 fractional digits.

    This is the ``docker logs --timestamps`` prefix (without its trailing space).

    >>> format_rfc3339nano_fixed(1_500_000_000)
    '1970-01-01T00:00:01.500000000Z'
    """
    return _format(ns, offset_s, fixed=True)


#: byte lengths of Go ``MarshalBinary`` output by version byte
_GO_BINARY_LEN = {1: 15, 2: 16}


def decode_go_binary_time_tz(b: bytes) -> tuple[int, int]:
    """Decode Go ``time.Time.MarshalBinary`` bytes to ``(ns since epoch, offset seconds)``.

    Layout (big-endian): ``[0]`` version (1, or 2 when the zone offset has
    seconds); ``[1:9]`` int64 seconds since 0001-01-01T00:00:00Z; ``[9:13]``
    int32 nanoseconds; ``[13:15]`` int16 zone offset in minutes, ``-1`` = UTC;
    version 2 adds ``[15]`` offset seconds.

    Raises:
        FormatError: wrong length, unknown version, nanoseconds out of range.
    """
    b = bytes(b)
    if not b:
        raise FormatError("empty Go binary time")
    version = b[0]
    want = _GO_BINARY_LEN.get(version)
    if want is None:
        raise FormatError(f"unsupported Go binary time version {version}")
    if len(b) != want:
        raise FormatError(f"Go binary time v{version} has {len(b)} bytes, want {want}")
    sec, nsec, off_min = struct.unpack(">qih", b[1:15])
    if not 0 <= nsec < NS_PER_SECOND:
        raise FormatError(f"Go binary time nanoseconds out of range: {nsec}")
    offset = 0 if off_min == -1 else off_min * 60
    if version == 2:
        # Go writes ``int8(offset % 60)`` (sign kept); read it back signed.
        offset += struct.unpack(">b", b[15:16])[0]
    return (sec - UNIX_TO_GO_INTERNAL_SECONDS) * NS_PER_SECOND + nsec, offset


def decode_go_binary_time(b: bytes) -> int:
    """Decode Go ``time.Time.MarshalBinary`` bytes to ns since the Unix epoch (UTC).

    >>> decode_go_binary_time(bytes.fromhex("010000000e dd257425 1dcd6500 ffff"))
    1704164645500000000
    """
    return decode_go_binary_time_tz(b)[0]


def to_pandas_ts(ns: int | None) -> "pd.Timestamp":
    """ns since the epoch → tz-aware UTC ``pandas.Timestamp`` (``NaT`` for ``None``).

    pandas' ``datetime64[ns]`` spans 1677–2262 only; instants outside (the Go
    zero time!) become ``NaT`` rather than an overflow error.
    """
    import pandas as pd  # local import: the formats layer must not need pandas

    if ns is None:
        return pd.NaT
    try:
        return pd.Timestamp(ns, unit="ns", tz="UTC")
    except (OverflowError, ValueError):
        return pd.NaT
