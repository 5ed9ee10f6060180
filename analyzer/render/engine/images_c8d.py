"""Image documents of the containerd image store (dockerd 24+, API 1.45 shapes).

The same three requests as :mod:`analyzer.render.engine.images`, following the rules
of moby 26.1 ``daemon/containerd`` (``image_list.go``, ``image.go``,
``image_history.go``), summarised with citations in
``docs/research/containerd-store-rules.md`` §1-§3:

* the id is the target (index or manifest) digest; dangling images (records named
  ``moby-dangling@<digest>``) have no tags and ``[]`` for RepoTags/RepoDigests;
* list ``Size`` = descriptor sizes + unpacked snapshot usage (``images.size_bytes``),
  inspect ``Size`` = descriptor sizes only (``images.content_bytes``);
* ``RepoDigests`` are ``<repo>@<target digest>`` made from the tag names, not from
  registry data; ``Parent`` is the ``org.mobyproject.image.parent`` label;
* history sizes are each layer snapshot's own usage; only the parent-label chain
  carries ids and tags.

Not on disk: ``DockerVersion`` is the version of the daemon answering the request
(not the config's ``docker_version``), so it is rendered as ``""``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analyzer.render.engine.common import (go_config, go_time, history_docs, loads,
                                           platform_fields, rootfs_doc, unix_seconds)
from analyzer.render.gojson import sorted_map


def is_containerd(snap: Any) -> bool:
    """True when the snapshot's images come from the containerd image store."""
    return str(snap.meta.get("image_store") or "") == "containerd" or bool(
        snap.meta.get("containerd_root"))


def _names(snap: Any, image_id: str) -> list[tuple[str, str | None, str | None]]:
    """(reference, repository, digest) of the image's non-dangling names, in name order."""
    t = snap.tables["image_tags"]
    rows = t[t["image_id"] == image_id]
    return [(str(r), str(repo), None if pd.isna(d) else str(d))
            for r, repo, d in zip(rows["reference"], rows["repository"], rows["digest"])]


def _tags(snap: Any, image_id: str) -> list[str]:
    return [ref for ref, _, _ in _names(snap, image_id)]


def _digest_ref(image_id: str, ref: str, repo: str, digest: str | None) -> str:
    return ref if digest else f"{repo}@{image_id}"


def image_summaries(snap: Any, all_images: bool = True) -> list[dict[str, Any]]:
    """``GET /images/json`` (containerd store)."""
    images = snap.tables["images"]
    images = images[images["config_json"].notna()]
    parents = set(images["parent_id"].dropna())
    out = []
    for row in images.itertuples():
        names = _names(snap, row.image_id)
        if not names and not all_images and row.image_id in parents:
            continue  # a classic-builder intermediate
        cfg = loads(row.config_json) or {}
        conf = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
        digests = [_digest_ref(row.image_id, *names[-1])] if names else []
        out.append({
            "Containers": -1, "Created": unix_seconds(cfg.get("created")), "Id": row.image_id,
            "Labels": sorted_map(conf.get("Labels")),
            "ParentId": "" if pd.isna(row.parent_id) else row.parent_id,
            "RepoDigests": digests, "RepoTags": [ref for ref, _, _ in names],
            "SharedSize": -1, "Size": int(row.size_bytes) if not pd.isna(row.size_bytes) else 0,
        })
    out.sort(key=lambda d: (-d["Created"], d["Id"]))
    return out


def image_inspect(snap: Any, image: pd.Series) -> dict[str, Any]:
    """``GET /images/{id}/json`` (containerd store)."""
    cfg = loads(image["config_json"]) or {}
    names = _names(snap, image["image_id"])
    history = cfg.get("history") if isinstance(cfg.get("history"), list) else []
    comment = ""
    if history and isinstance(history[-1], dict):
        comment = history[-1].get("comment") or ""
    out: dict[str, Any] = {
        "Id": image["image_id"], "RepoTags": [ref for ref, _, d in names if not d],
        "RepoDigests": [_digest_ref(image["image_id"], *n) for n in names],
        "Parent": "" if pd.isna(image["parent_id"]) else image["parent_id"],
        "Comment": comment,
    }
    if cfg.get("created"):
        out["Created"] = go_time(cfg.get("created"))
    out.update({
        "DockerVersion": "", "Author": cfg.get("author") or "",
        "Config": go_config(cfg.get("config") or {}),
        "Architecture": cfg.get("architecture") or "",
    })
    out.update(platform_fields(cfg))
    out["Size"] = int(image["content_bytes"]) if not pd.isna(image["content_bytes"]) else 0
    driver = str(snap.meta.get("driver") or "overlayfs").split(",")[0]
    out["GraphDriver"] = {"Data": None, "Name": driver}
    out["RootFS"] = rootfs_doc(cfg)
    last = image["last_tag_at"]
    out["Metadata"] = {"LastTagTime": go_time(pd.Timestamp(last).isoformat().replace(
        "+00:00", "Z")) if not pd.isna(last) else "1970-01-01T00:00:00Z"}
    return out


def image_history(snap: Any, image: pd.Series) -> list[dict[str, Any]]:
    """``GET /images/{id}/history`` (containerd store): ids and tags follow the
    parent-label chain over every image record, tags in name order."""
    return history_docs(snap, image, snap.tables["images"].set_index("image_id"),
                        lambda image_id: _tags(snap, image_id))
