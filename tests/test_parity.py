"""Every Engine API document we rebuild equals what the real daemon answered.

For each committed sample (a tar of a real dockerd data-root), the documents
recorded from that daemon's API while it ran (``samples/<name>/truth/``) are
compared field by field with ours. Lists the daemon returns in map order
(volumes, networks) are compared by name. "Up 5 seconds" wording depends on the
moment of the request, which was a few seconds after ``recorded_at``: we accept
the first reference time in that window that reproduces the whole document.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pandas as pd
import pytest

from analyzer.cli.main import main
from analyzer.render.engine import containers as econt
from analyzer.render.engine import images as eimg
from analyzer.render.engine import storage as estore
from analyzer.render.engine.common import context_for
from tests.conftest import Truth, sample_args

#: hundredths of a second around recorded_at in which the daemon answered (the recorder
#: takes a few seconds)
WINDOW = 3000


def _at(truth: Truth, offset: int) -> str:
    t = pd.Timestamp(truth.acquisition["recorded_at"]) + pd.Timedelta(milliseconds=10 * offset)
    return t.isoformat()


def test_images_list(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    ours = sorted(eimg.image_summaries(snap, all_images=True), key=lambda d: d["Id"])
    assert ours == sorted(truth.json("images.json"), key=lambda d: d["Id"])


def test_images_list_without_all_hides_intermediates(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    shown = {d["Id"] for d in eimg.image_summaries(snap, all_images=False)}
    dangling = truth.bytes("docker-images-dangling.txt").decode() if truth.has(
        "docker-images-dangling.txt") else ""
    for d in truth.json("images.json"):
        has_children = any(o["ParentId"] == d["Id"] for o in truth.json("images.json"))
        untagged = d["RepoTags"] in (["<none>:<none>"], [])  # API < 1.43 / >= 1.43
        assert (d["Id"] in shown) == (not (untagged and has_children)), d["Id"]
        if untagged and not has_children:
            assert d["Id"][7:19] in dangling


def test_image_inspect_and_history(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    ctx = context_for(snap)
    ids = truth.names("image-", ".json")
    assert len(ids) == len(snap.images)
    for short in ids:
        image = snap.find_image(short)
        expected = truth.json(f"image-{short}.json")
        if snap.meta["image_store"] == "containerd":
            # the containerd store answers with the *daemon's own* version here, which no
            # file on disk records (docs/research/containerd-store-rules.md §2)
            expected["DockerVersion"] = ""
        assert eimg.image_inspect(snap, ctx, image) == expected, short
        assert eimg.image_history(snap, image) == truth.json(f"history-{short}.json"), short


def _mounts_in_map_order(docs: list[dict[str, Any]]) -> None:
    """Container summaries walk the container's mount-point map: Go map order, so the
    list's ``Mounts`` are compared as sets (sorted by destination)."""
    for d in docs:
        d["Mounts"] = sorted(d["Mounts"], key=lambda m: m["Destination"])


def test_containers_list(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    expected = truth.json("containers.json")
    docs = econt.ContainerDocs(snap, context_for(snap, at=_at(truth, 0)))
    got = docs.list(True, True)
    assert [d["Id"] for d in got] == [d["Id"] for d in expected]  # newest first, like the daemon
    want_status = [d["Status"] for d in expected]
    for offset in range(-WINDOW, WINDOW):  # find the instant the daemon answered at
        docs.ctx = context_for(snap, at=_at(truth, offset))
        if [docs.status(d["Id"])[1] for d in got] == want_status:
            break
    for d in got:
        d["Status"] = docs.status(d["Id"])[1]
    _mounts_in_map_order(got + expected)
    assert got == expected


def test_container_inspect(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    docs = econt.ContainerDocs(snap, context_for(snap))
    names = truth.names("container-", ".json")
    assert len(names) == len(snap.containers)
    for name in names:
        cid = snap.find_container(name)["container_id"]
        assert docs.inspect(cid, size=True) == truth.json(f"container-{name}.json"), name


def test_volumes(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    expected = truth.json("volumes.json")
    expected["Volumes"].sort(key=lambda v: v["Name"])
    assert estore.volume_list(snap, context_for(snap)) == expected


def test_networks(sample: tuple[Any, Truth]) -> None:
    snap, truth = sample
    expected = sorted(truth.json("networks.json"), key=lambda n: (n["Name"], n["Id"]))
    assert estore.network_list(snap) == expected


@pytest.mark.parametrize("timestamps", [False, True])
def test_logs_byte_for_byte(sample: tuple[Any, Truth], timestamps: bool) -> None:
    snap, truth = sample
    from analyzer.cli import commands

    for name in truth.names("logs-", ".stdout"):
        if name.endswith(".ts"):
            continue
        suffix = ".ts" if timestamps else ""
        out, err = io.BytesIO(), io.BytesIO()
        args = type("A", (), {"container": name, "timestamps": timestamps, "tail": None})
        commands.cmd_logs(args, snap, _Text(out), _Text(err))  # type: ignore[arg-type]
        assert out.getvalue() == truth.bytes(f"logs-{name}{suffix}.stdout"), name
        assert err.getvalue() == truth.bytes(f"logs-{name}{suffix}.stderr"), name


class _Text:
    """A text stream whose ``buffer`` is the given BytesIO (like sys.stdout)."""

    def __init__(self, raw: io.BytesIO) -> None:
        self.buffer = raw

    def flush(self) -> None:
        pass


def test_cli_json_is_the_engine_document(sample: tuple[Any, Truth], tmp_path: Any) -> None:
    """`images --all --json` through the real CLI prints the daemon's document."""
    snap, truth = sample
    name = truth.folder.parent.name
    out, err = io.StringIO(), io.StringIO()
    status = main(["images", *sample_args(name), "--all", "--json", "--case",
                   str(tmp_path / "case")], out, err)
    assert status == 0, err.getvalue()
    got = sorted(json.loads(out.getvalue()), key=lambda d: d["Id"])
    assert got == sorted(truth.json("images.json"), key=lambda d: d["Id"])
    assert out.getvalue().endswith("\n") and "\n" not in out.getvalue()[:-1]  # compact, like the API


def test_system_df(sample: tuple[Any, Truth]) -> None:
    """GET /system/df: every number as the daemon reported it (build cache: see
    tests/parsers/test_buildcache.py)."""
    from analyzer.render.engine.system import system_df

    snap, truth = sample
    expected = truth.json("system-df.json")
    got = system_df(snap, context_for(snap, at=_at(truth, 0)))
    assert got["LayersSize"] == expected["LayersSize"]
    key = lambda d: d["Id"]  # noqa: E731 - the daemon lists in map order
    assert sorted(got["Images"], key=key) == sorted(expected["Images"], key=key)
    _mounts_in_map_order(got["Containers"] + expected["Containers"])
    for ours, theirs in zip(sorted(got["Containers"], key=key),
                            sorted(expected["Containers"], key=key)):
        ours.pop("Status"), theirs.pop("Status")  # wording depends on the request instant
        assert ours == theirs
    by_name = lambda v: v["Name"]  # noqa: E731
    assert sorted(got["Volumes"], key=by_name) == sorted(expected["Volumes"], key=by_name)


_AGO = re.compile(r"Less than a second|About a minute|About an hour|\b\d+ (?:second|minute|hour|day|week|month|year)s?\b")


def _norm_text(text: str) -> list[str]:
    """CLI text with durations masked and column padding folded (widths follow them)."""
    return [" ".join(_AGO.sub("T", line).split()) for line in text.splitlines()]


@pytest.mark.parametrize("argv,truth_file", [
    (["ps", "-a"], "docker-ps-a.txt"),
    (["images", "-a"], "docker-images-a.txt"),
    (["df", "-v"], "docker-system-df-v.txt"),
])
def test_cli_text_tables_match_the_docker_cli(sample: tuple[Any, Truth], argv: list[str],
                                              truth_file: str, tmp_path: Any) -> None:
    snap, truth = sample
    name = truth.folder.parent.name
    out, err = io.StringIO(), io.StringIO()
    status = main([argv[0], *sample_args(name), *argv[1:], "--case", str(tmp_path / "c")], out,
                  err)
    assert status == 0, err.getvalue()
    expected = _norm_text(truth.bytes(truth_file).decode())
    got = _norm_text(out.getvalue())
    if argv[0] == "images":  # the CLI prints repositories in map order: compare as a set
        assert got[0] == expected[0] and sorted(got[1:]) == sorted(expected[1:])
    elif argv[0] == "df":  # volumes come in the daemon's map order: that block as a set
        def blocks(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
            a = lines.index("Local Volumes space usage:")
            b = next(i for i, line in enumerate(lines) if line.startswith("Build cache usage:"))
            # images with equal Created come in unstable sort order: that block as a set too
            c = lines.index("Containers space usage:")
            return sorted(lines[:c]), lines[c:a], sorted(lines[a:b]), lines[b:]
        assert blocks(got) == blocks(expected)
    else:
        assert got == expected
