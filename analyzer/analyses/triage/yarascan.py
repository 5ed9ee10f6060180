"""YARA scanning of file contents (``findings --yara DIR [--yara-all-layers]``).

What: compiles every ``*.yar``/``*.yara`` source under DIR (one namespace per file, so
same-named rules do not clash) and matches it, in memory, against the regular files of
container RW layers and volumes — and image layers with ``--yara-all-layers``. Each match
is a finding ``DRA-YARA-001`` on the owning container, volume or layer.

Why a second pass: the tables hold metadata, not contents (memory grows with metadata,
not with content), so scanning streams the evidence once more with
:func:`analyzer.pipeline.open_source`, reading only members under the selected folders.
Nothing is written to disk or executed. After the pass the evidence sha256 computed while
streaming is compared with the one recorded at ingest and a mismatch is reported. A
containerd root outside the data-root (``@containerd/…`` in the tables, possibly a second
evidence given with ``--containerd``) is streamed too: members are mapped to table paths
with :mod:`analyzer.model.evidence`, one pass per evidence file.

Severity and ATT&CK come from rule metadata when present (``severity`` one of
info/low/medium/high/critical; ``attack``/``mitre_attack`` comma-separated technique
ids), else high and none.

References: yara-python (https://yara.readthedocs.io/en/stable/yarapython.html) —
``yara.compile(filepaths=...)``, ``rules.match(data=..., timeout=...)``; YARA warns
against loading compiled rules from untrusted sources, so only sources are accepted.
"""

from __future__ import annotations

import os
from typing import Any

from analyzer.analyses.triage.engine import SEVERITIES, Context, Finding
from analyzer.errors import UsageError

#: files larger than this are not scanned (reported in the notes)
MAX_SCAN_BYTES = 64 << 20
#: seconds per file
TIMEOUT = 60
NOT_INSTALLED = ("yara-python is not installed: `pip install yara-python` "
                 "(pinned in requirements.txt) to use --yara")


def compile_rules(folder: str) -> Any:
    """Compile every rule source under ``folder``; ``UsageError`` when impossible."""
    try:
        import yara  # type: ignore[import-not-found]
    except ImportError as exc:
        raise UsageError(NOT_INSTALLED) from exc
    if not os.path.isdir(folder):
        raise UsageError(f"--yara {folder}: not a directory")
    paths = {}
    for base, _, names in os.walk(folder):
        for name in sorted(names):
            if name.lower().endswith((".yar", ".yara")):
                full = os.path.join(base, name)
                paths[os.path.relpath(full, folder).replace(os.sep, "/")] = full
    if not paths:
        raise UsageError(f"--yara {folder}: no .yar/.yara rule files")
    try:
        return yara.compile(filepaths=paths)
    except yara.Error as exc:  # type: ignore[attr-defined]
        raise UsageError(f"--yara {folder}: {exc}") from exc


def scan_yara(ctx: Context, folder: str, *, all_layers: bool = False,
              evidence: str | None = None, notes: list[str] | None = None) -> list[Finding]:
    """Stream the evidence and match the rules of ``folder`` (see the module docstring)."""
    from analyzer.analyses.triage.locate import Locator

    rules = compile_rules(folder)
    meta = ctx.snap.meta
    plan = _evidence_plan(meta, evidence)
    areas: tuple[str, ...] = ("container-rw", "volume")
    if all_layers:
        areas += ("image-layer", "orphan", "container-init")
    loc = Locator(ctx, areas)
    out: list[Finding] = []
    counts = [0, 0]  # scanned, skipped
    for path, parts in plan:
        _scan_one(rules, loc, path, parts, out, counts, notes, meta,
                  is_main=path == plan[0][0])
    scanned, skipped = counts
    if notes is not None:
        notes.append(f"--yara: scanned {scanned} file(s) in {', '.join(areas)}"
                     + (f"; {skipped} larger than {MAX_SCAN_BYTES} bytes skipped" if skipped
                        else ""))
    return out


def _evidence_plan(meta: dict[str, Any], evidence: str | None) -> list[tuple[str, list[Any]]]:
    """(evidence file, the parts of the tables it holds), the data-root's first."""
    from analyzer.model.evidence import EvidencePart, evidence_parts

    recorded = str(meta.get("evidence_path") or "")
    main = evidence or recorded
    plan: dict[str, list[Any]] = {}
    for p in evidence_parts(meta):
        ev = main if p.evidence in (recorded, "") else p.evidence
        plan.setdefault(ev, []).append(EvidencePart(ev, p.prefix, p.mount))
    for ev in plan:
        if not ev or not os.path.exists(ev):
            raise UsageError(f"--yara needs the evidence itself; {ev!r} is not available")
    return list(plan.items())


def _scan_one(rules: Any, loc: Any, path: str, parts: list[Any], out: list[Finding],
              counts: list[int], notes: list[str] | None, meta: dict[str, Any],
              is_main: bool) -> None:
    """Stream one evidence file and match the rules against the selected members."""
    from analyzer.model.evidence import relative
    from analyzer.pipeline import open_source

    source = open_source(str(path))
    for member, payload in source:
        if member.path is None or payload is None or member.kind != "file":
            continue
        rel = relative(parts, member.path)
        if rel is None:
            continue
        place = loc.place(rel)
        if place is None:
            continue
        if member.size > MAX_SCAN_BYTES:
            counts[1] += 1
            continue
        data = payload.read(MAX_SCAN_BYTES + 1)
        counts[0] += 1
        try:
            matches = rules.match(data=data, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - yara.TimeoutError and friends
            if notes is not None:
                notes.append(f"--yara: {rel}: {type(exc).__name__}: {exc}")
            continue
        for m in matches:
            out.append(_finding(m, place, rel, len(data)))
    if notes is not None:
        recorded = meta.get("evidence_sha256" if is_main else "containerd_evidence_sha256")
        got = getattr(source.info, "sha256", "")
        if isinstance(recorded, str) and recorded and got and got != recorded and getattr(
                source.info, "sha256_kind", "bytes") == "bytes":
            notes.append(f"--yara: WARNING: the evidence {os.path.basename(path)} now hashes "
                         f"to {got}, not {recorded} as recorded at ingest")


def _finding(m: Any, place: Any, member: str, size: int) -> Finding:
    meta = dict(getattr(m, "meta", {}) or {})
    sev = str(meta.get("severity", "high")).lower()
    if sev not in SEVERITIES:
        sev = "high"
    attack_raw = meta.get("attack") or meta.get("mitre_attack") or ""
    attack = [a.strip() for a in str(attack_raw).replace(";", ",").split(",") if a.strip()]
    strings = []
    for s in getattr(m, "strings", [])[:10]:
        inst = getattr(s, "instances", None)
        if inst is not None:  # yara-python >= 4.3
            strings.append({"id": s.identifier, "offsets": [i.offset for i in inst[:5]]})
        else:  # older tuple form (offset, identifier, data)
            strings.append({"id": s[1], "offsets": [s[0]]})
    return Finding(rule="DRA-YARA-001", title=f"YARA match: {m.rule}", severity=sev,
                   attack=attack, object=place.object,
                   evidence={"path": place.path, "member": member, "area": place.area,
                             "size": size, "yara_rule": m.rule, "namespace": m.namespace,
                             "tags": list(getattr(m, "tags", []) or []), "meta": meta,
                             "strings": strings},
                   explanation=f"The YARA rule {m.namespace}:{m.rule} matched the contents of "
                               f"{place.path} ({place.area}). "
                               + str(meta.get("description", "")))


__all__ = ["scan_yara", "compile_rules", "MAX_SCAN_BYTES", "NOT_INSTALLED"]
