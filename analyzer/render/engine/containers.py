"""``GET /containers/json?all=1&size=1`` and ``GET /containers/{id}/json``.

Reference: ``docs/engine-api.md`` §1.2, §5, §6 (Docker 20.10, API 1.41).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analyzer.errors import UsageError
from analyzer.render.engine.common import (GO_ZERO_NS, Context, api_at_least, go_config, go_time,
                                           human_duration, loads, time_ns, unix_seconds)
from analyzer.formats.containerd_db import SNAPSHOTTERS
from analyzer.render.engine.images import _graphdriver, loaded_images
from analyzer.render.gojson import sorted_map

USER_NET_EXCLUDED = ("default", "bridge", "host", "none")

#: HostConfig keys in Go struct order (API 1.41) with the zero value, or None = omitempty
HOSTCONFIG: tuple[tuple[str, Any], ...] = (
    ("Binds", None.__class__), ("ContainerIDFile", ""), ("LogConfig", {"Type": "", "Config": None}),
    ("NetworkMode", ""), ("PortBindings", None.__class__),
    ("RestartPolicy", {"Name": "", "MaximumRetryCount": 0}), ("AutoRemove", False),
    ("VolumeDriver", ""), ("VolumesFrom", None.__class__), ("CapAdd", None.__class__),
    ("CapDrop", None.__class__), ("CgroupnsMode", ""), ("Dns", []), ("DnsOptions", []),
    ("DnsSearch", []), ("ExtraHosts", None.__class__), ("GroupAdd", None.__class__),
    ("IpcMode", ""), ("Cgroup", ""), ("Links", None.__class__), ("OomScoreAdj", 0),
    ("PidMode", ""), ("Privileged", False), ("PublishAllPorts", False),
    ("ReadonlyRootfs", False), ("SecurityOpt", None.__class__), ("StorageOpt", None),
    ("Tmpfs", None), ("UTSMode", ""), ("UsernsMode", ""), ("ShmSize", 0), ("Sysctls", None),
    ("Runtime", None), ("ConsoleSize", [0, 0]), ("Isolation", ""), ("CpuShares", 0),
    ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""), ("BlkioWeight", 0),
    ("BlkioWeightDevice", None.__class__), ("BlkioDeviceReadBps", None.__class__),
    ("BlkioDeviceWriteBps", None.__class__), ("BlkioDeviceReadIOps", None.__class__),
    ("BlkioDeviceWriteIOps", None.__class__), ("CpuPeriod", 0), ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""), ("CpusetMems", ""),
    ("Devices", None.__class__), ("DeviceCgroupRules", None.__class__),
    ("DeviceRequests", None.__class__), ("KernelMemory", 0), ("KernelMemoryTCP", 0),
    ("MemoryReservation", 0), ("MemorySwap", 0), ("MemorySwappiness", None.__class__),
    ("OomKillDisable", None.__class__), ("PidsLimit", None.__class__), ("Ulimits", None.__class__),
    ("CpuCount", 0), ("CpuPercent", 0), ("IOMaximumIOps", 0), ("IOMaximumBandwidth", 0),
    ("Mounts", None), ("MaskedPaths", None.__class__), ("ReadonlyPaths", None.__class__),
    ("Init", None),
)
_NULL = None.__class__
ENDPOINT_KEYS = ("IPAMConfig", "Links", "Aliases", "NetworkID", "EndpointID", "Gateway",
                 "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address",
                 "GlobalIPv6PrefixLen", "MacAddress", "DriverOpts")
_ENDPOINT_ZERO = {"IPPrefixLen": 0, "GlobalIPv6PrefixLen": 0}


class ContainerDocs:  # noqa: D101
    """Containers of a snapshot as the daemon holds them, ready for rendering."""

    def __init__(self, snap: Any, ctx: Context) -> None:
        self.snap = snap
        self.ctx = ctx
        self.driver = (snap.meta.get("driver") or "").split(",")[0]
        rows = snap.tables["containers"]
        self.rows = {r.container_id: r for r in rows.itertuples()}
        self.cfg = {cid: loads(r.config_json) or {} for cid, r in self.rows.items()}
        self.host = {cid: loads(r.hostconfig_json) or {} for cid, r in self.rows.items()}
        self.link_names, self.links = self._links()
        self._refs: dict[str, str | None] = {}  # image reference -> id (image_name)
        self._loaded: set[str] | None = None  # ids of the images the daemon would load

    # -- links ---------------------------------------------------------------------
    def _links(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        names: dict[str, list[str]] = {}
        links: dict[str, list[str]] = {}
        by_name = {("/" + r.name): cid for cid, r in self.rows.items()}
        for cid, host in self.host.items():
            mode = host.get("NetworkMode") or ""
            if mode not in USER_NET_EXCLUDED and not mode.startswith("container:"):
                continue
            parent = self.cfg[cid].get("Name") or ""
            for link in host.get("Links") or []:
                child_name, _, alias_path = str(link).partition(":")
                alias = alias_path.rsplit("/", 1)[-1] if alias_path else child_name.lstrip("/")
                child = by_name.get("/" + child_name.lstrip("/"))
                if child is None:
                    continue
                link_name = f"{parent}/{alias}"
                names.setdefault(child, []).append(link_name)
                links.setdefault(cid, []).append(f"/{self.rows[child].name}:{link_name}")
        return names, links

    # -- shared pieces ----------------------------------------------------------------
    def status(self, cid: str) -> tuple[str, str]:
        """(State, Status) strings as the daemon words them at the reference time."""
        st = self.cfg[cid].get("State") or {}
        now = self.ctx.now_ns
        started, finished = time_ns(st.get("StartedAt")), time_ns(st.get("FinishedAt"))
        if st.get("Running"):
            if st.get("Paused"):
                return "paused", f"Up {human_duration(now - started)} (Paused)"
            if st.get("Restarting"):
                return "restarting", (f"Restarting ({st.get('ExitCode', 0)}) "
                                      f"{human_duration(now - finished)} ago")
            health = st.get("Health")
            if isinstance(health, dict):
                hs = health.get("Status") or ""
                word = "health: starting" if hs == "starting" else (hs or "unhealthy")
                return "running", f"Up {human_duration(now - started)} ({word})"
            return "running", f"Up {human_duration(now - started)}"
        if st.get("RemovalInProgress"):
            return "removing", "Removal In Progress"
        if st.get("Dead"):
            return "dead", "Dead"
        if started == GO_ZERO_NS:
            return "created", "Created"
        if finished == GO_ZERO_NS:
            return "exited", ""
        return "exited", f"Exited ({st.get('ExitCode', 0)}) {human_duration(now - finished)} ago"

    def sizes(self, cid: str) -> tuple[int, int]:
        """(SizeRw, SizeRootFs) as the daemon computes them (0, 0 without a RW layer)."""
        row = self.rows[cid]
        if pd.isna(row.mount_id):
            return 0, 0
        rw = -1 if pd.isna(row.size_rw_bytes) else int(row.size_rw_bytes)
        if row.driver in SNAPSHOTTERS:  # containerd: + usage of <id>-init and its parents
            return rw, (rw if rw >= 0 else 0) + self._snapshot_chain_usage(row)
        images = self.snap.tables["images"]
        img = images[images["image_id"] == row.image_id]
        chain = int(img["size_bytes"].iloc[0]) if len(img) and not pd.isna(
            img["size_bytes"].iloc[0]) else 0
        return rw, (chain + rw if rw >= 0 else chain)

    def _snapshot_chain_usage(self, row: Any) -> int:
        """Usage of the container's ``-init`` snapshot and all its parents (layer_dirs)."""
        if pd.isna(row.init_id):
            return 0
        dirs = self.snap.tables["layer_dirs"]
        mine = dirs[dirs["driver"].astype("string") == row.driver].set_index("dir_id")
        if row.init_id not in mine.index:
            return 0
        init = mine.loc[row.init_id]
        ids = [row.init_id] + (str(init["lower"]).split(":") if not pd.isna(init["lower"]) else [])
        return int(sum(int(mine.loc[i, "content_bytes"]) for i in ids
                       if i in mine.index and not pd.isna(mine.loc[i, "content_bytes"])))

    def mounts(self, cid: str, inspect: bool) -> list[dict[str, Any]]:
        """The Mounts array (list and inspect share it)."""
        out = []
        points = self.cfg[cid].get("MountPoints") or {}
        for dest in sorted(points):
            mp = points[dest] or {}
            item: dict[str, Any] = {}
            mtype = mp.get("Type") or ""
            if mtype:
                item["Type"] = mtype
            if mp.get("Name"):
                item["Name"] = mp["Name"]
            source = mp.get("Source") or ""
            if inspect and mp.get("Name") and (mp.get("Driver") or "") == "local":
                source = f"{self.ctx.root}/volumes/{mp['Name']}/_data"
            item["Source"] = source
            item["Destination"] = mp.get("Destination") or dest
            if mp.get("Driver"):
                item["Driver"] = mp["Driver"]
            item["Mode"] = mp.get("Relabel") or ""
            item["RW"] = bool(mp.get("RW"))
            item["Propagation"] = mp.get("Propagation") or ""
            out.append(item)
        return out

    def image_name(self, cid: str) -> str:
        """The list's Image: what the user typed, unless it now means another image."""
        cfg = self.cfg[cid]
        ref = (cfg.get("Config") or {}).get("Image") or ""
        image_id = cfg.get("Image") or ""
        if ref == image_id:
            return ref
        if ref not in self._refs:  # containers share references: resolve each once
            try:
                self._refs[ref] = self.snap.find_image(ref)["image_id"] if ref else None
            except UsageError:
                self._refs[ref] = None
        found = self._refs[ref]
        if found is None or found != image_id:
            return image_id
        if self._loaded is None:
            self._loaded = set(loaded_images(self.snap)["image_id"])
        return ref if found in self._loaded else image_id

    # -- documents ----------------------------------------------------------------------
    def summary(self, cid: str, size: bool) -> dict[str, Any]:
        """One ``GET /containers/json`` item."""
        cfg = self.cfg[cid]
        path, args = cfg.get("Path") or "", cfg.get("Args") or []
        command = path if not args else path + " " + " ".join(
            f"'{a}'" if " " in a else a for a in args)
        state, status = self.status(cid)
        ports = []
        for key, binds in sorted(((cfg.get("NetworkSettings") or {}).get("Ports") or {}).items()):
            port, _, proto = key.partition("/")
            if not binds:
                ports.append({"PrivatePort": int(port), "Type": proto})
            for b in binds or []:
                item = {}
                if b.get("HostIp"):
                    item["IP"] = b["HostIp"]
                item["PrivatePort"] = int(port)
                if b.get("HostPort"):
                    item["PublicPort"] = int(b["HostPort"])
                item["Type"] = proto
                ports.append(item)
        ports.sort(key=lambda p: (p["PrivatePort"], p["Type"], p.get("IP", ""), p.get("PublicPort", 0)))
        out: dict[str, Any] = {
            "Id": cid,
            "Names": sorted([cfg.get("Name") or ""] + self.link_names.get(cid, [])),
            "Image": self.image_name(cid), "ImageID": cfg.get("Image") or "",
            "Command": command, "Created": unix_seconds(cfg.get("Created")), "Ports": ports,
        }
        if size:
            rw, rootfs = self.sizes(cid)
            if rw:
                out["SizeRw"] = rw
            if rootfs:
                out["SizeRootFs"] = rootfs
        mode = self.host[cid].get("NetworkMode") or ""
        nets = (cfg.get("NetworkSettings") or {}).get("Networks") or {}
        summary_nets = {}
        for name in sorted(nets):
            ep = nets[name]
            if ep is None:
                continue
            s = {k: ep.get(k, _ENDPOINT_ZERO.get(k, "")) for k in ENDPOINT_KEYS}
            ipam = ep.get("IPAMConfig")
            s["IPAMConfig"] = None if ipam is None else {
                k: ipam[k] for k in ("IPv4Address", "IPv6Address") if ipam.get(k)}
            s["Links"] = s["Aliases"] = s["DriverOpts"] = None
            if api_at_least(self.ctx.api, "1.44"):
                s["DNSNames"] = None  # the list never carries them
            summary_nets[name] = s
        out.update({"Labels": sorted_map((cfg.get("Config") or {}).get("Labels")),
                    "State": state, "Status": status,
                    "HostConfig": {"NetworkMode": mode} if mode else {},
                    "NetworkSettings": {"Networks": summary_nets},
                    "Mounts": self.mounts(cid, inspect=False)})
        return out

    def hostconfig(self, cid: str) -> dict[str, Any]:
        """HostConfig re-encoded in struct order, with the daemon's load-time fixes."""
        h = self.host[cid]
        out: dict[str, Any] = {}
        for key, zero in HOSTCONFIG:
            if zero is None:  # omitempty
                if h.get(key):
                    out[key] = h[key]
                continue
            value = h.get(key, None if zero is _NULL else zero)
            if key in ("KernelMemory", "KernelMemoryTCP") and not value and api_at_least(
                    self.ctx.api, "1.42"):
                continue  # omitempty since the fields were deprecated (API 1.42)
            if key in ("Dns", "DnsOptions", "DnsSearch") and value is None:
                value = []
            out[key] = value
        log = dict(out["LogConfig"] or {"Type": "", "Config": None})
        if not log.get("Type"):
            log["Type"] = "json-file"
        log["Config"] = sorted_map(log.get("Config"))
        out["LogConfig"] = {"Type": log["Type"], "Config": log["Config"]}
        out["Links"] = self.links.get(cid) or None
        for key in ("PortBindings", "StorageOpt", "Tmpfs", "Sysctls"):
            if isinstance(out.get(key), dict):
                out[key] = sorted_map(out[key])
        return out

    def inspect(self, cid: str, size: bool = True) -> dict[str, Any]:
        """``GET /containers/{id}/json``."""
        cfg = self.cfg[cid]
        row = self.rows[cid]
        st = cfg.get("State") or {}
        state, _ = self.status(cid)
        state_doc: dict[str, Any] = {
            "Status": state, "Running": bool(st.get("Running")), "Paused": bool(st.get("Paused")),
            "Restarting": bool(st.get("Restarting")), "OOMKilled": bool(st.get("OOMKilled")),
            "Dead": bool(st.get("Dead")), "Pid": st.get("Pid") or 0,
            "ExitCode": st.get("ExitCode") or 0, "Error": st.get("Error") or "",
            "StartedAt": go_time(st.get("StartedAt")), "FinishedAt": go_time(st.get("FinishedAt")),
        }
        health = st.get("Health")
        if isinstance(health, dict):
            state_doc["Health"] = {
                "Status": health.get("Status") or "unhealthy",
                "FailingStreak": health.get("FailingStreak") or 0,
                "Log": [{"Start": go_time(p.get("Start")), "End": go_time(p.get("End")),
                         "ExitCode": p.get("ExitCode") or 0, "Output": p.get("Output") or ""}
                        for p in (health.get("Log") or []) if isinstance(p, dict)]}
        out: dict[str, Any] = {
            "Id": cid, "Created": go_time(cfg.get("Created")), "Path": cfg.get("Path") or "",
            "Args": cfg.get("Args"), "State": state_doc, "Image": cfg.get("Image") or "",
            "ResolvConfPath": cfg.get("ResolvConfPath") or "",
            "HostnamePath": cfg.get("HostnamePath") or "", "HostsPath": cfg.get("HostsPath") or "",
            "LogPath": cfg.get("LogPath") or "", "Name": cfg.get("Name") or "",
            "RestartCount": cfg.get("RestartCount") or 0, "Driver": cfg.get("Driver") or "",
            "Platform": cfg.get("OS") or "linux", "MountLabel": cfg.get("MountLabel") or "",
            "ProcessLabel": cfg.get("ProcessLabel") or "",
            "AppArmorProfile": cfg.get("AppArmorProfile") or "", "ExecIDs": None,
            "HostConfig": self.hostconfig(cid),
            "GraphDriver": _graphdriver(self.snap, self.ctx,
                                        None if pd.isna(row.mount_id) else row.mount_id,
                                        cfg.get("Driver") or self.driver),
        }
        if size:
            rw, rootfs = self.sizes(cid)
            out["SizeRw"] = rw
            out["SizeRootFs"] = rootfs
        out["Mounts"] = self.mounts(cid, inspect=True)
        out["Config"] = go_config(cfg.get("Config") or {})
        out["NetworkSettings"] = self._network_settings(cfg.get("NetworkSettings") or {},
                                                        self.ctx.api)
        return out

    @staticmethod
    def _network_settings(ns: dict[str, Any], api: str = "1.41") -> dict[str, Any]:
        nets = ns.get("Networks") or {}
        bridge = nets.get("bridge") or {}
        full = {}
        for name in sorted(nets):
            ep = nets[name]
            if ep is None:
                continue
            doc = {k: ep.get(k, _ENDPOINT_ZERO.get(k, None if k in (
                "IPAMConfig", "Links", "Aliases", "DriverOpts") else "")) for k in ENDPOINT_KEYS}
            ipam = ep.get("IPAMConfig")
            if ipam is not None:
                doc["IPAMConfig"] = {k: ipam[k] for k in ("IPv4Address", "IPv6Address",
                                                          "LinkLocalIPs") if ipam.get(k)}
            doc["DriverOpts"] = sorted_map(doc["DriverOpts"])
            if api_at_least(api, "1.44"):
                doc["DNSNames"] = ep.get("DNSNames") or None
            full[name] = doc
        ports = ns.get("Ports")
        return {
            "Bridge": ns.get("Bridge") or "", "SandboxID": ns.get("SandboxID") or "",
            "HairpinMode": bool(ns.get("HairpinMode")),
            "LinkLocalIPv6Address": ns.get("LinkLocalIPv6Address") or "",
            "LinkLocalIPv6PrefixLen": ns.get("LinkLocalIPv6PrefixLen") or 0,
            "Ports": sorted_map(ports) if ports is not None else {},
            "SandboxKey": ns.get("SandboxKey") or "",
            "SecondaryIPAddresses": ns.get("SecondaryIPAddresses"),
            "SecondaryIPv6Addresses": ns.get("SecondaryIPv6Addresses"),
            "EndpointID": bridge.get("EndpointID") or "", "Gateway": bridge.get("Gateway") or "",
            "GlobalIPv6Address": bridge.get("GlobalIPv6Address") or "",
            "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen") or 0,
            "IPAddress": bridge.get("IPAddress") or "", "IPPrefixLen": bridge.get("IPPrefixLen") or 0,
            "IPv6Gateway": bridge.get("IPv6Gateway") or "", "MacAddress": bridge.get("MacAddress") or "",
            "Networks": full,
        }

    def list(self, all_containers: bool = True, size: bool = False) -> list[dict[str, Any]]:
        """``GET /containers/json``: newest first."""
        ids = [cid for cid in self.rows
               if all_containers or (self.cfg[cid].get("State") or {}).get("Running")]
        ids.sort(key=lambda c: (-time_ns(self.cfg[c].get("Created")), c))
        return [self.summary(cid, size) for cid in ids]
