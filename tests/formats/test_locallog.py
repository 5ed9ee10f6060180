"""Tests of the local-driver frame decoder (analyzer.formats.locallog)."""

from __future__ import annotations

import io
import struct
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.errors import LogFormatError
from analyzer.formats.jsonlog import LogProblem, LogRecord
from analyzer.formats.locallog import MAX_FRAME_BYTES, ProtoError, decode_log_entry, iter_locallog

DOC_FRAME = bytes.fromhex("00 00 00 0e 0a 06 73 74 64 6f 75 74 10 01 1a 02 68 69 00 00 00 0e".replace(" ", ""))


def varint(u: int) -> bytes:
    u &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def entry(source: str = "stdout", t: int = 1, line: bytes = b"hi", partial: bool = False,
          last: bool | None = None, pid: str = "", ordinal: int = 0,
          attrs: list[tuple[str, str]] | None = None, extra: bytes = b"") -> bytes:
    """Encode a LogEntry as gogo-protobuf does (proto3: defaults omitted)."""
    out = b""
    if source:
        out += ld(1, source.encode())
    if t:
        out += b"\x10" + varint(t)
    if line:
        out += ld(3, line)
    if partial:
        out += b"\x20\x01"
        meta = b""
        if last:
            meta += b"\x08\x01"
        if pid:
            meta += ld(2, pid.encode())
        if ordinal:
            meta += b"\x18" + varint(ordinal)
        out += ld(5, meta)
    for k, v in attrs or []:
        out += ld(6, ld(1, k.encode()) + ld(2, v.encode()))
    return out + extra


def frame(payload: bytes, suffix: int | None = None) -> bytes:
    return struct.pack(">I", len(payload)) + payload + struct.pack(">I", len(payload) if suffix is None else suffix)


def decode(data: bytes, chunk: int | None = None, **kw: object) -> tuple[list[LogRecord], list[LogProblem]]:
    probs: list[LogProblem] = []
    src = io.BytesIO(data) if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    return list(iter_locallog(src, "container.log", probs.append, **kw)), probs  # type: ignore[arg-type]


def test_doc_worked_example() -> None:
    assert frame(entry()) == DOC_FRAME
    (r,), probs = decode(DOC_FRAME)
    assert probs == []
    assert (r.stream, r.time_ns, r.line, r.partial, r.line_no, r.offset) == ("stdout", 1, b"hi\n", False, 1, 0)


@pytest.mark.parametrize("chunk", [None, 1, 5, 13])
def test_sequence_and_chunking(chunk: int | None) -> None:
    data = frame(entry(line=b"a")) + frame(entry("stderr", 2, b"b")) + frame(entry(line=b""))
    recs, probs = decode(data, chunk)
    assert [(r.stream, r.line, r.time_ns) for r in recs] == [("stdout", b"a\n", 1), ("stderr", b"b\n", 2), ("stdout", b"\n", 1)]
    assert [r.offset for r in recs] == [0, len(frame(entry(line=b"a"))), len(data) - len(frame(entry(line=b"")))]
    assert probs == []


def test_negative_time_is_ten_byte_varint() -> None:
    payload = entry(t=-5)
    assert payload[payload.index(b"\x10") + 1:][:10][-1] == 0x01  # 10-byte varint
    (r,), _ = decode(frame(payload))
    assert r.time_ns == -5
    (r,), _ = decode(frame(entry(t=-(2**63))))
    assert r.time_ns == -(2**63)


def test_raw_bytes_kept() -> None:
    (r,), _ = decode(frame(entry(line=b"\xff\xfe bin \x00")))
    assert r.line == b"\xff\xfe bin \x00\n"


def test_partial_newline_current_vs_20_10() -> None:
    data = (frame(entry(line=b"A" * 5, partial=True, pid="p", ordinal=1))
            + frame(entry(line=b"B" * 3, partial=True, last=True, pid="p", ordinal=2))
            + frame(entry(line=b"next")))
    cur, _ = decode(data)
    assert [r.line for r in cur] == [b"AAAAA", b"BBB\n", b"next\n"]
    assert [r.partial for r in cur] == [True, False, False]
    assert (cur[0].partial_id, cur[0].partial_ordinal, cur[0].partial_last) == ("p", 1, False)
    assert (cur[1].partial_ordinal, cur[1].partial_last) == (2, True)
    assert cur[2].partial_id is None and cur[2].partial_last is None
    old, _ = decode(data, daemon_version=(20, 10))
    assert [r.line for r in old] == [b"AAAAA", b"BBB", b"next\n"]  # dockerd < 23.0 drops that '\n'


def test_local_timezone_before_25() -> None:
    tz = ZoneInfo("Europe/Amsterdam")
    t = 1702055816_291023422  # 2023-12-08T17:16:56Z (CET, +01:00)
    (r,), _ = decode(frame(entry(t=t)), daemon_version=(24, 0), display_tz=tz)
    assert r.tz_offset == 3600
    (r,), _ = decode(frame(entry(t=t)), daemon_version=(25, 0), display_tz=tz)
    assert r.tz_offset == 0


def test_attrs_and_unknown_fields() -> None:
    unknown = (varint(9 << 3 | 0) + varint(300) + varint(10 << 3 | 1) + bytes(8) + ld(11, b"zz")
               + varint(12 << 3 | 5) + bytes(4) + varint(13 << 3 | 3) + varint(1 << 3 | 0) + b"\x01" + varint(13 << 3 | 4))
    (r,), probs = decode(frame(entry(attrs=[("tag", "web"), ("env", "x=y")], extra=unknown)))
    assert probs == [] and r.attrs == {"tag": "web", "env": "x=y"} and r.line == b"hi\n"


@pytest.mark.parametrize("payload", [
    b"\x0a",                      # truncated length
    b"\x0a\x05std",               # string runs past the message
    b"\x10" + b"\xff" * 10 + b"\x01",  # varint longer than 10 bytes
    b"\x12\x01x",                 # field 2 with wire type 2
    b"\x0f",                      # wire type 7
    b"\x00\x01",                  # field number 0
    b"\x1c",                      # end group without start
])
def test_bad_protobuf(payload: bytes) -> None:
    with pytest.raises(ProtoError):
        decode_log_entry(payload)


def test_bad_payload_with_intact_framing_skips_one_frame() -> None:
    data = frame(entry(line=b"a")) + frame(b"\x12\x01x") + frame(entry(line=b"b"))
    recs, probs = decode(data)
    assert [r.line for r in recs] == [b"a\n", b"b\n"]
    assert len(probs) == 1 and "bad LogEntry" in probs[0].message and probs[0].line_no == 2


def test_suffix_mismatch_still_yields_like_dockerd() -> None:
    data = frame(entry(line=b"a"), suffix=99) + frame(entry(line=b"b"))
    recs, probs = decode(data)
    assert [r.line for r in recs] == [b"a\n", b"b\n"]
    assert len(probs) == 1 and "suffix 99 != prefix" in probs[0].message


def test_resync_after_garbage_and_oversized_length() -> None:
    good = frame(entry(line=b"ok"))
    data = good + b"\xde\xad\xbe\xef garbage \x00\x00" + good + struct.pack(">I", MAX_FRAME_BYTES + 1) + b"zz" + good
    recs, probs = decode(data, chunk=3)
    assert [r.line for r in recs] == [b"ok\n"] * 3
    assert len(probs) == 2
    assert "resynchronised" in probs[0].message and probs[0].offset == len(good)
    assert "exceeds" in probs[1].message


def test_truncated_last_frame() -> None:
    data = DOC_FRAME + DOC_FRAME[:15]
    recs, probs = decode(data)
    assert len(recs) == 1
    assert len(probs) == 1 and "truncated frame" in probs[0].message and probs[0].offset == 22
    recs, probs = decode(DOC_FRAME + b"\x00\x00")
    assert len(recs) == 1 and "truncated length prefix" in probs[0].message


def test_zero_filled_tail_is_not_invented_records() -> None:
    # a crash can leave NUL blocks; they read as empty frames dockerd never prints
    recs, probs = decode(DOC_FRAME + bytes(16))
    assert recs[0].line == b"hi\n"
    assert all(r.stream == "" for r in recs[1:]) and probs == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=40))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    try:
        decode(data, chunk)
        decode(DOC_FRAME + data + DOC_FRAME, chunk)
    except LogFormatError:
        pytest.fail("decoder raised instead of reporting")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                          st.binary(max_size=50), st.booleans()), max_size=8))
def test_roundtrip(items: list[tuple[str, int, bytes, bool]]) -> None:
    data = b"".join(frame(entry(s, t, ln, partial=p, last=True, pid="i" if p else "")) for s, t, ln, p in items)
    recs, probs = decode(data)
    assert probs == []
    assert [(r.stream, r.time_ns, r.line) for r in recs] == [(s, t, ln + b"\n") for s, t, ln, _ in items]
