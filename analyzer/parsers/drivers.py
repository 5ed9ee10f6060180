"""Storage-driver directories: which exist, what they hold, how big they are.

Reads, relative to the data-root:

* overlay2 / fuse-overlayfs: ``<drv>/<id>/{diff/,link,lower,merged/}``, ``<drv>/l/``
* vfs: ``vfs/dir/<id>/``; btrfs: ``btrfs/subvolumes/<id>/``
* aufs: ``aufs/diff/<id>/``, ``aufs/layers/<id>``
* overlay (v1): ``overlay/<id>/{root/,upper/,lower-id}`` (image layers are full trees in
  ``root/``; container and init layers have ``upper/`` and ``lower-id``; the RW size is a
  naive diff, see :func:`overlay_diff_size`)
* zfs, devicemapper: metadata only (contents are not in a tar; reported)

Sizes follow the daemon's directory walk (moby ``daemon/internal/directory``):
every non-directory entry with a non-zero ``lstat`` size, each inode once;
symlinks count their target length. In a tar, a later path of an inode is a
hardlink member: it is not counted again unless its first path lies outside
the directory being measured.

Reference: ``shared/docs/docker-root-format.md`` §4, §5.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from analyzer.parsers.rootview import RootView

#: driver → (regex of a member path inside a layer's own content: groups dir id,
#: inner path), (content folder template)
LAYOUTS: dict[str, tuple[str, str]] = {
    "overlay2": (r"^overlay2/([^/]+)/diff(?:/(.*))?$", "overlay2/{id}/diff"),
    "fuse-overlayfs": (r"^fuse-overlayfs/([^/]+)/diff(?:/(.*))?$", "fuse-overlayfs/{id}/diff"),
    "vfs": (r"^vfs/dir/([^/]+)(?:/(.*))?$", "vfs/dir/{id}"),
    "btrfs": (r"^btrfs/subvolumes/([^/]+)(?:/(.*))?$", "btrfs/subvolumes/{id}"),
    "aufs": (r"^aufs/diff/([^/]+)(?:/(.*))?$", "aufs/diff/{id}"),
    # overlay v1 keeps image layers as full trees in root/ and container layers in upper/
    "overlay": (r"^overlay/([^/]+)/(?:root|upper)(?:/(.*))?$", "overlay/{id}/{sub}"),
}
DIR_OF: dict[str, str] = {
    "overlay2": r"^overlay2/([^/]+)$", "fuse-overlayfs": r"^fuse-overlayfs/([^/]+)$",
    "vfs": r"^vfs/dir/([^/]+)$", "btrfs": r"^btrfs/subvolumes/([^/]+)$",
    "aufs": r"^aufs/diff/([^/]+)$", "overlay": r"^overlay/([^/]+)$",
    "zfs": r"^zfs/graph/([^/]+)$",
    # thin-device records: one JSON file per layer or container device
    "devicemapper": r"^devicemapper/metadata/(?!base$|deviceset-metadata$|transaction-metadata$)([^/]+)$",
}
KNOWN_DRIVERS = ("overlay2", "fuse-overlayfs", "vfs", "aufs", "overlay", "btrfs", "zfs",
                 "devicemapper", "windowsfilter")
UNREADABLE = {
    "zfs": "zfs layers are ZFS datasets; a tar holds only their mount points",
    "devicemapper": "devicemapper layers are thin devices inside a loop file; their files "
                    "cannot be read without parsing dm-thin metadata and the filesystem inside",
    "windowsfilter": "windowsfilter layers are VHDX files; not read",
}


@dataclass
class DriverDirs:
    """Directories of one driver and their content statistics."""

    driver: str
    dirs: pd.DataFrame  # dir_id, path, content_path, files, content_bytes, link_id, lower, has_merged


def present_drivers(view: RootView) -> list[str]:
    """Storage drivers with a folder at the top of the data-root."""
    return [d for d in view.top_dirs() if d in KNOWN_DRIVERS]


def content_sizes(files: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Per directory id: entries and bytes under its content folder (daemon rules)."""
    ext = files["path"].str.extract(pattern)
    ext.columns = ["dir_id", "inner"]
    inside = ext["dir_id"].notna() & ext["inner"].notna()
    sub = files[inside].assign(dir_id=ext.loc[inside, "dir_id"])
    if sub.empty:
        return pd.DataFrame({"dir_id": pd.Series([], dtype="string"),
                             "files": pd.Series([], dtype="Int64"),
                             "content_bytes": pd.Series([], dtype="Int64")})
    kind = sub["kind"].astype("string")
    size = sub["size"].fillna(0).astype("int64")
    nbytes = size.where(kind == "file", 0)
    links = kind == "symlink"
    if links.any():
        lens = sub.loc[links, "linkname"].fillna("").map(
            lambda s: len(s.encode("utf-8", "surrogateescape")))
        nbytes = nbytes.astype("int64")
        nbytes.loc[links] = lens.astype("int64")
    out = pd.DataFrame({"dir_id": sub["dir_id"], "n": 1, "b": nbytes})
    agg = out.groupby("dir_id", sort=True).agg(files=("n", "sum"), content_bytes=("b", "sum"))
    hard = sub[kind == "hardlink"]
    if not hard.empty:  # a hardlink to a file outside this dir is an inode counted here
        targets = files[(files["kind"] == "file") & files["path"].isin(hard["linkname"])]
        sizes = dict(zip(targets["path"], targets["size"]))
        rx = re.compile(pattern)
        extra: dict[str, int] = {}
        counted: set[tuple[str, str]] = set()
        for dir_id, target in zip(hard["dir_id"], hard["linkname"].fillna("")):
            if (dir_id, target) in counted:
                continue
            counted.add((dir_id, target))
            tm = rx.match(target)
            if tm is None or tm.group(1) != dir_id:  # first path of the inode lies elsewhere
                extra[dir_id] = extra.get(dir_id, 0) + int(sizes.get(target, 0) or 0)
        for dir_id, b in extra.items():
            agg.loc[dir_id, "content_bytes"] += b
    agg = agg.reset_index()
    return agg.astype({"dir_id": "string", "files": "Int64", "content_bytes": "Int64"})


def driver_dirs(view: RootView, driver: str) -> DriverDirs:
    """The directories of ``driver`` with link/lower bookkeeping and content sizes."""
    files = view.files
    dir_rx = DIR_OF.get(driver)
    if dir_rx is None:
        return DriverDirs(driver, pd.DataFrame(columns=["dir_id"]))
    ids = files["path"].str.extract(dir_rx, expand=False).dropna()
    # folders implied by deeper paths count even when the tar lacks their own entry
    deeper = files["path"].str.extract(dir_rx.rstrip("$") + "/", expand=False).dropna() \
        if driver != "devicemapper" else ids.iloc[0:0]
    dir_ids = sorted((set(ids.tolist()) | set(deeper.tolist())) - {"l"})
    merged_ids = set(files["path"].str.extract(rf"^{driver}/([^/]+)/merged/", expand=False)
                     .dropna().tolist()) if driver in ("overlay2", "fuse-overlayfs", "overlay") \
        else set()
    rows = []
    for dir_id in dir_ids:
        path = {"vfs": f"vfs/dir/{dir_id}", "btrfs": f"btrfs/subvolumes/{dir_id}",
                "aufs": f"aufs/diff/{dir_id}", "zfs": f"zfs/graph/{dir_id}",
                "devicemapper": f"devicemapper/metadata/{dir_id}"}.get(
                    driver, f"{driver}/{dir_id}")
        link = lower = None
        content = path
        if driver in ("overlay2", "fuse-overlayfs"):
            link = view.text(f"{path}/link")
            lower = view.text(f"{path}/lower")
            content = f"{path}/diff"
        elif driver == "aufs":
            lower_text = view.text(f"aufs/layers/{dir_id}")
            lower = ":".join(lower_text.split()) if lower_text is not None else None
        elif driver == "overlay":
            lower = view.text(f"{path}/lower-id")
            content = f"{path}/upper" if view.exists(f"{path}/upper") else f"{path}/root"
        rows.append({"dir_id": dir_id, "path": path, "content_path": content, "link_id": link,
                     "lower": lower,
                     "has_merged": dir_id in merged_ids})
    dirs = pd.DataFrame(rows, columns=["dir_id", "path", "content_path", "link_id", "lower",
                                       "has_merged"])
    if driver in LAYOUTS and not dirs.empty:
        sizes = content_sizes(files, LAYOUTS[driver][0])
        dirs = dirs.astype({"dir_id": "string"}).merge(sizes, on="dir_id", how="left")
    else:
        dirs["files"] = pd.NA
        dirs["content_bytes"] = pd.NA
    for col in ("files", "content_bytes"):
        dirs[col] = dirs[col].astype("Int64")
    # a content folder that exists but is empty holds 0 bytes, not "unknown"
    present = dirs["content_path"].map(view.exists) if not dirs.empty else dirs["dir_id"]
    dirs.loc[present.astype(bool) & dirs["files"].isna(), ["files", "content_bytes"]] = 0
    return DriverDirs(driver, dirs)


#: drivers whose layers are full copies: the daemon measures a container's RW size
#: by comparing its tree with its parent's ("naive diff", moby graphdriver/fsdiff.go)
NAIVE_DIFF_DRIVERS = ("vfs", "btrfs", "zfs")
CAPABILITY_XATTR = "security.capability"


def _tree(files: pd.DataFrame, folder: str) -> pd.DataFrame:
    head = folder + "/"
    sub = files[files["path"].str.startswith(head)]
    return sub.assign(inner=sub["path"].str.slice(len(head))).set_index("inner")


def _same_time(a: pd.Series, b: pd.Series) -> pd.Series:
    """Go ``sameFsTime``: equal, or equal seconds when either has no nanoseconds."""
    an, bn = a.astype("int64"), b.astype("int64")
    sec = (an // 1_000_000_000) == (bn // 1_000_000_000)
    return (an == bn) | (sec & ((an % 1_000_000_000 == 0) | (bn % 1_000_000_000 == 0)))


def changed_paths(files: pd.DataFrame, new: str, old: str) -> pd.DataFrame:
    """Entries of folder ``new`` added or modified relative to folder ``old``.

    The rules of moby's ``archive.ChangesDirs`` on two full trees: a path changed
    when its type, mode, owner or device differ, when a non-directory's mtime
    (``sameFsTime``) or size differ, or when its ``security.capability`` differs.
    """
    a, b = _tree(files, new), _tree(files, old)
    joined = a.join(b.add_suffix("_old"), how="left")
    added = joined["kind_old"].isna()
    k_new, k_old = joined["kind"].astype("string"), joined["kind_old"].astype("string")
    is_dir = k_new == "dir"
    cap_new = joined["xattrs_json"].fillna("").str.extract(r'"security\.capability": "([^"]*)"',
                                                         expand=False).fillna("")
    cap_old = joined["xattrs_json_old"].fillna("").str.extract(
        r'"security\.capability": "([^"]*)"', expand=False).fillna("")
    modified = ~added & (
        (k_new != k_old) | (joined["mode"] != joined["mode_old"]) | (joined["uid"] != joined["uid_old"])
        | (joined["gid"] != joined["gid_old"])
        | (joined["devmajor"].fillna(0) != joined["devmajor_old"].fillna(0))
        | (joined["devminor"].fillna(0) != joined["devminor_old"].fillna(0))
        | (~is_dir & (~_same_time(joined["mtime"].astype("int64"), joined["mtime_old"].fillna(
            joined["mtime"]).astype("int64")) | (joined["size"] != joined["size_old"])))
        | (cap_new != cap_old))
    out = joined[added | modified.fillna(False)]
    return out.assign(change=["A" if x else "C" for x in added[added | modified.fillna(False)]])


def naive_diff_size(files: pd.DataFrame, new: str, old: str) -> int:
    """Bytes the daemon reports for ``new`` over ``old``: added or changed non-directories,
    symlinks by target length, each inode once."""
    return _changes_size(files, changed_paths(files, new, old), new)


def overlay_diff_size(files: pd.DataFrame, upper: str, init_upper: str,
                      lower_root: str | None) -> int:
    """RW size of an overlay (v1) container, as the daemon's naive diff computes it.

    The overlay v1 driver is wrapped in moby's ``NaiveDiffDriver``: the size is
    ``ChangesDirs`` of the container's merged tree against its init layer's merged
    tree. Both are overlays on the same lower tree (``<lower-id>/root``; the
    container's ``upper`` starts as a copy of the init layer's ``upper``), so
    only entries of the container's ``upper`` can differ: an entry counts when it
    differs from the same path in the init layer's ``upper`` or, when that has
    no such path, from ``lower_root``. Whiteouts are deletions (no bytes).
    """
    ch = changed_paths(files, upper, init_upper)
    added = ch[ch["change"] == "A"]
    if len(added) and lower_root:
        vs_root = changed_paths(files, upper, lower_root)
        added = added[added.index.isin(vs_root.index)]
    ch = pd.concat([ch[ch["change"] == "C"], added])
    return _changes_size(files, ch, upper)


def _changes_size(files: pd.DataFrame, ch: pd.DataFrame, new: str) -> int:
    """``archive.ChangesSize``: bytes of changed non-directories under ``new``."""
    kinds = ch["kind"].astype("string")
    total = int(ch.loc[kinds == "file", "size"].fillna(0).sum())
    links = ch.loc[kinds == "symlink", "linkname"].fillna("")
    total += int(sum(len(t.encode("utf-8", "surrogateescape")) for t in links))
    hard = ch[kinds == "hardlink"]
    if len(hard):
        counted = set((new + "/" + ch.index[kinds == "file"]).tolist())
        sizes = dict(zip(files["path"], files["size"]))
        for target in set(hard["linkname"].dropna()) - counted:
            total += int(sizes.get(target, 0) or 0)
    return total
