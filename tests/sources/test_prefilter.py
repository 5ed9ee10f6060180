"""The batch prefilter (``pipeline.WATCH``) lets through every path the per-member
checks could accept: capture rules, log files and the data-root markers.

The tar fast path offers only the paths it passes to those checks; a path it missed
would silently lose a captured file, a log or a data-root.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.pipeline import WATCH, read_evidence
from analyzer.sources import capture, locate

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(ROOT.glob("samples/*/docker-root.tar.zst"))


def looked_at(path: str) -> bool:
    """Whether any per-member check does more than its cheap name test."""
    name = path.rpartition("/")[2]
    observed = (name in locate._NAMES or name.startswith("repositories-") or len(name) == 64)
    return (capture.wants_capture(path, name) or capture.log_container(path, name) is not None
            or observed)


def test_prefilter_passes_what_checks_see() -> None:
    """The one-path reference of the prefilter against the checks it stands for."""
    for path in ["a/" + n for n in capture._NAMES | locate._NAMES] + ["x/" + "é" * 64]:
        assert looked_at(path) <= WATCH.passes(path)


def watched(paths: list[str]) -> list[bool]:
    arr = pa.array(paths, pa.string())
    return WATCH.mask(arr, pc.replace_substring_regex(arr, "(?s)^.*/", "")).tolist()


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.parent.name)
def test_samples(path: Path) -> None:
    paths = read_evidence(str(path), hash_files=False).files.to_table()["path"].to_pylist()
    want = [looked_at(p) for p in paths]
    assert sum(want) > 10
    assert all(w for w, need in zip(watched(paths), want) if need)


PART = st.sampled_from(sorted(capture._NAMES | locate._NAMES) + [
    "a" * 64, "f" * 63, "x.db", "repositories-overlay2", "c-json.log", "container.log.1.gz",
    "image", "overlay2", "containers", "layerdb", "sha256", "aufs", "layers", "devicemapper",
    "metadata", "volumes", "io.containerd.metadata.v1.bolt", "diff", "ab", "é", "a\nb",
    "x" * 31 + "\n" + "y" * 32, "é" * 64, "a.log.b", "repositories-", ".db"])


def test_rows_containing() -> None:
    from analyzer.textcols import rows_containing

    arr = pa.array(["aufs/layers/x", "aufs/lay", "ers/", "q/aufs/layers/aufs/layers/", ""])
    assert rows_containing(arr, "aufs/layers/").tolist() == [0, 3]
    assert rows_containing(arr.slice(1), "aufs/layers/").tolist() == [2]
    assert rows_containing(arr.slice(1, 2), "aufs/layers/").tolist() == []


@settings(max_examples=300, deadline=None)
@given(st.lists(PART, min_size=1, max_size=8))
def test_random_paths(parts: list[str]) -> None:
    path = "/".join(parts)
    assert watched([path]) == [WATCH.passes(path)]
    if looked_at(path):
        assert WATCH.passes(path)
