"""Shared pieces of the Engine API renderers: Go structs, times, durations, paths.

Reference: ``docs/engine-api.md`` §0, §3 (Config struct), §5 (HumanDuration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from analyzer.errors import FormatError
from analyzer.formats.timefmt import (GO_ZERO_TIME_NS, format_rfc3339nano,
                                      parse_rfc3339nano_tz)
from analyzer.model.values import loads_json as loads  # noqa: F401 - shared by renderers
from analyzer.render.gojson import sorted_map

ZERO_TIME = "0001-01-01T00:00:00Z"
GO_ZERO_NS = GO_ZERO_TIME_NS
DEFAULT_ROOT = "/var/lib/docker"


@dataclass(frozen=True)
class Context:
    """What the documents need that the data-root does not hold.

    Attributes:
        root: the data-root path on the seized host (paths in documents start with it).
        now_ns: the reference instant for "Up 5 minutes" (ns since the epoch).
        tz_offset: the host's UTC offset in seconds (volume CreatedAt only).
    """

    root: str = DEFAULT_ROOT
    now_ns: int = 0
    tz_offset: int = 0
    api: str = "1.41"


def api_version(snap: Any) -> str:
    """The Engine API generation the documents follow: ``1.45`` (Docker 26) for a root
    that used the containerd image store (only Docker 24+ has it), else ``1.41``
    (Docker 20.10). A graphdriver root says nothing reliable about its daemon's version."""
    return "1.45" if str(snap.meta.get("image_store") or "") == "containerd" else "1.41"


def api_at_least(api: str, version: str) -> bool:
    """True if API ``api`` is ``version`` or newer (``"1.45"`` ≥ ``"1.44"``)."""
    return tuple(map(int, api.split("."))) >= tuple(map(int, version.split(".")))


def context_for(snap: Any, at: str | None = None, root: str | None = None) -> Context:
    """The rendering context of a snapshot: recorded host root, acquisition time."""
    host_root = root or snap.meta.get("host_data_root") or DEFAULT_ROOT
    if at:
        now = pd.Timestamp(at)
        now = now.tz_localize("UTC") if now.tzinfo is None else now
    else:
        now = snap.meta.get("acquired_at")
        now = pd.Timestamp(now) if now is not None and not pd.isna(now) else pd.Timestamp.now(tz="UTC")
    return Context(root=host_root, now_ns=int(now.value), api=api_version(snap))


def go_time(raw: Any) -> str:
    """A stored RFC3339 time re-formatted like Go (trimmed fraction, own offset)."""
    if not isinstance(raw, str) or not raw:
        return ZERO_TIME
    try:
        ns, off = parse_rfc3339nano_tz(raw)
    except FormatError:
        return raw
    return format_rfc3339nano(ns, off)


def unix_seconds(raw: Any) -> int:
    """Floor of the Unix seconds of a stored time; the zero time when absent."""
    if not isinstance(raw, str) or not raw:
        return GO_ZERO_TIME_NS // 1_000_000_000
    try:
        ns, _ = parse_rfc3339nano_tz(raw)
    except FormatError:
        return GO_ZERO_TIME_NS // 1_000_000_000
    return ns // 1_000_000_000


def time_ns(raw: Any) -> int:
    """ns since the epoch of a stored time; the Go zero time when absent/invalid."""
    if not isinstance(raw, str) or not raw:
        return GO_ZERO_TIME_NS
    try:
        return parse_rfc3339nano_tz(raw)[0]
    except FormatError:
        return GO_ZERO_TIME_NS


def human_duration(ns: int) -> str:
    """go-units ``HumanDuration``: "Less than a second", "About a minute", "3 hours"..."""
    max_ns = (1 << 63) - 1
    ns = max(-max_ns, min(max_ns, ns))
    seconds = int(ns / 1e9) if ns >= 0 else -int(-ns / 1e9)
    minutes = int(ns / 6e10) if ns >= 0 else 0
    hours = int(ns / 3.6e12 + 0.5)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(ns / 3.6e12) // 24 // 365} years"


def _strlist(value: Any) -> Any:
    """Go's strslice: a bare string becomes a one-element list."""
    if isinstance(value, str):
        return [value]
    return value


def _health(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
        if value.get(key):
            out[key] = value[key]
    return out


def go_config(cfg: Any) -> dict[str, Any] | None:
    """A container Config object re-encoded in Go struct order (API 1.41)."""
    if cfg is None:
        return None
    c = cfg if isinstance(cfg, dict) else {}
    out: dict[str, Any] = {
        "Hostname": c.get("Hostname") or "", "Domainname": c.get("Domainname") or "",
        "User": c.get("User") or "", "AttachStdin": bool(c.get("AttachStdin")),
        "AttachStdout": bool(c.get("AttachStdout")), "AttachStderr": bool(c.get("AttachStderr")),
    }
    if c.get("ExposedPorts"):
        out["ExposedPorts"] = {k: {} for k in sorted_map(c["ExposedPorts"])}
    out.update({"Tty": bool(c.get("Tty")), "OpenStdin": bool(c.get("OpenStdin")),
                "StdinOnce": bool(c.get("StdinOnce")), "Env": c.get("Env"),
                "Cmd": _strlist(c.get("Cmd"))})
    health = _health(c.get("Healthcheck"))
    if health is not None:
        out["Healthcheck"] = health
    if c.get("ArgsEscaped"):
        out["ArgsEscaped"] = True
    vols = c.get("Volumes")
    out.update({"Image": c.get("Image") or "",
                "Volumes": {k: {} for k in sorted_map(vols)} if isinstance(vols, dict) else None,
                "WorkingDir": c.get("WorkingDir") or "",
                "Entrypoint": _strlist(c.get("Entrypoint"))})
    if c.get("NetworkDisabled"):
        out["NetworkDisabled"] = True
    if c.get("MacAddress"):
        out["MacAddress"] = c["MacAddress"]
    out.update({"OnBuild": c.get("OnBuild"), "Labels": sorted_map(c.get("Labels"))})
    if c.get("StopSignal"):
        out["StopSignal"] = c["StopSignal"]
    if c.get("StopTimeout") is not None:
        out["StopTimeout"] = c["StopTimeout"]
    if c.get("Shell"):
        out["Shell"] = _strlist(c["Shell"])
    return out


def familiar(ref: str) -> str:
    """A reference in familiar form (``docker.io/library/x`` → ``x``)."""
    if ref.startswith("docker.io/library/"):
        return ref[len("docker.io/library/"):]
    if ref.startswith("docker.io/"):
        return ref[len("docker.io/"):]
    return ref


def normalized(ref: str) -> str:
    """A familiar reference in the fully-qualified form the daemon sorts by."""
    first = ref.split("/", 1)[0]
    if "/" not in ref or ("." not in first and ":" not in first and first != "localhost"):
        ref = ("docker.io/library/" if "/" not in ref else "docker.io/") + ref
    return ref


def platform_fields(cfg: dict[str, Any]) -> dict[str, Any]:
    """Image inspect ``Variant`` (when set), ``Os`` and ``OsVersion`` (when set), in order."""
    out: dict[str, Any] = {}
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    out["Os"] = cfg.get("os") or "linux"
    if cfg.get("os.version"):
        out["OsVersion"] = cfg["os.version"]
    return out


def rootfs_doc(cfg: dict[str, Any]) -> dict[str, Any]:
    """Image inspect ``RootFS`` from a config's ``rootfs``."""
    rootfs = cfg.get("rootfs") if isinstance(cfg.get("rootfs"), dict) else {}
    out: dict[str, Any] = {"Type": rootfs.get("type") or ""}
    if rootfs.get("diff_ids"):
        out["Layers"] = rootfs["diff_ids"]
    return out


def history_docs(snap: Any, image: Any, images: pd.DataFrame,
                 tags_of: Callable[[str], list[str]]) -> list[dict[str, Any]]:
    """``GET /images/{id}/history``: the config history newest first; ``Id``/``Tags``
    follow the parent chain through ``images`` (indexed by image id) from ``image``,
    both stores alike; ``tags_of`` gives an image's tags in the store's order."""
    hist = snap.tables["image_history"]
    rows = hist[hist["image_id"] == image["image_id"]].sort_values("step")
    out: list[dict[str, Any]] = []
    for r in rows.itertuples():
        size = 0 if r.empty_layer or pd.isna(r.layer_size_bytes) else int(r.layer_size_bytes)
        out.insert(0, {"Comment": "" if pd.isna(r.comment) else r.comment,
                       "Created": unix_seconds(r.created_raw if not pd.isna(r.created_raw) else None),
                       "CreatedBy": "" if pd.isna(r.created_by) else r.created_by,
                       "Id": "<missing>", "Size": size, "Tags": None})
    cur: str | None = image["image_id"]
    for item in out:
        if cur is None or cur not in images.index:
            break
        item["Id"] = cur
        item["Tags"] = tags_of(cur) or None
        parent = images.loc[cur, "parent_id"]
        cur = None if pd.isna(parent) or not parent else str(parent)
    return out
