"""Where the bytes went, beyond ``docker system df``: per layer, per image, duplicates,
waste inside images, orphans and growth.

Pure functions over a snapshot's tables (no evidence is read again); each returns
a DataFrame or a small dict. Sizes are bytes, counted like the daemon counts them
(``layerdb`` sizes for layers, directory walks for RW layers and volumes).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analyzer.formats.digest import chain_ids
from analyzer.model.values import loads_json as _loads

#: roles whose directories hold real stored content (not mount views)
#: drivers whose layer folders hold only that layer's changes (waste is measurable)
LAYERED = ("overlay2", "fuse-overlayfs", "aufs", "overlayfs")
CONTENT_ROLES = ("image-layer", "container-rw", "container-init", "orphan", "layer-parent",
                 "build-cache")


def image_chains(snap: Any) -> dict[str, list[str]]:
    """Chain ids of every image's layers, bottom to top (from each config's diff ids)."""
    out = {}
    for image_id, cfg_text in zip(snap.images["image_id"], snap.images["config_json"]):
        cfg = _loads(cfg_text) or {}
        rootfs = cfg.get("rootfs") if isinstance(cfg.get("rootfs"), dict) else {}
        out[image_id] = chain_ids([d for d in rootfs.get("diff_ids") or [] if isinstance(d, str)])
    return out


def listed_images(snap: Any) -> set[str]:
    """Images ``docker images`` lists: tagged, or without children (not build intermediates)."""
    imgs = snap.images
    has_children = set(imgs["parent_id"].dropna())
    return set(imgs.loc[imgs["tagged"].fillna(False) | ~imgs["image_id"].isin(has_children),
                        "image_id"])


def layer_usage(snap: Any) -> pd.DataFrame:
    """Per layer: bytes, how many listed images and containers use it, unique or shared."""
    chains = image_chains(snap)
    listed = listed_images(snap)
    per_image = snap.containers["image_id"].value_counts().to_dict()
    users: dict[str, set[str]] = {}
    for image_id in listed:
        for c in chains.get(image_id, []):
            users.setdefault(c, set()).add(image_id)
    rows = []
    for r in snap.layers.itertuples():
        imgs = users.get(r.chain_id, set())
        rows.append({"chain_id": r.chain_id, "cache_id": r.cache_id, "size_bytes": r.size_bytes,
                     "images": len(imgs), "containers": sum(per_image.get(i, 0) for i in imgs),
                     "sharing": "unused" if not imgs else ("shared" if len(imgs) > 1 else "unique")})
    return pd.DataFrame(rows, columns=["chain_id", "cache_id", "size_bytes", "images",
                                       "containers", "sharing"])


def image_usage(snap: Any) -> pd.DataFrame:
    """Per listed image: size, shared and unique bytes, bytes freed if it were deleted."""
    chains = image_chains(snap)
    listed = listed_images(snap)
    sizes = dict(zip(snap.layers["chain_id"], snap.layers["size_bytes"]))
    refs: dict[str, int] = {}
    for image_id in listed:
        for c in chains.get(image_id, []):
            refs[c] = refs.get(c, 0) + 1
    tags = snap.image_tags.groupby("image_id")["reference"].apply(lambda s: ", ".join(sorted(s)))
    per_image = snap.containers["image_id"].value_counts().to_dict()
    rows = []
    for r in snap.images[snap.images["image_id"].isin(listed)].itertuples():
        size = int(r.size_bytes) if not pd.isna(r.size_bytes) else 0
        shared = sum(int(sizes.get(c) or 0) for c in chains.get(r.image_id, []) if refs.get(c, 0) > 1)
        rows.append({"image_id": r.image_id, "tags": tags.get(r.image_id, "<none>"),
                     "created_at": r.created_at, "size_bytes": size, "shared_bytes": shared,
                     "unique_bytes": size - shared, "containers": int(per_image.get(r.image_id, 0)),
                     # layers no other listed image uses: exactly the unreferenced-elsewhere
                     # bytes (model.graph.freed_if_deleted gives the same on the graph)
                     "freed_if_deleted_bytes": sum(int(sizes.get(c) or 0) for c in set(
                         chains.get(r.image_id, [])) if refs.get(c, 0) == 1)})
    return pd.DataFrame(rows, columns=["image_id", "tags", "created_at", "size_bytes",
                                       "shared_bytes", "unique_bytes", "containers",
                                       "freed_if_deleted_bytes"]).sort_values(
        "size_bytes", ascending=False, ignore_index=True)


def _areas(snap: Any) -> pd.DataFrame:
    """Files in stored content areas, labelled by where they live."""
    files = snap.files
    regular = files[(files["kind"] == "file") & files["sha256"].notna() & (files["size"] > 0)]
    dirs = snap.layer_dirs[snap.layer_dirs["role"].isin(CONTENT_ROLES)]
    prefix_to_area = {p + "/": f"{role}:{d}" for p, role, d in
                      zip(dirs["content_path"], dirs["role"], dirs["dir_id"])}
    top = regular["path"].astype(object).str.extract(
        r"^((?:[^/]+/){2,3}?(?:diff|root|upper)/|vfs/dir/[^/]+/|aufs/diff/[^/]+/|"
        r"(?:containerd/daemon|@containerd)/io\.containerd\.snapshotter\.v1\.[^/]+/"
        r"snapshots/[^/]+/(?:fs/)?|volumes/[^/]+/_data/)", expand=False)
    areas: list[str | None] = []
    for t in top:
        if not isinstance(t, str):
            areas.append(None)
        elif t in prefix_to_area:
            areas.append(prefix_to_area[t])
        elif t.startswith("volumes/") and t.endswith("/_data/"):
            areas.append("volume:" + t[len("volumes/"):-len("/_data/")])
        else:
            areas.append(None)
    area = pd.Series(areas, index=regular.index, dtype=object)
    out = regular.assign(area=area)
    out = out[out["area"].notna()]
    return out.assign(inner=[p[len(t):] for p, t in zip(out["path"], top[out.index])])


def duplicates(snap: Any, top: int = 20) -> tuple[dict[str, int], pd.DataFrame]:
    """Identical file contents stored more than once across layers, RW layers and volumes.

    Full-copy drivers (vfs, btrfs) store every layer whole, so their duplicates are
    by design; they are counted all the same (that is what the disk holds).

    Returns:
        (summary, top duplicated contents): summary has ``files``, ``stored_bytes``,
        ``unique_bytes`` and ``saved_by_dedup_bytes`` (what content-addressed storage
        would save); the table lists the contents stored most wastefully.
    """
    areas = _areas(snap)
    if areas.empty:
        return ({"files": 0, "stored_bytes": 0, "unique_bytes": 0, "saved_by_dedup_bytes": 0},
                pd.DataFrame(columns=["sha256", "size", "copies", "wasted_bytes", "example_paths"]))
    stored = int(areas["size"].sum())
    groups = areas.groupby("sha256").agg(size=("size", "first"), copies=("path", "size"),
                                         places=("area", "nunique"))
    unique = int(groups["size"].sum())
    dup = groups[groups["copies"] > 1].assign(
        wasted_bytes=lambda d: d["size"] * (d["copies"] - 1)).sort_values(
        "wasted_bytes", ascending=False).head(top)
    examples = areas[areas["sha256"].isin(dup.index)].groupby("sha256")["path"].apply(
        lambda s: list(s.head(3)))
    dup = dup.assign(example_paths=examples.reindex(dup.index)).reset_index()
    return ({"files": int(len(areas)), "stored_bytes": stored, "unique_bytes": unique,
             "saved_by_dedup_bytes": stored - unique},
            dup[["sha256", "size", "copies", "wasted_bytes", "example_paths"]])


def _entries_by_dir(snap: Any, content_paths: list[str]) -> dict[str, pd.DataFrame]:
    """Entries under each content folder, in one pass over the index."""
    files = snap.files
    wanted = set(content_paths)
    depth = {p.count("/") + 1 for p in wanted}
    out: dict[str, list[int]] = {p: [] for p in wanted}
    paths = files["path"].tolist()
    for i, path in enumerate(paths):
        parts = path.split("/")
        for d in depth:
            if len(parts) > d:
                head = "/".join(parts[:d])
                if head in wanted:
                    out[head].append(i)
    result = {}
    for p, idx in out.items():
        sub = files.iloc[idx]
        result[p] = sub.assign(inner=sub["path"].str.slice(len(p) + 1))
    return result


def image_waste(snap: Any) -> pd.DataFrame:
    """Per listed image: bytes of files that a later layer overwrites or deletes.

    Layers are applied bottom to top. A file in layer *i* is wasted when a later
    layer holds the same path (overwrite), a whiteout of it or of a parent
    directory (deletion), or an opaque marker on a parent directory (the whole
    directory replaced). Overlay whiteouts are 0:0 character devices and opaque
    directories carry ``trusted.overlay.opaque=y``; aufs-style ``.wh.`` files are
    understood too. Efficiency = 1 − wasted / total bytes of all layers.
    Full-copy drivers (vfs, btrfs) store each layer whole: not measurable, NA.
    """
    driver = (snap.meta.get("driver") or "").split(",")[0]
    chains = image_chains(snap)
    layers = snap.layers.set_index("chain_id")
    dirs = snap.layer_dirs.set_index("dir_id") if len(snap.layer_dirs) else None
    rows = []
    cache = _entries_by_dir(snap, dirs["content_path"].dropna().tolist()) if dirs is not None \
        and driver in LAYERED else {}
    for image_id in sorted(listed_images(snap)):
        total = wasted = 0
        measurable = driver in LAYERED and dirs is not None
        stack = []
        for c in chains.get(image_id, []):
            if c not in layers.index or pd.isna(layers.loc[c, "cache_id"]):
                measurable = False
                break
            cid = layers.loc[c, "cache_id"]
            if cid not in dirs.index if dirs is not None else True:
                measurable = False
                break
            stack.append(cache.get(dirs.loc[cid, "content_path"], pd.DataFrame(
                columns=["inner", "kind", "whiteout", "opaque", "size"])))
        if measurable:
            total, wasted = _waste_of_stack(stack)
        rows.append({"image_id": image_id, "layers": len(chains.get(image_id, [])),
                     "total_bytes": total if measurable else None,
                     "wasted_bytes": wasted if measurable else None,
                     "efficiency": (1 - wasted / total if total else 1.0) if measurable else None})
    return pd.DataFrame(rows, columns=["image_id", "layers", "total_bytes", "wasted_bytes",
                                       "efficiency"])


def _waste_of_stack(stack: list[pd.DataFrame]) -> tuple[int, int]:
    total = wasted = 0
    above: list[tuple[set[str], set[str]]] = []  # per layer: (paths replaced, dirs hidden)
    for layer in stack:
        replaced: set[str] = set()
        hidden_dirs: set[str] = set()
        for inner, kind, whiteout, opaque in zip(layer["inner"], layer["kind"],
                                                 layer["whiteout"].fillna(False),
                                                 layer["opaque"].fillna(False)):
            parent, _, base = inner.rpartition("/")
            if base == ".wh..wh..opq":
                hidden_dirs.add(parent)
            elif base.startswith(".wh.") and not base.startswith(".wh..wh."):
                target = f"{parent}/{base[4:]}" if parent else base[4:]
                replaced.add(target)
                hidden_dirs.add(target)
            elif whiteout:
                replaced.add(inner)
                hidden_dirs.add(inner)
            elif kind == "dir":
                if opaque:
                    hidden_dirs.add(inner)
            else:
                replaced.add(inner)
        above.append((replaced, hidden_dirs))
    for i, layer in enumerate(stack):
        files = layer[layer["kind"].isin(["file", "symlink"])]
        sizes = files["size"].fillna(0).astype("int64")
        total += int(sizes.sum())
        later = above[i + 1:]
        if not later:
            continue
        replaced = set().union(*(r for r, _ in later))
        hidden = set().union(*(h for _, h in later))
        for path, size in zip(files["inner"], sizes):
            if path in replaced or _under(path, hidden):
                wasted += int(size)
    return total, wasted


def _under(path: str, dirs: set[str]) -> bool:
    """True if a parent directory of ``path`` is in ``dirs``."""
    parent = path.rpartition("/")[0]
    while parent:
        if parent in dirs:
            return True
        parent = parent.rpartition("/")[0]
    return False


def orphans_and_growth(snap: Any) -> dict[str, pd.DataFrame]:
    """Reclaimable or growing things: unreferenced layer dirs, dangling images, unused
    volumes, stopped containers' RW bytes, container log bytes."""
    dirs = snap.layer_dirs
    imgs = snap.images
    used_images = set(snap.containers["image_id"].dropna())
    has_children = set(imgs["parent_id"].dropna())
    dangling = imgs[~imgs["tagged"].fillna(False) & ~imgs["image_id"].isin(has_children)
                    & ~imgs["image_id"].isin(used_images)]
    vols = snap.volumes[snap.volumes["ref_count"].fillna(0) == 0]
    c = snap.containers
    stopped = c[~c["running"].fillna(False)][["container_id", "name", "status", "size_rw_bytes"]]
    files = snap.files
    logs = files[files["path"].str.fullmatch(
        r"containers/[0-9a-f]{64}/(?:[0-9a-f]{64}-json\.log.*|local-logs/container\.log.*"
        r"|container-cached\.log.*)")]
    log_bytes = logs.assign(container_id=logs["path"].str.slice(11, 75)).groupby(
        "container_id")["size"].agg(["sum", "count"]).rename(
        columns={"sum": "log_bytes", "count": "log_files"}).reset_index()
    names = dict(zip(c["container_id"], c["name"]))
    log_bytes.insert(1, "name", log_bytes["container_id"].map(names))
    return {
        "orphan_dirs": dirs[dirs["role"] == "orphan"][["dir_id", "driver", "path", "files",
                                                      "content_bytes"]],
        "dangling_images": dangling[["image_id", "created_at", "size_bytes"]],
        "unused_volumes": vols[["name", "driver", "size_bytes", "anonymous"]],
        "stopped_containers": stopped,
        "logs": log_bytes.sort_values("log_bytes", ascending=False, ignore_index=True),
    }
