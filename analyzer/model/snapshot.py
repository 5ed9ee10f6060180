"""The Snapshot: every table of one data-root, its metadata, and lookups.

What notebooks, analyses and renderers read. Tables are pandas DataFrames with
the columns of :mod:`analyzer.model.schema`; ``snap.images``, ``snap.containers``
... are attributes. References are resolved the way docker resolves them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import pandas as pd

from analyzer.errors import AmbiguousReference, UsageError
from analyzer.model import schema
from analyzer.model.spill import Deferred, attach


class Tables(MutableMapping[str, pd.DataFrame]):
    """A snapshot's tables by name, each read only when first used.

    A table can be *lazy* (a case folder's Parquet file, read on first access: a later
    command that needs only the containers does not read a 10^6-row ``files`` table),
    and a freshly built snapshot holds some columns of a large table in temporary files
    (:mod:`analyzer.model.spill`, e.g. ``files.sha256``); reading the table puts them
    back in place first, so every reader sees the whole schema. Names, membership and
    row counts (:meth:`rows`) never read anything; only the case writer reads a table
    without its deferred columns (:meth:`unmaterialized`), joining them slice by slice.
    """

    def __init__(self, data: Mapping[str, pd.DataFrame] | None = None,
                 deferred: Mapping[str, list[Deferred]] | None = None,
                 lazy: Mapping[str, tuple[Callable[[], pd.DataFrame], int]] | None = None
                 ) -> None:
        self._data = dict(data or {})
        self._deferred = {k: list(v) for k, v in (deferred or {}).items() if v}
        self._lazy = dict(lazy or {})  # name -> (reader, row count)
        self._order = [*self._data, *(k for k in self._lazy if k not in self._data)]
        self._failed: dict[str, Exception] = {}  # a lazy table that could not be read

    def _load(self, name: str) -> pd.DataFrame:
        if name in self._failed:  # the same error again, without reading the file again
            raise self._failed[name]
        if name in self._lazy:
            try:
                self._data[name] = self._lazy[name][0]()
            except Exception as exc:
                self._failed[name] = exc
                raise
            del self._lazy[name]
        return self._data[name]

    def __getitem__(self, name: str) -> pd.DataFrame:
        df = self._load(name)
        deferred = self._deferred.get(name)
        if deferred:
            attach(df, deferred)  # an error here leaves them deferred, not silently lost
            del self._deferred[name]
            for d in deferred:
                d.spill.close()
        return df

    def __setitem__(self, name: str, df: pd.DataFrame) -> None:
        if name not in self:
            self._order.append(name)
        self._lazy.pop(name, None)
        self._failed.pop(name, None)
        self._data[name] = df
        for d in self._deferred.pop(name, []):
            d.spill.close()

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._order.remove(name)
        self._lazy.pop(name, None)
        self._failed.pop(name, None)
        self._data.pop(name, None)
        for d in self._deferred.pop(name, []):
            d.spill.close()

    def __contains__(self, name: object) -> bool:
        return name in self._data or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))  # a fixed order, whichever tables were read

    def __len__(self) -> int:
        return len(self._order)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled whole: lazy tables and deferred columns are read first (a reader or
        a file handle cannot travel to another process)."""
        for name in list(self):
            self[name]
        return {"_data": self._data, "_deferred": {}, "_lazy": {}, "_order": self._order,
                "_failed": {}}

    def rows(self, name: str) -> int:
        """Rows of table ``name`` (without reading it or its deferred columns)."""
        if name in self._lazy:
            return self._lazy[name][1]
        return len(self._data[name])

    def unmaterialized(self, name: str) -> tuple[pd.DataFrame, list[Deferred]]:
        """Table ``name`` without its deferred columns, and those columns (kept)."""
        return self._load(name), list(self._deferred.get(name, []))


class Snapshot:
    """One data-root read from one piece of evidence."""

    def __init__(self, tables: Mapping[str, pd.DataFrame], meta: dict[str, Any]) -> None:
        missing = set(schema.TABLES) - set(tables)
        if missing:
            raise ValueError(f"snapshot lacks tables {sorted(missing)}")
        self.tables = tables if isinstance(tables, Tables) else Tables(tables)
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
        ids = df["container_id"]
        hit = ids == ref
        if not hit.any():
            hit = df["name"] == ref.lstrip("/")
        if not hit.any() and ref:
            hit = ids.str.startswith(ref)
        return _one(df, hit, ref, "container")

    def find_image(self, ref: str) -> pd.Series:
        """An image by id (with or without ``sha256:``), ``repo[:tag]``, ``repo@digest``
        or unique id prefix."""
        images = self.tables["images"]
        tags = self.tables["image_tags"]
        ids = images["image_id"]
        ref = ref.strip()
        hexref = ref[7:] if ref.startswith("sha256:") else ref
        # pre-1.10 (graph/) image ids are bare hex: match them with or without the prefix
        hit = ids.isin(["sha256:" + hexref, hexref])
        if not hit.any():
            want = [ref]
            if "@" not in ref and ":" not in ref.rpartition("/")[2]:
                want.append(ref + ":latest")
            for name in list(want):
                if name.startswith("docker.io/library/"):
                    want.append(name[len("docker.io/library/"):])
                elif name.startswith("docker.io/"):
                    want.append(name[len("docker.io/"):])
            hit = ids.isin(tags["image_id"][tags["reference"].isin(want)].unique().tolist())
        if not hit.any() and hexref and all(c in "0123456789abcdef" for c in hexref):
            hit = ids.str.startswith("sha256:" + hexref) | (
                ~ids.str.startswith("sha256:") & ids.str.startswith(hexref))
        return _one(images, hit, ref, "image")

    def image_tags_of(self, image_id: str) -> list[str]:
        """``repo:tag`` references of an image, sorted."""
        t = self.tables["image_tags"]
        return sorted(t[(t["image_id"] == image_id) & t["tag"].notna()]["reference"].tolist())

    def image_digests_of(self, image_id: str) -> list[str]:
        """``repo@digest`` references of an image, sorted."""
        t = self.tables["image_tags"]
        return sorted(t[(t["image_id"] == image_id) & t["digest"].notna()]["reference"].tolist())


def _one(df: pd.DataFrame, hit: pd.Series, ref: str, what: str) -> pd.Series:
    """The one row of ``df`` where ``hit`` holds (only that row is taken: the tables
    carry large JSON columns)."""
    rows = hit.to_numpy(dtype=bool, na_value=False).nonzero()[0]
    if len(rows) == 0:
        raise UsageError(f"no such {what}: {ref}")
    if len(rows) > 1:
        raise AmbiguousReference(f"{what} reference {ref!r} is ambiguous: "
                                 f"{len(rows)} {what}s match")
    return df.iloc[int(rows[0])]
