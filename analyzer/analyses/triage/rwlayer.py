"""Container writable-layer rules: what a container added, changed or deleted
(catalogue §2.3, DX-030..046).

Where the evidence sits: the container's RW directory (``layer_dirs`` role
``container-rw``: ``overlay2/<mount-id>/diff``, ``vfs/dir/<mount-id>`` …) in the
``files`` index (kind, size, mode incl. SUID/SGID, uid, mtime, xattrs,
``whiteout``), classified against the image's layers by
:func:`analyzer.analyses.triage.changes_view.rw_changes` (``docker diff``: 0 modified,
1 added, 2 deleted). Paths in findings are container paths (``path``) plus the member path
relative to the data-root (``member``).

Limits: file contents are not in the tables, so "executable" means an exec bit on a
non-empty regular file (ELF/shebang checks need ``--yara``); ``/dev/shm`` and ``--tmpfs``
are tmpfs and never reach the RW layer; files created and deleted again leave no trace.
Mount-point stubs the daemon creates in the RW layer for bind/volume destinations are
ignored.

References: ATT&CK T1105, T1059, T1564.001, T1074.001, T1548.001, T1053.003, T1098.004,
T1574.006, T1136.001, T1070.004, T1546.004, T1554, T1552.001, T1070.006, T1496;
Falco rules "Drop and execute new binary in container", "Create Hidden Files or
Directories", "Schedule Cron Jobs", "Adding ssh keys to authorized_keys"; Sigma
``file_event_lnx_susp_cron_file_created.yml``.
"""

from __future__ import annotations

import fnmatch
import posixpath
from typing import Any, Iterable, Iterator

from analyzer.analyses.triage import patterns as P
from analyzer.analyses.triage.engine import (Change, ContainerView, Context, Finding, Rule, na,
                                             rule)

F = "rwlayer"

STAGING = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run")
HIDDEN_OK = {".cache", ".npm", ".config", ".local", ".ssh", ".gnupg", ".wh..wh..opq",
             ".bash_history", ".ash_history", ".wget-hsts", ".lesshst", ".viminfo", ".profile",
             ".bashrc", ".dockerenv", ".python_history", ".node_repl_history", ".yarn", ".m2",
             ".gradle", ".pip", ".cargo", ".rustup", ".keep", ".gitkeep", ".pki", ".mysql_history",
             ".psql_history", ".rediscli_history", ".sqlite_history", ".composer", ".docker",
             ".aws", ".kube", ".azure", ".terraform.d"}
CRON = ("/etc/crontab", "/etc/cron.d/*", "/etc/cron.hourly/*", "/etc/cron.daily/*",
        "/etc/cron.weekly/*", "/etc/cron.monthly/*", "/var/spool/cron/*",
        "/var/spool/cron/crontabs/*", "/etc/crontabs/*", "/etc/anacrontab")
SSH = ("*/.ssh/authorized_keys", "*/.ssh/authorized_keys2", "/etc/ssh/sshd_config",
       "/etc/ssh/sshd_config.d/*")
ACCOUNTS = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers",
            "/etc/sudoers.d/*", "/etc/login.defs", "/etc/pam.d/*")
SHELL_RC = ("/root/.bashrc", "/root/.bash_aliases", "/root/.profile", "/root/.bash_profile",
            "/etc/profile", "/etc/profile.d/*", "/etc/bash.bashrc", "/home/*/.bashrc",
            "/home/*/.profile", "/home/*/.bash_aliases", "/etc/environment", "/root/.zshrc")
SYSTEM_BIN = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/",
              "/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")
CRED_FILES = ("*/.aws/credentials", "*/.aws/config", "*/.docker/config.json", "*/.kube/config",
              "*/.ssh/id_rsa", "*/.ssh/id_ed25519", "*/.ssh/id_ecdsa", "*/.ssh/id_dsa",
              "*/.git-credentials", "*/.netrc", "*/.pgpass", "*/.config/gcloud/*",
              "*/.azure/*")
LOGLIKE = ("/var/log/*", "*/.bash_history", "*/.ash_history", "*/.zsh_history",
           "*/.python_history", "/var/log")


def _match(path: str, globs: Iterable[str]) -> str | None:
    for g in globs:
        if fnmatch.fnmatchcase(path, g):
            return g
    return None


def _under(path: str, dirs: Iterable[str]) -> str | None:
    for d in dirs:
        if path == d or path.startswith(d.rstrip("/") + "/"):
            return d
    return None


def _entries(ctx: Context, c: ContainerView, kinds: tuple[int, ...] = (0, 1)
             ) -> list[Change]:
    """RW changes of ``c`` of the given kinds, without daemon-made mount-point stubs."""
    mounts = ctx.mount_destinations(c.id)
    out = []
    for ch in ctx.changes(c.id):
        if ch.kind not in kinds:
            continue
        if ch.path in mounts and (ch.row is None or int(na(ch.row["size"]) or 0) == 0):
            continue  # bind/volume target created by the daemon
        out.append(ch)
    return out


def _facts(ch: Change) -> dict[str, Any]:
    ev: dict[str, Any] = {"path": ch.path, "change": ch.kind_name, "member": ch.member}
    row = ch.row
    if row is not None:
        mode = na(row["mode"])
        ev.update({"kind": str(row["kind"]), "size": na(row["size"]),
                   "mode": oct(int(mode)) if mode is not None else None,
                   "uid": na(row["uid"]), "gid": na(row["gid"]),
                   "mtime": na(row["mtime"]), "sha256": na(row["sha256"])})
    return ev


def _is_exec(ch: Change) -> bool:
    row = ch.row
    if row is None or str(row["kind"]) not in ("file", "hardlink"):
        return False
    mode = int(na(row["mode"]) or 0)
    return bool(mode & 0o111) and int(na(row["size"]) or 0) > 0


def _hidden_component(path: str) -> str | None:
    for part in path.strip("/").split("/"):
        if part.startswith(".") and part not in HIDDEN_OK and part not in (".", ".."):
            return part
        if part in ("...", " ", "..."):
            return part
    return None


@rule("DRA-RW-001", "Executable dropped in container", "high", ["T1105", "T1059"], F, "DX-030")
def dropped_exec(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for ch in _entries(ctx, c, (1, 0)):
            if not _is_exec(ch):
                continue
            staging = _under(ch.path, STAGING + ("/var/tmp",))
            hidden = _hidden_component(ch.path)
            sev = "critical" if (staging or hidden) else r.severity
            if ch.kind == 0 and not (staging or hidden):
                continue  # changed system binaries: DRA-RW-011
            ev = _facts(ch)
            ev.update({"in_staging_dir": staging, "hidden_component": hidden})
            yield r.finding(c.ref, ev,
                            f"An executable file {ch.path} was {ch.kind_name} in the container's "
                            "writable layer — it is not part of the image. Payloads staged by "
                            "attackers (miners, backdoors) land this way, typically under /tmp or "
                            "a hidden directory" + (f" (here: {staging or hidden})" if
                                                    (staging or hidden) else "") +
                            ". Runtime package installs also add executables; check the owner "
                            "package and hash.", severity=sev)


@rule("DRA-RW-002", "Hidden file or directory created", "high", ["T1564.001"], F, "DX-032")
def hidden(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        seen: set[str] = set()
        for ch in _entries(ctx, c, (1,)):
            part = _hidden_component(ch.path)
            if part is None:
                continue
            top = ch.path[:ch.path.index(part) + len(part)]
            if top in seen:
                continue
            seen.add(top)
            inside = [x.path for x in _entries(ctx, c, (1,)) if x.path.startswith(top + "/")]
            ev = _facts(ch) if ch.path == top else {"path": top, "change": "added"}
            ev["contains"] = inside[:50]
            yield r.finding(c.ref, ev,
                            f"A hidden name ({top}) was created in the container outside the "
                            "usual dot-directories (.cache, .config, .ssh …). Hiding a working "
                            "directory behind a dot name is a common way to keep dropped tools "
                            "out of a casual ls.")


@rule("DRA-RW-003", "Files written to staging directories", "low", ["T1074.001", "T1105"], F,
      "DX-031")
def staging(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        hits = [ch for ch in _entries(ctx, c, (1,)) if ch.row is not None
                and str(ch.row["kind"]) != "dir" and _under(ch.path, STAGING)]
        if not hits:
            continue
        sev = "medium" if any(_is_exec(h) or _hidden_component(h.path) for h in hits) else \
            r.severity
        yield r.finding(c.ref, {"paths": [h.path for h in hits][:100],
                                "members": [h.member for h in hits][:100], "count": len(hits)},
                        "Files were added under temporary/staging directories "
                        f"({', '.join(sorted({_under(h.path, STAGING) or '' for h in hits}))}). "
                        "Kinsing and xmrig droppers stage under /tmp; on its own this is common "
                        "application behaviour and only adds weight to other findings.",
                        severity=sev)


@rule("DRA-RW-004", "SUID/SGID file or file capability added", "high", ["T1548.001"], F, "DX-035")
def suid(ctx: Context, r: Rule) -> Iterator[Finding]:
    import json

    for c in ctx.containers:
        for ch in _entries(ctx, c, (0, 1)):
            row = ch.row
            if row is None or str(row["kind"]) not in ("file", "hardlink"):
                continue
            mode = int(na(row["mode"]) or 0)
            xattrs = json.loads(row["xattrs_json"]) if isinstance(na(row["xattrs_json"]),
                                                                    str) else {}
            cap = "security.capability" in (xattrs or {})
            if not (mode & 0o6000) and not cap:
                continue
            ev = _facts(ch)
            ev.update({"setuid": bool(mode & 0o4000), "setgid": bool(mode & 0o2000),
                       "file_capability": cap})
            yield r.finding(c.ref, ev,
                            f"{ch.path} was {ch.kind_name} with the SUID/SGID bit or a file "
                            "capability: a classic privilege-escalation or re-entry backdoor "
                            "(a root shell copy with +s). Package installs at run time (passwd, "
                            "ping) also do this.")


def _path_rule(ctx: Context, r: Rule, globs: tuple[str, ...], kinds: tuple[int, ...],
               text: str) -> Iterator[Finding]:
    for c in ctx.containers:
        for ch in _entries(ctx, c, kinds):
            g = _match(ch.path, globs)
            if g is None or (ch.row is not None and str(ch.row["kind"]) == "dir"):
                continue
            ev = _facts(ch)
            ev["matched"] = g
            yield r.finding(c.ref, ev, f"{ch.path} was {ch.kind_name} in the container. " + text)


@rule("DRA-RW-005", "Cron persistence", "high", ["T1053.003"], F, "DX-036")
def cron(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _path_rule(ctx, r, CRON, (0, 1),
                          "Cron files run commands on a schedule; Kinsing and TeamTNT add cron "
                          "entries that re-download their miner. Images that install cron at "
                          "start can do this legitimately.")


@rule("DRA-RW-006", "SSH authorized_keys or sshd configuration changed", "high", ["T1098.004"], F,
      "DX-037")
def ssh_keys(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _path_rule(ctx, r, SSH, (0, 1),
                          "An added SSH key gives the attacker a way back in without the "
                          "original exploit (Falco: 'Adding ssh keys to authorized_keys'). "
                          "Legitimate only in containers that run sshd by design.")


@rule("DRA-RW-007", "Dynamic-linker preload", "critical", ["T1574.006"], F, "DX-039")
def ld_preload(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _path_rule(ctx, r, ("/etc/ld.so.preload",), (0, 1),
                          "/etc/ld.so.preload makes every dynamically linked program load the "
                          "listed library first: rootkits (Kinsing's libsystem.so) hide "
                          "processes and files this way. Very rare legitimately.")


@rule("DRA-RW-008", "Account files changed", "high", ["T1136.001", "T1098"], F, "DX-040")
def accounts(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _path_rule(ctx, r, ACCOUNTS, (0, 1),
                          "Account databases (passwd, shadow, group, sudoers, PAM) were written "
                          "inside the container: typical of an added UID-0 user or a password "
                          "reset for persistence. Images that map PUID/PGID at start "
                          "(linuxserver.io) edit passwd legitimately; compare with the image "
                          "copy.")


@rule("DRA-RW-009", "Files deleted in container", "medium", ["T1070.004"], F, "DX-042")
def deleted(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for ch in _entries(ctx, c, (2,)):
            important = _match(ch.path, LOGLIKE + ACCOUNTS + SSH + CRON)
            sev = "high" if important else r.severity
            ev = _facts(ch)
            ev["whiteout"] = True if ch.row is not None else None
            ev["sensitive_match"] = important
            attack = ["T1070.004", "T1070.003"] if important and "history" in important else None
            yield r.finding(c.ref, ev,
                            f"{ch.path} exists in the image but was deleted in the container "
                            "(an overlay whiteout in the writable layer). Deleting logs, shell "
                            "history or account files covers tracks or breaks the system; "
                            "routine cleanup (apt lists, temp files) also deletes." +
                            (f" It matches {important}." if important else ""),
                            severity=sev, attack=attack)


@rule("DRA-RW-010", "Shell startup file modified", "medium", ["T1546.004"], F, "DX-038")
def shell_rc(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _path_rule(ctx, r, SHELL_RC, (0, 1),
                          "Shell startup files run on every interactive login; the Dero worm "
                          "used /root/.bash_aliases for persistence. Entrypoints that template "
                          "rc files also change them.")


@rule("DRA-RW-011", "System binary replaced in container", "high", ["T1554", "T1036"], F,
      "DX-045")
def system_binary(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for ch in _entries(ctx, c, (0,)):
            if ch.row is None or str(ch.row["kind"]) not in ("file", "hardlink", "symlink"):
                continue
            if not ch.path.startswith(SYSTEM_BIN):
                continue
            yield r.finding(c.ref, _facts(ch),
                            f"The system file {ch.path} from the image was overwritten in the "
                            "container (copy-up with new content or metadata): trojaned "
                            "binaries and libraries hide activity or keep access. Runtime package "
                            "upgrades also do this.")


@rule("DRA-RW-012", "Known malware, miner or attack-tool file name", "high",
      ["T1496", "T1105"], F, "DX-033/DX-043")
def known_names(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for ch in _entries(ctx, c, (0, 1)):
            if ch.row is None or str(ch.row["kind"]) == "dir":
                continue
            base = posixpath.basename(ch.path).lower()
            stem = base.split("-")[0]
            miner = (base in P.MALWARE_NAMES or stem in P.MINER_NAMES
                     or any(m in base for m in ("xmrig", "miner", "kdevtmpfs", "kinsing")))
            tool = base in P.TOOL_NAMES
            if not miner and not tool:
                continue
            ev = _facts(ch)
            ev["matched"] = base
            if miner:
                yield r.finding(c.ref, ev,
                                f"{ch.path} is named like a cryptominer or a file of a known "
                                "Docker-host campaign (xmrig, kdevtmpfsi, kinsing, *miner*, "
                                "zzz.sh …). Confirm with its hash or --yara; names alone can be "
                                "generic.", attack=["T1496", "T1105"])
            else:
                yield r.finding(c.ref, ev,
                                f"{ch.path} is a tunnelling, scanning or container-client tool "
                                "(ngrok, chisel, masscan, docker, kubectl …) added to a "
                                "container: lateral movement and discovery tooling.",
                                attack=["T1572", "T1046", "T1613"],
                                title="Tunnelling, scanning or container-client tool added")


@rule("DRA-RW-013", "Credential material added", "high", ["T1552.001", "T1552.004"], F, "DX-044")
def cred_files(ctx: Context, r: Rule) -> Iterator[Finding]:
    yield from _path_rule(ctx, r, CRED_FILES, (0, 1),
                          "Cloud, registry or SSH credentials appeared in the container: either "
                          "harvested from elsewhere (TeamTNT, Commando Cat collect .aws, "
                          ".docker and .kube files) or placed by the application.")


@rule("DRA-RW-014", "File timestamp before the container existed", "low", ["T1070.006"], F,
      "DX-046")
def timestomp(ctx: Context, r: Rule) -> Iterator[Finding]:
    import pandas as pd

    for c in ctx.containers:
        created = na(c.row["created_at"])
        if created is None:
            continue
        hits = []
        for ch in _entries(ctx, c, (1,)):
            if ch.row is None or str(ch.row["kind"]) not in ("file",):
                continue
            mt = na(ch.row["mtime"])
            if mt is not None and mt < created - pd.Timedelta(seconds=2):
                hits.append({"path": ch.path, "mtime": mt, "member": ch.member})
        if not hits:
            continue
        yield r.finding(c.ref, {"container_created": created, "paths": [h["path"] for h in hits],
                                "files": hits[:50]},
                        "Files added in the container's writable layer carry modification "
                        "times older than the container itself. tar/unzip/COPY preserve source "
                        "times legitimately, but touch -d (timestomping) gives the same picture.")
