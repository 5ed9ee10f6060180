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
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analyzer.allocators import trim
from analyzer.parsers.rootview import RootView
from analyzer.textcols import component_match

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


#: rows per window when scanning the files table (bounds the temporary arrays)
WINDOW = 1 << 16
_OPTIONAL_INNER = "(?:/(.*))?$"


def arrow_strings(col: pd.Series) -> pa.ChunkedArray:
    """A string column as an Arrow chunked array (zero copy when pyarrow-backed)."""
    arr = col.array
    out = arr.__arrow_array__() if hasattr(arr, "__arrow_array__") else None
    if out is None or not (pa.types.is_string(out.type) or pa.types.is_large_string(out.type)):
        out = pa.array(col.astype("object").where(col.notna(), None).tolist(), pa.string())
    return out if isinstance(out, pa.ChunkedArray) else pa.chunked_array([out])


def _windows(n: int) -> Iterator[int]:
    """Start rows of the scan windows; the C heap is trimmed after each window, whose
    temporaries would otherwise stay resident (see :mod:`analyzer.allocators`)."""
    for start in range(0, n, WINDOW):
        yield start
        trim()


def _matches(paths: pa.ChunkedArray, rx: str) -> np.ndarray:
    """Boolean mask of the paths matching ``rx`` (RE2, as pandas' Arrow strings use)."""
    return pc.match_substring_regex(paths, rx).to_numpy(zero_copy_only=False) == True  # noqa: E712


def _match_ids(win: pa.ChunkedArray, plain: str, named: str) -> tuple[np.ndarray, pa.Array]:
    """Rows of ``win`` matching ``plain`` and their first group (``named`` is the same
    regex with the group named, for Arrow's extract)."""
    fast = [component_match(c, plain) for c in win.chunks]
    if all(f is not None for f in fast):
        mask = np.zeros(len(win), bool)
        base = 0
        for chunk, (rows, _) in zip(win.chunks, fast):  # type: ignore[misc]
            mask[rows + base] = True
            base += len(chunk)
        values = [v for _, v in fast]  # type: ignore[misc]
        return mask, pa.concat_arrays(values) if values else pa.array([], pa.string())
    mask = _matches(win, named)
    if not mask.any():
        return mask, pa.array([], pa.string())
    return mask, pc.struct_field(pc.extract_regex(win.filter(pa.array(mask)), named), [0])


def unique_groups(files: pd.DataFrame, rx: str) -> set[str]:
    """The distinct first groups of ``rx`` over ``files.path`` (``str.extract(rx)`` without
    a column per row), scanned window by window."""
    return unique_groups_many(files, [rx])[0]


def unique_groups_many(files: pd.DataFrame, rxs: list[str]) -> list[set[str]]:
    """:func:`unique_groups` of several regexes in one scan (regexes of the
    ``^folder/([^/]+)...`` shape with the same folder share their work)."""
    paths = arrow_strings(files["path"])
    outs: list[set[str]] = [set() for _ in rxs]
    py: dict[int, re.Pattern[str]] = {}
    for s in _windows(len(paths)):
        win = paths.slice(s, WINDOW)
        memos: list[dict] = [{} for _ in win.chunks]
        for k, rx in enumerate(rxs):
            out = outs[k]
            fast = [component_match(c, rx, memo) for c, memo in zip(win.chunks, memos)]
            if all(f is not None for f in fast):  # the common ^folder/([^/]+)... shape
                for _, values in fast:  # type: ignore[misc]
                    out.update(pc.unique(values).to_pylist())
                continue
            if k not in py:
                named = rx.replace("(", "(?P<g>", 1) if "(?P<" not in rx else rx
                try:
                    hit = pc.extract_regex(win, named)
                    out.update(v for v in pc.unique(pc.struct_field(hit, [0])).to_pylist()
                               if v is not None)
                    continue
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not RE2 (lookahead)
                    py[k] = re.compile(rx)
            for p in win.to_pylist():
                m = py[k].search(p) if p is not None else None
                if m is not None and m.group(1) is not None:
                    out.add(m.group(1))
    return outs


def _add_per_id(totals: dict[str, list[int]], ids: pa.Array | pa.ChunkedArray, nbytes: np.ndarray) -> None:
    """Add each distinct id's row count and byte sum to ``totals`` (exact int64 sums;
    numpy on the dictionary codes, lighter than an Arrow group-by per window)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    enc = pc.dictionary_encode(ids, null_encoding="encode")
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    sums = np.add.reduceat(nbytes[order].astype(np.int64, copy=False), starts)
    names = enc.dictionary.to_pylist()
    for code, n, b in zip(codes[starts].tolist(), counts.tolist(), sums.tolist()):
        t = totals.setdefault(names[code], [0, 0])
        t[0] += n
        t[1] += b


def content_sizes(files: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Per directory id: entries and bytes under its content folder (daemon rules).

    ``pattern`` is ``^<folder of (dir id)>(?:/(.*))?$``. The files table is scanned in
    windows of :data:`WINDOW` rows with Arrow kernels and aggregated per window, so no
    column as long as the table is built.
    """
    if not pattern.endswith(_OPTIONAL_INNER):
        raise ValueError(f"content pattern must end with {_OPTIONAL_INNER!r}: {pattern}")
    inside = pattern[:-len(_OPTIONAL_INNER)].replace("(", "(?P<dir_id>", 1) + "/.*$"
    paths = arrow_strings(files["path"])
    kind, size, linkname = files["kind"], files["size"], files["linkname"]
    totals: dict[str, list[int]] = {}  # dir id → [entries, bytes]
    hard_ids: list[str] = []
    hard_targets: list[str] = []
    plain = pattern[:-len(_OPTIONAL_INNER)] + "/.*$"
    for s in _windows(len(paths)):
        win = paths.slice(s, WINDOW)
        mask, ids = _match_ids(win, plain, inside)
        if not mask.any():
            continue
        k = kind.iloc[s:s + WINDOW][mask]
        is_file = (k == "file").to_numpy(dtype=bool, na_value=False)
        is_link = (k == "symlink").to_numpy(dtype=bool, na_value=False)
        is_hard = (k == "hardlink").to_numpy(dtype=bool, na_value=False)
        nbytes = np.where(is_file, size.iloc[s:s + WINDOW][mask].to_numpy(
            dtype="int64", na_value=0), 0)
        links = linkname.iloc[s:s + WINDOW][mask]
        if is_link.any():
            lens = pc.binary_length(arrow_strings(links[is_link])).to_numpy(zero_copy_only=False)
            nbytes[is_link] = np.nan_to_num(lens.astype("float64")).astype("int64")
        if is_hard.any():
            hard_ids += pc.filter(ids, pa.array(is_hard)).to_pylist()
            hard_targets += links[is_hard].fillna("").tolist()
        _add_per_id(totals, ids, nbytes)
    if not totals:
        return pd.DataFrame({"dir_id": pd.Series([], dtype="string"),
                             "files": pd.Series([], dtype="Int64"),
                             "content_bytes": pd.Series([], dtype="Int64")})
    order = sorted(totals)
    agg = pd.DataFrame({"files": [totals[d][0] for d in order],
                        "content_bytes": [totals[d][1] for d in order]},
                       index=pd.Index(order, name="dir_id"))
    if hard_ids:  # a hardlink to a file outside this dir is an inode counted here
        targets = files[(files["kind"] == "file") & files["path"].isin(set(hard_targets))]
        sizes = dict(zip(targets["path"], targets["size"]))
        rx = re.compile(pattern)
        extra: dict[str, int] = {}
        counted: set[tuple[str, str]] = set()
        for dir_id, target in zip(hard_ids, hard_targets):
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
    # folders implied by deeper paths count even when the tar lacks their own entry
    deeper_rx = dir_rx.rstrip("$") + "/" if driver != "devicemapper" else None
    merged_rx = rf"^{re.escape(driver)}/([^/]+)/merged/" \
        if driver in ("overlay2", "fuse-overlayfs", "overlay") else None
    wanted = [rx for rx in (dir_rx, deeper_rx, merged_rx) if rx is not None]
    found = dict(zip(wanted, unique_groups_many(files, wanted)))
    ids, deeper = found[dir_rx], found.get(deeper_rx, set())  # type: ignore[arg-type]
    dir_ids = sorted((ids | deeper) - {"l"})
    merged_ids = found.get(merged_rx, set())  # type: ignore[arg-type]
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
