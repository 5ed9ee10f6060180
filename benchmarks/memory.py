#!/usr/bin/env python3
"""Memory and time profile of one ingest by stage (issue 5: peak RSS ≤ 150 MB + 250 B/member).

    .venv/bin/python benchmarks/memory.py ARCHIVE [--hash]

Runs the pass, the table build and the case write in this process while a thread samples
``VmRSS`` every 5 ms, and prints the peak RSS seen inside each stage and the wall time spent in it (stages
nest: the build's parsers are wrapped one by one, and a parent's time includes its
children's). ``/usr/bin/time -v`` of ``python -m analyzer
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
SECONDS: dict[str, float] = {}


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
        key, t = " > ".join(STACK), time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            SECONDS[key] = SECONDS.get(key, 0.0) + time.perf_counter() - t
            STACK.pop()

    setattr(obj, name, inner)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive")
    ap.add_argument("--hash", action="store_true", help="hash file contents (default: --no-hash)")
    args = ap.parse_args()
    threading.Thread(target=_sample, daemon=True).start()
    t_import = time.perf_counter()
    from analyzer import case, pipeline
    from analyzer.parsers import build, containers, drivers, imagestore, volumes

    for obj, name in [(build, "root_files"), (build, "files_frame"), (build.IndexedView, "exists"),
                      (build.IndexedView, "top_dirs"), (imagestore, "parse_store"),
                      (containers, "parse_containers"), (drivers, "driver_dirs"),
                      (drivers, "content_sizes"), (volumes, "parse_volumes"),
                      (build, "_log_columns"), (build, "_meta")]:
        _wrap(obj, name)
    t0 = time.perf_counter()
    SECONDS["import"] = t0 - t_import

    def stage(name: str, fn, *a, **k):  # type: ignore[no-untyped-def]
        STACK[:] = [name]
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            SECONDS[name] = time.perf_counter() - t

    raw = stage("read_evidence", pipeline.read_evidence, args.archive, hash_files=args.hash)
    members = raw.info.members
    snap = stage("build_snapshot", pipeline.build_snapshot, raw)
    del raw
    out = tempfile.mkdtemp(prefix="dra-mem-")
    try:
        stage("save_case", case.save_case, snap, os.path.join(out, "case"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    STACK[:] = ["end"]
    time.sleep(0.05)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit = 150 + 250 * members / 2**20
    print(f"{members} members, {time.perf_counter() - t0:.1f} s; peak RSS {peak:.0f} MB, "
          f"limit {limit:.0f} MB ({peak / limit:.2f}×)")
    print("| peak RSS MB | wall s | stage |\n|---:|---:|---|")
    for key, mb in PEAKS.items():
        print(f"| {mb:.0f} | {SECONDS.get(key, float('nan')):.2f} | {key} |")


if __name__ == "__main__":
    main()
