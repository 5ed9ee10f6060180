"""The snapshot as one ``networkx.DiGraph``: images, layers, directories, containers, volumes.

Node ids are ``"<kind>:<id>"`` (``image:sha256:…``, ``layer:sha256:…`` (chain id),
``dir:<driver>/<dir id>``, ``container:<id>``, ``volume:<name>``,
``buildcache:<id>``); every node has ``kind`` and ``label`` attributes plus the
sizes reports need. Edges point from the user to what it uses and carry a
``kind``:

==================  ===========================================
``parent``          image → parent image (imagedb metadata)
``top_layer``       image → its top layer
``parent_layer``    layer → parent layer
``stored_in``       layer → its driver directory
``created_from``    container → image
``rw_dir``          container → RW layer directory
``init_dir``        container → init layer directory
``mounts``          container → volume
``build_parent``    build-cache record → parent record
==================  ===========================================

The graph round-trips through ``networkx.node_link_data`` (see :func:`to_json`).
"""

from __future__ import annotations

import json
from typing import Any

import networkx as nx
import pandas as pd


def _v(value: Any) -> Any:
    """A table cell as a plain JSON-able value (NA → None)."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def build_graph(snap: Any) -> nx.DiGraph:
    """Build the graph of a snapshot from its tables."""
    g = nx.DiGraph()
    t = snap.tables
    tags: dict[str, list[str]] = {}
    for image_id, ref in zip(t["image_tags"]["image_id"], t["image_tags"]["reference"]):
        tags.setdefault(image_id, []).append(ref)
    for r in t["layer_dirs"].itertuples():
        g.add_node(f"dir:{r.driver}/{r.dir_id}", kind="layer_dir", label=str(r.dir_id)[:12],
                   driver=r.driver, role=_v(r.role), bytes=_v(r.content_bytes), files=_v(r.files),
                   path=r.path)
    for r in t["layers"].itertuples():
        if r.removing:
            continue
        node = f"layer:{r.chain_id}"
        g.add_node(node, kind="layer", label=r.chain_id[7:19], diff_id=_v(r.diff_id),
                   bytes=_v(r.size_bytes), cache_id=_v(r.cache_id))
    driver = (snap.meta.get("driver") or "").split(",")[0]
    for r in t["layers"].itertuples():
        if r.removing:
            continue
        node = f"layer:{r.chain_id}"
        if _v(r.parent_chain_id):
            g.add_edge(node, f"layer:{r.parent_chain_id}", kind="parent_layer")
        if _v(r.cache_id) and g.has_node(f"dir:{driver}/{r.cache_id}"):
            g.add_edge(node, f"dir:{driver}/{r.cache_id}", kind="stored_in")
    for r in t["images"].itertuples():
        node = f"image:{r.image_id}"
        names = sorted(tags.get(r.image_id, []))
        g.add_node(node, kind="image", label=names[0] if names else r.image_id[7:19],
                   tags=names, bytes=_v(r.size_bytes), created=_v(r.created_at),
                   layers=_v(r.layer_count))
    for r in t["images"].itertuples():
        node = f"image:{r.image_id}"
        if _v(r.parent_id) and g.has_node(f"image:{r.parent_id}"):
            g.add_edge(node, f"image:{r.parent_id}", kind="parent")
        if _v(r.top_chain_id):
            g.add_edge(node, f"layer:{r.top_chain_id}", kind="top_layer")
    for r in t["volumes"].itertuples():
        g.add_node(f"volume:{r.name}", kind="volume", label=r.name[:24], bytes=_v(r.size_bytes),
                   anonymous=_v(r.anonymous))
    for r in t["containers"].itertuples():
        node = f"container:{r.container_id}"
        g.add_node(node, kind="container", label=r.name, status=_v(r.status),
                   bytes=_v(r.size_rw_bytes))
        if _v(r.image_id):
            g.add_edge(node, f"image:{r.image_id}", kind="created_from")
        drv = _v(r.driver) or driver
        if _v(r.mount_id):
            g.add_edge(node, f"dir:{drv}/{r.mount_id}", kind="rw_dir")
        if _v(r.init_id):
            g.add_edge(node, f"dir:{drv}/{r.init_id}", kind="init_dir")
    for r in t["container_mounts"].itertuples():
        if _v(r.name) and g.has_node(f"volume:{r.name}"):
            g.add_edge(f"container:{r.container_id}", f"volume:{r.name}", kind="mounts")
    if "build_cache" in t:
        for r in t["build_cache"].to_dict("records"):
            rid = _v(r.get("cache_id"))
            if rid is None:
                continue
            g.add_node(f"buildcache:{rid}", kind="build_cache", label=str(rid)[:12],
                       bytes=_v(r.get("size_bytes")))
            parents = _v(r.get("parent_id"))  # merge and diff records have several
            for parent in (str(parents).split(",") if parents else []):
                g.add_edge(f"buildcache:{rid}", f"buildcache:{parent}", kind="build_parent")
    for _, data in g.nodes(data=True):  # nodes only referenced by edges (missing objects)
        data.setdefault("kind", "missing")
        data.setdefault("label", "?")
    return g


def image_layers(g: nx.DiGraph, image_id: str) -> list[str]:
    """Chain ids of an image's layers, bottom to top."""
    top = [v for _, v, k in g.out_edges(f"image:{image_id}", data="kind") if k == "top_layer"]
    out: list[str] = []
    node = top[0] if top else None
    while node is not None and node not in out:
        out.append(node)
        parents = [v for _, v, k in g.out_edges(node, data="kind") if k == "parent_layer"]
        node = parents[0] if parents else None
    return [n[len("layer:"):] for n in reversed(out)]


def layer_users(g: nx.DiGraph, chain_id: str) -> dict[str, list[str]]:
    """Images whose chain includes the layer, and containers created from those images."""
    images = set()
    for node in nx.ancestors(g, f"layer:{chain_id}") if g.has_node(f"layer:{chain_id}") else ():
        if g.nodes[node]["kind"] == "image":
            images.add(node)
    containers = {u for img in images for u, _, k in g.in_edges(img, data="kind")
                  if k == "created_from"}
    return {"images": sorted(n[len("image:"):] for n in images),
            "containers": sorted(n[len("container:"):] for n in containers)}


def freed_if_deleted(g: nx.DiGraph, image_id: str, keep: set[str] | None = None) -> int:
    """Bytes of layers only this image (among ``keep`` images, default all others) uses."""
    mine = set(image_layers(g, image_id))
    others = keep if keep is not None else {
        n[len("image:"):] for n, d in g.nodes(data="kind") if d == "image"} - {image_id}
    used = set()
    for other in others:
        used.update(image_layers(g, other))
    return sum(int(g.nodes[f"layer:{c}"].get("bytes") or 0) for c in mine - used)


def layer_tree(g: nx.DiGraph) -> list[dict[str, Any]]:
    """Layers as nested ``{"chain_id", "bytes", "images", "children": [...]}``, roots first."""
    children: dict[str, list[str]] = {}
    roots = []
    for node, kind in g.nodes(data="kind"):
        if kind != "layer":
            continue
        parents = [v for _, v, k in g.out_edges(node, data="kind") if k == "parent_layer"]
        if parents:
            children.setdefault(parents[0], []).append(node)
        else:
            roots.append(node)
    tops: dict[str, list[str]] = {}
    for u, v, k in g.edges(data="kind"):
        if k == "top_layer":
            tops.setdefault(v, []).append(g.nodes[u]["label"])

    def walk(node: str, depth: int = 0) -> dict[str, Any]:
        kids = sorted(children.get(node, [])) if depth < 200 else []
        return {"chain_id": node[len("layer:"):], "bytes": g.nodes[node].get("bytes"),
                "images": sorted(tops.get(node, [])),
                "children": [walk(k, depth + 1) for k in kids]}

    return [walk(r) for r in sorted(roots)]


def to_json(g: nx.DiGraph) -> str:
    """The graph as node-link JSON (``networkx.node_link_graph`` reads it back)."""
    return json.dumps(nx.node_link_data(g, edges="edges"), default=str, sort_keys=True)


def from_json(text: str) -> nx.DiGraph:
    """Inverse of :func:`to_json`."""
    return nx.node_link_graph(json.loads(text), directed=True, edges="edges")
