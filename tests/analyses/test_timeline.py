"""Timeline: every format parses back, the intruder's miner appears with its mtime, and
container start events carry config.v2.json ``State.StartedAt``; the bodyfile is fed to
Sleuth Kit's ``mactime`` when it is installed (Debian ``sleuthkit``)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import pandas as pd
import pytest

from analyzer.analyses.timeline import file_entries, timeline_events
from analyzer.render.timeline import escape_name, mode_string, write_timeline
from tests.conftest import sample_path, sample_snapshot

MINER = "[container:intruder] /tmp/.x/miner"


@pytest.fixture(scope="module")
def snap():  # type: ignore[no-untyped-def]
    return sample_snapshot("overlay2")


@pytest.fixture(scope="module")
def miner_row(snap):  # type: ignore[no-untyped-def]
    f = snap.files
    return f[f["path"].str.endswith("/diff/tmp/.x/miner")].iloc[0]


def _render(snap, fmt: str, **kw) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    write_timeline(snap, out, fmt, **kw)
    return out.getvalue()


def _started(snap) -> dict[str, pd.Timestamp]:  # type: ignore[no-untyped-def]
    out = {}
    for name, cfg in zip(snap.containers["name"], snap.containers["config_json"]):
        raw = json.loads(cfg)["State"]["StartedAt"]
        if not raw.startswith("0001-"):
            out[name] = (raw, pd.Timestamp(raw))
    return out


def test_timesketch_jsonl(snap, miner_row) -> None:  # type: ignore[no-untyped-def]
    lines = _render(snap, "timesketch", logs=True).splitlines()
    docs = [json.loads(line) for line in lines]
    for d in docs:
        assert {"message", "datetime", "timestamp_desc"} <= set(d)
        ts = pd.Timestamp(d["datetime"])
        assert ts.tzinfo is not None and ts.utcoffset() == pd.Timedelta(0)
        assert d["timestamp"] == ts.value // 1000
    miner = [d for d in docs if d.get("path") == "/tmp/.x/miner" and d.get("container") ==
             "intruder" and d["timestamp_desc"] == "Content Modification Time"]
    assert len(miner) == 1
    assert pd.Timestamp(miner[0]["datetime"]) == miner_row["mtime"].floor("us")
    assert miner[0]["layer"] == "rw" and miner[0]["sha256"] == miner_row["sha256"]
    starts = {d["container"]: d for d in docs if d["timestamp_desc"] == "Start Time"}
    truth = _started(snap)
    assert set(starts) == set(truth)
    for name, (raw, ts) in truth.items():
        assert starts[name]["time_raw"] == raw
        assert pd.Timestamp(starts[name]["datetime"]) == ts.floor("us")
    assert any(d["data_type"] == "docker:container:log:entry" and "wget" in d["message"]
               for d in docs)
    kinds = {d["data_type"] for d in docs}
    assert {"docker:image:configuration", "docker:image:history", "docker:layer:directory",
            "docker:container:configuration", "docker:volume", "fs:stat"} <= kinds


def test_csv(snap, miner_row) -> None:  # type: ignore[no-untyped-def]
    rows = list(csv.DictReader(io.StringIO(_render(snap, "csv"))))
    assert rows and {"datetime", "timestamp_desc", "message", "path", "container"} <= set(rows[0])
    hit = [r for r in rows if r["message"].startswith(MINER + " modified")]
    assert len(hit) == 1
    assert pd.Timestamp(hit[0]["datetime"]) == miner_row["mtime"].floor("us")
    times = [pd.Timestamp(r["datetime"]) for r in rows]
    assert times == sorted(times)


def _body_lines(text: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fields = []
        cur, esc = "", False
        for ch in line:  # split on unescaped pipes
            if esc:
                cur += ch
                esc = False
            elif ch == "\\":
                cur += ch
                esc = True
            elif ch == "|":
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        out.append(fields)
    return out


def test_bodyfile(snap, miner_row) -> None:  # type: ignore[no-untyped-def]
    text = _render(snap, "bodyfile", logs=True)
    lines = _body_lines(text)
    assert lines and all(len(f) == 11 for f in lines)
    for f in lines:
        assert all(x.isdigit() for x in f[7:])
        assert any(int(x) for x in f[7:11])
    miner = [f for f in lines if f[1] == MINER]
    assert len(miner) == 1
    md5, _, inode, mode, uid, gid, size, atime, mtime, ctime, crtime = miner[0]
    assert (md5, mode, uid, size, crtime) == ("0", "-rwxr-xr-x", "0", "30", "0")
    assert int(mtime) == miner_row["mtime"].value // 10**9
    assert int(inode) >= 0
    dirs = [f for f in lines if f[1] == "[container:intruder] /tmp/.x"]
    assert dirs[0][3].startswith("d")
    assert any(f[1] == "[container:intruder] /etc/group (deleted, whiteout)" for f in lines)


def test_bodyfile_with_mactime(snap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("mactime") is None:
        pytest.skip("mactime (Debian sleuthkit) is not installed")
    body = tmp_path / "t.body"
    body.write_text(_render(snap, "bodyfile", logs=True), encoding="utf-8")
    res = subprocess.run(["mactime", "-b", str(body), "-z", "UTC", "-d",
                          "2000-01-01..2099-12-31"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(res.stdout)))
    hits = [r for r in rows if len(r) == 8 and r[7] == MINER]
    mtime = snap.files[snap.files["path"].str.endswith("/diff/tmp/.x/miner")].iloc[0]["mtime"]
    m = [r for r in hits if "m" in r[2]]
    assert len(m) == 1 and m[0][3] == "-rwxr-xr-x" and m[0][1] == "30"
    assert pd.Timestamp(m[0][0] + "Z") == mtime.floor("s")


def test_all_layers_and_cli(snap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = file_entries(snap)
    every = file_entries(snap, all_layers=True)
    assert set(base["label"].str.split(":").str[0]) <= {"container", "volume"}
    assert (every["label"].str.startswith("layer:")).any() and len(every) > len(base)
    assert not base["evidence_path"].str.contains("/merged/").any()
    ev = timeline_events(snap)
    assert not (ev["layer"].fillna("").str.startswith("image:") & (ev["data_type"] == "fs:stat")
                ).any()
    from analyzer.cli.main import main

    out_file = tmp_path / "t.jsonl"
    err = io.StringIO()
    assert main(["timeline", sample_path("overlay2"), "--format", "timesketch", "--out",
                 str(out_file), "--all-layers"], out=io.StringIO(), err=err) == 0
    assert "timeline entries written" in err.getvalue()
    docs = [json.loads(x) for x in out_file.read_text(encoding="utf-8").splitlines()]
    assert any(str(d.get("layer", "")).startswith("image:") for d in docs)


def test_helpers() -> None:
    assert mode_string("file", 0o4755) == "-rwsr-xr-x"
    assert mode_string("dir", 0o755) == "drwxr-xr-x"
    assert mode_string("symlink", 0o777) == "lrwxrwxrwx"
    assert escape_name("a|b\\c\nd") == "a\\|b\\\\c\\x0ad"


# --- the containerd image store ------------------------------------------------------------------

CONTAINERD_SAMPLES = [n for n in ("containerd", "containerd-system")
                      if __import__("os").path.isfile(sample_path(n))]


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_intruder_file_events(name: str) -> None:
    """The intruder's RW-snapshot files are in the timeline of the containerd samples, with
    the index's times and hashes, the /etc/group whiteout as a deletion, and its start."""
    csnap = sample_snapshot(name)
    f = csnap.files
    docs = [json.loads(line) for line in _render(csnap, "timesketch", logs=True).splitlines()]
    mine = [d for d in docs if d.get("container") == "intruder"]
    paths = {d.get("path") for d in mine if d["data_type"] == "fs:stat"}
    assert {"/tmp/.x", "/tmp/.x/miner", "/etc/passwd", "/root/.ssh/authorized_keys"} <= paths
    miner = [d for d in mine if d.get("path") == "/tmp/.x/miner"
             and d["timestamp_desc"] == "Content Modification Time"]
    assert len(miner) == 1 and miner[0]["layer"] == "rw"
    row = f[f["path"] == miner[0]["evidence_path"]].iloc[0]
    assert "/io.containerd.snapshotter.v1.overlayfs/snapshots/" in row["path"]
    assert pd.Timestamp(miner[0]["datetime"]) == row["mtime"].floor("us")
    assert miner[0]["sha256"] == row["sha256"]
    assert any(d["timestamp_desc"] == "Start Time" for d in mine)
    assert any(d["data_type"] == "docker:container:log:entry" and "wget" in d["message"]
               for d in mine)
    names = [line[1] for line in _body_lines(_render(csnap, "bodyfile"))]
    assert MINER in names
    assert "[container:intruder] /etc/group (deleted, whiteout)" in names
