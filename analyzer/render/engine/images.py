"""``GET /images/json``, ``/images/{id}/json`` and ``/images/{id}/history`` from a snapshot.

Reference: ``docs/engine-api.md`` §1.1, §2, §3, §4 (Docker 20.10, API 1.41).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analyzer.render.engine import images_c8d as c8d
from analyzer.render.engine.common import (Context, familiar, go_config, go_time, history_docs,
                                           loads, normalized, platform_fields, rootfs_doc,
                                           unix_seconds)
from analyzer.render.gojson import sorted_map


def _refs(snap: Any, image_id: str) -> tuple[list[str], list[str]]:
    """(tags, digests) of an image, familiar form, in the daemon's order."""
    t = snap.tables["image_tags"]
    rows = t[t["image_id"] == image_id]
    tags = [r for r, tag in zip(rows["reference"], rows["tag"]) if not pd.isna(tag)]
    digests = [r for r, d in zip(rows["reference"], rows["digest"]) if not pd.isna(d)]
    key = lambda r: normalized(r)  # noqa: E731 - sorted by the fully-qualified form
    return [familiar(r) for r in sorted(tags, key=key)], [familiar(r) for r in sorted(digests, key=key)]


def loaded_images(snap: Any) -> pd.DataFrame:
    """Images the daemon would load: valid JSON with rootfs, linux, all layers present."""
    images = snap.tables["images"]
    layers = set(snap.tables["layers"]["chain_id"].dropna())
    keep = []
    for row in images.itertuples():
        cfg = loads(row.config_json)
        ok = isinstance(cfg, dict) and "rootfs" in cfg and (cfg.get("os") or "linux") == "linux"
        if ok and not pd.isna(row.top_chain_id) and row.top_chain_id not in layers:
            ok = False
        keep.append(ok)
    return images[pd.Series(keep, index=images.index, dtype=bool)] if len(images) else images


def _children(images: pd.DataFrame) -> dict[str, int]:
    loaded = set(images["image_id"])
    out: dict[str, int] = {}
    for parent in images["parent_id"].dropna():
        if parent in loaded:
            out[parent] = out.get(parent, 0) + 1
    return out


def image_summaries(snap: Any, all_images: bool = True) -> list[dict[str, Any]]:
    """The ``GET /images/json`` list."""
    if c8d.is_containerd(snap):
        return c8d.image_summaries(snap, all_images)
    images = loaded_images(snap)
    children = _children(images)
    out = []
    for row in images.itertuples():
        tags, digests = _refs(snap, row.image_id)
        if not tags and not digests:
            if not all_images and children.get(row.image_id, 0):
                continue
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        cfg = loads(row.config_json) or {}
        conf = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
        size = int(row.size_bytes) if not pd.isna(row.size_bytes) else 0
        out.append({
            "Containers": -1, "Created": unix_seconds(cfg.get("created")), "Id": row.image_id,
            "Labels": sorted_map(conf.get("Labels")),
            "ParentId": "" if pd.isna(row.parent_id) else row.parent_id,
            "RepoDigests": digests or None, "RepoTags": tags or None,
            "SharedSize": -1, "Size": size, "VirtualSize": size,
        })
    out.sort(key=lambda d: (-d["Created"], d["Id"]))
    return out


def _graphdriver(snap: Any, ctx: Context, cache_id: str | None, driver: str) -> dict[str, Any]:
    """GraphDriver of a layer directory (image top layer or container RW layer)."""
    if not cache_id or driver not in ("overlay2", "fuse-overlayfs"):
        return {"Data": None, "Name": driver}
    dirs = snap.tables["layer_dirs"]
    d = dirs[(dirs["driver"] == driver) & (dirs["dir_id"] == cache_id)]
    base = f"{ctx.root}/{driver}/{cache_id}"
    data = {}
    lower = d["lower"].iloc[0] if len(d) and not pd.isna(d["lower"].iloc[0]) else None
    if lower:
        by_link = dict(zip(dirs["link_id"].dropna(), dirs.loc[dirs["link_id"].notna(), "dir_id"]))
        parts = []
        for entry in lower.split(":"):
            link = entry.split("/", 1)[1] if entry.startswith("l/") else entry
            owner = by_link.get(link)
            parts.append(f"{ctx.root}/{driver}/{owner}/diff" if owner else f"{ctx.root}/{driver}/{entry}")
        data["LowerDir"] = ":".join(parts)
    data.update({"MergedDir": f"{base}/merged", "UpperDir": f"{base}/diff",
                 "WorkDir": f"{base}/work"})
    return {"Data": data, "Name": driver}


def store_driver(snap: Any) -> str:
    """The driver of the loaded image store."""
    return (snap.meta.get("driver") or "").split(",")[0]


def image_inspect(snap: Any, ctx: Context, image: pd.Series) -> dict[str, Any]:
    """``GET /images/{id}/json`` for one image row."""
    if c8d.is_containerd(snap):
        return c8d.image_inspect(snap, image)
    cfg = loads(image["config_json"]) or {}
    tags, digests = _refs(snap, image["image_id"])
    history = cfg.get("history") if isinstance(cfg.get("history"), list) else []
    comment = cfg.get("comment") or ""
    if not comment and history and isinstance(history[-1], dict):
        comment = history[-1].get("comment") or ""
    out: dict[str, Any] = {
        "Id": image["image_id"], "RepoTags": tags, "RepoDigests": digests,
        "Parent": "" if pd.isna(image["parent_id"]) else image["parent_id"],
        "Comment": comment, "Created": go_time(cfg.get("created")),
        "Container": cfg.get("container") or "",
        "ContainerConfig": go_config(cfg.get("container_config") or {}),
        "DockerVersion": cfg.get("docker_version") or "", "Author": cfg.get("author") or "",
        "Config": go_config(cfg.get("config")) if "config" in cfg else None,
        "Architecture": cfg.get("architecture") or "",
    }
    out.update(platform_fields(cfg))
    size = int(image["size_bytes"]) if not pd.isna(image["size_bytes"]) else 0
    out["Size"] = size
    out["VirtualSize"] = size
    layers = snap.tables["layers"]
    top = image["top_chain_id"]
    cache = None
    if not pd.isna(top):
        hit = layers[layers["chain_id"] == top]
        cache = hit["cache_id"].iloc[0] if len(hit) else None
    out["GraphDriver"] = _graphdriver(snap, ctx, cache, store_driver(snap))
    out["RootFS"] = rootfs_doc(cfg)
    out["Metadata"] = {"LastTagTime": go_time(image["last_tag_raw"])
                       if not pd.isna(image["last_tag_raw"]) else "0001-01-01T00:00:00Z"}
    return out


def image_history(snap: Any, image: pd.Series) -> list[dict[str, Any]]:
    """``GET /images/{id}/history`` for one image row."""
    if c8d.is_containerd(snap):
        return c8d.image_history(snap, image)
    return history_docs(snap, image, loaded_images(snap).set_index("image_id"),
                        lambda image_id: _refs(snap, image_id)[0])
