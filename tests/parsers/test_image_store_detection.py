"""Which image store a root used: graphdriver, containerd, or traces of both.

A Docker 24+ root that ran with the containerd image store keeps containers in
``containers/`` with ``Driver`` set to a snapshotter name (``overlayfs``) and no
``image/<driver>/`` store; its images live in containerd's root, usually
``/var/lib/containerd`` outside the data-root. The analyzer must say so instead
of reporting "no images".
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import analyzer

CID = "c" * 64


def _tar(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return str(path)


def _container(driver: str) -> bytes:
    return json.dumps({"ID": CID, "Name": "/web", "Driver": driver, "Image": "sha256:" + "d" * 64,
                       "Config": {"Image": "nginx"}, "State": {"Running": False,
                                                               "StartedAt": "0001-01-01T00:00:00Z"},
                       "Created": "2026-01-01T00:00:00Z"}).encode()


def test_containerd_store_is_detected_and_explained(tmp_path: Path) -> None:
    path = _tar(tmp_path / "c8d.tar", {
        f"var/lib/docker/containers/{CID}/config.v2.json": _container("overlayfs"),
        f"var/lib/docker/containers/{CID}/hostconfig.json": b"{}",
        f"var/lib/docker/rootfs/overlayfs/{CID}/.keep": b"",
        "var/lib/docker/engine-id": b"0e3f1e3e-0000-0000-0000-000000000000",
    })
    snap = analyzer.open_snapshot(path)
    assert snap.meta["image_store"] == "containerd"
    issue = snap.issues[snap.issues["code"] == "store.containerd_missing"]
    assert len(issue) == 1
    message = issue["message"].iloc[0]
    assert "containerd image store" in message and "/var/lib/containerd" in message
    assert snap.containers["name"].tolist() == ["web"]  # containers are still read


def test_graphdriver_root_with_a_daemon_managed_containerd_is_not_flagged(tmp_path: Path) -> None:
    path = _tar(tmp_path / "gd.tar", {
        f"docker/containers/{CID}/config.v2.json": _container("overlay2"),
        "docker/image/overlay2/repositories.json": b'{"Repositories":{}}',
        "docker/containerd/daemon/io.containerd.metadata.v1.bolt/meta.db": b"",
    })
    snap = analyzer.open_snapshot(path)
    assert snap.meta["image_store"] == "graphdriver"
    assert "store.containerd_missing" not in set(snap.issues["code"])
