"""Logs beyond the in-memory budget: the table says so, and `logs` reads the evidence.

Logs are content: the pass keeps at most ``log_memory`` bytes of log lines. With a
tiny budget, the overlay2 sample's big ``web-1`` log is not kept, a
``log.not_kept`` issue is recorded, and ``logs`` still prints exactly what
``docker logs`` printed, re-reading the log files from the evidence.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.analyses.logsource import logs_complete
from analyzer.cli.main import main
from tests.conftest import SAMPLES, sample_path


@pytest.fixture(scope="module")
def small_budget_snap() -> Any:
    return analyzer.open_snapshot(sample_path("overlay2"), log_memory=2000)


class _Stream:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, s: str) -> int:
        return self.buffer.write(s.encode())

    def flush(self) -> None:
        pass


def test_budget_is_respected_and_reported(small_budget_snap: Any) -> None:
    snap = small_budget_snap
    kept = sum(len(line) for line in snap.logs["line"])
    assert kept <= 2000
    issues = snap.issues[snap.issues["code"] == "log.not_kept"]
    assert len(issues) >= 1
    web = snap.find_container("web-1")["container_id"]
    assert not logs_complete(snap, web)


@pytest.mark.parametrize("timestamps", [False, True])
def test_logs_command_reads_the_rest_from_the_evidence(tmp_path: Path, timestamps: bool) -> None:
    truth = SAMPLES / "overlay2" / "truth"
    for name in ("web-1", "web-gz", "local-log"):
        out, err = _Stream(), _Stream()
        argv = ["logs", sample_path("overlay2"), name, "--log-memory", "2000", "--case",
                str(tmp_path / "case"), "-q"] + (["--timestamps"] if timestamps else [])
        assert main(argv, out, err) == 0  # type: ignore[arg-type]
        suffix = ".ts" if timestamps else ""
        assert out.buffer.getvalue() == (truth / f"logs-{name}{suffix}.stdout").read_bytes()
        assert err.buffer.getvalue() == (truth / f"logs-{name}{suffix}.stderr").read_bytes()


def test_default_budget_keeps_everything_in_the_samples() -> None:
    from tests.conftest import sample_snapshot

    snap = sample_snapshot("overlay2")
    assert "log.not_kept" not in set(snap.issues["code"])


def test_a_corrupt_gz_rotation_is_a_warning_and_the_other_files_still_print(
        tmp_path: Path) -> None:
    """Re-reading the evidence decodes through formats.logfiles like the pass does: a
    damaged ``.log.1.gz`` ends early with a warning on stderr (after the container's own
    stderr bytes) instead of a traceback, and the other files are still printed."""
    import tarfile

    import zstandard

    with open(sample_path("overlay2"), "rb") as fh:
        data = zstandard.ZstdDecompressor().stream_reader(fh).read()
    src = tarfile.open(fileobj=io.BytesIO(data))
    target = tmp_path / "gz-damaged.tar"
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read() if m.isfile() else None
            if body is not None and m.name.endswith("-json.log.1.gz"):
                body = body[:30] + bytes(b ^ 0xFF for b in body[30:60]) + body[60:]
            dst.addfile(m, io.BytesIO(body) if body is not None else None)
    out, err = _Stream(), _Stream()
    argv = ["logs", str(target), "web-gz", "--log-memory", "10", "--case",
            str(tmp_path / "case"), "-q"]
    assert main(argv, out, err) == 0  # type: ignore[arg-type]
    printed = out.buffer.getvalue()
    assert b"gz line 120" in printed  # the current -json.log is still read
    truth = (SAMPLES / "overlay2" / "truth" / "logs-web-gz.stdout").read_bytes()
    assert len(printed) < len(truth)
    assert b"analyzer: warning:" in err.buffer.getvalue()
