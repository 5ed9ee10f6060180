"""Every table the analyzer produces: columns, dtypes and meaning, in one place.

Build frames only with :func:`frame` (fixes column order and dtypes, rejects
unknown columns) and check them with :func:`validate`. ``docs/schema.md`` is
generated from this module (``python -m analyzer.model.schema > docs/schema.md``)
and a test fails when it is stale.

Conventions: sizes are ``*_bytes`` (int64, bytes); times are ``*_at``
(``datetime64[ns, UTC]``) with the original text kept in ``*_raw`` where parsing
can lose information; ids are full, with their ``sha256:`` prefix where Docker
writes one; lists and maps are JSON text (``*_json`` or documented as JSON);
missing values are NA, never ``""`` or ``0``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:  # pragma: no cover - pandas is imported where a frame is built
    import pandas as pd

#: our dtype names → pandas dtypes
DTYPES: dict[str, Any] = {
    "string": "string",
    "int": "Int64",
    "int32": "Int32",  # narrow columns of the files table (10^7 rows: 4 B saved per cell)
    "uint32": "UInt32",
    "bool": "boolean",
    "datetime": "datetime64[ns, UTC]",
    "category": "category",
    "float": "Float64",
    "bytes": "object",
}


@dataclass(frozen=True)
class Column:
    """One column: name, dtype (a key of :data:`DTYPES`) and what it means."""

    name: str
    dtype: str
    doc: str


def _cols(*specs: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in specs)


TABLES: dict[str, tuple[str, tuple[Column, ...]]] = {
    "snapshot": ("One row: the evidence and how it was read.", _cols(
        ("evidence_path", "string", "absolute path of the evidence file or directory"),
        ("evidence_kind", "category", "tar or directory"),
        ("compression", "category", "none, gzip, zstd, xz or bzip2"),
        ("evidence_bytes", "int", "size of the evidence file"),
        ("evidence_sha256", "string", "sha256 of the evidence bytes (directories: of the listing)"),
        ("sha256_kind", "category", "bytes or listing"),
        ("complete", "bool", "false when evidence data was lost (truncated, corrupt or skipped parts)"),
        ("members", "int", "entries in the snapshot"),
        ("root_prefix", "string", "path of the data-root inside the snapshot ('' = top)"),
        ("roots_found", "string", "JSON list of every data-root prefix found"),
        ("host_data_root", "string", "the data-root's path on the seized host, from container paths"),
        ("driver", "string", "storage driver(s) in use, comma separated"),
        ("image_store", "category", "graphdriver, containerd, both or none"),
        ("containerd_root", "string", "containerd store: path of the containerd root in the "
         "snapshot (shown under the data-root as @containerd/ when outside it)"),
        ("containerd_mount", "string", "where that root's files are in the files table: "
         "containerd/daemon (dockerd's own) or @containerd (a root outside the data-root)"),
        ("containerd_evidence_path", "string", "the second evidence (--containerd) holding that "
         "root; NA when it is in the main snapshot"),
        ("containerd_evidence_sha256", "string", "sha256 of the second evidence"),
        ("docker_version_hints", "string", "JSON list of version evidence (image docker_version, layout)"),
        ("acquired_at", "datetime", "estimated acquisition time: the newest mtime in the data-root"),
        ("tool_version", "string", "analyzer version that read the snapshot"),
        ("parameters", "string", "JSON of the read parameters (root, hashing)"),
        ("issue_count", "int", "number of issues recorded"),
    )),
    "images": ("One row per image config in the image store.", _cols(
        ("image_id", "string", "sha256:<hex> of the config bytes (graphdriver store); digest of "
         "the index or manifest (containerd store)"),
        ("valid", "bool", "the config bytes hash to the id (the daemon skips invalid ones)"),
        ("created_at", "datetime", "config 'created'"),
        ("created_raw", "string", "config 'created' as written"),
        ("parent_id", "string", "parent image id from imagedb metadata (local builds)"),
        ("architecture", "string", "config architecture"),
        ("os", "string", "config os"),
        ("variant", "string", "config variant"),
        ("author", "string", "config author"),
        ("docker_version", "string", "config docker_version (classic builder)"),
        ("comment", "string", "config comment"),
        ("container", "string", "container the image was committed from (classic builder)"),
        ("user", "string", "config.User"),
        ("entrypoint_json", "string", "config.Entrypoint (JSON)"),
        ("cmd_json", "string", "config.Cmd (JSON)"),
        ("env_json", "string", "config.Env (JSON)"),
        ("labels_json", "string", "config.Labels (JSON)"),
        ("exposed_ports_json", "string", "config.ExposedPorts (JSON)"),
        ("volumes_json", "string", "config.Volumes (JSON)"),
        ("working_dir", "string", "config.WorkingDir"),
        ("layer_count", "int", "number of diff ids"),
        ("top_chain_id", "string", "chain id of the top layer (NA for an image without layers)"),
        ("size_bytes", "int", "docker images SIZE: layer sizes of the whole chain (containerd "
         "store: manifest, config and layer descriptors plus unpacked snapshot usage)"),
        ("content_bytes", "int", "containerd store: descriptor sizes of the target, platform "
         "manifest, config and layer blobs (image inspect Size)"),
        ("unpacked_bytes", "int", "containerd store: usage of the unpacked snapshot chain"),
        ("target_media_type", "string", "containerd store: media type of the image's target "
         "(index or manifest)"),
        ("last_tag_at", "datetime", "imagedb metadata lastUpdated (when a tag was last set)"),
        ("last_tag_raw", "string", "lastUpdated as written (local time offset)"),
        ("built_locally", "bool", "imagedb metadata builtLocally (26.0+); NA when absent"),
        ("tagged", "bool", "has at least one tag or digest reference"),
        ("children", "int", "images whose parent is this image"),
        ("config_path", "string", "path of the config file relative to the data-root"),
        ("config_json", "string", "the config file as written"),
    )),
    "image_tags": ("One row per reference in repositories.json.", _cols(
        ("image_id", "string", "image the reference points at"),
        ("repository", "string", "familiar repository name (nginx, user/app, ghcr.io/x/y)"),
        ("tag", "string", "tag, for tag references"),
        ("digest", "string", "manifest digest, for digest references"),
        ("reference", "string", "the reference as written (repo:tag or repo@digest)"),
        ("image_present", "bool", "the image config is in the snapshot"),
    )),
    "image_history": ("One row per config history entry, oldest first.", _cols(
        ("image_id", "string", "image"),
        ("step", "int", "index in config history (0 = oldest)"),
        ("created_at", "datetime", "history created"),
        ("created_raw", "string", "history created as written"),
        ("created_by", "string", "the build step"),
        ("author", "string", "history author"),
        ("comment", "string", "history comment (buildkit.dockerfile.v0 for BuildKit)"),
        ("empty_layer", "bool", "the step produced no layer"),
        ("diff_id", "string", "layer this step produced"),
        ("chain_id", "string", "chain id of that layer in this image"),
        ("layer_size_bytes", "int", "size of that layer (0 for empty steps)"),
    )),
    "layers": ("One row per read-only layer in the layer database.", _cols(
        ("chain_id", "string", "sha256:<hex> chain id (the layerdb folder name)"),
        ("diff_id", "string", "sha256 of the uncompressed layer tar"),
        ("parent_chain_id", "string", "chain id of the parent layer"),
        ("cache_id", "string", "driver directory name"),
        ("size_bytes", "int", "layerdb size: bytes this layer adds"),
        ("chain_ok", "bool", "the chain id recomputed from parent and diff id matches the folder"),
        ("has_tar_split", "bool", "tar-split.json.gz is present"),
        ("removing", "bool", "a '-removing' leftover of an interrupted delete"),
        ("driver_dir", "string", "the layer's content folder relative to the data-root"),
        ("dir_present", "bool", "that folder is in the snapshot"),
        ("image_refs", "int", "images whose chain includes this layer"),
        ("blob_digest", "string", "containerd store: digest of the layer's (compressed) blob"),
        ("blob_size", "int", "containerd store: size of that blob"),
        ("blob_media_type", "string", "containerd store: media type of that blob"),
    )),
    "layer_dirs": ("One row per storage-driver directory, referenced or orphaned.", _cols(
        ("dir_id", "string", "directory name (cache id, mount id or mount id + -init)"),
        ("driver", "category", "overlay2, vfs, aufs, overlay, fuse-overlayfs, btrfs, zfs"),
        ("path", "string", "directory relative to the data-root"),
        ("content_path", "string", "folder holding the layer's own files"),
        ("role", "category", "image-layer, container-init, container-rw, orphan; containerd "
         "store also layer-parent (ancestor snapshot of an image layer) and build-cache"),
        ("owner", "string", "chain id or container id that references it"),
        ("link_id", "string", "overlay2 short link id (link file)"),
        ("lower", "string", "overlay2 lower file / aufs layers / overlay lower-id"),
        ("files", "int", "entries under the content folder"),
        ("content_bytes", "int", "bytes of the content folder, counted like the daemon (non-dirs, inode once)"),
        ("has_merged", "bool", "a mounted merged/ view was captured (live acquisition)"),
        ("snapshot_key", "string", "containerd store: the snapshot's key in dockerd's namespace "
         "(chain id, container id, <id>-init); NA for snapshots of other namespaces"),
    )),
    "containers": ("One row per container (config.v2.json + hostconfig.json + state).", _cols(
        ("container_id", "string", "full container id"),
        ("name", "string", "name without the leading '/'"),
        ("image_ref", "string", "Config.Image: the image as the user named it"),
        ("image_id", "string", "image id the container was created from"),
        ("created_at", "datetime", "Created"),
        ("status", "category", "created, running, paused, restarting, exited, dead (as recorded)"),
        ("running", "bool", "State.Running"),
        ("paused", "bool", "State.Paused"),
        ("restarting", "bool", "State.Restarting"),
        ("oom_killed", "bool", "State.OOMKilled"),
        ("dead", "bool", "State.Dead"),
        ("pid", "int", "State.Pid"),
        ("exit_code", "int", "State.ExitCode"),
        ("error", "string", "State.Error"),
        ("started_at", "datetime", "State.StartedAt (NA when never started)"),
        ("finished_at", "datetime", "State.FinishedAt (NA when never finished)"),
        ("health", "string", "State.Health.Status"),
        ("path", "string", "Path (the binary that ran)"),
        ("args_json", "string", "Args (JSON)"),
        ("env_json", "string", "Config.Env (JSON)"),
        ("labels_json", "string", "Config.Labels (JSON)"),
        ("user", "string", "Config.User"),
        ("hostname", "string", "Config.Hostname"),
        ("driver", "string", "storage driver or snapshotter"),
        ("mount_id", "string", "RW layer directory (layerdb mounts/<id>/mount-id)"),
        ("init_id", "string", "init layer directory"),
        ("restart_policy", "string", "HostConfig.RestartPolicy.Name"),
        ("restart_count", "int", "RestartCount"),
        ("privileged", "bool", "HostConfig.Privileged"),
        ("network_mode", "string", "HostConfig.NetworkMode"),
        ("pid_mode", "string", "HostConfig.PidMode"),
        ("ipc_mode", "string", "HostConfig.IpcMode"),
        ("cap_add_json", "string", "HostConfig.CapAdd (JSON)"),
        ("cap_drop_json", "string", "HostConfig.CapDrop (JSON)"),
        ("security_opt_json", "string", "HostConfig.SecurityOpt (JSON)"),
        ("log_driver", "string", "HostConfig.LogConfig.Type"),
        ("log_path", "string", "LogPath on the host"),
        ("size_rw_bytes", "int", "bytes in the RW layer, counted like the daemon"),
        ("config_path", "string", "config.v2.json path relative to the data-root"),
        ("config_json", "string", "config.v2.json (or pre-1.10 config.json) as written"),
        ("hostconfig_json", "string", "hostconfig.json as written"),
    )),
    "container_mounts": ("One row per container mount point.", _cols(
        ("container_id", "string", "container"),
        ("destination", "string", "path inside the container"),
        ("type", "string", "bind, volume, tmpfs, npipe"),
        ("source", "string", "host path (binds) or volume folder"),
        ("name", "string", "volume name"),
        ("driver", "string", "volume driver"),
        ("rw", "bool", "mounted read-write"),
        ("mode", "string", "mode / relabel string as given by the user"),
        ("propagation", "string", "bind propagation"),
    )),
    "container_networks": ("One row per container network endpoint.", _cols(
        ("container_id", "string", "container"),
        ("network", "string", "network name"),
        ("network_id", "string", "network id"),
        ("endpoint_id", "string", "endpoint id"),
        ("ip_address", "string", "IPv4 address"),
        ("ip_prefix_len", "int", "IPv4 prefix length"),
        ("gateway", "string", "IPv4 gateway"),
        ("mac_address", "string", "MAC address"),
        ("aliases_json", "string", "network aliases (JSON)"),
    )),
    "volumes": ("One row per volume (metadata.db entry or volumes/<name> folder).", _cols(
        ("name", "string", "volume name"),
        ("driver", "string", "volume driver"),
        ("labels_json", "string", "labels (JSON)"),
        ("options_json", "string", "driver options (JSON)"),
        ("anonymous", "bool", "carries the com.docker.volume.anonymous label"),
        ("created_at", "datetime", "ctime of volumes/<name> (what the API reports)"),
        ("in_db", "bool", "listed in volumes/metadata.db"),
        ("dir_present", "bool", "volumes/<name>/_data is in the snapshot"),
        ("files", "int", "entries under _data"),
        ("size_bytes", "int", "bytes under _data, counted like the daemon"),
        ("ref_count", "int", "containers that mount it"),
    )),
    "networks": ("One row per network in network/files/local-kv.db.", _cols(
        ("network_id", "string", "network id"),
        ("name", "string", "network name"),
        ("driver", "string", "network driver (bridge, overlay, macvlan...)"),
        ("scope", "string", "local, swarm, global"),
        ("created_at", "datetime", "created"),
        ("internal", "bool", "internal network"),
        ("attachable", "bool", "attachable"),
        ("ipv6", "bool", "IPv6 enabled"),
        ("subnets_json", "string", "IPv4/IPv6 subnets and gateways (JSON)"),
        ("endpoints", "int", "endpoints recorded for this network"),
        ("config_json", "string", "the stored network object"),
    )),
    "logs": ("One row per container log record, in the order docker logs prints them.", _cols(
        ("container_id", "string", "container"),
        ("seq", "int", "record number within the container's log"),
        ("stream", "category", "stdout or stderr"),
        ("time", "datetime", "record time"),
        ("time_ns", "int", "record time, ns since the epoch (full precision)"),
        ("line", "bytes", "the bytes docker logs prints for this record"),
        ("partial", "bool", "part of a line split by the daemon (16 KiB)"),
        ("source", "category", "log file relative to the data-root"),
    )),
    "files": ("One row per snapshot member under the data-root (the index).", _cols(
        ("path", "string", "path relative to the data-root"),
        ("kind", "category", "file, dir, symlink, hardlink, char, block, fifo, other"),
        ("size", "int", "payload bytes (regular files)"),
        ("mode", "int32", "permission bits incl. setuid/setgid/sticky"),
        ("uid", "uint32", "owner uid"),
        ("gid", "uint32", "owner gid"),
        ("mtime", "datetime", "modification time"),
        ("atime", "datetime", "access time, where the archive kept it"),
        ("ctime", "datetime", "change time, where the archive kept it"),
        ("linkname", "string", "symlink target or hardlink target path"),
        ("devmajor", "uint32", "device major (char/block)"),
        ("devminor", "uint32", "device minor (char/block)"),
        ("xattrs_json", "string", "extended attributes (JSON; values as text or base64:...)"),
        ("whiteout", "bool", "an overlay 0:0 char device or an aufs .wh. file"),
        ("opaque", "bool", "an overlay opaque directory (xattr) or aufs .wh..wh..opq"),
        ("sha256", "string", "sha256 of the content (regular files, when hashing)"),
    )),
    "issues": ("One row per problem found in the evidence.", _cols(
        ("code", "category", "stable issue code (see analyzer.issues.CODES)"),
        ("severity", "category", "info, warning or error"),
        ("message", "string", "one human line"),
        ("path", "string", "where (relative to the data-root when known)"),
        ("detail", "string", "exception type or extra context"),
    )),
    "build_cache": ("One row per BuildKit cache record (buildkit/metadata_v2.db _main).", _cols(
        ("cache_id", "string", "record id (the _main bucket key)"),
        ("parent_id", "string", "parent record as the daemon reports it (merge and diff "
         "records: several, comma separated)"),
        ("record_type", "string", "cache.recordType, 'regular' when absent (source.local, "
         "exec.cachemount, frontend, internal, source.git.checkout)"),
        ("description", "string", "cache.description"),
        ("mutable", "bool", "not committed (no snapshot.committed)"),
        ("equal_mutable", "string", "the mutable record this immutable twin shares data with"),
        ("deleted", "bool", "cache.deleted (the daemon drops it at start)"),
        ("listed", "bool", "GET /system/df lists it (false: twin of a mutable record, deleted, "
         "or its parent is missing)"),
        ("shared", "bool", "its layer (snapshots.db chainid) is part of an image, or of a "
         "shared record's ancestry (containerd store: its chain of blob digests is exactly "
         "an image manifest's layer list)"),
        ("size_bytes", "int", "size the daemon reports (NA when it cannot be known offline)"),
        ("size_source", "category", "record, twin, blob-only, layer, snapshots.db or driver-dir"),
        ("created_at", "datetime", "cache.createdAt"),
        ("created_raw", "string", "cache.createdAt as written (Unix ns, JSON)"),
        ("last_used_at", "datetime", "cache.lastUsedAt (NA when the daemon reports none)"),
        ("last_used_raw", "string", "cache.lastUsedAt as written (Unix ns, JSON)"),
        ("usage_count", "int", "cache.usageCount"),
        ("snapshot_id", "string", "snapshot key (cache.snapshot, else the record id)"),
        ("chain_id", "string", "layer chain id recorded for the record in buildkit/snapshots.db"),
    )),
}


def columns(table: str) -> tuple[Column, ...]:
    """The columns of ``table``."""
    return TABLES[table][1]


def frame(table: str, data: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None = None
          ) -> pd.DataFrame:
    """Build a DataFrame of ``table`` from rows (dicts) or a dict of columns.

    Missing columns become NA; unknown keys raise ``KeyError`` (a schema change
    must be made here first).
    """
    import pandas as pd

    cols = columns(table)
    names = [c.name for c in cols]
    if data is None:
        data = []
    if isinstance(data, Mapping):
        unknown = set(data) - set(names)
        if unknown:
            raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
        n = len(next(iter(data.values()))) if data else 0
        colmap = {c: data.get(c, [None] * n) for c in names}
    else:
        rows = list(data)
        for r in rows:
            unknown = set(r) - set(names)
            if unknown:
                raise KeyError(f"{table}: unknown columns {sorted(unknown)}")
        colmap = {c: [r.get(c) for r in rows] for c in names}
    out = {}
    for col in cols:
        out[col.name] = _series(colmap[col.name], col.dtype)
    return pd.DataFrame(out, columns=names)


def _series(values: Any, dtype: str) -> pd.Series:
    import pandas as pd

    if dtype == "datetime":
        return pd.to_datetime(pd.Series(values, dtype="object"), utc=True, errors="coerce"
                              ).astype(DTYPES[dtype])
    if dtype == "bytes":
        return pd.Series(values, dtype="object")
    return pd.Series(values, dtype="object").astype(DTYPES[dtype]) if not isinstance(
        values, pd.Series) else values.astype(DTYPES[dtype])


#: the values our narrow integer dtypes hold (inclusive); anything else is stored as NA
RANGES: dict[str, tuple[int, int]] = {"int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1)}


def cast(ser: pd.Series, dtype: str) -> pd.Series:
    """``ser`` as our ``dtype``. A value outside a narrow dtype's :data:`RANGES` becomes
    NA (pandas' ``astype`` would wrap it: 2**40 as ``UInt32`` is 0, a root owner), e.g. in
    a case folder written before the ``files`` columns were narrowed."""
    if dtype in RANGES:
        lo, hi = RANGES[dtype]
        ser = ser.where(ser.isna() | ((ser >= lo) & (ser <= hi)))
    return ser.astype(DTYPES[dtype])


def validate(table: str, df: pd.DataFrame) -> None:
    """Raise ``ValueError`` unless ``df`` has exactly the columns and dtypes of ``table``."""
    import pandas as pd

    cols = columns(table)
    if list(df.columns) != [c.name for c in cols]:
        raise ValueError(f"{table}: columns {list(df.columns)} != schema {[c.name for c in cols]}")
    for col in cols:
        want = pd.Series([], dtype=DTYPES[col.dtype]).dtype
        got = df[col.name].dtype
        if col.dtype == "category":
            ok = isinstance(got, pd.CategoricalDtype)
        else:
            ok = got == want
        if not ok:
            raise ValueError(f"{table}.{col.name}: dtype {got} != {want}")


def markdown() -> str:
    """The schema as a Markdown document (``docs/schema.md``)."""
    lines = ["# Tables", "",
             "Generated from `analyzer/model/schema.py` by "
             "`python -m analyzer.model.schema > docs/schema.md`; do not edit by hand.", "",
             "Dtypes: " + ", ".join(f"`{k}` = pandas `{v}`" for k, v in DTYPES.items()) + ".", ""]
    for name, (doc, cols) in TABLES.items():
        lines += [f"## `{name}`", "", doc, "", "| column | dtype | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.dtype} | {c.doc} |" for c in cols]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(markdown())
