"""One entry of a snapshot (a tar member or a file of a directory), as metadata.

Both sources (:mod:`analyzer.sources.tarstream`, :mod:`analyzer.sources.directory`)
yield :class:`Member` objects with the same meaning, so nothing downstream knows
which kind of input it reads. A member's payload can be read only while the
source is positioned on it (streaming): see :class:`analyzer.sources.base.Source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Member kinds (stable strings; they are a categorical column of the files table)
FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
CHAR = "char"
BLOCK = "block"
FIFO = "fifo"
OTHER = "other"
KINDS = (FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, OTHER)


@dataclass(slots=True)
class Member:
    """Metadata of one snapshot entry.

    Attributes:
        path: normalised POSIX path inside the snapshot, no leading ``./`` or ``/``,
            no trailing ``/`` (directories included).
        kind: one of :data:`KINDS`.
        size: payload size in bytes (0 for everything but regular files).
        mode: permission bits incl. setuid/setgid/sticky (``st_mode & 0o7777``).
        uid, gid: numeric owner.
        mtime: modification time, ns since the Unix epoch.
        atime, ctime: ns since the epoch, or ``None`` when the archive did not keep them.
        linkname: symlink target, or hardlink target path (normalised like ``path``).
        devmajor, devminor: device numbers of char/block devices.
        xattrs: extended attributes by name (``trusted.overlay.opaque`` ...).
    """

    path: str
    kind: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    atime: int | None = None
    ctime: int | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The last path component."""
        return self.path.rpartition("/")[2]
