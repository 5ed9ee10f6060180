"""Networks: ``network/files/local-kv.db`` (bbolt bucket ``libnetwork``).

Keys are ``docker/network/v1.0/<kind>/<id...>/``; values are an 8-byte
little-endian libkv index followed by the object's JSON. Network objects give
the ``networks`` table; endpoint objects are counted per network.

Reference: ``shared/docs/docker-root-format.md`` §9.3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from analyzer.errors import BboltFormatError
from analyzer.parsers.rootview import RootView
from analyzer.parsers.times import parse_time

PREFIX = "docker/network/v1.0/"


@dataclass
class NetworkStore:
    """Decoded libnetwork objects by kind (``network``, ``endpoint``, ``bridge``...)."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → object

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        """Objects whose key starts with ``<kind>/``, by the rest of the key."""
        head = kind + "/"
        return {k[len(head):]: v for k, v in self.objects.items() if k.startswith(head)}


def read_network_db(view: RootView) -> NetworkStore:
    """Every object of ``local-kv.db``."""
    from analyzer.formats.bbolt import BboltDB

    rel = "network/files/local-kv.db"
    store = NetworkStore()
    data = view.read(rel)
    if data is None:
        return store
    try:
        bucket = BboltDB(data).root().bucket(b"libnetwork")
        if bucket is None:
            return store
        for key, value, is_bucket in bucket.items():
            if is_bucket:  # libnetwork keeps no nested buckets: a damaged leaf element
                view.issues.add("bbolt.malformed", f"{rel}: entry {key[:80]!r} is marked as a "
                                "nested bucket, which libnetwork never writes (damaged page?); "
                                "its object is lost", path=rel)
                continue
            if value is None or len(value) <= 8:  # kind markers hold only the index
                continue
            k = key.decode("utf-8", "replace")
            if not k.startswith(PREFIX):
                continue
            try:
                obj = json.loads(value[8:])
            except ValueError as exc:
                view.issues.add("json.malformed", f"{rel}: {k} does not parse ({exc})", path=rel)
                continue
            if isinstance(obj, dict):
                store.objects[k[len(PREFIX):].rstrip("/")] = obj
    except BboltFormatError as exc:
        view.issues.add("bbolt.malformed", f"{rel}: {exc}", path=rel)
    return store


def _subnets(net: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in ("ipamV4Config", "ipamV6Config"):
        raw = net.get(key)
        try:
            confs = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            confs = None
        for c in confs or []:
            if isinstance(c, dict):
                out.append({"Subnet": c.get("PreferredPool"), "Gateway": c.get("Gateway"),
                            "IPRange": c.get("SubPool") or None})
    return out


def parse_networks(view: RootView, store: NetworkStore) -> list[dict[str, Any]]:
    """One row per network object."""
    endpoints = store.of_kind("endpoint")
    per_net: dict[str, int] = {}
    for key in endpoints:
        nid = key.split("/", 1)[0]
        per_net[nid] = per_net.get(nid, 0) + 1
    rows = []
    for nid, net in sorted(store.of_kind("network").items()):
        rows.append({
            "network_id": net.get("id") or nid, "name": net.get("name"),
            "driver": net.get("networkType"), "scope": net.get("scope") or "local",
            "created_at": parse_time(net.get("created")), "internal": net.get("internal"),
            "attachable": net.get("attachable"), "ipv6": net.get("enableIPv6"),
            "subnets_json": json.dumps(_subnets(net)), "endpoints": per_net.get(nid, 0),
            "config_json": json.dumps(net, sort_keys=True),
        })
    return rows
