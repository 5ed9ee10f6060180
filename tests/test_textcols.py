"""Vectorised path-column helpers against the Arrow (RE2) kernels they replace."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.parsers.drivers import DIR_OF, LAYOUTS, _OPTIONAL_INNER
from analyzer.textcols import component_match, rows_containing

SHAPES = sorted({*DIR_OF.values(), *(rx.rstrip("$") + "/" for rx in DIR_OF.values()),
                 *(rx[:-len(_OPTIONAL_INNER)] + "/.*$" for rx, _ in LAYOUTS.values()),
                 r"^overlay2/([^/]+)/merged/", r"^([^/]+)/", r"^volumes/([^/]+)/",
                 r"^fuse\-overlayfs/([^/]+)$", r"^a/([^/]+)/b$", r"^([^/]+)"})

PART = st.sampled_from(["overlay2", "vfs", "dir", "diff", "merged", "volumes", "_data",
                        "fuse-overlayfs", "aufs", "a", "b", "", "x\ny", "é", "diffx",
                        "f" * 64, "e" * 71, "d" * 72, "c" * 73, "b" * 100])


def reference(arr: pa.Array, rx: str) -> tuple[list[int], list[str]]:
    named = rx.replace("(", "(?P<g>", 1)
    hit = pc.struct_field(pc.extract_regex(arr, named), [0])
    rows = [i for i, v in enumerate(hit.to_pylist()) if v is not None]
    return rows, [hit[i].as_py() for i in rows]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(PART, min_size=1, max_size=6).map("/".join), min_size=1,
                max_size=60), st.sampled_from(["string", "large_string"]), st.integers(0, 3))
def test_component_match_equals_re2(paths: list[str], kind: str, offset: int) -> None:
    arr = pa.array(["pad"] * offset + paths, getattr(pa, kind)()).slice(offset)
    for rx in SHAPES:
        got = component_match(arr, rx)
        if got is None:  # not of the shape: the caller uses the regex
            assert "(?" in rx or "$|" in rx, rx
            continue
        rows, values = got
        assert (rows.tolist(), values.to_pylist()) == reference(arr, rx), rx


def test_shapes_taken_by_the_fast_path() -> None:
    fast = [rx for rx in SHAPES if component_match(pa.array(["a"]), rx) is not None]
    assert r"^overlay2/([^/]+)/diff/.*$" in fast and r"^overlay2/([^/]+)$" in fast
    assert component_match(pa.array(["a"]), r"^overlay/([^/]+)/(?:root|upper)/.*$") is None
    assert component_match(pa.array(["a"]), r"^vfs/dir/([^/]+)-init$") is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.sampled_from("ab/é\n"), max_size=12), min_size=1, max_size=20),
       st.sampled_from(["a/", "b", "é/", "/\n"]))
def test_rows_containing_equals_python(paths: list[str], needle: str) -> None:
    arr = pa.array(paths)
    want = [i for i, p in enumerate(paths) if needle in p]
    assert rows_containing(arr, needle).tolist() == want
    assert rows_containing(arr.slice(1), needle).tolist() == [i - 1 for i in want if i >= 1]
    assert np.array_equal(rows_containing(pa.array(paths, pa.large_string()), needle), want)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from("ab/é\n0"), max_size=20), min_size=1, max_size=40),
       st.integers(0, 3), st.lists(st.text(st.sampled_from("ab/é\n0"), max_size=20),
                                   max_size=10))
def test_path_set_membership(paths: list[str], offset: int, probes: list[str]) -> None:
    from analyzer.textcols import PathSet, path_key, path_keys

    arr = pa.array(["pad"] * offset + paths).slice(offset)
    assert [int(k) for k in path_keys(arr)] == [path_key(p) for p in paths]
    members = PathSet(arr)
    for p in paths + probes:
        assert (p in members) == (p in paths)


def test_path_keys_in_blocks(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Keys computed block by block (as for millions of rows) equal the one-string key."""
    import analyzer.textcols as tc

    monkeypatch.setattr(tc, "_KEY_ROWS", 7)
    paths = [f"overlay2/{i:03x}/diff/" + "x" * (i % 23) for i in range(100)]
    assert [int(k) for k in tc.path_keys(pa.array(paths))] == [tc.path_key(p) for p in paths]
