"""Run every parser over one data-root and assemble the model's tables.

The only place that knows the order parsers depend on each other: image store
→ driver directories → containers (RW layers) → volumes → networks → logs.
A parser that fails unexpectedly becomes a ``parse.error`` issue and an empty
table; the rest goes on.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analyzer import __version__
from analyzer.allocators import trim
from analyzer.textcols import PathSet, one_chunk
from analyzer.formats.containerd_db import SNAPSHOTTERS
from analyzer.formats.digest import short
from analyzer.model import schema
from analyzer.model.snapshot import Tables
from analyzer.model.spill import ColumnSpill, Deferred
from analyzer.parsers import containers as cparse
from analyzer.parsers import drivers as dparse
from analyzer.parsers import buildcache, containerd, imagestore, legacy, networks, volumes
from analyzer.parsers.rootview import RootView
from analyzer.sources.locate import RootCandidate

T = TypeVar("T")


def _guard(view: RootView, what: str, fn: Callable[[], T], empty: T) -> T:
    """Run one parser; an unexpected exception becomes an issue, not a crash."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the one last-resort boundary per artefact
        view.issues.add("parse.error", f"{what} could not be parsed: {type(exc).__name__}: {exc}",
                        severity="error", detail=type(exc).__name__)
        return empty


#: files-table columns held as pandas strings (pyarrow-backed: the Arrow buffers are shared)
_STRINGS = ("path", "linkname", "xattrs_json", "sha256")
_TIMES = {"mtime": "mtime_ns", "atime": "atime_ns", "ctime": "ctime_ns"}


def root_files(raw: Any, prefix: str, spill: dict[str, ColumnSpill] | None = None
               ) -> pa.Table:
    """The index rows under the data-root ``prefix``, paths relative to it.

    Takes ``raw.files`` over (it is set to ``None``): the member index is the largest
    object of an ingest, so it is unpacked, filtered and released batch by batch
    (:meth:`~analyzer.sources.packed.PackedTable.take_batches`): only the rows under the
    data-root are ever held unpacked, and never beside their packed copy. The columns
    named in ``spill`` go to those spills, batch by batch, and are left out of the table.
    """
    files = raw.files
    if files is None:
        raise ValueError("raw.files was already consumed by an earlier build_tables")
    raw.files = None
    spill = spill or {}
    head = prefix + "/" if prefix else ""
    out = []
    for batch in files.take_batches():
        if head:
            batch = batch.filter(pc.starts_with(batch.column(0), head))
            batch = batch.set_column(0, "path", pc.utf8_slice_codeunits(batch.column(0),
                                                                        len(head)))
        for name, target in spill.items():
            i = batch.schema.get_field_index(name)
            target.append(batch.column(i))
            batch = batch.drop_columns([name])
        if batch.num_rows:
            out.append(batch)
        del batch
        trim()
    kept = files.schema
    for name in spill:
        kept = kept.remove(kept.get_field_index(name))
    return pa.Table.from_batches(out, schema=kept)


def _string_series(chunks: list[pa.Array]) -> pd.Series:
    """A string column of the index as a pyarrow-backed pandas ``string`` column, in
    one Arrow chunk (:func:`~analyzer.textcols.one_chunk`); the ``chunks`` are released
    from the list as they are copied (the caller must hold no other reference)."""
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(
        [one_chunk(chunks)], pa.string())), dtype=pd.StringDtype(), copy=False)


def _sorted_category(ser: pd.Series) -> pd.Series:
    """A categorical with sorted ``string`` categories, as ``astype("category")`` gives."""
    cats = [str(c) for c in ser.cat.categories]
    new = sorted(cats)
    codes = ser.cat.codes.to_numpy()
    remap = np.array([new.index(c) for c in cats] + [-1], dtype=np.int16)
    return pd.Series(pd.Categorical.from_codes(
        remap[codes], dtype=pd.CategoricalDtype(pd.Index(new, dtype="string"))))


#: the files table's 32-bit columns (mode, owners, device numbers): the pass keeps 64 bits
_NARROW = {"int32": pa.int32(), "uint32": pa.uint32()}


def _narrow(arr: pa.ChunkedArray, dtype: str, name: str, issues: Any) -> pa.ChunkedArray:
    """``arr`` as the 32-bit type of ``dtype``. A value outside the dtype's
    :data:`~analyzer.model.schema.RANGES` (only a crafted pax or base-256 header holds
    one: Linux stores 32-bit owners and device numbers) becomes null, reported once per
    column as ``archive.field_range``."""
    lo, hi = schema.RANGES[dtype]
    bad = pc.or_(pc.less(arr, lo), pc.greater(arr, hi))
    count = pc.sum(bad).as_py() or 0
    if count:
        issues.add("archive.field_range", f"{count} member(s) have a {name} outside "
                   f"{lo}..{hi}; recorded as empty", severity="warning")
        arr = pc.if_else(bad, pa.scalar(None, arr.type), arr)
    return pc.cast(arr, _NARROW[dtype])


#: files-table columns no loader reads, held in a temporary file during the build
#: (:mod:`analyzer.model.spill`): the hex digests are ~64 bytes of each hashed member
SPILLED = ("sha256",)


def files_frame(raw: Any, prefix: str) -> tuple[pd.DataFrame, list[Deferred]]:
    """The member index under the data-root ``prefix`` as the ``files`` table, without
    the :data:`SPILLED` columns, and those columns (see :class:`~analyzer.model.
    snapshot.Tables`, which puts them back when the table is first read).

    Takes ``raw.files`` over (see :func:`root_files`) and converts column by column,
    dropping each Arrow column once converted; the table is only ever referenced
    here, so the peak is the table plus one column. String columns become one
    Arrow chunk each (:func:`~analyzer.textcols.one_chunk`) and stay Arrow-backed.
    """
    raw_issues = raw.info.issues
    names = [c.name for c in schema.columns("files")]
    spills = {name: ColumnSpill(name, pa.string()) for name in SPILLED}
    files = root_files(raw, prefix, spills)
    deferred = [Deferred(spills[name], names.index(name), _string_series) for name in SPILLED]
    out: dict[str, Any] = {}
    for col in schema.columns("files"):
        name = col.name
        if name in spills:
            continue
        src = _TIMES.get(name, name)
        arr = files[src]
        files = files.drop_columns([src])
        if name in _STRINGS:
            chunks, arr = arr.chunks, None
            ser = _string_series(chunks)
        elif name == "kind":
            ser = _sorted_category(pc.dictionary_encode(arr).to_pandas())
        elif name in _TIMES:
            ser = pc.cast(arr, pa.timestamp("ns", tz="UTC")).to_pandas()
            if str(ser.dtype) != "datetime64[ns, UTC]":
                ser = ser.astype("datetime64[ns, UTC]")
        elif col.dtype in _NARROW:
            ser = _narrow(arr, col.dtype, name, raw_issues).to_pandas(
                types_mapper={pa.int32(): pd.Int32Dtype(), pa.uint32(): pd.UInt32Dtype()}.get)
        elif col.dtype == "int":
            ser = arr.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        else:
            ser = arr.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
        del arr
        trim()  # the Arrow column just converted: the peak is the table plus one column
        want = schema.DTYPES[col.dtype]
        if col.dtype != "category" and str(ser.dtype) != str(pd.Series([], dtype=want).dtype):
            ser = ser.astype(want)
        out[name] = ser.reset_index(drop=True)
    del files
    trim()  # the pass's batches: give the pages back
    return pd.DataFrame(out, copy=False), deferred


class IndexedView(RootView):
    """A :class:`RootView` whose path lookups scale with the index.

    ``exists`` looks paths up in a :class:`~analyzer.textcols.PathSet` (rows ordered by
    a 64-bit key, 16 B/member) instead of a set of every path as Python strings
    (~200 B/member); ``top_dirs`` scans the column window by window with Arrow kernels.
    """

    _paths: Any = None

    def exists(self, rel: str) -> bool:
        if self._paths is None:
            self._paths = PathSet(dparse.arrow_strings(self.files["path"]))
        return rel in self._paths

    def top_dirs(self) -> list[str]:
        kinds = self.files["kind"]
        names = dparse.unique_groups(self.files, r"^([^/]+)/")
        paths = dparse.arrow_strings(self.files["path"])
        for s in range(0, len(paths), dparse.WINDOW):
            top = pc.invert(pc.match_substring(paths.slice(s, dparse.WINDOW), "/")).to_numpy(
                zero_copy_only=False)
            top &= (kinds.iloc[s:s + dparse.WINDOW] == "dir").to_numpy(dtype=bool, na_value=False)
            if top.any():
                names.update(paths.slice(s, dparse.WINDOW).filter(pa.array(top)).to_pylist())
        return sorted(names)


def build_tables(raw: Any, cand: RootCandidate) -> tuple[Tables, dict[str, Any]]:
    """All tables of one data-root plus the snapshot metadata row."""
    issues = raw.info.issues
    files, deferred = files_frame(raw, cand.prefix)
    view = IndexedView(cand.prefix, files, raw.captured, issues)
    tables = Tables({"files": files}, {"files": deferred})

    # -- image store ---------------------------------------------------------------
    drivers_present = dparse.present_drivers(view)
    store_drvs = imagestore.store_drivers(view)
    stores = {d: _guard(view, f"image store {d}", lambda d=d: imagestore.parse_store(view, d),
                        imagestore.ImageStore(driver=d)) for d in store_drvs}
    crows = _guard(view, "containers", lambda: cparse.parse_containers(view), cparse.ContainerRows())
    cstore = _containerd_store(raw, view, crows)
    if cstore is not None:
        stores[cstore.snapshotter] = cstore.store
    active = _active_driver(stores, crows, drivers_present)
    store = stores.get(active) if active else None
    for d, s in stores.items():
        if d != active and (s.images or s.layers):
            issues.add("root.partial", f"a second image store for driver {d!r} ({len(s.images)} "
                       f"images) is present; the daemon only loads {active!r}", severity="info")
    store = store or imagestore.ImageStore(driver=active or "")
    # -- pre-1.10 graph/ layout (analyzer.parsers.legacy) -------------------------------
    legacy_used = False
    if legacy.has_graph(view):
        if stores:  # a migrated host: the daemon loads the v2 store only
            issues.add("legacy.leftover", legacy.leftover_summary(view), path="graph",
                       severity="info")
        else:
            store = _guard(view, "pre-1.10 image store (graph/)",
                           lambda: legacy.parse_graph(view, active or ""), store)
            legacy_used = True
    # -- end pre-1.10 -------------------------------------------------------------------

    # -- driver directories --------------------------------------------------------
    dirs = []
    for drv in drivers_present:
        if drv in dparse.UNREADABLE:
            issues.add("driver.unreadable", f"{drv}: {dparse.UNREADABLE[drv]}", path=drv,
                       severity="warning")
        dd = _guard(view, f"{drv} directories", lambda drv=drv: dparse.driver_dirs(view, drv), None)
        if dd is not None and not dd.dirs.empty:
            dirs.append(dd.dirs.assign(driver=drv))
    if cstore is not None and cstore.dirs:
        dirs.append(containerd.dir_frame(cstore, files))
    dir_df = pd.concat(dirs, ignore_index=True) if dirs else pd.DataFrame(
        columns=["dir_id", "driver", "path", "content_path", "files", "content_bytes", "link_id",
                 "lower", "has_merged"])
    dir_index = {(r.driver, r.dir_id): r for r in dir_df.itertuples()}
    _check_lower_links(view, dir_df)

    # -- layers ----------------------------------------------------------------------
    image_refs: dict[str, int] = {}
    tagged = {t["image_id"] for t in store.tags}
    children: dict[str, int] = {}
    for img in store.images:
        if img["parent_id"]:
            children[img["parent_id"]] = children.get(img["parent_id"], 0) + 1
    for img in store.images:
        for c in store.chains.get(img["image_id"], []):
            image_refs[c] = image_refs.get(c, 0) + 1
        img["tagged"] = img["image_id"] in tagged
        img["children"] = children.get(img["image_id"], 0)
    owners: dict[str, tuple[str, str]] = {}
    for layer in store.layers:
        cache = layer["cache_id"]
        path = layer.pop("driver_dir", None) or (_content_path(active, cache) if cache else None)
        layer["driver_dir"] = path
        layer["dir_present"] = bool(cache) and (active, cache) in dir_index
        layer["image_refs"] = image_refs.get(layer["chain_id"], 0)
        if cache and not layer["removing"]:
            owners[cache] = ("image-layer", layer["chain_id"])
            if not layer["dir_present"] and active not in dparse.UNREADABLE:
                issues.add("layer.dir_missing", f"layer {short(layer['chain_id'])}: directory "
                           f"{path} is not in the snapshot", path=path or "", severity="warning")

    # -- containers ------------------------------------------------------------------
    for c in crows.containers:
        m = store.mounts.get(c["container_id"], {})
        c["mount_id"] = m.get("mount_id")
        c["init_id"] = m.get("init_id")
        drv = c["driver"] or active
        if c["mount_id"]:
            owners[c["mount_id"]] = ("container-rw", c["container_id"])
            row = dir_index.get((drv, c["mount_id"]))
            if row is None or drv in dparse.UNREADABLE:  # zfs/devicemapper: not in a tar
                c["size_rw_bytes"] = None
            elif drv in dparse.NAIVE_DIFF_DRIVERS and c["init_id"] and \
                    (drv, c["init_id"]) in dir_index:
                c["size_rw_bytes"] = _guard(view, f"RW size of {c['name']}", lambda: dparse.
                                            naive_diff_size(files, row.content_path, dir_index[
                                                (drv, c["init_id"])].content_path), None)
            elif drv == "overlay" and c["init_id"] and (drv, c["init_id"]) in dir_index:
                # overlay v1 is a naive-diff driver too (merged vs init merged; legacy fix)
                c["size_rw_bytes"] = _guard(view, f"RW size of {c['name']}", lambda: dparse.
                                            overlay_diff_size(files, row.content_path, dir_index[
                                                (drv, c["init_id"])].content_path,
                                                f"overlay/{row.lower}/root" if isinstance(
                                                    row.lower, str) else None), None)
            else:
                c["size_rw_bytes"] = None if pd.isna(row.content_bytes) else int(row.content_bytes)
        if c["init_id"]:
            owners[c["init_id"]] = ("container-init", c["container_id"])
    if not dir_df.empty:
        dir_df["role"] = [owners.get(d, ("orphan", None))[0] for d in dir_df["dir_id"]]
        dir_df["owner"] = [owners.get(d, ("orphan", None))[1] for d in dir_df["dir_id"]]
        if cstore is not None:
            containerd.refine_roles(dir_df, cstore.snapshotter)

    vol_rows = _guard(view, "volumes", lambda: volumes.parse_volumes(view, crows.mounts), [])
    net_store = _guard(view, "networks", lambda: networks.read_network_db(view),
                       networks.NetworkStore())
    net_rows = _guard(view, "networks", lambda: networks.parse_networks(view, net_store), [])
    log_rows = _guard(view, "logs", lambda: _log_columns(raw, cand.prefix, crows.containers),
                      None)
    bk_layers = {lay["chain_id"]: int(lay["size_bytes"]) for lay in store.layers
                 if not lay["removing"] and isinstance(lay.get("size_bytes"), int)}
    bk_chains = {c for img in store.images if img.get("valid") is not False
                 for c in store.chains.get(img["image_id"], [])}
    bk_dirs = {} if active in dparse.NAIVE_DIFF_DRIVERS else {
        r.dir_id: int(r.content_bytes) for r in dir_df.itertuples()
        if r.driver == active and not pd.isna(r.content_bytes)}
    cache_rows = _guard(view, "build cache", lambda: buildcache.parse_build_cache(
        view, bk_chains, bk_layers, bk_dirs, cstore), [])

    tables.update({
        "images": schema.frame("images", store.images),
        "image_tags": schema.frame("image_tags", store.tags),
        "image_history": schema.frame("image_history", store.history),
        "layers": schema.frame("layers", store.layers),
        "layer_dirs": schema.frame("layer_dirs", dir_df.to_dict("records")),
        "containers": schema.frame("containers", crows.containers),
        "container_mounts": schema.frame("container_mounts", crows.mounts),
        "container_networks": schema.frame("container_networks", crows.networks),
        "volumes": schema.frame("volumes", vol_rows),
        "networks": schema.frame("networks", net_rows),
        "logs": schema.frame("logs", log_rows),
        "build_cache": schema.frame("build_cache", cache_rows),
    })
    meta = _meta(raw, cand, view, tables, active, drivers_present,
                 {active or "": store} if legacy_used else stores)  # legacy: graph/ is the store
    if legacy_used:
        meta["docker_version_hints"] = json.dumps(json.loads(meta["docker_version_hints"])
                                                  + ["pre-1.10 graph/ layout"])
    tables["issues"] = schema.frame("issues", issues.records())
    meta["issue_count"] = len(issues)
    tables["snapshot"] = schema.frame("snapshot", [meta])
    return tables, meta


def _containerd_store(raw: Any, view: RootView, crows: cparse.ContainerRows
                      ) -> "containerd.ContainerdStore | None":
    """The containerd image store of this root, when it used one (else None)."""
    rel = getattr(raw, "containerd_rel", None)  # decided by pipeline.mount_containerd
    if rel is None:
        return None
    drivers = [c["driver"] for c in crows.containers if c["driver"] in SNAPSHOTTERS]
    snapshotter = max(sorted(set(drivers)), key=drivers.count) if drivers else None
    cs = _guard(view, "containerd image store",
                lambda: containerd.read_store(view, rel, snapshotter), None)
    if cs is None or not (cs.meta.images or drivers or cs.meta.snapshots.get(cs.snapshotter)):
        return None  # graphdriver mode keeps only manifests and leases in containerd
    return cs


def _check_lower_links(view: RootView, dirs: pd.DataFrame) -> None:
    """Report overlay ``lower`` entries whose short link no layer directory owns."""
    for drv in ("overlay2", "fuse-overlayfs"):
        sub = dirs[dirs["driver"] == drv]
        if sub.empty:
            continue
        known = set(sub["link_id"].dropna())
        missing: dict[str, list[str]] = {}
        for dir_id, lower in zip(sub["dir_id"], sub["lower"]):
            if not isinstance(lower, str):
                continue
            for entry in lower.split(":"):
                link = entry.split("/", 1)[-1]
                if link not in known:
                    missing.setdefault(link, []).append(dir_id)
        for link, users in sorted(missing.items()):
            view.issues.add("link.dangling", f"{drv}: short link {link} (in the lower file of "
                            f"{len(users)} layer(s), e.g. {users[0][:12]}) belongs to no layer "
                            "directory in the snapshot", path=f"{drv}/l/{link}")


def _content_path(driver: str | None, dir_id: str) -> str | None:
    if driver in dparse.LAYOUTS:
        return dparse.LAYOUTS[driver][1].format(id=dir_id, sub="root")
    return f"{driver}/{dir_id}" if driver else None


def _active_driver(stores: dict[str, imagestore.ImageStore], crows: cparse.ContainerRows,
                   present: list[str]) -> str | None:
    """The driver the daemon ran with: containers' Driver, else the fullest store."""
    counts: dict[str, int] = {}
    for c in crows.containers:
        if c["driver"]:
            counts[c["driver"]] = counts.get(c["driver"], 0) + 1
    for d, s in stores.items():
        counts[d] = counts.get(d, 0) + 2 * len(s.images) + len(s.layers)
    if counts:
        return max(sorted(counts), key=lambda d: counts[d])
    return present[0] if present else None


def _log_columns(raw: Any, prefix: str, containers: list[dict[str, Any]]
                 ) -> dict[str, list[Any]]:
    """The logs table columns, files in the order ``docker logs`` reads them."""
    from analyzer.formats import logfiles

    head = prefix + "/" if prefix else ""
    max_files = {c["container_id"]: logfiles.max_file_of(
        json.loads(c["hostconfig_json"]) if c.get("hostconfig_json") else None)
        for c in containers}
    by_container: dict[str, dict[str, Any]] = {}
    for lf in raw.logs:
        # only this root's own containers/: a docker-in-docker root inside a layer folder
        # has log files too, but they belong to that nested daemon, not to this one
        if lf.path.startswith(head + "containers/"):
            by_container.setdefault(lf.container_id, {})[lf.path[len(head):]] = lf
    cols: dict[str, list[Any]] = {k: [] for k in ("container_id", "seq", "stream", "time",
                                                  "time_ns", "line", "partial", "source")}
    for cid in sorted(by_container):
        group = by_container[cid]
        seq = 0
        for rel in logfiles.container_read_order(group, max_files.get(cid)):
            for rec in group[rel].records:
                cols["container_id"].append(cid)
                cols["seq"].append(seq)
                cols["stream"].append(rec.stream)
                cols["time"].append(pd.Timestamp(rec.time_ns, unit="ns", tz="UTC"))
                cols["time_ns"].append(rec.time_ns)
                cols["line"].append(rec.line)
                cols["partial"].append(rec.partial)
                cols["source"].append(rel)
                seq += 1
    return cols


def _host_root(containers: pd.DataFrame) -> str | None:
    """The data-root's path on the seized host, from paths recorded in container configs."""
    for cfg_text in containers["config_json"].dropna():
        try:
            cfg = json.loads(cfg_text)
        except ValueError:
            continue
        for key in ("HostnamePath", "ResolvConfPath", "HostsPath", "LogPath"):
            value = cfg.get(key) or ""
            m = re.match(r"^(.*)/containers/[0-9a-f]{64}/", value)
            if m:
                return m.group(1)
    return None


def _meta(raw: Any, cand: RootCandidate, view: RootView, tables: Tables,
          active: str | None, present: list[str], stores: dict[str, Any]) -> dict[str, Any]:
    info = raw.info
    hints = sorted({v for v in tables["images"]["docker_version"].dropna().tolist()})
    engine_id = view.text("engine-id")
    if engine_id:
        hints.append("engine-id file present (23.0+)")
    # the containerd image store leaves containers whose Driver is a snapshotter, and
    # rootfs/<snapshotter>/ mount points; a dockerd-managed containerd/daemon root alone
    # is normal in graphdriver mode (it holds only manifests and leases there)
    snapshotter = tables["containers"]["driver"].isin(list(SNAPSHOTTERS)).any()
    cinfo = getattr(raw, "containerd_info", None)
    if any(d in SNAPSHOTTERS for d in stores):
        hints.append("containerd image store (24.0+)")
    graph = {d: s for d, s in stores.items() if d not in SNAPSHOTTERS and (s.images or s.layers)}
    c8d = any(d in SNAPSHOTTERS for d in stores)
    store_kind = "graphdriver" if any(d not in SNAPSHOTTERS for d in stores) else "none"
    if c8d or snapshotter or (view.exists("rootfs") and store_kind == "none"):
        store_kind = "both" if graph else "containerd"
    if store_kind == "both":
        view.issues.add("store.both", "this root holds both a graphdriver image store "
                        f"({', '.join(sorted(graph))}) and containerd image store data; the "
                        f"daemon used {active!r}", severity="info")
    if store_kind in ("containerd", "both") and not c8d:
        view.issues.add("store.containerd_missing", "this root used the containerd image store, "
                        "but the archive holds no containerd root: images and layers are not "
                        "in it; tar /var/lib/containerd too (analyzer SNAPSHOT --containerd "
                        "CONTAINERD_TAR)", severity="warning")
    mt = view.files["mtime"]
    return {
        "evidence_path": info.path, "evidence_kind": info.kind, "compression": info.compression,
        "evidence_bytes": info.size, "evidence_sha256": info.sha256,
        "sha256_kind": info.sha256_kind, "complete": info.complete, "members": info.members,
        "root_prefix": cand.prefix, "roots_found": json.dumps([c.prefix for c in raw.roots]),
        "host_data_root": _host_root(tables["containers"]),
        "driver": ",".join([active] + [d for d in present if d != active]) if active
        else ",".join(present),
        "image_store": store_kind, "docker_version_hints": json.dumps(hints),
        "containerd_root": getattr(raw, "containerd_prefix", None) if c8d else None,
        "containerd_mount": getattr(raw, "containerd_rel", None) if c8d else None,
        "containerd_evidence_path": cinfo.path if cinfo else None,
        "containerd_evidence_sha256": cinfo.sha256 if cinfo else None,
        "acquired_at": mt.max() if len(mt) else None, "tool_version": __version__,
    }
