"""An extracted data-root (or a mounted filesystem holding one) as a snapshot.

Walks the tree with ``os.scandir`` + ``lstat``; never follows a symlink (links
are reported as links, so nothing outside the snapshot is ever read), opens
files read-only with ``O_NOFOLLOW``. A directory has no single evidence byte
stream, so its fingerprint is the sha256 of its sorted listing (path, kind,
size, mode, mtime): ``EvidenceInfo.sha256_kind == "listing"``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO, Iterator

from analyzer.errors import NotASnapshot
from analyzer.sources.base import EvidenceInfo, Progress
from analyzer.sources.member import (BLOCK, CHAR, DIR, FIFO, FILE, OTHER, SYMLINK, Member)

XATTR_PREFIXES = ("trusted.", "user.", "security.")


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    if stat.S_ISCHR(mode):
        return CHAR
    if stat.S_ISBLK(mode):
        return BLOCK
    if stat.S_ISFIFO(mode):
        return FIFO
    return OTHER


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith(XATTR_PREFIXES):
            try:
                out[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
    return out


class DirectorySource:
    """A directory walked once, depth first, in sorted order."""

    def __init__(self, path: str, progress: Progress | None = None) -> None:
        if not os.path.isdir(path):
            raise NotASnapshot(f"{path} is not a directory")
        self.path = os.path.abspath(path)
        self.progress = progress
        self.info = EvidenceInfo(path=self.path, kind="directory", sha256_kind="listing")

    def __iter__(self) -> Iterator[tuple[Member, BinaryIO | None]]:
        listing = hashlib.sha256()
        seen_inodes: dict[tuple[int, int], str] = {}
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            abs_dir = os.path.join(self.path, rel_dir) if rel_dir else self.path
            try:
                entries = sorted(os.scandir(abs_dir), key=lambda e: e.name)
            except OSError as exc:
                self.info.issues.add("archive.corrupt", f"cannot list {rel_dir or '.'}: {exc}",
                                     path=rel_dir)
                continue
            subdirs: list[str] = []
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.info.issues.add("archive.corrupt", f"cannot stat {rel}: {exc}", path=rel)
                    continue
                member = self._member(rel, entry.path, st, seen_inodes)
                self.info.members += 1
                listing.update(f"{rel}\0{member.kind}\0{member.size}\0{member.mode}\0"
                               f"{member.mtime}\n".encode("utf-8", "surrogateescape"))
                if member.kind == DIR:
                    subdirs.append(rel)
                    yield member, None
                elif member.kind == FILE and member.size and member.linkname == "":
                    self.info.size += member.size
                    with self._open(entry.path) as fh:
                        yield member, fh
                else:
                    yield member, None
                if self.progress is not None:
                    self.progress(self.info.size, self.info.members)
            stack.extend(reversed(subdirs))
        self.info.sha256 = listing.hexdigest()

    def _member(self, rel: str, abspath: str, st: os.stat_result,
                seen_inodes: dict[tuple[int, int], str]) -> Member:
        kind = _kind(st.st_mode)
        link = ""
        if kind == SYMLINK:
            link = os.readlink(abspath)
        elif kind == FILE and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen_inodes:  # report later paths of an inode as hardlinks, like tar
                link = seen_inodes[key]
            else:
                seen_inodes[key] = rel
        return Member(
            path=rel, kind="hardlink" if link and kind == FILE else kind,
            size=st.st_size if kind == FILE and not link else 0,
            mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid,
            mtime=st.st_mtime_ns, atime=st.st_atime_ns, ctime=st.st_ctime_ns,
            linkname=link,
            devmajor=os.major(st.st_rdev) if kind in (CHAR, BLOCK) else 0,
            devminor=os.minor(st.st_rdev) if kind in (CHAR, BLOCK) else 0,
            xattrs=_xattrs(abspath) if kind in (DIR, FILE, CHAR) else {},
        )

    @staticmethod
    def _open(path: str) -> BinaryIO:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")
