"""docker-root analyzer: offline forensics of Docker data-roots.

Notebook use::

    import analyzer
    snap = analyzer.open_snapshot("evidence.tar.zst")
    snap.images, snap.containers, snap.layers, snap.logs, snap.files ...

Nothing here runs Docker or writes into the evidence.
"""

from __future__ import annotations

__version__ = "0.1.0"

from analyzer.api import open_snapshot  # noqa: E402
from analyzer.errors import AnalyzerError  # noqa: E402
from analyzer.model.snapshot import Snapshot  # noqa: E402

__all__ = ["__version__", "open_snapshot", "Snapshot", "AnalyzerError"]
