"""Map a ``files`` member (path relative to the data-root) to the object that owns it.

What: :class:`Locator` answers "which container RW layer, volume or image layer holds
this member, and what is its path as that object sees it" — the translation every
file-based finding (IOC, YARA) needs.

Where the evidence sits: ``layer_dirs.content_path`` (RW, init, image-layer and orphan
directories) and ``volumes/<name>/_data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzer.analyses.triage.engine import Context, na


@dataclass(frozen=True)
class Place:
    """Where a member sits: the finding object, the area and the path inside it."""

    object: dict[str, Any]
    area: str  # container-rw, container-init, image-layer, orphan, volume
    path: str  # path as seen from the container / volume root / layer root


class Locator:
    """Prefix lookup from member paths to their owning object."""

    def __init__(self, ctx: Context, areas: tuple[str, ...] = ("container-rw", "volume",
                                                              "image-layer", "orphan",
                                                              "container-init")) -> None:
        self.ctx = ctx
        self.prefixes: dict[str, tuple[dict[str, Any], str]] = {}
        names = {c.id: c.name for c in ctx.containers}
        layers = ctx.snap.layers
        chain_by_cache = {str(c): str(ch) for c, ch in zip(layers["cache_id"], layers["chain_id"])
                          if na(c)}
        for _, d in ctx.snap.layer_dirs.iterrows():
            role = str(d["role"])
            cp = na(d["content_path"])
            if role not in areas or not isinstance(cp, str):
                continue
            owner = str(na(d["owner"]) or "")
            if role in ("container-rw", "container-init"):
                obj = {"type": "container", "id": owner, "name": names.get(owner, owner[:12])}
            else:
                chain = chain_by_cache.get(str(d["dir_id"]), owner)
                obj = {"type": "layer", "id": chain or str(d["dir_id"]),
                       "name": str(d["dir_id"])}
            self.prefixes[cp] = (obj, role)
        if "volume" in areas:
            for name in ctx.snap.volumes["name"].dropna():
                self.prefixes[f"volumes/{name}/_data"] = (ctx.volume_ref(str(name)), "volume")
        self.depths = sorted({p.count("/") + 1 for p in self.prefixes})

    def place(self, member: str) -> Place | None:
        """The :class:`Place` of ``member`` (data-root relative), or ``None``."""
        parts = member.split("/")
        for depth in self.depths:
            if depth >= len(parts):
                break
            head = "/".join(parts[:depth])
            hit = self.prefixes.get(head)
            if hit is not None:
                return Place(object=hit[0], area=hit[1], path="/" + "/".join(parts[depth:]))
        return None


__all__ = ["Locator", "Place"]
