#!/usr/bin/env python3
"""Memory profile of one ingest by stage (issue 5: peak RSS ≤ 150 MB + 250 B/member).

    .venv/bin/python benchmarks/memory.py ARCHIVE [--hash]

Runs the pass, the table build and the case write in this process while a thread samples
``VmRSS`` every 5 ms, and prints the peak RSS seen inside each stage (stages nest: the
build's parsers are wrapped one by one). ``/usr/bin/time -v`` of ``python -m analyzer
ingest`` (as ``benchmarks/ingest.py`` runs it) gives the whole-process peak; this shows
where it comes from.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STACK = ["import"]
PEAKS: dict[str, float] = {}


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _sample() -> None:
    while True:
        key = " > ".join(STACK)
        PEAKS[key] = max(PEAKS.get(key, 0.0), rss_mb())
        time.sleep(0.005)


def _wrap(obj: object, name: str) -> None:
    fn = getattr(obj, name)

    @functools.wraps(fn)
    def inner(*a, **k):  # type: ignore[no-untyped-def]
        STACK.append(name)
        try:
            return fn(*a, **k)
        finally:
            STACK.pop()

    setattr(obj, name, inner)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive")
    ap.add_argument("--hash", action="store_true", help="hash file contents (default: --no-hash)")
    args = ap.parse_args()
    threading.Thread(target=_sample, daemon=True).start()
    from analyzer import case, pipeline
    from analyzer.parsers import build, containers, drivers, imagestore, volumes

    for obj, name in [(build, "root_files"), (build, "files_frame"), (build.IndexedView, "exists"),
                      (build.IndexedView, "top_dirs"), (imagestore, "parse_store"),
                      (containers, "parse_containers"), (drivers, "driver_dirs"),
                      (drivers, "content_sizes"), (volumes, "parse_volumes"),
                      (build, "_log_columns"), (build, "_meta")]:
        _wrap(obj, name)
    t0 = time.perf_counter()
    STACK[:] = ["read_evidence"]
    raw = pipeline.read_evidence(args.archive, hash_files=args.hash)
    members = raw.info.members
    STACK[:] = ["build_snapshot"]
    snap = pipeline.build_snapshot(raw)
    del raw
    STACK[:] = ["save_case"]
    out = tempfile.mkdtemp(prefix="dra-mem-")
    try:
        case.save_case(snap, os.path.join(out, "case"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    STACK[:] = ["end"]
    time.sleep(0.05)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit = 150 + 250 * members / 2**20
    print(f"{members} members, {time.perf_counter() - t0:.1f} s; peak RSS {peak:.0f} MB, "
          f"limit {limit:.0f} MB ({peak / limit:.2f}×)")
    print("| peak RSS MB | stage |\n|---:|---|")
    for key, mb in PEAKS.items():
        print(f"| {mb:.0f} | {key} |")


if __name__ == "__main__":
    main()
