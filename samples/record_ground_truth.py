#!/usr/bin/env python3
"""Record Engine API ground truth from a running dockerd (stdlib only).

Used by samples/make_samples.sh right before the live data-root is tarred.

    record_ground_truth.py api --socket /run/x/docker.sock --out DIR \
        --data-root /abs/var/lib/docker --driver overlay2
    record_ground_truth.py finalize --out DIR --archive FILE --tar-command CMD \
        [--compress-command CMD]

Options used only by make_containerd_samples.sh (containerd image store):
`api --api-version 1.45` prefixes every path with /v1.45 (and also tries
`/images/json?all=1&manifests=1`, saved as images-manifests.json only when the
daemon honours it); `--image-store/--containerd-*` add keys to
acquisition.json; `finalize --key-prefix containerd_` records a second archive
under prefixed keys; `finalize --elapsed-seconds N` records the run time.
Without them the output is exactly the classic one.

`api` saves one pretty-printed JSON file per GET (the daemon's document,
key order preserved, re-indented only) and a first acquisition.json;
`finalize` adds the archive's sha256/size and the tar command to it.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import socket
import sys
import urllib.parse


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=300):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class HTTPError(RuntimeError):
    def __init__(self, msg, status):
        super().__init__(msg)
        self.status = status


class Engine:
    def __init__(self, sock_path, api_version=None):
        self.sock_path = sock_path
        self.prefix = f"/v{api_version}" if api_version else ""

    def get_raw(self, path):
        path = self.prefix + path
        conn = UnixHTTPConnection(self.sock_path)
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise HTTPError(f"GET {path}: HTTP {resp.status}: {body[:500]!r}",
                                resp.status)
            return body
        finally:
            conn.close()

    def get_json(self, path):
        return json.loads(self.get_raw(path))


def dump(out_dir, name, doc):
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def q(s):
    return urllib.parse.quote(s, safe="")


def cmd_api(a):
    os.makedirs(a.out, exist_ok=True)
    eng = Engine(a.socket, a.api_version)
    recorded_at = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")

    version = eng.get_json("/version")
    dump(a.out, "version.json", version)
    dump(a.out, "info.json", eng.get_json("/info"))

    images = eng.get_json("/images/json?all=1")
    dump(a.out, "images.json", images)
    manifests_note = None
    if a.api_version:
        try:
            with_manifests = eng.get_json("/images/json?all=1&manifests=1")
        except HTTPError as e:
            if e.status != 400:
                raise
            manifests_note = f"HTTP 400: {e}"
        else:
            if any("Manifests" in i for i in with_manifests):
                dump(a.out, "images-manifests.json", with_manifests)
                manifests_note = "images-manifests.json"
            else:
                manifests_note = ("parameter ignored by API %s (no Manifests field); "
                                  "not saved" % a.api_version)
    for img in images:
        iid = img["Id"]
        short = iid.split(":", 1)[-1][:12]
        dump(a.out, f"image-{short}.json", eng.get_json(f"/images/{q(iid)}/json"))
        dump(a.out, f"history-{short}.json",
             eng.get_json(f"/images/{q(iid)}/history"))

    containers = eng.get_json("/containers/json?all=1&size=1")
    dump(a.out, "containers.json", containers)
    for c in containers:
        name = c["Names"][0].lstrip("/")
        cid = c["Id"]
        dump(a.out, f"container-{name}.json",
             eng.get_json(f"/containers/{cid}/json?size=1"))
        dump(a.out, f"changes-{name}.json",
             eng.get_json(f"/containers/{cid}/changes"))

    dump(a.out, "volumes.json", eng.get_json("/volumes"))
    networks = eng.get_json("/networks")
    dump(a.out, "networks.json", networks)
    for n in networks:
        dump(a.out, f"network-{n['Name']}.json",
             eng.get_json(f"/networks/{n['Id']}"))
    dump(a.out, "system-df.json", eng.get_json("/system/df"))

    acq = {
        "recorded_at": recorded_at,
        "data_root": os.path.abspath(a.data_root),
        "driver": a.driver,
        "dockerd_version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
    }
    if a.api_version:
        acq["requested_api_version"] = a.api_version
        acq["images_manifests"] = manifests_note
    if a.image_store:
        acq["image_store"] = a.image_store
    if a.containerd_mode:
        acq["containerd_mode"] = a.containerd_mode
    if a.containerd_root:
        acq["containerd_root"] = a.containerd_root
    if a.containerd_root_abs:
        acq["containerd_root_abs"] = os.path.abspath(a.containerd_root_abs)
    if a.image_store == "containerd":
        comps = {c.get("Name"): c.get("Version") for c in version.get("Components") or []}
        acq["containerd_version"] = a.containerd_version or comps.get("containerd")
    dump(a.out, "acquisition.json", acq)
    print(f"recorded {len(images)} images, {len(containers)} containers, "
          f"{len(networks)} networks into {a.out}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cmd_finalize(a):
    path = os.path.join(a.out, "acquisition.json")
    with open(path, encoding="utf-8") as f:
        acq = json.load(f)
    if a.elapsed_seconds is not None:
        acq["elapsed_seconds"] = a.elapsed_seconds
    if not a.archive:
        dump(a.out, "acquisition.json", acq)
        return
    if not a.tar_command:
        raise SystemExit("--archive needs --tar-command")
    p = a.key_prefix
    if p:
        # a second archive (containerd root): prefixed keys, same meaning
        acq[p + "tar_command"] = a.tar_command
        if a.compress_command:
            acq[p + "compress_command"] = a.compress_command
        if a.tar_exit_code is not None:
            acq[p + "tar_exit_code"] = a.tar_exit_code
        acq[p + "archive"] = os.path.basename(a.archive)
        acq[p + "archive_sha256"] = sha256_file(a.archive)
        acq[p + "archive_size"] = os.path.getsize(a.archive)
        dump(a.out, "acquisition.json", acq)
        return
    h = hashlib.sha256()
    with open(a.archive, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    acq["tar_command"] = a.tar_command
    if a.compress_command:
        acq["compress_command"] = a.compress_command
    if a.tar_exit_code is not None:
        acq["tar_exit_code"] = a.tar_exit_code
    acq["archive"] = os.path.basename(a.archive)
    acq["archive_sha256"] = h.hexdigest()
    acq["archive_size"] = os.path.getsize(a.archive)
    dump(a.out, "acquisition.json", acq)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pa = sub.add_parser("api")
    pa.add_argument("--socket", required=True)
    pa.add_argument("--out", required=True)
    pa.add_argument("--data-root", required=True)
    pa.add_argument("--driver", required=True)
    pa.add_argument("--api-version", help="e.g. 1.45: request /v1.45/... paths")
    pa.add_argument("--image-store", help="e.g. containerd (added to acquisition.json)")
    pa.add_argument("--containerd-mode", help="managed | system")
    pa.add_argument("--containerd-root", help="containerd root as a path inside the archive")
    pa.add_argument("--containerd-root-abs", help="containerd root on the acquiring host")
    pa.add_argument("--containerd-version")
    pf = sub.add_parser("finalize")
    pf.add_argument("--out", required=True, help="dir holding acquisition.json")
    pf.add_argument("--archive")
    pf.add_argument("--tar-command")
    pf.add_argument("--key-prefix", default="",
                    help="record this archive under prefixed keys (second archive)")
    pf.add_argument("--elapsed-seconds", type=int)
    pf.add_argument("--compress-command")
    pf.add_argument("--tar-exit-code", type=int)
    a = p.parse_args(argv)
    {"api": cmd_api, "finalize": cmd_finalize}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
