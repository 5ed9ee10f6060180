#!/usr/bin/env python3
"""Deterministic generator of synthetic overlay2 Docker data-roots, written straight into a tar.

Usage::

    python samples/generate.py --members 300000 --out /tmp/root.tar [--compress zst|gz]
           [--images 20] [--containers 12] [--volumes 4] [--log-bytes 65536] [--seed 1]
           [--large-files 3 --large-size 300MiB]

What it writes (nothing is extracted or written to disk except the archive and
``<out>.truth.json``), under ``var/lib/docker/`` like a live ``tar --xattrs`` of
``/var/lib/docker`` (pax format, every member with pax ``atime``/``ctime``
records unless ``--no-pax-times``):

* ``image/overlay2/``: ``repositories.json`` (tags), ``imagedb/content/sha256/<id>``
  (image configs with ``history`` incl. empty-layer steps and ``rootfs.diff_ids``;
  the image id is the sha256 of the config bytes), ``imagedb/metadata/sha256/<id>/
  lastUpdated`` for tagged images, ``layerdb/sha256/<chain>/{diff,size,cache-id,
  parent}`` with correct chain ids, ``layerdb/mounts/<cid>/{mount-id,init-id,parent}``.
  Images share base layers (a few "distro" chains, one to three layers each) and add
  one to four layers of their own.
* ``overlay2/<cache-id>/{diff/,link,lower,work/,committed}`` and ``overlay2/l/<LINK>``
  symlinks to ``../<cache-id>/diff``. File trees are heavy-tailed: sizes log-normal
  with a median of 2 KiB (sigma 1.6, capped at 64 MiB), plus symlinks. Upper layers
  delete lower files with whiteouts (0:0 character devices) and replace directories
  with opaque directories (pax ``SCHILY.xattr.trusted.overlay.opaque=y``).
* Containers: ``containers/<id>/{config.v2.json,hostconfig.json,hostname,hosts,
  resolv.conf,<id>-json.log}`` in the shape dockerd 20.10 writes (copied from the
  committed sample), states running / exited / created; ``overlay2/<mount>-init/``
  (``.dockerenv``, ``etc/hosts`` ...) and ``overlay2/<mount>/`` RW layers with added,
  changed and deleted files (whiteouts) and an opaque directory; json-file logs of
  ``--log-bytes`` each.
* Volumes: named and anonymous ``volumes/<name>/_data/`` folders with files;
  ``--large-files N`` adds N files of ``--large-size`` seeded random (incompressible)
  bytes to the first one, streamed into the tar (for the hashing benchmark).
  **No ``volumes/metadata.db``**: we have a bbolt reader, not a writer, so the
  volumes are folders only (the loader reports them with ``in_db`` false).

Layer sizes (``layerdb/.../size``, ``docker images`` SIZE) are what the daemon's
directory walk gives: bytes of regular files plus symlink target lengths. Diff ids
are the sha256 of a real layer tar of each layer's contents (pax, docker's
whiteout/opaque conversion to ``.wh.`` files), streamed through the hash while the
evidence is written; ``--synthetic-diff-ids`` replaces them with hashes of the
layer's seed (faster). Either way there is no ``tar-split.json.gz``, so ``verify``
does not apply to generated roots.

Output is byte-identical for the same arguments (seeded RNG, fixed times, gzip
header mtime 0, single-pass zstd at a fixed level).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import math
import os
import random
import sys
import tarfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

PREFIX = "var/lib/docker"
#: acquisition time of the synthetic host (all times are before it)
EPOCH = 1_790_000_000  # 2026-09-21
DOCKER_VERSION = "20.10.24+dfsg1"
MEDIAN = 2048
SIGMA = 1.6
MAX_FILE = 64 << 20
POOL = 1 << 22  # bytes of seeded random content files are cut from
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _ts(t: float) -> str:
    """RFC 3339 with nanoseconds, like the daemon writes."""
    sec = int(t)
    ns = int(round((t - sec) * 1e9))
    import time as _time

    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec)) + f".{ns:09d}Z"


class _HashSink:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        return len(b)

    def tell(self) -> int:  # tarfile does not need it, but be safe
        return 0


@dataclass
class Entry:
    """One entry of a layer's diff tree (path relative to the diff dir)."""

    path: str
    kind: str  # dir file symlink whiteout
    size: int = 0
    mode: int = 0o644
    target: str = ""
    opaque: bool = False
    offset: int = 0  # where its content starts in the pool


@dataclass
class Layer:
    diff_id: str = ""
    chain_id: str = ""
    parent: str | None = None
    cache_id: str = ""
    link: str = ""
    size: int = 0
    entries: list[Entry] = field(default_factory=list)
    created_by: str = ""
    lowers: list[str] = field(default_factory=list)  # link ids, nearest first


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.rng = random.Random(args.seed)
        prng = random.Random(args.seed ^ 0x5EED)
        raw = prng.randbytes(POOL // 2)
        # half incompressible, half text-like (so compressed archives are realistic)
        self.pool = raw + base64.b64encode(raw)[: POOL - len(raw)]
        self.truth: dict[str, Any] = {"images": [], "layers": [], "containers": [],
                                      "volumes": [], "members": 0}
        self.tar: tarfile.TarFile | None = None
        self.t = EPOCH - 30 * 86400  # running clock of the synthetic host
        self.members = 0

    # -- small helpers ------------------------------------------------------------
    def hex64(self) -> str:
        return "%064x" % self.rng.getrandbits(256)

    def link_id(self) -> str:
        return "".join(self.rng.choice(_B32) for _ in range(26))

    def tick(self, lo: float = 0.5, hi: float = 60.0) -> float:
        self.t += self.rng.uniform(lo, hi)
        return self.t

    def file_size(self) -> int:
        median = getattr(self.a, "median_size", MEDIAN)
        return min(MAX_FILE, int(math.exp(self.rng.gauss(math.log(median), SIGMA))))

    def content(self, e: Entry) -> bytes:
        if e.size <= POOL - e.offset:
            return self.pool[e.offset:e.offset + e.size]
        reps = e.size // POOL + 2
        return (self.pool * reps)[e.offset:e.offset + e.size]

    # -- writing ------------------------------------------------------------------
    def _info(self, path: str, kind: str, mode: int, mtime: int, size: int = 0,
              target: str = "", xattrs: dict[str, str] | None = None) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(path)
        ti.type = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE,
                   "whiteout": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}[kind]
        ti.mode = mode
        ti.mtime = mtime
        ti.size = size if kind == "file" else 0
        ti.linkname = target
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.devmajor = ti.devminor = 0
        pax: dict[str, str] = {}
        if self.a.pax_times:
            pax["atime"] = str(mtime)
            pax["ctime"] = str(mtime)
        for k, v in (xattrs or {}).items():
            pax["SCHILY.xattr." + k] = v
        ti.pax_headers = pax
        return ti

    def put(self, path: str, kind: str = "file", data: bytes = b"", mode: int | None = None,
            mtime: float | None = None, target: str = "",
            xattrs: dict[str, str] | None = None) -> None:
        if mode is None:
            mode = {"dir": 0o755, "file": 0o644, "symlink": 0o777, "whiteout": 0,
                    "block": 0o600}[kind]
        full = f"{PREFIX}/{path}" if path else PREFIX
        if kind == "dir":
            full += "/"
        ti = self._info(full, kind, mode,
                        int(mtime if mtime is not None else self.t), len(data), target, xattrs)
        assert self.tar is not None
        self.tar.addfile(ti, io.BytesIO(data) if kind == "file" else None)
        self.tar.members.clear()  # TarFile keeps every TarInfo otherwise (GBs at 10^7)
        self.members += 1

    # -- model --------------------------------------------------------------------
    def plan(self) -> None:
        a = self.a
        r = self.rng
        n_bases = max(1, min(4, a.images // 4 + 1))
        own = [r.randint(1, 4) for _ in range(a.images)]
        base_depth = [r.randint(1, 3) for _ in range(n_bases)]
        n_layers = sum(own) + sum(base_depth)
        fixed = 60 + a.containers * 40 + a.volumes * 8 + a.images * 6 + n_layers * 12
        budget = max(n_layers * 5, a.members - fixed)
        # base layers are the big ones (a distro), image layers smaller
        weights = [6.0] * sum(base_depth) + [1.0] * sum(own)
        wsum = sum(weights)
        self.layer_budget = [max(3, int(budget * w / wsum)) for w in weights]
        self.base_depth = base_depth
        self.own = own

    def make_tree(self, n: int, lower_files: list[str], lower_dirs: list[str],
                  top: str) -> list[Entry]:
        """About ``n`` entries: dirs, files, symlinks; deletions of lower files."""
        r = self.rng
        out: list[Entry] = []
        have: set[str] = set()

        def ensure(path: str) -> int:  # parent dirs come first, like a walk of the diff dir
            added = 0
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in have:
                    have.add(d)
                    out.append(Entry(d, "dir"))
                    added += 1
            return added

        made = ensure(top + "/x")
        dirs = [top]
        if lower_dirs and r.random() < 0.5:  # an opaque replacement of a lower dir
            d = r.choice(lower_dirs)
            if d.count("/") >= 1 and d not in have:
                made += ensure(d)
                have.add(d)
                out.append(Entry(d, "dir", opaque=True))
                for k in range(min(3, n)):
                    out.append(Entry(f"{d}/replaced-{k}.conf", "file", self.file_size(),
                                     offset=r.randrange(POOL - 4096)))
                made += 4
        opaque = [e.path + "/" for e in out if e.opaque]
        deletions = min(len(lower_files), max(0, n // 50))
        for p in r.sample(lower_files, deletions) if deletions else []:
            if not any(p.startswith(o) for o in opaque) and p not in have:
                made += ensure(p)
                out.append(Entry(p, "whiteout", mode=0))
                made += 1
        seq = 0
        while made < n:
            if r.random() < 0.08 or len(dirs) < 2:
                parent = r.choice(dirs)
                if parent.count("/") < 6:
                    d = f"{parent}/d{seq}"
                    seq += 1
                    dirs.append(d)
                    have.add(d)
                    out.append(Entry(d, "dir"))
                    made += 1
                    continue
            parent = r.choice(dirs[-40:] if r.random() < 0.7 else dirs)
            name = f"{parent}/f{seq}"
            seq += 1
            if r.random() < 0.05:
                out.append(Entry(name + ".so", "symlink", target=f"f{seq - 2}", mode=0o777))
            else:
                mode = 0o755 if r.random() < 0.1 else 0o644
                out.append(Entry(name + r.choice((".py", ".h", ".so", ".txt", ".gz", "")),
                                 "file", self.file_size(), mode=mode,
                                 offset=r.randrange(POOL - 4096)))
            made += 1
        return out

    @staticmethod
    def walk_size(entries: list[Entry]) -> int:
        """The daemon's directory-walk size: regular files + symlink target lengths."""
        return sum(e.size if e.kind == "file" else len(e.target.encode())
                   if e.kind == "symlink" else 0 for e in entries)

    def diff_id(self, entries: list[Entry], mtime: int) -> str:
        if self.a.synthetic_diff_ids:
            h = hashlib.sha256(repr([(e.path, e.kind, e.size, e.offset) for e in entries]).encode())
            return "sha256:" + h.hexdigest()
        sink = _HashSink()
        with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as lt:  # type: ignore
            for e in entries:
                if e.kind == "whiteout":  # docker's layer tar: .wh.<name> file
                    d, _, b = e.path.rpartition("/")
                    ti = tarfile.TarInfo((d + "/" if d else "") + ".wh." + b)
                    ti.mtime = mtime
                    ti.uname = ti.gname = ""
                    lt.addfile(ti)
                    continue
                ti = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
                ti.mtime = mtime
                ti.mode = e.mode if e.kind != "dir" else 0o755
                ti.uname = ti.gname = ""
                if e.kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    lt.addfile(ti)
                    if e.opaque:
                        op = tarfile.TarInfo(e.path + "/.wh..wh..opq")
                        op.mtime = mtime
                        op.uname = op.gname = ""
                        lt.addfile(op)
                elif e.kind == "symlink":
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = e.target
                    lt.addfile(ti)
                else:
                    ti.size = e.size
                    lt.addfile(ti, io.BytesIO(self.content(e)))
        return "sha256:" + sink.sha.hexdigest()

    def write_diff(self, dir_id: str, entries: list[Entry], mtime: int) -> None:
        base = f"overlay2/{dir_id}/diff"
        self.put(base, "dir", mtime=mtime)
        for e in entries:
            p = f"{base}/{e.path}"
            if e.kind == "dir":
                self.put(p, "dir", mtime=mtime,
                         xattrs={"trusted.overlay.opaque": "y"} if e.opaque else None)
            elif e.kind == "file":
                self.put(p, "file", self.content(e), mode=e.mode, mtime=mtime)
            elif e.kind == "symlink":
                self.put(p, "symlink", target=e.target, mtime=mtime)
            else:
                self.put(p, "whiteout", mtime=mtime)

    def write_driver_dir(self, dir_id: str, link: str, lowers: list[str], mtime: int,
                         committed: bool) -> None:
        self.put(f"overlay2/{dir_id}", "dir", mode=0o710, mtime=mtime)
        self.put(f"overlay2/{dir_id}/link", "file", link.encode(), mtime=mtime)
        if lowers:
            self.put(f"overlay2/{dir_id}/lower", "file",
                     ":".join(f"l/{x}" for x in lowers).encode(), mtime=mtime)
            self.put(f"overlay2/{dir_id}/work", "dir", mode=0o700, mtime=mtime)
        if committed:
            self.put(f"overlay2/{dir_id}/committed", "file", b"", mode=0o600, mtime=mtime)

    # -- the whole root -------------------------------------------------------------
    def run(self, out: BinaryIO) -> dict[str, Any]:
        a = self.a
        r = self.rng
        self.plan()
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)  # type: ignore
        for top in ("var/", "var/lib/"):
            self.tar.addfile(self._info(top, "dir", 0o755, int(self.t)))
            self.members += 1
        self.put("", "dir", mode=0o710)
        for d in ("image", "image/overlay2", "image/overlay2/imagedb",
                  "image/overlay2/imagedb/content", "image/overlay2/imagedb/content/sha256",
                  "image/overlay2/imagedb/metadata", "image/overlay2/imagedb/metadata/sha256",
                  "image/overlay2/layerdb", "image/overlay2/layerdb/sha256",
                  "image/overlay2/layerdb/mounts", "overlay2", "overlay2/l", "containers",
                  "volumes", "network", "network/files", "tmp", "runtimes"):
            self.put(d, "dir", mode=0o700 if d in ("image", "tmp") else 0o710)

        # layers: base chains, then each image's own layers
        budget = iter(self.layer_budget)
        layers: dict[str, Layer] = {}
        order: list[Layer] = []
        top_files: dict[str, tuple[list[str], list[str]]] = {}  # chain -> lower files/dirs

        def new_layer(parent: Layer | None, n: int, top: str, created_by: str) -> Layer:
            lf, ld = top_files.get(parent.chain_id, ([], [])) if parent else ([], [])
            entries = self.make_tree(n, lf, ld, top)
            mtime = int(self.tick())
            lay = Layer(parent=parent.chain_id if parent else None, cache_id=self.hex64(),
                        link=self.link_id(), entries=entries, created_by=created_by,
                        lowers=([parent.link] + parent.lowers) if parent else [])
            lay.diff_id = self.diff_id(entries, mtime)
            lay.chain_id = lay.diff_id if parent is None else "sha256:" + hashlib.sha256(
                f"{parent.chain_id} {lay.diff_id}".encode()).hexdigest()
            lay.size = self.walk_size(entries)
            files = [e.path for e in entries if e.kind == "file"]
            dirs_ = [e.path for e in entries if e.kind == "dir"]
            # lower files visible from above: keep a bounded sample (memory stays small)
            keep_f = (lf + files)[-2000:]
            keep_d = (ld + dirs_)[-500:]
            top_files[lay.chain_id] = (keep_f, keep_d)
            if lay.chain_id not in layers:
                layers[lay.chain_id] = lay
                order.append(lay)
                self.write_driver_dir(lay.cache_id, lay.link, lay.lowers, mtime,
                                      committed=True)
                self.write_diff(lay.cache_id, entries, mtime)
                self.put(f"overlay2/l/{lay.link}", "symlink", mode=0o777, mtime=mtime,
                         target=f"../{lay.cache_id}/diff")
            lay.entries = []  # content is in the archive now; keep only the model
            return lay

        bases: list[list[Layer]] = []
        for b, depth in enumerate(self.base_depth):
            chain: list[Layer] = []
            for k in range(depth):
                top = ("usr", "lib", "etc")[k % 3] if k else "usr"
                chain.append(new_layer(chain[-1] if chain else None, next(budget),
                                       f"{top}/base{b}-{k}",
                                       f"/bin/sh -c #(nop) ADD file:{self.hex64()} in / "
                                       if k == 0 else f"/bin/sh -c apt-get install -y pkg{b}{k}"))
            bases.append(chain)

        images: list[dict[str, Any]] = []
        repos: dict[str, dict[str, str]] = {}
        for i in range(a.images):
            base = bases[i % len(bases)]
            chain = list(base)
            for k in range(self.own[i]):
                chain.append(new_layer(chain[-1], next(budget), f"app{i}/l{k}",
                                       f"/bin/sh -c make -C /app{i} step{k}"))
            created = self.tick()
            history = []
            for lay in chain:
                history.append({"created": _ts(created - 100), "created_by": lay.created_by})
            history.insert(len(base), {"created": _ts(created - 90),
                                       "created_by": f'/bin/sh -c #(nop)  ENV APP=app{i}',
                                       "empty_layer": True})
            history.append({"created": _ts(created), "created_by":
                            f'/bin/sh -c #(nop)  CMD ["/app{i}/run"]', "empty_layer": True})
            cfg_inner = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                         "AttachStdout": False, "AttachStderr": False, "Tty": False,
                         "OpenStdin": False, "StdinOnce": False,
                         "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
                                 "/bin", f"APP=app{i}"],
                         "Cmd": [f"/app{i}/run"], "Image": "", "Volumes": None,
                         "WorkingDir": f"/app{i}", "Entrypoint": None, "OnBuild": None,
                         "Labels": {"org.example.app": f"app{i}"}}
            config = {"architecture": "amd64", "config": cfg_inner,
                      "container_config": {**cfg_inner, "Cmd": ["/bin/sh", "-c", "#(nop) ",
                                                                f'CMD ["/app{i}/run"]']},
                      "created": _ts(created), "docker_version": DOCKER_VERSION,
                      "history": history, "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [x.diff_id for x in chain]}}
            raw = json.dumps(config, separators=(",", ":")).encode()
            iid = "sha256:" + hashlib.sha256(raw).hexdigest()
            self.put(f"image/overlay2/imagedb/content/sha256/{iid[7:]}", "file", raw,
                     mode=0o600)
            tags: list[str] = []
            if i < a.images - max(1, a.images // 8):  # the last few are dangling
                repo = f"registry.example.com/team{i % 3}/app{i}"
                tags = [f"{repo}:1.{i}"] + ([f"{repo}:latest"] if i % 2 == 0 else [])
                repos.setdefault(repo, {}).update({t: iid for t in tags})
                self.put(f"image/overlay2/imagedb/metadata/sha256/{iid[7:]}", "dir", mode=0o700)
                self.put(f"image/overlay2/imagedb/metadata/sha256/{iid[7:]}/lastUpdated",
                         "file", _ts(self.tick()).encode(), mode=0o600)
            img = {"id": iid, "tags": sorted(tags), "layers": [x.chain_id for x in chain],
                   "diff_ids": [x.diff_id for x in chain], "size": sum(x.size for x in chain),
                   "created": _ts(created), "chain": chain}
            images.append(img)
        self.put("image/overlay2/repositories.json", "file",
                 json.dumps({"Repositories": repos}, separators=(",", ":")).encode(), mode=0o600)

        for lay in order:
            d = f"image/overlay2/layerdb/sha256/{lay.chain_id[7:]}"
            self.put(d, "dir")
            self.put(d + "/diff", "file", lay.diff_id.encode())
            self.put(d + "/size", "file", str(lay.size).encode())
            self.put(d + "/cache-id", "file", lay.cache_id.encode())
            if lay.parent:
                self.put(d + "/parent", "file", lay.parent.encode())

        self.containers(images)
        self.volumes()
        self.put("engine-id", "file", b"\n", mode=0o600)
        self.tar.close()  # end-of-archive blocks
        self.truth["images"] = [{k: v for k, v in im.items() if k != "chain"} for im in images]
        self.truth["layers"] = [{"chain_id": x.chain_id, "diff_id": x.diff_id,
                                 "parent": x.parent, "cache_id": x.cache_id, "size": x.size,
                                 "link": x.link} for x in order]
        self.truth["members"] = self.members
        self.truth["generator"] = {k: v for k, v in sorted(vars(a).items()) if k != "out"}
        return self.truth

    def containers(self, images: list[dict[str, Any]]) -> None:
        a = self.a
        r = self.rng
        states = ("running", "exited", "created")
        for c in range(a.containers):
            img = images[c % len(images)]
            top: Layer = img["chain"][-1]
            cid, mount = self.hex64(), self.hex64()
            name = f"svc-{c}"
            state = states[c % 3] if c % 5 else "running"
            created = self.tick()
            mt = int(created)
            # init layer
            init_link, rw_link = self.link_id(), self.link_id()
            self.write_driver_dir(mount + "-init", init_link, [top.link] + top.lowers, mt, True)
            init = [Entry(".dockerenv", "file", 0, mode=0o755), Entry("dev", "dir"),
                    Entry("dev/console", "file", 0, mode=0o755), Entry("dev/pts", "dir"),
                    Entry("dev/shm", "dir"), Entry("etc", "dir"),
                    Entry("etc/hostname", "file", 0, mode=0o755),
                    Entry("etc/hosts", "file", 0, mode=0o755),
                    Entry("etc/mtab", "symlink", target="/proc/mounts"),
                    Entry("etc/resolv.conf", "file", 0, mode=0o755)]
            self.write_diff(mount + "-init", init, mt)
            self.put(f"overlay2/l/{init_link}", "symlink", target=f"../{mount}-init/diff",
                     mtime=mt)
            # RW layer: writes unless never started
            self.write_driver_dir(mount, rw_link, [init_link, top.link] + top.lowers, mt,
                                  False)
            if state != "created":
                self.put(f"overlay2/{mount}/work/work", "dir", mode=0, mtime=mt)
                rw = [Entry("tmp", "dir"), Entry("var", "dir"), Entry("var/log", "dir")]
                for k in range(r.randint(3, 25)):
                    rw.append(Entry(f"var/log/app-{k}.log", "file", self.file_size(),
                                    offset=r.randrange(POOL - 4096)))
                rw.append(Entry("tmp/.cache", "dir", opaque=True))
                rw.append(Entry("tmp/.cache/x", "file", 100, offset=r.randrange(POOL - 4096)))
                rw.append(Entry(f"app{c % len(images)}", "dir"))
                rw.append(Entry(f"app{c % len(images)}/removed.conf", "whiteout", mode=0))
                rw.append(Entry("tmp/run.sh", "symlink", target="/usr/bin/true"))
                self.write_diff(mount, rw, int(self.tick()))
                size_rw = self.walk_size(rw)
            else:
                self.write_diff(mount, [], mt)
                size_rw = 0
            self.put(f"overlay2/l/{rw_link}", "symlink", target=f"../{mount}/diff", mtime=mt)
            md = f"image/overlay2/layerdb/mounts/{cid}"
            self.put(md, "dir")
            self.put(md + "/init-id", "file", f"{mount}-init".encode())
            self.put(md + "/mount-id", "file", mount.encode())
            self.put(md + "/parent", "file", top.chain_id.encode())
            # container folder
            started = created + 1.5 if state != "created" else None
            finished = started + 3600 if state == "exited" and started else None
            cdir = f"{PREFIX}/containers/{cid}"
            cfg = {"StreamConfig": {},
                   "State": {"Running": state == "running", "Paused": False,
                             "Restarting": False, "OOMKilled": False, "RemovalInProgress": False,
                             "Dead": False, "Pid": 1000 + c if state == "running" else 0,
                             "ExitCode": 137 if state == "exited" and c % 2 else 0, "Error": "",
                             "StartedAt": _ts(started) if started else "0001-01-01T00:00:00Z",
                             "FinishedAt": _ts(finished) if finished else "0001-01-01T00:00:00Z",
                             "Health": None},
                   "ID": cid, "Created": _ts(created), "Managed": False,
                   "Path": f"/app{c % len(images)}/run", "Args": [],
                   "Config": {"Hostname": cid[:12], "Domainname": "", "User": "",
                              "AttachStdin": False, "AttachStdout": False,
                              "AttachStderr": False, "Tty": False, "OpenStdin": False,
                              "StdinOnce": False, "Env": [f"APP=app{c % len(images)}"],
                              "Cmd": [f"/app{c % len(images)}/run"],
                              "Image": (img["tags"] or [img["id"]])[0], "Volumes": None,
                              "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
                              "Labels": {}},
                   "Image": img["id"],
                   "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                                       "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                                       "Networks": {"bridge": {
                                           "IPAMConfig": None, "Links": None, "Aliases": None,
                                           "NetworkID": self.hex64(), "EndpointID":
                                           self.hex64() if state == "running" else "",
                                           "Gateway": "172.17.0.1" if state == "running" else "",
                                           "IPAddress": f"172.17.0.{2 + c % 250}"
                                           if state == "running" else "",
                                           "IPPrefixLen": 16 if state == "running" else 0,
                                           "IPv6Gateway": "", "GlobalIPv6Address": "",
                                           "GlobalIPv6PrefixLen": 0, "MacAddress": "",
                                           "DriverOpts": None, "IPAMOperational": False}},
                                       "Service": None, "Ports": {}, "SandboxKey": "",
                                       "SecondaryIPAddresses": None,
                                       "SecondaryIPv6Addresses": None,
                                       "IsAnonymousEndpoint": False, "HasSwarmEndpoint": False},
                   "LogPath": f"/{cdir}/{cid}-json.log", "Name": f"/{name}",
                   "Driver": "overlay2", "OS": "linux", "MountLabel": "", "ProcessLabel": "",
                   "RestartCount": 0, "HasBeenStartedBefore": state != "created",
                   "HasBeenManuallyStopped": False, "MountPoints": {},
                   "SecretReferences": None, "ConfigReferences": None, "AppArmorProfile": "",
                   "HostnamePath": f"/{cdir}/hostname", "HostsPath": f"/{cdir}/hosts",
                   "ShmPath": "", "ResolvConfPath": f"/{cdir}/resolv.conf",
                   "SeccompProfile": "", "NoNewPrivileges": False,
                   "LocalLogCacheMeta": {"HaveNotifyEnabled": False}}
            vol = None
            if a.volumes and c < a.volumes:
                vol = f"vol{c}"
                cfg["MountPoints"] = {"/data": {
                    "Source": "", "Destination": "/data", "RW": True, "Name": vol,
                    "Driver": "local", "Type": "volume", "Relabel": "z", "Spec": {
                        "Type": "volume", "Source": vol, "Target": "/data"},
                    "SkipMountpointCreation": False}}
            host = {"Binds": [f"{vol}:/data"] if vol else None, "ContainerIDFile": "",
                    "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": "default",
                    "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None,
                    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "host", "Dns": [],
                    "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
                    "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0,
                    "PidMode": "", "Privileged": False, "PublishAllPorts": False,
                    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
                    "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc",
                    "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 0,
                    "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
                    "BlkioWeightDevice": [], "BlkioDeviceReadBps": None,
                    "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
                    "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
                    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
                    "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None,
                    "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
                    "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
                    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None,
                    "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
                    "IOMaximumBandwidth": 0,
                    "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                    "/proc/latency_stats", "/proc/timer_list",
                                    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                                    "/sys/firmware"],
                    "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"]}
            rel = f"containers/{cid}"
            self.put(rel, "dir", mode=0o710, mtime=mt)
            self.put(rel + "/config.v2.json", "file",
                     json.dumps(cfg, separators=(",", ":")).encode(), mode=0o600)
            self.put(rel + "/hostconfig.json", "file",
                     json.dumps(host, separators=(",", ":")).encode())
            self.put(rel + "/checkpoints", "dir", mode=0o700, mtime=mt)
            self.put(rel + "/mounts", "dir", mode=0o710, mtime=mt)
            log_size = 0
            if state != "created":
                self.put(rel + "/hostname", "file", (cid[:12] + "\n").encode())
                self.put(rel + "/hosts", "file", f"127.0.0.1\tlocalhost\n172.17.0.2\t"
                         f"{cid[:12]}\n".encode())
                self.put(rel + "/resolv.conf", "file", b"nameserver 10.0.2.3\n")
                log = self.log_bytes(started or created)
                log_size = len(log)
                self.put(rel + f"/{cid}-json.log", "file", log, mode=0o640)
            self.truth["containers"].append({
                "id": cid, "name": name, "state": state, "image": img["id"],
                "mount_id": mount, "init_id": mount + "-init", "size_rw": size_rw,
                "log_bytes": log_size, "volume": vol})

    def log_bytes(self, start: float) -> bytes:
        r = self.rng
        want = self.a.log_bytes
        out: list[bytes] = []
        n = 0
        t = start
        i = 0
        while n < want:
            t += r.uniform(0.001, 2.0)
            stream = "stderr" if r.random() < 0.1 else "stdout"
            msg = f"{i} GET /api/v1/items/{r.randrange(10**6)} 200 {r.randrange(10**4)}us\n"
            line = (json.dumps({"log": msg, "stream": stream, "time": _ts(t)},
                               separators=(",", ":")) + "\n").encode()
            out.append(line)
            n += len(line)
            i += 1
        return b"".join(out)

    def volumes(self) -> None:
        r = self.rng
        names = [f"vol{k}" for k in range(self.a.volumes)]
        if self.a.volumes:
            names.append(self.hex64())  # an anonymous one
        for name in names:
            mt = int(self.tick())
            self.put(f"volumes/{name}", "dir", mode=0o701, mtime=mt)
            self.put(f"volumes/{name}/_data", "dir", mtime=mt)
            files = 0
            size = 0
            for k in range(r.randint(1, 6)):
                e = Entry(f"f{k}.dat", "file", self.file_size(), offset=r.randrange(POOL - 4096))
                self.put(f"volumes/{name}/_data/{e.path}", "file", self.content(e), mtime=mt)
                files += 1
                size += e.size
            if name == names[0]:  # --large-files go into the first volume
                for k in range(self.a.large_files):
                    self.put_large(f"volumes/{name}/_data/large-{k}.bin", self.a.large_size,
                                   seed=self.a.seed * 1000 + k, mtime=mt)
                    files += 1
                    size += self.a.large_size
            self.truth["volumes"].append({"name": name, "files": files, "size": size})

    def put_large(self, path: str, size: int, seed: int, mtime: int) -> None:
        """A regular file of ``size`` incompressible, seeded bytes, streamed into the tar."""
        ti = self._info(f"{PREFIX}/{path}", "file", 0o644, mtime, size)
        assert self.tar is not None
        self.tar.addfile(ti, _RandomStream(seed, size))
        self.tar.members.clear()
        self.members += 1


class _RandomStream:
    """``size`` bytes from a seeded RNG, read in chunks (never held whole in memory)."""

    def __init__(self, seed: int, size: int) -> None:
        self.rng = random.Random(seed)
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


class _Zstd:
    def __init__(self, fh: BinaryIO) -> None:
        import zstandard

        self.w = zstandard.ZstdCompressor(level=3).stream_writer(fh, closefd=False)
        self.n = 0

    def write(self, b: bytes) -> int:
        self.n += len(b)
        return self.w.write(b)

    def tell(self) -> int:
        return self.n

    def close(self) -> None:
        self.w.close()


def _size(text: str) -> int:
    """``300MiB``, ``2GiB``, ``4096`` → bytes."""
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "k": 1 << 10, "m": 1 << 20,
             "g": 1 << 30, "": 1}
    t = text.strip().lower()
    num = t.rstrip("kmgib")
    return int(float(num) * units[t[len(num):]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=20000, help="approximate member count")
    p.add_argument("--images", type=int, default=None, help="images (default: from --members)")
    p.add_argument("--containers", type=int, default=None)
    p.add_argument("--volumes", type=int, default=3)
    p.add_argument("--log-bytes", type=int, default=16384, help="json-file log size per container")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--compress", choices=("none", "zst", "gz"), default="none")
    p.add_argument("--synthetic-diff-ids", action="store_true",
                   help="hash the layer's seed instead of a real layer tar (faster)")
    p.add_argument("--no-pax-times", dest="pax_times", action="store_false",
                   help="no pax atime/ctime records (plain ustar members where possible)")
    p.add_argument("--large-files", type=int, default=0,
                   help="add this many large incompressible files to the first volume "
                        "(hashing benchmark)")
    p.add_argument("--large-size", type=_size, default=300 << 20,
                   help="size of each large file, e.g. 300MiB (default)")
    p.add_argument("--median-size", type=_size, default=MEDIAN,
                   help="median size of layer files (default 2KiB); small values make "
                        "archives of 10^7 members fit on a laptop's disk (memory benchmark)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.large_files and not a.volumes:
        a.volumes = 1
    if a.images is None:
        a.images = max(3, min(200, int(a.members ** 0.5 / 8)))
    if a.containers is None:
        a.containers = max(3, a.images // 2)
    tmp = a.out + ".part"
    with open(tmp, "wb") as fh:
        sink: Any
        if a.compress == "gz":
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=6)
        elif a.compress == "zst":
            sink = _Zstd(fh)
        else:
            sink = fh
        truth = Generator(a).run(sink)
        if sink is not fh:
            sink.close()
    os.replace(tmp, a.out)
    with open(a.out + ".truth.json", "w", encoding="utf-8") as fh:
        json.dump(truth, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print(f"{a.out}: {truth['members']} members, {len(truth['images'])} images, "
          f"{len(truth['layers'])} layers, {len(truth['containers'])} containers",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
