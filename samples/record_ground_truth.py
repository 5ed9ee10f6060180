#!/usr/bin/env python3
"""Record Engine API ground truth from a running dockerd (stdlib only).

Used by samples/make_samples.sh right before the live data-root is tarred.

    record_ground_truth.py api --socket /run/x/docker.sock --out DIR \
        --data-root /abs/var/lib/docker --driver overlay2
    record_ground_truth.py finalize --out DIR --archive FILE --tar-command CMD \
        [--compress-command CMD]

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


class Engine:
    def __init__(self, sock_path):
        self.sock_path = sock_path

    def get_raw(self, path):
        conn = UnixHTTPConnection(self.sock_path)
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:500]!r}")
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
    eng = Engine(a.socket)
    recorded_at = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")

    version = eng.get_json("/version")
    dump(a.out, "version.json", version)
    dump(a.out, "info.json", eng.get_json("/info"))

    images = eng.get_json("/images/json?all=1")
    dump(a.out, "images.json", images)
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
    dump(a.out, "acquisition.json", acq)
    print(f"recorded {len(images)} images, {len(containers)} containers, "
          f"{len(networks)} networks into {a.out}")


def cmd_finalize(a):
    path = os.path.join(a.out, "acquisition.json")
    with open(path, encoding="utf-8") as f:
        acq = json.load(f)
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
    pf = sub.add_parser("finalize")
    pf.add_argument("--out", required=True, help="dir holding acquisition.json")
    pf.add_argument("--archive", required=True)
    pf.add_argument("--tar-command", required=True)
    pf.add_argument("--compress-command")
    pf.add_argument("--tar-exit-code", type=int)
    a = p.parse_args(argv)
    {"api": cmd_api, "finalize": cmd_finalize}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
