"""Tests of analyzer.render.logs: byte-exact ``docker logs`` output.

The ground-truth test reads ``samples/overlay2/docker-root.tar.zst`` (a real
dockerd 20.10.24 data-root, streamed with zstandard + ``tarfile`` mode ``r|``,
never extracted) and compares with ``samples/overlay2/truth/logs-<name>[.ts].std{out,err}``
captured from the running daemon by ``samples/make_samples.sh``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from analyzer.formats.jsonlog import LogProblem, LogRecord, iter_jsonlog
from analyzer.formats.logfiles import driver_of, iter_log_records, order_log_files, parse_log_name
from analyzer.formats.timefmt import parse_rfc3339nano
from analyzer.render.logs import details_prefix, render_line, select_records, write_docker_logs

T = parse_rfc3339nano("2024-01-02T03:04:05.1Z")
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "overlay2"


def rec(line: bytes, stream: str = "stdout", t: int = T, **kw: object) -> LogRecord:
    return LogRecord(stream=stream, time_ns=t, line=line, **kw)  # type: ignore[arg-type]


def render(records: list[LogRecord], **kw: object) -> tuple[bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()
    write_docker_logs(records, out, err, **kw)  # type: ignore[arg-type]
    return out.getvalue(), err.getvalue()


def test_plain_and_timestamps() -> None:
    recs = [rec(b"a\n"), rec(b"e\n", "stderr", T + 5), rec(b"b\n", t=T + 10**9)]
    assert render(recs) == (b"a\nb\n", b"e\n")
    assert render(recs, timestamps=True) == (
        b"2024-01-02T03:04:05.100000000Z a\n2024-01-02T03:04:06.100000000Z b\n",
        b"2024-01-02T03:04:05.100000005Z e\n")


def test_partial_fragments_each_get_a_prefix() -> None:
    recs = [rec(b"x" * 4, partial=True), rec(b"y" * 2 + b"\n")]
    assert render(recs) == (b"xxxxyy\n", b"")
    assert render(recs, timestamps=True)[0] == \
        b"2024-01-02T03:04:05.100000000Z xxxx2024-01-02T03:04:05.100000000Z yy\n"


def test_unknown_stream_dropped_empty_line_still_prefixed() -> None:
    recs = [rec(b"nostream\n", ""), rec(b"", "stdout")]
    assert render(recs) == (b"", b"")
    assert render(recs, timestamps=True) == (b"2024-01-02T03:04:05.100000000Z ", b"")


def test_tty_sends_everything_to_stdout() -> None:
    assert render([rec(b"o\n"), rec(b"e\n", "stderr")], tty=True) == (b"o\ne\n", b"")


def test_offset_printed_as_written() -> None:
    assert render([rec(b"a\n", tz_offset=3600)], timestamps=True)[0] == b"2024-01-02T04:04:05.100000000+01:00 a\n"


def test_details() -> None:
    assert details_prefix(None) == b" "
    assert details_prefix({"tag": "my app", "b": "x/y&z~_.-", "a": "é"}) == b"a=%C3%A9,b=x%2Fy%26z~_.-,tag=my+app "
    r = rec(b"l\n", attrs={"tag": "web"})
    assert render_line(r, timestamps=True, details=True) == b"2024-01-02T03:04:05.100000000Z tag=web l\n"


def test_tail_since_until() -> None:
    recs = [rec(b"%d\n" % i, t=T + i) for i in range(6)]
    recs.insert(3, rec(b"late\n", t=T - 100))
    lines = lambda **kw: render(recs, **kw)[0].split(b"\n")[:-1]  # noqa: E731
    assert lines(tail=2) == [b"4", b"5"]
    assert lines(tail=0) == []
    assert lines(tail=-1) == [b"0", b"1", b"2", b"late", b"3", b"4", b"5"]
    assert lines(since_ns=T + 1) == [b"1", b"2", b"late", b"3", b"4", b"5"]          # master
    assert lines(since_ns=T + 1, since_mode="v20.10") == [b"1", b"2", b"3", b"4", b"5"]
    assert lines(until_ns=T + 3) == [b"0", b"1", b"2", b"late", b"3"]
    assert lines(until_ns=T + 1) == [b"0", b"1"]
    assert list(select_records(iter(recs), tail=1)) == [recs[-1]]


def test_json_roundtrip_render() -> None:
    data = (b'{"log":"hello\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}\n'
            b'{"log":"oops\\n","stream":"stderr","time":"2024-01-02T03:04:05.2Z"}\n')
    out, err = render(list(iter_jsonlog(io.BytesIO(data), "x")), timestamps=True)
    assert out == b"2024-01-02T03:04:05.123456789Z hello\n"
    assert err == b"2024-01-02T03:04:05.200000000Z oops\n"


# --- ground truth from a real dockerd 20.10.24 --------------------------------------

def _load_sample() -> tuple[dict[str, dict], dict[str, dict[str, bytes]]]:
    zstandard = pytest.importorskip("zstandard")
    import tarfile

    truth = SAMPLES / "truth"
    containers = {}
    for f in truth.glob("container-*.json"):
        d = json.loads(f.read_text())
        containers[d["Id"]] = d
    files: dict[str, dict[str, bytes]] = {}
    with (SAMPLES / "docker-root.tar.zst").open("rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh)
        with tarfile.open(fileobj=reader, mode="r|") as tf:
            for m in tf:
                parts = m.name.split("/")
                if not m.isfile() or "containers" not in parts:
                    continue
                i = parts.index("containers")
                if len(parts) < i + 3 or parts[i + 1] not in containers:
                    continue
                rel = "/".join(parts[i + 2:])
                if parse_log_name(rel) is None:
                    continue
                try:
                    driver_of(rel)
                except Exception:
                    continue
                f = tf.extractfile(m)
                assert f is not None
                files.setdefault(parts[i + 1], {})[rel] = f.read()  # small sample logs; read in memory
    return containers, files


@pytest.fixture(scope="module")
def sample() -> tuple[dict[str, dict], dict[str, dict[str, bytes]]]:
    if not (SAMPLES / "docker-root.tar.zst").exists() or not (SAMPLES / "truth").is_dir():
        pytest.skip("samples/overlay2 ground truth not present")
    return _load_sample()


def test_ground_truth_covers_drivers(sample: tuple[dict, dict]) -> None:
    containers, files = sample
    drivers = {containers[c]["HostConfig"]["LogConfig"]["Type"] for c in files}
    assert {"json-file", "local"} <= drivers
    names = {n for fs in files.values() for n in fs}
    assert any(n.endswith(".gz") for n in names) and any(n.endswith(".log.1") for n in names)


@pytest.mark.parametrize("timestamps", [False, True], ids=["plain", "timestamps"])
def test_ground_truth_byte_exact(sample: tuple[dict, dict], timestamps: bool) -> None:
    containers, files = sample
    truth = SAMPLES / "truth"
    checked = 0
    for cid, c in containers.items():
        name = c["Name"].lstrip("/")
        sfx = ".ts" if timestamps else ""
        want_out = (truth / f"logs-{name}{sfx}.stdout").read_bytes()
        want_err = (truth / f"logs-{name}{sfx}.stderr").read_bytes()
        log_cfg = c["HostConfig"]["LogConfig"]
        max_file = int(log_cfg["Config"].get("max-file", "5" if log_cfg["Type"] == "local" else "1"))
        fs = files.get(cid, {})
        order = order_log_files(fs, max_file=max_file)
        problems: list[LogProblem] = []
        records = iter_log_records(((n, io.BytesIO(fs[n])) for n in order), problems.append,
                                   daemon_version=(20, 10))
        out, err = render(list(records), timestamps=timestamps, tty=c["Config"]["Tty"])
        assert problems == [], name
        assert out == want_out, f"{name} stdout"
        assert err == want_err, f"{name} stderr"
        checked += 1
    assert checked >= 10
