"""Shared fixtures: the committed real samples and their daemon ground truth.

Each sample folder under ``samples/`` holds ``docker-root.tar.zst`` (a tar of a
real dockerd data-root) and ``truth/`` (what that daemon answered). Snapshots
are read once per test session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PEERS = ROOT.parent / "shared" / "peer-fixtures"
#: samples made by a real daemon (with its recorded answers); derived samples such as
#: a tampered copy have no truth/ folder and are not parity samples
SAMPLE_NAMES = sorted(p.name for p in SAMPLES.iterdir()
                      if (p / "docker-root.tar.zst").is_file()
                      and (p / "truth" / "acquisition.json").is_file()) if SAMPLES.is_dir() else []


class Truth:
    """The ground truth recorded next to a sample."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.acquisition = self.json("acquisition.json")

    def json(self, name: str) -> Any:
        with open(self.folder / name, encoding="utf-8") as fh:
            return json.load(fh)

    def bytes(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def has(self, name: str) -> bool:
        return (self.folder / name).exists()

    def names(self, prefix: str, suffix: str) -> list[str]:
        return sorted(p.name[len(prefix):-len(suffix)] for p in self.folder.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(suffix))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real case cache from tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


_snapshots: dict[str, Any] = {}


def sample_snapshot(name: str) -> Any:
    """The Snapshot of a committed sample (read once per session)."""
    if name not in _snapshots:
        import analyzer

        _snapshots[name] = analyzer.open_snapshot(str(SAMPLES / name / "docker-root.tar.zst"),
                                                  containerd=sample_containerd(name))
    return _snapshots[name]


def sample_containerd(name: str) -> str | None:
    """The second archive of a sample whose containerd root was outside the data-root."""
    path = SAMPLES / name / "containerd-root.tar.zst"
    return os.fspath(path) if path.is_file() else None


def sample_args(name: str) -> list[str]:
    """CLI arguments naming a sample's evidence (``SNAPSHOT [--containerd SNAPSHOT2]``)."""
    extra = sample_containerd(name)
    return [sample_path(name)] + (["--containerd", extra] if extra else [])


@pytest.fixture(params=SAMPLE_NAMES, scope="session")
def sample(request: pytest.FixtureRequest) -> tuple[Any, Truth]:
    """(snapshot, truth) for every committed sample."""
    return sample_snapshot(request.param), Truth(SAMPLES / request.param / "truth")


def sample_path(name: str) -> str:
    return os.fspath(SAMPLES / name / "docker-root.tar.zst")
