"""The public entry point: evidence (or a case folder) → :class:`Snapshot`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from analyzer import case as casemod
from analyzer.pipeline import LOG_MEMORY, build_snapshot, read_evidence
from analyzer.sources.base import Progress

if TYPE_CHECKING:  # pragma: no cover
    from analyzer.model.snapshot import Snapshot


def open_snapshot(path: str, *, root: str | None = None, hash_files: bool = True,
                  case: str | None = None, use_cache: bool = False,
                  progress: Progress | None = None, log_memory: int | None = None,
                  containerd: str | None = None) -> Snapshot:
    """Open a snapshot for analysis.

    Args:
        path: a tar (plain, gzip, zstd, xz, bzip2), a directory holding a data-root,
            or a case folder written by ``ingest``.
        root: the data-root prefix to use when the snapshot holds several.
        hash_files: compute sha256 of every file's content during the pass.
        case: a case folder to reuse if valid, and to write after reading.
        use_cache: reuse/write the default case folder of ``path``.
        progress: called with (evidence bytes read, members seen) during the pass.
        log_memory: bytes of log lines kept for the logs table (default
            ``pipeline.LOG_MEMORY``); the rest is read from the evidence by ``logs``.
        containerd: a second tar or directory holding the containerd root, for a root
            that used the containerd image store with the system's containerd
            (``/var/lib/containerd`` is outside ``/var/lib/docker``).

    Returns:
        The snapshot's tables and metadata.
    """
    if os.path.isdir(path) and casemod.is_case_dir(path):
        return casemod.load_case(path)
    target = case or (casemod.default_case_dir(path, containerd)
                      if use_cache and os.path.exists(path) else None)
    containerd = os.path.abspath(containerd) if containerd else None
    if target and casemod.usable_case(target, root, containerd):
        return casemod.load_case(target)
    raw = read_evidence(path, hash_files=hash_files, progress=progress,
                        log_memory=LOG_MEMORY if log_memory is None else log_memory)
    extra = read_evidence(containerd, hash_files=hash_files, progress=progress,
                          log_memory=0) if containerd else None
    snap = build_snapshot(raw, root=root, containerd=extra,
                          params={"containerd": containerd} if containerd else None)
    if target:
        casemod.save_case(snap, target, root_arg=root)
    return snap
