"""Builders of hostile snapshots derived from the real overlay2 sample.

Not a test module: tests import these helpers. Each builder streams the
committed sample tar (zstandard + ``tarfile`` in ``r|`` mode, read once per
session and kept in memory), rewrites some members, and writes a new plain tar
(or a directory) under the test's ``tmp_path``. Member names in the sample
start with :data:`PREFIX`; builders take paths *relative to the data-root*.
"""

from __future__ import annotations

import copy
import functools
import io
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Iterable

from tests.conftest import SAMPLES

SAMPLE = SAMPLES / "overlay2" / "docker-root.tar.zst"
ROOT = "var/lib/docker"
PREFIX = ROOT + "/"

#: a tar member: header and content (``None`` for everything but regular files)
TarMember = tuple[tarfile.TarInfo, "bytes | None"]
#: a rewrite rule: given a member, the members to write instead (none = drop it)
Edit = Callable[[tarfile.TarInfo, "bytes | None"], Iterable[TarMember]]


@functools.lru_cache(maxsize=1)
def sample_members() -> tuple[TarMember, ...]:
    """Every member of the overlay2 sample, in archive order (decompressed once)."""
    import zstandard

    out: list[TarMember] = []
    with open(SAMPLE, "rb") as fh:
        stream = zstandard.ZstdDecompressor().stream_reader(fh)
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for ti in tf:
                data = tf.extractfile(ti).read() if ti.isreg() else None  # type: ignore[union-attr]
                out.append((ti, data))
    return tuple(out)


def sample_tar_bytes() -> bytes:
    """The decompressed sample tar."""
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(SAMPLE.read_bytes())


def write_tar(dst: Path, members: Iterable[TarMember]) -> Path:
    """Write ``members`` as a plain pax tar at ``dst``."""
    with tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return dst


def derive(dst: Path, edit: Edit | None = None, extra: Iterable[TarMember] = ()) -> Path:
    """The sample rewritten member by member through ``edit``, plus ``extra`` at the end."""
    def members() -> Iterable[TarMember]:
        for ti, data in sample_members():
            ti = copy.copy(ti)
            ti.pax_headers = dict(ti.pax_headers)
            yield from (edit(ti, data) if edit is not None else [(ti, data)])
        yield from extra

    return write_tar(dst, members())


def renamed(ti: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """``ti`` under a new ``name`` (stale pax path records dropped)."""
    ti = copy.copy(ti)
    ti.pax_headers = {k: v for k, v in ti.pax_headers.items() if k != "path"}
    ti.name = name
    return ti


def file_member(name: str, data: bytes) -> TarMember:
    """A regular file member."""
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), 1_700_000_000, 0o644
    return ti, data


def rel_names(pattern: str) -> list[str]:
    """Sample paths relative to the data-root matching the regex ``pattern``."""
    rx = re.compile(pattern)
    return [ti.name[len(PREFIX):] for ti, _ in sample_members()
            if ti.name.startswith(PREFIX) and rx.search(ti.name[len(PREFIX):])]


def replace_content(dst: Path, rel: str, change: Callable[[bytes], bytes]) -> Path:
    """The sample with the bytes of data-root file ``rel`` passed through ``change``."""
    def edit(ti: tarfile.TarInfo, data: bytes | None) -> Iterable[TarMember]:
        if ti.name == PREFIX + rel and data is not None:
            data = change(data)
            ti.size = len(data)
        return [(ti, data)]

    return derive(dst, edit)


def malformed_json(dst: Path, rel: str) -> Path:
    """The sample with JSON file ``rel`` cut in half (no longer parses)."""
    return replace_content(dst, rel, lambda b: b[: len(b) // 2])


def flip_byte(dst: Path, rel: str, offset: int) -> Path:
    """The sample with one byte of ``rel`` inverted at ``offset``."""
    def change(b: bytes) -> bytes:
        buf = bytearray(b)
        buf[offset] ^= 0xFF
        return bytes(buf)

    return replace_content(dst, rel, change)


def drop_under(dst: Path, rel_dir: str) -> Path:
    """The sample without the data-root folder ``rel_dir`` and everything in it."""
    gone = PREFIX + rel_dir.rstrip("/")

    def edit(ti: tarfile.TarInfo, data: bytes | None) -> Iterable[TarMember]:
        if ti.name == gone or ti.name.startswith(gone + "/"):
            return []
        return [(ti, data)]

    return derive(dst, edit)


def moved_root(dst: Path, new_prefix: str) -> Path:
    """The sample with ``var/lib/docker/`` renamed to ``new_prefix`` (hardlinks too)."""
    new = new_prefix.strip("/") + "/"

    def edit(ti: tarfile.TarInfo, data: bytes | None) -> Iterable[TarMember]:
        if not ti.name.startswith(PREFIX):
            return []  # var/, var/lib/
        ti = renamed(ti, new + ti.name[len(PREFIX):])
        if ti.islnk() and ti.linkname.startswith(PREFIX):
            ti.pax_headers.pop("linkpath", None)
            ti.linkname = new + ti.linkname[len(PREFIX):]
        return [(ti, data)]

    return derive(dst, edit)


def two_roots(dst: Path, second_prefix: str, keep: str = r"^containers/") -> Path:
    """The sample plus a weaker second data-root: the members of the first whose
    relative path matches ``keep``, copied under ``second_prefix``."""
    rx = re.compile(keep)
    new = second_prefix.strip("/") + "/"
    extra = [(renamed(ti, new + ti.name[len(PREFIX):]), data)
             for ti, data in sample_members()
             if ti.name.startswith(PREFIX) and rx.search(ti.name[len(PREFIX):])
             and not ti.islnk()]
    return derive(dst, extra=extra)


def no_root(dst: Path) -> Path:
    """A tar of the sample's volume contents only: readable, but no data-root inside."""
    def edit(ti: tarfile.TarInfo, data: bytes | None) -> Iterable[TarMember]:
        return [(ti, data)] if "/_data" in ti.name else []

    return derive(dst, edit)


def truncated_copy(dst: Path, fraction: float) -> Path:
    """The compressed sample cut to ``fraction`` of its bytes."""
    raw = SAMPLE.read_bytes()
    dst.write_bytes(raw[: int(len(raw) * fraction)])
    return dst


def extract_sample(dst: Path) -> Path:
    """The sample extracted with GNU tar (xattrs and devices kept; we run as root)."""
    dst.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "--xattrs", "--xattrs-include=*", "-C", os.fspath(dst)],
                   input=sample_tar_bytes(), check=True, capture_output=True)
    return dst
