"""Secrets rules: credentials in container environment and labels, image config and build
history (catalogue DX-015, DX-022).

Values are never reported: a finding carries the variable name, where it was found and
``sha256:<12 hex> (N chars)`` of the value, enough to match it against a known secret.

Where the evidence sits: ``containers/<cid>/config.v2.json`` ``Config.Env`` and
``Config.Labels``; ``image/<driver>/imagedb/content/sha256/<id>`` ``config.Env``,
``config.Labels`` and ``history[].created_by`` (BuildKit records ``RUN`` lines with their
build-arg values).

References: ATT&CK T1552.001 Credentials In Files, T1552.007 Container API; Docker docs
"Don't pass secrets with ARG/ENV" (https://docs.docker.com/build/building/secrets/).
"""

from __future__ import annotations

from typing import Iterator

from analyzer.analyses.triage import patterns as P
from analyzer.analyses.triage.engine import Context, Finding, Rule, na, redact, rule

F = "secrets"


def _secret_vars(env: list[str]) -> list[dict[str, str]]:
    out = []
    for item in env:
        name, sep, value = item.partition("=")
        if not sep:
            continue
        by_name = bool(P.SECRET_NAME.match(name)) and not P.PLACEHOLDER.match(value)
        by_value = P.SECRET_VALUE.search(value) is not None
        if by_name or by_value:
            out.append({"name": name, "value": redact(value),
                        "why": "name" if by_name else "value pattern"})
    return out


@rule("DRA-SE-001", "Secret in container environment", "medium", ["T1552.001", "T1552.007"], F,
      "DX-015")
def container_env(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        image_env = set((ctx.image_configs.get(str(na(c.row["image_id"]) or "")) or {})
                        .get("config", {}).get("Env") or [])
        own = [e for e in c.env() if e not in image_env]  # inherited ones: DRA-SE-003
        hits = _secret_vars(own)
        if not hits:
            continue
        sev = "high" if any(h["why"] == "value pattern" for h in hits) else r.severity
        yield r.finding(c.ref, {"file": c.config_path, "field": "Config.Env",
                                "variables": hits, "matched": [h["name"] for h in hits]},
                        "Credentials were passed to the container as environment variables "
                        f"({', '.join(h['name'] for h in hits)}). They are readable by anyone "
                        "who can inspect the container or read config.v2.json, and by every "
                        "process in it — attackers harvest them first (TeamTNT, Commando Cat). "
                        "Values are shown only as hashes.", severity=sev)


@rule("DRA-SE-002", "Credential-like value in container labels", "medium", ["T1552.001"], F,
      "DX-015")
def container_labels(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        hits = [{"label": k, "value": redact(v)} for k, v in c.labels().items()
                if P.SECRET_VALUE.search(v) or (P.SECRET_NAME.match(k.replace(".", "_"))
                                                 and not P.PLACEHOLDER.match(v))]
        if not hits:
            continue
        yield r.finding(c.ref, {"file": c.config_path, "field": "Config.Labels",
                                "labels": hits, "matched": [h["label"] for h in hits]},
                        "A container label carries what looks like a credential; labels are "
                        "world-readable through the API and copied into images committed from "
                        "the container.")


@rule("DRA-SE-003", "Secret baked into image config or build history", "medium", ["T1552.001"], F,
      "DX-022")
def image_secrets(ctx: Context, r: Rule) -> Iterator[Finding]:
    hist = ctx.snap.image_history
    steps: dict[str, list[tuple[int, str]]] = {}
    for iid, step, by in zip(hist["image_id"], hist["step"], hist["created_by"]):
        if isinstance(na(by), str):
            steps.setdefault(iid, []).append((int(step), by))
    for _, img in ctx.snap.images.iterrows():
        iid = img["image_id"]
        if iid not in ctx.top_level_images:
            continue  # intermediates repeat their children's history
        cfg = (ctx.image_configs.get(iid) or {}).get("config") or {}
        env_hits = _secret_vars([str(e) for e in cfg.get("Env") or []])
        hist_hits = []
        for step, by in steps.get(iid, []):
            for m in P.SECRET_ASSIGN.finditer(by):
                value = m.group(2).strip("'\"")
                if P.PLACEHOLDER.match(value):
                    continue
                hist_hits.append({"step": step, "name": m.group(1), "value": redact(value)})
            for m in P.SECRET_VALUE.finditer(by):
                hist_hits.append({"step": step, "name": "(value pattern)",
                                  "value": redact(m.group(0))})
        if not env_hits and not hist_hits:
            continue
        yield r.finding(ctx.image_ref(iid), {"file": na(img["config_path"]),
                                             "field": "config.Env / history[].created_by",
                                             "env": env_hits, "history": hist_hits,
                                             "matched": [h["name"] for h in env_hits + hist_hits]},
                        "The image carries credentials in its configuration (ENV) or in the "
                        "recorded build commands (ARG/RUN values are kept in history.created_by). "
                        "Anyone who can pull the image can read them; every container from it "
                        "inherits them.")
