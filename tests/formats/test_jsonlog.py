"""Tests of the json-file decoder (analyzer.formats.jsonlog) and log-file handling (logfiles)."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.errors import FormatError, LogFormatError
from analyzer.formats import jsonlog
from analyzer.formats.jsonlog import LogProblem, LogRecord, go_decode_utf8, issue_sink, iter_jsonlog
from analyzer.formats.logfiles import (
    GzipInfo,
    driver_of,
    iter_log_file,
    iter_log_records,
    order_log_files,
    parse_gzip_header,
    parse_log_name,
)
from analyzer.formats.timefmt import GO_ZERO_TIME_NS, parse_rfc3339nano
from analyzer.issues import IssueLog

FIXTURES = Path("/work/shared/peer-fixtures")
T0 = "2024-01-02T03:04:05.123456789Z"


def decode(data: bytes, chunk: int | None = None) -> tuple[list[LogRecord], list[LogProblem]]:
    probs: list[LogProblem] = []
    src = io.BytesIO(data) if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    return list(iter_jsonlog(src, "x-json.log", probs.append)), probs


def line(log: str, stream: str = "stdout", t: str = T0, **extra: object) -> bytes:
    obj: dict[str, object] = {"log": log, "stream": stream, **extra, "time": t}
    return json.dumps(obj).encode() + b"\n"


# --- format doc worked example and basics --------------------------------------------

def test_doc_example() -> None:
    recs, probs = decode(b'{"log":"hello\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}\n')
    assert probs == []
    (r,) = recs
    assert (r.stream, r.line, r.partial, r.attrs, r.line_no, r.offset, r.tz_offset) == \
        ("stdout", b"hello\n", False, None, 1, 0, 0)
    assert r.time_ns == parse_rfc3339nano(T0)


@pytest.mark.parametrize("chunk", [None, 1, 3, 64])
def test_chunking_does_not_matter(chunk: int | None) -> None:
    data = line("a\n") + line("b\n", "stderr", attrs={"tag": "web"}) + line("c\n")
    recs, probs = decode(data, chunk)
    assert [r.line for r in recs] == [b"a\n", b"b\n", b"c\n"]
    assert [r.line_no for r in recs] == [1, 2, 3]
    assert recs[1].attrs == {"tag": "web"} and recs[1].stream == "stderr"
    assert recs[2].offset == len(line("a\n") + line("b\n", "stderr", attrs={"tag": "web"}))
    assert probs == []


def test_escapes_as_docker_writes_them() -> None:
    # jsonlogbytes.go: <>& and control bytes as \u00XX, tab as \u0009, U+2028 as \u2028
    raw = b'{"log":"\\u003cb\\u003e \\u0026 tab\\u0009 esc\\u001b[0m \\u2028 caf\\u00e9 \\"q\\" \\\\ \\r\\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}\n'
    (r,), _ = decode(raw)
    assert r.line == "<b> & tab\t esc\x1b[0m \u2028 café \"q\" \\ \r\n".encode()


def test_invalid_utf8_replacement_like_go() -> None:
    # raw invalid bytes inside the JSON string: one U+FFFD per bad byte (Go), not per sequence
    raw = b'{"log":"a\xe2\x82b\xff\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}\n'.replace(b"\n\"", b"\\n\"")
    (r,), probs = decode(raw)
    assert r.line == "a\ufffd\ufffdb\ufffd\n".encode()
    assert probs == []
    assert go_decode_utf8(b"\xed\xa0\x80") == "\ufffd" * 3   # UTF-8-encoded surrogate
    assert go_decode_utf8(b"\xf0\x9f\x98") == "\ufffd" * 3   # truncated 4-byte sequence


def test_lone_surrogate_escape_becomes_fffd() -> None:
    raw = b'{"log":"\\ud83d\\ude00 \\ud800x \\udc00\\n","stream":"stdout"}\n'
    (r,), _ = decode(raw)
    assert r.line == "\U0001F600 \ufffdx \ufffd\n".encode()


def test_partial_records() -> None:
    big = "x" * 16384
    data = line(big) + line(big) + line("tail\n") + line("whole\n")
    recs, _ = decode(data)
    assert [r.partial for r in recs] == [True, True, False, False]
    assert b"".join(r.line for r in recs[:3]) == (big * 2 + "tail\n").encode()


def test_go_field_rules() -> None:
    data = (
        b'{"LOG":"upper\\n","Stream":"stderr","TIME":"2024-01-02T03:04:05Z","extra":1}\n'   # case-insensitive, unknown ignored
        b'{"log":"first\\n","log":"second\\n","stream":"stdout"}\n'                         # last duplicate wins
        b'{"log":null,"stream":"stdout","time":null}\n'                                    # null leaves fields unset
        b'{"log":"no stream\\n"}\n'
        b'{"log":"a\\n","stream":"stdout"}  {"log":"b\\n","stream":"stdout"}\n'            # two values on one line
        b'null\n'
    )
    recs, probs = decode(data)
    assert probs == []
    assert [(r.stream, r.line) for r in recs] == [
        ("stderr", b"upper\n"), ("stdout", b"second\n"), ("stdout", b""), ("", b"no stream\n"),
        ("stdout", b"a\n"), ("stdout", b"b\n")]
    assert recs[1].time_ns == GO_ZERO_TIME_NS and recs[2].time_ns == GO_ZERO_TIME_NS
    assert recs[4].line_no == recs[5].line_no == 5


def test_time_offset_is_kept() -> None:
    (r,), _ = decode(line("x\n", t="2024-01-02T04:04:05+01:00"))
    assert r.time_ns == parse_rfc3339nano("2024-01-02T03:04:05Z") and r.tz_offset == 3600


def test_bad_lines_are_reported_and_skipped() -> None:
    data = (line("ok1\n") + b'{"log":"broken\n' + b'{"log":5,"stream":"stdout"}\n'
            + b'{"log":"x","stream":"stdout","attrs":{"k":1}}\n' + b'[1,2]\n' + b'{}\n'.replace(b"{}", b"{")
            + line("badtime\n", t="2016-01-07T16:49:10.0") + b"{\"log\":NaN}\n" + b"\n  \n" + line("ok2\n"))
    recs, probs = decode(data)
    assert [r.line for r in recs] == [b"ok1\n", b"ok2\n"]
    assert [p.line_no for p in probs] == [2, 3, 4, 5, 6, 7, 8]
    assert "malformed JSON" in probs[0].message and probs[0].excerpt.startswith(b'{"log":"broken')
    assert "not a string" in probs[1].message
    assert "bad time" in probs[5].message
    assert recs[1].line_no == 11


def test_truncated_last_line() -> None:
    data = line("a\n") + line("b\n")[:20]
    recs, probs = decode(data)
    assert [r.line for r in recs] == [b"a\n"]
    assert len(probs) == 1 and "half-written" in probs[0].message and probs[0].line_no == 2


def test_complete_last_line_without_newline_is_decoded() -> None:
    recs, probs = decode(line("a\n")[:-1])
    assert [r.line for r in recs] == [b"a\n"] and probs == []


def test_overlong_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonlog, "MAX_LINE_BYTES", 100)
    data = line("a\n") + line("y" * 500) + line("b\n")
    recs, probs = decode(data, chunk=7)
    assert [r.line for r in recs] == [b"a\n", b"b\n"]
    assert len(probs) == 1 and "longer than" in probs[0].message and probs[0].line_no == 2
    assert recs[1].line_no == 3


def test_issue_sink() -> None:
    issues = IssueLog()
    list(iter_jsonlog(io.BytesIO(b"junk\n"), "c/x-json.log", issue_sink(issues, "containers/")))
    (issue,) = issues.items
    assert issue.code == "log.malformed" and issue.path == "containers/c/x-json.log"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=50))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    probs: list[LogProblem] = []
    try:
        recs = list(iter_jsonlog([data[i:i + chunk] for i in range(0, len(data), chunk)], "r", probs.append))
    except LogFormatError:  # allowed by contract, but the decoder reports instead
        pytest.fail("decoder raised instead of reporting")
    for r in recs:
        assert isinstance(r.line, bytes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.sampled_from(["stdout", "stderr"]),
                          st.integers(min_value=0, max_value=4102444800 * 10**9)), max_size=10))
def test_roundtrip_against_docker_writer(items: list[tuple[str, str, int]]) -> None:
    """Lines written the way dockerd's MarshalJSONBuf writes them decode back exactly."""
    from analyzer.formats.timefmt import format_rfc3339nano

    def go_escape(b: bytes) -> bytes:
        out = bytearray(b'"')
        for ch in go_decode_utf8(b):
            o = ord(ch)
            if ch in '\\"':
                out += b"\\" + ch.encode()
            elif ch == "\n":
                out += b"\\n"
            elif ch == "\r":
                out += b"\\r"
            elif o < 0x20 or ch in "<>&":
                out += b"\\u00%02x" % o
            elif ch in "\u2028\u2029":
                out += b"\\u%04x" % o
            else:
                out += ch.encode("utf-8", "surrogatepass")
        return bytes(out + b'"')

    data = b"".join(b'{"log":' + go_escape(t.encode("utf-8", "surrogatepass") + b"\n") + b',"stream":"'
                    + s.encode() + b'","time":"' + format_rfc3339nano(ns).encode() + b'"}\n'
                    for t, s, ns in items)
    recs, probs = decode(data)
    assert probs == []
    want = [(go_decode_utf8(t.encode("utf-8", "surrogatepass")).encode() + b"\n", s, ns) for t, s, ns in items]
    assert [(r.line, r.stream, r.time_ns) for r in recs] == want


# --- real data ------------------------------------------------------------------------

def test_plaso_fixture() -> None:
    (path,) = (FIXTURES / "plaso/docker/containers").glob("*/container-json.log")
    with path.open("rb") as fh:
        recs, probs = decode(fh.read())
    assert len(recs) == 9 and len(probs) == 1  # first line's time has no zone: Go refuses it
    assert "bad time" in probs[0].message and probs[0].line_no == 1
    assert recs[0].time_ns == parse_rfc3339nano("2016-01-07T16:49:10.2Z")
    assert recs[-1].time_ns == 1452185350_237222729
    assert all(r.line == b"\x1b]0;root@e7d0b7ea5ccf: /home/plaso\x07root@e7d0b7ea5ccf:/home/plaso# ls\r\n" for r in recs)


def _tgz_logs(name: str) -> dict[str, bytes]:
    out = {}
    with tarfile.open(FIXTURES / "docker-explorer" / name, "r:gz") as tf:
        for m in tf:
            if m.isfile() and m.name.endswith("-json.log"):
                f = tf.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
    return out


@pytest.mark.parametrize("tgz", ["aufs.v1.tgz", "aufs.v2.tgz", "overlay.v2.tgz", "overlay2.v2.tgz", "vols.v2.tgz"])
def test_docker_explorer_fixtures(tgz: str) -> None:
    logs = _tgz_logs(tgz)
    assert logs
    for name, data in logs.items():
        recs, probs = decode(data)
        assert probs == [], (name, probs[:2])
        assert len(recs) == data.count(b"\n")
        for r in recs:
            assert r.stream in ("stdout", "stderr") and r.time_ns > 1.4e18


def test_overlay2_fixture_error_message() -> None:
    # docker-explorer's overlay2.v2 has "error message in a json log"
    lines = [r.line for d in _tgz_logs("overlay2.v2.tgz").values() for r in decode(d)[0] if r.stream == "stderr"]
    assert lines, "expected stderr lines in overlay2.v2"


# --- logfiles: order, names, gzip -----------------------------------------------------

def test_parse_log_name_and_driver() -> None:
    p = parse_log_name("containers/ab/ab-json.log.2.gz")
    assert p is not None and (p.base, p.index, p.compressed) == ("containers/ab/ab-json.log", 2, True)
    assert parse_log_name("config.v2.json") is None
    assert driver_of("ab-json.log.1") == "json-file"
    assert driver_of("x/local-logs/container.log.3.gz") == "local"
    assert driver_of("x/container-cached.log") == "local"
    with pytest.raises(FormatError):
        driver_of("hostconfig.json")


def test_order_like_dockerd() -> None:
    names = ["c/i-json.log", "c/i-json.log.1", "c/i-json.log.1.gz", "c/i-json.log.2.gz",
             "c/i-json.log.10", "c/i-json.log.3.gz.tmp", "c/hosts"]
    assert order_log_files(names) == ["c/i-json.log.10", "c/i-json.log.2.gz", "c/i-json.log.1", "c/i-json.log"]
    ignored: list[tuple[str, str]] = []
    assert order_log_files(names, max_file=3, ignored=ignored) == ["c/i-json.log.2.gz", "c/i-json.log.1", "c/i-json.log"]
    assert {n for n, _ in ignored} == {"c/i-json.log.10", "c/i-json.log.1.gz", "c/i-json.log.3.gz.tmp", "c/hosts"}
    assert order_log_files(["local-logs/container.log", "local-logs/container.log.1.gz",
                            "local-logs/container.log.4.gz"], max_file=5) == \
        ["local-logs/container.log.4.gz", "local-logs/container.log.1.gz", "local-logs/container.log"]


def go_gzip(payload: bytes, last_time: str | None) -> bytes:
    """A gzip member as Go's compress/gzip writes it with Header.Extra = {"lastTime":...}."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(payload) + c.flush()
    if last_time is None:
        head = b"\x1f\x8b\x08\x00\0\0\0\0\x00\xff"
    else:
        extra = json.dumps({"lastTime": last_time}, separators=(",", ":")).encode()
        head = b"\x1f\x8b\x08\x04\0\0\0\0\x00\xff" + struct.pack("<H", len(extra)) + extra
    return head + body + struct.pack("<II", zlib.crc32(payload), len(payload))


def test_gzip_rotation_with_fextra() -> None:
    rot2 = line("one\n") + line("two\n")
    rot1 = line("three\n")
    cur = line("four\n")
    files = {"i-json.log.2.gz": go_gzip(rot2, "2024-01-02T03:04:05.5Z"),
             "i-json.log.1.gz": go_gzip(rot1, "2024-01-02T03:04:06Z"),
             "i-json.log": cur}
    info: list[GzipInfo] = []
    assert b"".join(iter_log_file([files["i-json.log.2.gz"][i:i + 3] for i in range(0, 200, 3)],
                                  "i-json.log.2.gz", None, info)) == rot2
    assert info[0].last_time_ns == parse_rfc3339nano("2024-01-02T03:04:05.5Z")
    assert info[0].extra == b'{"lastTime":"2024-01-02T03:04:05.5Z"}'
    probs: list[LogProblem] = []
    recs = list(iter_log_records(((n, io.BytesIO(files[n])) for n in order_log_files(files)), probs.append))
    assert [r.line for r in recs] == [b"one\n", b"two\n", b"three\n", b"four\n"]
    assert [r.source for r in recs] == ["i-json.log.2.gz"] * 2 + ["i-json.log.1.gz", "i-json.log"]
    assert probs == []


def test_gzip_without_extra_and_damaged() -> None:
    assert parse_gzip_header(go_gzip(b"x", None)) == GzipInfo(None, None, 0)
    with pytest.raises(FormatError):
        parse_gzip_header(b"PK\x03\x04" + bytes(20))
    g = go_gzip(b"".join(line(f"{i * 7919 % 10007}\n") for i in range(50)), "2024-01-02T03:04:05Z")
    probs: list[LogProblem] = []
    recs = list(iter_log_records([("i-json.log.1.gz", io.BytesIO(g[: len(g) // 2]))], probs.append))
    assert 0 < len(recs) < 50
    assert any("truncated" in p.message for p in probs)
    probs.clear()
    bad = g[:30] + bytes(b ^ 0xFF for b in g[30:60]) + g[60:]
    list(iter_log_records([("i-json.log.1.gz", io.BytesIO(bad))], probs.append))
    assert probs
    probs.clear()
    list(iter_log_file(io.BytesIO(b"not gzip at all"), "i-json.log.1.gz", probs.append))
    assert probs and "not a gzip" in probs[0].message
