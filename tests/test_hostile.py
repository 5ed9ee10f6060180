"""End to end on hostile variants of the real overlay2 sample.

Each variant is built by :mod:`tests.hostile` in ``tmp_path``, then read through
:func:`analyzer.open_snapshot` and through the CLI. Whatever the damage: no
traceback, the expected issue codes, and the rest of the result still present.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

import analyzer
from analyzer.cli.main import main
from tests import hostile as h

#: what the intact sample holds (see samples/overlay2/truth)
IMAGES, CONTAINERS, VOLUMES, NETWORKS = 23, 13, 7, 4


def cli(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    status = main([*argv, "--no-cache", "--no-hash"], out, err)
    assert "Traceback" not in err.getvalue()
    return status, out.getvalue(), err.getvalue()


def first(pattern: str) -> str:
    """The first sample path (relative to the data-root) matching ``pattern``."""
    return h.rel_names(pattern)[0]


def config_of_first_container() -> str:
    return first(r"^containers/[0-9a-f]{64}/config\.v2\.json$")


def cache_id_of_first_layer() -> str:
    rel = first(r"^image/overlay2/layerdb/sha256/[0-9a-f]{64}/cache-id$")
    return dict((ti.name, d) for ti, d in h.sample_members())[h.PREFIX + rel].decode()


#: name -> (builder(tmp_path) -> path, issue codes that must appear, expected counts)
VARIANTS: dict[str, tuple[Callable[[Path], Path], set[str], tuple[int, int, int, int]]] = {
    "container-json": (lambda t: h.malformed_json(t / "e.tar", config_of_first_container()),
                       {"json.malformed"}, (IMAGES, CONTAINERS - 1, VOLUMES, NETWORKS)),
    "repositories-json": (lambda t: h.malformed_json(t / "e.tar",
                                                     "image/overlay2/repositories.json"),
                          {"json.malformed"}, (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
    "image-config-hash": (lambda t: h.replace_content(
        t / "e.tar", first(r"^image/overlay2/imagedb/content/sha256/"), lambda b: b + b" "),
        {"image.invalid"}, (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
    "volumes-db-byte": (lambda t: h.flip_byte(t / "e.tar", "volumes/metadata.db", 3 * 4096 + 24),
                        {"json.malformed"}, (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
    "network-db-byte": (lambda t: h.flip_byte(t / "e.tar", "network/files/local-kv.db", 2 * 4096),
                        {"bbolt.malformed"}, (IMAGES, CONTAINERS, VOLUMES, 0)),
    "layer-dir-removed": (lambda t: h.drop_under(t / "e.tar",
                                                 "overlay2/" + cache_id_of_first_layer()),
                          {"layer.dir_missing"}, (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
    "dotdot-member": (lambda t: h.derive(t / "e.tar", extra=[h.file_member("../../etc/passwd",
                                                                           b"root:x:0:0")]),
                      {"path.escape"}, (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
    "moved-root": (lambda t: h.moved_root(t / "e.tar", "evidence/host1/docker"),
                   set(), (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
    "two-roots": (lambda t: h.two_roots(t / "e.tar", "other/docker"),
                  {"root.multiple"}, (IMAGES, CONTAINERS, VOLUMES, NETWORKS)),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant(tmp_path: Path, name: str) -> None:
    build, codes, (images, containers, volumes, networks) = VARIANTS[name]
    path = build(tmp_path)
    snap = analyzer.open_snapshot(os.fspath(path), hash_files=False)
    assert codes <= set(snap.issues["code"]), snap.issues[["code", "message"]]
    assert (len(snap.images), len(snap.containers), len(snap.volumes), len(snap.networks)) \
        == (images, containers, volumes, networks)
    assert bool(snap.meta["complete"])
    status, out, err = cli("ps", "-a", os.fspath(path))
    assert status == 0
    assert len(out.splitlines()) == containers + 1  # header + one line per container
    if codes:
        assert "evidence issue" in err


def test_moved_root_prefix(tmp_path: Path) -> None:
    snap = analyzer.open_snapshot(os.fspath(h.moved_root(tmp_path / "e.tar",
                                                         "evidence/host1/docker")),
                                  hash_files=False)
    assert snap.meta["root_prefix"] == "evidence/host1/docker"
    assert snap.meta["driver"] == "overlay2"


def test_two_roots_choose_with_root(tmp_path: Path) -> None:
    path = os.fspath(h.two_roots(tmp_path / "e.tar", "other/docker"))
    strongest = analyzer.open_snapshot(path, hash_files=False)
    assert strongest.meta["root_prefix"] == h.ROOT
    chosen = analyzer.open_snapshot(path, root="other/docker", hash_files=False)
    assert chosen.meta["root_prefix"] == "other/docker"
    assert "root.multiple" not in set(chosen.issues["code"])
    assert len(chosen.containers) == CONTAINERS and len(chosen.images) == 0
    status, out, _ = cli("ps", "-a", path, "--root", "other/docker")
    assert status == 0 and len(out.splitlines()) == CONTAINERS + 1
    status, _, err = cli("ps", "-a", path, "--root", "nowhere")
    assert status == 2 and err.startswith("analyzer: error: ") and err.count("\n") == 1


def test_truncated_compressed_sample(tmp_path: Path) -> None:
    path = os.fspath(h.truncated_copy(tmp_path / "cut.tar.zst", 0.6))
    snap = analyzer.open_snapshot(path, hash_files=False)
    assert "archive.truncated" in set(snap.issues["code"])
    assert not bool(snap.meta["complete"])
    assert len(snap.volumes) == VOLUMES  # stored before the cut
    assert len(snap.files) > 100
    status, _, err = cli("info", path)
    assert status == 0
    status, _, err = cli("images", path, "--strict")
    assert status == 4 and "evidence issue" in err


def test_no_data_root(tmp_path: Path) -> None:
    path = os.fspath(h.no_root(tmp_path / "e.tar"))
    status, out, err = cli("ps", path)
    assert status == 3 and out == ""
    assert err.startswith("analyzer: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("content", [b"", b"x", b"PK\x03\x04" + bytes(600)],
                         ids=["empty", "one-byte", "zip"])
def test_unusable_input(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "evidence.tar.zst"
    path.write_bytes(content)
    status, out, err = cli("images", os.fspath(path))
    assert status == 3 and out == ""
    assert err.startswith("analyzer: error: ") and err.count("\n") == 1


#: columns that cannot agree between a tar and its extraction (ctime is set by the kernel)
CTIME_COLUMNS = {"volumes": ["created_at"]}


def _comparable(table: str, df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=CTIME_COLUMNS.get(table, [])).reset_index(drop=True)


def test_directory_matches_tar(tmp_path: Path) -> None:
    tar = tmp_path / "sample.tar"
    tar.write_bytes(h.sample_tar_bytes())
    from_tar = analyzer.open_snapshot(os.fspath(tar), hash_files=False)
    folder = h.extract_sample(tmp_path / "extracted")
    from_dir = analyzer.open_snapshot(os.fspath(folder), hash_files=False)
    assert from_dir.meta["sha256_kind"] == "listing" and from_tar.meta["sha256_kind"] == "bytes"
    assert from_dir.meta["root_prefix"] == from_tar.meta["root_prefix"]
    for table in ("images", "containers", "volumes", "networks"):
        pd.testing.assert_frame_equal(_comparable(table, from_dir.tables[table]),
                                      _comparable(table, from_tar.tables[table]), obj=table)
    status, out, _ = cli("ps", "-a", os.fspath(folder))
    assert status == 0 and len(out.splitlines()) == CONTAINERS + 1


def test_hostile_builders_keep_the_sample_intact(tmp_path: Path) -> None:
    """Sanity: a rewrite without edits reads like the committed sample."""
    snap: Any = analyzer.open_snapshot(os.fspath(h.derive(tmp_path / "same.tar")),
                                       hash_files=False)
    assert (len(snap.images), len(snap.containers), len(snap.volumes), len(snap.networks)) \
        == (IMAGES, CONTAINERS, VOLUMES, NETWORKS)
    assert len(snap.issues) == 0


def test_damaged_bbolt_leaf_flag_is_reported_not_silent(tmp_path: Path) -> None:
    """Inverting the flags of the first libnetwork record makes it look like a nested
    bucket; the lost network must show up as an issue, not vanish silently."""
    snap = analyzer.open_snapshot(str(h.flip_byte(tmp_path / "kv.tar.zst",
                                               "network/files/local-kv.db", 16400)))
    issues = snap.issues[snap.issues["code"] == "bbolt.malformed"]
    assert len(issues) >= 1 and "nested bucket" in issues["message"].iloc[0]
    assert len(snap.networks) >= 3  # the rest of the database is still read
