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
