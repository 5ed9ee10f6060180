"""What parsers see of a snapshot: one data-root, paths relative to it.

Parsers never touch the evidence. They read the member index (``files``) and
the small metadata files the pass captured, both relative to the chosen
data-root, and report problems into ``issues``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pandas as pd

from analyzer.issues import IssueLog

#: JSON artefacts larger than this are refused (a hostile config could be huge)
MAX_JSON = 32 << 20


class RootView:
    """A data-root inside a snapshot, as the pass left it."""

    def __init__(self, prefix: str, files: pd.DataFrame, captured: dict[str, bytes],
                 issues: IssueLog) -> None:
        self.prefix = prefix
        self.files = files
        self.issues = issues
        head = prefix + "/" if prefix else ""
        self._captured = {p[len(head):]: d for p, d in captured.items()
                          if p.startswith(head)} if head else dict(captured)
        self._paths: set[str] | None = None

    # -- captured metadata ----------------------------------------------------------
    def read(self, rel: str) -> bytes | None:
        """Bytes of a captured metadata file, or ``None``."""
        return self._captured.get(rel)

    def text(self, rel: str) -> str | None:
        """A captured small text file (ids, sizes), stripped; ``None`` if absent."""
        data = self._captured.get(rel)
        if data is None:
            return None
        return data.decode("utf-8", "replace").strip()

    def json(self, rel: str, what: str = "JSON file") -> Any:
        """A captured JSON file parsed; ``None`` (and an issue) if absent or malformed."""
        data = self._captured.get(rel)
        if data is None:
            return None
        if len(data) > MAX_JSON:
            self.issues.add("member.too_large", f"{rel}: {what} of {len(data)} bytes refused",
                            path=rel)
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            self.issues.add("json.malformed", f"{rel}: {what} does not parse ({exc})", path=rel,
                            detail=type(exc).__name__)
            return None

    def matching(self, pattern: str) -> Iterator[tuple[str, re.Match[str]]]:
        """Captured paths matching a regex (full match), in sorted order."""
        rx = re.compile(pattern)
        for rel in sorted(self._captured):
            m = rx.fullmatch(rel)
            if m:
                yield rel, m

    # -- the index ------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        """True if the snapshot holds this path (any kind)."""
        if self._paths is None:
            self._paths = set(self.files["path"].tolist())
        return rel in self._paths

    def children(self, rel: str) -> pd.DataFrame:
        """Index rows of the direct children of folder ``rel``."""
        head = rel.rstrip("/") + "/" if rel else ""
        paths = self.files["path"]
        mask = paths.str.startswith(head) & ~paths.str.slice(len(head)).str.contains("/")
        return self.files[mask & (paths != rel)]

    def top_dirs(self) -> list[str]:
        """Folders directly under the data-root."""
        f = self.files
        top = f[(f["kind"] == "dir") & ~f["path"].str.contains("/")]["path"]
        names = set(top.tolist())
        # a tar may omit directory entries: infer folders from deeper paths too
        names |= set(f["path"].str.extract(r"^([^/]+)/", expand=False).dropna().unique().tolist())
        return sorted(names)
