"""Human tables like the docker CLI prints them (``docker ps``, ``docker images``...).

Column rules follow docker/cli 20.10: tabwriter with minimum width 10 and
padding 3, ids truncated to 12, sizes with ``HumanSizeWithPrecision(n, 3)``,
"X ago" from the reference time. Reference: ``docs/engine-api.md`` §11.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pandas as pd

from analyzer.render.engine.common import Context, api_at_least, human_duration


def human_size(n: float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision`` (decimal units: B, kB, MB...)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.{precision}g}{units[i]}"


def truncate_id(ident: str) -> str:
    """Drop the algorithm prefix and keep 12 characters."""
    return ident.split(":", 1)[-1][:12]


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """Go tabwriter (minwidth 10, padding 3); the last column is not padded."""
    cols = len(header)
    widths = [max(10, max((len(r[i]) for r in [header] + rows), default=0) + 3)
              for i in range(cols)]
    lines = []
    for r in [header] + rows:
        cells = [c.ljust(widths[i]) if i < cols - 1 else c for i, c in enumerate(r)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _ago(ctx: Context, unix: int) -> str:
    return human_duration(ctx.now_ns - unix * 1_000_000_000) + " ago"


def _command(cmd: str, no_trunc: bool) -> str:
    if not no_trunc and _width(cmd) > 20:
        out, w = "", 0
        for c in cmd:
            cw = 2 if unicodedata.east_asian_width(c) in "WF" else 1
            if w + cw > 19:
                break
            out += c
            w += cw
        cmd = out + "…"
    return json.dumps(cmd, ensure_ascii=False)


def _ports(ports: list[dict[str, Any]]) -> str:
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    tail = []
    for p in sorted(ports, key=lambda p: (p["PrivatePort"], p.get("IP", ""), p.get("PublicPort", 0),
                                          p["Type"])):
        ip = p.get("IP", "")
        if ip and p.get("PublicPort", 0) != p["PrivatePort"]:
            host = f"[{ip}]" if ":" in ip else ip
            tail.append(f"{host}:{p.get('PublicPort', 0)}->{p['PrivatePort']}/{p['Type']}")
            continue
        key = f"{ip}/{p['Type']}" if ip else p["Type"]
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(p["PrivatePort"])
    out = []
    for key in order:
        nums = groups[key]
        ranges, start, prev = [], nums[0], nums[0]
        for n in nums[1:] + [None]:  # type: ignore[list-item]
            if n is not None and n == prev + 1:
                prev = n
                continue
            ranges.append((start, prev))
            if n is not None:
                start = prev = n
        for a, b in ranges:
            span = f"{a}" if a == b else f"{a}-{b}"
            if "/" in key:
                ip, proto = key.rsplit("/", 1)
                host = f"[{ip}]" if ":" in ip else ip
                out.append(f"{host}:{span}->{span}/{proto}")
            else:
                out.append(f"{span}/{key}")
    return ", ".join(out + tail)


def ps_table(docs: list[dict[str, Any]], ctx: Context, size: bool = False,
             no_trunc: bool = False) -> str:
    """``docker ps`` output for ``GET /containers/json`` items."""
    header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    if size:
        header.append("SIZE")
    rows = []
    for d in docs:
        image = d["Image"]
        if not image:
            image = "<no image>"
        elif not no_trunc and truncate_id(d["ImageID"]) == truncate_id(image):
            image = truncate_id(image)
        names = [n.lstrip("/") for n in d["Names"]]
        plain = [n for n in names if "/" not in n]
        row = [d["Id"] if no_trunc else truncate_id(d["Id"]), image,
               _command(d["Command"], no_trunc), _ago(ctx, d["Created"]), d["Status"],
               _ports(d["Ports"]), plain[0] if plain else ",".join(names)]
        if size:
            s = human_size(d.get("SizeRw", 0))
            if d.get("SizeRootFs", 0) > 0:
                s += f" (virtual {human_size(d['SizeRootFs'])})"
            row.append(s)
        rows.append(row)
    return render_table(header, rows)


def images_table(docs: list[dict[str, Any]], ctx: Context, no_trunc: bool = False) -> str:
    """``docker images`` output for ``GET /images/json`` items."""
    rows = []
    for d in docs:
        tags = [t for t in d["RepoTags"] or [] if t != "<none>:<none>"]
        digests = [t for t in d["RepoDigests"] or [] if t != "<none>@<none>"]
        ident = d["Id"] if no_trunc else truncate_id(d["Id"])
        created = "N/A" if d["Created"] <= -62135596800 else _ago(ctx, d["Created"])
        size = human_size(d["Size"])
        if not tags and not digests:
            rows.append(["<none>", "<none>", ident, created, size])
            continue
        seen = set()
        for t in tags:
            repo, _, tag = t.rpartition(":")
            rows.append([repo, tag, ident, created, size])
            seen.add(repo)
        for dg in digests:
            repo = dg.split("@", 1)[0]
            if repo not in seen:
                rows.append([repo, "<none>", ident, created, size])
                seen.add(repo)
    return render_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)


def history_table(docs: list[dict[str, Any]], ctx: Context, no_trunc: bool = False) -> str:
    """``docker history`` output."""
    rows = []
    for d in docs:
        ident = d["Id"] if no_trunc or d["Id"] == "<missing>" else truncate_id(d["Id"])
        by = d["CreatedBy"]
        if not no_trunc and _width(by) > 45:
            by = by[:44] + "…"
        rows.append([ident, _ago(ctx, d["Created"]), by, human_size(d["Size"]), d["Comment"]])
    return render_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows)


def volumes_table(doc: dict[str, Any]) -> str:
    """``docker volume ls`` output."""
    rows = [[v["Driver"], v["Name"]] for v in doc["Volumes"]]
    return render_table(["DRIVER", "VOLUME NAME"], rows)


def networks_table(docs: list[dict[str, Any]]) -> str:
    """``docker network ls`` output."""
    rows = [[truncate_id(n["Id"]), n["Name"], n["Driver"], n["Scope"]] for n in docs]
    return render_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows)


def info_doc(snap: Any) -> dict[str, Any]:
    """The snapshot summary: provenance, layout, counts and issues."""
    meta = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in snap.meta.items()}
    counts = {name: snap.tables.rows(name) for name in snap.tables
              if name not in ("snapshot", "issues")}
    issues = snap.tables["issues"]
    return {"snapshot": meta, "counts": counts,
            "issues": [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                       for r in issues.astype(object).to_dict("records")]}


def info_text(doc: dict[str, Any]) -> str:
    """``info`` as readable text."""
    m = doc["snapshot"]
    lines = [
        f"Evidence:        {m['evidence_path']} ({m['evidence_kind']}, {m['compression']}, "
        f"{m['evidence_bytes']} bytes)",
        f"SHA-256:         {m['evidence_sha256']} ({m['sha256_kind']})",
        f"Read completely: {'yes' if m['complete'] else 'NO (damaged archive)'}",
        f"Data-root:       {m['root_prefix'] or '.'} (found: {m['roots_found']})",
        f"Host data-root:  {m['host_data_root'] or 'unknown'}",
        f"Storage driver:  {m['driver'] or 'none'}",
        f"Image store:     {m['image_store']}",
    ]
    if m.get("containerd_root") is not None and not pd.isna(m.get("containerd_root")):
        where = m.get("containerd_evidence_path")
        lines.append(f"Containerd root: {m['containerd_root'] or '.'}" + (
            f" in {where} (sha256 {m.get('containerd_evidence_sha256')})"
            if isinstance(where, str) and where else ""))
    lines += [
        f"Version hints:   {m['docker_version_hints']}",
        f"Acquired about:  {m['acquired_at']}",
        f"Tool version:    {m['tool_version']}",
        "",
        "Counts:          " + ", ".join(f"{k} {v}" for k, v in doc["counts"].items()),
        "",
        f"Issues ({len(doc['issues'])}):",
    ]
    for i in doc["issues"]:
        lines.append(f"  [{i['severity']}] {i['code']}: {i['message']}")
    return "\n".join(lines) + "\n"


def _pct(part: float, total: float) -> str:
    return f" ({int(part * 100 / total)}%)" if total > 0 else ""


def df_summary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The four rows of ``docker system df`` (TYPE, TOTAL, ACTIVE, SIZE, RECLAIMABLE) in bytes.

    docker/cli 20.10 rules (``cli/command/formatter/disk_usage.go``): reclaimable image
    bytes exclude what images with containers use alone; containers count when not
    running; volumes when unreferenced; the build cache unless in use and unshared.
    """
    images, containers = doc["Images"], doc["Containers"]
    volumes, cache = doc["Volumes"], doc["BuildCache"] or []
    layers = doc["LayersSize"]
    used = sum(i.get("VirtualSize", i["Size"]) - i["SharedSize"] for i in images if i["Containers"])
    active_c = [c for c in containers if c["State"] in ("running", "paused", "restarting")]
    c_total = sum(c.get("SizeRw", 0) for c in containers)
    c_recl = sum(c.get("SizeRw", 0) for c in containers if c not in active_c)
    v_total = sum(v["UsageData"]["Size"] for v in volumes if v["UsageData"]["Size"] != -1)
    v_recl = sum(v["UsageData"]["Size"] for v in volumes
                 if v["UsageData"]["RefCount"] == 0 and v["UsageData"]["Size"] != -1)
    # the CLI sums only records not shared with image layers (docker/cli df.go), not the
    # API's BuilderSize
    b_total = sum(b["Size"] for b in cache if not b["Shared"])
    b_recl = b_total - sum(b["Size"] for b in cache if b["InUse"] and not b["Shared"])
    return [
        {"type": "Images", "total": len(images),
         "active": sum(1 for i in images if i["Containers"] > 0), "size": layers,
         "reclaimable": layers - used},
        {"type": "Containers", "total": len(containers), "active": len(active_c),
         "size": c_total, "reclaimable": c_recl},
        {"type": "Local Volumes", "total": len(volumes),
         "active": sum(1 for v in volumes if v["UsageData"]["RefCount"] > 0), "size": v_total,
         "reclaimable": v_recl},
        {"type": "Build Cache", "total": len(cache), "active": sum(1 for b in cache if b["InUse"]),
         "size": b_total, "reclaimable": b_recl},
    ]


def system_df_table(doc: dict[str, Any]) -> str:
    """``docker system df`` (the summary) for a ``GET /system/df`` document."""
    rows = []
    for r in df_summary(doc):
        pct = _pct(r["reclaimable"], r["size"]) if r["type"] != "Build Cache" else ""
        rows.append([r["type"], str(r["total"]), str(r["active"]), human_size(r["size"], 4),
                     human_size(r["reclaimable"], 4) + pct])
    return render_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows)


def system_df_verbose(doc: dict[str, Any], ctx: Context) -> str:
    """``docker system df -v``."""
    # the 26.x CLI prints the image SIZE with 3 significant digits, 20.10 with 4
    size_precision = 3 if api_at_least(ctx.api, "1.44") else 4
    img_rows = []
    for i in doc["Images"]:
        tag = (i["RepoTags"] or ["<none>:<none>"])[0]
        repo, _, t = tag.rpartition(":")
        img_rows.append([repo or "<none>", t or "<none>", truncate_id(i["Id"]),
                         _ago(ctx, i["Created"]), human_size(i.get("VirtualSize", i["Size"]),
                                                             size_precision),
                         human_size(i["SharedSize"], 4),
                         human_size(i.get("VirtualSize", i["Size"]) - i["SharedSize"], 4), str(i["Containers"])])
    c_rows = []
    for c in doc["Containers"]:
        image = c["Image"]
        if truncate_id(c["ImageID"]) == truncate_id(image):
            image = truncate_id(image)
        names = [n.lstrip("/") for n in c["Names"]]
        plain = [n for n in names if "/" not in n]
        c_rows.append([truncate_id(c["Id"]), image, _command(c["Command"], False),
                       str(sum(1 for m in c["Mounts"] if m.get("Driver") == "local")),
                       human_size(c.get("SizeRw", 0)), _ago(ctx, c["Created"]), c["Status"],
                       plain[0] if plain else ",".join(names)])
    v_rows = [[v["Name"], str(v["UsageData"]["RefCount"]), human_size(v["UsageData"]["Size"], 4)]
              for v in doc["Volumes"]]
    parts = ["Images space usage:\n\n" + render_table(
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE",
         "CONTAINERS"], img_rows),
        "Containers space usage:\n\n" + render_table(
            ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS",
             "NAMES"], c_rows),
        "Local Volumes space usage:\n\n" + render_table(["VOLUME NAME", "LINKS", "SIZE"], v_rows)]
    cache = sorted(doc["BuildCache"] or [], key=lambda b: (b.get("LastUsedAt") or "", b["ID"]))
    b_rows = []
    for b in cache:
        from analyzer.render.engine.common import unix_seconds

        last = b.get("LastUsedAt")
        b_rows.append([b["ID"][:12] + ("*" if b["InUse"] else ""), b["Type"],
                       human_size(b["Size"]), _ago(ctx, unix_seconds(b["CreatedAt"])),
                       _ago(ctx, unix_seconds(last)) if last else "",
                       str(b["UsageCount"]), str(b["Shared"]).lower()])
    # the CLI totals only records not shared with image layers (the API's BuilderSize
    # counts every listed record)
    unshared = sum(b["Size"] for b in cache if not b["Shared"])
    parts.append(f"Build cache usage: {human_size(unshared, 4)}\n\n" + render_table(
        ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"], b_rows))
    return "\n".join(parts)
