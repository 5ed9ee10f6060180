"""Triage rule engine: the :class:`Finding` record, the rule registry and the run loop.

What: every detection of the triage catalogue (``../shared/docs/triage-rules.md`` §2) is a
small function registered with :func:`rule`; :func:`run_rules` calls them over a
:class:`Context` (the snapshot plus parsed, cached views of its tables) and returns
findings sorted severity first.

Why: responders need the risky facts of a seized data-root (privileges, binds, dropped
files, secrets, attack strings) ranked and explained, each with the exact field, value or
path that triggered it, so a finding can be checked by hand against the evidence.

Where the evidence sits: only in the snapshot's tables (``containers`` incl.
``config_json``/``hostconfig_json``, ``container_mounts``, ``images``, ``image_history``,
``files``, ``layer_dirs``, ``volumes``, ``logs``); nothing is read from the evidence again,
except by the optional YARA pass (:mod:`analyzer.analyses.triage.yarascan`).

References:
    MITRE ATT&CK for Containers (https://attack.mitre.org/matrices/enterprise/containers/);
    Falco rules (``falcosecurity/rules``) for the privilege/mount/miner lists;
    the project's triage catalogue ``shared/docs/triage-rules.md``.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator

import pandas as pd
from analyzer.errors import ExportError
from analyzer.model.values import loads_json as loads  # noqa: F401 - used by rule modules
from analyzer.model.values import na  # noqa: F401 - used by rule modules

#: severities, lowest first
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
#: ObjectRef types
OBJECT_TYPES = ("container", "image", "volume", "layer", "snapshot")


def severity_rank(severity: str) -> int:
    """0 for info … 4 for critical; ``ValueError`` for an unknown name."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r} (one of {', '.join(SEVERITIES)})"
                         ) from None


def bump(severity: str, levels: int = 1) -> str:
    """``severity`` raised by ``levels`` (capped at critical)."""
    return SEVERITIES[min(len(SEVERITIES) - 1, severity_rank(severity) + levels)]


@dataclass
class Finding:
    """One triage result.

    Attributes:
        rule: stable rule id (``DRA-RT-001``).
        title: the rule's short title.
        severity: info, low, medium, high or critical.
        attack: ATT&CK technique ids.
        object: ``{"type": container|image|volume|layer|snapshot, "id": ..., "name": ...}``.
        evidence: the exact fields, values and paths that triggered it (paths relative to
            the container root or the data-root, as each key says).
        explanation: one paragraph: what it means and how to check it.
    """

    rule: str
    title: str
    severity: str
    attack: list[str]
    object: dict[str, Any]
    evidence: dict[str, Any]
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the ``--json`` form)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    return value


RuleFunc = Callable[["Context", "Rule"], Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A registered detection: id, title, default severity, ATT&CK ids, family, catalogue
    reference and the function that finds it."""

    id: str
    title: str
    severity: str
    attack: tuple[str, ...]
    family: str
    catalogue: str
    func: RuleFunc = field(repr=False, compare=False)

    def finding(self, obj: dict[str, Any], evidence: dict[str, Any], explanation: str, *,
                severity: str | None = None, attack: Iterable[str] | None = None,
                title: str | None = None) -> Finding:
        """A :class:`Finding` of this rule (defaults from the rule)."""
        return Finding(rule=self.id, title=title or self.title,
                       severity=severity or self.severity,
                       attack=list(attack) if attack is not None else list(self.attack),
                       object=obj, evidence=evidence, explanation=explanation)


#: every registered rule by id (filled when the family modules are imported)
RULES: dict[str, Rule] = {}


def rule(rule_id: str, title: str, severity: str, attack: Iterable[str], family: str,
         catalogue: str = "") -> Callable[[RuleFunc], RuleFunc]:
    """Register the decorated function as rule ``rule_id``."""
    severity_rank(severity)

    def deco(func: RuleFunc) -> RuleFunc:
        if rule_id in RULES:
            raise ValueError(f"duplicate rule id {rule_id}")
        RULES[rule_id] = Rule(rule_id, title, severity, tuple(attack), family, catalogue, func)
        return func

    return deco


# -- helpers shared by rule modules ------------------------------------------------------


def redact(value: str) -> str:
    """A secret value as ``sha256:<first 12 hex> (N chars)``: provable, never revealed."""
    return f"sha256:{hashlib.sha256(value.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}" \
           f" ({len(value)} chars)"


@dataclass
class ContainerView:
    """One container with its JSON documents parsed (the fields rules read)."""

    id: str
    name: str
    row: pd.Series
    config: dict[str, Any]
    hostconfig: dict[str, Any]

    @property
    def ref(self) -> dict[str, Any]:
        """The finding ``object`` of this container."""
        return {"type": "container", "id": self.id, "name": self.name}

    @property
    def config_path(self) -> str:
        return na(self.row.get("config_path")) or f"containers/{self.id}/config.v2.json"

    @property
    def hostconfig_path(self) -> str:
        return posixpath.join(posixpath.dirname(self.config_path), "hostconfig.json")

    def command(self) -> list[str]:
        """``Path`` + ``Args`` (what actually ran), else ``Entrypoint`` + ``Cmd``."""
        path = self.config.get("Path") or na(self.row.get("path"))
        args = self.config.get("Args")
        if args is None:
            args = loads(self.row.get("args_json")) or []
        if path:
            return [str(path)] + [str(a) for a in args or []]
        cfg = self.config.get("Config") or {}
        return [str(x) for x in (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])]

    def env(self) -> list[str]:
        env = (self.config.get("Config") or {}).get("Env")
        if env is None:
            env = loads(self.row.get("env_json"))
        return [str(e) for e in env or []]

    def labels(self) -> dict[str, str]:
        labels = (self.config.get("Config") or {}).get("Labels")
        if labels is None:
            labels = loads(self.row.get("labels_json"))
        return {str(k): str(v) for k, v in (labels or {}).items()}


@dataclass
class Change:
    """One entry of a container's RW-layer diff (like ``docker diff``).

    ``path`` is the container path, ``kind`` 0 modified, 1 added, 2 deleted, ``row`` the
    ``files`` index row of the RW-layer member (``None`` for deletions taken from the
    changes API) and ``member`` its data-root relative path.
    """

    path: str
    kind: int
    row: pd.Series | None
    member: str | None

    @property
    def kind_name(self) -> str:
        return ("modified", "added", "deleted")[self.kind]


class Context:
    """The snapshot plus cached, parsed views every rule shares."""

    def __init__(self, snap: Any) -> None:
        self.snap = snap

    # -- containers -------------------------------------------------------------------
    @cached_property
    def containers(self) -> list[ContainerView]:
        out = []
        for _, row in self.snap.containers.iterrows():
            out.append(ContainerView(id=row["container_id"], name=na(row["name"]) or
                                     row["container_id"][:12], row=row,
                                     config=loads(row["config_json"]) or {},
                                     hostconfig=loads(row["hostconfig_json"]) or {}))
        return out

    @cached_property
    def mounts(self) -> dict[str, pd.DataFrame]:
        m = self.snap.container_mounts
        return {cid: g for cid, g in m.groupby("container_id", sort=False)}

    def mounts_of(self, cid: str) -> pd.DataFrame:
        return self.mounts.get(cid, self.snap.container_mounts.iloc[0:0])

    # -- images -----------------------------------------------------------------------
    @cached_property
    def image_names(self) -> dict[str, list[str]]:
        """image id → its references (tags and digests), sorted."""
        t = self.snap.image_tags
        out: dict[str, list[str]] = {}
        for iid, ref in zip(t["image_id"], t["reference"]):
            out.setdefault(iid, []).append(ref)
        return {k: sorted(v) for k, v in out.items()}

    def image_ref(self, image_id: str) -> dict[str, Any]:
        names = self.image_names.get(image_id) or []
        return {"type": "image", "id": image_id, "name": names[0] if names else "<none>"}

    @cached_property
    def image_configs(self) -> dict[str, dict[str, Any]]:
        return {iid: loads(text) or {} for iid, text in
                zip(self.snap.images["image_id"], self.snap.images["config_json"])}

    @cached_property
    def used_images(self) -> set[str]:
        return set(self.snap.containers["image_id"].dropna())

    @cached_property
    def top_level_images(self) -> set[str]:
        """Images ``docker images`` lists (tagged, dangling, or used), not intermediates."""
        imgs = self.snap.images
        parents = set(imgs["parent_id"].dropna())
        out = set()
        for iid, tagged in zip(imgs["image_id"], imgs["tagged"]):
            if bool(na(tagged)) or iid in self.used_images or iid not in parents:
                out.add(iid)
        return out

    # -- files ------------------------------------------------------------------------
    @cached_property
    def files(self) -> pd.DataFrame:
        return self.snap.files

    @cached_property
    def _files_by_dir(self) -> dict[str, pd.DataFrame]:
        """content_path of every layer dir → the member rows below it, with ``rel`` =
        ``/path/inside`` (one vectorised pass per path depth, not one per directory)."""
        f = self.files
        cps = [str(cp) for cp in self.snap.layer_dirs["content_path"].dropna().unique()]
        out: dict[str, pd.DataFrame] = {}
        paths = f["path"].astype(str)
        for depth in sorted({cp.count("/") + 1 for cp in cps}):
            want = {cp for cp in cps if cp.count("/") + 1 == depth}
            parts = paths.str.split("/", n=depth)
            key = parts.str[:depth].str.join("/")
            mask = key.isin(want) & (parts.str.len() > depth)
            sub = f[mask]
            keys = key[mask]
            for cp, g in sub.groupby(keys.values, sort=False):
                out[str(cp)] = g.assign(rel=g["path"].str.slice(len(str(cp))))
        empty = f.iloc[0:0].assign(rel=pd.Series(dtype="string"))
        for cp in cps:
            out.setdefault(cp, empty)
        return out

    def layer_files(self, content_path: str) -> pd.DataFrame:
        """Member rows under a layer content folder, with ``rel`` = ``/container/path``."""
        got = self._files_by_dir.get(content_path)
        if got is not None:
            return got
        f = self.files
        sub = f[f["path"].str.startswith(content_path + "/")]
        return sub.assign(rel=sub["path"].str.slice(len(content_path)))

    @cached_property
    def layer_dir_by_owner(self) -> dict[tuple[str, str], pd.Series]:
        d = self.snap.layer_dirs
        return {(role, owner): row for (_, row), role, owner in
                zip(d.iterrows(), d["role"].astype(str), d["owner"].astype(str))}

    @cached_property
    def layer_dir_by_id(self) -> dict[str, pd.Series]:
        d = self.snap.layer_dirs
        return {str(i): row for (_, row), i in zip(d.iterrows(), d["dir_id"])}

    def rw_dir(self, cid: str) -> pd.Series | None:
        """The container's RW layer directory row (``layer_dirs`` role container-rw)."""
        return self.layer_dir_by_owner.get(("container-rw", cid))

    def changes(self, cid: str) -> list[Change]:
        """The container's RW-layer changes, cached (see :mod:`.changes_view`)."""
        cache = self.__dict__.setdefault("_changes", {})
        if cid not in cache:
            from analyzer.analyses.triage.changes_view import rw_changes

            cache[cid] = rw_changes(self, cid)
        return cache[cid]

    def mount_destinations(self, cid: str) -> set[str]:
        return set(self.mounts_of(cid)["destination"].dropna().astype(str))

    @cached_property
    def volume_files(self) -> pd.DataFrame:
        """Members under ``volumes/<name>/_data/`` with ``volume`` and ``rel`` columns."""
        f = self.files
        sub = f[f["path"].str.startswith("volumes/") & f["path"].str.contains("/_data/",
                                                                               regex=False)]
        parts = sub["path"].str.split("/_data", n=1, regex=False)
        return sub.assign(volume=parts.str[0].str.slice(len("volumes/")),
                          rel=parts.str[1])

    def volume_ref(self, name: str) -> dict[str, Any]:
        return {"type": "volume", "id": name, "name": name}

    def container_by_id(self, cid: str) -> ContainerView | None:
        for c in self.containers:
            if c.id == cid:
                return c
        return None

    def containers_using_volume(self, name: str) -> list[str]:
        m = self.snap.container_mounts
        ids = m[m["name"] == name]["container_id"].dropna().unique().tolist()
        names = {c.id: c.name for c in self.containers}
        return sorted(names.get(i, i[:12]) for i in ids)


# -- running ------------------------------------------------------------------------------

def load_rules() -> dict[str, Rule]:
    """Import every family module (registering its rules) and return the registry."""
    from analyzer.analyses.triage import (  # noqa: F401 - imported for registration
        logs, runtime, rwlayer, secrets, storage, supplychain, volumes)

    return RULES


def run_rules(snap: Any, *, min_severity: str = "info", ioc: str | None = None,
              yara_dir: str | None = None, yara_all_layers: bool = False,
              evidence: str | None = None, only: Iterable[str] | None = None,
              errors: list[str] | None = None, notes: list[str] | None = None
              ) -> list[Finding]:
    """Run the catalogue over ``snap`` and return findings, severity first.

    Args:
        snap: the :class:`~analyzer.model.snapshot.Snapshot`.
        min_severity: drop findings below this severity.
        ioc: CSV file of indicators (``type,value[,note]``), see :mod:`.ioc`.
        yara_dir: folder of YARA rule sources, scanned over RW layers and volumes by
            streaming the evidence again (see :mod:`.yarascan`).
        yara_all_layers: also scan image layers.
        evidence: the evidence path for the YARA pass (default: ``snap.meta``).
        only: rule ids or families to run (default: all).
        errors: list that receives one line per rule that raised (the run goes on);
            without it the exception propagates.
        notes: list that receives remarks for the user (skipped md5 IOCs, YARA counts).
    """
    floor = severity_rank(min_severity)
    rules = load_rules()
    ctx = Context(snap)
    wanted = set(only) if only else None
    found: list[Finding] = []
    for r in rules.values():
        if wanted and r.id not in wanted and r.family not in wanted:
            continue
        try:
            found.extend(r.func(ctx, r))
        except ExportError:  # a damaged case table: every later rule would miss it too
            raise
        except Exception as exc:  # noqa: BLE001 - one broken rule must not hide the others
            if errors is not None:
                errors.append(f"{r.id}: {type(exc).__name__}: {exc}")
            else:
                raise
    found = _amplify(ctx, found)
    if ioc:
        from analyzer.analyses.triage.ioc import match_iocs

        found.extend(match_iocs(ctx, ioc, notes=notes))
    if yara_dir:
        from analyzer.analyses.triage.yarascan import scan_yara

        found.extend(scan_yara(ctx, yara_dir, all_layers=yara_all_layers, evidence=evidence,
                               notes=notes))
    found = [f for f in found if severity_rank(f.severity) >= floor]
    return sort_findings(found)


def _amplify(ctx: Context, found: list[Finding]) -> list[Finding]:
    """Amplifier rules of the catalogue: restart persistence (DX-013) only counts when the
    same container has a medium-or-worse finding, and then raises it to at least medium;
    see :mod:`.runtime`."""
    from analyzer.analyses.triage.runtime import restart_amplifier

    return restart_amplifier(ctx, found)


def sort_findings(found: list[Finding]) -> list[Finding]:
    """Severity first (critical on top), then rule id, object name, evidence."""
    return sorted(found, key=lambda f: (-severity_rank(f.severity), f.rule,
                                        str(f.object.get("name") or ""),
                                        json.dumps(f.to_dict()["evidence"], sort_keys=True)))


def findings_json(found: list[Finding], snap: Any | None = None) -> str:
    """The ``--json`` document: ``{"snapshot": {...}, "findings": [...]}``."""
    meta = {}
    if snap is not None:
        m = snap.meta
        meta = {"evidence_path": m.get("evidence_path"),
                "evidence_sha256": m.get("evidence_sha256"),
                "root_prefix": m.get("root_prefix"), "tool_version": m.get("tool_version")}
    doc = {"snapshot": meta, "rules": len(load_rules()),
           "findings": [f.to_dict() for f in found]}
    return json.dumps(_jsonable(doc), indent=2, ensure_ascii=False) + "\n"


def findings_table(found: list[Finding], width: int = 60) -> str:
    """Plain-text table, severity first: SEVERITY RULE OBJECT TITLE ATT&CK WHERE."""
    rows = [("SEVERITY", "RULE", "OBJECT", "TITLE", "ATT&CK", "EVIDENCE")]
    for f in found:
        obj = f"{f.object.get('type')}:{f.object.get('name') or str(f.object.get('id'))[:12]}"
        rows.append((f.severity.upper(), f.rule, obj, f.title, ",".join(f.attack),
                     _short_evidence(f.evidence, width)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "   " + r[-1]
             for r in rows]
    counts = {s: sum(1 for f in found if f.severity == s) for s in reversed(SEVERITIES)}
    lines.append("")
    lines.append(f"{len(found)} finding(s): " + ", ".join(f"{n} {s}" for s, n in counts.items()
                                                           if n))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _short_evidence(ev: dict[str, Any], width: int) -> str:
    for key in ("path", "paths", "volume_path", "matched", "value", "field"):
        if key in ev:
            v = ev[key]
            text = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
            text = text.replace("\n", " ")
            return text if len(text) <= width else text[:width - 1] + "…"
    return ""


def iter_findings_by_object(found: list[Finding]) -> Iterator[tuple[tuple[str, str], list[Finding]]]:
    """Findings grouped by ``(object type, object id)``."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in found:
        groups.setdefault((str(f.object.get("type")), str(f.object.get("id"))), []).append(f)
    yield from groups.items()


__all__ = ["Finding", "Rule", "RULES", "SEVERITIES", "Context", "ContainerView", "Change",
           "rule", "run_rules", "load_rules", "severity_rank", "bump", "sort_findings",
           "findings_json", "findings_table", "redact", "loads", "na"]
