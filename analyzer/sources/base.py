"""The common interface of snapshot sources.

A source walks a snapshot once, in storage order, and yields
``(member, payload)`` pairs. ``payload`` is a binary file object readable only
until the next member is requested (tar streams cannot seek back), or ``None``
for entries without content. Sources never interpret Docker structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.formats.tarheader import clean_path  # noqa: F401 - re-exported
from analyzer.issues import IssueLog
from analyzer.sources.member import Member
from analyzer.textcols import rows_containing

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
    """The cheap first test of a per-member check (which paths it looks at), written
    once for both uses: the check applies it to each path (:meth:`passes`), the tar
    fast path to whole arrays of paths (:meth:`mask`) before the check sees the rows
    that pass.

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

    def passes(self, path: str, name: str | None = None) -> bool:
        """The test on one path (``name``: its last component, when already known)."""
        if name is None:
            name = path.rpartition("/")[2]
        return (name in self.names or len(name) == self.name_length
                or bool(self.prefixes) and name.startswith(self.prefixes)
                or bool(self.suffixes) and name.endswith(self.suffixes)
                or bool(self.infixes) and any(x in name for x in self.infixes)
                or bool(self.path_infixes) and any(x in path for x in self.path_infixes))

    def mask(self, paths: pa.Array, names: pa.Array) -> np.ndarray:
        """The test on whole arrays: which rows pass (``names`` are the last components
        of ``paths``). On binary arrays (the tar fast path's, whose accepted rows are
        ASCII) lengths count bytes, on string arrays characters."""
        mask = pc.is_in(names, value_set=pa.array(sorted(self.names), names.type))
        if self.name_length is not None:
            length = pc.utf8_length(names) if pa.types.is_string(names.type) \
                else pc.binary_length(names)
            mask = pc.or_(mask, pc.equal(length, self.name_length))
        for x in self.prefixes:
            mask = pc.or_(mask, pc.starts_with(names, x))
        for x in self.suffixes:
            mask = pc.or_(mask, pc.ends_with(names, x))
        for x in self.infixes:
            mask = pc.or_(mask, pc.match_substring(names, x))
        out = mask.to_numpy(zero_copy_only=False)
        for x in self.path_infixes:
            out[rows_containing(paths, x)] = True
        return out


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
