"""One function per CLI command: snapshot + arguments → bytes on stdout.

Each command only selects and renders; every fact comes from the snapshot's
tables (see ``analyzer.render``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Callable, TextIO

from analyzer.errors import UsageError
from analyzer.render import tables
from analyzer.render.engine import containers as econt
from analyzer.render.engine import images as eimg
from analyzer.render.engine import storage as estore
from analyzer.render.engine.common import context_for
from analyzer.render.gojson import document


def _emit_json(out: TextIO, doc: Any) -> None:
    out.write(document(doc))


def cmd_images(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    docs = eimg.image_summaries(snap, all_images=args.all)
    if args.json:
        _emit_json(out, docs)
    else:
        out.write(tables.images_table(docs, context_for(snap), no_trunc=args.no_trunc))
    return 0


def cmd_ps(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    ctx = context_for(snap, at=args.at)
    docs = econt.ContainerDocs(snap, ctx).list(all_containers=args.all, size=args.size)
    if args.json:
        _emit_json(out, docs)
    else:
        out.write(tables.ps_table(docs, ctx, size=args.size, no_trunc=args.no_trunc))
    return 0


def cmd_inspect(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    ctx = context_for(snap)
    cdocs = econt.ContainerDocs(snap, ctx)
    docs: list[Any] = []
    status = 0
    for ref in args.refs:
        try:
            if args.type != "image":
                try:
                    row = snap.find_container(ref)
                    docs.append(cdocs.inspect(row["container_id"], size=args.size))
                    continue
                except UsageError:
                    if args.type == "container":
                        raise
            docs.append(eimg.image_inspect(snap, ctx, snap.find_image(ref)))
        except UsageError as exc:
            err.write(f"analyzer: error: no such object: {ref} ({exc})\n")
            status = 2
    if args.json or True:  # docker inspect has only one output form
        out.write(json.dumps(docs, indent=4, ensure_ascii=False) + "\n")
    return status


def cmd_history(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    docs = eimg.image_history(snap, snap.find_image(args.image))
    if args.json:
        _emit_json(out, docs)
    else:
        out.write(tables.history_table(docs, context_for(snap), no_trunc=args.no_trunc))
    return 0


def cmd_logs(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    from analyzer.analyses.logsource import log_records
    from analyzer.render.logs import write_docker_logs

    row = snap.find_container(args.container)
    problems: list[Any] = []
    records = log_records(snap, row, problems.append)
    tail = None
    if args.tail not in (None, "all"):
        try:
            tail = int(args.tail)
        except ValueError as exc:
            raise UsageError(f"--tail takes a number or 'all', not {args.tail!r}") from exc
    cfg = json.loads(row["config_json"]) if isinstance(row["config_json"], str) else {}
    out.flush()
    err.flush()
    stdout = getattr(out, "buffer", None) or _BytesTo(out)
    stderr = getattr(err, "buffer", None) or _BytesTo(err)
    write_docker_logs(records, stdout, stderr, timestamps=args.timestamps, tail=tail,
                      tty=bool((cfg.get("Config") or {}).get("Tty")))
    stdout.flush()
    stderr.flush()
    for p in problems[:20]:  # after the container's own stderr bytes, never inside them
        err.write(f"analyzer: warning: {p}\n")
    if len(problems) > 20:
        err.write(f"analyzer: warning: {len(problems) - 20} more log problems\n")
    return 0


class _BytesTo:
    """Bytes → a text stream (tests capture output as text)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(data.decode("utf-8", "surrogateescape"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


def cmd_volumes(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    doc = estore.volume_list(snap, context_for(snap))
    if args.json:
        _emit_json(out, doc)
    else:
        out.write(tables.volumes_table(doc))
    return 0


def cmd_networks(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    docs = estore.network_list(snap)
    if args.json:
        _emit_json(out, docs)
    else:
        out.write(tables.networks_table(docs))
    return 0


def cmd_df(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    from analyzer.render.engine.system import system_df

    ctx = context_for(snap, at=args.at)
    doc = system_df(snap, ctx)
    if args.json:
        _emit_json(out, doc)
    elif args.verbose:
        out.write(tables.system_df_verbose(doc, ctx))
    else:
        out.write(tables.system_df_table(doc))
    return 0


def cmd_info(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    doc = tables.info_doc(snap)
    if args.json:
        out.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        out.write(tables.info_text(doc))
    return 0


def cmd_ingest(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    from analyzer import case as casemod

    target = args.case or casemod.default_case_dir(args.snapshot, getattr(args, "containerd",
                                                                          None))
    if args.no_cache and not args.case:
        raise UsageError("ingest writes a case folder: give --case DIR or drop --no-cache")
    if not casemod.is_case_dir(target):
        casemod.save_case(snap, target, root_arg=args.root)
    out.write(target + "\n")
    if not args.quiet:
        m = snap.meta
        err.write(f"analyzer: ingested {m['members']} members, {len(snap.images)} images, "
                  f"{len(snap.containers)} containers into {target}\n")
    return 0


def cmd_export(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    from analyzer.render.export import export_tables

    paths = export_tables(snap, args.out, args.format)
    for p in paths:
        out.write(os.path.relpath(p) + "\n")
    return 0


def cmd_report(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """Write the HTML report to ``--output``; the path goes to stderr."""
    from analyzer.render.html import render_report

    if args.max_rows < 1 or args.max_dag_images < 1:
        raise UsageError("--max-rows and --max-dag-images must be at least 1")
    verify_results = None
    if getattr(args, "verify", False):
        from analyzer.analyses.verify import verify

        verify_results = verify(args.snapshot, snap)
    html = render_report(snap, context_for(snap, at=args.at), max_rows=args.max_rows,
                         max_dag_images=args.max_dag_images, verify_results=verify_results)
    try:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(html)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    if not args.quiet:
        err.write(f"analyzer: report written to {args.output} "
                  f"({len(html.encode('utf-8')):,} bytes)\n")
    return 0


def cmd_findings(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """Triage findings, severity first (``--json``: the findings document)."""
    from analyzer.analyses.triage import findings_json, findings_table, run_rules

    errors: list[str] = []
    notes: list[str] = []
    found = run_rules(snap, min_severity=args.min_severity, ioc=args.ioc, yara_dir=args.yara,
                      yara_all_layers=args.yara_all_layers, errors=errors, notes=notes)
    for line in notes + [f"rule failed: {e}" for e in errors]:
        err.write(f"analyzer: {line}\n")
    out.write(findings_json(found, snap) if args.json else findings_table(found))
    return 0


def cmd_timeline(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """Timeline as Timesketch JSONL, bodyfile or CSV, to stdout or ``--out``."""
    from analyzer.render.timeline import write_timeline

    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as fh:
                n = write_timeline(snap, fh, args.format, logs=args.logs,
                                   all_layers=args.all_layers)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
        if not args.quiet:
            err.write(f"analyzer: {n} timeline entries written to {args.out}\n")
    else:
        write_timeline(snap, out, args.format, logs=args.logs, all_layers=args.all_layers)
    return 0


def cmd_diff(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """``docker diff`` lines, or with --json the changes document (``null`` when none)."""
    from analyzer.analyses.changes import container_changes, docker_diff_text

    changes = container_changes(snap, args.container)
    if args.json:
        _emit_json(out, changes or None)
    else:
        out.write(docker_diff_text(changes))
    return 0


def cmd_files(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """The merged filesystem of a container or image (or one path of it)."""
    from analyzer.analyses.fsview import files_listing

    out.write(files_listing(snap, args.ref, args.path, as_json=args.json))
    return 0


def cmd_cat(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """One file's bytes, straight from the evidence, to stdout or a new 0600 file."""
    from analyzer.analyses.fsview import cat_file

    if args.out:
        try:
            fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            raise UsageError(f"cannot create {args.out}: {exc.strerror or exc} "
                             "(an existing file is never overwritten)") from exc
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as sink:
            problem = cat_file(snap, args.ref, args.path, sink)
    else:
        out.flush()
        sink = getattr(out, "buffer", None) or _BytesTo(out)
        problem = cat_file(snap, args.ref, args.path, sink)
        sink.flush()
    if problem:
        err.write(f"analyzer: warning: {problem}\n")
        return 1
    return 0


def cmd_verify(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """Check image layers against their tar-split; 1 when any was tampered."""
    from analyzer.analyses.verify import render_text, verify

    results = verify(args.snapshot, snap)
    if args.json:
        out.write(json.dumps(results.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(render_text(results))
    if not args.quiet:
        for note in results.notes:
            err.write(f"analyzer: note: {note}\n")
    return results.exit_status


COMMANDS: dict[str, Callable[[argparse.Namespace, Any, TextIO, TextIO], int]] = {
    "images": cmd_images, "ps": cmd_ps, "inspect": cmd_inspect, "history": cmd_history,
    "logs": cmd_logs, "df": cmd_df, "volumes": cmd_volumes, "networks": cmd_networks, "info": cmd_info,
    "ingest": cmd_ingest, "export": cmd_export, "report": cmd_report,
    "findings": cmd_findings, "timeline": cmd_timeline,
    "diff": cmd_diff, "files": cmd_files, "cat": cmd_cat,
}
COMMANDS["verify"] = cmd_verify


def run(args: argparse.Namespace, snap: Any, out: TextIO, err: TextIO) -> int:
    """Run the command named in ``args``."""
    return COMMANDS[args.command](args, snap, out, err)
