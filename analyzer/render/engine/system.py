"""``GET /system/df``: disk usage as the daemon reports it.

Reference: ``docs/engine-api.md`` §9 (Docker 20.10, API 1.41): images listed as
``/images/json`` without ``all`` plus ``Containers`` and ``SharedSize``;
``LayersSize`` over the layers those images use; containers with sizes; local
volumes without driver options, with ``UsageData``; the BuildKit cache.
"""

from __future__ import annotations

from typing import Any

from analyzer.render.engine.common import Context, api_at_least
from analyzer.render.engine.containers import ContainerDocs
from analyzer.analyses.storage import image_chains
from analyzer.render.engine.images import image_summaries
from analyzer.render.engine.images_c8d import is_containerd
from analyzer.render.engine.storage import volume_docs


def _layer_sizes(snap: Any) -> dict[str, int]:
    layers = snap.tables["layers"]
    return {c: int(s) for c, s, r in zip(layers["chain_id"], layers["size_bytes"],
                                         layers["removing"]) if s == s and s is not None and not r}


def system_df(snap: Any, ctx: Context) -> dict[str, Any]:
    """The ``GET /system/df`` document."""
    images = image_summaries(snap, all_images=False)
    chains = image_chains(snap)
    sizes = _layer_sizes(snap)
    refs: dict[str, int] = {}
    for img in images:
        for c in chains.get(img["Id"], []):
            refs[c] = refs.get(c, 0) + 1
    containers = snap.tables["containers"]
    per_image = containers["image_id"].value_counts().to_dict()
    for img in images:
        img["Containers"] = int(per_image.get(img["Id"], 0))
        img["SharedSize"] = sum(sizes.get(c, 0) for c in chains.get(img["Id"], [])
                                if refs.get(c, 0) > 1)
        for key in ("RepoTags", "RepoDigests"):  # only /images/json turns nil into []
            img[key] = img[key] or None
    layers_size = sum(sizes.get(c, 0) for c in refs)
    if is_containerd(snap):  # every snapshot of dockerd's namespace, container ones included
        dirs = snap.tables["layer_dirs"]
        used = dirs[dirs["snapshot_key"].notna()]["content_bytes"].dropna()
        layers_size = int(used.sum())
    docs = ContainerDocs(snap, ctx)
    volumes = []
    mounts = snap.tables["container_mounts"]
    for vol in volume_docs(snap, ctx):
        if vol["Driver"] != "local" or vol["Options"]:
            continue
        users = mounts[(mounts["name"] == vol["Name"]) & mounts["driver"].fillna("").ne("")]
        row = snap.tables["volumes"][snap.tables["volumes"]["name"] == vol["Name"]]
        size = int(row["size_bytes"].iloc[0]) if len(row) and row["size_bytes"].iloc[0] == \
            row["size_bytes"].iloc[0] and row["size_bytes"].iloc[0] is not None else -1
        vol["UsageData"] = {"RefCount": int(users["container_id"].nunique()), "Size": size}
        volumes.append(vol)
    try:
        from analyzer.render.engine.buildcache import build_cache_records, builder_size

        cache = build_cache_records(snap, tz_offset=ctx.tz_offset, api=ctx.api)
        builder = builder_size(snap, api=ctx.api)
    except ImportError:  # build cache not read by this version
        cache, builder = None, 0
    doc = {"LayersSize": layers_size, "Images": images,
           "Containers": docs.list(all_containers=True, size=True), "Volumes": volumes,
           "BuildCache": cache, "BuilderSize": builder}
    if api_at_least(ctx.api, "1.42") and not builder:  # BuilderSize is omitempty since 1.42
        del doc["BuilderSize"]
    return doc
