"""Storage analyses on the real overlay2 sample, with numbers pinned from its recipe.

``samples/make_samples.sh`` builds ``app:legacy`` so that each step plants one
known inefficiency: ``a.txt`` (11 B) is copied up by a chmod, the first
``dup.txt`` (25 B) is overwritten by an identical copy, ``secret.txt`` (45 B) is
deleted (whiteout), and ``/opt/d`` with two 6-byte files is replaced wholesale
(opaque directory): 93 wasted bytes. ``app:buildkit`` deletes ``/srv/gone.txt``
(4 B).
"""

from __future__ import annotations

import networkx as nx
import pytest

from analyzer.analyses import storage
from analyzer.model.graph import (freed_if_deleted, from_json, image_layers, layer_tree,
                                  layer_users, to_json)
from tests.conftest import sample_snapshot


@pytest.fixture(scope="module")
def snap():  # type: ignore[no-untyped-def]
    return sample_snapshot("overlay2")


def test_waste_matches_the_recipe(snap) -> None:  # type: ignore[no-untyped-def]
    waste = storage.image_waste(snap).set_index("image_id")
    legacy = snap.find_image("app:legacy")["image_id"]
    buildkit = snap.find_image("app:buildkit")["image_id"]
    base = snap.find_image("base:1.0")["image_id"]
    assert waste.loc[legacy, "wasted_bytes"] == 11 + 25 + 45 + 6 + 6
    assert waste.loc[buildkit, "wasted_bytes"] == 4
    assert waste.loc[base, "wasted_bytes"] == 0
    assert 0.99 < waste.loc[legacy, "efficiency"] < 1.0


def test_waste_is_not_measured_on_full_copy_drivers() -> None:
    waste = storage.image_waste(sample_snapshot("vfs"))
    assert waste["wasted_bytes"].isna().all()


def test_duplicates_find_the_identical_dup_txt(snap) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    summary, top = storage.duplicates(snap)
    dup = hashlib.sha256(b"same bytes in two layers\n").hexdigest()
    row = top[top["sha256"] == dup].iloc[0]
    assert row["copies"] >= 2 and row["wasted_bytes"] == 25 * (row["copies"] - 1)
    assert summary["saved_by_dedup_bytes"] == summary["stored_bytes"] - summary["unique_bytes"]
    assert summary["saved_by_dedup_bytes"] >= 25


def test_image_usage_agrees_with_system_df(snap) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import SAMPLES, Truth

    df = Truth(SAMPLES / "overlay2" / "truth").json("system-df.json")
    usage = storage.image_usage(snap).set_index("image_id")
    for img in df["Images"]:
        assert usage.loc[img["Id"], "shared_bytes"] == img["SharedSize"]
        assert usage.loc[img["Id"], "size_bytes"] == img["Size"]
        assert usage.loc[img["Id"], "containers"] == img["Containers"]


def test_freed_if_deleted_counts_only_private_layers(snap) -> None:  # type: ignore[no-untyped-def]
    usage = storage.image_usage(snap).set_index("image_id")
    base = snap.find_image("base:1.0")["image_id"]
    assert usage.loc[base, "freed_if_deleted_bytes"] == 0  # every image builds on it
    legacy = snap.find_image("app:legacy")["image_id"]
    assert usage.loc[legacy, "freed_if_deleted_bytes"] == usage.loc[legacy, "unique_bytes"]


def test_graph_shape_and_round_trip(snap) -> None:  # type: ignore[no-untyped-def]
    g = snap.graph
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    kinds = {k for _, _, k in g.edges(data="kind")}
    assert {"parent", "top_layer", "parent_layer", "stored_in", "created_from", "rw_dir",
            "init_dir", "mounts"} <= kinds
    back = from_json(to_json(g))
    assert sorted(back.nodes) == sorted(g.nodes)
    assert sorted(back.edges) == sorted(g.edges)
    legacy = snap.find_image("app:legacy")
    layers = image_layers(g, legacy["image_id"])
    assert len(layers) == legacy["layer_count"] and layers[-1] == legacy["top_chain_id"]
    users = layer_users(g, layers[0])
    assert len(users["images"]) == len(snap.images)  # the imported base layer is under all
    assert len(users["containers"]) == len(snap.containers)
    tree = layer_tree(g)
    assert len(tree) == 1 and tree[0]["chain_id"] == layers[0]
    assert freed_if_deleted(g, legacy["image_id"], keep=set()) == legacy["size_bytes"]


def test_orphans_and_growth(snap) -> None:  # type: ignore[no-untyped-def]
    out = storage.orphans_and_growth(snap)
    assert {"orphan", "labeled", "tmpfs-opts"} <= set(out["unused_volumes"]["name"])
    assert len(out["dangling_images"]) == 1
    web = out["logs"].set_index("name").loc["web-1"]
    assert web["log_files"] == 3 and web["log_bytes"] > 16384
    assert set(out["stopped_containers"]["status"]) == {"exited", "created"}


@pytest.mark.parametrize("name", ["overlay2", "containerd"])
def test_graph_holds_every_build_cache_record_and_its_parents(name: str) -> None:
    snap = sample_snapshot(name)
    g = snap.graph
    cache = snap.tables["build_cache"]
    nodes = {n[len("buildcache:"):] for n, d in g.nodes(data=True) if d.get("kind") == "build_cache"}
    assert nodes == set(cache["cache_id"])
    parents = {(r, p) for r, ps in zip(cache["cache_id"], cache["parent_id"]) if isinstance(ps, str)
               for p in ps.split(",")}
    edges = {(u[len("buildcache:"):], v[len("buildcache:"):]) for u, v, k in g.edges(data="kind")
             if k == "build_parent"}
    assert edges == parents and parents
