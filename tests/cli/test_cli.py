"""The command line as a user meets it: exit codes, stdout for data, stderr for the rest.

Runs ``analyzer.cli.main.main(argv, out, err)`` in-process on the committed
samples; a few cases run ``python -m analyzer`` in a subprocess to check the
real entry point.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analyzer.cli.main import main
from tests.conftest import ROOT, sample_path

SAMPLE = sample_path("overlay2")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A case folder ingested once for this module."""
    folder = str(tmp_path_factory.mktemp("cli") / "case")
    status, out, err = run("ingest", SAMPLE, "--case", folder, "-q")
    assert status == 0, err
    assert out.strip() == folder
    return folder


def test_help_lists_examples_and_exit_codes() -> None:
    proc = subprocess.run([sys.executable, "-m", "analyzer", "--help"], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0
    assert "examples:" in proc.stdout and "exit status" in proc.stdout
    for command in ("images", "ps", "inspect", "history", "logs", "volumes", "networks",
                    "ingest", "export"):
        assert command in proc.stdout


def test_ps_table_matches_docker_columns(case: str) -> None:
    status, out, err = run("ps", case, "--all")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    assert len(lines) == 1 + 13
    assert any("127.0.0.1:18080->8080/tcp" in line and line.endswith("web-1") for line in lines)
    running_only = run("ps", case)[1].splitlines()
    assert len(running_only) == 1 + 7  # 6 running + 1 paused


def test_inspect_resolves_names_prefixes_and_tags(case: str) -> None:
    status, out, _ = run("inspect", case, "web-1", "/exited-0", "app:legacy", "base")
    assert status == 0
    docs = json.loads(out)
    assert [d.get("Name", d.get("RepoTags")) for d in docs] == [
        "/web-1", "/exited-0", ["app:legacy"], ["base:1.0", "base:latest"]]
    prefix = docs[0]["Id"][:8]
    assert json.loads(run("inspect", case, prefix)[1])[0]["Id"] == docs[0]["Id"]


def test_inspect_unknown_object_is_a_usage_error(case: str) -> None:
    status, out, err = run("inspect", case, "no-such-thing")
    assert status == 2
    assert json.loads(out) == []
    assert "no such object" in err and "Traceback" not in err


def test_history_table_and_json(case: str) -> None:
    status, out, _ = run("history", case, "app:legacy")
    assert status == 0 and out.splitlines()[0].split()[:2] == ["IMAGE", "CREATED"]
    docs = json.loads(run("history", case, "app:legacy", "--json")[1])
    assert docs[0]["Tags"] == ["app:legacy"]


def test_logs_go_to_the_right_streams() -> None:
    out, err = io.BytesIO(), io.BytesIO()

    class Stream:
        def __init__(self, raw: io.BytesIO) -> None:
            self.buffer = raw

        def write(self, s: str) -> int:
            return self.buffer.write(s.encode())

        def flush(self) -> None:
            pass

    status = main(["logs", SAMPLE, "exited-1", "-q"], Stream(out), Stream(err))  # type: ignore[arg-type]
    truth = Path(SAMPLE).parent / "truth"
    assert status == 0
    assert out.getvalue() == (truth / "logs-exited-1.stdout").read_bytes()
    assert err.getvalue() == (truth / "logs-exited-1.stderr").read_bytes()


def test_volumes_and_networks(case: str) -> None:
    doc = json.loads(run("volumes", case, "--json")[1])
    assert {"data", "orphan", "tmpfs-opts"} <= {v["Name"] for v in doc["Volumes"]}
    nets = json.loads(run("networks", case, "--json")[1])
    assert {"bridge", "host", "none", "backend"} == {n["Name"] for n in nets}
    assert run("networks", case)[1].splitlines()[0].split() == ["NETWORK", "ID", "NAME",
                                                                "DRIVER", "SCOPE"]


def test_info_reports_provenance(case: str) -> None:
    doc = json.loads(run("info", case, "--json")[1])
    snap = doc["snapshot"]
    acquisition = json.loads((Path(SAMPLE).parent / "truth" / "acquisition.json").read_text())
    assert snap["evidence_sha256"] == acquisition["archive_sha256"]
    assert snap["root_prefix"] == "var/lib/docker"
    assert snap["host_data_root"] == acquisition["data_root"]
    assert snap["driver"] == "overlay2"
    assert snap["tool_version"]


def test_export_csv_and_parquet(case: str, tmp_path: Path) -> None:
    for fmt in ("csv", "parquet"):
        status, out, _ = run("export", case, "--out", str(tmp_path / fmt), "--format", fmt)
        assert status == 0
        written = {Path(p).name for p in out.split()}
        assert f"containers.{fmt}" in written and "manifest.json" in written
    containers = pd.read_csv(tmp_path / "csv" / "containers.csv")
    assert len(containers) == 13
    logs = pd.read_parquet(tmp_path / "parquet" / "logs.parquet")
    assert isinstance(logs["line"].iloc[0], bytes)


def test_case_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second command on the same evidence reads the case cache, not the evidence."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert run("images", SAMPLE, "-q")[0] == 0
    cases = list((tmp_path / "cache" / "docker-root-analyzer" / "cases").iterdir())
    assert len(cases) == 1 and (cases[0] / "manifest.json").is_file()
    import analyzer.pipeline as pipeline

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("the evidence was read again")

    monkeypatch.setattr(pipeline, "read_evidence", refuse)
    monkeypatch.setattr("analyzer.api.read_evidence", refuse)
    status, out, err = run("ps", SAMPLE, "-a", "--json")
    assert status == 0, err
    assert len(json.loads(out)) == 13


def test_case_from_other_code_or_schema_is_not_reused(tmp_path: Path) -> None:
    """A case folder written by other parser code or with other columns is read again."""
    from analyzer import case as casemod

    target = str(tmp_path / "case")
    assert run("ingest", SAMPLE, "--case", target, "-q")[0] == 0
    assert casemod.usable_case(target, None)
    path = Path(target) / "manifest.json"
    good = json.loads(path.read_text())
    for key in ("code", "schema"):
        path.write_text(json.dumps({**good, key: "0" * 16}))
        assert not casemod.usable_case(target, None), key


def test_missing_file_is_a_clean_usage_error() -> None:
    status, out, err = run("ps", "/nonexistent/evidence.tar")
    assert status == 2 and out == ""
    assert err.startswith("analyzer: error:") and "Traceback" not in err


def test_not_a_tar_is_exit_3(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.tar.gz"
    bogus.write_text("this is not an archive\n" * 40)
    status, out, err = run("images", str(bogus), "--no-cache")
    assert status == 3 and out == ""
    assert err.count("\n") == 1 and "not a tar" in err


def test_bad_option_exits_2() -> None:
    status, _, _ = run("ps", SAMPLE, "--bogus-option")
    assert status == 2


def test_strict_exits_4_on_issues(tmp_path: Path) -> None:
    """--strict turns evidence issues into exit status 4 (truncated copy of the sample)."""
    data = Path(SAMPLE).read_bytes()
    cut = tmp_path / "cut.tar.zst"
    cut.write_bytes(data[: len(data) // 2])
    status, out, err = run("ps", str(cut), "-a", "--no-cache", "--strict")
    assert status == 4, err
    assert "issue" in err


def test_python_m_analyzer_runs_in_a_subprocess(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "analyzer", "images", SAMPLE, "--json"],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    assert proc.stderr == ""  # not a TTY: no progress bar, no issues on this sample


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    """The CLI ends without the interpreter's teardown: a failed final flush of stdout
    (disk full) must still say so and exit non-zero, as Python's own shutdown would."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    with open("/dev/full", "w", encoding="utf-8") as full:
        proc = subprocess.run([sys.executable, "-m", "analyzer", "images", SAMPLE],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=env, check=False)
    assert proc.returncode == 120, proc.stderr
    assert "cannot write the output" in proc.stderr
