"""Supply-chain rules: download-and-execute and miner patterns in container commands and
image history, images built or committed on the host, containers from untagged images,
known-bad image names (catalogue DX-009, DX-011, DX-012, DX-020, DX-021, DX-023, DX-025).

Where the evidence sits: ``config.v2.json`` ``Path``/``Args``/``Config.{Cmd,Entrypoint,
Env,Labels,Healthcheck}`` (``containers`` table); the image config
(``imagedb/content/sha256/<id>``: ``container``, ``container_config``, ``history[]``) in
``images.config_json`` and ``image_history``; ``repositories.json`` (``image_tags``);
``imagedb/metadata/sha256/<id>/parent`` (``images.parent_id``).

References: ATT&CK T1105 Ingress Tool Transfer, T1059.004 Unix Shell, T1496 Resource
Hijacking, T1610 Deploy Container, T1612 Build Image on Host, T1525 Implant Internal
Image, T1204.003 Malicious Image; Sigma ``lnx_auditd_coinminer.yml``; docker/hub-feedback
issues #1121, #1549 (miner images).
"""

from __future__ import annotations

import json
from typing import Iterator

from analyzer.analyses.triage import patterns as P
from analyzer.analyses.triage.engine import Context, Finding, Rule, na, rule

F = "supplychain"


def _container_texts(c) -> dict[str, str]:  # type: ignore[no-untyped-def]
    cfg = c.config.get("Config") or {}
    out = {"Path + Args": " ".join(c.command())}
    if cfg.get("Entrypoint"):
        out["Config.Entrypoint"] = " ".join(map(str, cfg.get("Entrypoint") or []))
    if cfg.get("Cmd"):
        out["Config.Cmd"] = " ".join(map(str, cfg.get("Cmd") or []))
    hc = (cfg.get("Healthcheck") or {}).get("Test")
    if hc:
        out["Config.Healthcheck.Test"] = " ".join(map(str, hc))
    return out


@rule("DRA-SC-001", "Download-and-execute in container command", "high",
      ["T1105", "T1059.004", "T1610"], F, "DX-011")
def download_exec(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        for field, text in _container_texts(c).items():
            hit = P.first_match(P.DOWNLOAD_EXEC, text)
            if hit is None:
                continue
            sev = "medium" if field == "Config.Healthcheck.Test" else r.severity
            yield r.finding(c.ref, {"file": c.config_path, "field": field, "value": text[:500],
                                    "matched": hit},
                            "The container's command downloads something and executes it "
                            "(curl/wget piped to a shell, chmod +x of a download, /dev/tcp, "
                            "base64-decoded script). This is how exposed-API campaigns "
                            "(Kinsing, TeamTNT, Doki) stage their payloads; official "
                            "entrypoints rarely do it at run time.", severity=sev)
            break


@rule("DRA-SC-002", "Cryptominer indicators in container configuration", "critical", ["T1496"], F,
      "DX-012")
def miner_config(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        texts = _container_texts(c)
        texts["Config.Env"] = " ".join(c.env())
        texts["Config.Labels"] = json.dumps(c.labels())
        texts["Config.Image"] = str(na(c.row["image_ref"]) or "")
        for field, text in texts.items():
            hit = P.first_match(P.MINER, text)
            if hit is None:
                continue
            yield r.finding(c.ref, {"file": c.config_path, "field": field, "value": text[:500],
                                    "matched": hit},
                            "The container's command, environment or labels carry cryptominer "
                            "markers (stratum pool URL, --donate-level, xmrig, Monero wallet). "
                            "Cryptojacking is the most common payload on exposed Docker hosts.")
            break


def _history(ctx: Context) -> dict[str, list[tuple[int, str, str | None]]]:
    h = ctx.snap.image_history
    out: dict[str, list[tuple[int, str, str | None]]] = {}
    for iid, step, by, comment in zip(h["image_id"], h["step"], h["created_by"], h["comment"]):
        if isinstance(na(by), str):
            out.setdefault(iid, []).append((int(step), by, na(comment)))
    return out


def _own_steps(ctx: Context, iid: str, hist: dict[str, list[tuple[int, str, str | None]]]
               ) -> list[tuple[int, str, str | None]]:
    """History steps of an image that its parent image does not already have."""
    steps = hist.get(iid, [])
    img = ctx.snap.images
    parent = img[img["image_id"] == iid]["parent_id"]
    pid = na(parent.iloc[0]) if len(parent) else None
    if pid and pid in hist:
        return steps[len(hist[pid]):]
    return steps


@rule("DRA-SC-003", "Suspicious build step in image history", "high", ["T1612", "T1105"], F,
      "DX-021")
def build_steps(ctx: Context, r: Rule) -> Iterator[Finding]:
    hist = _history(ctx)
    for iid in sorted(ctx.top_level_images):
        hits = []
        for step, by, _ in hist.get(iid, []):
            m = (P.first_match(P.DOWNLOAD_EXEC, by) or P.first_match(P.BUILD_RED_FLAGS, by))
            if m:
                hits.append({"step": step, "created_by": by[:300], "matched": m})
        if not hits:
            continue
        yield r.finding(ctx.image_ref(iid), {"field": "history[].created_by", "steps": hits,
                                             "matched": [h["matched"] for h in hits]},
                        "A recorded build step of this image downloads and runs code, sets "
                        "SUID bits, or writes SSH keys, ld.so.preload or cron entries. Many "
                        "legitimate Dockerfiles pipe installers to sh — check the URL and what "
                        "the step wrote.")


@rule("DRA-SC-004", "Cryptominer in image configuration or history", "critical", ["T1496", "T1204.003"],
      F, "DX-021")
def image_miner(ctx: Context, r: Rule) -> Iterator[Finding]:
    hist = _history(ctx)
    for iid in sorted(ctx.top_level_images):
        cfg = ctx.image_configs.get(iid) or {}
        conf = cfg.get("config") or {}
        texts = {"config.Entrypoint": " ".join(map(str, conf.get("Entrypoint") or [])),
                 "config.Cmd": " ".join(map(str, conf.get("Cmd") or [])),
                 "config.Env": " ".join(map(str, conf.get("Env") or []))}
        for step, by, _ in hist.get(iid, []):
            texts[f"history[{step}].created_by"] = by
        for field, text in texts.items():
            hit = P.first_match(P.MINER, text)
            if hit:
                yield r.finding(ctx.image_ref(iid), {"field": field, "value": text[:500],
                                                     "matched": hit},
                                "The image's entrypoint, command, environment or build history "
                                "runs a cryptominer (example: ohldm/nginx with ENTRYPOINT "
                                "./xmrig --url=stratum+tcp://…). Every container from it mines.")
                break


def _built_here(ctx: Context, iid: str, hist: dict[str, list[tuple[int, str, str | None]]]
                ) -> list[str]:
    img = ctx.snap.images[ctx.snap.images["image_id"] == iid].iloc[0]
    why = []
    if na(img["parent_id"]):
        why.append("imagedb metadata 'parent' (classic builder or commit on this host)")
    if bool(na(img["built_locally"])):
        why.append("imagedb metadata builtLocally")
    if any((c or "") == "buildkit.dockerfile.v0" or by.endswith("# buildkit")
           for _, by, c in hist.get(iid, [])):
        why.append("BuildKit history (buildkit.dockerfile.v0)")
    if why and any("@" in ref for ref in ctx.image_names.get(iid, [])):
        return []  # has a registry digest: pulled (or pushed) after all
    return why


@rule("DRA-SC-005", "Image built on this host", "medium", ["T1612"], F, "DX-020")
def built_on_host(ctx: Context, r: Rule) -> Iterator[Finding]:
    hist = _history(ctx)
    imgs = ctx.snap.images.set_index("image_id")
    for iid in sorted(ctx.top_level_images):
        if _is_commit(ctx.image_configs.get(iid) or {}):
            continue  # reported by DRA-SC-006
        why = _built_here(ctx, iid, hist)
        if not why:
            continue
        yield r.finding(ctx.image_ref(iid), {"file": na(imgs.loc[iid, "config_path"]),
                                             "field": "imagedb metadata / history", "why": why,
                                             "last_tag_at": na(imgs.loc[iid, "last_tag_at"]),
                                             "used_by": _users(ctx, iid)},
                        "This image was built on the seized host (not pulled from a registry): "
                        f"{'; '.join(why)}. Attackers with API access build images on the host "
                        "to avoid registry scanning (T1612). Normal on developer and CI hosts; "
                        "compare lastUpdated with the incident window.")


def _is_commit(cfg: dict) -> bool:  # type: ignore[type-arg]
    cmd = " ".join(map(str, (cfg.get("container_config") or {}).get("Cmd") or []))
    return bool(cfg.get("container")) and "#(nop)" not in cmd and not cmd.startswith("/bin/sh -c ")


def _users(ctx: Context, iid: str) -> list[str]:
    return sorted(c.name for c in ctx.containers if na(c.row["image_id"]) == iid)


@rule("DRA-SC-006", "Image committed from a container", "medium", ["T1525", "T1612"], F, "DX-025")
def committed(ctx: Context, r: Rule) -> Iterator[Finding]:
    imgs = ctx.snap.images.set_index("image_id")
    for iid in sorted(ctx.top_level_images):
        cfg = ctx.image_configs.get(iid) or {}
        if not _is_commit(cfg):
            continue
        src = str(cfg.get("container"))
        source = ctx.container_by_id(src)
        yield r.finding(ctx.image_ref(iid), {"file": na(imgs.loc[iid, "config_path"]),
                                             "field": "container / container_config.Cmd",
                                             "container": src,
                                             "container_name": source.name if source else None,
                                             "container_cmd": (cfg.get("container_config") or {})
                                             .get("Cmd"),
                                             "comment": na(imgs.loc[iid, "comment"]),
                                             "author": na(imgs.loc[iid, "author"])},
                        "The image was made with docker commit from a container" +
                        (f" ({source.name}, still present)" if source else
                         " that is no longer present") + ": whatever was changed inside that "
                        "container (dropped tools, backdoors) is now baked into an image that "
                        "can be re-run or pushed (T1525).")


@rule("DRA-SC-007", "Container runs an untagged image", "medium", ["T1610"], F, "DX-009")
def untagged_in_use(ctx: Context, r: Rule) -> Iterator[Finding]:
    for c in ctx.containers:
        iid = str(na(c.row["image_id"]) or "")
        ref = str(na(c.row["image_ref"]) or "")
        bare = ref.startswith("sha256:") or (len(ref) >= 12 and all(ch in "0123456789abcdef"
                                                                    for ch in ref))
        if iid and (ctx.image_names.get(iid) and not bare):
            continue
        if not iid:
            continue
        yield r.finding(c.ref, {"file": c.config_path, "field": "Image / Config.Image",
                                "image_id": iid, "image_ref": ref,
                                "tags_now": ctx.image_names.get(iid, [])},
                        "The container runs an image that has no tag (dangling) or was named by "
                        "bare id. Attackers run images by id after removing the tag, or the tag "
                        "was re-pointed by a later pull — either way the container's image is "
                        "not what its name suggests.")


@rule("DRA-SC-008", "Known-bad image name", "critical", ["T1204.003", "T1610"], F, "DX-023")
def bad_image(ctx: Context, r: Rule) -> Iterator[Finding]:
    tags = ctx.snap.image_tags
    for iid, repo, ref in zip(tags["image_id"], tags["repository"], tags["reference"]):
        name = str(na(repo) or "")
        short = name[len("docker.io/"):] if name.startswith("docker.io/") else name
        if short in P.BAD_IMAGES or short.startswith(P.BAD_IMAGE_PREFIXES):
            yield r.finding(ctx.image_ref(iid), {"file": "image/<driver>/repositories.json",
                                                 "field": "reference", "value": ref,
                                                 "matched": short, "used_by": _users(ctx, iid)},
                            f"The image repository {short} appears in public reports of "
                            "malicious Docker Hub images (cryptominers, Graboid worm, Commando "
                            "Cat).")
    for c in ctx.containers:
        ref = str(na(c.row["image_ref"]) or "")
        short = ref.split("@")[0].rsplit(":", 1)[0] if ":" in ref.rpartition("/")[2] else \
            ref.split("@")[0]
        short = short[len("docker.io/"):] if short.startswith("docker.io/") else short
        if short in P.BAD_IMAGES or short.startswith(P.BAD_IMAGE_PREFIXES):
            yield r.finding(c.ref, {"file": c.config_path, "field": "Config.Image",
                                    "value": ref, "matched": short},
                            f"The container was created from {short}, a repository named in "
                            "public reports of malicious images.")
