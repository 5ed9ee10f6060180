"""The pre-1.10 ("v1") image store: ``graph/<v1-id>/`` and ``repositories-<drv>``.

Docker ≤ 1.9 kept one folder per v1 image under ``graph/``; each v1 image *is*
one layer (its parent is the layer below). Reads, relative to the data-root:

* ``graph/<v1-id>/json`` → ``images`` (v1 image JSON: ``id``, ``parent``,
  ``created``, ``container_config``, ``config``, ``docker_version``...),
  ``image_history`` and ``layers``
* ``graph/<v1-id>/layersize`` → layer size (falls back to the JSON ``Size``)
* ``graph/<v1-id>/parent`` → parent v1 id when the JSON has none
* ``graph/<v1-id>/tar-data.json.gz`` → ``layers.has_tar_split`` (index only)
* ``repositories-<drv>`` (``{"Repositories": {repo: {tag: v1-id}}}``) → ``image_tags``

Containers of that era (``containers/<id>/config.json``, with ``HostConfig``
inline or in ``hostconfig.json``) are read by :mod:`analyzer.parsers.containers`;
this module only supplies their RW layer ids.

Representation choices (the table columns keep the meanings documented in
:mod:`analyzer.model.schema`; nothing is added):

* **Ids.** A v1 id is 64 random hex digits, not a content hash. It is kept as
  written: bare hex, *without* a ``sha256:`` prefix, in ``images.image_id``,
  ``images.parent_id``, ``image_tags.image_id`` and ``image_history.chain_id``.
  That is also how v1 container configs (``Image``) and ``repositories-<drv>``
  spell it, so the tables join without translation, and the missing prefix
  tells a v1 id from a v2 one at a glance.
* **Layers.** A v1 image and its layer are one object, so each ``graph/``
  entry is one ``layers`` row whose ``chain_id`` and ``cache_id`` are both the
  v1 id (the driver directory is ``<drv>/.../<v1-id>``, e.g. ``aufs/diff/<v1-id>``).
  ``parent_chain_id`` is the parent's v1 id. ``diff_id`` is NA: the ``checksum``
  file holds the digest of the *compressed* blob (or a tarsum), not the
  uncompressed diff id; ``chain_ok`` is NA (there is no chain arithmetic).
* **Images.** Every ``graph/`` entry is an image (``docker images -a`` of that
  era listed them all). ``layer_count`` is the length of the parent chain
  including the image itself, ``top_chain_id`` is the image's own id and
  ``size_bytes`` the sum of ``layersize`` over that chain (the old "virtual
  size"). ``valid`` is NA: v1 ids are not content hashes, so there is nothing
  to verify (a JSON ``id`` that differs from its folder is reported instead).
  ``last_tag_at`` and ``built_locally`` are NA (not recorded before 1.10).
* **History.** One row per image of the chain, oldest first, like ``docker
  history`` of that era: ``created_by`` is ``container_config.Cmd`` joined with
  spaces, ``chain_id`` the v1 id of that step, ``layer_size_bytes`` its
  ``layersize``; ``empty_layer`` is false (every v1 step owned a layer, even an
  empty one) and ``diff_id`` NA.
* **Containers.** Before 1.10 the RW layer directory of a container is named
  after the container (``mount-id`` = container id, init layer
  ``<container-id>-init``), which is also what the 1.10 migration wrote into
  ``layerdb/mounts/``.

Reference: ``shared/docs/docker-root-format.md`` §1.5, §4.4;
moby ``v1.9.1:graph/graph.go`` and ``v1.10.0:migrate/v1/migratev1.go``.
"""

from __future__ import annotations

from typing import Any

from analyzer.formats.digest import short
from analyzer.parsers.imagestore import ImageStore, config_fields
from analyzer.parsers.rootview import RootView
from analyzer.parsers.times import parse_time

HEX64 = r"[0-9a-f]{64}"
#: ``graph/<v1-id>/<file>`` files kept by the capture pass
GRAPH_FILES = ("json", "layersize", "parent", "checksum")
#: the 1.10 migration's summary of v1 image id → v2 image id (a migrated host)
MIGRATION_IMAGES = ".migration-v1-images.json"


def has_graph(view: RootView) -> bool:
    """True if the data-root holds pre-1.10 image metadata (``graph/`` or ``repositories-*``)."""
    for _ in view.matching(rf"graph/{HEX64}/(?:json|layersize|parent)|repositories-[a-z0-9-]+"):
        return True
    return False



def _int(view: RootView, rel: str) -> int | None:
    text = view.text(rel)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        view.issues.add("json.unexpected", f"{rel} is not a number: {text[:40]!r}", path=rel)
        return None


def _graph_ids(view: RootView) -> list[str]:
    ids = set()
    for _rel, m in view.matching(rf"graph/({HEX64})/(?:{'|'.join(GRAPH_FILES)})"):
        ids.add(m.group(1))
    return sorted(ids)


def _read_entry(view: RootView, v1id: str) -> dict[str, Any]:
    """One ``graph/<v1-id>/`` folder: its JSON, parent and size."""
    folder = f"graph/{v1id}"
    cfg = view.json(f"{folder}/json", "v1 image JSON")
    raw = view.read(f"{folder}/json")
    if cfg is None:
        if raw is None:
            view.issues.add("root.partial", f"{folder} has no json: the image's metadata is lost "
                            "(layer size and parent only)", path=folder)
        cfg = {}
    elif not isinstance(cfg, dict):
        view.issues.add("json.unexpected", f"{folder}/json is not an object", path=f"{folder}/json")
        cfg = {}
    if cfg.get("id") not in (None, v1id):
        view.issues.add("json.unexpected", f"{folder}/json: id {str(cfg.get('id'))[:12]} differs "
                        "from its folder name", path=f"{folder}/json")
    parent_file = view.text(f"{folder}/parent") or None
    # ``parent`` is the v1 field; ``parent_id`` appears in some 1.10-era rewrites
    parent_json = cfg.get("parent") or cfg.get("parent_id") or None
    if parent_file and parent_json and parent_file != parent_json:
        view.issues.add("json.unexpected", f"{folder}: parent file ({short(parent_file)}) and json "
                        f"parent ({short(str(parent_json))}) differ; using the json",
                        path=f"{folder}/parent")
    size = _int(view, f"{folder}/layersize")
    if size is None and isinstance(cfg.get("Size"), int):
        size = cfg["Size"]
    return {"id": v1id, "cfg": cfg, "raw": raw, "parent": parent_json or parent_file,
            "size": size, "path": f"{folder}/json"}


def _chain(entries: dict[str, dict[str, Any]], v1id: str, view: RootView
           ) -> tuple[list[str], str | None]:
    """Ancestors of ``v1id`` bottom first (itself last), and the first missing parent."""
    chain = [v1id]
    seen = {v1id}
    cur = entries[v1id]["parent"]
    while cur:
        if cur in seen:
            view.issues.add("json.unexpected", f"graph/{v1id}: parent chain loops at {cur[:12]}",
                            path=f"graph/{v1id}/json")
            break
        if cur not in entries:
            return list(reversed(chain)), cur
        chain.append(cur)
        seen.add(cur)
        cur = entries[cur]["parent"]
    return list(reversed(chain)), None


def _created_by(cfg: dict[str, Any]) -> str | None:
    cc = cfg.get("container_config") if isinstance(cfg.get("container_config"), dict) else {}
    cmd = cc.get("Cmd")
    if isinstance(cmd, list):
        return " ".join(str(c) for c in cmd)
    return cmd if isinstance(cmd, str) else None


def parse_graph(view: RootView, driver: str) -> ImageStore:
    """Parse the pre-1.10 image store of the data-root into :class:`ImageStore` rows.

    Args:
        view: the data-root.
        driver: the storage driver the daemon ran with (selects ``repositories-<drv>``).
    """
    store = ImageStore(driver=driver)
    entries = {i: _read_entry(view, i) for i in _graph_ids(view)}
    missing_reported: set[str] = set()
    for v1id, e in entries.items():
        cfg = e["cfg"]
        chain, missing = _chain(entries, v1id, view)
        if missing and missing not in missing_reported:
            missing_reported.add(missing)
            view.issues.add("layer.missing", f"v1 image {v1id[:12]}: parent {short(missing)} is "
                            "not in graph/ (the chain below it is lost)", path=e["path"])
        store.chains[v1id] = chain
        sizes = [entries[c]["size"] for c in chain if entries[c]["size"] is not None]
        store.images.append({
            "image_id": v1id, "valid": None,
            "created_at": parse_time(cfg.get("created")), "created_raw": cfg.get("created"),
            "parent_id": e["parent"], **config_fields(cfg),
            "layer_count": len(chain), "top_chain_id": v1id,
            "size_bytes": sum(sizes) if sizes else None,
            "last_tag_at": None, "last_tag_raw": None, "built_locally": None,
            "config_path": e["path"] if e["raw"] is not None else None,
            "config_json": e["raw"].decode("utf-8", "replace") if e["raw"] is not None else None,
        })
        for step, c in enumerate(chain):
            ccfg = entries[c]["cfg"]
            store.history.append({
                "image_id": v1id, "step": step, "created_at": parse_time(ccfg.get("created")),
                "created_raw": ccfg.get("created"), "created_by": _created_by(ccfg),
                "author": ccfg.get("author") or None, "comment": ccfg.get("comment") or None,
                "empty_layer": False, "diff_id": None, "chain_id": c,
                "layer_size_bytes": entries[c]["size"],
            })
        store.layers.append({
            "chain_id": v1id, "diff_id": None, "parent_chain_id": e["parent"],
            "cache_id": v1id, "size_bytes": e["size"], "chain_ok": None,
            "has_tar_split": view.exists(f"graph/{v1id}/tar-data.json.gz"), "removing": False,
        })
    _parse_tags(view, driver, store, set(entries))
    _container_layers(view, store)
    return store


def _parse_tags(view: RootView, driver: str, store: ImageStore, known: set[str]) -> None:
    """``repositories-<drv>``: the active driver's file, else every one found."""
    files = [rel for rel, _m in view.matching(r"repositories-[a-z0-9-]+")]
    own = f"repositories-{driver}"
    if own in files:
        others = [f for f in files if f != own]
        if others:
            view.issues.add("root.partial", f"tag files of other drivers are present "
                            f"({', '.join(others)}); the daemon only loads {own}",
                            path=others[0], severity="info")
        files = [own]
    for rel in files:
        doc = view.json(rel, "v1 repositories file")
        if doc is None:
            continue
        repos = doc.get("Repositories") if isinstance(doc, dict) else None
        if not isinstance(repos, dict):
            view.issues.add("json.unexpected", f"{rel}: no 'Repositories' object", path=rel)
            continue
        for repo, refs in repos.items():
            if not isinstance(refs, dict):
                continue
            for tag, image_id in refs.items():
                # 1.6–1.9 kept pulls by digest in the same map, keyed by the digest
                is_digest = ":" in tag
                ref = f"{repo}@{tag}" if is_digest else f"{repo}:{tag}"
                store.tags.append({"image_id": image_id, "repository": repo,
                                   "tag": None if is_digest else tag,
                                   "digest": tag if is_digest else None, "reference": ref,
                                   "image_present": image_id in known})
                if image_id not in known:
                    view.issues.add("image.missing", f"{ref} points at v1 image "
                                    f"{str(image_id)[:12]}, which is not in graph/", path=rel)


def _container_layers(view: RootView, store: ImageStore) -> None:
    """RW layers of pre-1.10 containers: the directory is named after the container."""
    for _rel, m in view.matching(rf"containers/({HEX64})/config\.json"):
        cid = m.group(1)
        if view.read(f"containers/{cid}/config.v2.json") is not None:
            continue  # migrated container: its layer ids come from layerdb/mounts
        cfg = view.json(f"containers/{cid}/config.json", "container config")
        image = cfg.get("Image") if isinstance(cfg, dict) else None
        store.mounts[cid] = {"mount_id": cid, "init_id": f"{cid}-init",
                             "parent": image if isinstance(image, str) else None}


def leftover_summary(view: RootView) -> str:
    """One line describing pre-1.10 leftovers next to a v2 store (a migrated host)."""
    ids = _graph_ids(view)
    migrated = sum(1 for i in ids if view.exists(f"graph/{i}/.migration-diffid"))
    mapping = view.json(MIGRATION_IMAGES, "migration summary")
    tags = [rel for rel, _m in view.matching(r"repositories-[a-z0-9-]+")]
    parts = [f"{len(ids)} graph/ entries ({migrated} with .migration-diffid)"]
    if tags:
        parts.append(", ".join(tags))
    if isinstance(mapping, dict):
        parts.append(f"{MIGRATION_IMAGES} maps {len(mapping)} v1 ids to v2 image ids")
    return ("pre-1.10 image metadata is left next to the v2 image store (the host was migrated "
            "by Docker 1.10+; the v2 store is used): " + "; ".join(parts))
