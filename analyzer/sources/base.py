"""The common interface of snapshot sources.

A source walks a snapshot once, in storage order, and yields
``(member, payload)`` pairs. ``payload`` is a binary file object readable only
until the next member is requested (tar streams cannot seek back), or ``None``
for entries without content. Sources never interpret Docker structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Protocol

from analyzer.formats.tarheader import clean_path  # noqa: F401 - re-exported
from analyzer.issues import IssueLog
from analyzer.sources.member import Member

#: progress callback: (evidence bytes read so far, members seen so far)
Progress = Callable[[int, int], None]


@dataclass
class EvidenceInfo:
    """What we know about the evidence as a whole, filled while reading."""

    path: str
    kind: str  # "tar", "directory"
    compression: str = "none"  # none, gzip, zstd, xz, bzip2
    size: int = 0  # bytes of the evidence file (directories: sum of file sizes)
    sha256: str = ""  # of the evidence bytes; directories: of the sorted listing
    sha256_kind: str = "bytes"  # "bytes" or "listing"
    complete: bool = True  # False when data was lost (truncated, corrupt or skipped region)
    members: int = 0
    issues: IssueLog = field(default_factory=IssueLog)


class Source(Protocol):
    """A snapshot that can be walked once."""

    info: EvidenceInfo

    def __iter__(self) -> Iterator[tuple[Member, BinaryIO | None]]:
        ...


@dataclass(frozen=True)
class Prefilter:
    """A cheap superset test of the paths a per-member check looks at, applied to whole
    arrays of paths at once (the tar fast path) before the check runs on each match.

    A path passes when its last component is one of ``names``, has ``name_length``
    characters, starts with one of ``prefixes``, ends with one of ``suffixes`` or
    contains one of ``infixes``; or when the whole path contains one of
    ``path_infixes``. Two prefilters combine with ``|``.
    """

    names: frozenset[str] = frozenset()
    name_length: int | None = None
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    infixes: tuple[str, ...] = ()
    path_infixes: tuple[str, ...] = ()

    def __or__(self, other: "Prefilter") -> "Prefilter":
        if None not in (self.name_length, other.name_length) \
                and self.name_length != other.name_length:
            raise ValueError("prefilters with different name lengths cannot be combined")
        return Prefilter(self.names | other.names, self.name_length or other.name_length,
                         *(tuple(dict.fromkeys(a + b)) for a, b in (
                             (self.prefixes, other.prefixes), (self.suffixes, other.suffixes),
                             (self.infixes, other.infixes),
                             (self.path_infixes, other.path_infixes))))

    def passes(self, path: str) -> bool:
        """The same test on one path (the reference for the array version)."""
        name = path.rpartition("/")[2]
        return (name in self.names or len(name) == self.name_length
                or name.startswith(self.prefixes) or name.endswith(self.suffixes)
                or any(x in name for x in self.infixes)
                or any(x in path for x in self.path_infixes))


def link_escapes(path: str, target: str) -> bool:
    """True if the relative symlink ``target`` of the member ``path`` climbs above the
    snapshot root (``a/l -> ../../etc``).

    Absolute targets are not counted: inside layers and container roots they name
    a path of the container's own filesystem, and they are never followed anyway.
    """
    if not target or target.startswith("/"):
        return False
    depth = path.count("/")  # folders between the snapshot root and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False
