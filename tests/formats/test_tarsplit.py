"""Tests of the tar-split decoder and CRC-64/GO-ISO (analyzer.formats.tarsplit).

A small packer here turns a tar made by :mod:`tarfile` into a tar-split stream
the way upstream's disassembler does (each segment = the bytes between two
payloads: padding, extension headers, header), so decoding, header parsing and
re-assembly are checked byte for byte without Go.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.errors import FormatError, TarSplitFormatError
from analyzer.formats import tarsplit
from analyzer.formats.tarsplit import (CRC64_VECTORS, FileEntry, Segment, assemble, crc64,
                                       crc64_bytes, crc64_table, iter_entries, iter_items)


# --- CRC -----------------------------------------------------------------------------

@pytest.mark.parametrize("data,want", CRC64_VECTORS)
def test_crc_vectors(data: bytes, want: int) -> None:
    assert crc64_table(data) == want
    assert crc64(data) == want


def test_crc_as_stored_by_tar_split() -> None:
    value = crc64(b"imma hurr til I derp")
    assert crc64_bytes(value).hex(" ") == "02 74 a4 b1 ab ec 6b 4e"
    assert base64.b64encode(crc64_bytes(value)).decode() == "AnSksavsa04="
    cafe = "café con leche, por favor".encode()
    assert len(cafe) == 26
    assert crc64_bytes(crc64(cafe)).hex(" ") == "7e 48 59 ef e6 fc a0 bb"
    assert crc64(b"") == 0


def test_crc_is_not_ecma_or_zero_init() -> None:
    assert crc64(b"123456789") != 0x995DC9BBDF1939FA  # CRC-64/XZ (ECMA-182)
    init0 = 0  # the same table with init 0 and no final xor (another "ISO" variant)
    for byte in b"123456789":
        init0 = tarsplit.CRC64_TABLE[(init0 ^ byte) & 0xFF] ^ (init0 >> 8)
    assert crc64(b"123456789") != init0


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_crc_chains_and_backends_agree(data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    assert crc64(data[cut:], crc64(data[:cut])) == crc64_table(data)
    assert crc64_table(data[cut:], crc64_table(data[:cut])) == crc64(data)


def test_fast_backend_is_used_only_when_verified() -> None:
    assert tarsplit.CRC64_BACKEND in ("fastcrc", "table")
    big = os.urandom(1 << 16)
    assert crc64(big) == crc64_table(big)


# --- a packer (test helper) --------------------------------------------------------------

def sample_tar() -> tuple[bytes, dict[str, bytes]]:
    """A layer-like tar: dirs, files, a long pax name, symlink, hardlink, whiteouts, xattr."""
    buf = io.BytesIO()
    contents: dict[str, bytes] = {}
    long_name = "etc/" + "x" * 120 + ".conf"
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
                link: str = "", mtime: int = 1_700_000_000, uid: int = 0,
                pax: dict[str, str] | None = None) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, mtime, uid, uid
            ti.linkname = link
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            if pax:
                ti.pax_headers = pax
            tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            if kind == tarfile.REGTYPE and data:
                contents[name] = data

        add("etc/", tarfile.DIRTYPE, mode=0o755)
        add("etc/hello.txt", data=b"imma hurr til I derp")
        add(long_name, data=b"long" * 300, mode=0o600, uid=1000)
        add("etc/.wh.gone")
        add("etc/sub/", tarfile.DIRTYPE, mode=0o755)
        add("etc/sub/.wh..wh..opq")
        add("etc/link", tarfile.SYMTYPE, link="/etc/hello.txt", mode=0o777)
        add("etc/hard", tarfile.LNKTYPE, link="etc/hello.txt")
        add("bin/", tarfile.DIRTYPE, mode=0o755)
        add("bin/ping", data=b"\x7fELF" + bytes(600), mode=0o4755,
            pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})
        add("empty", data=b"")
    return buf.getvalue(), contents


def pack(tar_bytes: bytes, *, name_raw: bool = False) -> bytes:
    """tar bytes → tar-split.json.gz, like upstream's disassembler."""
    lines: list[dict] = []
    pos = 0

    def emit(obj: dict) -> None:
        obj["position"] = len(lines)
        lines.append(obj)

    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for ti in tar:
            emit({"type": 2, "payload": base64.b64encode(tar_bytes[pos:ti.offset_data]).decode()})
            entry: dict = {"type": 1}
            if name_raw:
                entry["name_raw"] = base64.b64encode(ti.name.encode()).decode()
            else:
                entry["name"] = ti.name + ("/" if ti.isdir() else "")
            size = ti.size if ti.isreg() else 0
            if size:
                entry["size"] = size
            data = tar_bytes[ti.offset_data:ti.offset_data + size]
            entry["payload"] = base64.b64encode(crc64_bytes(crc64(data))).decode() \
                if size else None
            emit(entry)
            pos = ti.offset_data + size
    emit({"type": 2, "payload": base64.b64encode(tar_bytes[pos:]).decode()})
    return gz_lines(lines)


def gz_lines(objs: list[dict]) -> bytes:
    text = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs)
    return gzip.compress(text.encode(), mtime=0)


# --- decoding -------------------------------------------------------------------------------

def test_entries_and_headers() -> None:
    tar_bytes, contents = sample_tar()
    entries = {e.name.rstrip("/"): e for e in iter_entries(pack(tar_bytes))}
    hello = entries["etc/hello.txt"]
    assert hello.size == 20 and hello.crc == bytes.fromhex("0274a4b1abec6b4e")
    assert hello.header.typeflag == "0" and hello.header.mode == 0o644
    assert hello.header.mtime == 1_700_000_000 * 10**9
    long_name = next(n for n in entries if n.endswith(".conf"))
    assert len(long_name) > 100
    assert entries[long_name].header.uid == 1000 and entries[long_name].header.mode == 0o600
    assert entries[long_name].size == 1200
    assert entries["etc"].header.typeflag == "5"
    assert entries["etc/link"].header.typeflag == "2"
    assert entries["etc/link"].header.linkname == "/etc/hello.txt"
    assert entries["etc/hard"].header.typeflag == "1"
    assert entries["etc/hard"].header.linkname == "etc/hello.txt"
    assert entries["etc/hard"].crc is None and entries["etc/hard"].size == 0
    assert entries["etc/.wh.gone"].size == 0
    assert entries["etc/sub/.wh..wh..opq"].header.typeflag == "0"
    ping = entries["bin/ping"].header
    assert ping.mode == 0o4755
    assert ping.xattrs == {"security.capability": b"\x01\x00\x00\x02"}
    assert entries["empty"].crc is None
    for name, data in contents.items():
        assert entries[name].crc_value == crc64(data)


def test_name_raw_is_decoded() -> None:
    tar_bytes, _ = sample_tar()
    names = [e.name for e in iter_entries(pack(tar_bytes, name_raw=True))]
    assert "etc/hello.txt" in names


def test_assemble_is_byte_exact() -> None:
    tar_bytes, contents = sample_tar()
    out = bytearray()
    items = list(iter_items(pack(tar_bytes)))
    assert isinstance(items[0], Segment) and isinstance(items[1], FileEntry)
    assemble(items, lambda e: contents[e.name], out.extend)
    assert hashlib.sha256(out).digest() == hashlib.sha256(tar_bytes).digest()
    with pytest.raises(LookupError):
        assemble(items, lambda e: None, out.extend)


def test_reads_file_objects_and_the_real_sample_format() -> None:
    tar_bytes, _ = sample_tar()
    data = pack(tar_bytes)
    assert [e.name for e in iter_entries(io.BytesIO(data))] == \
        [e.name for e in iter_entries(data)]
    # the example of docker-root-format.md §6.1, verbatim file entries
    objs = [{"type": 1, "name": "etc/hello.txt", "size": 20, "payload": "AnSksavsa04=",
             "position": 0}]
    (entry,) = iter_items(gz_lines(objs), headers=False)
    assert entry.crc_value == crc64(b"imma hurr til I derp")


# --- malformed input ------------------------------------------------------------------------

def _first_entry_line(**change: object) -> bytes:
    tar_bytes, _ = sample_tar()
    objs = [json.loads(line) for line in gzip.decompress(pack(tar_bytes)).splitlines()]
    objs[1].update(change)
    return gz_lines(objs)


@pytest.mark.parametrize("data,match", [
    (b"not gzip at all", "gzip"),
    (gzip.compress(b"{not json}\n"), "not JSON"),
    (gzip.compress(b"[1, 2]\n"), "not a JSON object"),
    (gz_lines([{"type": 3, "position": 0}]), "unknown type"),
    (gz_lines([{"type": 2, "payload": "@@@", "position": 0}]), "base64"),
    (gz_lines([{"type": 1, "name": "a", "size": 3, "payload": "AAAA", "position": 0}]),
     "not 8"),
    (gz_lines([{"type": 1, "name": "a", "size": 3, "payload": None, "position": 0}]),
     "no CRC"),
    (gz_lines([{"type": 1, "size": 0, "payload": None, "position": 0}]), "no name"),
    (gz_lines([{"type": 1, "name": "a", "size": -1, "payload": None, "position": 0}]),
     "invalid size"),
    (gz_lines([{"type": 1, "name": "a", "position": "x"}]), "invalid position"),
    (gz_lines([{"type": 1, "name": "a/b", "payload": None, "position": 0},
               {"type": 1, "name": "./a/b", "payload": None, "position": 1}]), "duplicate"),
])
def test_malformed_streams_raise(data: bytes, match: str) -> None:
    with pytest.raises(TarSplitFormatError, match=match):
        list(iter_items(data, headers=False))


def test_truncated_gzip_raises() -> None:
    tar_bytes, _ = sample_tar()
    data = pack(tar_bytes)
    with pytest.raises(TarSplitFormatError):
        list(iter_items(data[: len(data) // 2]))


def test_headers_must_be_valid_and_match() -> None:
    with pytest.raises(TarSplitFormatError, match="does not match"):
        list(iter_items(_first_entry_line(name="etc/other/")))
    garbage = gz_lines([{"type": 2, "payload": base64.b64encode(b"x" * 512).decode(),
                         "position": 0},
                        {"type": 1, "name": "a", "payload": None, "position": 1}])
    with pytest.raises(TarSplitFormatError, match="invalid tar header"):
        list(iter_items(garbage))
    short = gz_lines([{"type": 1, "name": "a", "payload": None, "position": 0}])
    with pytest.raises(TarSplitFormatError, match="no complete tar header"):
        list(iter_items(short))
    assert [e.name for e in iter_items(short, headers=False)] == ["a"]  # without headers: ok


def test_errors_are_format_errors() -> None:
    assert issubclass(TarSplitFormatError, FormatError)
