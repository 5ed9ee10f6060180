"""The containerd image store (Docker 24+ opt-in, 29+ default): images, layers, RW snapshots.

In this store dockerd keeps no ``image/<drv>/`` folder. Images, blobs and
snapshots live in a containerd root - ``<data-root>/containerd/daemon`` when
dockerd runs its own containerd, or the system's ``/var/lib/containerd``
(mounted into the files table as :data:`EXTERNAL`). This module turns that root
into the same rows the graphdriver store gives (:class:`ImageStore`), so every
table, command and analysis works on both stores:

* image = a ``moby`` namespace image record; its id is the digest of the record's
  target (index or manifest), its config is the platform manifest's config blob;
* tags = the record names (``docker.io/library/app:1`` → ``app:1``), dangling
  records are named ``moby-dangling@<digest>``;
* layer = the committed snapshot whose key is the chain id of the config's diff
  ids; its directory is ``io.containerd.snapshotter.v1.<sn>/snapshots/<id>/fs``,
  its size the one the snapshotter recorded at commit;
* container RW layer = the active snapshot keyed by the container id (parent
  ``<id>-init``).

Reference: ``shared/docs/docker-root-format.md`` §1.4, §5.3, §9.5;
``docs/research/containerd-store-rules.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analyzer.errors import BboltFormatError
from analyzer.formats import containerd_db as cdb
from analyzer.formats.digest import chain_ids
from analyzer.formats.timefmt import to_pandas_ts
from analyzer.model.evidence import CONTAINERD_MOUNT, MANAGED_CONTAINERD
from analyzer.parsers.imagestore import ImageStore, add_history, config_fields, split_reference
from analyzer.parsers.rootview import RootView
from analyzer.parsers.times import parse_time

#: where the files of a containerd root outside the data-root appear in the files table,
#: and where dockerd's own containerd keeps its root (both relative to the data-root)
EXTERNAL, MANAGED = CONTAINERD_MOUNT, MANAGED_CONTAINERD
META_DB = "io.containerd.metadata.v1.bolt/meta.db"
BLOBS = "io.containerd.content.v1.content/blobs/sha256"
#: dockerd labels on image records (moby daemon/containerd)
PARENT_LABEL = "org.mobyproject.image.parent"
DANGLING_PREFIX = "moby-dangling@"

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
#: the platform the analyzer assumes the host ran (the daemon picks the host's own)
HOST_PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


def snapshotter_dir(root: str, snapshotter: str) -> str:
    """The snapshotter's folder relative to the data-root."""
    return f"{root}/io.containerd.snapshotter.v1.{snapshotter}"


#: snapshotters whose snapshot keeps its files in ``snapshots/<id>/fs`` (the overlay upper
#: dir, next to ``work``); the others (native, btrfs...) use ``snapshots/<id>`` itself
FS_SUBDIR = ("overlayfs", "fuse-overlayfs", "stargz")


def snapshot_folder(root: str, snapshotter: str, sid: int | str) -> str:
    """The content folder of snapshot ``sid``."""
    sub = "/fs" if snapshotter in FS_SUBDIR else ""
    return f"{snapshotter_dir(root, snapshotter)}/snapshots/{sid}{sub}"


@dataclass
class ContainerdStore:
    """One containerd root as the image store of a data-root."""

    root: str  # relative to the data-root: MANAGED or EXTERNAL
    snapshotter: str
    meta: cdb.MetaDB
    snapshots: dict[str, dict[str, Any]]  # backend name → snapshotter record
    store: ImageStore = field(default_factory=lambda: ImageStore(driver="overlayfs"))
    #: per image id: (manifest digest, config digest, layer blob descriptors)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirs: list[dict[str, Any]] = field(default_factory=list)  # layer_dirs rows

    def chain_usage(self, key: str) -> int:
        """Usage of snapshot ``key`` and all its parents (containerd Stat().Parent walk);
        0 when the snapshot is not known (the daemon's calculateSnapshotTotalUsage)."""
        meta = self.meta.snapshots.get(self.snapshotter, {}).get(key)
        name = meta.get("name") if meta else None
        total = 0
        seen: set[str] = set()
        while name and name in self.snapshots and name not in seen:
            seen.add(name)
            rec = self.snapshots[name]
            total += int(rec.get("size") or 0) if rec.get("kind") == "committed" else 0
            name = rec.get("parent")
        return total

    def key_record(self, key: str) -> dict[str, Any] | None:
        """The snapshotter record of a ``moby`` snapshot key (chain id or container id)."""
        meta = self.meta.snapshots.get(self.snapshotter, {}).get(key)
        if meta is None or not meta.get("name"):
            return None
        return self.snapshots.get(meta["name"])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> int:
    """A descriptor size as written; anything but a non-negative integer counts 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _descriptor_size(view: RootView, root: str, target: dict[str, Any],
                     mdigest: str | None) -> int:
    """Size of the platform manifest's descriptor (the index entry, or the target)."""
    if mdigest is None:
        return 0
    if mdigest == target.get("digest"):
        data = view.read(f"{root}/{BLOBS}/{mdigest[7:]}")
        return len(data) if data is not None else 0
    doc, _ = _blob(view, root, target.get("digest"))
    entries = _dict(doc).get("manifests")
    for m in entries if isinstance(entries, list) else []:
        if isinstance(m, dict) and m.get("digest") == mdigest:
            return _num(m.get("size"))
    return 0


def has_root(view: RootView, root: str) -> bool:
    """True if the pass captured the metadata database of a containerd root at ``root``."""
    return view.read(f"{root}/{META_DB}") is not None


def familiar(name: str) -> str:
    """``docker.io/library/app:1`` → ``app:1`` (docker/distribution FamiliarString)."""
    if not name.startswith("docker.io/"):
        return name
    rest = name[len("docker.io/"):]
    path = rest.split("@")[0].split(":")[0]
    if path.startswith("library/") and path.count("/") == 1:
        return rest[len("library/"):]
    return rest


def _blob(view: RootView, root: str, digest: str | None) -> tuple[Any, bytes | None]:
    """(parsed JSON or None, bytes) of a content-store blob."""
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None, None
    rel = f"{root}/{BLOBS}/{digest[7:]}"
    data = view.read(rel)
    if data is None:
        return None, None
    try:
        return json.loads(data), data
    except (ValueError, UnicodeDecodeError):
        view.issues.add("json.malformed", f"{rel}: blob does not parse as JSON", path=rel)
        return None, data


def _pick_manifest(view: RootView, root: str, target: dict[str, Any]
                   ) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest document, its digest) for a record's target: the host platform's
    manifest of an index whose content is present, else the first present."""
    doc, _ = _blob(view, root, target.get("digest"))
    if not isinstance(doc, dict):
        return None, None
    mt = doc.get("mediaType") or target.get("media_type")
    if "manifests" not in doc and (mt in MANIFEST_TYPES or "config" in doc):
        return doc, target.get("digest")
    listed = doc.get("manifests")
    entries = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
    present = []
    for m in entries:
        plat = _dict(m.get("platform"))
        if _dict(m.get("annotations")).get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        sub, _ = _blob(view, root, m.get("digest"))
        # the daemon skips a platform whose config is not in the content store
        if isinstance(sub, dict) and view.read(
                f"{root}/{BLOBS}/{str(_dict(sub.get('config')).get('digest'))[7:]}") is not None:
            present.append(((plat.get("os"), plat.get("architecture")), sub, m.get("digest")))
    for want in HOST_PLATFORMS:
        for plat, sub, dg in present:
            if plat == want:
                return sub, dg
    return (present[0][1], present[0][2]) if present else (None, None)


def read_store(view: RootView, root: str, snapshotter: str | None = None
               ) -> ContainerdStore | None:
    """Read the containerd root at ``root`` (relative to the data-root), or None.

    ``snapshotter`` is the containers' Driver; without containers, the snapshotter with
    most snapshots in dockerd's namespace (``overlayfs`` when there are none)."""
    rel = f"{root}/{META_DB}"
    data = view.read(rel)
    if data is None:
        return None
    try:
        meta = cdb.read_meta_db(data)  # "moby", or "moby-<uid>.<gid>" with userns-remap
    except BboltFormatError as exc:
        view.issues.add("bbolt.malformed", f"{rel}: {exc}", path=rel)
        return None
    if meta.problems:
        view.issues.add("bbolt.malformed", f"{rel}: {len(meta.problems)} damaged record(s) "
                        f"skipped, e.g. {meta.problems[0]}", path=rel)
    if snapshotter is None:
        snapshotter = max(sorted(meta.snapshots), key=lambda sn: len(meta.snapshots[sn])) \
            if meta.snapshots else "overlayfs"
    snaps: dict[str, dict[str, Any]] = {}
    srel = f"{snapshotter_dir(root, snapshotter)}/metadata.db"
    sdata = view.read(srel)
    if sdata is not None:
        try:
            snaps = cdb.read_snapshotter_db(sdata)
        except BboltFormatError as exc:
            view.issues.add("bbolt.malformed", f"{srel}: {exc}", path=srel)
    elif meta.snapshots.get(snapshotter):
        view.issues.add("containerd.partial", f"{srel} is not in the snapshot: layer folders "
                        "cannot be matched to snapshots", path=srel, severity="warning")
    cs = ContainerdStore(root=root, snapshotter=snapshotter, meta=meta, snapshots=snaps)
    cs.store = ImageStore(driver=snapshotter)
    _images(view, cs)
    _dirs(cs)
    return cs


def _images(view: RootView, cs: ContainerdStore) -> None:
    store = cs.store
    by_target: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, rec in sorted(cs.meta.images.items()):
        if rec.get("digest"):
            by_target.setdefault(rec["digest"], []).append((name, rec))
    layers: dict[str, dict[str, Any]] = {}
    for image_id, recs in sorted(by_target.items()):
        rep = recs[-1][1]  # the daemon's representative record: the last name in key order
        target = {"digest": image_id, "media_type": rep.get("media_type")}
        manifest, mdigest = _pick_manifest(view, cs.root, target)
        config_desc = _dict((manifest or {}).get("config"))
        cfg_digest = config_desc.get("digest") if isinstance(config_desc.get("digest"), str) \
            else None
        cfg, cfg_bytes = _blob(view, cs.root, cfg_digest)
        if not isinstance(cfg, dict):
            view.issues.add("containerd.partial", f"image {image_id[7:19]} ({recs[0][0]}): its "
                            "manifest or config blob is not in the content store",
                            path=f"{cs.root}/{BLOBS}", severity="warning")
            cfg = {}
        target_bytes = view.read(f"{cs.root}/{BLOBS}/{image_id[7:]}") or b""
        valid = hashlib.sha256(target_bytes).hexdigest() == image_id[7:] if target_bytes else None
        if valid is False:
            view.issues.add("image.invalid", f"image {image_id[7:19]}: its target blob does "
                            "not hash to its digest (tampered or corrupt)",
                            path=f"{cs.root}/{BLOBS}/{image_id[7:]}")
        rootfs = cfg.get("rootfs") if isinstance(cfg.get("rootfs"), dict) else {}
        diff_ids = [d for d in (rootfs.get("diff_ids") or []) if isinstance(d, str)]
        chains = chain_ids(diff_ids)
        store.chains[image_id] = chains
        layer_list = (manifest or {}).get("layers")
        blobs = [b for b in layer_list if isinstance(b, dict)] if isinstance(layer_list, list) \
            else []
        cs.manifests[image_id] = {"manifest": mdigest, "config": cfg_digest, "layers": blobs,
                                  "target_media_type": target["media_type"]}
        for i, (diff, chain) in enumerate(zip(diff_ids, chains)):
            row = layers.get(chain) or _layer_row(cs, chain, diff, chains[i - 1] if i else None,
                                                  blobs[i] if i < len(blobs) else None)
            layers[chain] = row
        # docker images SIZE: the manifest, config and layer descriptors of the platform
        # manifest plus the usage of the unpacked snapshot and all its parents (which, for
        # classic-builder images, include the build containers' -init snapshots)
        descr = sum(_num(b.get("size")) for b in blobs) + _num(config_desc.get("size"))
        mine = _descriptor_size(view, cs.root, target, mdigest)
        unpacked = cs.chain_usage(chains[-1]) if chains else 0
        size = descr + mine + unpacked
        inspect_size = descr + (mine if mdigest == image_id else mine + _num(
            rep.get("size")))
        labels = rep.get("labels") or {}
        parent = labels.get(PARENT_LABEL) or None
        created = cfg.get("created")
        updated = max((r.get("updated_ns") or 0 for _, r in recs), default=0) or None
        store.images.append({
            "image_id": image_id, "valid": valid,
            "created_at": parse_time(created), "created_raw": created, "parent_id": parent,
            **config_fields(cfg), "layer_count": len(diff_ids),
            "top_chain_id": chains[-1] if chains else None, "size_bytes": size,
            "content_bytes": inspect_size, "unpacked_bytes": unpacked,
            "target_media_type": target["media_type"],
            "last_tag_at": to_pandas_ts(updated) if updated else None, "last_tag_raw": None,
            "built_locally": None,
            "config_path": f"{cs.root}/{BLOBS}/{cfg_digest[7:]}" if cfg_digest else None,
            "config_json": cfg_bytes.decode("utf-8", "replace") if cfg_bytes else None,
        })
        add_history(store, image_id, cfg, diff_ids, chains, layers,
                    f"{cs.root}/{BLOBS}/{cfg_digest[7:]}" if cfg_digest else cs.root, view)
        for name, _rec in recs:
            if name.startswith(DANGLING_PREFIX):
                continue
            ref = familiar(name)
            repo, tag, digest = split_reference(ref)
            store.tags.append({"image_id": image_id, "repository": repo, "tag": tag,
                               "digest": digest, "reference": ref, "image_present": bool(cfg)})
    store.layers.extend(layers.values())
    # container RW snapshots: key = container id, parent = <id>-init
    for key in cs.meta.snapshots.get(cs.snapshotter, {}):
        if len(key) == 64 and all(ch in "0123456789abcdef" for ch in key):
            rw = cs.key_record(key)
            init = cs.key_record(f"{key}-init")
            store.mounts[key] = {"mount_id": str(rw["id"]) if rw and rw.get("id") is not None
                                 else None,
                                 "init_id": str(init["id"]) if init and init.get("id") is not None
                                 else None,
                                 "parent": None}


def _layer_row(cs: ContainerdStore, chain: str, diff: str, parent: str | None,
               blob: dict[str, Any] | None) -> dict[str, Any]:
    rec = cs.key_record(chain)
    sid = rec.get("id") if rec else None
    return {
        "chain_id": chain, "diff_id": diff, "parent_chain_id": parent,
        "cache_id": str(sid) if sid is not None else None,
        "driver_dir": snapshot_folder(cs.root, cs.snapshotter, sid) if sid is not None else None,
        "size_bytes": rec.get("size") if rec and rec.get("kind") == "committed" else None,
        "chain_ok": True, "has_tar_split": False, "removing": False,
        "blob_digest": (blob or {}).get("digest"), "blob_size": (blob or {}).get("size"),
        "blob_media_type": (blob or {}).get("mediaType"),
    }


def _dirs(cs: ContainerdStore) -> None:
    """One layer_dirs row per snapshot folder the snapshotter knows."""
    by_name = {name: rec for name, rec in cs.snapshots.items()}
    keys = {m.get("name"): key for key, m in cs.meta.snapshots.get(cs.snapshotter, {}).items()}
    for name, rec in sorted(cs.snapshots.items(), key=lambda kv: kv[1].get("id") or 0):
        sid = rec.get("id")
        if sid is None:
            continue
        lower = []
        cur = rec.get("parent")
        seen: set[str] = set()
        while cur and cur in by_name and cur not in seen:
            seen.add(cur)
            pid = by_name[cur].get("id")
            if pid is not None:
                lower.append(str(pid))
            cur = by_name[cur].get("parent")
        cs.dirs.append({
            "dir_id": str(sid), "driver": cs.snapshotter,
            "path": f"{snapshotter_dir(cs.root, cs.snapshotter)}/snapshots/{sid}",
            "content_path": snapshot_folder(cs.root, cs.snapshotter, sid),
            "link_id": None, "lower": ":".join(lower) or None,
            "snapshot_key": keys.get(name), "snapshot_kind": rec.get("kind"),
            "recorded_bytes": rec.get("size"),
        })


#: allocation unit assumed for live snapshot usage (ext4 and xfs default block size)
BLOCK = 4096
#: symlink targets shorter than this live in the inode on ext4 ("fast" symlinks)
FAST_SYMLINK = 60


#: ext4 in-inode extended-attribute space (256-byte inodes, 32-byte extra fields):
#: what does not fit takes a separate 4 KiB block, which st_blocks counts
INODE_XATTR_SPACE = 96
_XATTR_PREFIXES = ("user.", "trusted.", "security.", "system.posix_acl_access",
                   "system.posix_acl_default", "system.")


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def xattr_block(xattrs: str | None) -> bool:
    """True if these extended attributes (``xattrs_json``) overflow ext4's in-inode space.

    Layout (Linux ``fs/ext4/xattr.h``): a 4-byte magic, per attribute a 16-byte entry
    plus its name without the well-known prefix (padded to 4), a 4-byte end marker,
    and the values (each padded to 4).
    """
    if not xattrs:
        return False
    try:
        attrs = json.loads(xattrs)
    except ValueError:
        return False
    used = 4 + 4
    for name, value in attrs.items():
        short_name = name
        for pre in _XATTR_PREFIXES:
            if name.startswith(pre):
                short_name = name[len(pre):]
                break
        if isinstance(value, str) and value.startswith("base64:"):
            import base64

            vlen = len(base64.b64decode(value[7:]))
        else:
            vlen = len(str(value).encode("utf-8", "surrogateescape"))
        used += 16 + _pad4(len(short_name.encode())) + _pad4(vlen)
    return used > INODE_XATTR_SPACE


def allocated_bytes(files: pd.DataFrame, folder_rx: str) -> pd.DataFrame:
    """Per snapshot id: entries and *estimated* ``st_blocks * 512`` under its folder.

    containerd measures an active snapshot live (continuity ``fs.DiskUsage``): the
    allocated blocks of every inode under ``fs/``, the folder itself included, each
    inode once. A tar records no block counts, so this assumes a 4 KiB-block
    filesystem without inline data: a directory takes one block, a file its size
    rounded up to whole blocks, a symlink of 60+ bytes one block, anything else none,
    plus one block for extended attributes that overflow the inode (:func:`xattr_block`).
    """
    ext = files["path"].str.extract(folder_rx)
    ext.columns = ["dir_id", "inner"]
    keep = ext["dir_id"].notna()
    sub = files[keep]
    if sub.empty:
        return pd.DataFrame({"dir_id": pd.Series([], dtype="string"),
                             "files": pd.Series([], dtype="Int64"),
                             "content_bytes": pd.Series([], dtype="Int64")})
    kind = sub["kind"].astype("string")
    size = sub["size"].fillna(0).astype("int64")
    blocks = ((size + BLOCK - 1) // BLOCK) * BLOCK
    nbytes = blocks.where(kind == "file", 0)
    nbytes = nbytes.where(kind != "dir", BLOCK)
    links = kind == "symlink"
    if links.any():
        long = sub.loc[links, "linkname"].fillna("").map(
            lambda t: len(t.encode("utf-8", "surrogateescape")) >= FAST_SYMLINK)
        nbytes.loc[links] = long.astype("int64") * BLOCK
    has_x = sub["xattrs_json"].notna() & (kind != "hardlink")
    if has_x.any():
        spill = sub.loc[has_x, "xattrs_json"].map(xattr_block).astype("int64") * BLOCK
        nbytes = nbytes.astype("int64")
        nbytes.loc[has_x] = nbytes.loc[has_x] + spill
    out = pd.DataFrame({"dir_id": ext.loc[keep, "dir_id"].astype("string"),
                        "n": ext.loc[keep, "inner"].notna().astype("int64"), "b": nbytes})
    agg = out.groupby("dir_id", sort=True).agg(files=("n", "sum"), content_bytes=("b", "sum"))
    return agg.reset_index().astype({"dir_id": "string", "files": "Int64",
                                     "content_bytes": "Int64"})


def folder_regex(root: str, snapshotter: str) -> str:
    """Regex of an index path inside a snapshot folder: groups (snapshot id, inner path)."""
    sub = "/fs" if snapshotter in FS_SUBDIR else ""
    return rf"^{re.escape(snapshotter_dir(root, snapshotter))}/snapshots/([^/]+){sub}(?:/(.*))?$"


def content_folder_regex(snapshotter: str) -> str:
    """Regex of an index path inside any snapshot folder of either root (dockerd's own or
    a mounted one): groups (content folder, inner path) - what ``fsview`` groups by."""
    roots = f"(?:{re.escape(MANAGED)}|{re.escape(EXTERNAL)})"
    sub = "/fs" if snapshotter in FS_SUBDIR else ""
    return (rf"^({roots}/io\.containerd\.snapshotter\.v1\.{re.escape(snapshotter)}"
            rf"/snapshots/[^/]+{sub})(?:/(.*))?$")


def dir_frame(cs: ContainerdStore, files: pd.DataFrame) -> pd.DataFrame:
    """``layer_dirs`` rows of the snapshot folders, sized as containerd reports them:
    the usage recorded at commit, a live estimate for active snapshots, 0 for views."""
    est = allocated_bytes(files, folder_regex(cs.root, cs.snapshotter)).set_index("dir_id")
    rows = []
    for d in cs.dirs:
        present = d["dir_id"] in est.index
        if d["snapshot_kind"] == "committed":
            nbytes = d["recorded_bytes"]
        elif d["snapshot_kind"] == "view":
            nbytes = 0
        else:
            nbytes = int(est.loc[d["dir_id"], "content_bytes"]) if present else None
        rows.append({"dir_id": d["dir_id"], "driver": d["driver"], "path": d["path"],
                     "content_path": d["content_path"], "link_id": None, "lower": d["lower"],
                     "files": int(est.loc[d["dir_id"], "files"]) if present else 0,
                     "content_bytes": nbytes, "has_merged": False,
                     "snapshot_key": d["snapshot_key"]})
    return pd.DataFrame(rows)


#: BuildKit record ids (25 lowercase letters and digits) name its snapshots
_BUILDKIT_KEY = re.compile(r"^[a-z0-9]{25}(?:-view)?$")


def refine_roles(dirs: pd.DataFrame, snapshotter: str) -> None:
    """Name the snapshot folders no image or container owns directly (in place).

    ``layer-parent``: an ancestor of an owned snapshot (the classic builder commits
    image layers on top of its build containers' ``-init`` snapshots);
    ``build-cache``: BuildKit's snapshots and views (keyed by record id) and other
    ``-view`` snapshots. What is left is a real orphan.
    """
    mine = (dirs["driver"].astype("string") == snapshotter) & (dirs["role"] == "orphan")
    owned = dirs[(dirs["driver"].astype("string") == snapshotter) & (dirs["role"] != "orphan")]
    ancestors: dict[str, str] = {}
    for dir_id, lower, owner in zip(owned["dir_id"], owned["lower"], owned["owner"]):
        for a in (lower.split(":") if isinstance(lower, str) else []):
            ancestors.setdefault(a, str(owner) if isinstance(owner, str) else str(dir_id))
    roles, owners = list(dirs["role"]), list(dirs["owner"])
    for i, (is_mine, dir_id, key) in enumerate(zip(mine, dirs["dir_id"], dirs["snapshot_key"])):
        if not is_mine:
            continue
        key = key if isinstance(key, str) else ""
        if _BUILDKIT_KEY.match(key) or key.endswith("-view"):
            roles[i], owners[i] = "build-cache", key
        elif dir_id in ancestors:
            roles[i], owners[i] = "layer-parent", ancestors[dir_id]
    dirs["role"], dirs["owner"] = roles, owners
