"""Which members' bytes are kept during the pass, and the member index.

The data-root prefix is only known after the pass, so capture rules match a
path *suffix* anchored on Docker's own directory names (``image/<drv>/...``,
``containers/<id>/...``) under any prefix. Captured files are small metadata
(JSON, ids, bbolt databases); each is capped at :data:`MAX_CAPTURE`. Logs are
not captured: they are decoded while streaming (see ``analyzer.pipeline``).

:class:`FileIndex` keeps one row per member in columnar batches converted to
Arrow every :data:`BATCH` rows and then compressed (:mod:`analyzer.sources.packed`),
so memory grows with packed metadata only and no per-member Python object outlives
its batch.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa

from analyzer.allocators import trim
from analyzer.sources.base import Prefilter
from analyzer.sources.member import CHAR, Member
from analyzer.sources.packed import PackedTable
from analyzer.textcols import path_keys

HEX64 = r"[0-9a-f]{64}"
#: the largest metadata file we keep in memory (image configs with long histories
#: are a few MB; anything bigger is hostile or not metadata)
MAX_CAPTURE = 64 << 20

#: regexes on the full member path; a match means "keep the bytes"
CAPTURE = re.compile(
    r"(?:^|/)(?:"
    r"image/[^/]+/repositories\.json"
    rf"|image/[^/]+/imagedb/content/sha256/{HEX64}"
    rf"|image/[^/]+/imagedb/metadata/sha256/{HEX64}/(?:parent|lastUpdated|builtLocally)"
    r"|image/[^/]+/layerdb/sha256/[^/]+/(?:diff|size|cache-id|parent|descriptor\.json)"
    r"|image/[^/]+/layerdb/mounts/[^/]+/(?:mount-id|init-id|parent)"
    r"|image/[^/]+/distribution/(?:diffid-by-digest|v2metadata-by-diffid)/sha256/[0-9a-f]{64}"
    r"|containers/[0-9a-f]{64}/(?:config\.v2\.json|config\.json|hostconfig\.json)"
    r"|volumes/metadata\.db|volumes/[^/]+/opts\.json"
    r"|network/files/local-kv\.db"
    r"|(?:overlay2|fuse-overlayfs)/[^/]+/(?:link|lower)"
    r"|overlay/[^/]+/lower-id"
    r"|aufs/layers/[^/]+"
    r"|engine-id|repositories-[a-z0-9-]+|\.migration-v1-images\.json"
    rf"|graph/{HEX64}/(?:json|layersize|parent|checksum)"
    r"|devicemapper/metadata/[^/]+"
    r"|buildkit/(?:containerd-[a-z0-9_-]+/)?[a-z_0-9]+\.db"
    # containerd roots (containerd image store): metadata, snapshotter index, JSON blobs
    r"|io\.containerd\.metadata\.v1\.bolt/meta\.db"
    r"|io\.containerd\.snapshotter\.v1\.[^/]+/metadata\.db"
    rf"|io\.containerd\.content\.v1\.content/blobs/sha256/{HEX64}"
    r")$")

#: content-store blobs: only JSON documents (indexes, manifests, configs) are kept;
#: layer blobs (gzip, zstd or tar) and anything larger than this are only hashed
BLOB = re.compile(rf"(?:^|/)io\.containerd\.content\.v1\.content/blobs/sha256/{HEX64}$")
MAX_BLOB_CAPTURE = 8 << 20

#: last path components that can start a capture match (see :data:`CAPTURE_NAMES`)
_NAMES = {"repositories.json", "parent", "lastUpdated", "builtLocally", "diff", "size",
          "cache-id", "descriptor.json", "mount-id", "init-id", "config.v2.json", "config.json",
          "hostconfig.json", "metadata.db", "opts.json", "local-kv.db", "link", "lower",
          "lower-id", "engine-id", "json", "layersize", "checksum",
          ".migration-v1-images.json", "meta.db"}

#: container log files (decoded while streaming, never captured)
LOG = re.compile(
    rf"(?:^|/)containers/({HEX64})/(?:{HEX64}-json\.log(?:\.\d+)?(?:\.gz)?"
    r"|local-logs/container\.log(?:\.\d+)?(?:\.gz)?|container-cached\.log(?:\.\d+)?(?:\.gz)?)$")


#: the paths :data:`CAPTURE` can match (its cheap first test)
CAPTURE_NAMES = Prefilter(names=frozenset(_NAMES), name_length=64,
                          prefixes=("repositories-",), suffixes=(".db",),
                          path_infixes=("aufs/layers/", "devicemapper/metadata/"))
#: the paths :data:`LOG` can match
LOG_NAMES = Prefilter(infixes=(".log",))
#: every path :func:`wants_capture` or :func:`log_container` looks at
PREFILTER = CAPTURE_NAMES | LOG_NAMES


def wants_capture(path: str, name: str) -> bool:
    """True if the bytes of this member should be kept."""
    return CAPTURE_NAMES.passes(path, name) and CAPTURE.search(path) is not None


def capture_limit(path: str) -> int:
    """The most bytes of this captured member to keep (larger ones are not kept)."""
    return MAX_BLOB_CAPTURE if BLOB.search(path) else MAX_CAPTURE


def keep_captured(path: str, data: bytes) -> bool:
    """False for captured bytes that are not metadata after all (a layer blob)."""
    return data.lstrip()[:1] == b"{" if BLOB.search(path) else True


def log_container(path: str, name: str) -> str | None:
    """The container id if this member is one of its log files."""
    if not LOG_NAMES.passes(path, name):
        return None
    m = LOG.search(path)
    return m.group(1) if m else None


#: rows per Arrow batch: large enough to amortise conversion, small enough that
#: the Python lists of one batch stay a few MB
BATCH = 65536
#: rows of the fast path's column pieces merged into one packed batch: the pieces and
#: their merged copy are held together until packed, so this bounds that transient
#: (~220 B/row each) while keeping batches large enough to compress well
PACK_ROWS = 16384

_SCHEMA = pa.schema([
    ("path", pa.string()), ("kind", pa.string()), ("size", pa.int64()), ("mode", pa.int64()),
    ("uid", pa.int64()), ("gid", pa.int64()), ("mtime_ns", pa.int64()),
    ("atime_ns", pa.int64()), ("ctime_ns", pa.int64()), ("linkname", pa.string()),
    ("devmajor", pa.int64()), ("devminor", pa.int64()), ("xattrs_json", pa.string()),
    ("whiteout", pa.bool_()), ("opaque", pa.bool_()), ("sha256", pa.string()),
])

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def xattrs_json(xattrs: dict[str, bytes]) -> str | None:
    """Extended attributes as JSON text; binary values as ``base64:...``."""
    if not xattrs:
        return None
    import base64

    out = {}
    for k, v in xattrs.items():
        try:
            out[k] = v.decode("utf-8")
            if not out[k].isprintable():
                raise UnicodeDecodeError("utf-8", v, 0, 1, "unprintable")
        except UnicodeDecodeError:
            out[k] = "base64:" + base64.b64encode(v).decode()
    return json.dumps(out, sort_keys=True)


class FileIndex:
    """The member index, accumulated in Arrow batches.

    Rows come one at a time (:meth:`add`) or as whole columns (:meth:`add_columns`,
    from the tar reader's fast path); both keep archive order. Rows are converted
    every :data:`BATCH` rows, column pieces merged and packed every :data:`PACK_ROWS`.
    """

    def __init__(self) -> None:
        self._packed = PackedTable(_SCHEMA)  # full batches, compressed
        self._keys: list[np.ndarray] = []  # textcols.path_keys of each packed batch
        self._rows: dict[str, list] = {f.name: [] for f in _SCHEMA}
        self._pending: list[pa.RecordBatch] = []  # converted pieces not yet merged
        self._pending_rows = 0

    def add_columns(self, columns: dict[str, pa.Array], sha256: list | pa.Array | None = None
                    ) -> None:
        """Append many rows given as columns (every schema field but ``sha256``)."""
        self._convert_rows()
        n = len(columns["path"])
        sha = pa.nulls(n, pa.string()) if sha256 is None else pa.array(sha256, pa.string())
        arrays = [columns[f.name] if f.name != "sha256" else sha for f in _SCHEMA]
        self._pending.append(pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA))
        self._pending_rows += n
        if self._pending_rows >= PACK_ROWS:
            self._merge()

    def _convert_rows(self) -> None:
        if self._rows["path"]:
            self._pending.append(pa.RecordBatch.from_pydict(self._rows, schema=_SCHEMA))
            self._pending_rows += len(self._rows["path"])
            self._rows = {f.name: [] for f in _SCHEMA}

    def _merge(self) -> None:
        if len(self._pending) == 1:
            batches = self._pending
        else:
            batches = pa.Table.from_batches(self._pending, schema=_SCHEMA
                                            ).combine_chunks().to_batches()
        for batch in batches:
            if batch.num_rows:
                self._keys.append(path_keys(batch.column(0)))
                self._packed.append(batch)
        del batches
        self._pending = []
        self._pending_rows = 0
        trim()  # the pieces just merged (and the reader's spent buffers) were freed

    def add(self, m: Member, sha256: str | None = None) -> None:
        """Append one member."""
        r = self._rows
        r["path"].append(m.path)
        r["kind"].append(m.kind)
        r["size"].append(m.size)
        r["mode"].append(m.mode)
        r["uid"].append(m.uid)
        r["gid"].append(m.gid)
        r["mtime_ns"].append(m.mtime)
        r["atime_ns"].append(m.atime)
        r["ctime_ns"].append(m.ctime)
        r["linkname"].append(m.linkname or None)
        r["devmajor"].append(m.devmajor if m.kind == CHAR or m.devmajor else None)
        r["devminor"].append(m.devminor if m.kind == CHAR or m.devminor else None)
        r["xattrs_json"].append(xattrs_json(m.xattrs))
        name = m.name
        r["whiteout"].append((m.kind == CHAR and m.devmajor == 0 and m.devminor == 0)
                             or (name.startswith(".wh.") and not name.startswith(".wh..wh.")))
        r["opaque"].append(name == ".wh..wh..opq"
                           or any(m.xattrs.get(x) == b"y" for x in OPAQUE_XATTRS))
        r["sha256"].append(sha256)
        if len(r["path"]) + self._pending_rows >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Convert the pending rows to an Arrow batch."""
        self._convert_rows()
        self._merge()

    def packed(self) -> tuple[PackedTable, np.ndarray]:
        """All rows, compressed (:mod:`analyzer.sources.packed`), and the 64-bit key of
        each row's path (:func:`~analyzer.textcols.path_keys`, taken while the batch
        was at hand: finding duplicate paths unpacks only the batches holding one);
        the index is empty afterwards."""
        self.flush()
        out, self._packed = self._packed, PackedTable(_SCHEMA)
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        self._keys = []
        return out, keys

