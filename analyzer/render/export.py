"""Write every table of a snapshot to a folder as Parquet or CSV.

Each export carries ``manifest.json`` with the provenance (tool version,
evidence path and sha256, parameters) so the files can be traced to evidence.
Binary log lines are written as base64 in CSV.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pandas as pd

from analyzer import __version__
from analyzer.case import write_parquet
from analyzer.errors import ExportError, UsageError

FORMATS = ("parquet", "csv")


def export_tables(snap: Any, out_dir: str, fmt: str = "parquet") -> list[str]:
    """Write each table to ``out_dir/<table>.<fmt>``; returns the written paths."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (use parquet or csv)")
    try:
        os.makedirs(out_dir, exist_ok=True)
        paths = []
        for name in snap.tables:
            path = os.path.join(out_dir, f"{name}.{fmt}")
            if fmt == "parquet":  # the case writer's: in slices, deferred columns joined
                df, deferred = snap.tables.unmaterialized(name)
                write_parquet(df, path, deferred)
            else:
                out = snap.tables[name].copy()
                for col in out.columns:
                    if out[col].dtype == object and out[col].map(
                            lambda v: isinstance(v, bytes)).any():
                        out[col] = out[col].map(
                            lambda v: base64.b64encode(v).decode() if isinstance(v, bytes) else v)
                out.to_csv(path, index=False)
            paths.append(path)
        manifest = os.path.join(out_dir, "manifest.json")
        meta = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v)
                for k, v in snap.meta.items()}
        with open(manifest, "w", encoding="utf-8") as fh:
            json.dump({"tool_version": __version__, "format": fmt, "snapshot": meta,
                       "tables": sorted(snap.tables)}, fh, indent=2, default=str)
        paths.append(manifest)
        return paths
    except OSError as exc:
        raise ExportError(f"cannot write to {out_dir}: {exc}") from exc
