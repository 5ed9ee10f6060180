"""Command line: ``python -m analyzer COMMAND SNAPSHOT [options]``.

Thin by design: parse arguments, open the snapshot (or its case cache), call a
renderer, write data to stdout and progress/messages to stderr. Exit status:
0 success, 2 usage error, 3 unusable snapshot, 4 evidence issues under
``--strict``, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from typing import Any, Callable, TextIO

from analyzer import __version__
from analyzer.errors import AnalyzerError, UsageError

EPILOG = """\
examples:
  python -m analyzer images   evidence.tar.zst --all
  python -m analyzer ps       evidence.tar.zst --all --size --json
  python -m analyzer inspect  evidence.tar.zst web-1 --json
  python -m analyzer history  evidence.tar.zst app:legacy
  python -m analyzer logs     evidence.tar.zst web-1 --timestamps
  python -m analyzer volumes  evidence.tar.zst --json
  python -m analyzer df       evidence.tar.zst -v
  python -m analyzer networks evidence.tar.zst
  python -m analyzer ingest   evidence.tar.zst --case ./case-42
  python -m analyzer export   evidence.tar.zst --out ./tables --format csv
  python -m analyzer info     ./case-42
  python -m analyzer report   evidence.tar.zst -o report.html
  python -m analyzer diff     evidence.tar.zst intruder
  python -m analyzer files    evidence.tar.zst intruder /tmp
  python -m analyzer cat      evidence.tar.zst intruder /etc/passwd
  python -m analyzer ps       var-lib-docker.tar.zst --containerd var-lib-containerd.tar.zst

SNAPSHOT is a tar (plain, gzip, zstd, xz or bzip2; detected by content), a
directory holding a data-root, or a case folder written by `ingest`. A root
that used the containerd image store with the system's containerd needs
/var/lib/containerd too: in the same tar (a tar of /) or via --containerd. The
evidence is opened read-only and never modified. Results of the first read are
kept in a case cache under $XDG_CACHE_HOME/docker-root-analyzer (disable with
--no-cache), so later commands on the same evidence answer at once.

exit status: 0 ok; 2 usage error (bad option, unknown object); 3 unusable
snapshot (not a tar, no data-root); 4 evidence issues were found and --strict
was given; 130 interrupted.
"""


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("snapshot options")
    g.add_argument("snapshot", metavar="SNAPSHOT", help="evidence tar, directory or case folder")
    g.add_argument("--root", metavar="PREFIX", help="data-root inside the snapshot when it holds "
                   "several (see `info`)")
    g.add_argument("--containerd", metavar="SNAPSHOT2", help="second evidence tar or directory "
                   "holding the containerd root (/var/lib/containerd) when SNAPSHOT holds only "
                   "/var/lib/docker (containerd image store with a system containerd)")
    g.add_argument("--case", metavar="DIR", help="case folder to reuse or write")
    g.add_argument("--no-cache", action="store_true", help="always read the evidence; write no cache")
    g.add_argument("--no-hash", action="store_true", help="skip sha256 of file contents (faster)")
    g.add_argument("--log-memory", metavar="BYTES", type=int, default=None,
                   help="log lines kept in memory for the logs table (default 256 MiB); "
                        "`logs` reads the rest from the evidence")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or issue summary")
    g.add_argument("--strict", action="store_true", help="exit 4 when the evidence had issues")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the Docker Engine API JSON document instead of a table")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the whole CLI."""
    parser = argparse.ArgumentParser(
        prog="python -m analyzer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Offline forensic analyzer for Docker data-roots (never runs Docker, never "
                    "writes into the evidence).", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = [_common()]

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=common, help=help_, description=help_,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("images", "list images (like `docker images`; --json = GET /images/json)")
    p.add_argument("-a", "--all", action="store_true", help="include intermediate images")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate ids")
    _json_flag(p)
    p = add("ps", "list containers (like `docker ps`; --json = GET /containers/json)")
    p.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    p.add_argument("-s", "--size", action="store_true", help="add RW layer sizes")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("--at", metavar="TIME", help="reference time for 'Up 5 minutes' wording "
                   "(RFC 3339; default: the acquisition time estimated from the snapshot)")
    _json_flag(p)
    p = add("inspect", "show containers or images (like `docker inspect`)")
    p.add_argument("refs", nargs="+", metavar="NAME|ID", help="container or image references")
    p.add_argument("--type", choices=("container", "image"), help="only look up this kind")
    p.add_argument("-s", "--size", action="store_true", help="add container sizes")
    _json_flag(p)
    p = add("history", "show an image's history (GET /images/{id}/history)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    _json_flag(p)
    p = add("logs", "print a container's logs byte-for-byte like `docker logs`")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("-t", "--timestamps", action="store_true", help="prefix RFC3339Nano times")
    p.add_argument("-n", "--tail", metavar="N", help="only the last N lines ('all' = every line)")
    p = add("volumes", "list volumes (GET /volumes)")
    _json_flag(p)
    p = add("networks", "list networks (GET /networks)")
    _json_flag(p)
    p = add("df", "disk usage like `docker system df` (--json = GET /system/df)")
    p.add_argument("-v", "--verbose", action="store_true", help="per image, container, volume "
                   "and build-cache record")
    p.add_argument("--at", metavar="TIME", help="reference time for 'X ago' wording")
    _json_flag(p)
    p = add("info", "summary of the snapshot: evidence hash, data-root, driver, counts, issues")
    _json_flag(p)
    p = add("report", "write one self-contained HTML report (storage, layer DAG, duplicates, "
                      "waste, images, containers, volumes, networks, orphans)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="HTML file to write")
    p.add_argument("--max-rows", type=int, default=200, metavar="N",
                   help="rows shown per table (default 200; the rest are counted)")
    p.add_argument("--max-dag-images", type=int, default=60, metavar="N",
                   help="images drawn in the layer DAG (default 60; the rest are counted)")
    p.add_argument("--at", metavar="TIME", help="reference time for 'Up 5 minutes' wording")
    p.add_argument("--verify", action="store_true", help="also check image layers against "
                   "their tar-split or containerd blobs (as `verify` does; reads the evidence "
                   "again)")
    p = add("ingest", "read the evidence once and write the case folder")
    p = add("export", "write every table to a folder as Parquet or CSV")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p = add("findings", "triage: run the detection rules (privileges, mounts, dropped files, "
                        "secrets, attack strings ...), severity first")
    p.add_argument("--min-severity", default="info", metavar="S",
                   choices=("info", "low", "medium", "high", "critical"),
                   help="hide findings below S (info, low, medium, high, critical)")
    p.add_argument("--ioc", metavar="FILE", help="CSV of indicators: type,value[,note] with type "
                   "sha256, md5, filename, path (glob), image, ip or domain")
    p.add_argument("--yara", metavar="DIR", help="scan RW layers and volumes with the YARA rule "
                   "sources in DIR (streams the evidence again; needs yara-python)")
    p.add_argument("--yara-all-layers", action="store_true", help="with --yara: image layers too")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p = add("timeline", "write a timeline (images, layers, containers, files, volumes, logs)")
    p.add_argument("--format", choices=("timesketch", "bodyfile", "csv"), default="timesketch",
                   help="timesketch JSONL (default), Sleuth Kit bodyfile for mactime, or CSV")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--logs", action="store_true", help="add one event per container log line")
    p.add_argument("--all-layers", action="store_true", help="add file times of image layers")
    p = add("diff", "a container's filesystem changes (like `docker diff`; --json = "
                    "GET /containers/{id}/changes)")
    p.add_argument("container", metavar="CONTAINER")
    _json_flag(p)
    p = add("files", "list the merged filesystem of a container or image, with the layer "
                     "each entry comes from")
    p.add_argument("ref", metavar="CONTAINER|IMAGE")
    p.add_argument("path", nargs="?", default="/", metavar="PATH",
                   help="list only this path (a directory: everything under it)")
    p.add_argument("--json", action="store_true", help="JSON records instead of a table")
    p = add("cat", "write one file of a container or image to stdout, from the evidence "
                   "(never executed)")
    p.add_argument("ref", metavar="CONTAINER|IMAGE")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--out", metavar="FILE", help="write to a new file (mode 0600) instead")
    p = add("verify", "check every image layer against its tar-split (file CRC-64s, added and "
                      "removed files, header metadata, diff id) or, in the containerd store, "
                      "every blob against its digest and every layer blob against its diff id "
                      "and snapshot folder; exit 1 when one was tampered")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def _progress(quiet: bool, total: int) -> tuple[Callable[[int, int], None] | None, Any]:
    if quiet or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
               desc="reading", file=sys.stderr, leave=False)
    state = {"last": 0}

    def update(nbytes: int, members: int) -> None:
        if nbytes - state["last"] >= (1 << 20) or members % 5000 == 0:
            bar.update(nbytes - state["last"])
            state["last"] = nbytes
            bar.set_postfix(members=members, refresh=False)

    return update, bar


def open_for(args: argparse.Namespace, force_read: bool = False) -> Any:
    """Open the snapshot named on the command line, using the case cache."""
    from analyzer import case as casemod
    from analyzer.api import open_snapshot

    path = args.snapshot
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file or directory")
    is_case = os.path.isdir(path) and casemod.is_case_dir(path)
    containerd = getattr(args, "containerd", None)
    if containerd and not os.path.exists(containerd):
        raise UsageError(f"{containerd}: no such file or directory")
    target = args.case or (None if args.no_cache or is_case else
                           casemod.default_case_dir(path, containerd))
    if force_read and target and os.path.exists(target) and not is_case:
        if casemod.is_case_dir(target):
            import shutil

            shutil.rmtree(target)
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    progress, bar = _progress(args.quiet, size)
    try:
        return open_snapshot(path, root=args.root, hash_files=not args.no_hash, case=target,
                             progress=progress, log_memory=args.log_memory,
                             containerd=containerd)
    finally:
        if bar is not None:
            bar.close()


def _summary(snap: Any, err: TextIO) -> None:
    issues = snap.tables["issues"]
    if len(issues):
        counts = issues["severity"].value_counts().to_dict()
        text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        err.write(f"analyzer: {len(issues)} evidence issue(s) ({text}); "
                  "see `info` for the list\n")


def main(argv: list[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its message
        return int(exc.code or 0)
    try:
        if args.command in ("ingest",):
            snap = open_for(args, force_read=True)
        else:
            snap = open_for(args)
        from analyzer.cli import commands

        if not args.quiet and args.command not in ("info",):
            _summary(snap, err)
        status = commands.run(args, snap, out, err)
        if args.strict and len(snap.tables["issues"]):
            return max(status, 4)
        return status
    except AnalyzerError as exc:
        err.write(f"analyzer: error: {exc}\n")
        if args.debug:
            traceback.print_exc(file=err)
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("analyzer: interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, like Unix tools do
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except Exception as exc:  # noqa: BLE001 - last resort: never a bare traceback
        err.write(f"analyzer: internal error: {type(exc).__name__}: {exc}\n"
                  "analyzer: please report this with --debug output\n")
        if args.debug:
            traceback.print_exc(file=err)
        return 70


def entry() -> None:
    """Console-script entry point."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    status = main()
    # The command is finished and its files are closed: flush what it printed and skip
    # the interpreter's teardown, which frees a large snapshot's tables and every
    # module object by object (0.1-0.3 s of an ingest; benchmarks/README.md).
    try:
        sys.stdout.flush()
    except (OSError, ValueError) as exc:  # disk full, I/O error: the output is lost
        try:
            sys.stderr.write(f"analyzer: error: cannot write the output: {exc}\n")
        except (OSError, ValueError):
            pass
        status = status or 120  # what Python's own shutdown exits with here
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(status)


__all__ = ["main", "build_parser", "entry"]
