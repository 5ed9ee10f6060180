"""Runtime configuration rules: privileges, namespaces, mounts, capabilities, confinement,
devices, escape commands, logging and restart persistence (catalogue §2.1, DX-001..014).

Where the evidence sits: ``containers/<cid>/hostconfig.json`` (``Privileged``, ``CapAdd``,
``PidMode``, ``IpcMode``, ``UTSMode``, ``UsernsMode``, ``CgroupnsMode``, ``NetworkMode``,
``SecurityOpt``, ``Devices``, ``DeviceCgroupRules``, ``RestartPolicy``, ``LogConfig``,
``Binds``/``Mounts``) and ``config.v2.json`` (``Path``/``Args``, ``MountPoints``,
``AppArmorProfile``, ``RestartCount``), read through the ``containers`` and
``container_mounts`` tables.

References: Docker HostConfig schema (https://docs.docker.com/reference/api/engine/);
ATT&CK T1610 Deploy Container, T1611 Escape to Host, T1613 Container and Resource
Discovery, T1562.001 Impair Defenses; Falco rules "Launch Privileged Container",
"Launch Sensitive Mount Container", "Launch Excessively Capable Container"; MITRE
DET0219.
"""

from __future__ import annotations

import posixpath
from typing import Any, Iterator

from analyzer.analyses.triage import patterns as P
from analyzer.analyses.triage.engine import (Context, ContainerView, Finding, Rule, bump, na,
                                             rule, severity_rank)

F = "runtime"


def _hc(c: ContainerView, key: str, default: Any = None) -> Any:
    return c.hostconfig.get(key, default)


def _cmdline(c: ContainerView) -> str:
    return " ".join(c.command())


def _escape_or_payload(c: ContainerView) -> str | None:
    text = _cmdline(c)
    return (P.first_match(P.ESCAPE, text) or P.first_match(P.DOWNLOAD_EXEC, text)
            or P.first_match(P.MINER, text))


@rule("DRA-RT-001", "Privileged container", "high", ["T1611", "T1610"], F, "DX-001")
def privileged(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        if not bool(na(c.row["privileged"])):
            continue
        hit = _escape_or_payload(c)
        sev = "critical" if hit else r.severity
        ev = {"file": c.hostconfig_path, "field": "HostConfig.Privileged", "value": True,
              "status": str(c.row["status"])}
        if hit:
            ev["command_match"] = hit
        yield r.finding(c.ref, ev,
                        "The container runs with --privileged: all capabilities, every host "
                        "device, no seccomp/AppArmor confinement and writable /sys, which lets a "
                        "process in it mount the host disk or load kernel modules (escape to "
                        "host). Legitimate for dind runners and some agents; otherwise treat it "
                        "as an escape vehicle" + (" — and its command matches an escape/payload "
                                                  "pattern." if hit else "."), severity=sev)


def _binds(ctx: Context, c: ContainerView) -> list[dict[str, Any]]:
    out = []
    m = ctx.mounts_of(c.id)
    for _, row in m.iterrows():
        if str(na(row["type"]) or "") != "bind":
            continue
        out.append({"source": str(na(row["source"]) or ""), "destination": str(row["destination"]),
                    "rw": bool(na(row["rw"])) if na(row["rw"]) is not None else True,
                    "mode": na(row["mode"])})
    return out


@rule("DRA-RT-002", "Host root filesystem mounted", "critical", ["T1611"], F, "DX-002")
def host_root(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for b in _binds(ctx, c):
            if posixpath.normpath(b["source"] or ".") != "/":
                continue
            sev = "critical" if b["rw"] else "high"
            yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.Binds / "
                                    "MountPoints", "source": "/", "destination": b["destination"],
                                    "rw": b["rw"], "path": b["destination"]},
                            "The host's root directory is bind-mounted into the container "
                            f"at {b['destination']} ({'read-write' if b['rw'] else 'read-only'}). "
                            "Anything in the container can read host secrets (shadow, keys, "
                            "kubeconfig) and, when writable, plant host persistence (cron, "
                            "authorized_keys, systemd units) — those writes land on the host, "
                            "outside this data-root. Read-only host mounts are common for "
                            "monitoring agents.", severity=sev)


@rule("DRA-RT-003", "Sensitive host path mounted", "high", ["T1611"], F, "DX-002")
def sensitive_bind(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for b in _binds(ctx, c):
            src = posixpath.normpath(b["source"] or ".")
            if src == "/" or posixpath.basename(src) in P.RUNTIME_SOCKETS:
                continue
            hit = next((p for p in P.SENSITIVE_HOST_PATHS if src == p or src.startswith(p + "/")),
                       None)
            if hit is None:
                continue
            sev = r.severity if b["rw"] else "medium"
            yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.Binds / "
                                    "MountPoints", "source": src, "destination": b["destination"],
                                    "rw": b["rw"], "matched_prefix": hit,
                                    "path": b["destination"]},
                            f"The host path {src} (under {hit}) is bind-mounted into the "
                            "container; it exposes host configuration, credentials or kernel "
                            "interfaces and, read-write, lets the container change the host. "
                            "Log shippers and exporters mount such paths read-only.", severity=sev)


@rule("DRA-RT-004", "Container runtime socket mounted", "high", ["T1611", "T1610", "T1613"], F,
      "DX-003")
def runtime_socket(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for b in _binds(ctx, c):
            names = {posixpath.basename(b["source"]), posixpath.basename(b["destination"])}
            sock = next((s for s in P.RUNTIME_SOCKETS if s in names), None)
            if sock is None:
                continue
            yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.Binds / "
                                    "MountPoints", "source": b["source"],
                                    "destination": b["destination"], "rw": b["rw"],
                                    "path": b["destination"]},
                            f"A container-runtime socket ({sock}) is mounted into the container: "
                            "whoever controls the container can ask the daemon to start a "
                            "privileged container with the host root mounted — full host "
                            "control. Expected only for tools such as Portainer, Traefik, "
                            "Watchtower or CI runners.")


@rule("DRA-RT-005", "Host PID namespace shared", "high", ["T1611"], F, "DX-004")
def host_pid(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        mode = na(c.row["pid_mode"]) or _hc(c, "PidMode") or ""
        if mode != "host":
            continue
        yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.PidMode",
                                "value": mode},
                        "The container shares the host's PID namespace: it sees every host "
                        "process and, with ptrace or enough capabilities, can inject into them or "
                        "reach the host filesystem through /proc/<pid>/root.")


@rule("DRA-RT-006", "Host namespace shared (network, IPC, UTS, user)", "medium",
      ["T1611"], F, "DX-004")
def host_namespaces(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        shared = {}
        for key, col in (("NetworkMode", "network_mode"), ("IpcMode", "ipc_mode"),
                         ("UTSMode", None), ("UsernsMode", None)):
            # CgroupnsMode is not counted: "host" is the daemon's default on cgroup v1 hosts
            val = (na(c.row[col]) if col else None) or _hc(c, key) or ""
            if val == "host":
                shared[f"HostConfig.{key}"] = val
        if not shared:
            continue
        yield r.finding(c.ref, {"file": c.hostconfig_path, "fields": shared,
                                "field": ", ".join(shared)},
                        "The container shares host namespaces (" + ", ".join(shared) + "): host "
                        "networking exposes host-local services and lets it sniff or bind host "
                        "ports; host IPC exposes shared memory of host processes. Common for "
                        "monitoring or VPN containers.")


def _caps(c: ContainerView) -> list[str]:
    raw = _hc(c, "CapAdd")
    if raw is None:
        from analyzer.analyses.triage.engine import loads

        raw = loads(c.row["cap_add_json"])
    out = []
    for cap in raw or []:
        cap = str(cap).upper()
        out.append(cap[4:] if cap.startswith("CAP_") else cap)
    return out


@rule("DRA-RT-007", "Escape-capable capabilities added", "high", ["T1611"], F, "DX-005")
def capabilities(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        caps = _caps(c)
        crit = sorted(set(caps) & P.CAPS_CRITICAL)
        risky = sorted(set(caps) & P.CAPS_RISKY)
        if not crit and not risky:
            continue
        sev = "high" if crit else "medium"
        yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.CapAdd",
                                "value": caps, "matched": crit + risky},
                        "Capabilities that allow escaping the container or tampering with the "
                        f"host were added ({', '.join(crit + risky)}). CAP_SYS_ADMIN/ALL are "
                        "near-privileged (mount, cgroup release_agent); SYS_MODULE loads kernel "
                        "modules; SYS_PTRACE with a host PID namespace injects into host "
                        "processes.", severity=sev)


@rule("DRA-RT-008", "Seccomp or AppArmor confinement disabled", "medium", ["T1611", "T1562.001"],
      F, "DX-006")
def confinement(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        opts = [str(o) for o in _hc(c, "SecurityOpt") or []]
        hits = [o for o in opts if o.replace(":", "=").lower() in (
            "seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined")]
        app = c.config.get("AppArmorProfile")
        if str(app) == "unconfined":
            hits.append("AppArmorProfile=unconfined")
        if not hits:
            continue  # label=disable alone is added by the daemon itself (privileged, pid=host)
        yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.SecurityOpt",
                                "value": opts, "matched": hits},
                        "Kernel confinement was switched off for this container (" +
                        ", ".join(hits) + "): without the default seccomp filter or AppArmor "
                        "profile, syscalls such as mount, unshare, keyctl or bpf become "
                        "available, which most container escapes need. Note that "
                        "'label=disable' is added by the daemon itself for privileged or host-PID "
                        "containers and is not counted on its own.")


@rule("DRA-RT-009", "Raw host devices passed to the container", "high", ["T1611", "T1006"], F,
      "DX-007")
def devices(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        devs = _hc(c, "Devices") or []
        hits = [d.get("PathOnHost") for d in devs if isinstance(d, dict)
                and P.RAW_DEVICES.match(str(d.get("PathOnHost") or ""))]
        rules = [str(x) for x in _hc(c, "DeviceCgroupRules") or []
                 if str(x).replace(" ", "").startswith("a*:*")]
        if not hits and not rules:
            continue
        yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.Devices / "
                                "DeviceCgroupRules", "matched": hits + rules},
                        "Raw host block or memory devices are reachable from the container "
                        f"({', '.join(map(str, hits + rules))}): it can read or write the host "
                        "disk directly, bypassing file permissions, and mount it to escape.")


@rule("DRA-RT-010", "Escape-style command", "critical", ["T1611"], F, "DX-008")
def escape_command(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        text = _cmdline(c)
        hit = P.first_match(P.ESCAPE, text)
        if hit is None:
            continue
        yield r.finding(c.ref, {"file": c.config_path, "field": "Path + Args",
                                "value": c.command(), "matched": hit},
                        "The container's command uses a host-escape technique (chroot into a "
                        "host mount, nsenter into PID 1, /proc/1/root, cgroup release_agent, "
                        "core_pattern or a nested privileged docker run). Node-debug images do "
                        "this legitimately.")


@rule("DRA-RT-011", "Persistent restart policy on a risky container", "medium", ["T1543", "T1610"],
      F, "DX-013")
def restart_policy(ctx: Context, r: Rule) -> Iterator[Finding]:
    """Emitted by :func:`restart_amplifier` (needs the other findings)."""
    return iter(())


def restart_amplifier(ctx: Context, found: list[Finding]) -> list[Finding]:
    """DX-013: restart ``always``/``unless-stopped`` on a container that has other
    medium-or-worse findings becomes a finding of its own (persistence)."""
    from analyzer.analyses.triage.engine import RULES

    r = RULES.get("DRA-RT-011")
    if r is None:
        return found
    worst: dict[str, int] = {}
    rules_by: dict[str, list[str]] = {}
    for f in found:
        if f.object.get("type") == "container":
            cid = str(f.object.get("id"))
            worst[cid] = max(worst.get(cid, 0), severity_rank(f.severity))
            rules_by.setdefault(cid, []).append(f.rule)
    out = list(found)
    for c in ctx.containers:
        pol = na(c.row["restart_policy"]) or (_hc(c, "RestartPolicy") or {}).get("Name") or ""
        if pol not in ("always", "unless-stopped") or worst.get(c.id, 0) < severity_rank("medium"):
            continue
        count = na(c.row["restart_count"])
        sev = bump(r.severity) if worst[c.id] >= severity_rank("high") else r.severity
        out.append(r.finding(c.ref, {"file": c.hostconfig_path, "field":
                                     "HostConfig.RestartPolicy.Name", "value": pol,
                                     "restart_count": count,
                                     "amplifies": sorted(set(rules_by.get(c.id, [])))},
                             f"The container restarts '{pol}', so whatever the other findings "
                             "on it describe survives crashes and daemon restarts (campaigns such "
                             "as the Dero worm create miners with --restart always). A restart "
                             "policy is normal for services; here it amplifies "
                             f"{', '.join(sorted(set(rules_by.get(c.id, []))))}.", severity=sev))
    return out


@rule("DRA-RT-012", "Container logging disabled", "medium", ["T1562.006", "T1070"], F, "DX-014")
def logging_disabled(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        lc = _hc(c, "LogConfig") or {}
        typ = na(c.row["log_driver"]) or lc.get("Type") or ""
        if typ != "none":
            continue
        yield r.finding(c.ref, {"file": c.hostconfig_path, "field": "HostConfig.LogConfig.Type",
                                "value": typ},
                        "The container was started with logging disabled (--log-driver none): "
                        "nothing it printed was kept, a common way to hide a miner's or "
                        "backdoor's output.")


@rule("DRA-RT-013", "Read-only root and no-new-privileges absent on a privileged-like container",
      "info", ["T1611"], F, "DX-005")
def hardening_absent(ctx: Context, r: Rule) -> Iterator[Finding]:
    """Informational context for near-privileged containers: how much hardening is left."""
    for c in ctx.containers:
        risky = bool(na(c.row["privileged"])) or bool(set(_caps(c)) & P.CAPS_CRITICAL)
        if not risky:
            continue
        opts = [str(o) for o in _hc(c, "SecurityOpt") or []]
        yield r.finding(c.ref, {"file": c.hostconfig_path,
                                "field": "HostConfig.ReadonlyRootfs / SecurityOpt",
                                "ReadonlyRootfs": bool(_hc(c, "ReadonlyRootfs", False)),
                                "no_new_privileges": any("no-new-privileges" in o for o in opts),
                                "UsernsMode": _hc(c, "UsernsMode") or ""},
                        "Context for a near-privileged container: whether its root filesystem "
                        "is read-only, no-new-privileges is set and user namespaces remap root. "
                        "None of these stops a privileged escape, but their absence means "
                        "container root is host root.")
