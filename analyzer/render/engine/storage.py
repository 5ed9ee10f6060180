"""``GET /volumes`` and ``GET /networks`` (+ ``/networks/{id}``) from a snapshot.

Reference: ``docs/engine-api.md`` §7, §8 (Docker 20.10, API 1.41).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from analyzer.formats.timefmt import format_rfc3339nano
from analyzer.render.engine.common import Context, api_at_least, api_version, go_time, loads
from analyzer.render.gojson import sorted_map


def _ctimes(snap: Any, paths: list[str]) -> dict[str, Any]:
    files = snap.tables["files"]
    hit = files[files["path"].isin(paths)]
    return dict(zip(hit["path"], hit["ctime"]))


def volume_docs(snap: Any, ctx: Context) -> list[dict[str, Any]]:
    """Volume objects: every folder under ``volumes/``; DB entries add labels/options."""
    vols = snap.tables["volumes"]
    files = snap.tables["files"]
    dirs = set(files[(files["kind"] == "dir") & files["path"].str.fullmatch(r"volumes/[^/]+")]
               ["path"].str.slice(len("volumes/")))
    # 20.10 reports the ctime of _data (23.0+ of the volume folder), in whole seconds
    sub = "" if api_at_least(ctx.api, "1.42") else "/_data"
    ctimes = _ctimes(snap, [f"volumes/{n}{sub}" for n in dirs])
    out = []
    for row in vols.sort_values("name").itertuples():
        if row.name not in dirs:
            continue  # the daemon purges DB entries without a folder
        ct = ctimes.get(f"volumes/{row.name}{sub}")
        if ct is None or pd.isna(ct):
            created = "0001-01-01T00:00:00Z"
        else:
            sec = int(ct.value // 1_000_000_000)
            created = format_rfc3339nano((sec + 0) * 1_000_000_000, ctx.tz_offset)
        doc: dict[str, Any] = {"CreatedAt": created, "Driver": "local",
                               "Labels": sorted_map(loads(row.labels_json)) if row.in_db else None,
                               "Mountpoint": f"{ctx.root}/volumes/{row.name}/_data",
                               "Name": row.name,
                               "Options": sorted_map(loads(row.options_json)) if row.in_db else None,
                               "Scope": "local"}
        out.append(doc)
    return out


def volume_list(snap: Any, ctx: Context) -> dict[str, Any]:
    """``GET /volumes``."""
    return {"Volumes": volume_docs(snap, ctx), "Warnings": None}


def _ipam_config(net: dict[str, Any]) -> list[dict[str, Any]]:
    def decode(key: str) -> list[dict[str, Any]]:
        raw = net.get(key)
        try:
            val = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return []
        return [v for v in val or [] if isinstance(v, dict)]

    def item(**kw: Any) -> dict[str, Any]:
        return {k: v for k, v in kw.items() if v}

    out = []
    for c in decode("ipamV4Config"):
        if c.get("PreferredPool"):
            out.append(item(Subnet=c["PreferredPool"], IPRange=c.get("SubPool"),
                            Gateway=c.get("Gateway"), AuxiliaryAddresses=sorted_map(c.get("AuxAddresses"))))
    if not out:
        for info in decode("ipamV4Info"):
            data = info.get("IPAMData")
            data = json.loads(data) if isinstance(data, str) else (data or {})
            out.append(item(Subnet=data.get("Pool"), Gateway=(data.get("Gateway") or "").split("/")[0]))
    v6 = [c for c in decode("ipamV6Config") if c.get("PreferredPool")]
    for c in v6:
        out.append(item(Subnet=c["PreferredPool"], IPRange=c.get("SubPool"),
                        Gateway=c.get("Gateway"), AuxiliaryAddresses=sorted_map(c.get("AuxAddresses"))))
    if not v6:
        for info in decode("ipamV6Info"):
            data = info.get("IPAMData")
            data = json.loads(data) if isinstance(data, str) else (data or {})
            if data.get("Pool"):
                out.append(item(Subnet=data.get("Pool"), Gateway=data.get("Gateway")))
    return out


def network_doc(net: dict[str, Any], containers: dict[str, Any] | None = None,
                api: str = "1.41") -> dict[str, Any]:
    """One NetworkResource from a stored libnetwork network object."""
    ipam_config: list[dict[str, Any]] | None = _ipam_config(net)
    if not ipam_config and api_at_least(api, "1.44"):
        ipam_config = None  # Docker 26 leaves the slice nil
    generic = net.get("generic") if isinstance(net.get("generic"), dict) else {}
    options = generic.get("com.docker.network.generic") or {}
    return {
        "Name": net.get("name") or "", "Id": net.get("id") or "",
        "Created": go_time(net.get("created")), "Scope": net.get("scope") or "local",
        "Driver": net.get("networkType") or "",
        "EnableIPv6": bool(net.get("enableIPv6")) or bool(net.get("ipamV6Info")),
        "IPAM": {"Driver": net.get("ipamType") or "default",
                 "Options": sorted_map(net.get("ipamOptions")), "Config": ipam_config},
        "Internal": bool(net.get("internal")), "Attachable": bool(net.get("attachable")),
        "Ingress": bool(net.get("ingress")), "ConfigFrom": {"Network": net.get("configFrom") or ""},
        "ConfigOnly": bool(net.get("configOnly")),
        "Containers": containers if containers is not None else {},
        "Options": sorted_map({k: str(v) for k, v in options.items()}) if isinstance(options, dict) else {},
        "Labels": sorted_map(dict(net.get("labels") or {})),
    }


def network_list(snap: Any) -> list[dict[str, Any]]:
    """``GET /networks`` (Containers is always ``{}`` in the list)."""
    nets = snap.tables["networks"]
    docs = []
    for row in nets.itertuples():
        net = loads(row.config_json) or {}
        if net.get("inDelete"):
            continue
        docs.append(network_doc(net, api=api_version(snap)))
    docs.sort(key=lambda d: (d["Name"], d["Id"]))
    return docs
