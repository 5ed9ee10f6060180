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
