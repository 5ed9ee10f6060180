"""Driver corner cases found in review: capture at the archive top, unreadable drivers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd

import analyzer
from analyzer.sources.capture import wants_capture

CID = "c" * 64
MOUNT = "m" * 64


def test_aufs_layer_files_are_captured_when_the_root_is_the_archive_top() -> None:
    for path in (f"aufs/layers/{MOUNT}", f"aufs/layers/{MOUNT}-init",
                 f"var/lib/docker/aufs/layers/{MOUNT}-init"):
        assert wants_capture(path, path.rpartition("/")[2]), path


def _tar(path: Path, files: dict[str, bytes | None]) -> str:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return str(path)


def _container(driver: str, name: str, image: str, started: str) -> dict[str, bytes | None]:
    """config.v2.json + hostconfig.json of one stopped container under ``docker/``."""
    cfg = {"ID": CID, "Name": f"/{name}", "Driver": driver, "Image": "sha256:" + "d" * 64,
           "Config": {"Image": image}, "Created": "2026-01-01T00:00:00Z",
           "State": {"Running": False, "StartedAt": started}}
    return {f"docker/containers/{CID}/config.v2.json": json.dumps(cfg).encode(),
            f"docker/containers/{CID}/hostconfig.json": b"{}",
            f"docker/image/{driver}/repositories.json": b'{"Repositories":{}}'}


def test_zfs_container_size_is_unknown_not_zero(tmp_path: Path) -> None:
    """A tar holds only zfs mount points: the RW size cannot be computed (NA), and the
    driver is reported as unreadable."""
    snap = analyzer.open_snapshot(_tar(tmp_path / "zfs.tar", {
        **_container("zfs", "db", "postgres", "0001-01-01T00:00:00Z"),
        f"docker/image/zfs/layerdb/mounts/{CID}/mount-id": MOUNT.encode(),
        f"docker/image/zfs/layerdb/mounts/{CID}/init-id": f"{MOUNT}-init".encode(),
        f"docker/zfs/graph/{MOUNT}/": None,
        f"docker/zfs/graph/{MOUNT}-init/": None,
    }))
    row = snap.containers.iloc[0]
    assert row["mount_id"] == MOUNT and pd.isna(row["size_rw_bytes"])
    assert "driver.unreadable" in set(snap.issues["code"])


def test_nested_docker_in_docker_logs_stay_out_of_the_logs_table(tmp_path: Path) -> None:
    inner = "e" * 64
    line = b'{"log":"hello\\n","stream":"stdout","time":"2026-01-01T00:00:00.000000001Z"}\n'
    snap = analyzer.open_snapshot(_tar(tmp_path / "dind.tar", {
        **_container("overlay2", "dind", "docker:dind", "2026-01-01T00:00:00Z"),
        f"docker/containers/{CID}/{CID}-json.log": line,
        f"docker/overlay2/{MOUNT}/diff/var/lib/docker/containers/{inner}/{inner}-json.log":
            line * 3,
    }))
    assert set(snap.logs["container_id"]) == {CID}
    assert len(snap.logs) == 1
