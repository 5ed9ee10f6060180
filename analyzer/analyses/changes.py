"""``GET /containers/{id}/changes`` (``docker diff``) computed from the index.

What the daemon does (moby v20.10.24; facts read from the source):

* ``daemon.ContainerChanges`` → ``RWLayer.Changes()`` →
  ``driver.Changes(mountID, cacheParent)`` where the parent is the container's
  ``-init`` layer (its image's top layer when there is none).
* **Naive diff** (``graphdriver.NaiveDiffDriver.Changes`` →
  ``archive.ChangesDirs(container fs, init fs)``): both layers are mounted and the two
  complete trees are compared. Used by **overlay2** (always since moby commit ac5d363e,
  "Update overlay2 to use naive diff for changes", first in 18.06: the native walk
  mishandled opaque directories), **overlay** (v1), **fuse-overlayfs**, **vfs**,
  **btrfs**, zfs, and by aufs when the parent is not the layer's direct parent.
  A path is *added* when only the container tree has it, *deleted* when only the init
  tree has it (reported once, at the top of the deleted subtree), *modified* when the
  mode (type and permission bits), uid, gid or device number differ, or — for a
  non-directory in the init tree — the size or the mtime differ (``sameFsTimeSpec``:
  equal, or equal seconds with either nanosecond part 0), or the
  ``security.capability`` xattr differs. Children of a path that is not a directory in
  the container are not compared. A directory holding any change is reported as
  modified, inserted before the changes inside it (unless it is itself added or
  modified). The init layer's own files are identical in both trees, so never
  reported.
* **Native aufs** (``archive.Changes(parent layer dirs, diff/<id>)``): ``filepath.Walk``
  of the RW branch in lexical order; top-level ``/.wh..wh.*`` entries are skipped (but a
  skipped directory is still descended into); ``.wh.<name>`` reports ``<name>`` as
  deleted (so ``.wh..wh..opq`` below the top reports ``<dir>/.wh..opq``, as the daemon
  does); any other path is *modified* if it exists in one of the lower branches (the
  nearest where it exists), except a directory with equal size, mode and mtime there,
  which is skipped; otherwise *added*. The parent of an added or deleted path is
  reported as modified right before it unless that directory was already visited as a
  change.
* **Native overlay** (overlay2 before 18.06, ``archive.OverlayChanges``): the same walk
  over the ``diff`` dir with 0:0 character devices and opaque directories reported as
  deleted. Available with ``algorithm="native"``, not used by default.

Order: the naive comparison ranges over Go maps (``FileInfo.children``), so sibling
order is random from call to call — the recorded samples show ``/root, /tmp, /etc``
from the API and ``/root, /etc, /tmp`` from ``docker diff`` for the same container.
What *is* fixed: a depth-first pre-order in which every directory precedes its
contents, and within a directory the deletions follow the other entries (and their
subtrees). We emit that order with siblings in byte order (deletions too), one of the
orders the daemon can produce. The native aufs walk is deterministic and reproduced
exactly.

Approximations (the index is a tar listing, not a live filesystem): directory sizes
are those recorded in the archive (0 in tar), so the aufs "equal directory" test
compares mode and mtime only; the aufs test follows no symlink of the lower branch
(``os.Stat`` on the host would); hardlinked files are compared by their content
member's size; overlay ``redirect_dir``/``metacopy`` upper dirs are not modelled (see
:mod:`analyzer.analyses.fsview`).

References:
    moby v20.10.24 ``pkg/archive/changes.go`` (``changes``, ``Changes``, ``ChangesDirs``,
    ``addChanges``, ``sameFsTime``), ``pkg/archive/changes_linux.go``
    (``collectFileInfoForChanges``), ``pkg/archive/changes_unix.go`` (``statDifferent``),
    ``daemon/graphdriver/fsdiff.go``, ``daemon/graphdriver/overlay2/overlay.go``
    (``Changes``), ``daemon/graphdriver/aufs/aufs.go`` (``Changes``, ``isParent``),
    ``layer/mounted_layer.go`` (``cacheParent``), ``daemon/changes.go``;
    ``shared/docs/docker-root-format.md`` §4.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from analyzer.analyses import fsview
from analyzer.analyses.fsview import Entry, Tree
from analyzer.errors import UsageError

MODIFY, ADD, DELETE = 0, 1, 2
LETTER = {MODIFY: "C", ADD: "A", DELETE: "D"}
#: drivers whose Changes() is the naive tree comparison in moby 20.10
NAIVE = ("overlay2", "overlay", "fuse-overlayfs", "vfs", "btrfs",
         "overlayfs", "native")  # containerd store: ChangesDirs(container, <id>-init view)
CAPABILITY = "security.capability"

_TYPE_BITS = {"file": 0o100000, "hardlink": 0o100000, "dir": 0o040000, "symlink": 0o120000,
              "char": 0o020000, "block": 0o060000, "fifo": 0o010000, "other": 0o140000}


def _st_mode(e: Entry) -> int:
    return _TYPE_BITS.get(e.kind, 0) | (e.mode & 0o7777)


def _st_size(e: Entry) -> int:
    """``lstat`` size: symlinks are as long as their target."""
    if e.kind == "symlink":
        return len((e.linkname or "").encode("utf-8", "surrogateescape"))
    if e.kind in ("file", "hardlink"):
        return e.size
    return 0 if e.kind != "dir" else e.size


def same_fs_time(a_ns: int, b_ns: int) -> bool:
    """Go ``sameFsTime``/``sameFsTimeSpec``: equal, or same second and one has no ns."""
    if a_ns == b_ns:
        return True
    return a_ns // 1_000_000_000 == b_ns // 1_000_000_000 and (
        a_ns % 1_000_000_000 == 0 or b_ns % 1_000_000_000 == 0)


def stat_different(old: Entry, new: Entry) -> bool:
    """moby ``statDifferent`` (unix) plus the capability comparison of ``addChanges``."""
    if (_st_mode(old) != _st_mode(new) or old.uid != new.uid or old.gid != new.gid
            or (old.devmajor, old.devminor) != (new.devmajor, new.devminor)):
        return True
    if old.kind != "dir" and (not same_fs_time(old.mtime_ns, new.mtime_ns)
                              or _st_size(old) != _st_size(new)):
        return True
    return (old.xattr(CAPABILITY) or "") != (new.xattr(CAPABILITY) or "")


def changes_dirs(new: Tree, old: Tree) -> list[tuple[str, int]]:
    """``archive.ChangesDirs(new, old)`` on two merged trees: (path, kind) list.

    Siblings are visited in byte order (the daemon's order is random there).
    """
    out: list[tuple[str, int]] = []
    root = new.get("/") or Entry("dir", 0, 0o755, 0, 0, 0, None, 0, 0, None, None, "", None)
    _add_changes(new, old, "/", root, old.get("/") or root, False, out)
    return out


def _add_changes(new: Tree, old: Tree, path: str, info: Entry, old_info: Entry | None,
                 added: bool, out: list[tuple[str, int]]) -> None:
    # iterative version of FileInfo.addChanges would be longer; depth = path depth
    size_at_entry = len(out)
    if old_info is None:
        out.append((path, ADD))
        added = True
    is_dir = info.is_dir or path == "/"
    old_children: dict[str, None] = {}
    if old_info is not None and is_dir:
        old_children = dict.fromkeys(old.names(path))
    for name in sorted(new.names(path), key=fsview._bkey):
        child = fsview._join(path, name)
        new_child = new.entries[child]
        old_child = None
        child_added = False
        if name in old_children:
            old_child = old.entries.get(child)
            del old_children[name]
            if old_child is not None and stat_different(old_child, new_child):
                out.append((child, MODIFY))
                child_added = True
        _add_changes(new, old, child, new_child, old_child, child_added, out)
    for name in sorted(old_children, key=fsview._bkey):
        out.append((fsview._join(path, name), DELETE))
    if len(out) > size_at_entry and is_dir and not added and path != "/":
        out.insert(size_at_entry, (path, MODIFY))


def _raw_tree(snap: Any, driver: str, folder: str) -> Tree:
    """The raw entries of a folder, whiteouts and ``.wh.`` files included."""
    sub, groups = fsview._folder_rows(snap, driver)
    tree = Tree()
    pos = groups.get(folder)
    if pos is None:
        return tree
    rows = sub.iloc[pos]
    mt = rows["mtime"].map(lambda t: 0 if pd.isna(t) else t.value).tolist()
    for rel, kind, size, mode, uid, gid, m, link, dmaj, dmin, xa, sha, p in zip(
            rows["inner"], rows["kind"].astype("string"), rows["size"], rows["mode"],
            rows["uid"], rows["gid"], mt, rows["linkname"], rows["devmajor"], rows["devminor"],
            rows["xattrs_json"], rows["sha256"], rows["path"]):
        tree.put("/" + rel if rel else "/", Entry(
            str(kind), fsview._int(size), fsview._int(mode), fsview._int(uid), fsview._int(gid),
            int(m), fsview._str(link), fsview._int(dmaj), fsview._int(dmin), fsview._str(xa),
            fsview._str(sha), "", str(p)))
    return tree


def native_changes(rw: Tree, lowers: list[Tree], style: str) -> list[tuple[str, int]]:
    """``archive.changes(layers, rw, deletedFile, skip)``: the native walk of one RW branch.

    Args:
        rw: the RW branch as stored (whiteouts as entries).
        lowers: the parent branches, nearest first, as stored.
        style: ``"aufs"`` (``.wh.`` files, top-level ``.wh..wh.*`` skipped) or
            ``"overlay"`` (0:0 char devices and opaque directories are deletions).
    """
    out: list[tuple[str, int]] = []
    changed_dirs: set[str] = set()
    for path in rw.walk("/"):
        if path == "/":
            continue
        f = rw.entries[path]
        name = path.rpartition("/")[2]
        if style == "aufs" and path.count("/") == 1 and name.startswith(fsview.AUFS_META):
            continue  # aufsMetadataSkip; a directory is still descended into
        deleted = None
        if style == "aufs" and name.startswith(fsview.AUFS_WH):
            deleted = fsview._join(fsview._split(path)[0], name[len(fsview.AUFS_WH):])
        elif style == "overlay" and ((f.kind == "char" and f.devmajor == 0 and f.devminor == 0)
                                     or (f.is_dir and fsview._is_opaque(f.xattrs_json))):
            deleted = path
        if deleted is not None:
            kind, cpath = DELETE, deleted
        else:
            kind, cpath = ADD, path
            skip = False
            for layer in lowers:
                st = layer.get(path)
                if st is None:
                    continue
                if st.is_dir and f.is_dir and st.size == f.size and _st_mode(st) == _st_mode(f) \
                        and same_fs_time(f.mtime_ns, st.mtime_ns):
                    skip = True
                kind = MODIFY
                break
            if skip:
                continue
        if f.is_dir:
            changed_dirs.add(path)
        if kind in (ADD, DELETE):
            parent = fsview._split(path)[0]
            if parent not in changed_dirs and parent != "/":
                out.append((parent, MODIFY))
                changed_dirs.add(parent)
        out.append((cpath, kind))
    return out


def algorithm_for(snap: Any, container: pd.Series) -> str:
    """``"naive"`` or ``"native"``: what moby 20.10 uses for this container's driver."""
    driver = fsview._driver(snap, container)
    if driver == "aufs":
        init_id = container.get("init_id")
        lower = fsview._lower_ids(snap, driver, str(container["mount_id"])) or []
        # aufs isParent: the parent passed (the init layer, else the image's top layer,
        # which is then the first line anyway) is the first line of layers/<id>
        if not lower or not (isinstance(init_id, str) and init_id) or lower[0] == init_id:
            return "native"
    return "naive"


def container_change_list(snap: Any, container: pd.Series,
                          algorithm: str = "auto") -> list[tuple[str, int]]:
    """(path, kind) changes of a container row; see :func:`container_changes`."""
    driver = fsview._driver(snap, container)
    fsview._readable(driver)
    if algorithm == "auto":
        algorithm = algorithm_for(snap, container)
    rw_stack = fsview.container_stack(snap, container, "rw")
    top = rw_stack.layers[-1] if rw_stack.layers else None
    if top is None or not fsview.folder_exists(snap, driver, top.folder):
        raise UsageError(f"the RW layer of container {str(container['container_id'])[:12]} "
                         "is not in the snapshot; its changes cannot be computed")
    if algorithm == "native":
        if driver not in ("aufs", "overlay2", "fuse-overlayfs"):
            raise UsageError(f"no native change walk for the {driver} driver")
        style = "aufs" if driver == "aufs" else "overlay"
        rw = _raw_tree(snap, driver, top.folder)
        lowers = [_raw_tree(snap, driver, layer.folder) for layer in rw_stack.layers[-2::-1]]
        return native_changes(rw, lowers, style)
    if algorithm != "naive":
        raise UsageError(f"unknown change algorithm {algorithm!r}")
    new = fsview.build_tree(snap, rw_stack)
    old = fsview.build_tree(snap, fsview.container_stack(snap, container, "init"))
    return changes_dirs(new, old)


def container_changes(snap: Any, container_id: str, algorithm: str = "auto"
                      ) -> list[dict[str, Any]]:
    """``GET /containers/{id}/changes``: ``[{"Path": "/x", "Kind": 0|1|2}]``.

    Kind 0 is modified, 1 added, 2 deleted. The daemon answers ``null`` when there
    is no change; this returns ``[]`` then (the CLI prints ``null``).

    Args:
        container_id: any container reference (id, prefix, name).
        algorithm: ``"auto"`` (what moby 20.10 does for the driver), ``"naive"`` or
            ``"native"`` (the pre-18.06 overlay2 walk; aufs' default).

    Raises:
        UsageError: unknown container, missing RW layer, unreadable driver.
    """
    row = snap.find_container(container_id)
    return [{"Path": p, "Kind": k} for p, k in container_change_list(snap, row, algorithm)]


def docker_diff_text(changes: list[dict[str, Any]]) -> str:
    """``docker diff`` output: one ``C|A|D <path>`` line per change."""
    return "".join(f"{LETTER[c['Kind']]} {c['Path']}\n" for c in changes)


__all__ = ["container_changes", "container_change_list", "changes_dirs", "native_changes",
           "docker_diff_text", "stat_different", "same_fs_time", "algorithm_for",
           "MODIFY", "ADD", "DELETE"]
