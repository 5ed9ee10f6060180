"""The HTML report: structure, numbers equal to the analyses', no URL, bounded size,
a real headless browser (Debian's chromium), and a root with hundreds of images.

The browser check runs ``chromium --headless --screenshot`` with
``--enable-logging=stderr --v=0``: every ``console.*`` message and every uncaught
error of the page is logged as a ``CONSOLE`` line. A probe script appended to a
copy of the report logs one known line (which also proves the report's own script
ran to its end); any other ``CONSOLE`` line fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analyzer.analyses import storage
from analyzer.cli.main import main
from analyzer.formats.digest import chain_ids
from analyzer.model import schema
from analyzer.model.snapshot import Snapshot
from analyzer.render.engine.common import context_for
from analyzer.render.engine.system import system_df
from analyzer.render.html import render_report
from analyzer.render.tables import human_size, system_df_table
from tests.conftest import SAMPLE_NAMES, sample_path, sample_snapshot

CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 3_000_000
SECTIONS = ("summary", "triage", "storage", "dag", "dedup", "waste", "images", "containers", "volumes",
            "networks", "orphans")

_reports: dict[str, str] = {}


def report_of(name: str) -> str:
    """The report of a committed sample (rendered once per session)."""
    if name not in _reports:
        snap = sample_snapshot(name)
        _reports[name] = render_report(snap, context_for(snap))
    return _reports[name]


class _Tables(HTMLParser):
    """Collect ``<table id=...>`` rows as lists of (text, data-sort) cells, and every id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.ids: set[str] = set()
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._sort: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        for key in ("href", "src", "xlink:href", "action", "poster", "data"):
            if a.get(key) is not None:
                self.links.append(a[key] or "")
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table and self._in_body:
            self.tables[self._table].append([])
        elif tag == "td" and self._table and self._in_body:
            self._cell, self._sort = [], a.get("data-sort")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table:
            self.tables[self._table][-1].append(("".join(self._cell), self._sort))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Tables:
    p = _Tables()
    p.feed(html)
    return p


def column(t: _Tables, table: str, i: int) -> list[int]:
    return [int(float(r[i][1])) for r in t.tables[table]]


def assert_no_external_reference(html: str, evidence_text: str = "") -> None:
    """No URL the browser could fetch; ``http(s)://`` only inside evidence text."""
    for m in re.finditer(r"https?://[^\s\"'<>&]*", html, flags=re.I):
        assert m.group(0) in evidence_text, f"URL in the report: {m.group(0)!r}"
    p = parse(html)
    assert all(link.startswith("#") for link in p.links), [x for x in p.links if x[:1] != "#"]
    assert not re.search(r"url\((?!#)", html), "CSS/SVG url() to something not in the page"
    assert not re.search(r"<(?:link|iframe|object|embed|img|base)\b", html, flags=re.I)
    assert not re.search(r"@import|@font-face", html, flags=re.I)
    # every in-page reference (SVG markers, clip paths, nav anchors) has its target, once
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids"
    targets = re.findall(r'(?:href="#|url\(#)([^")]+)', html)
    assert targets and set(targets) <= set(ids), set(targets) - set(ids)
    assert "default-src 'none'" in html  # the CSP forbids every fetch


# -- the committed samples ----------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_report_structure_and_numbers(name: str) -> None:
    snap = sample_snapshot(name)
    html = report_of(name)
    assert len(html.encode()) < MAX_BYTES
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    p = parse(html)
    for section in SECTIONS:
        assert section in p.ids, f"section {section} missing"
    # the sections (and the nav links) come in this order: triage first after the summary
    starts = [html.index(f'<section class="card" id="{sec}">') for sec in SECTIONS]
    assert starts == sorted(starts)
    links = [html.index(f'<a href="#{sec}">') for sec in SECTIONS]
    assert links == sorted(links)
    assert html.count("<svg ") == 4 and 'class="chart"' in html
    # provenance at the top and the bottom
    sha = snap.meta["evidence_sha256"]
    from analyzer import __version__
    assert html.count(sha) >= 3 and f"docker-root analyzer {__version__}" in html
    assert os.path.basename(snap.meta["evidence_path"]) in html
    assert '"max_rows": 200' in unescape(html)
    # which image store the root used and, for containerd, where its root and evidence are
    facts = dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]*)</dd>", html))
    store = snap.meta["image_store"]
    assert facts["Image store"].startswith(f"{store}: ")
    croot = snap.meta["containerd_root"]
    if store == "containerd":
        assert facts["Containerd root"].startswith(f"{croot} (")
        other = snap.meta["containerd_evidence_path"]
        if other:  # a second evidence: named and hashed in the summary and both provenance lines
            assert "outside the data-root" in facts["Containerd root"]
            assert facts["Containerd evidence path"] == other
            assert facts["Containerd evidence"] == os.path.basename(other)
            assert facts["Containerd evidence sha256"] == snap.meta["containerd_evidence_sha256"]
            assert html.count(snap.meta["containerd_evidence_sha256"]) >= 3
        else:
            assert "inside the data-root" in facts["Containerd root"]
            assert facts["Containerd evidence"] == "the evidence file above"
    else:
        assert "Containerd root" not in facts

    ctx = context_for(snap)
    doc = system_df(snap, ctx)
    # docker system df: the same numbers and the same words as the CLI table
    df_rows = p.tables["t-df"]
    assert [r[0][0] for r in df_rows] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert int(df_rows[0][3][1]) == doc["LayersSize"]
    cli = system_df_table(doc).splitlines()[1:]
    assert len(cli) == 4
    for row, line in zip(df_rows, cli):
        words = re.split(r"\s{2,}", line.strip())
        assert [c[0] for c in row[:4]] == words[:4], (row, line)
        assert words[4].split(" (")[0] == row[4][0], (row, line)
    # where the bytes are: images shared + unique = LayersSize
    breakdown = {r[0][0]: int(r[1][1]) for r in p.tables["t-breakdown"]}
    layer_rows = breakdown["Images: shared layers"] + breakdown["Images: unique layers"]
    if snap.meta["image_store"] == "containerd":
        # LayersSize = usage of every snapshot: image layers, containers' RW and -init
        # snapshots, BuildKit's and parents; the content store's blobs come on top
        layer_rows += (breakdown["Layers no listed image uses"]
                       + breakdown["Containers: RW layers"]
                       + breakdown["Containers: init snapshots"]
                       + breakdown["Other snapshots (BuildKit, parents, views)"])
        files = snap.files
        blobs = files[files["path"].str.contains("io.containerd.content.v1.content/blobs/sha256/",
                                                 regex=False) & (files["kind"] == "file")]
        assert breakdown["Content store blobs"] == int(blobs["size"].sum()) > 0
    else:
        assert "Content store blobs" not in breakdown
    assert layer_rows == doc["LayersSize"]
    assert breakdown["Containers: RW layers"] == int(snap.containers["size_rw_bytes"].fillna(0).sum())
    # images: every number of image_usage
    usage = storage.image_usage(snap)
    assert len(p.tables["t-images"]) == len(usage)
    for col, field in ((3, "size_bytes"), (4, "shared_bytes"), (5, "unique_bytes"),
                       (6, "freed_if_deleted_bytes"), (7, "containers")):
        assert column(p, "t-images", col) == [int(v) for v in usage[field]], field
    # per layer
    lu = storage.layer_usage(snap)
    assert sorted(column(p, "t-layers", 2)) == sorted(int(v) for v in lu["size_bytes"].fillna(0))
    # duplicates
    dsum, dups = storage.duplicates(snap, top=50)
    assert human_size(dsum["saved_by_dedup_bytes"]) in html
    if len(dups):
        assert column(p, "t-dups", 3) == [int(v) for v in dups["wasted_bytes"]]
    # waste
    waste = storage.image_waste(snap)
    got = sorted(v for v in column(p, "t-waste", 4) if v >= 0)
    assert got == sorted(int(v) for v in waste["wasted_bytes"].dropna())
    # containers, volumes, networks
    assert len(p.tables["t-containers"]) == len(snap.containers)
    assert sorted(column(p, "t-containers", 7)) == sorted(
        int(v) if not pd.isna(v) else -1 for v in snap.containers["size_rw_bytes"])
    assert len(p.tables["t-volumes"]) == len(snap.volumes)
    assert len(p.tables["t-networks"]) == len(snap.networks)
    # orphans and growth
    og = storage.orphans_and_growth(snap)
    totals = {r[0][0]: (int(r[1][1]), int(r[2][1])) for r in p.tables["t-orphan-totals"]}
    assert totals["orphan layer directories"] == (
        len(og["orphan_dirs"]), int(og["orphan_dirs"]["content_bytes"].fillna(0).sum()))
    assert totals["container logs"][1] == int(og["logs"]["log_bytes"].sum())
    assert totals["dangling images"][0] == len(og["dangling_images"])
    # URLs appear only as text of the evidence the findings quote (a wget line in a log)
    assert_no_external_reference(html, evidence_text=_findings_text(snap))


# -- triage ---------------------------------------------------------------------------------
#: containers of the overlay2 sample with nothing suspicious (tests/analyses/test_triage.py)
BENIGN = ("web-1", "exited-0", "exited-1", "created-only", "net-user", "vol-user", "paused",
          "local-log", "web-gz")
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _triage_rows(p: _Tables) -> list[dict[str, str]]:
    keys = ("severity", "rule", "title", "attack", "object", "evidence", "explanation")
    return [dict(zip(keys, (c[0] for c in row))) for row in p.tables["t-triage"]]


def _findings_text(snap: Any) -> str:
    from analyzer.analyses.triage import findings_json, run_rules

    return findings_json(run_rules(snap))


def test_report_triage_section() -> None:
    from analyzer.analyses.triage import run_rules

    snap = sample_snapshot("overlay2")
    html = report_of("overlay2")
    p = parse(html)
    rows = _triage_rows(p)
    found = run_rules(snap)
    assert len(rows) == len(found) > 0
    # severity first: critical on top, never rising further down (the sort keys say the same)
    ranks = [SEVERITY_RANK[r["severity"]] for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    assert [int(row[0][1]) for row in p.tables["t-triage"]] == ranks
    # the intruder's dropped miner: rule, severity, ATT&CK ids, object, evidence path
    miner = [r for r in rows if r["rule"] == "DRA-RW-001" and "intruder" in r["object"]]
    assert len(miner) == 1, rows
    m = miner[0]
    assert m["severity"] == "critical" and m["title"] == "Executable dropped in container"
    assert m["attack"] == "T1105, T1059"
    assert m["object"].startswith("container intruder (") and len(m["object"]) == 33
    assert "path: /tmp/.x/miner" in m["evidence"].splitlines()
    assert "/tmp/.x/miner" in m["explanation"]
    assert any(r["rule"] == "DRA-RW-012" and "intruder" in r["object"]
               and "path: /tmp/.x/miner" in r["evidence"] for r in rows)
    # the privileged container
    priv = [r for r in rows if r["rule"] == "DRA-RT-001" and r["object"].startswith("container priv ")]
    assert len(priv) == 1
    assert priv[0]["severity"] == "high" and "T1611" in priv[0]["attack"]
    ev = priv[0]["evidence"].splitlines()
    assert "field: HostConfig.Privileged" in ev and "value: True" in ev
    # benign containers: nothing at high or critical
    for name in BENIGN:
        bad = [(r["rule"], r["severity"]) for r in rows
               if r["object"].startswith(f"container {name} (")
               and SEVERITY_RANK[r["severity"]] >= SEVERITY_RANK["high"]]
        assert bad == [], name
    # counts per severity, critical → info, in the section and the summary badge
    counts = {s: sum(1 for f in found if f.severity == s) for s in SEVERITY_RANK}
    section = html[html.index('id="triage"'):html.index('id="storage"')]
    got = re.findall(r'<div class="kpi sev-(\w+)"><b>(\d+)</b>', section)
    assert got == [(s, str(counts[s])) for s in ("critical", "high", "medium", "low", "info")]
    badge = html[html.index('id="triage-badge"'):]
    badge = badge[:badge.index("</p>")]
    assert '<span class="badge sev-critical">critical</span>' in badge
    assert f"{len(found)} finding(s)" in badge and f"{counts['high']} high" in badge
    # layer integrity: not run by the report itself
    assert "Layer integrity not checked; run <code>verify</code>" in html
    assert "integrity-not-checked" in p.ids and "t-integrity" not in p.tables


def test_report_with_layer_integrity(tmp_path: Path) -> None:
    import io

    from analyzer.analyses.verify import verify

    tampered = sample_path("overlay2-tampered")
    snap = sample_snapshot("overlay2-tampered")
    results = verify(tampered, snap)
    html = render_report(snap, context_for(snap), verify_results=results)
    p = parse(html)
    assert "integrity-not-checked" not in p.ids and "Layer integrity not checked" not in html
    rows = p.tables["t-integrity"]
    expected = json.loads((Path(tampered).parent / "tampered.json").read_text())["edits"]
    got = sorted((r[3][0], r[4][0]) for r in rows)
    assert got == sorted((e["kind"], e["path"]) for e in expected)
    assert all(r[0][0] == "tampered" for r in rows)
    c = results.counts()
    assert f"{c['tampered']} tampered" in html and c["tampered"] == 4
    assert '<span class="badge sev-critical">tampered</span>' in html
    assert_no_external_reference(html, evidence_text=_findings_text(snap))
    # the CLI: report --verify
    target = tmp_path / "r.html"
    err = io.StringIO()
    assert main(["report", tampered, "--verify", "-o", str(target)], io.StringIO(), err) == 0, \
        err.getvalue()
    page = target.read_text(encoding="utf-8")
    assert 'id="t-integrity"' in page and "app/www/.backdoor.sh" in page
    assert '"verify": true' in unescape(page)


@pytest.mark.parametrize("name", [n for n in SAMPLE_NAMES if n.startswith("containerd")])
def test_report_with_containerd_integrity(name: str) -> None:
    from analyzer.analyses.verify import verify

    snap = sample_snapshot(name)
    results = verify(sample_path(name), snap)
    html = render_report(snap, context_for(snap), verify_results=results)
    n, blobs = len(results.layers), len(results.blobs)
    assert n and blobs
    assert "Layer integrity (image layers against their compressed blobs and unpacked " \
           "snapshots, blobs against their digests)" in html
    assert f"{n} image layers: {n} ok, 0 tampered, 0 unverifiable. {blobs} content-store " \
           f"blobs: {blobs} ok, 0 tampered, 0 missing." in html
    assert f"no image layer tampered ({n} ok, 0 unverifiable)" in html
    assert "t-integrity" not in parse(html).tables or not parse(html).tables["t-integrity"]


def test_report_is_deterministic() -> None:
    snap = sample_snapshot(SAMPLE_NAMES[0])
    assert render_report(snap, context_for(snap)) == report_of(SAMPLE_NAMES[0])


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    target = tmp_path / "report.html"
    out, err = io.StringIO(), io.StringIO()
    status = main(["report", sample_path("overlay2"), "-o", str(target)], out, err)
    assert status == 0, err.getvalue()
    assert out.getvalue() == ""
    assert str(target) in err.getvalue()
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["report", sample_path("overlay2")], io.StringIO(), io.StringIO()) == 2
    assert "-o/--output" in capsys.readouterr().err  # argparse: -o is required


# -- a real browser ---------------------------------------------------------------------------
PROBE = ('<script>console.log("probe:" + document.documentElement.getAttribute("data-js") '
         '+ ":" + document.querySelectorAll("th.sortable").length);</script>')


def run_chromium(html_file: Path, png: Path, workdir: Path) -> list[str]:
    """Load a page headless, save a screenshot; return the page's console lines."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={workdir / 'profile'}", "--enable-logging=stderr",
           "--v=0", f"--screenshot={png}", "--window-size=1280,2400", html_file.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False,
                          env={**os.environ, "HOME": str(workdir)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed "
                    "(Debian package chromium); CI installs it")
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_report_in_headless_chromium(name: str, tmp_path: Path) -> None:
    html = report_of(name)
    page = tmp_path / f"{name}.html"
    page.write_text(html.replace("</body>", PROBE + "\n</body>", 1), encoding="utf-8")
    png = tmp_path / f"{name}.png"
    console = run_chromium(page, png, tmp_path)
    probes = [line for line in console if '"probe:' in line]
    assert len(probes) == 1, f"console logging not captured: {console}"
    sortable = int(re.search(r'"probe:ok:(\d+)"', probes[0]).group(1))  # the report's JS ran
    assert sortable > 20
    others = [line for line in console if line not in probes]
    assert not others, "console messages/errors:\n" + "\n".join(others)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2400)


# -- a root with hundreds of images -----------------------------------------------------------
def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def synthetic_snapshot(n_images: int = 250, n_containers: int = 100) -> Snapshot:
    """A hand-made overlay2 snapshot: 8 base layers, images of 1–3 own layers on them,
    containers, volumes, files (with duplicates and whiteouts) and hostile names."""
    t0 = pd.Timestamp("2024-05-01T00:00:00Z")
    layers: dict[str, dict[str, Any]] = {}
    dirs, files, images, tags, history = [], [], [], [], []

    def add_layer(diffs: list[str]) -> str:
        chain = chain_ids(diffs)
        for i, c in enumerate(chain):
            if c in layers:
                continue
            cache = hashlib.sha256(c.encode()).hexdigest()
            size = 1000 * (i + 1) + len(layers) * 7
            layers[c] = {"chain_id": c, "diff_id": diffs[i],
                         "parent_chain_id": chain[i - 1] if i else None, "cache_id": cache,
                         "size_bytes": size, "chain_ok": True, "has_tar_split": True,
                         "removing": False, "driver_dir": f"overlay2/{cache}/diff",
                         "dir_present": True}
            dirs.append({"dir_id": cache, "driver": "overlay2", "path": f"overlay2/{cache}",
                         "content_path": f"overlay2/{cache}/diff", "role": "image-layer",
                         "owner": c, "files": 2, "content_bytes": size})
            files.append({"path": f"overlay2/{cache}/diff/etc/shared.conf", "kind": "file",
                          "size": 300, "sha256": _sha("shared.conf"), "mode": 0o644})
            files.append({"path": f"overlay2/{cache}/diff/app/data-{i}.bin", "kind": "file",
                          "size": size - 300, "sha256": _sha(f"{c}-{i}"), "mode": 0o644})
            if i:
                files.append({"path": f"overlay2/{cache}/diff/app/data-{i - 1}.bin",
                              "kind": "char", "size": 0, "whiteout": True, "mode": 0})
        return chain[-1]

    bases = [[_sha(f"base-{b}")] for b in range(8)]
    for i in range(n_images):
        diffs = bases[i % 8] + [_sha(f"mid-{i % 40}")] + [_sha(f"img-{i}-{k}") for k in range(i % 3)]
        top = add_layer(diffs)
        cfg = {"architecture": "amd64", "os": "linux", "created": (t0 + pd.Timedelta(minutes=i)).isoformat(),
               "config": {}, "rootfs": {"type": "layers", "diff_ids": diffs},
               "history": [{"created_by": "step"} for _ in diffs]}
        text = json.dumps(cfg)
        image_id = _sha(text)
        images.append({"image_id": image_id, "valid": True, "created_at": t0 + pd.Timedelta(minutes=i),
                       "created_raw": cfg["created"], "layer_count": len(diffs), "top_chain_id": top,
                       "size_bytes": sum(layers[c]["size_bytes"] for c in chain_ids(diffs)),
                       "tagged": i % 5 != 0, "children": 0, "config_json": text,
                       "config_path": f"image/overlay2/imagedb/content/sha256/{image_id[7:]}"})
        if i % 5:
            repo = f"registry.local/team{i % 7}/svc{i}" if i != n_images - 2 else \
                "evil/<script>alert(1)</script>"
            tags.append({"image_id": image_id, "repository": repo, "tag": "v1",
                         "reference": f"{repo}:v1", "image_present": True})
    containers, mounts, volumes = [], [], []
    for j in range(n_containers):
        img = images[(j * 7) % n_images]
        cid = hashlib.sha256(f"c{j}".encode()).hexdigest()
        running = j % 3 == 0
        name = f"svc-{j}" if j != 2 else '<img src=x onerror="alert(1)">'
        created = (t0 + pd.Timedelta(hours=1, minutes=j)).isoformat()
        cfg = {"ID": cid, "Name": "/" + name, "Image": img["image_id"], "Created": created,
               "Path": "sh", "Args": ["-c", "sleep 1"],
               "State": {"Running": running, "StartedAt": created,
                         "FinishedAt": "0001-01-01T00:00:00Z" if running else created},
               "Config": {"Image": "x", "Labels": {}},
               "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0",
                                                         "HostPort": str(8000 + j)}]}},
               "MountPoints": {}}
        containers.append({"container_id": cid, "name": name, "image_ref": "x",
                           "image_id": img["image_id"], "created_at": created,
                           "status": "running" if running else "exited", "running": running,
                           "privileged": j in (2, 4), "network_mode": "host" if j == 5 else "default",
                           "driver": "overlay2", "mount_id": "rw" + cid[:30],
                           "size_rw_bytes": 100 * j, "config_json": json.dumps(cfg),
                           "hostconfig_json": json.dumps({"NetworkMode": "default"})})
        dirs.append({"dir_id": "rw" + cid[:30], "driver": "overlay2", "path": f"overlay2/rw{cid[:30]}",
                     "content_path": f"overlay2/rw{cid[:30]}/diff", "role": "container-rw",
                     "owner": cid, "files": 0, "content_bytes": 100 * j})
        vname = f"vol{j % 60}" if j != 3 else "https://evil.example/vol"
        mounts.append({"container_id": cid, "destination": "/data", "type": "volume",
                       "source": f"/var/lib/docker/volumes/{vname}/_data", "name": vname,
                       "driver": "local", "rw": True})
        files.append({"path": f"containers/{cid}/{cid}-json.log", "kind": "file", "size": 5000 + j})
    for v in sorted({m["name"] for m in mounts} | {"unused-a", "unused-b"}):
        volumes.append({"name": v, "driver": "local", "labels_json": "{}", "options_json": "{}",
                        "anonymous": False, "created_at": t0, "in_db": True, "dir_present": True,
                        "files": 1, "size_bytes": 4096,
                        "ref_count": sum(1 for m in mounts if m["name"] == v)})
    dirs.append({"dir_id": "orphan1", "driver": "overlay2", "path": "overlay2/orphan1",
                 "content_path": "overlay2/orphan1/diff", "role": "orphan", "files": 1,
                 "content_bytes": 777})
    networks = [{"network_id": _sha(n)[7:], "name": n, "driver": "bridge", "scope": "local",
                 "created_at": t0, "internal": False, "attachable": False, "ipv6": False,
                 "subnets_json": json.dumps([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]),
                 "endpoints": 3, "config_json": "{}"} for n in ("bridge", "backend", "frontend")]
    for layer in layers.values():
        layer["image_refs"] = 1
    tables = {
        "images": schema.frame("images", images), "image_tags": schema.frame("image_tags", tags),
        "image_history": schema.frame("image_history", history),
        "layers": schema.frame("layers", list(layers.values())),
        "layer_dirs": schema.frame("layer_dirs", dirs),
        "containers": schema.frame("containers", containers),
        "container_mounts": schema.frame("container_mounts", mounts),
        "container_networks": schema.frame("container_networks", []),
        "volumes": schema.frame("volumes", volumes), "networks": schema.frame("networks", networks),
        "logs": schema.frame("logs", []), "files": schema.frame("files", files),
        "issues": schema.frame("issues", [{"code": "synthetic", "severity": "warning",
                                           "message": "hand-made snapshot <b>not</b> evidence",
                                           "path": "x"}]),
    }
    meta = {"evidence_path": "/evidence/synthetic.tar", "evidence_kind": "tar",
            "compression": "none", "evidence_bytes": 123456789, "evidence_sha256": "ab" * 32,
            "sha256_kind": "bytes", "complete": True, "members": len(files),
            "root_prefix": "var/lib/docker", "roots_found": '["var/lib/docker"]',
            "host_data_root": "/var/lib/docker", "driver": "overlay2", "image_store": "graphdriver",
            "docker_version_hints": '["24.0.7"]', "acquired_at": t0 + pd.Timedelta(days=1),
            "tool_version": "0.1.0", "parameters": '{"hash_files": true, "root": null}',
            "issue_count": 1}
    tables["snapshot"] = schema.frame("snapshot", [meta])
    for name in schema.TABLES:  # tables this test does not fill (added later) stay empty
        tables.setdefault(name, schema.frame(name, []))
    return Snapshot(tables, meta)


def test_report_scales_to_hundreds_of_images() -> None:
    snap = synthetic_snapshot()
    html = render_report(snap, context_for(snap))
    size = len(html.encode())
    assert size < MAX_BYTES, size
    p = parse(html)
    assert len(p.tables["t-images"]) == 200 and "more not shown" in html
    hidden = len(storage.listed_images(snap)) - 200
    assert f'data-more="{hidden}"' in html
    assert len(p.tables["t-containers"]) == 100
    assert re.search(r"\+\d+ more images", html)  # the DAG counts what it does not draw
    assert "Drawn: 60 of" in html
    # everything from the evidence is escaped
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # ... findings too (the privileged container with a hostile name), capped like other tables
    triage = [r for r in _triage_rows(p) if r["rule"] == "DRA-RT-001"]
    assert {r["object"].split(" (")[0] for r in triage} == {
        "container svc-4", 'container <img src=x onerror="alert(1)">'}
    assert "container &lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert len(p.tables["t-triage"]) <= 200
    assert html.count("<script>") == 1 and "<b>not</b>" not in html
    assert_no_external_reference(html, evidence_text="https://evil.example/vol")
