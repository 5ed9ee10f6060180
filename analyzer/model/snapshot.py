"""The Snapshot: every table of one data-root, its metadata, and lookups.

What notebooks, analyses and renderers read. Tables are pandas DataFrames with
the columns of :mod:`analyzer.model.schema`; ``snap.images``, ``snap.containers``
... are attributes. References are resolved the way docker resolves them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analyzer.errors import AmbiguousReference, UsageError
from analyzer.model import schema


class Snapshot:
    """One data-root read from one piece of evidence."""

    def __init__(self, tables: dict[str, pd.DataFrame], meta: dict[str, Any]) -> None:
        missing = set(schema.TABLES) - set(tables)
        if missing:
            raise ValueError(f"snapshot lacks tables {sorted(missing)}")
        self.tables = tables
        self.meta = meta
        self._graph: Any = None

    @property
    def graph(self) -> Any:
        """The image/layer/container DAG (``networkx.DiGraph``, see :mod:`analyzer.model.graph`)."""
        if self._graph is None:
            from analyzer.model.graph import build_graph

            self._graph = build_graph(self)
        return self._graph

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.tables))

    def __repr__(self) -> str:
        m = self.meta
        return (f"<Snapshot {m.get('evidence_path')!s} root={m.get('root_prefix')!r} "
                f"driver={m.get('driver')} images={len(self.tables['images'])} "
                f"containers={len(self.tables['containers'])} issues={m.get('issue_count')}>")

    # -- reference resolution ------------------------------------------------------
    def find_container(self, ref: str) -> pd.Series:
        """A container by full id, name (with or without ``/``) or unique id prefix."""
        df = self.tables["containers"]
        ref = ref.strip()
        hit = df[df["container_id"] == ref]
        if hit.empty:
            hit = df[df["name"] == ref.lstrip("/")]
        if hit.empty and ref:
            hit = df[df["container_id"].str.startswith(ref)]
        return _one(hit, ref, "container")

    def find_image(self, ref: str) -> pd.Series:
        """An image by id (with or without ``sha256:``), ``repo[:tag]``, ``repo@digest``
        or unique id prefix."""
        images = self.tables["images"]
        tags = self.tables["image_tags"]
        ref = ref.strip()
        hexref = ref[7:] if ref.startswith("sha256:") else ref
        # pre-1.10 (graph/) image ids are bare hex: match them with or without the prefix
        hit = images[images["image_id"].isin(["sha256:" + hexref, hexref])]
        if hit.empty:
            want = [ref]
            if "@" not in ref and ":" not in ref.rpartition("/")[2]:
                want.append(ref + ":latest")
            for name in list(want):
                if name.startswith("docker.io/library/"):
                    want.append(name[len("docker.io/library/"):])
                elif name.startswith("docker.io/"):
                    want.append(name[len("docker.io/"):])
            ids = tags[tags["reference"].isin(want)]["image_id"].unique().tolist()
            hit = images[images["image_id"].isin(ids)]
        if hit.empty and hexref and all(c in "0123456789abcdef" for c in hexref):
            ids = images["image_id"]
            hit = images[ids.str.startswith("sha256:" + hexref) | (
                ~ids.str.startswith("sha256:") & ids.str.startswith(hexref))]
        return _one(hit, ref, "image")

    def image_tags_of(self, image_id: str) -> list[str]:
        """``repo:tag`` references of an image, sorted."""
        t = self.tables["image_tags"]
        return sorted(t[(t["image_id"] == image_id) & t["tag"].notna()]["reference"].tolist())

    def image_digests_of(self, image_id: str) -> list[str]:
        """``repo@digest`` references of an image, sorted."""
        t = self.tables["image_tags"]
        return sorted(t[(t["image_id"] == image_id) & t["digest"].notna()]["reference"].tolist())


def _one(hit: pd.DataFrame, ref: str, what: str) -> pd.Series:
    if hit.empty:
        raise UsageError(f"no such {what}: {ref}")
    if len(hit) > 1:
        raise AmbiguousReference(f"{what} reference {ref!r} is ambiguous: "
                                 f"{len(hit)} {what}s match")
    return hit.iloc[0]
