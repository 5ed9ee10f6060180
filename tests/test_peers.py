"""Conformance over the peer projects' fixtures (docker-explorer, plaso).

Every fixture is loaded through :func:`analyzer.open_snapshot` and through the CLI
(``ps -a --json``). Facts are checked two ways:

* against an independent reading of the same archive in this file (``tarfile`` /
  ``os.walk`` plus ``json``: tags from ``repositories.json``, layer sizes from
  ``layerdb/.../size``, log lines, ``aufs/layers`` chains, overlay ``lower-id``...);
* against the expectations upstream asserts in docker-explorer's ``tests.py``
  (snapshot ``9b2af4c0ba75``; facts only: container ids, names, creation and start
  times, image ids, mount ids, layer order, repositories, history).

Fixture oddities (documented where they are asserted):

* ``aufs.v1`` looks hand-assembled: the pre-1.10 ``graph/`` layout holds image JSON
  written by Docker 18.06.1-ce (``docker_version``, a ``sha256:`` ``Image`` in
  ``container_config``); its ``hostconfig.json`` files have an empty ``LogConfig.Type``;
  ``aufs/mnt/de44…`` holds a mounted view; container ``fbb6711c…`` never started
  (``docker run busybox -ti`` made ``-ti`` the command: ``exec: "-ti": executable file
  not found``).
* ``aufs.v2``: the running container mounts volume ``28297de5…`` which is not in
  ``volumes/`` (a dangling reference, like ``eda9ee49…`` in ``vols.v2``).
* ``overlay2.v2``: container ``10acac0b…`` has a hand-added ``ContainerConfig`` key
  (not a daemon field) whose ``ExposedPorts`` has ``12345/tcp`` and ``27017/tcp``;
  docker-explorer reads that, the daemon (and we) read ``Config.ExposedPorts`` =
  ``27017/tcp`` only. A leftover ``image/overlay/`` store with an empty
  ``repositories.json`` sits next to ``image/overlay2/``.
* overlay v1 / overlay2 symlink ``etc/mtab`` has a later mtime than its siblings in
  every RW and init layer (archiver artefact); it is identical in both, so the
  naive diff does not count it.
* ``plaso/docker`` is a partial extract: one ``graph/`` entry whose JSON has no ``id``
  and names its parent as ``parent_id`` (``sha256:``-prefixed), which is absent; the
  container's image ``577149…`` is not in ``graph/``; no driver folders; the log file is
  named ``container-json.log`` (not the daemon's ``<id>-json.log``), so it is not a
  container log to us.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import analyzer
from analyzer.cli.main import main
from analyzer.errors import AmbiguousReference
from tests.conftest import PEERS

DE = PEERS / "docker-explorer"
PLASO = PEERS / "plaso" / "docker"
TGZ = ("aufs.v1", "aufs.v2", "overlay.v2", "overlay2.v2", "vols.v2")
HEX64 = re.compile(r"[0-9a-f]{64}")

pytestmark = pytest.mark.skipif(not DE.is_dir(), reason="peer fixtures not present")


# -- an independent reading of a fixture ---------------------------------------------------

@dataclass
class Entry:
    """One member of a fixture, relative to its data-root."""

    kind: str  # file, dir, symlink, hardlink, other
    size: int
    mtime: int
    mode: int
    linkname: str
    data: bytes | None = None


@dataclass
class Fixture:
    """A fixture read with ``tarfile`` / ``os.walk`` only (no analyzer code)."""

    path: str
    entries: dict[str, Entry] = field(default_factory=dict)

    def data(self, rel: str) -> bytes:
        """Bytes of a regular file."""
        d = self.entries[rel].data
        assert d is not None, rel
        return d

    def json(self, rel: str) -> Any:
        """A JSON file."""
        return json.loads(self.data(rel))

    def glob(self, pattern: str) -> list[re.Match[str]]:
        """Full-path regex matches over the entries, sorted."""
        rx = re.compile(pattern)
        return [m for m in (rx.fullmatch(p) for p in sorted(self.entries)) if m]

    def container_ids(self) -> list[str]:
        """Folders of ``containers/`` that hold a config."""
        return sorted({m.group(1) for m in self.glob(r"containers/([0-9a-f]{64})/config(?:\.v2)?\.json")})

    def container_config(self, cid: str) -> dict[str, Any]:
        """``config.v2.json``, else the pre-1.10 ``config.json``."""
        rel = f"containers/{cid}/config.v2.json"
        return self.json(rel if rel in self.entries else f"containers/{cid}/config.json")


#: regular files whose bytes the independent reading keeps
_KEEP = re.compile(r".*(?:\.json|/size|/layersize|/parent|/lower-id|/lower|/link|-json\.log"
                   r"|\.db|repositories-[a-z0-9-]+)$|aufs/layers/.*")


@lru_cache(maxsize=None)
def fixture(name: str) -> Fixture:
    """The independent reading of a peer fixture (``docker/`` is the data-root)."""
    if name == "plaso":
        fx = Fixture(str(PLASO))
        for top, dirs, files in os.walk(PLASO):
            for n in dirs + files:
                full = os.path.join(top, n)
                rel = os.path.relpath(full, PLASO)
                st = os.lstat(full)
                kind = "dir" if n in dirs else "file"
                data = Path(full).read_bytes() if kind == "file" else None
                fx.entries[rel] = Entry(kind, st.st_size, int(st.st_mtime), st.st_mode & 0o7777, "",
                                        data)
        return fx
    fx = Fixture(str(DE / f"{name}.tgz"))
    with tarfile.open(fx.path, "r:gz") as tar:
        for ti in tar:
            rel = ti.name.rstrip("/")
            if not rel.startswith("docker/"):
                continue
            rel = rel[len("docker/"):]
            kind = ("dir" if ti.isdir() else "symlink" if ti.issym() else "hardlink" if ti.islnk()
                    else "file" if ti.isfile() else "other")
            data = None
            if kind == "file" and _KEEP.match(rel):
                fh = tar.extractfile(ti)
                data = fh.read() if fh else None
            fx.entries[rel] = Entry(kind, ti.size, int(ti.mtime), ti.mode, ti.linkname, data)
    return fx


@lru_cache(maxsize=None)
def snap(name: str) -> analyzer.Snapshot:
    """The analyzer's snapshot of a fixture (read once per session)."""
    path = str(PLASO) if name == "plaso" else str(DE / f"{name}.tgz")
    return analyzer.open_snapshot(path, hash_files=False)


ALL = TGZ + ("plaso",)


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC")


# -- every input: API and CLI --------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_loads_without_parser_errors(name: str) -> None:
    """The snapshot builds, every table follows the schema, no parser crashed."""
    from analyzer.model import schema

    s = snap(name)
    for table in schema.TABLES:
        schema.validate(table, s.tables[table])
    assert "parse.error" not in set(s.issues["code"])
    assert s.meta["root_prefix"] == ("" if name == "plaso" else "docker")


@pytest.mark.parametrize("name", ALL)
def test_cli_ps_json(name: str) -> None:
    """``ps -a --json`` exits 0, prints no traceback and lists every container with its state."""
    path = str(PLASO) if name == "plaso" else str(DE / f"{name}.tgz")
    out, err = io.StringIO(), io.StringIO()
    assert main(["ps", path, "-a", "--json", "--no-cache"], out, err) == 0
    assert "Traceback" not in err.getvalue()
    doc = json.loads(out.getvalue())
    fx = fixture(name)
    assert sorted(d["Id"] for d in doc) == fx.container_ids()
    for d in doc:
        running = bool(fx.container_config(d["Id"])["State"]["Running"])
        assert (d["State"] == "running") == running


# -- containers ----------------------------------------------------------------------------

#: (containers, running ids) per fixture: SOURCE.md and docker-explorer tests.py
CONTAINERS = {
    "aufs.v1": (3, {"de44dd97cfd1c8d1c1aad7f75a435603991a7a39fa4f6b20a69bf4458809209c"}),
    "aufs.v2": (7, {"7b02fb3e8a665a63e32b909af5babb7d6ba0b64e10003b2d9534c7d5f2af8966"}),
    "overlay.v2": (6, {"5dc287aa80b460652a5584e80a5c8c1233b0c0691972d75424cf5250b917600a"}),
    "overlay2.v2": (5, {"8e8b7f23eb7cbd4dfe7e91646ddd0e0f524218e25d50113559f078dfb2690206"}),
    "vols.v2": (4, set()),
    "plaso": (1, {"e7d0b7ea5ccf08366e2b0c8afa2318674e8aefe802315378125d2bb83fe3110c"}),
}


@pytest.mark.parametrize("name", ALL)
def test_containers(name: str) -> None:
    """Ids, running flags, names, image and times equal the configs read independently."""
    s, fx = snap(name), fixture(name)
    count, running = CONTAINERS[name]
    c = s.containers.set_index("container_id")
    assert sorted(c.index) == fx.container_ids()
    assert len(c) == count
    assert set(c.index[c["running"]]) == running
    assert set(c.index[c["status"] == "running"]) == running
    for cid in c.index:
        cfg = fx.container_config(cid)
        row = c.loc[cid]
        assert row["name"] == cfg["Name"].lstrip("/")
        assert row["image_ref"] == cfg["Config"]["Image"]
        assert row["image_id"] == cfg["Image"]
        assert row["created_at"] == _ts(cfg["Created"])
        started = cfg["State"]["StartedAt"]
        if started.startswith("0001-01-01"):
            assert pd.isna(row["started_at"]) and row["status"] in ("created", "running")
        else:
            assert row["started_at"] == _ts(started)


def test_docker_explorer_container_facts() -> None:
    """Names, creation/start times, config image names and ids asserted upstream."""
    cases = [  # fixture, id, name, created, start (µs, as upstream prints it), image name, image id
        ("aufs.v2", "7b02fb3e8a665a63e32b909af5babb7d6ba0b64e10003b2d9534c7d5f2af8966",
         "dreamy_snyder", "2017-02-13T16:45:05.629904159Z", "2017-02-13T16:45:05.785658+00:00",
         "busybox", "sha256:7968321274dc6b6171697c33df7815310468e694ac5be0ec03ff053bb135e768"),
        ("aufs.v1", "de44dd97cfd1c8d1c1aad7f75a435603991a7a39fa4f6b20a69bf4458809209c",
         "angry_rosalind", "2018-12-27T10:53:17.096746609Z", "2018-12-27T10:53:17.409426+00:00",
         "busybox", "1cee97b18f87b5fa91633db35f587e2c65c093facfa2cbbe83d5ebe06e1d9125"),
        ("overlay.v2", "5dc287aa80b460652a5584e80a5c8c1233b0c0691972d75424cf5250b917600a",
         "elastic_booth", "2018-01-26T14:55:56.280943771Z", "2018-01-26T14:55:56.574924+00:00",
         "busybox:latest", "sha256:5b0d59026729b68570d99bc4f3f7c31a2e4f2a5736435641565d93e7c25bd2c3"),
        ("overlay2.v2", "8e8b7f23eb7cbd4dfe7e91646ddd0e0f524218e25d50113559f078dfb2690206",
         "festive_perlman", "2018-05-16T10:51:39.271019533Z", "2018-05-16T10:51:39.625989+00:00",
         "busybox", "sha256:8ac48589692a53a9b8c2d1ceaa6b402665aa7fe667ba51ccc03002300856d8c7"),
    ]
    for name, cid, cname, created, start, image_name, image_id in cases:
        row = snap(name).find_container(cid[:10])
        assert row["container_id"] == cid and row["name"] == cname and bool(row["running"])
        assert row["created_at"] == _ts(created)
        assert row["started_at"].floor("us") == _ts(start)
        assert row["image_ref"] == image_name and row["image_id"] == image_id
        assert row["log_path"] == f"/var/lib/docker/containers/{cid}/{cid}-json.log" or \
            name == "aufs.v2"  # upstream's aufs.v2 LogPath was rewritten to /tmp/docker/...
    # second container of overlay2.v2 by name, never started
    row = snap("overlay2.v2").find_container("reverent_wing")
    assert row["container_id"].startswith("10acac0b3466") and not row["running"]
    assert row["created_at"] == _ts("2018-05-16T10:51:28.695738065Z")
    cfg = json.loads(row["config_json"])
    # oddity: upstream expects {12345/tcp, 27017/tcp}, read from a hand-added ContainerConfig
    assert set(cfg["Config"]["ExposedPorts"]) == {"27017/tcp"}
    assert set(cfg["ContainerConfig"]["ExposedPorts"]) == {"12345/tcp", "27017/tcp"}


def test_docker_explorer_id_prefixes() -> None:
    """Unique prefixes resolve; shared ones are ambiguous (upstream _GetFullContainerID)."""
    assert snap("aufs.v2").find_container("2cc4b0d")["container_id"] == \
        "2cc4b0d9c1dfdf71099c5e9a109e6a0fe286152a5396bd1850689478e8f70625"
    assert snap("aufs.v1").find_container("de44dd")["name"] == "angry_rosalind"
    assert snap("overlay2.v2").find_container("61ba4e6c012c782")["name"] == "zealous_lalande"
    with pytest.raises(AmbiguousReference):
        snap("overlay.v2").find_container("4")  # 42e8679f… and 4ad09bee…
    ids = sorted(snap("aufs.v1").containers["container_id"])
    assert [i[:6] for i in ids] == ["3b03d0", "de44dd", "fbb671"]


def test_repository_filter_facts() -> None:
    """overlay2.v2: exactly one container was created from gcr.io/google-containers/busybox."""
    c = snap("overlay2.v2").containers
    gcr = c[c["image_ref"].str.startswith("gcr.io/")]
    assert list(gcr["container_id"]) == [
        "f83f963c67cbd36055f690fc988c1e42be06c1253e80113d1d516778c06b2841"]
    assert gcr["image_ref"].iloc[0] == "gcr.io/google-containers/busybox:latest"
    assert len(c) - len(gcr) == 4  # upstream: filtering out gcr.io leaves 4


# -- images, tags, layers ------------------------------------------------------------------

def _expected_tags(name: str) -> set[tuple[str, str]]:
    """(reference, image id) pairs from the fixture's own tag files."""
    fx = fixture(name)
    out = set()
    for m in fx.glob(r"image/([^/]+)/repositories\.json"):
        for repo, refs in (fx.json(m.group(0)).get("Repositories") or {}).items():
            out |= {(ref, iid) for ref, iid in refs.items()}
    for m in fx.glob(r"repositories-[a-z0-9-]+"):
        for repo, refs in fx.json(m.group(0))["Repositories"].items():
            out |= {(f"{repo}:{tag}", iid) for tag, iid in refs.items()}
    return out


@pytest.mark.parametrize("name", ALL)
def test_images_and_tags(name: str) -> None:
    """Every image config (v2 imagedb or v1 graph) is an image; tags match the tag files."""
    s, fx = snap(name), fixture(name)
    drv = {"aufs.v2": "aufs", "overlay.v2": "overlay"}.get(name, "overlay2")
    if name in ("aufs.v1", "plaso"):
        want = {m.group(1) for m in fx.glob(r"graph/([0-9a-f]{64})/json")}
    else:
        want = {"sha256:" + m.group(1)
                for m in fx.glob(rf"image/{drv}/imagedb/content/sha256/([0-9a-f]{{64}})")}
    assert set(s.images["image_id"]) == want
    got = set(zip(s.image_tags["reference"], s.image_tags["image_id"]))
    assert got == _expected_tags(name)
    assert s.image_tags["image_present"].all()


def test_docker_explorer_repositories() -> None:
    """The repositories upstream prints for each fixture."""
    def refs(name: str) -> dict[str, str]:
        t = snap(name).image_tags
        return dict(zip(t["reference"], t["image_id"]))

    assert refs("aufs.v1") == {
        "busybox:latest": "1cee97b18f87b5fa91633db35f587e2c65c093facfa2cbbe83d5ebe06e1d9125"}
    assert refs("aufs.v2") == {
        "busybox:latest": "sha256:7968321274dc6b6171697c33df7815310468e694ac5be0ec03ff053bb135e768"}
    assert refs("overlay.v2") == {
        "busybox:latest": "sha256:5b0d59026729b68570d99bc4f3f7c31a2e4f2a5736435641565d93e7c25bd2c3",
        "busybox@sha256:1669a6aa7350e1cdd28f972ddad5aceba2912f589f19a090ac75b7083da748db":
            "sha256:5b0d59026729b68570d99bc4f3f7c31a2e4f2a5736435641565d93e7c25bd2c3"}
    # overlay2.v2 also has image/overlay/repositories.json = {"Repositories": {}} (leftover)
    assert fixture("overlay2.v2").json("image/overlay/repositories.json") == {"Repositories": {}}
    assert refs("overlay2.v2") == {
        "busybox:latest": "sha256:8ac48589692a53a9b8c2d1ceaa6b402665aa7fe667ba51ccc03002300856d8c7",
        "busybox@sha256:58ac43b2cc92c687a32c8be6278e50a063579655fe3090125dcb2af0ff9e1a64":
            "sha256:8ac48589692a53a9b8c2d1ceaa6b402665aa7fe667ba51ccc03002300856d8c7"}


@pytest.mark.parametrize("name", ["aufs.v2", "overlay.v2", "overlay2.v2", "vols.v2"])
def test_layer_sizes_equal_layerdb(name: str) -> None:
    """layers.size_bytes is the layerdb ``size`` file; images sum their chain."""
    s, fx = snap(name), fixture(name)
    want = {"sha256:" + m.group(2): int(fx.data(m.group(0)))
            for m in fx.glob(r"image/([^/]+)/layerdb/sha256/([0-9a-f]{64})/size")}
    got = dict(zip(s.layers["chain_id"], s.layers["size_bytes"]))
    assert got == want
    assert s.layers["dir_present"].all() and s.layers["chain_ok"].all()
    for img in s.images.itertuples():
        assert img.size_bytes == sum(got[c] for c in [img.top_chain_id])  # one-layer images
    if name == "vols.v2":
        assert list(s.layers["size_bytes"]) == [5574537]
        assert s.images["size_bytes"].tolist() == [5574537]


def test_docker_explorer_history() -> None:
    """Upstream history: created time, CMD step, size 0 for the top entry."""
    for name, image_id, created in [
            ("aufs.v2", "sha256:7968321274dc6b6171697c33df7815310468e694ac5be0ec03ff053bb135e768",
             "2017-01-13T22:13:54.401355854Z"),
            ("overlay.v2", "sha256:5b0d59026729b68570d99bc4f3f7c31a2e4f2a5736435641565d93e7c25bd2c3",
             "2018-01-24T04:29:35.590938514Z"),
            ("overlay2.v2", "sha256:8ac48589692a53a9b8c2d1ceaa6b402665aa7fe667ba51ccc03002300856d8c7",
             "2018-04-05T10:41:28.876407948Z")]:
        s = snap(name)
        img = s.images.set_index("image_id").loc[image_id]
        assert img["created_at"] == _ts(created)
        h = s.image_history[s.image_history["image_id"] == image_id].sort_values("step")
        top = h.iloc[-1]
        assert top["created_by"] == '/bin/sh -c #(nop)  CMD ["sh"]' and top["layer_size_bytes"] == 0
        assert json.loads(img["config_json"])["container_config"]["Cmd"] == \
            ["/bin/sh", "-c", "#(nop) ", 'CMD ["sh"]']


# -- the pre-1.10 layout (aufs.v1) ---------------------------------------------------------

def test_v1_graph_layers_and_history() -> None:
    """graph/<id>/{json,layersize} become images, layers and history; ids stay bare hex."""
    s, fx = snap("aufs.v1"), fixture("aufs.v1")
    top, base = ("1cee97b18f87b5fa91633db35f587e2c65c093facfa2cbbe83d5ebe06e1d9125",
                 "df557f39d413a1408f5c28d8aab2892f927237ec22e903ef04b331305130ab38")
    sizes = {m.group(1): int(fx.data(m.group(0))) for m in fx.glob(r"graph/([0-9a-f]{64})/layersize")}
    assert sizes == {top: 0, base: 1154361}
    layers = s.layers.set_index("chain_id")
    assert layers["size_bytes"].to_dict() == sizes
    assert layers.loc[top, "parent_chain_id"] == base and pd.isna(layers.loc[base, "parent_chain_id"])
    assert (layers["cache_id"] == layers.index).all() and layers["dir_present"].all()
    assert layers["has_tar_split"].all() and layers["diff_id"].isna().all()
    assert layers.loc[top, "driver_dir"] == f"aufs/diff/{top}"
    images = s.images.set_index("image_id")
    assert images.loc[top, "layer_count"] == 2 and images.loc[top, "size_bytes"] == 1154361
    assert images.loc[top, "parent_id"] == base and images.loc[top, "tagged"]
    assert not images.loc[base, "tagged"] and images.loc[base, "children"] == 1
    assert images.loc[top, "created_at"] == _ts("2018-12-26T08:20:42.831353376Z")
    # oddity: a pre-1.10 layout carrying JSON written by 18.06.1-ce
    assert images.loc[top, "docker_version"] == "18.06.1-ce"
    assert "pre-1.10 graph/ layout" in json.loads(s.meta["docker_version_hints"])
    assert s.meta["image_store"] == "graphdriver"
    # upstream GetHistory/GetOrderedLayers: two layers, top first; base created + ADD + size
    h = s.image_history[s.image_history["image_id"] == top].sort_values("step")
    assert list(h["chain_id"]) == [base, top]
    assert list(h["layer_size_bytes"]) == [1154361, 0]
    assert h.iloc[0]["created_at"].floor("us") == _ts("2018-12-26T08:20:42.687925+00:00")
    assert h.iloc[0]["created_by"] == ("/bin/sh -c #(nop) ADD file:ce026b62356eec3ad1214f92be2c"
                                       "9dc063fe205bd5e600be3492c4dfb17148bd in / ")
    assert h.iloc[1]["created_by"] == '/bin/sh -c #(nop)  CMD ["sh"]'
    assert s.find_image("busybox")["image_id"] == top and s.find_image("1cee97")["image_id"] == top
    assert not any(c.startswith("legacy.") for c in s.issues["code"])


def test_v1_containers_rw_layers() -> None:
    """v1 containers: config.json is read; the RW layer is aufs/diff/<container-id>."""
    s = snap("aufs.v1")
    c = s.containers.set_index("container_id")
    assert (c["mount_id"] == c.index).all()
    assert (c["init_id"] == c.index + "-init").all()
    assert (c["config_path"].str.endswith("/config.json")).all()
    de44 = "de44dd97cfd1c8d1c1aad7f75a435603991a7a39fa4f6b20a69bf4458809209c"
    fbb6 = "fbb6711cefc70193cb6cb0b113fc9ed6b9eaddcdd33667adb5cb690a4dca413a"
    assert c.loc[fbb6, "status"] == "created" and "-ti" in c.loc[fbb6, "error"]  # oddity
    # de44's RW layer holds /root/.ash_history and /tmp/toto (SOURCE.md); its size counts
    # every file under aufs/diff/<id> (aufs is not a naive-diff driver)
    fx = fixture("aufs.v1")
    head = f"aufs/diff/{de44}/"
    files = {p[len(head):]: e for p, e in fx.entries.items() if p.startswith(head)}
    assert {"root/.ash_history", "tmp/toto"} <= set(files)
    assert c.loc[de44, "size_rw_bytes"] == sum(e.size for e in files.values() if e.kind == "file")
    dirs = s.layer_dirs.set_index("dir_id")
    assert dirs.loc[de44, "role"] == "container-rw" and dirs.loc[de44 + "-init", "role"] == \
        "container-init"
    assert set(dirs.index[dirs["role"] == "image-layer"]) == set(s.layers["chain_id"])
    assert not (dirs["role"] == "orphan").any()


def test_plaso_partial_v1_root() -> None:
    """plaso's partial v1 extract: one graph entry with a missing parent, one running container."""
    s = snap("plaso")
    gid = "3c9a9d7cc6a235eb2de58ca9ef3551c67ae42a991933ba4958d207b29142902b"
    img = s.images.set_index("image_id").loc[gid]
    assert img["docker_version"] == "1.8.2" and img["created_at"] == _ts("2015-10-12T17:27:03.079273868Z")
    assert pd.isna(img["size_bytes"])  # no layersize file in the extract
    h = s.image_history[s.image_history["image_id"] == gid]
    assert h["created_by"].tolist() == [
        "/bin/sh -c sed -i 's/^#\\s*\\(deb.*universe\\)$/\\1/g' /etc/apt/sources.list"]
    codes = set(s.issues["code"])
    assert {"layer.missing", "layer.dir_missing"} <= codes
    c = s.containers.iloc[0]
    assert c["name"] == "desperate_galileo" and c["status"] == "running"
    assert c["started_at"] == _ts("2016-01-07T16:49:08.67487377Z")
    m = s.container_mounts.iloc[0]
    assert (m["destination"], m["source"], m["type"]) == ("/data", "/data", "bind")
    assert s.logs.empty  # container-json.log is not a daemon log file name


# -- storage drivers ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["aufs.v1", "aufs.v2"])
def test_aufs_layer_chains(name: str) -> None:
    """layer_dirs.lower is aufs/layers/<id>, one ancestor per line, nearest first."""
    s, fx = snap(name), fixture(name)
    dirs = s.layer_dirs.set_index("dir_id")
    files = fx.glob(r"aufs/layers/([^/]+)")
    assert files
    for m in files:
        chain = fx.data(m.group(0)).decode().split()
        got = dirs.loc[m.group(1), "lower"]
        assert (pd.isna(got) and not chain) or got.split(":") == chain
    # upstream mount commands: RW, -init, then the image layers top-down
    cid = {"aufs.v1": "de44dd97cfd1c8d1c1aad7f75a435603991a7a39fa4f6b20a69bf4458809209c",
           "aufs.v2": "7b02fb3e8a665a63e32b909af5babb7d6ba0b64e10003b2d9534c7d5f2af8966"}[name]
    row = s.find_container(cid)
    want = {"aufs.v1": ["1cee97b18f87b5fa91633db35f587e2c65c093facfa2cbbe83d5ebe06e1d9125",
                        "df557f39d413a1408f5c28d8aab2892f927237ec22e903ef04b331305130ab38"],
            "aufs.v2": ["d1c54c46d331de21587a16397e8bd95bdbb1015e1a04797c76de128107da83ae"]}[name]
    mount = row["mount_id"]
    if name == "aufs.v2":
        assert mount == "b16a494082bba0091e572b58ff80af1b7b5d28737a3eedbe01e73cd7f4e01d23"
    assert dirs.loc[mount, "lower"].split(":") == [mount + "-init"] + want


def test_overlay_v1_lower_id_root_upper() -> None:
    """overlay v1: image layers are root/ trees; container layers upper/ + lower-id."""
    s, fx = snap("overlay.v2"), fixture("overlay.v2")
    dirs = s.layer_dirs.set_index("dir_id")
    lower_ids = {m.group(1): fx.data(m.group(0)).decode().strip()
                 for m in fx.glob(r"overlay/([^/]+)/lower-id")}
    assert len(lower_ids) == 12  # 6 containers × (RW + init)
    for dir_id, lower in lower_ids.items():
        assert dirs.loc[dir_id, "lower"] == lower
        assert dirs.loc[dir_id, "content_path"] == f"overlay/{dir_id}/upper"
    image_dir = "a94d714512251b0d8a9bfaacb832e0c6cb70f71cb71976cca7a528a429336aae"
    assert set(lower_ids.values()) == {image_dir}
    assert dirs.loc[image_dir, "content_path"] == f"overlay/{image_dir}/root"
    assert dirs.loc[image_dir, "role"] == "image-layer"
    assert s.layers["cache_id"].tolist() == [image_dir]
    assert s.layers["size_bytes"].tolist() == [1146369]
    # upstream: running container's upper dir and lowerdir
    row = s.find_container("5dc287aa80")
    assert row["mount_id"] == "974e2b994f9db74e1ddd6fc546843bc65920e786612a388f25685acf84b3fed1"
    assert dirs.loc[row["mount_id"], "lower"] == image_dir


def _naive_upper_size(fx: Fixture, upper: str, init_upper: str, root: str) -> int:
    """Bytes in ``upper`` that differ from ``init_upper`` (else ``root``): size, mode, mtime."""
    total = 0
    for rel, e in fx.entries.items():
        if not rel.startswith(upper + "/") or e.kind not in ("file", "symlink"):
            continue
        inner = rel[len(upper) + 1:]
        ref = fx.entries.get(f"{init_upper}/{inner}") or fx.entries.get(f"{root}/{inner}")
        same = ref is not None and (ref.kind, ref.size, ref.mode, ref.mtime, ref.linkname) == \
            (e.kind, e.size, e.mode, e.mtime, e.linkname)
        if not same:
            total += e.size if e.kind == "file" else len(e.linkname.encode())
    return total


def test_overlay_v1_rw_size_is_naive_diff() -> None:
    """overlay v1 containers: RW size = changes against the init layer (copied files excluded)."""
    s, fx = snap("overlay.v2"), fixture("overlay.v2")
    dirs = s.layer_dirs.set_index("dir_id")
    for row in s.containers.itertuples():
        want = _naive_upper_size(fx, f"overlay/{row.mount_id}/upper",
                                 f"overlay/{row.init_id}/upper",
                                 f"overlay/{dirs.loc[row.mount_id, 'lower']}/root")
        assert row.size_rw_bytes == want, row.name
        if row.status == "created":
            assert want == 0
    sizes = dict(zip(s.containers["name"], s.containers["size_rw_bytes"]))
    assert sizes["frosty_lichterman"] == 31 and sizes["elastic_booth"] == 27


def test_overlay2_lower_links() -> None:
    """overlay2: lower = the lower file (l/<link> ids); upstream's mount command for 92fd3b…"""
    s, fx = snap("overlay2.v2"), fixture("overlay2.v2")
    dirs = s.layer_dirs.set_index("dir_id")
    for m in fx.glob(r"overlay2/([^/]+)/lower"):
        assert dirs.loc[m.group(1), "lower"] == fx.data(m.group(0)).decode().strip()
    for m in fx.glob(r"overlay2/([^/]+)/link"):
        assert dirs.loc[m.group(1), "link_id"] == fx.data(m.group(0)).decode().strip()
    row = s.find_container("8e8b7f23eb7c")
    assert row["mount_id"] == "92fd3b3e7d6101bb701743c9518c45b0d036b898c8a3d7cae84e1a06e6829b53"
    assert dirs.loc[row["mount_id"], "lower"] == \
        "l/OTFSLJCXWCECIG6FVNGRTWUZ7D:l/CH5A7XWSBP2DUPV7V47B7DOOGY"
    assert dirs.loc[row["mount_id"], "content_path"] == f"overlay2/{row['mount_id']}/diff"


# -- volumes, networks, logs ----------------------------------------------------------------

def test_volumes_named_bind_and_dangling() -> None:
    """vols.v2: volumes/<name>/ folders are volumes; eda9ee… is referenced but absent."""
    s, fx = snap("vols.v2"), fixture("vols.v2")
    on_disk = {m.group(1) for m in fx.glob(r"volumes/([^/]+)/_data")}
    assert set(s.volumes["name"]) == on_disk and len(on_disk) == 3
    assert s.volumes["in_db"].all() and s.volumes["dir_present"].all()
    assert (s.volumes["ref_count"] == 1).all()
    mounts = s.container_mounts
    used = set(mounts.loc[mounts["type"] == "volume", "name"])
    dangling = "eda9ee495beccf988d963bf91de0276847e838b9531ab9118caef38a33894bb4"
    assert used - on_disk == {dangling}
    issues = s.issues[s.issues["code"] == "volume.missing"]
    assert len(issues) == 1 and dangling in issues["message"].iloc[0]
    # upstream mount commands: 8b6e90cc… has the dangling volume and a bind /opt/vols/bind → /opt
    m = mounts[mounts["container_id"].str.startswith("8b6e90cc742b")].set_index("destination")
    assert m.loc["/var/jenkins_home", "name"] == dangling
    assert (m.loc["/opt", "type"], m.loc["/opt", "source"]) == ("bind", "/opt/vols/bind")
    m = mounts[mounts["container_id"].str.startswith("712909b5ab80")]
    assert m[["destination", "name"]].values.tolist() == [
        ["/opt/vols/volume", "f5479c534bbc6e2b9861973c2fbb4863ff5b7b5843c098d7fb1a027fe730a4dc"]]
    for cid in fx.container_ids():  # every MountPoint of every config is a row
        points = fx.container_config(cid).get("MountPoints") or {}
        assert len(mounts[mounts["container_id"] == cid]) == len(points)


def test_aufs_v2_jenkins_volume() -> None:
    """aufs.v2: the running `sleep 10d` container mounts /var/jenkins_home (volume absent)."""
    s = snap("aufs.v2")
    row = s.find_container("7b02fb3e8a66")
    assert row["path"] == "sleep" and json.loads(row["args_json"]) == ["10d"]
    m = s.container_mounts[s.container_mounts["container_id"] == row["container_id"]]
    assert m[["destination", "name", "type"]].values.tolist() == [
        ["/var/jenkins_home", "28297de547b5473a9aff90aaab45ed108ebf019981b40c3c35c226f54c13ac0d",
         "volume"]]
    assert s.volumes.empty and list(s.issues["code"]) == ["volume.missing"]


@pytest.mark.parametrize("name", ["aufs.v2", "overlay.v2", "overlay2.v2", "vols.v2"])
def test_networks_from_local_kv(name: str) -> None:
    """Networks of local-kv.db: (name, driver) pairs equal what the raw bytes spell."""
    s, fx = snap(name), fixture(name)
    raw = fx.data("network/files/local-kv.db")
    pairs = {(n.decode(), d.decode()) for n, d in
             re.findall(rb'"name":"([^"]+)","networkType":"([^"]+)"', raw)}
    assert set(zip(s.networks["name"], s.networks["driver"])) == pairs
    keys = {k.decode() for k in re.findall(rb"docker/network/v1\.0/network/([0-9a-f]{64})/", raw)}
    assert set(s.networks["network_id"]) <= keys
    assert "bridge" in set(s.networks["name"])


@pytest.mark.parametrize("name", ["aufs.v1", "plaso"])
def test_no_networks_without_local_kv(name: str) -> None:
    """No local-kv.db → an empty networks table (endpoints stay in container_networks)."""
    assert snap(name).networks.empty


@pytest.mark.parametrize("name", TGZ)
def test_json_logs_decoded(name: str) -> None:
    """Each <id>-json.log yields one record per JSON line, same stream and text."""
    s, fx = snap(name), fixture(name)
    logs = s.logs
    for m in fx.glob(r"containers/([0-9a-f]{64})/[0-9a-f]{64}-json\.log"):
        lines = [json.loads(line) for line in fx.data(m.group(0)).splitlines() if line.strip()]
        got = logs[logs["container_id"] == m.group(1)].sort_values("seq")
        assert len(got) == len(lines)
        assert got["stream"].astype(str).tolist() == [d["stream"] for d in lines]
        assert [b.decode() for b in got["line"]] == [d["log"] for d in lines]
        assert got["time"].tolist() == [_ts(d["time"]) for d in lines]
    if name == "aufs.v1":  # de44… typed `touch /tmp/toto` (SOURCE.md)
        assert len(logs) == 1 and b"toto" in logs["line"].iloc[0]
