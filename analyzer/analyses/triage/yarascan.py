"""YARA scanning of file contents (``findings --yara DIR [--yara-all-layers]``).

What: compiles every ``*.yar``/``*.yara`` source under DIR (one namespace per file, so
same-named rules do not clash) and matches it, in memory, against the regular files of
container RW layers and volumes — and image layers with ``--yara-all-layers``. Each match
is a finding ``DRA-YARA-001`` on the owning container, volume or layer.

Why a second pass: the tables hold metadata, not contents (memory grows with metadata,
not with content), so scanning streams the evidence once more with
:func:`analyzer.pipeline.open_source`, reading only members under the selected folders.
Nothing is written to disk or executed. After the pass the evidence sha256 computed while
streaming is compared with the one recorded at ingest and a mismatch is reported.

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
    from analyzer.pipeline import open_source

    rules = compile_rules(folder)
    meta = ctx.snap.meta
    path = evidence or meta.get("evidence_path")
    if not path or not os.path.exists(str(path)):
        raise UsageError(f"--yara needs the evidence itself; {path!r} is not available")
    areas: tuple[str, ...] = ("container-rw", "volume")
    if all_layers:
        areas += ("image-layer", "orphan", "container-init")
    loc = Locator(ctx, areas)
    prefix = str(meta.get("root_prefix") or "")
    head = prefix + "/" if prefix else ""
    source = open_source(str(path))
    out: list[Finding] = []
    skipped = scanned = 0
    for member, payload in source:
        if member.path is None or payload is None or member.kind != "file":
            continue
        if head and not member.path.startswith(head):
            continue
        rel = member.path[len(head):]
        place = loc.place(rel)
        if place is None:
            continue
        if member.size > MAX_SCAN_BYTES:
            skipped += 1
            continue
        data = payload.read(MAX_SCAN_BYTES + 1)
        scanned += 1
        try:
            matches = rules.match(data=data, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - yara.TimeoutError and friends
            if notes is not None:
                notes.append(f"--yara: {rel}: {type(exc).__name__}: {exc}")
            continue
        for m in matches:
            out.append(_finding(m, place, rel, len(data)))
    if notes is not None:
        notes.append(f"--yara: scanned {scanned} file(s) in {', '.join(areas)}"
                     + (f"; {skipped} larger than {MAX_SCAN_BYTES} bytes skipped" if skipped
                        else ""))
        recorded = meta.get("evidence_sha256")
        got = getattr(source.info, "sha256", "")
        if recorded and got and got != recorded and getattr(source.info, "sha256_kind",
                                                             "bytes") == "bytes":
            notes.append(f"--yara: WARNING: the evidence now hashes to {got}, not {recorded} "
                         "as recorded at ingest")
    return out


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
