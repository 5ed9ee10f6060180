"""The tar reader's fast path against its exact per-member code.

:mod:`analyzer.sources.tarscan` decodes runs of ordinary members in bulk and hands
everything unusual to the exact code in :mod:`analyzer.sources.tarstream`. Here both
read the same archives — the committed samples, the peer fixtures, the hostile
variants of ``tests/hostile.py``, archives written by ``tarfile`` and GNU tar in every
format, and random archives from hypothesis — and must give identical members,
payloads, issues, evidence hashes and member-index rows. The decompression readers
(thread, ``pigz``/``gzip`` subprocess, in-process) must agree the same way.

Every test runs twice, once with the compiled scanner (``_ctarscan.c``) and once with
its numpy twin, and random header corruptions check that neither accepts a member the
exact code reads differently.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analyzer.sources.tarstream as tarstream
from analyzer.errors import AnalyzerError
from analyzer.pipeline import read_evidence
from analyzer.sources import compression, tarscan
from analyzer.sources.tarscan import MemberBatch
from analyzer.sources.tarstream import TarSource
from tests import hostile

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(ROOT.glob("samples/*/docker-root.tar.zst"))
PEERS = sorted(Path("/work/shared/peer-fixtures").glob("*/*.tgz"))


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with each implementation of the fast path's walk + decode."""
    if request.param == "compiled":
        assert tarscan._ctarscan is not None, (
            "the compiled tar scanner was not built: `pip install -e .` needs a C compiler")
    monkeypatch.setattr(tarscan, "COMPILED", request.param == "compiled")
    return request.param


def walk(path: Path, **kw: Any) -> tuple[TarSource, list[tuple[Any, bytes | None]]]:
    src = TarSource(os.fspath(path), **kw)
    return src, [(m, p.read() if p is not None else None) for m, p in src]


def assert_same_stream(path: Path) -> int:
    """Fast and exact readers agree on ``path``; returns how many members went fast."""
    fast, a = walk(path, fast=True)
    slow, b = walk(path, fast=False)
    assert a == b
    assert fast.info == slow.info  # issues, hash, completeness, member count
    src = TarSource(os.fspath(path))
    return sum(i.n for i in src.items() if isinstance(i, MemberBatch))


def assert_same_rows(path: Path, monkeypatch: pytest.MonkeyPatch, hash_files: bool = True
                     ) -> None:
    """The one pass gives the same index, captures, logs and issues either way."""
    out = {}
    for fast in (True, False):
        monkeypatch.setattr(tarstream, "FAST_PATH", fast)
        out[fast] = read_evidence(os.fspath(path), hash_files=hash_files)
    a, b = out[True], out[False]
    assert a.files.to_table().equals(b.files.to_table())
    assert a.captured == b.captured
    assert [vars(x) for x in a.logs] == [vars(x) for x in b.logs]
    assert a.info == b.info and a.roots == b.roots


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.parent.name)
def test_samples_fast_equals_exact(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert assert_same_stream(path) > 0
    assert_same_rows(path, monkeypatch)


@pytest.mark.skipif(not PEERS, reason="peer fixtures not present")
@pytest.mark.parametrize("path", PEERS, ids=lambda p: p.name)
def test_peer_fixtures_fast_equals_exact(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same_stream(path)
    assert_same_rows(path, monkeypatch, hash_files=False)


HOSTILE = {
    "moved-root": lambda d: hostile.moved_root(d / "a.tar", "srv/docker-data"),
    "two-roots": lambda d: hostile.two_roots(d / "a.tar", "backup/docker"),
    "no-root": lambda d: hostile.no_root(d / "a.tar"),
    "truncated": lambda d: hostile.truncated_copy(d / "a.tar", 0.6),
    "escapes": lambda d: hostile.derive(d / "a.tar", extra=[
        hostile.file_member("../../etc/evil", b"x"), hostile.file_member("/abs/evil", b"y"),
        hostile.file_member("./ok/../../up", b"z"), hostile.file_member("a//b/./c", b"w"),
        hostile.file_member("caf\xe9/ünï", b"u")]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_fast_equals_exact(tmp_path: Path, name: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = HOSTILE[name](tmp_path)
    assert_same_stream(path)
    assert_same_rows(path, monkeypatch)


def _tree_tar(path: Path, fmt: int) -> Path:
    """Every member kind, long names and links, ``./`` prefixes, devices, big ids."""
    with tarfile.open(path, "w", format=fmt) as tf:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: Any) -> None:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.size = len(data)
            ti.mtime = kw.pop("mtime", 1_700_000_000)
            for k, v in kw.items():
                setattr(ti, k, v)
            try:
                tf.addfile(ti, io.BytesIO(data) if data else None)
            except ValueError:  # too long for USTAR
                assert fmt == tarfile.USTAR_FORMAT
        add("./d/", tarfile.DIRTYPE, mode=0o755)
        add("./d/f", data=b"hello", mode=0o4755, uid=1000, gid=1000)
        add("./d/" + "long-" * 40 + "name", data=b"x" * 700)
        add("d/sub/" + "p" * 90 + "/" + "n" * 90, data=b"prefix split")
        add("d/link", tarfile.SYMTYPE, linkname="../d/f")
        add("d/longlink", tarfile.SYMTYPE, linkname="t" * 150)
        add("d/hard", tarfile.LNKTYPE, linkname="./d/f")
        add("d/.wh.gone", tarfile.REGTYPE)
        add("d/.wh..wh..opq", tarfile.REGTYPE)
        add("d/wh-dev", tarfile.CHRTYPE, devmajor=0, devminor=0)
        add("d/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("d/blk", tarfile.BLKTYPE, devmajor=8, devminor=0)
        add("d/fifo", tarfile.FIFOTYPE)
        add("d/empty", data=b"")
        add("d/old", data=b"1", mtime=0)
        if fmt != tarfile.USTAR_FORMAT:
            add("d/bigid", data=b"2", uid=3_000_000, gid=3_000_001)
    return path


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_every_kind_and_format(tmp_path: Path, fmt: int) -> None:
    assert assert_same_stream(_tree_tar(tmp_path / "t.tar", fmt)) > 0


NAME = st.text(st.sampled_from(list("ab./-_") + ["é", "\x7f", " ", "\n", "="]), min_size=1,
               max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(NAME, min_size=1, max_size=25).map("/".join),
                          st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                           tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]),
                          st.binary(max_size=1200), NAME,
                          st.one_of(st.none(), st.floats(0, 4e9, allow_nan=False))),
                min_size=1, max_size=12),
       st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_random_archives(members: list[tuple[str, bytes, bytes, str, float | None]],
                         fmt: int) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for name, kind, data, link, pax_time in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.size = len(data) if kind == tarfile.REGTYPE else 0
            ti.mtime = 1_700_000_000
            ti.linkname = link if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            if fmt == tarfile.PAX_FORMAT and pax_time is not None:
                ti.pax_headers = {"atime": repr(pax_time), "ctime": str(int(pax_time))}
            try:
                tf.addfile(ti, io.BytesIO(data) if ti.size else None)
            except ValueError:  # a name USTAR cannot hold
                continue
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.tar"
        path.write_bytes(buf.getvalue())
        assert_same_stream(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
       st.lists(st.tuples(st.integers(0, 1 << 30), st.sampled_from(
           [0, 32, 46, 47, 48, 55, 56, 10, 61, 120, 76, 103, 200, 0x80, 0xff]),
           st.booleans()), min_size=1, max_size=6))
def test_corrupt_headers(fmt: int, edits: list[tuple[int, int, bool]]) -> None:
    """Bytes of headers and pax records overwritten at random: fast and exact agree."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for i, (name, data) in enumerate([("./a/b", b"x" * 600), ("a/" + "l" * 120, b"y"),
                                          ("a/c", b""), ("a/d/", None), ("a/e", b"z" * 9)]):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
            ti.size = len(data or b"")
            ti.mtime = 1_700_000_000 + i
            if fmt == tarfile.PAX_FORMAT:
                ti.pax_headers = {"mtime": f"{1_700_000_000 + i}.25", "uid": "7"}
            try:
                tf.addfile(ti, io.BytesIO(data) if data else None)
            except ValueError:
                continue
    data = bytearray(buf.getvalue())
    headers = [o for o in range(0, len(data), 512) if data[o + 257:o + 262] == b"ustar"]
    for where, value, in_header in edits:
        h = headers[where % len(headers)]
        # a header field, or the first bytes after a header (a pax record or content)
        off = h + (where >> 8) % 512 if in_header else h + 512 + (where >> 8) % 64
        if off < len(data):
            data[off] = value
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.tar"
        path.write_bytes(bytes(data))
        outcome = []
        for fast in (True, False):
            try:
                src, got = walk(path, fast=fast)
                outcome.append((got, src.info))
            except AnalyzerError as exc:  # e.g. the first header no longer looks like tar
                outcome.append((type(exc), str(exc)))
        assert outcome[0] == outcome[1]


def test_old_gnu_header_times(tmp_path: Path) -> None:
    """Old GNU headers carry atime/ctime in the header; both paths read them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name in ("a", "b"):
            ti = tarfile.TarInfo(name)
            ti.size = 1
            tf.addfile(ti, io.BytesIO(b"x"))
    data = bytearray(buf.getvalue())
    data[345:357] = b"%011o\0" % 1_600_000_000
    data[357:369] = b"%011o\0" % 1_650_000_000
    data[148:156] = b" " * 8
    data[148:156] = b"%06o\0 " % sum(data[:512])
    path = tmp_path / "g.tar"
    path.write_bytes(bytes(data))
    assert assert_same_stream(path) == 2
    m = walk(path)[1][0][0]
    assert (m.atime, m.ctime) == (1_600_000_000 * 10**9, 1_650_000_000 * 10**9)


# -- readers ----------------------------------------------------------------------------
def _readers(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, list]]:
    """The same file through each decompression reader available."""
    out = []
    for env, threads in ((None, True), ("python", True), (None, False)):
        if env is None:
            monkeypatch.delenv(compression.ENV_DECOMPRESSOR, raising=False)
        else:
            monkeypatch.setenv(compression.ENV_DECOMPRESSOR, env)
        src, got = walk(path, threads=threads)
        out.append((src.info, got))
    return out


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_readers_agree(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _tree_tar(tmp_path / "t.tar", tarfile.PAX_FORMAT).read_bytes()
    data = {"none": plain, "gzip": gzip.compress(plain),
            "zstd": zstandard.ZstdCompressor().compress(plain)}[kind]
    path = tmp_path / "evidence"
    path.write_bytes(data + b"trailing junk" * 10)
    runs = _readers(path, monkeypatch)
    assert all(r == runs[0] for r in runs[1:])
    assert runs[0][0].complete and runs[0][0].compression == kind


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_readers_agree_on_damage(tmp_path: Path, kind: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    plain = hostile.sample_tar_bytes()
    data = gzip.compress(plain) if kind == "gzip" else zstandard.ZstdCompressor().compress(plain)
    (tmp_path / "cut").write_bytes(data[:len(data) * 6 // 10])
    for info, got in _readers(tmp_path / "cut", monkeypatch):
        assert not info.complete
        assert set(info.issues.codes()) <= {"archive.truncated", "archive.corrupt"}
        assert info.issues.codes()
        assert [m.path for m, _ in got] == [m.path for m, _ in walk(
            tmp_path / "cut", threads=False)[1]][:len(got)]


def test_large_member_is_hashed_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """A member larger than the read buffer streams through the exact code."""
    import hashlib

    big = os.urandom(3 * compression.CHUNK + 12345)
    path = tmp_path / "big.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in (("a", b"small"), ("big", big), ("z", b"after")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    assert_same_stream(path)
    raw = read_evidence(os.fspath(path))
    files = raw.files.to_table()
    sha = dict(zip(files["path"].to_pylist(), files["sha256"].to_pylist()))
    assert sha["big"] == hashlib.sha256(big).hexdigest()
    assert sha["z"] == hashlib.sha256(b"after").hexdigest()
