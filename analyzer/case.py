"""The case cache: a snapshot's tables and manifest on disk, reused by later commands.

``ingest`` writes one Parquet file per table plus ``manifest.json`` (evidence
path, size, sha256, tool version, parameters, issue counts) to a case folder.
By default the folder lives under the user's cache directory
(``$XDG_CACHE_HOME/docker-root-analyzer/cases/<key>``), keyed by the evidence's
absolute path, size and mtime so that finding it costs no read of the evidence.
A case folder is accepted wherever a snapshot is.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from analyzer import __version__
from analyzer.allocators import trim
from analyzer.errors import ExportError
from analyzer.model import schema

if TYPE_CHECKING:  # pragma: no cover - pandas and the model load where a case is read or written
    import pandas as pd

    from analyzer.model.snapshot import Snapshot
    from analyzer.model.spill import Deferred

MANIFEST = "manifest.json"
FORMAT = 3  # bump when the case layout changes (table columns are fingerprinted below)


def cache_root() -> str:
    """The folder holding default case folders."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "docker-root-analyzer", "cases")


def default_case_dir(evidence: str, containerd: str | None = None) -> str:
    """The default case folder of an evidence file or directory (and of the second
    evidence holding the containerd root, when one is given)."""
    text = ""
    for item in (evidence, containerd):
        if item:
            path = os.path.abspath(item)
            st = os.stat(path)
            text += f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0"
    key = hashlib.sha256(text[:-1].encode()).hexdigest()[:20]
    return os.path.join(cache_root(), key)


def is_case_dir(path: str) -> bool:
    """True if ``path`` is a case folder written by :func:`save_case`."""
    return os.path.isfile(os.path.join(path, MANIFEST))


def read_manifest(path: str) -> dict[str, Any] | None:
    """The manifest of a case folder, or ``None`` if unreadable."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as fh:
            doc = json.load(fh)
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the analyzer's own source files: a case written by other parser code
    (a development build, a local fix) is read again instead of reused."""
    root = os.path.dirname(os.path.abspath(__file__))
    sha = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                sha.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as fh:
                    sha.update(fh.read())
    return sha.hexdigest()[:16]


def schema_fingerprint() -> str:
    """sha256 of every table's column names and dtypes: a case written with other
    columns is never reused."""
    import hashlib

    from analyzer.model import schema

    text = ";".join(f"{t}:" + ",".join(f"{c.name}/{c.dtype}" for c in cols)
                    for t, (_, cols) in sorted(schema.TABLES.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def usable_case(path: str, root: str | None, containerd: str | None = None) -> bool:
    """True if the case at ``path`` was written by this version for the same root choice
    and the same second evidence (``--containerd``)."""
    man = read_manifest(path)
    if not man or man.get("format") != FORMAT or man.get("tool_version") != __version__ \
            or man.get("schema") != schema_fingerprint() \
            or man.get("code") != code_fingerprint():
        return False
    try:
        params = json.loads(man["meta"].get("parameters") or "{}")
    except (ValueError, TypeError):
        params = {}
    if params.get("containerd") != containerd:
        return False
    return root is None or man.get("root_arg") == root or \
        man["meta"].get("root_prefix") == root.strip("/")


def save_case(snap: Snapshot, path: str, root_arg: str | None = None) -> str:
    """Write ``snap`` to the case folder ``path`` (atomically replaced)."""
    import pandas as pd

    parent = os.path.dirname(os.path.abspath(path)) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".case-", dir=parent)
        for name in snap.tables:
            df, deferred = snap.tables.unmaterialized(name)
            write_parquet(df, os.path.join(tmp, f"{name}.parquet"), deferred)
            del df, deferred
        meta = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v)
                for k, v in snap.meta.items()}
        manifest = {"format": FORMAT, "tool_version": __version__, "root_arg": root_arg,
                    "schema": schema_fingerprint(), "code": code_fingerprint(),
                    "tables": sorted(snap.tables), "meta": meta,
                    "written_at": pd.Timestamp.now(tz="UTC").isoformat()}
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True, default=str)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write the case folder {path}: {exc}") from exc
    return path


#: rows converted to Arrow and written at a time (bounds the copy of a large files table)
WRITE_ROWS = 1 << 18


def write_parquet(df: pd.DataFrame, path: str, deferred: list[Deferred] | None = None) -> None:
    """``df.to_parquet(path, index=False)``, converted and written in slices of
    :data:`WRITE_ROWS` rows so that a large table is never copied to Arrow whole; the
    ``deferred`` columns (held in temporary files, :mod:`analyzer.model.spill`) are
    read and put in place slice by slice."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from analyzer.model.spill import attach

    def part(start: int) -> pa.Table:
        rows = df.iloc[start:start + WRITE_ROWS]
        if deferred:
            rows = attach(rows.copy(deep=False), deferred, start)
        return pa.Table.from_pandas(rows, preserve_index=False)

    first = part(0)
    with pq.ParquetWriter(path, first.schema) as writer:
        writer.write_table(first)
        del first
        for start in range(WRITE_ROWS, len(df), WRITE_ROWS):
            table = part(start)
            writer.write_table(table.cast(writer.schema))
            del table
            trim()


def load_case(path: str) -> Snapshot:
    """Open a case folder as a :class:`Snapshot`; each table is read when first used
    (:class:`~analyzer.model.snapshot.Tables`), its row count known from the Parquet
    footer. A damaged table raises :class:`~analyzer.errors.ExportError` when read."""
    import pandas as pd
    import pyarrow.parquet as pq

    from analyzer.model.snapshot import Snapshot, Tables

    man = read_manifest(path)
    if man is None:
        raise ExportError(f"{path} is not a readable case folder (no {MANIFEST})")
    lazy = {}
    try:
        for name in schema.TABLES:
            file = os.path.join(path, f"{name}.parquet")
            rows = pq.read_metadata(file).num_rows
            lazy[name] = (functools.partial(_read_table, file, name, _identity(file)), rows)
    except (OSError, ValueError) as exc:
        raise ExportError(f"the case folder {path} is damaged: {exc}") from exc
    tables = Tables(lazy=lazy)
    meta = dict(man["meta"])
    if meta.get("acquired_at"):
        meta["acquired_at"] = pd.Timestamp(meta["acquired_at"])
    return Snapshot(tables=tables, meta=meta)


def _identity(file: str) -> tuple[int, int, int, int]:
    st = os.stat(file)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read_table(file: str, name: str, identity: tuple[int, int, int, int]) -> pd.DataFrame:
    """One table of a case folder, with our dtypes; the file must still be the one
    :func:`load_case` opened (a later ``ingest`` may have replaced the folder)."""
    import pandas as pd

    try:
        if _identity(file) != identity:
            raise ExportError(f"the case folder {os.path.dirname(file)} changed since it was "
                              f"opened ({name}.parquet was rewritten); run the command again")
        df = pd.read_parquet(file)
        for col in schema.columns(name):
            want = schema.DTYPES[col.dtype]
            if col.dtype == "bytes":
                df[col.name] = df[col.name].astype("object")
            elif str(df[col.name].dtype) != str(want):
                df[col.name] = schema.cast(df[col.name], col.dtype)
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise ExportError(f"the case folder {os.path.dirname(file)} is damaged: "
                          f"{name}.parquet: {exc}") from exc
    return df
