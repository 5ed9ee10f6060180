"""Where the bytes of an index member are: which evidence, which path inside it.

The files table is relative to the data-root. A containerd root outside the
data-root (the system's ``/var/lib/containerd``, in the same tar of ``/`` or in a
second evidence given with ``--containerd``) appears there under ``@containerd/``.
Every analysis that reads bytes again (``cat``, ``logs``, ``verify``, YARA) maps
paths through this module, so that rule lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

#: where a containerd root outside the data-root appears in the files table
CONTAINERD_MOUNT = "@containerd"
#: where dockerd's own (managed) containerd keeps its root, relative to the data-root
MANAGED_CONTAINERD = "containerd/daemon"


@dataclass(frozen=True)
class EvidencePart:
    """A folder of an evidence that shows up under the data-root."""

    evidence: str  # the evidence file or directory
    prefix: str  # folder inside it ('' = its top)
    mount: str  # where its members appear, relative to the data-root ('' = the data-root)

    def full(self, rel: str) -> str:
        """The member path inside the evidence of ``rel`` (relative to :attr:`mount`)."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def relative(self, member_path: str) -> str | None:
        """The files-table path of an evidence member, or None if not in this part."""
        head = self.prefix + "/" if self.prefix else ""
        if head and not member_path.startswith(head):
            return None
        rest = member_path[len(head):]
        return f"{self.mount}/{rest}" if self.mount else rest


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def evidence_parts(meta: dict[str, Any]) -> list[EvidencePart]:
    """The data-root part first, then the mounted containerd root if there is one."""
    main = str(meta.get("evidence_path") or "")
    root = str(meta.get("root_prefix") or "")
    parts = [EvidencePart(main, root, "")]
    croot = meta.get("containerd_root")
    other = _text(meta.get("containerd_evidence_path"))
    if isinstance(croot, str) and meta.get("containerd_mount") == CONTAINERD_MOUNT:
        parts.append(EvidencePart(other or main, croot, CONTAINERD_MOUNT))  # '' = its top
    return parts


def locate(meta: dict[str, Any], rel: str) -> tuple[str, str]:
    """(evidence path, member path inside it) of the files-table path ``rel``."""
    parts = evidence_parts(meta)
    for part in parts[1:]:
        if rel == part.mount or rel.startswith(part.mount + "/"):
            return part.evidence, part.full(rel[len(part.mount) + 1:])
    return parts[0].evidence, parts[0].full(rel)


def parts_of(meta: dict[str, Any], evidence: str) -> list[EvidencePart]:
    """The parts that live in the evidence ``evidence``."""
    return [p for p in evidence_parts(meta) if p.evidence == evidence]


def relative(parts: Iterable[EvidencePart], member_path: str) -> str | None:
    """The files-table path of a member met while streaming one evidence, or None."""
    best = None
    for part in parts:
        rel = part.relative(member_path)
        if rel is not None and (best is None or len(part.prefix) > len(best[0])):
            best = (part.prefix, rel)
    return best[1] if best else None
