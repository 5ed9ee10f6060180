"""The pre-1.10 ``graph/`` loader on small synthetic data-roots (directory input).

The peer fixtures (``tests/test_peers.py``) cover a real-looking v1 root; these
cover the branches they lack: digest keys in ``repositories-<drv>``, a missing
parent, a JSON id that disagrees with its folder, and a migrated host where
``graph/`` leftovers sit next to a v2 store.
"""

from __future__ import annotations

import json
from pathlib import Path

import analyzer

A = "a" * 64
B = "b" * 64
C = "c" * 64
CID = "d" * 64


def _write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _v1_root(root: Path) -> None:
    """vfs root: A ← B (tagged, also by digest), C whose parent is absent, one container."""
    _write(root, f"graph/{A}/json", json.dumps({"id": A, "created": "2015-01-01T00:00:00Z",
                                                 "container_config": {"Cmd": ["/bin/sh", "-c",
                                                                              "#(nop) ADD x"]}}))
    _write(root, f"graph/{A}/layersize", "100")
    _write(root, f"graph/{B}/json", json.dumps({"id": B, "parent": A, "docker_version": "1.9.1",
                                                 "config": {"Cmd": ["sh"]}}))
    _write(root, f"graph/{B}/layersize", "5")
    _write(root, f"graph/{C}/json", json.dumps({"id": "f" * 64, "parent": "e" * 64, "Size": 7}))
    _write(root, "repositories-vfs", json.dumps({"Repositories": {"app": {
        "1.0": B, "sha256:" + "9" * 64: B}}}))
    _write(root, f"vfs/dir/{A}/bin/sh", b"x" * 100)
    _write(root, f"vfs/dir/{B}/etc/motd", b"hello")
    _write(root, f"containers/{CID}/config.json", json.dumps({
        "ID": CID, "Name": "/web", "Image": B, "Driver": "vfs", "Config": {"Image": "app:1.0"},
        "State": {"Running": False, "StartedAt": "2015-01-02T00:00:00Z"}}))


def test_v1_root_rows(tmp_path: Path) -> None:
    """Images, layers, tags, history and container layer ids of a v1 root."""
    _v1_root(tmp_path)
    s = analyzer.open_snapshot(str(tmp_path), hash_files=False)
    images = s.images.set_index("image_id")
    assert set(images.index) == {A, B, C}
    assert images.loc[B, "layer_count"] == 2 and images.loc[B, "size_bytes"] == 105
    assert images.loc[C, "size_bytes"] == 7  # no layersize: the JSON Size
    assert images["valid"].isna().all()
    tags = s.image_tags.set_index("reference")
    assert tags.loc["app:1.0", "tag"] == "1.0"
    assert tags.loc["app@sha256:" + "9" * 64, "digest"] == "sha256:" + "9" * 64
    layers = s.layers.set_index("chain_id")
    assert layers.loc[B, "parent_chain_id"] == A and layers.loc[B, "driver_dir"] == f"vfs/dir/{B}"
    assert layers.loc[A, "dir_present"] and not layers.loc[C, "dir_present"]
    h = s.image_history[s.image_history["image_id"] == B]
    assert h["chain_id"].tolist() == [A, B] and h["created_by"].tolist()[0] == "/bin/sh -c #(nop) ADD x"
    c = s.containers.iloc[0]
    assert (c["mount_id"], c["init_id"]) == (CID, CID + "-init")
    codes = s.issues["code"].tolist()
    assert codes.count("layer.missing") == 1  # C's parent
    assert "json.unexpected" in codes  # C's JSON id differs from its folder
    assert s.find_image("app:1.0")["image_id"] == B and s.find_image(B[:8])["image_id"] == B


def test_migrated_host_prefers_v2(tmp_path: Path) -> None:
    """graph/ next to image/<drv>/: the v2 store is used and an info issue notes the leftovers."""
    _v1_root(tmp_path)
    _write(tmp_path, "image/vfs/repositories.json", json.dumps({"Repositories": {}}))
    _write(tmp_path, ".migration-v1-images.json", json.dumps({B: "sha256:" + "1" * 64}))
    _write(tmp_path, f"graph/{B}/.migration-diffid", "sha256:" + "2" * 64)
    s = analyzer.open_snapshot(str(tmp_path), hash_files=False)
    assert s.images.empty and s.image_tags.empty
    leftover = s.issues[s.issues["code"] == "legacy.leftover"]
    assert len(leftover) == 1 and leftover["severity"].iloc[0] == "info"
    msg = leftover["message"].iloc[0]
    assert "3 graph/ entries (1 with .migration-diffid)" in msg and "maps 1 v1 ids" in msg
