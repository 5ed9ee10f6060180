"""Containers: ``containers/<id>/config.v2.json`` (or pre-1.10 ``config.json``) and
``hostconfig.json``, flattened into ``containers``, ``container_mounts`` and
``container_networks`` rows.

The status string is derived as the daemon does (moby
``daemon/container/state.go``): running → paused / restarting / running;
otherwise dead; otherwise never started → created; otherwise exited.
``Running: true`` in an offline copy means "running when last written".

Reference: ``shared/docs/docker-root-format.md`` §7.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from analyzer.parsers.rootview import RootView
from analyzer.parsers.times import parse_time

HEX64 = r"[0-9a-f]{64}"


@dataclass
class ContainerRows:
    """Rows of the container tables, plus the parsed documents for rendering."""

    containers: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)


def status_of(state: dict[str, Any]) -> str:
    """The daemon's status word for a State object."""
    if state.get("Running"):
        if state.get("Paused"):
            return "paused"
        if state.get("Restarting"):
            return "restarting"
        return "running"
    if state.get("Dead"):
        return "dead"
    started = state.get("StartedAt")
    if not started or str(started).startswith("0001-01-01"):
        return "created"
    return "exited"


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_containers(view: RootView) -> ContainerRows:
    """Parse every container folder of the data-root."""
    out = ContainerRows()
    found: dict[str, str] = {}
    for rel, m in view.matching(rf"containers/({HEX64})/(config\.v2\.json|config\.json)"):
        cid = m.group(1)
        # config.v2.json wins over a pre-1.10 config.json left next to it
        if cid not in found or m.group(2) == "config.v2.json":
            found[cid] = rel
    for cid, rel in sorted(found.items()):
        cfg = view.json(rel, "container config")
        if not isinstance(cfg, dict):
            continue
        host_rel = f"containers/{cid}/hostconfig.json"
        host = view.json(host_rel, "hostconfig")
        if not isinstance(host, dict):
            # pre-1.10 configs carry HostConfig inline
            host = _obj(cfg.get("HostConfig"))
        _container(out, view, cid, rel, cfg, host)
    return out


def _container(out: ContainerRows, view: RootView, cid: str, rel: str, cfg: dict[str, Any],
               host: dict[str, Any]) -> None:
    state = _obj(cfg.get("State"))
    conf = _obj(cfg.get("Config"))
    health = _obj(state.get("Health"))
    restart = _obj(host.get("RestartPolicy"))
    log_cfg = _obj(host.get("LogConfig"))
    name = cfg.get("Name") or ""
    if cfg.get("ID") not in (None, cid):
        view.issues.add("json.unexpected", f"{rel}: ID {str(cfg.get('ID'))[:12]} differs from "
                        "its folder name", path=rel)
    raw_host = view.read(f"containers/{cid}/hostconfig.json")
    out.containers.append({
        "container_id": cid, "name": name.lstrip("/"),
        "image_ref": conf.get("Image"), "image_id": cfg.get("Image"),
        "created_at": parse_time(cfg.get("Created")), "status": status_of(state),
        "running": bool(state.get("Running")), "paused": bool(state.get("Paused")),
        "restarting": bool(state.get("Restarting")), "oom_killed": bool(state.get("OOMKilled")),
        "dead": bool(state.get("Dead")), "pid": state.get("Pid"),
        "exit_code": state.get("ExitCode"), "error": state.get("Error") or None,
        "started_at": parse_time(state.get("StartedAt")),
        "finished_at": parse_time(state.get("FinishedAt")),
        "health": health.get("Status") if health else None,
        "path": cfg.get("Path"), "args_json": _j(cfg.get("Args")),
        "env_json": _j(conf.get("Env")), "labels_json": _j(conf.get("Labels")),
        "user": conf.get("User"), "hostname": conf.get("Hostname"),
        "driver": cfg.get("Driver"),
        "restart_policy": restart.get("Name"), "restart_count": cfg.get("RestartCount"),
        "privileged": host.get("Privileged"), "network_mode": host.get("NetworkMode"),
        "pid_mode": host.get("PidMode"), "ipc_mode": host.get("IpcMode"),
        "cap_add_json": _j(host.get("CapAdd")), "cap_drop_json": _j(host.get("CapDrop")),
        "security_opt_json": _j(host.get("SecurityOpt")),
        "log_driver": log_cfg.get("Type"), "log_path": cfg.get("LogPath") or None,
        "config_path": rel,
        "config_json": (view.read(rel) or b"").decode("utf-8", "replace"),
        "hostconfig_json": raw_host.decode("utf-8", "replace") if raw_host is not None else None,
    })
    for dest, mp in _obj(cfg.get("MountPoints")).items():
        mp = _obj(mp)
        mtype = mp.get("Type") or ("volume" if mp.get("Name") else "bind")
        out.mounts.append({
            "container_id": cid, "destination": mp.get("Destination") or dest, "type": mtype,
            "source": mp.get("Source") or None, "name": mp.get("Name") or None,
            "driver": mp.get("Driver") or None, "rw": mp.get("RW"),
            "mode": mp.get("Relabel") if mp.get("Relabel") is not None else mp.get("Mode"),
            "propagation": mp.get("Propagation") or None,
        })
    nets = _obj(_obj(cfg.get("NetworkSettings")).get("Networks"))
    for net_name, ep in nets.items():
        ep = _obj(ep)
        out.networks.append({
            "container_id": cid, "network": net_name, "network_id": ep.get("NetworkID") or None,
            "endpoint_id": ep.get("EndpointID") or None,
            "ip_address": ep.get("IPAddress") or None,
            "ip_prefix_len": ep.get("IPPrefixLen") or None,
            "gateway": ep.get("Gateway") or None, "mac_address": ep.get("MacAddress") or None,
            "aliases_json": _j(ep.get("Aliases")),
        })
