"""Log rules: attack strings, download commands and miner output in container logs, and
logs missing where the daemon should have written them (catalogue §2.4, DX-050..052).

Where the evidence sits: ``containers/<cid>/<cid>-json.log[.N][.gz]`` and
``containers/<cid>/local-logs/container.log`` decoded into the ``logs`` table (``line``
bytes as ``docker logs`` prints them, ``time``, ``stream``, ``source`` = the log file
relative to the data-root).

Note: a line in a container's output may be a *request* (an attack that failed) rather
than something the container executed; the evidence records stream and time so the
analyst can tell.

References: ATT&CK T1105, T1059.004, T1190 Exploit Public-Facing Application, T1496,
T1070 Indicator Removal; plaso ``docker_container_log`` parser.
"""

from __future__ import annotations

from typing import Any, Iterator

from analyzer.analyses.triage import patterns as P
from analyzer.analyses.triage.engine import Context, Finding, Rule, na, rule

F = "logs"
#: lines quoted per finding
MAX_LINES = 20


def _lines(ctx: Context) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    logs = ctx.snap.logs
    for cid, g in logs.groupby("container_id", sort=False):
        rows = []
        for seq, stream, t, line, src in zip(g["seq"], g["stream"], g["time"], g["line"],
                                             g["source"]):
            text = bytes(line).decode("utf-8", "replace") if isinstance(line, (bytes, bytearray,
                                                                             memoryview)) \
                else str(line)
            rows.append({"seq": int(seq), "stream": str(stream), "time": na(t),
                         "line": text.rstrip("\n"), "source": str(src)})
        yield str(cid), rows


def _obj(ctx: Context, cid: str) -> dict[str, Any]:
    c = ctx.container_by_id(cid)
    return c.ref if c else {"type": "container", "id": cid, "name": cid[:12]}


def _scan(ctx: Context, r: Rule, regexes: list[Any], text: str) -> Iterator[Finding]:
    for cid, rows in _lines(ctx):
        hits = []
        for row in rows:
            m = next((x for x in (P.first_match(rx, row["line"]) for rx in regexes) if x), None)
            if m:
                hits.append({**row, "line": row["line"][:500], "matched": m})
        if not hits:
            continue
        ips = sorted({ip for h in hits for ip in P.RAW_IP_URL.findall(h["line"])})
        yield r.finding(_obj(ctx, cid), {"source": hits[0]["source"], "lines": hits[:MAX_LINES],
                                         "count": len(hits),
                                         "matched": [h["matched"] for h in hits[:MAX_LINES]],
                                         "ips": ips, "first": hits[0]["time"],
                                         "last": hits[-1]["time"]}, text)


@rule("DRA-LG-001", "Download or execution command in container logs", "high",
      ["T1105", "T1059.004"], F, "DX-050")
def download_lines(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _scan(ctx, r, [P.DOWNLOAD_EXEC, P.DOWNLOAD_URL],
                     "The container's own output shows a download tool fetching a URL "
                     "(wget/curl, raw-IP URLs, /dev/tcp, base64-to-shell): shell tracing or tool "
                     "errors of a payload being staged. Check the URL and whether the file it "
                     "names exists in the writable layer.")


@rule("DRA-LG-002", "Exploit strings in container logs", "medium", ["T1190"], F, "DX-050")
def exploit_lines(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _scan(ctx, r, [P.ATTACK_STRINGS],
                     "Container output contains exploit payloads (JNDI lookups, Redis CONFIG "
                     "SET dir/MODULE LOAD, path traversal, PHP/command injection, reverse "
                     "shells). In request logs these are often failed attempts; look for "
                     "matching artefacts in the writable layer.")


@rule("DRA-LG-003", "Cryptominer output in container logs", "critical", ["T1496"], F, "DX-052")
def miner_lines(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _scan(ctx, r, [P.MINER_OUTPUT, P.MINER],
                     "Container output contains cryptominer status lines or pool addresses "
                     "(XMRig banners, 'use pool', 'new job from', stratum URLs): a miner ran in "
                     "this container.")


@rule("DRA-LG-004", "Container log missing", "medium", ["T1070"], F, "DX-051")
def log_missing(ctx: Context, r: Rule) -> Iterator[Finding]:
    files = ctx.files["path"]
    for c in ctx.containers:
        drv = str(na(c.row["log_driver"]) or "")
        if drv not in ("json-file", "local") or na(c.row["started_at"]) is None:
            continue
        head = f"containers/{c.id}/"
        if drv == "json-file":
            present = files.str.startswith(head + c.id + "-json.log").any()
            expect = head + c.id + "-json.log"
        else:
            present = files.str.startswith(head + "local-logs/container.log").any()
            expect = head + "local-logs/container.log"
        if present:
            continue
        yield r.finding(c.ref, {"path": expect, "field": "HostConfig.LogConfig.Type",
                                "log_driver": drv, "started_at": na(c.row["started_at"])},
                        "The container was started with a file-based log driver but its log "
                        "file is not in the snapshot: it was deleted (covering tracks) or the "
                        "acquisition skipped it.")
