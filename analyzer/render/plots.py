"""Matplotlib figures shared by the HTML report and the notebooks.

Every function returns a :class:`matplotlib.figure.Figure` built without
``pyplot`` (no global figure registry, no backend switch, nothing left open),
so it is safe in a server, a test or a notebook. :func:`to_svg` turns a figure
into inline SVG text for an HTML page: no XML prolog, no metadata, no
namespace URLs, text kept as text (``svg.fonttype = 'none'``, the browser's own
sans-serif font) and element ids prefixed so several figures can share a page.

Figures:

* :func:`storage_figure` — where the bytes are (images shared/unique, containers'
  RW layers, volumes, logs, build cache, orphans), from :func:`storage_breakdown`.
* :func:`dag_figure` — the layer tree with images attached to their top layers;
  linear runs of layers are collapsed and at most ``max_images`` images are drawn
  (the rest are counted, "+K more").
* :func:`waste_figure` — per image: size (shared/unique) next to bytes wasted by
  later layers.
* :func:`duplicates_figure` — the contents stored most wastefully.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import matplotlib
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from analyzer.analyses import storage
from analyzer.model.graph import layer_tree
from analyzer.render.tables import human_size

#: colours (colour-blind safe, Okabe–Ito)
COLORS = {
    "shared": "#0072B2", "unique": "#E69F00", "unused": "#999999", "containers": "#009E73",
    "volumes": "#56B4E9", "logs": "#CC79A7", "build_cache": "#F0E442", "orphans": "#D55E00",
    "wasted": "#D55E00", "image": "#333333", "more": "#777777",
    "init": "#8FD3B6", "snapshots": "#BBBBBB", "blobs": "#4B3F72",
}
#: where a containerd root keeps its snapshots and its blobs (files-table path parts)
SNAPSHOTTER_MARK = "io.containerd.snapshotter.v1."
CONTENT_BLOBS = "io.containerd.content.v1.content/blobs/"
#: layer_dirs roles that have their own row in the breakdown
_OWN_ROWS = ("image-layer", "container-rw", "container-init", "orphan")


def containerd_store(snap: Any) -> bool:
    """True when the image store the daemon used is containerd's (image layers are
    snapshots of a containerd snapshotter)."""
    dirs = snap.layer_dirs
    if dirs.empty:
        return str(snap.meta.get("image_store") or "") == "containerd"
    roles = dirs["role"].astype("string") if "role" in dirs else None
    paths = dirs["content_path"].astype("string")
    hit = paths.str.contains(SNAPSHOTTER_MARK, regex=False).fillna(False)
    if roles is not None:
        hit &= (roles == "image-layer").fillna(False)
    return bool(hit.any())

_RC = {"svg.fonttype": "none", "font.size": 9, "font.family": "sans-serif",
       "axes.spines.top": False, "axes.spines.right": False}


def _label(text: Any, limit: int = 48) -> str:
    """Evidence text made safe for a matplotlib label: one line, bounded, no mathtext."""
    s = "" if text is None else str(text)
    s = "".join(c if c.isprintable() else "?" for c in s)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence only matplotlib's missing-glyph warnings (evidence may hold any script)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
        warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
        yield


def _new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


# -- SVG ------------------------------------------------------------------------------
_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_SVG_COUNTER = [0]


def to_svg(fig: Figure, id_prefix: str | None = None, html: bool = True,
           scale: float = 1.0) -> str:
    """The figure as SVG text: by default for inline use in an HTML page (no URL at all).

    Args:
        fig: the figure.
        id_prefix: prefix for every element id (default: a per-process counter),
            so that several figures on one page do not share ids.
        html: drop the namespace declarations (HTML's parser does not need them).
            Pass ``False`` for a well-formed XML document (``IPython.display.SVG``,
            a ``.svg`` file); it keeps the ``xmlns`` attributes, which are names,
            not URLs anything fetches.
        scale: multiply the drawn width and height (the viewBox is unchanged).
    """
    if id_prefix is None:
        _SVG_COUNTER[0] += 1
        id_prefix = f"fig{_SVG_COUNTER[0]}"
    buf = io.StringIO()
    with _quiet(), matplotlib.rc_context({**_RC, "svg.hashsalt": id_prefix}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1), count=1)
    if html:
        text = _XMLNS.sub("", text)
    text = re.sub(r'\bid="', f'id="{id_prefix}-', text)
    text = text.replace("url(#", f"url(#{id_prefix}-")
    text = re.sub(r'(\bxlink:href|\bhref)="#', rf'\1="#{id_prefix}-', text)
    if scale != 1.0:
        head, rest = text.split(">", 1)  # the <svg ...> opening tag
        head = re.sub(r'\b(width|height)="([\d.]+)pt"',
                      lambda m: f'{m.group(1)}="{float(m.group(2)) * scale:.1f}pt"', head)
        text = head + ">" + rest
    return text.replace("<svg ", '<svg role="img" class="chart" ', 1).strip() + "\n"


# -- storage breakdown -----------------------------------------------------------------
def storage_breakdown(snap: Any, df_doc: dict[str, Any] | None = None,
                      layer_usage: pd.DataFrame | None = None,
                      orphans: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Where the bytes of the data-root are, by category.

    Columns ``category``, ``bytes``, ``reclaimable_bytes``, ``color``. Layer bytes
    come from :func:`analyzer.analyses.storage.layer_usage` (shared = used by more
    than one listed image; images shared + unique = ``LayersSize`` of
    ``GET /system/df``); RW layers and volumes as the daemon counts them; logs,
    orphans from :func:`~analyzer.analyses.storage.orphans_and_growth`; build cache
    = the sum of the listed records (``BuilderSize`` at API 1.41). In the containerd store ``LayersSize`` is the usage of every
    snapshot, so two more rows make the layer rows add up to it again: the containers'
    ``-init`` snapshots and the other snapshots (BuildKit's, parents, views); a third
    gives the content store's blobs (compressed layers, manifests, configs), which
    ``docker system df`` does not count. Reclaimable: layers no container's image uses, stopped
    containers' RW layers, volumes no container mounts, every log and orphan byte.
    ``layer_usage`` and ``orphans`` may be passed when already computed.
    """
    lu = storage.layer_usage(snap) if layer_usage is None else layer_usage
    og = storage.orphans_and_growth(snap) if orphans is None else orphans
    size = lu["size_bytes"].fillna(0).astype("int64")
    shared = int(size[lu["sharing"] == "shared"].sum())
    unique = int(size[lu["sharing"] == "unique"].sum())
    unused = int(size[lu["sharing"] == "unused"].sum())
    c = snap.containers
    rw = c["size_rw_bytes"].fillna(0).astype("int64")
    stopped_rw = int(og["stopped_containers"]["size_rw_bytes"].fillna(0).sum())
    vols = snap.volumes["size_bytes"].fillna(0).astype("int64")
    unused_vols = int(og["unused_volumes"]["size_bytes"].fillna(0).sum())
    logs = int(og["logs"]["log_bytes"].fillna(0).sum())
    orphans = int(og["orphan_dirs"]["content_bytes"].fillna(0).sum())
    # API 1.45 documents carry no BuilderSize: sum the listed records like 1.41 did
    builder = int(sum(int(r.get("Size") or 0) for r in (df_doc or {}).get("BuildCache") or []))
    in_use = lu["containers"] > 0  # layers of images some container was created from
    rows = [
        ("Images: shared layers", shared,
         int(size[(lu["sharing"] == "shared") & ~in_use].sum()), "shared"),
        ("Images: unique layers", unique,
         int(size[(lu["sharing"] == "unique") & ~in_use].sum()), "unique"),
        ("Layers no listed image uses", unused, unused, "unused"),
        ("Containers: RW layers", int(rw.sum()), stopped_rw, "containers"),
        ("Volumes", int(vols.sum()), unused_vols, "volumes"),
        ("Container logs", logs, logs, "logs"),
        ("Build cache", builder, builder, "build_cache"),
        ("Orphan layer directories", orphans, orphans, "orphans"),
    ]
    if containerd_store(snap):
        dirs = snap.layer_dirs
        role = dirs["role"].astype("string").fillna("")
        nbytes = pd.to_numeric(dirs["content_bytes"], errors="coerce").fillna(0).astype("int64")
        init = int(nbytes[role == "container-init"].sum())
        other = int(nbytes[~role.isin(_OWN_ROWS)].sum())
        files = snap.files
        path = files["path"].astype("string")
        blob = (path.str.contains(CONTENT_BLOBS, regex=False).fillna(False)
                & (files["kind"].astype("string") == "file").fillna(False)).to_numpy(bool)
        blobs = int(pd.to_numeric(files.loc[blob, "size"], errors="coerce").fillna(0).sum())
        stopped_init = _stopped_init_bytes(snap, og, dirs, nbytes)
        rows[4:4] = [("Containers: init snapshots", init, stopped_init, "init"),
                     ("Other snapshots (BuildKit, parents, views)", other, 0, "snapshots")]
        rows.append(("Content store blobs", blobs, 0, "blobs"))
    return pd.DataFrame([{"category": r[0], "bytes": r[1], "reclaimable_bytes": r[2],
                          "color": COLORS[r[3]]} for r in rows])


def _stopped_init_bytes(snap: Any, og: dict[str, pd.DataFrame], dirs: pd.DataFrame,
                        nbytes: pd.Series) -> int:
    """Bytes of the ``-init`` snapshots of stopped containers (removed with them)."""
    stopped = set(og["stopped_containers"]["container_id"].astype(str))
    if not stopped or "owner" not in dirs:
        return 0
    owner = dirs["owner"].astype("string").fillna("")
    mask = (dirs["role"].astype("string") == "container-init").fillna(False) & owner.isin(stopped)
    return int(nbytes[mask.to_numpy(bool)].sum())


def storage_figure(breakdown: pd.DataFrame) -> Figure:
    """Horizontal bars: bytes per category, the reclaimable part hatched."""
    with _quiet():
        fig = _new_figure(9.0, 0.3 * len(breakdown) + 0.9)
        ax = fig.add_subplot()
        ys = list(range(len(breakdown)))[::-1]
        total = max(1, int(breakdown["bytes"].sum()))
        ax.barh(ys, breakdown["bytes"], color=breakdown["color"], edgecolor="#333333",
                linewidth=0.4)
        ax.barh(ys, breakdown["reclaimable_bytes"], color="none", edgecolor="#222222",
                hatch="////", linewidth=0)
        ax.set_yticks(ys, [_label(c) for c in breakdown["category"]])
        vmax = max(1, int(breakdown["bytes"].max()))
        for y, b, r in zip(ys, breakdown["bytes"], breakdown["reclaimable_bytes"]):
            text = f"{human_size(b)} ({100 * b / total:.1f}%)"
            if r:
                text += f", {human_size(r)} reclaimable"
            ax.text(b + vmax * 0.01, y, text, va="center", fontsize=8)
        ax.set_xlim(0, vmax * 1.45)
        ax.xaxis.set_major_formatter(lambda v, _pos: human_size(v) if v >= 0 else "")
        ax.set_title(f"Where the bytes are: {human_size(total)} in total "
                     "(hatched: reclaimable)", loc="left", fontsize=10)
        return fig


# -- the layer DAG ------------------------------------------------------------------------
@dataclass
class _Node:
    """One drawn node: a run of layers (collapsed), an image, or a "+K more" stub."""

    kind: str  # "layers", "image", "more"
    label: str
    bytes: int = 0
    count: int = 1
    sharing: str = "unique"
    children: list["_Node"] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0


@dataclass
class DagSummary:
    """What the DAG figure drew and what it left out."""

    layers: int = 0
    images: int = 0
    drawn_images: int = 0
    hidden_images: int = 0
    intermediate_images: int = 0
    drawn_nodes: int = 0
    max_depth: int = 0


def _image_nodes(snap: Any) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    """Listed images by top chain id, with label, size and container count."""
    g = snap.graph
    listed = storage.listed_images(snap)
    per_image = snap.containers["image_id"].value_counts().to_dict()
    by_top: dict[str, list[dict[str, Any]]] = {}
    for u, v, k in g.edges(data="kind"):
        if k != "top_layer":
            continue
        image_id = u[len("image:"):]
        if image_id not in listed:
            continue
        data = g.nodes[u]
        tags = data.get("tags") or []
        by_top.setdefault(v[len("layer:"):], []).append({
            "id": image_id, "label": ", ".join(tags) if tags else image_id.split(":")[-1][:12],
            "bytes": int(data.get("bytes") or 0), "containers": int(per_image.get(image_id, 0)),
            "tagged": bool(tags)})
    return by_top, listed


def dag_figure(snap: Any, max_images: int = 60,
               layer_usage: pd.DataFrame | None = None) -> tuple[Figure, DagSummary]:
    """The image/layer DAG: layers as a tree (roots left), images on the right.

    Linear runs of layers that no drawn image ends on are collapsed into one node
    ("k layers"); node area grows with bytes; colour tells whether the layer is
    shared by several listed images, unique to one, or used by none. At most
    ``max_images`` listed images are drawn (those with containers first, then the
    largest); the others are counted in grey "+K more" nodes at the branch they
    hang from. Intermediate (build) images are not drawn, only counted.
    Returns the figure and a :class:`DagSummary` of what was drawn.
    """
    tree = layer_tree(snap.graph)
    by_top, listed = _image_nodes(snap)
    lu = storage.layer_usage(snap) if layer_usage is None else layer_usage
    sharing = dict(zip(lu["chain_id"], lu["sharing"]))
    all_imgs = sorted((img for imgs in by_top.values() for img in imgs),
                      key=lambda i: (-(i["containers"] > 0), -i["tagged"], -i["bytes"], i["label"]))
    drawn = {i["id"] for i in all_imgs[:max_images]}
    summary = DagSummary(images=len(listed), drawn_images=len(drawn),
                         hidden_images=len(all_imgs) - len(drawn),
                         intermediate_images=int(len(snap.images)) - len(listed))

    # which layers lead to a drawn image (memoised over the tree)
    def leads(node: dict[str, Any]) -> bool:
        mine = any(i["id"] in drawn for i in by_top.get(node["chain_id"], []))
        kids = [leads(k) for k in node["children"]]
        node["_leads"] = mine or any(kids)
        return node["_leads"]

    def hidden_in(node: dict[str, Any]) -> tuple[int, int]:
        """(listed images, layers) in a subtree that is not drawn."""
        imgs = len(by_top.get(node["chain_id"], []))
        layers = 1
        for k in node["children"]:
            i, n = hidden_in(k)
            imgs, layers = imgs + i, layers + n
        return imgs, layers

    def build(node: dict[str, Any], depth: int = 0) -> _Node:
        summary.layers += 1
        chain = node["chain_id"]
        run_bytes, run_count = int(node["bytes"] or 0), 1
        share = sharing.get(chain, "unused")
        while True:  # collapse a linear run with nothing attached
            here = by_top.get(node["chain_id"], [])
            kids = node["children"]
            if here or len(kids) != 1 or not kids[0]["_leads"]:
                break
            node = kids[0]
            summary.layers += 1
            run_bytes += int(node["bytes"] or 0)
            run_count += 1
        label = human_size(run_bytes) if run_count == 1 else f"{run_count} layers · {human_size(run_bytes)}"
        out = _Node("layers", label, run_bytes, run_count, share)
        more_imgs = more_layers = 0
        for img in by_top.get(node["chain_id"], []):
            if img["id"] in drawn:
                text = img["label"] + (f"  [{img['containers']} ctr]" if img["containers"] else "")
                out.children.append(_Node("image", _label(text, 56), img["bytes"]))
            else:
                more_imgs += 1
        for kid in node["children"]:
            if kid["_leads"]:
                out.children.append(build(kid, depth + 1))
            else:
                i, n = hidden_in(kid)
                summary.layers += n
                more_imgs, more_layers = more_imgs + i, more_layers + n
        if more_imgs or more_layers:
            text = f"+{more_imgs} more image{'s' if more_imgs != 1 else ''}"
            if more_layers:
                text += f" on {more_layers} more layer{'s' if more_layers != 1 else ''}"
            out.children.append(_Node("more", text, count=more_imgs))
        return out

    roots: list[_Node] = []
    other_imgs = other_layers = 0
    for root in tree:
        if leads(root):
            roots.append(build(root))
        else:
            i, n = hidden_in(root)
            summary.layers += n
            other_imgs, other_layers = other_imgs + i, other_layers + n
    if other_imgs or other_layers:
        roots.append(_Node("more", f"+{other_imgs} more images on {other_layers} more layers "
                                   "(other base layers)", count=other_imgs))
    return _draw_dag(roots, summary), summary


def _area(nbytes: int, biggest: int) -> float:
    """Marker area (points²) of a layer node: grows with the square root of its bytes."""
    return 16 + 160 * math.sqrt(max(nbytes, 0) / max(biggest, 1))


def _walk(nodes: list[_Node]) -> Iterator[_Node]:
    for n in nodes:
        yield n
        yield from _walk(n.children)


def _draw_dag(roots: list[_Node], summary: DagSummary) -> Figure:
    # layout: depth → x for layer nodes; images and stubs in the right-hand column
    row = [0]

    def place(node: _Node, depth: int) -> None:
        node.x = depth
        layer_kids = [k for k in node.children if k.kind == "layers"]
        leaf_kids = [k for k in node.children if k.kind != "layers"]
        for k in leaf_kids + layer_kids:
            if k.kind == "layers":
                place(k, depth + 1)
            else:
                k.y = row[0]
                row[0] += 1
        if node.kind == "layers":
            ys = [k.y for k in node.children]
            if ys:
                node.y = (min(ys) + max(ys)) / 2
            else:
                node.y = row[0]
                row[0] += 1
        summary.max_depth = max(summary.max_depth, depth)

    for r in roots:
        if r.kind == "layers":
            place(r, 0)
        else:
            r.y = row[0]
            row[0] += 1
    rows = max(1, row[0])
    img_x = summary.max_depth + 1.0
    for n in _walk(roots):
        if n.kind != "layers":
            n.x = img_x
    summary.drawn_nodes = sum(1 for _ in _walk(roots))

    with _quiet():
        width = min(16.0, 5.5 + 1.1 * (summary.max_depth + 1))
        height = min(40.0, 1.4 + 0.26 * rows)
        with matplotlib.rc_context(_RC):  # fixed margins: constrained layout is slow here
            fig = Figure(figsize=(width, height))
        ax = fig.add_axes((0.01, 0.2 / height, 0.98, 1 - 0.62 / height))
        ax.set_axis_off()
        nodes = list(_walk(roots))
        biggest = max([n.bytes for n in nodes if n.kind == "layers"] or [1]) or 1
        tree_lines, image_lines = [], []
        for n in nodes:
            if n.kind != "layers":
                continue
            for k in n.children:
                if k.kind == "layers":
                    xm = (n.x + k.x) / 2
                    tree_lines.append([(n.x, n.y), (xm, n.y), (xm, k.y), (k.x, k.y)])
                else:
                    image_lines.append([(n.x, n.y), (n.x + 0.35, k.y), (k.x, k.y)])
        ax.add_collection(LineCollection(tree_lines, colors="#888888", linewidths=0.8, zorder=1))
        ax.add_collection(LineCollection(image_lines, colors="#BBBBBB", linewidths=0.7,
                                         linestyles=[(0, (2, 2))], zorder=1))
        groups: dict[tuple[str, str], list[_Node]] = {}
        for n in nodes:
            if n.kind == "layers":
                groups.setdefault(("s" if n.count > 1 else "o",
                                   COLORS.get(n.sharing, COLORS["unused"])), []).append(n)
        for (marker, color), members in groups.items():
            ax.scatter([n.x for n in members], [n.y for n in members],
                       s=[_area(n.bytes, biggest) for n in members],
                       color=color, edgecolor="#222222", linewidth=0.5, zorder=3, marker=marker)
        for kind, marker in (("image", "D"), ("more", "o")):
            members = [n for n in nodes if n.kind == kind]
            if members:
                ax.scatter([n.x for n in members], [n.y for n in members], s=18, marker=marker,
                           color=COLORS[kind], zorder=3)
        for n in nodes:
            if n.kind == "layers":
                r = math.sqrt(_area(n.bytes, biggest)) / 2
                ax.annotate(n.label, (n.x, n.y), xytext=(-r - 1, 1.5), textcoords="offset points",
                            ha="right", va="bottom", fontsize=7, color="#333333", zorder=4)
            else:
                ax.text(n.x + 0.12, n.y, n.label, ha="left", va="center",
                        fontsize=8 if n.kind == "image" else 7.5,
                        color=COLORS[n.kind], style="normal" if n.kind == "image" else "italic",
                        zorder=4)
        ax.set_xlim(-0.6, img_x + 3.2)
        ax.set_ylim(rows - 0.2, -1.2)
        handles = [ax.scatter([], [], s=50, color=COLORS[k], edgecolor="#222222", linewidth=0.5,
                              label=t) for k, t in (("shared", "layer shared by several images"),
                                                    ("unique", "layer of one image"),
                                                    ("unused", "layer no listed image uses"))]
        handles.append(ax.scatter([], [], s=50, marker="s", color="#ffffff", edgecolor="#222222",
                                  linewidth=0.5, label="collapsed run of layers"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 1.0), ncol=4,
                  fontsize=7.5, frameon=False, borderaxespad=0)
        title = (f"{summary.layers} layers, {summary.images} images "
                 f"({summary.drawn_images} drawn")
        if summary.hidden_images:
            title += f", +{summary.hidden_images} more not drawn"
        title += f"; {summary.intermediate_images} intermediate images not drawn)"
        ax.set_title(title, loc="left", fontsize=10)
        return fig


def efficiency_text(efficiency: Any, wasted: Any = None) -> str:
    """An efficiency (0..1) as a percentage that never rounds real waste to 100%."""
    if efficiency is None or pd.isna(efficiency):
        return "n/a"
    text = f"{100 * float(efficiency):.2f}%"
    if text == "100.00%" and wasted is not None and not pd.isna(wasted) and wasted > 0:
        return ">99.99%"
    return text


# -- per-image size and waste ------------------------------------------------------------
def waste_figure(usage: pd.DataFrame, waste: pd.DataFrame, top: int = 30) -> Figure:
    """Per image (the ``top`` largest): size split shared/unique, and wasted bytes.

    ``usage`` is :func:`~analyzer.analyses.storage.image_usage`, ``waste`` is
    :func:`~analyzer.analyses.storage.image_waste`.
    """
    merged = usage.merge(waste[["image_id", "wasted_bytes", "efficiency"]], on="image_id",
                         how="left").head(top)
    with _quiet():
        n = max(1, len(merged))
        fig = _new_figure(10, 1.3 + 0.3 * n)
        left, right = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
        ys = list(range(len(merged)))[::-1]
        labels = [_label(t if t != "<none>" else i.split(":")[-1][:12], 36)
                  for t, i in zip(merged["tags"], merged["image_id"])]
        left.barh(ys, merged["shared_bytes"], color=COLORS["shared"], label="shared")
        left.barh(ys, merged["unique_bytes"], left=merged["shared_bytes"], color=COLORS["unique"],
                  label="unique")
        left.set_yticks(ys, labels)
        left.xaxis.set_major_formatter(lambda v, _pos: human_size(v) if v >= 0 else "")
        left.set_title("Size (shared / unique layers)", loc="left", fontsize=10)
        fig.legend(*left.get_legend_handles_labels(), loc="outside lower left", ncol=2,
                   fontsize=8, frameon=False)
        wasted = pd.to_numeric(merged["wasted_bytes"], errors="coerce")
        if wasted.notna().any():
            right.barh(ys, wasted.fillna(0), color=COLORS["wasted"])
            vmax = max(1.0, float(wasted.max()))
            for y, w, e in zip(ys, wasted, pd.to_numeric(merged["efficiency"], errors="coerce")):
                text = "n/a" if pd.isna(w) else f"{human_size(w)} · {efficiency_text(e, w)} efficient"
                right.text((0 if pd.isna(w) else w) + vmax * 0.02, y, text, va="center", fontsize=7.5)
            right.set_xlim(0, vmax * 1.9)
            right.xaxis.set_major_formatter(lambda v, _pos: human_size(v) if v >= 0 else "")
        else:
            right.text(0.5, 0.5, "not measurable for this storage driver\n(full-copy layers)",
                       ha="center", va="center", transform=right.transAxes, color="#555555")
            right.set_xticks([])
        right.set_title("Wasted by later layers", loc="left", fontsize=10)
        if len(usage) > top:
            fig.suptitle(f"{top} largest of {len(usage)} images (+{len(usage) - top} more)",
                         fontsize=9, x=0.01, ha="left")
        return fig


def duplicates_figure(dups: pd.DataFrame, top: int = 15) -> Figure:
    """The contents stored most wastefully (bytes beyond the first copy)."""
    d = dups.head(top)
    with _quiet():
        fig = _new_figure(8.5, 1.2 + 0.3 * max(1, len(d)))
        ax = fig.add_subplot()
        if d.empty:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no content is stored twice", ha="center", va="center",
                    transform=ax.transAxes, color="#555555")
            return fig
        ys = list(range(len(d)))[::-1]
        labels = []
        for paths, sha in zip(d["example_paths"], d["sha256"]):
            first = (list(paths) or [""])[0] if isinstance(paths, (list, tuple)) else ""
            short = str(sha).split(":", 1)[-1][:8]
            labels.append(_label(first.rsplit("/", 1)[-1] or short, 30) + f" ({short})")
        ax.barh(ys, d["wasted_bytes"], color=COLORS["orphans"])
        vmax = max(1, int(d["wasted_bytes"].max()))
        for y, w, c, s in zip(ys, d["wasted_bytes"], d["copies"], d["size"]):
            ax.text(w + vmax * 0.01, y, f"{human_size(w)} ({c} copies of {human_size(s)})",
                    va="center", fontsize=7.5)
        ax.set_xlim(0, vmax * 1.5)
        ax.set_yticks(ys, labels)
        ax.xaxis.set_major_formatter(lambda v, _pos: human_size(v) if v >= 0 else "")
        ax.set_title("Top duplicated contents: bytes beyond the first copy", loc="left",
                     fontsize=10)
        return fig
