"""The synthetic data-root generator (``samples/generate.py``): our loader agrees with
the generator's own model, and the same seed gives the same bytes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import load

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("generate", ROOT / "samples" / "generate.py")
generate = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["generate"] = generate
_spec.loader.exec_module(generate)  # type: ignore[union-attr]

ARGS = ["--members", "3000", "--images", "6", "--containers", "5", "--volumes", "2",
        "--log-bytes", "4096", "--seed", "7"]


def _gen(path: Path, *extra: str) -> dict[str, Any]:
    assert generate.main([*ARGS, *extra, "--out", str(path)]) == 0
    return json.loads(Path(str(path) + ".truth.json").read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gen") / "root.tar"
    return out, _gen(out)


def test_same_seed_same_bytes(generated: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, truth = generated
    again = tmp_path / "again.tar"
    assert _gen(again) == truth
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.tar"
    _gen(other, "--seed", "8")
    assert other.read_bytes() != out.read_bytes()


def _check(snap: Any, truth: dict[str, Any]) -> None:
    assert snap.issues.empty, snap.issues.to_dict("records")
    images = snap.images.set_index("image_id")
    assert sorted(images.index) == sorted(i["id"] for i in truth["images"])
    tags = snap.image_tags
    for im in truth["images"]:
        row = images.loc[im["id"]]
        assert int(row["size_bytes"]) == im["size"]
        assert int(row["layer_count"]) == len(im["layers"])
        assert row["top_chain_id"] == im["layers"][-1]
        assert sorted(tags.loc[tags["image_id"] == im["id"], "reference"]) == im["tags"]
    hist = snap.image_history
    for im in truth["images"]:
        h = hist[(hist["image_id"] == im["id"]) & ~hist["empty_layer"].astype(bool)]
        assert list(h["chain_id"]) == im["layers"]
        assert list(h["diff_id"]) == im["diff_ids"]
    layers = snap.layers.set_index("chain_id")
    assert sorted(layers.index) == sorted(x["chain_id"] for x in truth["layers"])
    for x in truth["layers"]:
        row = layers.loc[x["chain_id"]]
        assert (row["diff_id"], row["cache_id"], int(row["size_bytes"])) == \
            (x["diff_id"], x["cache_id"], x["size"])
        assert (row["parent_chain_id"] if isinstance(row["parent_chain_id"], str) else None) \
            == x["parent"]
        assert bool(row["chain_ok"]) and bool(row["dir_present"])
    dirs = snap.layer_dirs.set_index("dir_id")
    for x in truth["layers"]:  # the daemon's directory walk of the diff dir = layerdb size
        assert int(dirs.loc[x["cache_id"], "content_bytes"]) == x["size"]
        assert dirs.loc[x["cache_id"], "link_id"] == x["link"]
    conts = snap.containers.set_index("container_id")
    assert sorted(conts.index) == sorted(c["id"] for c in truth["containers"])
    for c in truth["containers"]:
        row = conts.loc[c["id"]]
        assert row["name"].lstrip("/") == c["name"]
        assert row["status"] == c["state"]
        assert row["image_id"] == c["image"]
        assert (row["mount_id"], row["init_id"]) == (c["mount_id"], c["init_id"])
        assert int(row["size_rw_bytes"]) == c["size_rw"]
    vols = snap.volumes.set_index("name")
    assert sorted(vols.index) == sorted(v["name"] for v in truth["volumes"])
    for v in truth["volumes"]:
        assert int(vols.loc[v["name"], "size_bytes"]) == v["size"]
        assert int(vols.loc[v["name"], "files"]) >= v["files"]
    assert int(snap.meta["members"]) == truth["members"] if "members" in snap.meta else True


def test_loader_agrees_with_generator(generated: tuple[Path, dict[str, Any]]) -> None:
    out, truth = generated
    _check(load(str(out), hash_files=True), truth)


def test_compressed_roots_load_the_same(tmp_path: Path) -> None:
    for comp in ("zst", "gz"):
        out = tmp_path / f"root.tar.{comp}"
        truth = _gen(out, "--compress", comp, "--synthetic-diff-ids")
        _check(load(str(out), hash_files=False), truth)
