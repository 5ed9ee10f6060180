"""Merged filesystem views of images and containers, built in memory from the index.

No kernel mount and no root: the layer stack of an image or a container is applied
bottom to top over the ``files`` index, the way the storage driver would present it.

* overlay2 / overlay (v1) upper dirs: a character device 0:0 deletes the path (and
  everything under it) from the layers below; a directory with the xattr
  ``trusted.overlay.opaque`` (or ``user.overlay.opaque``) ``= y`` hides the lower
  directory's contents.
* aufs: a file ``.wh.<name>`` deletes ``<name>``; ``.wh..wh..opq`` makes its directory
  opaque; the branch-internal ``.wh..wh.*`` entries (``.wh..wh.aufs``, ``.wh..wh.plnk/``,
  ``.wh..wh.orph/``) are not part of the view.
* fuse-overlayfs: layers are unpacked with aufs-style whiteouts and the container's
  upper dir may hold kernel-style ones: both are honoured.
* vfs / btrfs (full copies) and overlay v1 image layers (``root/`` is a complete tree):
  the top directory *is* the tree.

A container's view is its image layers + its ``-init`` layer + its RW layer, taken
from the driver's own mount metadata (overlay2 ``lower``, aufs ``layers/<id>``,
overlay ``lower-id``) like the daemon mounts it, with the image's layerdb chain as the
fallback. Each visible entry keeps the layer it comes from (``layer``: the layer's
chain id, else its directory id; ``init``; ``rw``) and the member holding it
(``member_path``, relative to the data-root).

Not modelled (kernel features the index cannot show): overlay ``redirect_dir`` and
``metacopy`` xattrs (a renamed directory or a metadata-only copy-up is shown as the
upper entry alone), and overlayfs ``xwhiteouts``.

References:
    ``shared/docs/docker-root-format.md`` §4; moby v20.10.24
    ``daemon/graphdriver/overlay2/overlay.go`` (``Get``, ``getLowerDirs``),
    ``daemon/graphdriver/aufs/aufs.go`` (``getParentLayerPaths``),
    ``daemon/graphdriver/overlay/overlay.go`` (``Create``: ``lower-id``, copied ``upper``),
    ``pkg/archive/whiteouts.go``; Linux ``Documentation/filesystems/overlayfs.rst``.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

import numpy as np
import pandas as pd

from analyzer.errors import UsageError
from analyzer.parsers.containerd import content_folder_regex

#: driver → regex splitting an index path into (content folder, path inside it)
FOLDER_RX: dict[str, str] = {
    "overlay2": r"^(overlay2/[^/]+/diff)(?:/(.*))?$",
    "fuse-overlayfs": r"^(fuse-overlayfs/[^/]+/diff)(?:/(.*))?$",
    "vfs": r"^(vfs/dir/[^/]+)(?:/(.*))?$",
    "btrfs": r"^(btrfs/subvolumes/[^/]+)(?:/(.*))?$",
    "aufs": r"^(aufs/diff/[^/]+)(?:/(.*))?$",
    "overlay": r"^(overlay/[^/]+/(?:root|upper))(?:/(.*))?$",
    # containerd image store: snapshot folders of dockerd's own containerd root, or of a
    # containerd root outside the data-root (shown under @containerd/)
    "overlayfs": content_folder_regex("overlayfs"),
    "native": content_folder_regex("native"),
}
#: driver → whiteout encoding of its layer folders
WHITEOUTS: dict[str, str] = {"overlay2": "overlay", "overlay": "overlay", "aufs": "aufs",
                             "fuse-overlayfs": "both", "vfs": "none", "btrfs": "none",
                             "overlayfs": "overlay", "native": "none"}
#: drivers whose every layer directory is a complete tree
FULL_COPY = ("vfs", "btrfs", "native")
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
AUFS_WH = ".wh."
AUFS_META = ".wh..wh."
AUFS_OPQ = ".wh..wh..opq"
#: symlinks followed while resolving one path (Linux MAXSYMLINKS)
MAX_HOPS = 40

COLUMNS = ["path", "kind", "size", "mode", "uid", "gid", "mtime", "linkname", "devmajor",
           "devminor", "xattrs_json", "sha256", "layer", "member_path"]


@dataclass(frozen=True)
class StackLayer:
    """One folder of a layer stack."""

    label: str  #: chain id (image layers), directory id, "init" or "rw"
    folder: str  #: content folder relative to the data-root
    dir_id: str  #: storage-driver directory name


@dataclass
class Stack:
    """The layers making up an image's or a container's filesystem, bottom first."""

    kind: str  #: "image" or "container"
    ref_id: str  #: image id or container id
    driver: str
    layers: list[StackLayer]
    notes: list[str] = field(default_factory=list)  #: missing folders and fallbacks


@dataclass(slots=True)
class Entry:
    """One visible path of a merged view (metadata as in the ``files`` index)."""

    kind: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    linkname: str | None
    devmajor: int
    devminor: int
    xattrs_json: str | None
    sha256: str | None
    layer: str
    member_path: str | None

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    def xattr(self, name: str) -> str | None:
        """The value of extended attribute ``name`` as the index stores it."""
        if not self.xattrs_json:
            return None
        try:
            return json.loads(self.xattrs_json).get(name)
        except ValueError:
            return None


class Tree:
    """A merged view: path ("/a/b") → :class:`Entry`, with a child index per directory."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.children: dict[str, set[str]] = {}

    def __contains__(self, path: str) -> bool:
        return path in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> Entry | None:
        return self.entries.get(path)

    def names(self, path: str) -> set[str]:
        """Names directly under ``path``."""
        return self.children.get(path, set())

    def remove(self, path: str) -> None:
        """Remove ``path`` and everything under it."""
        if path in self.entries:
            del self.entries[path]
            parent, name = _split(path)
            self.children.get(parent, set()).discard(name)
        self.clear(path)

    def clear(self, path: str) -> None:
        """Remove everything under ``path`` (the entry itself stays)."""
        kids = self.children.pop(path, None)
        if not kids:
            return
        stack = [_join(path, k) for k in kids]
        while stack:
            p = stack.pop()
            self.entries.pop(p, None)
            for k in self.children.pop(p, ()):
                stack.append(_join(p, k))

    def put(self, path: str, entry: Entry) -> None:
        """Set ``path`` (a non-directory replacing a directory hides what was under it)."""
        if not entry.is_dir:
            self.clear(path)
        self.entries[path] = entry
        if path != "/":
            parent, name = _split(path)
            if parent not in self.entries:  # layer folder without its parent's own entry
                self.put(parent, Entry("dir", 0, 0o755, 0, 0, 0, None, 0, 0, None, None,
                                       entry.layer, None))
            self.children.setdefault(parent, set()).add(name)

    def walk(self, top: str = "/") -> Iterator[str]:
        """Paths under ``top`` (included), depth first, names in byte order."""
        stack = [top]
        while stack:
            p = stack.pop()
            if p in self.entries:
                yield p
            for k in sorted(self.names(p), key=_bkey, reverse=True):
                stack.append(_join(p, k))

    def resolve(self, path: str, follow_last: bool = True) -> str | None:
        """``path`` with symlinks resolved inside this view (``None`` if it does not exist).

        Absolute targets restart at this view's root, ``..`` stops at the root: a link
        never leads outside the view, let alone outside the snapshot. At most
        :data:`MAX_HOPS` links are followed.
        """
        hops = 0
        todo = [p for p in path.split("/") if p not in ("", ".")]
        cur = "/"
        while todo:
            part = todo.pop(0)
            if part == "..":
                cur = _split(cur)[0] if cur != "/" else "/"
                continue
            nxt = _join(cur, part)
            ent = self.entries.get(nxt)
            if ent is None:
                return None
            if ent.kind == "symlink" and (todo or follow_last):
                hops += 1
                if hops > MAX_HOPS:
                    raise UsageError(f"too many levels of symbolic links resolving {path}")
                target = ent.linkname or ""
                if target.startswith("/"):
                    cur = "/"
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                continue
            if todo and not ent.is_dir:
                return None
            cur = nxt
        return cur


def _bkey(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else parent + "/" + name


def _split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


# -- the per-snapshot index of layer folders -----------------------------------------
_INDEX: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def _folder_rows(snap: Any, driver: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The files table with an ``inner`` column, and folder → row positions."""
    cache = _INDEX.setdefault(snap, {})
    if driver not in cache:
        files = snap.tables["files"]
        rx = FOLDER_RX.get(driver)
        if rx is None:
            cache[driver] = (files.iloc[0:0].assign(inner=pd.Series([], dtype="string")), {})
        else:
            ext = files["path"].str.extract(rx)
            ext.columns = ["folder", "inner"]
            keep = ext["folder"].notna()
            sub = files[keep].assign(inner=ext.loc[keep, "inner"].fillna(""),
                                     folder=ext.loc[keep, "folder"]).reset_index(drop=True)
            groups = sub.groupby("folder", sort=False).indices
            cache[driver] = (sub, {str(k): v for k, v in groups.items()})
    return cache[driver]


def folder_exists(snap: Any, driver: str, folder: str) -> bool:
    """True if the index holds anything in the content folder ``folder``."""
    return folder in _folder_rows(snap, driver)[1]


# -- stacks ------------------------------------------------------------------------
def _driver(snap: Any, row: pd.Series | None = None) -> str:
    drv = None
    if row is not None and "driver" in row and isinstance(row["driver"], str) and row["driver"]:
        drv = row["driver"]
    if not drv:
        drv = str(snap.meta.get("driver") or "").split(",")[0].strip()
    return drv


def _readable(driver: str) -> None:
    if driver not in FOLDER_RX:
        from analyzer.parsers.drivers import UNREADABLE

        raise UsageError(UNREADABLE.get(driver, f"storage driver {driver!r}: layer contents "
                                                "cannot be read from this snapshot"))


def _chain_labels(snap: Any) -> dict[str, str]:
    """driver directory id → chain id of the image layer stored there."""
    layers = snap.tables["layers"]
    return {str(c): str(ch) for c, ch in zip(layers["cache_id"], layers["chain_id"])
            if isinstance(c, str)}


def _content_folder(snap: Any, driver: str, dir_id: str) -> str:
    dirs = snap.tables["layer_dirs"]
    hit = dirs[(dirs["dir_id"] == dir_id) & (dirs["driver"].astype("string") == driver)]
    if len(hit) and isinstance(hit.iloc[0]["content_path"], str):
        return str(hit.iloc[0]["content_path"])
    return {"overlay2": f"overlay2/{dir_id}/diff", "fuse-overlayfs": f"fuse-overlayfs/{dir_id}/diff",
            "vfs": f"vfs/dir/{dir_id}", "btrfs": f"btrfs/subvolumes/{dir_id}",
            "aufs": f"aufs/diff/{dir_id}", "overlay": f"overlay/{dir_id}/root"}.get(driver, dir_id)


def _dir_row(snap: Any, driver: str, dir_id: str) -> pd.Series | None:
    dirs = snap.tables["layer_dirs"]
    hit = dirs[(dirs["dir_id"] == dir_id) & (dirs["driver"].astype("string") == driver)]
    return hit.iloc[0] if len(hit) else None


def image_chain(snap: Any, image: pd.Series) -> list[tuple[str, str]]:
    """(chain id, directory id) of an image's layers, bottom first (layerdb chain)."""
    layers = snap.tables["layers"].set_index("chain_id")
    out: list[tuple[str, str]] = []
    cur = image.get("top_chain_id")
    seen: set[str] = set()
    while isinstance(cur, str) and cur and cur not in seen:
        seen.add(cur)
        if cur not in layers.index:
            break
        row = layers.loc[cur]
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        out.append((cur, str(row["cache_id"]) if isinstance(row["cache_id"], str) else ""))
        cur = row["parent_chain_id"]
    return out[::-1]


def image_stack(snap: Any, image: pd.Series) -> Stack:
    """The layer stack of an image (bottom first)."""
    driver = _driver(snap)
    _readable(driver)
    chain = image_chain(snap, image)
    stack = Stack("image", str(image["image_id"]), driver, [])
    if not chain:
        stack.notes.append("image has no layers in the layer database")
        return stack
    if driver in FULL_COPY or driver == "overlay":
        chain = chain[-1:]  # the top folder is a complete tree
    for chain_id, dir_id in chain:
        stack.layers.append(StackLayer(chain_id, _content_folder(snap, driver, dir_id), dir_id))
    return stack


def _lower_ids(snap: Any, driver: str, dir_id: str) -> list[str] | None:
    """Ancestor directory ids of ``dir_id`` from the driver's metadata, nearest first."""
    row = _dir_row(snap, driver, dir_id)
    if row is None or not isinstance(row["lower"], str) or not row["lower"]:
        return None
    parts = [p for p in row["lower"].split(":") if p]
    if driver in ("overlay2", "fuse-overlayfs"):
        dirs = snap.tables["layer_dirs"]
        mine = dirs[dirs["driver"].astype("string") == driver]
        by_link = {str(k): str(v) for k, v in zip(mine["link_id"], mine["dir_id"])
                   if isinstance(k, str)}
        ids = []
        for p in parts:
            link = p[2:] if p.startswith("l/") else p
            if link not in by_link:
                return None  # dangling link: fall back to the layerdb chain
            ids.append(by_link[link])
        return ids
    return parts


def container_stack(snap: Any, container: pd.Series, upto: str = "rw") -> Stack:
    """The layer stack of a container (bottom first).

    Args:
        upto: ``"rw"`` for the container's own view, ``"init"`` for the view of its
            ``-init`` layer (what the daemon's naive diff compares against).
    """
    driver = _driver(snap, container)
    _readable(driver)
    mount_id = container.get("mount_id")
    init_id = container.get("init_id")
    cid = str(container["container_id"])
    if not isinstance(mount_id, str) or not mount_id:
        raise UsageError(f"container {cid[:12]} has no RW layer recorded (layerdb mounts)")
    init_id = init_id if isinstance(init_id, str) and init_id else None
    top_id = mount_id if upto == "rw" else init_id
    stack = Stack("container", cid, driver, [])
    labels = _chain_labels(snap)

    def label(dir_id: str) -> str:
        if dir_id == mount_id:
            return "rw"
        if init_id is not None and dir_id == init_id:
            return "init"
        return labels.get(dir_id, dir_id)

    def add(dir_id: str) -> None:
        folder = _content_folder(snap, driver, dir_id)
        if driver == "overlay" and dir_id in (mount_id, init_id):
            folder = f"overlay/{dir_id}/upper"
        stack.layers.append(StackLayer(label(dir_id), folder, dir_id))

    image_layers: list[str] | None = None
    if top_id is None:  # no init layer: the naive diff parent is the image's top layer
        try:
            image = snap.find_image(str(container["image_id"]))
            chain = image_chain(snap, image)
        except UsageError:
            chain = []
        if driver in FULL_COPY or driver == "overlay":
            chain = chain[-1:]
        for chain_id, dir_id in chain:
            stack.layers.append(StackLayer(chain_id, _content_folder(snap, driver, dir_id), dir_id))
        return stack
    if driver in FULL_COPY:
        add(top_id)
        return stack
    if driver == "overlay":
        lower = _lower_ids(snap, driver, top_id)
        if lower:
            stack.layers.append(StackLayer(labels.get(lower[0], lower[0]),
                                           f"overlay/{lower[0]}/root", lower[0]))
        else:
            stack.notes.append(f"overlay/{top_id}/lower-id is missing")
        add(top_id)
        return stack
    lower = _lower_ids(snap, driver, top_id)
    if lower is not None:
        image_layers = lower[::-1]
    else:
        stack.notes.append(f"no usable lower metadata for {top_id}; using the layerdb chain")
        try:
            image = snap.find_image(str(container["image_id"]))
            image_layers = [d for _, d in image_chain(snap, image)]
        except UsageError:
            image_layers = []
        if upto == "rw" and init_id is not None:
            image_layers.append(init_id)
    for dir_id in image_layers:
        add(dir_id)
    add(top_id)
    return stack


def resolve_ref(snap: Any, ref: str) -> tuple[str, pd.Series]:
    """("container" | "image", row) for a container or image reference."""
    try:
        return "container", snap.find_container(ref)
    except UsageError as exc:
        if "ambiguous" in str(exc):
            raise
    try:
        return "image", snap.find_image(ref)
    except UsageError:
        raise UsageError(f"no such container or image: {ref}") from None


def stack_for(snap: Any, ref: str) -> Stack:
    """The layer stack of the container or image named ``ref``."""
    kind, row = resolve_ref(snap, ref)
    return container_stack(snap, row) if kind == "container" else image_stack(snap, row)


# -- merging -----------------------------------------------------------------------
def _is_opaque(xattrs: Any) -> bool:
    if not isinstance(xattrs, str) or "opaque" not in xattrs:
        return False
    try:
        doc = json.loads(xattrs)
    except ValueError:
        return False
    return any(doc.get(x) == "y" for x in OPAQUE_XATTRS)


def _int(v: Any) -> int:
    return 0 if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else int(v)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _hardlink_targets(snap: Any, names: list[str]) -> dict[str, tuple[str, pd.Series | None]]:
    """hardlink linkname (snapshot path) → (path relative to the data-root, target row)."""
    prefix = str(snap.meta.get("root_prefix") or "")
    head = prefix + "/" if prefix else ""
    files = snap.tables["files"]
    rel = {n: (n[len(head):] if head and n.startswith(head) else n) for n in names}
    hits = files[files["path"].isin(list(rel.values()))].drop_duplicates("path", keep="last")
    rows = {str(p): r for p, (_, r) in zip(hits["path"], hits.iterrows())}
    out: dict[str, tuple[str, pd.Series | None]] = {}
    for n, r in rel.items():
        row = rows.get(r)
        hops = 0
        while row is not None and str(row["kind"]) == "hardlink" and hops < 8:  # chained links
            hops += 1
            nxt = str(row["linkname"])
            nxt = nxt[len(head):] if head and nxt.startswith(head) else nxt
            found = files[files["path"] == nxt]
            r, row = nxt, (found.iloc[-1] if len(found) else None)
        out[n] = (r, row)
    return out


def build_tree(snap: Any, stack: Stack) -> Tree:
    """Apply ``stack`` bottom to top and return the merged view."""
    sub, groups = _folder_rows(snap, stack.driver)
    style = WHITEOUTS.get(stack.driver, "none")
    tree = Tree()
    for layer in stack.layers:
        pos = groups.get(layer.folder)
        if pos is None:
            stack.notes.append(f"layer folder {layer.folder} is not in the snapshot")
            continue
        rows = sub.iloc[pos]
        kinds = rows["kind"].astype("string").tolist()
        inner = rows["inner"].tolist()
        majors = rows["devmajor"].tolist()
        minors = rows["devminor"].tolist()
        xattrs = rows["xattrs_json"].tolist()
        hard = [str(n) for k, n in zip(kinds, rows["linkname"].tolist()) if k == "hardlink"]
        targets = _hardlink_targets(snap, hard) if hard else {}
        deletes: list[str] = []
        opaque: list[str] = []
        adds: list[int] = []
        for i, (rel, kind) in enumerate(zip(inner, kinds)):
            path = "/" + rel if rel else "/"
            name = rel.rpartition("/")[2]
            if style in ("aufs", "both") and (AUFS_META in rel):
                # .wh..wh.* entries (and what is inside .wh..wh.plnk/ .wh..wh.orph/)
                if name == AUFS_OPQ:
                    opaque.append(_split(path)[0])
                continue
            if style in ("aufs", "both") and name.startswith(AUFS_WH):
                deletes.append(_join(_split(path)[0], name[len(AUFS_WH):]))
                continue
            if style in ("overlay", "both") and kind == "char" and _int(majors[i]) == 0 \
                    and _int(minors[i]) == 0:
                deletes.append(path)
                continue
            if style in ("overlay", "both") and kind == "dir" and _is_opaque(xattrs[i]):
                opaque.append(path)
            adds.append(i)
        for p in deletes:
            tree.remove(p)
        for p in opaque:
            tree.clear(p)
        recs = rows.iloc[adds] if adds else rows.iloc[0:0]
        mt = recs["mtime"]
        mtimes = (mt.astype("int64") if len(mt) and not mt.isna().any()
                  else mt.map(lambda t: 0 if pd.isna(t) else t.value)).tolist()
        order = sorted(range(len(adds)), key=lambda j: inner[adds[j]].count("/") if inner[adds[j]]
                       else -1)
        cols = {c: recs[c].tolist() for c in ("size", "mode", "uid", "gid", "linkname",
                                               "devmajor", "devminor", "xattrs_json", "sha256",
                                               "path")}
        for j in order:
            i = adds[j]
            rel = inner[i]
            kind = kinds[i]
            size, sha, link = _int(cols["size"][j]), _str(cols["sha256"][j]), _str(cols["linkname"][j])
            if kind == "hardlink" and link is not None:
                tpath, trow = targets.get(link, (link, None))
                link = tpath
                if trow is not None:
                    size, sha = _int(trow["size"]), _str(trow["sha256"])
            tree.put("/" + rel if rel else "/", Entry(
                kind, size, _int(cols["mode"][j]), _int(cols["uid"][j]), _int(cols["gid"][j]),
                int(mtimes[j]), link, _int(cols["devmajor"][j]), _int(cols["devminor"][j]),
                _str(cols["xattrs_json"][j]), sha, layer.label, str(cols["path"][j])))
    return tree


def tree_frame(tree: Tree, top: str = "/") -> pd.DataFrame:
    """The entries of ``tree`` under ``top`` as a DataFrame (:data:`COLUMNS`), path order."""
    rows = []
    for p in tree.walk(top):
        e = tree.entries[p]
        rows.append((p, e.kind, e.size, e.mode, e.uid, e.gid, e.mtime_ns, e.linkname,
                     e.devmajor if e.kind in ("char", "block") else None,
                     e.devminor if e.kind in ("char", "block") else None,
                     e.xattrs_json, e.sha256, e.layer, e.member_path))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = df.astype({"path": "string", "kind": "category", "size": "Int64", "mode": "Int64",
                    "uid": "Int64", "gid": "Int64", "linkname": "string", "devmajor": "Int64",
                    "devminor": "Int64", "xattrs_json": "string", "sha256": "string",
                    "layer": "string", "member_path": "string"})
    df["mtime"] = pd.to_datetime(df["mtime"].astype("int64"), unit="ns", utc=True)
    return df


def merged_tree(snap: Any, ref: str) -> pd.DataFrame:
    """The merged filesystem of the image or container ``ref``: one row per visible path.

    Columns: ``path`` (inside the image/container, ``/`` first), ``kind``, ``size``,
    ``mode``, ``uid``, ``gid``, ``mtime``, ``linkname`` (symlink target; for a
    ``hardlink`` the member holding its bytes, relative to the data-root), ``devmajor``,
    ``devminor``, ``xattrs_json``, ``sha256``, ``layer`` (chain id or directory id of the
    image layer, ``init`` or ``rw``) and ``member_path`` (the index path of the entry).

    Raises:
        UsageError: unknown reference, or a driver whose contents are not in a tar.
    """
    return tree_frame(build_tree(snap, stack_for(snap, ref)))


# -- reading one file's bytes from the evidence ----------------------------------------
#: bytes per read when copying a member
COPY_CHUNK = 1 << 20


def content_member(entry: Entry) -> str:
    """The index path (relative to the data-root) of the member holding ``entry``'s bytes."""
    if entry.kind == "hardlink" and entry.linkname:
        return entry.linkname
    if entry.member_path is None:
        raise UsageError("this entry has no member in the snapshot")
    return entry.member_path


def lookup_file(snap: Any, ref: str, path: str) -> tuple[str, Entry]:
    """(resolved path, entry) of the regular file ``path`` in ``ref``'s merged view.

    Symlinks are resolved inside the view (:meth:`Tree.resolve`).

    Raises:
        UsageError: no such path, or not a regular file.
    """
    tree = build_tree(snap, stack_for(snap, ref))
    real = tree.resolve(path if path.startswith("/") else "/" + path)
    if real is None:
        raise UsageError(f"{path}: no such file in {ref}")
    entry = tree.entries[real]
    if entry.kind not in ("file", "hardlink"):
        what = {"dir": "a directory", "char": "a character device", "block": "a block device",
                "fifo": "a fifo"}.get(entry.kind, entry.kind)
        raise UsageError(f"{path}: not a regular file in {ref} ({what})")
    return real, entry


def _duplicated(snap: Any, full: str) -> bool:
    """True if the archive may hold ``full`` more than once (the last copy counts)."""
    issues = snap.tables["issues"]
    dup = issues[issues["code"].astype("string") == "archive.duplicate"]
    return bool(len(dup)) and (bool((dup["path"] == full).any()) or bool(dup["path"].isna().any()))


def _evidence(snap: Any) -> tuple[str, str]:
    from analyzer.errors import SnapshotError

    path = snap.meta.get("evidence_path")
    kind = str(snap.meta.get("evidence_kind") or "")
    if not isinstance(path, str) or not path:
        raise SnapshotError("the snapshot does not record where its evidence is")
    if not os.path.exists(path):
        raise SnapshotError(f"the evidence {path} is no longer there (moved or deleted); "
                            "file contents are read from the evidence, not from the case folder")
    if kind == "tar" and os.path.isfile(path):
        want = snap.meta.get("evidence_bytes")
        if want is not None and not pd.isna(want) and os.path.getsize(path) != int(want):
            raise SnapshotError(f"the evidence {path} changed since it was read "
                                f"({os.path.getsize(path)} bytes, {int(want)} when read)")
    return path, kind


def _open_in_dir(root: str, rel: str) -> BinaryIO:
    """Open ``root/rel`` read-only, following no symlink on the way (``openat`` chain)."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    flags_dir = os.O_RDONLY | nofollow | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        parts = [p for p in rel.split("/") if p]
        for part in parts[:-1]:
            if part == "..":
                raise UsageError(f"{rel}: refusing a path with '..'")
            nfd = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nfd
        ffd = os.open(parts[-1], os.O_RDONLY | nofollow, dir_fd=fd)
    except OSError as exc:
        raise UsageError(f"cannot open {rel} in the evidence directory: "
                         f"{exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return os.fdopen(ffd, "rb")


def copy_member(snap: Any, member: str, sink: BinaryIO) -> tuple[int, str]:
    """Copy the bytes of the index member ``member`` (relative to the data-root) from the
    evidence to ``sink``; returns (bytes written, sha256 hex).

    A directory snapshot is read in place (read-only, no symlink followed); a tar is
    streamed once up to that member (to its end when the archive holds the path more
    than once, since the last copy is the one the index describes). A case folder's
    evidence is the file its manifest names.

    Raises:
        SnapshotError: the evidence is gone or changed. UsageError: member not found.
    """
    import hashlib
    import tempfile

    from analyzer.pipeline import open_source

    from analyzer.model.evidence import locate

    path, kind = _evidence(snap)
    path, full = locate(snap.meta, member)  # a mounted containerd root may be elsewhere
    if not os.path.exists(path):
        from analyzer.errors import SnapshotError

        raise SnapshotError(f"the evidence {path} is no longer there (moved or deleted)")
    sha = hashlib.sha256()
    n = 0
    if os.path.isdir(path):
        with _open_in_dir(path, full) as fh:
            while chunk := fh.read(COPY_CHUNK):
                sink.write(chunk)
                sha.update(chunk)
                n += len(chunk)
        return n, sha.hexdigest()
    keep_last = _duplicated(snap, full)
    spool: Any = None
    found = False
    for m, payload in open_source(path):
        if m.path != full or m.kind != "file" or payload is None:
            continue
        found = True
        if not keep_last:
            while chunk := payload.read(COPY_CHUNK):
                sink.write(chunk)
                sha.update(chunk)
                n += len(chunk)
            return n, sha.hexdigest()
        if spool is not None:
            spool.close()
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        while chunk := payload.read(COPY_CHUNK):
            spool.write(chunk)
    if not found:
        raise UsageError(f"{full}: not found in the evidence {path}")
    spool.seek(0)
    while chunk := spool.read(COPY_CHUNK):
        sink.write(chunk)
        sha.update(chunk)
        n += len(chunk)
    spool.close()
    return n, sha.hexdigest()


def cat_file(snap: Any, ref: str, path: str, sink: BinaryIO) -> str | None:
    """Write the bytes of file ``path`` of container or image ``ref`` to ``sink``.

    The bytes come straight from the evidence (:func:`copy_member`); nothing is
    executed. Returns ``None``, or a one-line problem when the bytes read do not match
    what the index recorded at ingest (size, sha256): the evidence may have changed.
    """
    _, entry = lookup_file(snap, ref, path)
    n, sha = copy_member(snap, content_member(entry), sink)
    if n != entry.size:
        return f"{path}: read {n} bytes, the index recorded {entry.size}"
    if entry.sha256 and sha != entry.sha256:
        return f"{path}: sha256 {sha} differs from the index ({entry.sha256})"
    return None


def _mode_string(e: Entry) -> str:
    import stat

    bits = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "char": stat.S_IFCHR,
            "block": stat.S_IFBLK, "fifo": stat.S_IFIFO}.get(e.kind, stat.S_IFREG)
    return stat.filemode(bits | (e.mode & 0o7777))


def _short_layer(label: str) -> str:
    return label[7:19] if label.startswith("sha256:") else label[:12]


def files_listing(snap: Any, ref: str, path: str = "/", as_json: bool = False) -> str:
    """``files`` command output: the merged view of ``ref`` under ``path``.

    A directory (after resolving symlinks in the view) lists everything under it; any
    other path lists that entry. Table columns: mode, uid, gid, size, mtime (UTC),
    layer (12 characters of the chain id, ``init`` or ``rw``), path (``-> target``
    for symlinks). ``as_json``: one record per entry with every column of
    :func:`merged_tree` (full layer ids, ``mtime`` in RFC 3339 UTC).
    """
    tree = build_tree(snap, stack_for(snap, ref))
    want = path if path.startswith("/") else "/" + path
    real = tree.resolve(want)
    if real is not None and tree.entries[real].is_dir:
        top = real
        df = tree_frame(tree, top)
    else:
        lreal = tree.resolve(want, follow_last=False)
        if lreal is None:
            raise UsageError(f"{path}: no such file or directory in {ref}")
        df = tree_frame(tree, lreal).iloc[:1]
    if as_json:
        recs = []
        for rec in df.to_dict("records"):
            rec = {k: (None if v is pd.NA or (not isinstance(v, (str, list)) and pd.isna(v))
                       else v) for k, v in rec.items()}
            rec["mtime"] = rec["mtime"].isoformat().replace("+00:00", "Z") \
                if rec["mtime"] is not None else None
            for k in ("size", "mode", "uid", "gid", "devmajor", "devminor"):
                rec[k] = int(rec[k]) if rec[k] is not None else None
            rec["kind"] = str(rec["kind"])
            recs.append(rec)
        return json.dumps(recs, indent=2, ensure_ascii=False) + "\n"
    rows = []
    for p in df["path"]:
        e = tree.entries[p]
        shown = p + (f" -> {e.linkname}" if e.kind == "symlink" else "")
        size = f"{e.devmajor}, {e.devminor}" if e.kind in ("char", "block") else str(
            len((e.linkname or "").encode("utf-8", "surrogateescape")) if e.kind == "symlink"
            else e.size)
        mt = pd.Timestamp(e.mtime_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
        rows.append([_mode_string(e), str(e.uid), str(e.gid), size, mt,
                     _short_layer(e.layer), shown])
    table = [["MODE", "UID", "GID", "SIZE", "MTIME (UTC)", "LAYER", "PATH"]] + rows
    widths = [max(len(r[i]) for r in table) for i in range(6)]
    right = (False, True, True, True, False, False)
    return "".join("  ".join([(c.rjust(w) if r else c.ljust(w)) for c, w, r in
                              zip(row[:6], widths, right)] + [row[6]]) + "\n" for row in table)


__all__ = ["Stack", "StackLayer", "Entry", "Tree", "image_stack", "container_stack",
           "stack_for", "resolve_ref", "build_tree", "tree_frame", "merged_tree", "image_chain",
           "folder_exists", "lookup_file", "copy_member", "content_member", "cat_file", "files_listing"]
