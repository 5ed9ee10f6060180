"""Tests of analyzer.formats.timefmt (RFC 3339 with ns, Go binary time)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.errors import FormatError
from analyzer.formats.timefmt import (
    GO_ZERO_TIME_NS,
    decode_go_binary_time,
    decode_go_binary_time_tz,
    format_rfc3339nano,
    format_rfc3339nano_fixed,
    parse_rfc3339nano,
    parse_rfc3339nano_opt,
    parse_rfc3339nano_tz,
    to_pandas_ts,
)

BASE = 1452185350 * 10**9  # 2016-01-07T16:49:10Z


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2016-01-07T16:49:10Z", BASE),
        ("2016-01-07T16:49:10.2Z", BASE + 200_000_000),
        ("2016-01-07T16:49:10.23Z", BASE + 230_000_000),
        ("2016-01-07T16:49:10.237222729Z", BASE + 237_222_729),
        ("2016-01-07T16:49:10.000000001Z", BASE + 1),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999999999Z", -1),
        ("2016-01-07T17:49:10.5+01:00", BASE + 500_000_000),
        ("2016-01-07T12:19:10-04:30", BASE),
        ("2000-02-29T00:00:00Z", 951782400 * 10**9),
        ("9999-12-31T23:59:59.999999999Z", 253402300799 * 10**9 + 999_999_999),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert parse_rfc3339nano(text) == ns


def test_parse_keeps_offset() -> None:
    assert parse_rfc3339nano_tz("2016-01-07T17:49:10+01:00") == (BASE, 3600)
    assert parse_rfc3339nano_tz("2016-01-07T16:49:10Z") == (BASE, 0)


def test_go_zero_time() -> None:
    assert parse_rfc3339nano("0001-01-01T00:00:00Z") == GO_ZERO_TIME_NS == -62135596800 * 10**9
    assert parse_rfc3339nano_opt("0001-01-01T00:00:00Z") is None
    assert parse_rfc3339nano_opt("1970-01-01T00:00:00Z") == 0
    assert format_rfc3339nano(GO_ZERO_TIME_NS) == "0001-01-01T00:00:00Z"
    assert format_rfc3339nano_fixed(GO_ZERO_TIME_NS) == "0001-01-01T00:00:00.000000000Z"


@pytest.mark.parametrize(
    "bad",
    [
        "2016-01-07T16:49:10.0",          # no zone (the plaso fixture's first line)
        "2016-01-07 16:49:10Z",
        "2016-01-07T16:49:10.1234567891Z",  # 10 fraction digits
        "2016-13-07T16:49:10Z",
        "2015-02-29T00:00:00Z",
        "2016-04-31T00:00:00Z",
        "2016-01-07T24:00:00Z",
        "2016-01-07T23:59:60Z",             # Go rejects leap seconds
        "2016-01-07T16:49:10+24:00",
        "2016-01-07T16:49:10.Z",
        "",
        "x" * 1000,
    ],
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(FormatError):
        parse_rfc3339nano(bad)


def test_format_trims_like_go() -> None:
    assert format_rfc3339nano(BASE) == "2016-01-07T16:49:10Z"
    assert format_rfc3339nano(BASE + 200_000_000) == "2016-01-07T16:49:10.2Z"
    assert format_rfc3339nano(BASE + 237_222_720) == "2016-01-07T16:49:10.23722272Z"
    assert format_rfc3339nano(-1) == "1969-12-31T23:59:59.999999999Z"
    assert format_rfc3339nano(BASE, 5400) == "2016-01-07T18:19:10+01:30"
    assert format_rfc3339nano(BASE, -16200) == "2016-01-07T12:19:10-04:30"


def test_format_fixed() -> None:
    assert format_rfc3339nano_fixed(BASE) == "2016-01-07T16:49:10.000000000Z"
    assert format_rfc3339nano_fixed(BASE + 2) == "2016-01-07T16:49:10.000000002Z"
    assert format_rfc3339nano_fixed(BASE, 3600) == "2016-01-07T17:49:10.000000000+01:00"


DAY = 86400 * 10**9


@given(st.integers(min_value=GO_ZERO_TIME_NS + DAY, max_value=253402300799 * 10**9 - DAY),
       st.sampled_from([0, 3600, -16200, 19800, 50400]))
def test_roundtrip(ns: int, offset: int) -> None:
    for text in (format_rfc3339nano(ns, offset), format_rfc3339nano_fixed(ns, offset)):
        assert parse_rfc3339nano_tz(text) == (ns, offset)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_matches_datetime(dt: datetime) -> None:
    dt = dt.replace(tzinfo=timezone.utc)
    ns = (dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000
    text = dt.isoformat(timespec="microseconds").replace("+00:00", "Z")  # %Y does not pad on Linux
    assert parse_rfc3339nano(text) == ns
    assert format_rfc3339nano_fixed(ns) == text[:-1] + "000Z"


def test_go_binary_time_doc_example() -> None:
    # format doc §9.5: 2024-01-02T03:04:05.5Z
    b = bytes.fromhex("01 00 00 00 0e dd 25 74 25 1d cd 65 00 ff ff".replace(" ", ""))
    assert decode_go_binary_time(b) == parse_rfc3339nano("2024-01-02T03:04:05.5Z")
    assert decode_go_binary_time_tz(b)[1] == 0


def test_go_binary_time_zone_and_v2() -> None:
    sec = 62135596800 + 1  # 1970-01-01T00:00:01 as seconds since year 1
    v1 = bytes([1]) + sec.to_bytes(8, "big") + (7).to_bytes(4, "big") + (60).to_bytes(2, "big", signed=True)
    assert decode_go_binary_time_tz(v1) == (1_000_000_007, 3600)
    v2 = bytes([2]) + sec.to_bytes(8, "big") + (0).to_bytes(4, "big") + (-60).to_bytes(2, "big", signed=True) + bytes([0xFF])
    assert decode_go_binary_time_tz(v2) == (1_000_000_000, -3601)
    zero = bytes([1]) + (0).to_bytes(8, "big") + bytes(4) + b"\xff\xff"
    assert decode_go_binary_time(zero) == GO_ZERO_TIME_NS


@pytest.mark.parametrize("bad", [b"", b"\x01" * 14, b"\x03" + bytes(14), b"\x01" * 16,
                                 bytes([1]) + bytes(8) + (10**9).to_bytes(4, "big") + b"\xff\xff"])
def test_go_binary_time_rejects(bad: bytes) -> None:
    with pytest.raises(FormatError):
        decode_go_binary_time(bad)


def test_to_pandas_ts() -> None:
    ts = to_pandas_ts(BASE + 1)
    assert ts.value == BASE + 1 and str(ts.tz) == "UTC"
    assert str(to_pandas_ts(None)) == "NaT"
    assert str(to_pandas_ts(GO_ZERO_TIME_NS)) == "NaT"
