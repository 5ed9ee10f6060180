"""The graphdriver image store: tags, image configs, history and the layer database.

Reads, relative to the data-root (``<drv>`` = storage driver):

* ``image/<drv>/repositories.json`` → ``image_tags``
* ``image/<drv>/imagedb/content/sha256/<hex>`` and ``imagedb/metadata/sha256/<hex>/
  {parent,lastUpdated,builtLocally}`` → ``images``, ``image_history``
* ``image/<drv>/layerdb/sha256/<chain>/{diff,size,cache-id,parent}`` → ``layers``
* ``image/<drv>/layerdb/mounts/<container>/{mount-id,init-id,parent}`` → container RW layers

References: ``shared/docs/docker-root-format.md`` §1.2, §1.3, §2, §3;
moby ``daemon/internal/image/fs.go``, ``store.go``, ``daemon/internal/layer/filestore.go``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from analyzer.formats.digest import chain_id, chain_ids
from analyzer.parsers.rootview import RootView
from analyzer.parsers.times import parse_time

HEX64 = r"[0-9a-f]{64}"


@dataclass
class ImageStore:
    """Rows of one graphdriver image store, plus lookups other parsers need."""

    driver: str
    images: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    mounts: dict[str, dict[str, str | None]] = field(default_factory=dict)  # container → ids
    chains: dict[str, list[str]] = field(default_factory=dict)  # image → chain ids, bottom first


def store_drivers(view: RootView) -> list[str]:
    """Drivers that have an ``image/<drv>/`` store in this root."""
    out = set()
    for rel, m in view.matching(r"image/([^/]+)/(?:repositories\.json|imagedb/.*|layerdb/.*)"):
        out.add(m.group(1))
    if not out:
        for p in view.files["path"][view.files["path"].str.startswith("image/")]:
            parts = p.split("/")
            if len(parts) >= 2 and parts[1] not in ("identity-cache.db",):
                out.add(parts[1])
    return sorted(out)


def parse_store(view: RootView, drv: str) -> ImageStore:
    """Parse ``image/<drv>/`` of the data-root."""
    store = ImageStore(driver=drv)
    base = f"image/{drv}"
    layers = _parse_layers(view, base, store)
    _parse_mounts(view, base, store)
    _parse_images(view, base, store, layers)
    _parse_tags(view, base, store)
    return store


def _parse_layers(view: RootView, base: str, store: ImageStore) -> dict[str, dict[str, Any]]:
    by_chain: dict[str, dict[str, Any]] = {}
    dirs = set()
    for rel, m in view.matching(rf"{base}/layerdb/sha256/([^/]+)/(?:diff|size|cache-id|parent)"):
        dirs.add(m.group(1))
    for d in sorted(dirs):
        removing = d.endswith("-removing")
        hexid = d.split("-", 1)[0]
        folder = f"{base}/layerdb/sha256/{d}"
        diff = view.text(f"{folder}/diff")
        size_text = view.text(f"{folder}/size")
        parent = view.text(f"{folder}/parent") or None
        try:
            size = int(size_text) if size_text is not None else None
        except ValueError:
            view.issues.add("json.unexpected", f"{folder}/size is not a number: {size_text!r}",
                            path=f"{folder}/size")
            size = None
        chain = f"sha256:{hexid}"
        row = {
            "chain_id": chain, "diff_id": diff, "parent_chain_id": parent,
            "cache_id": view.text(f"{folder}/cache-id"), "size_bytes": size,
            "chain_ok": (chain_id(parent, diff) == chain) if diff else None,
            "has_tar_split": view.exists(f"{folder}/tar-split.json.gz"),
            "removing": removing,
        }
        store.layers.append(row)
        if not removing:
            by_chain[chain] = row
    return by_chain


def _parse_mounts(view: RootView, base: str, store: ImageStore) -> None:
    cids = set()
    for rel, m in view.matching(rf"{base}/layerdb/mounts/([^/]+)/(?:mount-id|init-id|parent)"):
        cids.add(m.group(1))
    for cid in sorted(cids):
        folder = f"{base}/layerdb/mounts/{cid}"
        store.mounts[cid] = {
            "mount_id": view.text(f"{folder}/mount-id"),
            "init_id": view.text(f"{folder}/init-id"),
            "parent": view.text(f"{folder}/parent") or None,
        }


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def config_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``images`` columns that come straight from an image config (v1 or v2)."""
    conf = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
    return {
        "architecture": cfg.get("architecture"), "os": cfg.get("os"),
        "variant": cfg.get("variant"), "author": cfg.get("author") or None,
        "docker_version": cfg.get("docker_version") or None,
        "comment": cfg.get("comment") or None, "container": cfg.get("container") or None,
        "user": conf.get("User"),
        "entrypoint_json": _json_text(conf.get("Entrypoint")),
        "cmd_json": _json_text(conf.get("Cmd")), "env_json": _json_text(conf.get("Env")),
        "labels_json": _json_text(conf.get("Labels")),
        "exposed_ports_json": _json_text(conf.get("ExposedPorts")),
        "volumes_json": _json_text(conf.get("Volumes")),
        "working_dir": conf.get("WorkingDir"),
    }


def _parse_images(view: RootView, base: str, store: ImageStore,
                  layers: dict[str, dict[str, Any]]) -> None:
    meta = f"{base}/imagedb/metadata/sha256"
    for rel, m in view.matching(rf"{base}/imagedb/content/sha256/({HEX64})"):
        hexid = m.group(1)
        data = view.read(rel) or b""
        image_id = f"sha256:{hexid}"
        valid = hashlib.sha256(data).hexdigest() == hexid
        if not valid:
            view.issues.add("image.invalid", f"image config {hexid[:12]} does not hash to its "
                            "id (tampered or corrupt; the daemon would skip it)", path=rel)
        cfg = view.json(rel, "image config")
        if not isinstance(cfg, dict):
            if cfg is not None:
                view.issues.add("json.unexpected", f"{rel}: image config is not an object",
                                path=rel)
            cfg = {}
        rootfs = cfg.get("rootfs") if isinstance(cfg.get("rootfs"), dict) else {}
        diff_ids = [d for d in (rootfs.get("diff_ids") or []) if isinstance(d, str)]
        chains = chain_ids(diff_ids)
        store.chains[image_id] = chains
        size = 0
        for c in chains:
            layer = layers.get(c)
            if layer is None:
                view.issues.add("layer.missing", f"image {hexid[:12]}: layer {c[7:19]} is not in "
                                "the layer database", path=rel)
            elif layer["size_bytes"] is not None:
                size += layer["size_bytes"]
        created = cfg.get("created")
        last = view.text(f"{meta}/{hexid}/lastUpdated")
        built = view.read(f"{meta}/{hexid}/builtLocally")
        store.images.append({
            "image_id": image_id, "valid": valid,
            "created_at": parse_time(created), "created_raw": created,
            "parent_id": view.text(f"{meta}/{hexid}/parent") or None,
            **config_fields(cfg),
            "layer_count": len(diff_ids), "top_chain_id": chains[-1] if chains else None,
            "size_bytes": size, "last_tag_at": parse_time(last), "last_tag_raw": last,
            "built_locally": (built == b"\x01" or built == b"1") if built is not None else None,
            "config_path": rel, "config_json": data.decode("utf-8", "replace"),
        })
        add_history(store, image_id, cfg, diff_ids, chains, layers, rel, view)


def add_history(store: ImageStore, image_id: str, cfg: dict[str, Any], diff_ids: list[str],
                chains: list[str], layers: dict[str, dict[str, Any]], rel: str,
                view: RootView) -> None:
    """``image_history`` rows of one image config (both image stores): one per history
    entry, non-empty ones paired with the next diff id and its layer's size."""
    entries = cfg.get("history") if isinstance(cfg.get("history"), list) else []
    li = 0
    for step, h in enumerate(entries):
        if not isinstance(h, dict):
            continue
        empty = bool(h.get("empty_layer"))
        diff = chain = None
        size = 0
        if not empty:
            if li < len(diff_ids):
                diff, chain = diff_ids[li], chains[li]
                layer = layers.get(chain)
                size = layer["size_bytes"] if layer and layer["size_bytes"] is not None else None
            li += 1
        store.history.append({
            "image_id": image_id, "step": step, "created_at": parse_time(h.get("created")),
            "created_raw": h.get("created"), "created_by": h.get("created_by"),
            "author": h.get("author") or None, "comment": h.get("comment") or None,
            "empty_layer": empty, "diff_id": diff, "chain_id": chain, "layer_size_bytes": size,
        })
    if entries and li != len(diff_ids):
        view.issues.add("json.unexpected", f"image {image_id[7:19]}: {li} non-empty history "
                        f"entries for {len(diff_ids)} layers", path=rel, severity="info")


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """``repo:tag`` / ``repo@digest`` → (repository, tag, digest)."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, None, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:], None
    return ref, None, None


def _parse_tags(view: RootView, base: str, store: ImageStore) -> None:
    rel = f"{base}/repositories.json"
    doc = view.json(rel, "repositories.json")
    if doc is None:
        return
    repos = doc.get("Repositories") if isinstance(doc, dict) else None
    if not isinstance(repos, dict):
        view.issues.add("json.unexpected", f"{rel}: no 'Repositories' object", path=rel)
        return
    known = {i["image_id"] for i in store.images}
    for repo_name, refs in repos.items():
        if not isinstance(refs, dict):
            continue
        for ref, image_id in refs.items():
            repo, tag, digest = split_reference(ref)
            store.tags.append({"image_id": image_id, "repository": repo, "tag": tag,
                               "digest": digest, "reference": ref,
                               "image_present": image_id in known})
            if image_id not in known:
                view.issues.add("image.missing", f"{ref} points at image {str(image_id)[7:19]}, "
                                "which is not in the snapshot", path=rel)
