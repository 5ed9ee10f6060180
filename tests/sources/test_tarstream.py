"""The streaming tar reader against Python's :mod:`tarfile` as an independent oracle.

Archives are built in each test with ``tarfile`` (GNU, PAX, USTAR) and with GNU
``tar`` itself (posix with xattrs, gnu, oldgnu, sparse). Every member's metadata
and payload must agree with ``tarfile``'s view; compressed variants are detected
by content whatever their names; the evidence hash covers every byte of the file.
Then damaged archives: each case asserts that nothing escapes, which issues are
recorded, whether ``info.complete`` holds, and which members survive.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zstandard

from analyzer.errors import NotASnapshot, UnsupportedCompression
from analyzer.pipeline import read_evidence
from analyzer.sources.base import clean_path
from analyzer.sources.member import Member
from analyzer.sources.tarstream import MAX_EXT_HEADER, TarSource

KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
         tarfile.GNUTYPE_SPARSE: "file", tarfile.LNKTYPE: "hardlink",
         tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
         tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo"}
NONUTF8 = b"caf\xe9-latin1.txt".decode("utf-8", "surrogateescape")
#: a valid VFS_CAP_REVISION_2 value with the effective flag (cap_net_bind_service): binary
CAPABILITY = struct.pack("<IIIII", 0x02000001, 0x400, 0, 0, 0)
BIG_ID = 3_000_000  # > 2097151: needs base-256 (GNU) or a pax record
HAS_GNU_TAR = shutil.which("tar") is not None


# -- helpers ---------------------------------------------------------------------------
def read_all(path: Path) -> tuple[TarSource, list[tuple[Member, bytes | None]]]:
    """Walk ``path`` with our reader; payloads read fully while positioned on them."""
    src = TarSource(os.fspath(path))
    out = [(m, p.read() if p is not None else None) for m, p in src]
    return src, out


def oracle(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """``tarfile``'s view of ``path``: every member with its (expanded) payload."""
    out = []
    with tarfile.open(path, "r:*", errors="surrogateescape") as tf:
        for ti in tf:
            data = tf.extractfile(ti).read() if ti.isreg() else None  # type: ignore[union-attr]
            out.append((ti, data))
    return out


def pax_ns(value: str) -> int:
    """A pax time string as exact ns (for comparing against float-free values)."""
    return int(Decimal(value) * 1_000_000_000)


def assert_matches_oracle(path: Path) -> list[tuple[Member, bytes | None]]:
    """Assert our reader and ``tarfile`` agree on every member of ``path``."""
    src, ours = read_all(path)
    theirs = oracle(path)
    assert [m.path for m, _ in ours] == [clean_path(ti.name) for ti, _ in theirs]
    for (m, data), (ti, tdata) in zip(ours, theirs):
        where = m.path
        assert m.kind == KINDS[ti.type], where
        assert m.size == (ti.size if ti.isreg() else 0), where
        assert m.mode == ti.mode & 0o7777, where
        assert (m.uid, m.gid) == (ti.uid, ti.gid), where
        if "mtime" in ti.pax_headers:
            assert m.mtime == pax_ns(ti.pax_headers["mtime"]), where
        else:
            assert m.mtime == int(ti.mtime) * 1_000_000_000, where
        if ti.issym():
            assert m.linkname == ti.linkname, where
        elif ti.islnk():
            assert m.linkname == clean_path(ti.linkname), where
        else:
            assert m.linkname == "", where
        if ti.ischr() or ti.isblk():
            assert (m.devmajor, m.devminor) == (ti.devmajor, ti.devminor), where
        xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                  for k, v in ti.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        assert m.xattrs == xattrs, where
        if ti.isreg():  # empty files have no payload object
            assert (data if data is not None else b"") == tdata, where
        else:
            assert data is None, where
    assert src.info.complete and set(src.info.issues.codes()) <= {"path.nonutf8"}
    assert src.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    return ours


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **kw: Any) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mtime, ti.mode = kind, size, kw.pop("mtime", 1_700_000_000), 0o644
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def build_tarfile(path: Path, fmt: int) -> Path:
    """An archive with every member kind, long names/links and edge numbers, in ``fmt``."""
    long_dir = "d" * 90 + "/" + "e" * 90  # > 100 chars: prefix field or extension header
    huge = "/".join(["x" * 60] * 5)  # > 255 chars: needs a GNU or pax long name
    rnd = os.urandom(70_000)
    members: list[tuple[tarfile.TarInfo, bytes]] = [
        (_info("root", tarfile.DIRTYPE, mode=0o755), b""),
        (_info("root/hello.txt", size=6, uid=1000, gid=1000), b"hello\n"),
        (_info("root/empty"), b""),
        (_info("root/random.bin", size=len(rnd)), rnd),
        (_info(f"root/{long_dir}/f.txt", size=3), b"abc"),
        (_info("root/hard", tarfile.LNKTYPE, linkname="root/hello.txt"), b""),
        (_info("root/sym", tarfile.SYMTYPE, linkname="hello.txt"), b""),
        (_info("root/.wh.deleted", tarfile.CHRTYPE, devmajor=0, devminor=0), b""),
        (_info("root/sda", tarfile.BLKTYPE, devmajor=8, devminor=1), b""),
        (_info("root/fifo", tarfile.FIFOTYPE), b""),
        (_info("root/setuid", size=1, mode=0o4755), b"x"),
    ]
    if fmt != tarfile.USTAR_FORMAT:  # ustar cannot hold these
        members += [
            (_info(f"root/{huge}", size=4), b"long"),
            (_info("root/longsym", tarfile.SYMTYPE, linkname="t/" * 100 + "target"), b""),
            (_info(f"root/{NONUTF8}", size=2), b"nu"),
            (_info("root/bigid", size=1, uid=BIG_ID, gid=BIG_ID + 1), b"u"),
            (_info("root/old", size=1, mtime=-86400 * 365 * 10), b"o"),
        ]
    if fmt == tarfile.PAX_FORMAT:
        opq = _info("root/opaque", tarfile.DIRTYPE, mode=0o755)
        opq.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y"}
        cap = _info("root/ping", size=1, mode=0o755, mtime=1_700_000_000.5)
        cap.pax_headers = {"SCHILY.xattr.security.capability":
                           CAPABILITY.decode("utf-8", "surrogateescape")}
        members += [(opq, b""), (cap, b"p")]
    with tarfile.open(path, "w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data else None)
    return path


def build_tree(root: Path) -> Path:
    """A real directory with every kind GNU tar can archive (we run as root)."""
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "random.bin").write_bytes(os.urandom(50_000))
    deep = root / ("d" * 100) / ("e" * 100) / ("f" * 80)
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_bytes(b"deep")
    os.link(root / "hello.txt", root / "hard")
    os.symlink("hello.txt", root / "sym")
    os.symlink("../" * 4 + "etc", root / "escape")
    os.symlink("/".join(["t" * 50] * 4) + "/target", root / "longsym")
    os.mkfifo(root / "fifo")
    (root / os.fsdecode(b"caf\xe9")).write_bytes(b"nonutf8")
    sparse = root / "sparse.img"
    with open(sparse, "wb") as fh:
        fh.truncate(3 << 20)
        fh.seek(1 << 20)
        fh.write(b"DATA" * 1000)
        fh.seek((3 << 20) - 5)
        fh.write(b"tail!")
    old = root / "old.txt"
    old.write_bytes(b"1969")
    os.utime(old, ns=(-123_456_789_123, -123_456_789_123))
    ns = root / "ns.txt"
    ns.write_bytes(b"ns")
    os.utime(ns, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    big = root / "bigid"
    big.write_bytes(b"b")
    os.chown(big, BIG_ID, BIG_ID + 7)
    if os.geteuid() == 0:
        os.mknod(root / ".wh.gone", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        opq = root / "opaque"
        opq.mkdir()
        os.setxattr(opq, "trusted.overlay.opaque", b"y")
        os.setxattr(root / "random.bin", "security.capability", CAPABILITY)
        os.setxattr(root / "hello.txt", "user.note", b"note")
    return root


def gnu_tar(out: Path, tree: Path, *opts: str) -> Path:
    """Run GNU ``tar`` on ``tree`` (members ``./...``)."""
    subprocess.run(["tar", *opts, "-cf", os.fspath(out), "-C", os.fspath(tree), "."],
                   check=True, capture_output=True)
    return out


def compress(data: bytes, kind: str) -> bytes:
    """``data`` compressed with ``kind``."""
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "bzip2":
        return bz2.compress(data, 1)  # 100 kB blocks: a cut loses at most one block
    return data


def checksum(block: bytes) -> bytes:
    """``block`` (a 512-byte header) with its checksum field recomputed."""
    b = bytearray(block)
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\x00 " % sum(b)
    return bytes(b)


def member_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """``clean path -> (header offset, data offset)`` per ``tarfile``."""
    with tarfile.open(path) as tf:
        return {clean_path(ti.name) or "": (ti.offset, ti.offset_data) for ti in tf}


# -- agreement with tarfile ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT],
                         ids=["gnu", "pax", "ustar"])
def test_tarfile_built_archives_match_oracle(tmp_path: Path, fmt: int) -> None:
    ours = assert_matches_oracle(build_tarfile(tmp_path / "a.tar", fmt))
    by = {m.path: m for m, _ in ours}
    assert by["root/.wh.deleted"].kind == "char"
    if fmt == tarfile.PAX_FORMAT:
        assert by["root/opaque"].xattrs == {"trusted.overlay.opaque": b"y"}
        assert by["root/ping"].xattrs == {"security.capability": CAPABILITY}
        assert by["root/ping"].mtime == 1_700_000_000_500_000_000
    if fmt != tarfile.USTAR_FORMAT:
        assert (by["root/bigid"].uid, by["root/bigid"].gid) == (BIG_ID, BIG_ID + 1)
        assert by["root/old"].mtime == -86400 * 365 * 10 * 1_000_000_000
        assert f"root/{NONUTF8}" in by


@pytest.mark.skipif(not HAS_GNU_TAR, reason="GNU tar not installed")
@pytest.mark.parametrize("opts", [
    ("--format=posix", "--xattrs", "--xattrs-include=*"),
    ("--format=posix", "--sparse"),
    ("--format=posix", "--sparse", "--sparse-version=0.0"),
    ("--format=posix", "--sparse", "--sparse-version=0.1"),
    ("--format=gnu", "--sparse"),
    ("--format=oldgnu", "--sparse"),
    ("--format=gnu",),
], ids=["posix-xattrs", "posix-sparse1.0", "posix-sparse0.0", "posix-sparse0.1", "gnu-sparse",
        "oldgnu-sparse", "gnu"])
def test_gnu_tar_archives_match_oracle(tmp_path: Path, opts: tuple[str, ...]) -> None:
    tree = build_tree(tmp_path / "tree")
    ours = assert_matches_oracle(gnu_tar(tmp_path / "a.tar", tree, *opts))
    by = {m.path: (m, data) for m, data in ours}
    sparse, data = by["sparse.img"]
    assert sparse.size == 3 << 20 and data == (tree / "sparse.img").read_bytes()
    assert by["escape"][0].kind == "symlink" and by["escape"][0].linkname == "../../../../etc"
    assert by["bigid"][0].uid == BIG_ID
    assert by["hard"][0].kind == "hardlink" and by["hard"][0].linkname == "hello.txt"
    if "--format=posix" in opts:  # only pax keeps ns and pre-1970 fractions exactly
        assert by["ns.txt"][0].mtime == 1_700_000_000_123_456_789
        assert by["old.txt"][0].mtime == -123_456_789_123
    else:
        assert by["old.txt"][0].mtime == -124 * 1_000_000_000  # floor of -123.45 s
    if "--xattrs" in opts and os.geteuid() == 0:
        assert by["opaque"][0].xattrs["trusted.overlay.opaque"] == b"y"
        assert by["random.bin"][0].xattrs["security.capability"] == CAPABILITY
        assert by[".wh.gone"][0].kind == "char"
        assert (by[".wh.gone"][0].devmajor, by[".wh.gone"][0].devminor) == (0, 0)


@pytest.mark.parametrize("kind,name", [("gzip", "evidence.zip"), ("zstd", "evidence.tar"),
                                       ("xz", "evidence.tar.gz"), ("bzip2", "evidence.txt"),
                                       ("none", "evidence.tar.zst")])
def test_compression_is_detected_by_content(tmp_path: Path, kind: str, name: str) -> None:
    plain = build_tarfile(tmp_path / "plain.tar", tarfile.PAX_FORMAT)
    _, expected = read_all(plain)
    path = tmp_path / name
    path.write_bytes(compress(plain.read_bytes(), kind))
    src, ours = read_all(path)
    assert src.info.compression == kind
    assert [(m, d) for m, d in ours] == expected
    assert src.info.complete and set(src.info.issues.codes()) == {"path.nonutf8"}
    assert src.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd", "xz", "bzip2"])
def test_trailing_garbage_is_hashed_and_harmless(tmp_path: Path, kind: str) -> None:
    plain = build_tarfile(tmp_path / "plain.tar", tarfile.GNU_FORMAT)
    _, expected = read_all(plain)
    path = tmp_path / "evidence"
    path.write_bytes(compress(plain.read_bytes(), kind) + b"TRAILING GARBAGE\x01\x02" * 50)
    src, ours = read_all(path)
    assert ours == expected
    assert src.info.complete and set(src.info.issues.codes()) == {"path.nonutf8"}
    assert src.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert src.info.size == path.stat().st_size


def test_hash_covers_unread_rest_when_consumer_stops_early(tmp_path: Path) -> None:
    path = build_tarfile(tmp_path / "a.tar", tarfile.GNU_FORMAT)
    src = TarSource(os.fspath(path))
    it = iter(src)
    next(it)
    it.close()  # type: ignore[attr-defined]
    assert src.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_pax_size_record_overrides_header_size(tmp_path: Path) -> None:
    """Members >= 8 GiB keep their size in a pax record only; the payload follows it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_info("a", size=5), io.BytesIO(b"12345"))
        tf.addfile(_info("b", size=2), io.BytesIO(b"ok"))
    raw = bytearray(buf.getvalue())
    off = member_offsets_bytes(bytes(raw))
    pax = b"12 size=005\n"  # hand-made pax header for "a" with the ustar size zeroed
    hdr = bytearray(raw[off["a"][0]:off["a"][0] + 512])
    xh = bytearray(hdr)
    xh[0:100] = b"PaxHeader/a".ljust(100, b"\x00")
    xh[124:136] = b"%011o\x00" % len(pax)
    xh[156:157] = b"x"
    hdr[124:136] = b"%011o\x00" % 0
    new = (raw[:off["a"][0]] + checksum(bytes(xh)) + pax.ljust(512, b"\x00")
           + checksum(bytes(hdr)) + raw[off["a"][1]:])
    path = tmp_path / "pax-size.tar"
    path.write_bytes(new)
    ours = assert_matches_oracle(path)
    assert [(m.path, m.size, d) for m, d in ours] == [("a", 5, b"12345"), ("b", 2, b"ok")]


def member_offsets_bytes(data: bytes) -> dict[str, tuple[int, int]]:
    """:func:`member_offsets` of an in-memory archive."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {clean_path(ti.name) or "": (ti.offset, ti.offset_data) for ti in tf}


def test_v7_directory_with_trailing_slash(tmp_path: Path) -> None:
    hdr = bytearray(512)
    hdr[0:100] = b"olddir/".ljust(100, b"\x00")
    hdr[100:108] = b"0000755\x00"
    hdr[108:116] = hdr[116:124] = b"0000000\x00"
    hdr[124:136] = b"00000000000\x00"
    hdr[136:148] = b"14000000000\x00"
    hdr[156:157] = b"\x00"  # AREGTYPE: pre-POSIX, a trailing slash means a directory
    path = tmp_path / "v7.tar"
    path.write_bytes(checksum(bytes(hdr)) + bytes(1024))
    src, ours = read_all(path)
    assert [(m.path, m.kind) for m, _ in ours] == [("olddir", "dir")]
    assert oracle(path)[0][0].isdir()


# -- damage --------------------------------------------------------------------------------
def sample_tar(tmp_path: Path) -> tuple[Path, list[str]]:
    """A GNU-format archive of eight 64 KiB random files (incompressible) and its paths."""
    path = tmp_path / "base.tar"
    names = [f"dir/f{i}.bin" for i in range(8)]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for n in names:
            data = os.urandom(65536)
            tf.addfile(_info(n, size=len(data)), io.BytesIO(data))
    return path, names


def damaged(tmp_path: Path, data: bytes, name: str = "damaged") -> tuple[TarSource, list[str]]:
    """Write ``data`` and read it, returning the source and the yielded paths."""
    path = tmp_path / name
    path.write_bytes(data)
    src, ours = read_all(path)
    assert src.info.sha256 == hashlib.sha256(data).hexdigest()
    return src, [m.path for m, _ in ours]


@pytest.mark.parametrize("where", ["header", "payload", "end-blocks"])
def test_truncated_plain_tar(tmp_path: Path, where: str) -> None:
    path, names = sample_tar(tmp_path)
    raw = path.read_bytes()
    hdr, data = member_offsets(path)[names[5]]
    cut = {"header": hdr + 100, "payload": data + 1000, "end-blocks": data + 65536}[where]
    src, got = damaged(tmp_path, raw[:cut])
    assert "archive.truncated" in src.info.issues.codes()
    assert not src.info.complete
    assert got == names[:5] + ([] if where == "header" else [names[5]])


def test_truncated_payload_is_short_not_an_exception(tmp_path: Path) -> None:
    path, names = sample_tar(tmp_path)
    raw = path.read_bytes()
    _, data = member_offsets(path)[names[2]]
    (tmp_path / "cut.tar.gz").write_bytes(gzip.compress(raw[:data + 1000]))
    src, ours = read_all(tmp_path / "cut.tar.gz")
    assert [m.path for m, _ in ours] == names[:3]
    assert ours[-1][1] == raw[data:data + 1000]
    assert src.info.issues.codes() == ["archive.truncated"] and not src.info.complete


@pytest.mark.parametrize("kind", ["gzip", "zstd", "xz", "bzip2"])
def test_truncated_compressed(tmp_path: Path, kind: str) -> None:
    path, names = sample_tar(tmp_path)
    whole = compress(path.read_bytes(), kind)
    src, got = damaged(tmp_path, whole[:len(whole) * 6 // 10], "evidence.tar." + kind)
    assert src.info.compression == kind
    assert set(src.info.issues.codes()) <= {"archive.truncated", "archive.corrupt"}
    assert src.info.issues.codes() and not src.info.complete
    assert 3 <= len(got) <= 6 and got == names[:len(got)]


def test_corrupt_header_checksum_resyncs(tmp_path: Path) -> None:
    path, names = sample_tar(tmp_path)
    raw = bytearray(path.read_bytes())
    hdr, _ = member_offsets(path)[names[3]]
    raw[hdr + 5] ^= 0xFF  # a flipped name byte: the checksum no longer matches
    src, got = damaged(tmp_path, bytes(raw))
    assert src.info.issues.codes() == ["archive.corrupt"]
    assert not src.info.complete
    assert got == names[:3] + names[4:]


def test_corrupt_first_header_resyncs(tmp_path: Path) -> None:
    """A damaged first header of a ustar archive is damage, not "not a tar"."""
    path, names = sample_tar(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0xFF
    src, got = damaged(tmp_path, bytes(raw))
    assert src.info.issues.codes() == ["archive.corrupt"] and got == names[1:]


def test_garbage_blocks_between_members_resync(tmp_path: Path) -> None:
    path, names = sample_tar(tmp_path)
    raw = path.read_bytes()
    hdr, _ = member_offsets(path)[names[4]]
    src, got = damaged(tmp_path, raw[:hdr] + os.urandom(4096) + raw[hdr:])
    assert src.info.issues.codes() == ["archive.corrupt"] and not src.info.complete
    assert got == names


def test_garbage_inside_gzip_stream(tmp_path: Path) -> None:
    path, names = sample_tar(tmp_path)
    gz = bytearray(gzip.compress(path.read_bytes()))
    gz[len(gz) // 2: len(gz) // 2 + 64] = os.urandom(64)
    src, got = damaged(tmp_path, bytes(gz))
    assert src.info.issues.codes() and not src.info.complete
    assert set(src.info.issues.codes()) <= {"archive.corrupt", "archive.truncated"}
    assert got == names[:len(got)] and len(got) >= 2


@pytest.mark.parametrize("content,error", [
    (b"", NotASnapshot), (b"x", NotASnapshot), (os.urandom(5000), NotASnapshot),
    (b"just some text\n" * 100, NotASnapshot), (gzip.compress(b"not a tar"), NotASnapshot),
    (zstandard.ZstdCompressor().compress(b"hello" * 300), NotASnapshot),
    (None, UnsupportedCompression)], ids=["empty", "one-byte", "random", "text", "gzip-text",
                                          "zstd-text", "zip"])
def test_not_a_tar(tmp_path: Path, content: bytes | None, error: type[Exception]) -> None:
    path = tmp_path / "evidence.tar"
    if content is None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("var/lib/docker/engine-id", "x")
    else:
        path.write_bytes(content)
    with pytest.raises(error):
        read_all(path)


def _tar_of(path: Path, members: list[tuple[tarfile.TarInfo, bytes]],
            fmt: int = tarfile.GNU_FORMAT) -> Path:
    with tarfile.open(path, "w", format=fmt) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data))
    return path


def test_escaping_paths_are_skipped(tmp_path: Path) -> None:
    path = _tar_of(tmp_path / "a.tar", [
        (_info("ok1", size=1), b"1"), (_info("../../etc/passwd", size=4), b"root"),
        (_info("/abs/path", size=3), b"abs"), (_info("a/../../b", size=1), b"b"),
        (_info("ok2", size=1), b"2")])
    src, ours = read_all(path)
    assert [(m.path, d) for m, d in ours] == [("ok1", b"1"), ("ok2", b"2")]
    assert src.info.issues.codes() == ["path.escape"] * 3
    assert src.info.complete


def test_symlink_out_is_kept_and_reported(tmp_path: Path) -> None:
    path = _tar_of(tmp_path / "a.tar", [
        (_info("var/lib/docker/link", tarfile.SYMTYPE, linkname="../../../../etc"), b""),
        (_info("var/lib/docker/abs", tarfile.SYMTYPE, linkname="/etc/passwd"), b""),
        (_info("var/lib/docker/in", tarfile.SYMTYPE, linkname="../docker/x"), b"")])
    src, ours = read_all(path)
    assert [(m.kind, m.linkname) for m, _ in ours] == [
        ("symlink", "../../../../etc"), ("symlink", "/etc/passwd"), ("symlink", "../docker/x")]
    raw = read_evidence(os.fspath(path))
    assert raw.info.issues.codes() == ["link.escape"]  # absolute targets are container paths
    assert raw.files.to_table()["linkname"].to_pylist()[0] == "../../../../etc"


def test_duplicate_members(tmp_path: Path) -> None:
    cid = "c" * 64
    cfg = f"var/lib/docker/containers/{cid}/config.v2.json"
    path = _tar_of(tmp_path / "a.tar", [
        (_info(cfg, size=5), b'{"a":'), (_info("x", size=1), b"1"),
        (_info(cfg, size=8), b'{"a": 1}')])
    src, ours = read_all(path)
    assert [m.path for m, _ in ours] == [cfg, "x", cfg]  # the reader reports what is there
    raw = read_evidence(os.fspath(path))
    assert raw.info.issues.codes() == ["archive.duplicate"]
    assert raw.files.to_table()["path"].to_pylist() == ["x", cfg]  # the last copy wins
    assert raw.captured[cfg] == b'{"a": 1}'


def test_huge_pax_header_is_skipped(tmp_path: Path) -> None:
    big = _info("big", size=2)
    big.pax_headers = {"comment": "x" * (MAX_EXT_HEADER + 10)}
    path = _tar_of(tmp_path / "a.tar", [(_info("a", size=1), b"a"), (big, b"bb"),
                                        (_info("c", size=1), b"c")], tarfile.PAX_FORMAT)
    src, ours = read_all(path)
    assert [(m.path, d) for m, d in ours] == [("a", b"a"), ("big", b"bb"), ("c", b"c")]
    assert src.info.issues.codes() == ["archive.corrupt"]
    assert not src.info.complete  # the member's extended attributes were dropped


def _rewrite_header(raw: bytes, offset: int, field: slice, value: bytes) -> bytes:
    hdr = bytearray(raw[offset:offset + 512])
    hdr[field] = value
    return raw[:offset] + checksum(bytes(hdr)) + raw[offset + 512:]


def test_negative_size_resyncs(tmp_path: Path) -> None:
    path, names = sample_tar(tmp_path)
    hdr, _ = member_offsets(path)[names[2]]
    neg = b"\xff" * 11 + b"\x00"  # base-256 negative number
    src, got = damaged(tmp_path, _rewrite_header(path.read_bytes(), hdr, slice(124, 136), neg))
    assert set(src.info.issues.codes()) == {"archive.corrupt"} and not src.info.complete
    assert got == names[:2] + names[3:]


def test_non_octal_numbers_resync(tmp_path: Path) -> None:
    path, names = sample_tar(tmp_path)
    hdr, _ = member_offsets(path)[names[2]]
    src, got = damaged(tmp_path, _rewrite_header(path.read_bytes(), hdr, slice(108, 116),
                                                 b"zz9zz9z\x00"))  # uid
    assert src.info.issues.codes() == ["archive.corrupt"] and not src.info.complete
    assert got == names[:2] + names[3:]


def test_invalid_pax_values_skip_the_member(tmp_path: Path) -> None:
    bad = _info("bad", size=3)
    bad.pax_headers = {"uid": "-5x", "mtime": "soon"}
    path = _tar_of(tmp_path / "a.tar", [(_info("a", size=1), b"a"), (bad, b"bad"),
                                        (_info("c", size=1), b"c")], tarfile.PAX_FORMAT)
    src, ours = read_all(path)
    assert [(m.path, d) for m, d in ours] == [("a", b"a"), ("c", b"c")]
    assert src.info.issues.codes() == ["archive.corrupt"] and not src.info.complete


# -- large members: hashed from the reader's chunks, without copies ---------------------
@pytest.mark.parametrize("kind", ["tar", "zstd", "gzip", "inline"])
def test_large_members_hash_from_chunks(tmp_path: Path, kind: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.sources import compression

    big = os.urandom((17 << 20) + 123)  # larger than the fast path's 16 MiB buffer
    members = [(_info("a/small", size=5), b"hello"), (_info("a/big", size=len(big)), big),
               (_info("a/odd", size=(4 << 20) - 7), big[:(4 << 20) - 7]),
               (_info("a/after", size=3), b"end")]
    path = _tar_of(tmp_path / "a.tar", members, tarfile.PAX_FORMAT)
    if kind == "inline":
        monkeypatch.setenv(compression.ENV_DECOMPRESSOR, "python")
    elif kind != "tar":
        data = compress(path.read_bytes(), kind)
        path = tmp_path / f"a.tar.{kind}"
        path.write_bytes(data)
    raw = read_evidence(os.fspath(path), hash_files=True)
    files = raw.files.to_table()
    got = dict(zip(files["path"].to_pylist(), files["sha256"].to_pylist()))
    for info, content in members:
        assert got[info.name] == hashlib.sha256(content).hexdigest(), info.name
    assert raw.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert raw.info.complete and not raw.info.issues.codes()


@pytest.mark.parametrize("fast", [True, False])
def test_payload_chunks_are_views_and_resume_after_read(tmp_path: Path, fast: bool) -> None:
    big = os.urandom((6 << 20) + 1)
    path = _tar_of(tmp_path / "a.tar", [(_info("big", size=len(big)), big),
                                        (_info("next", size=2), b"ok")], tarfile.USTAR_FORMAT)
    seen = []
    for member, payload in TarSource(os.fspath(path), fast=fast):
        if member.path == "big":
            head = payload.read(1000)
            parts = list(payload.chunks())
            assert all(isinstance(p, memoryview) for p in parts)
            assert len(parts) >= 2 or fast  # the exact reader hands out its 4 MiB chunks
            assert head + b"".join(bytes(p) for p in parts) == big
            assert payload.remaining == 0 and not payload.short
        else:
            seen.append(payload.read())
    assert seen == [b"ok"]


def test_payload_chunks_of_a_truncated_member_are_short(tmp_path: Path) -> None:
    big = os.urandom(5 << 20)
    path = _tar_of(tmp_path / "a.tar", [(_info("big", size=len(big)), big)],
                   tarfile.USTAR_FORMAT)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(path.read_bytes()[:512 + (3 << 20) + 17])
    src = TarSource(os.fspath(cut), fast=False)
    for member, payload in src:
        data = b"".join(bytes(p) for p in payload.chunks())
        assert data == big[:(3 << 20) + 17] and payload.short
    assert src.info.issues.codes() == ["archive.truncated"] and not src.info.complete
