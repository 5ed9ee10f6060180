"""Fast path of the tar reader: runs of ordinary members decoded a batch at a time.

Why a hand-written scanner next to the exact reader in :mod:`~analyzer.sources.tarstream`:
that reader spends 30–70 µs of Python per member (header decode, ten ``num`` calls,
pax parsing, times, path cleaning) and made a full ingest 11× slower than GNU
``tar -tvf`` at 2·10^5 members (``benchmarks/README.md``). Here the only per-header
Python is the walk (typeflag, size field, offset arithmetic); the header fields of a
whole buffer of members are decoded at once with numpy over a gathered ``(N, 512)``
array, the pax records of all members with one regular-expression pass over their
concatenated payloads, and paths are built, cleaned and checked with Arrow compute.

The walk and decode have a compiled twin, ``_ctarscan.c`` (built by ``setup.py``
when a C compiler is present; :func:`scan` picks it): the numpy decode still cost
~15 µs/member and the walk ~3.5 µs, against ~10 µs/member for all of GNU
``tar -tvf``; the C code does both in ~0.7 µs. The numpy code stays as the fallback
and as the reference the tests hold the C code to.

The fast path only *accepts*; it never decides anything the exact reader would
report. A member is accepted only when every one of its headers has a valid
checksum, every numeric field it needs is plain octal (or, for pax values, plain
decimal), its pax records are well formed with keys among :data:`PAX_KEYS`, its
path and link are ASCII and already clean (no absolute path, no ``.``/``..``
component, no ``//``), and it is not sparse, global-pax, device-of-unknown-kind
or oversized. Anything else — and everything after a damaged header — goes to
the exact per-member code, so every behaviour and issue report of the reader is
unchanged; ``tests/sources/test_tarscan.py`` checks both paths give identical
members and index rows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from typing import Any, Callable, Iterator

from analyzer.textcols import ranges
from analyzer.sources.member import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK, Member

try:  # the compiled twin of walk + decode, built by setup.py where a C compiler exists
    from analyzer.sources import _ctarscan
except ImportError:  # pragma: no cover - installed without a compiler
    _ctarscan = None

#: use the compiled scanner when it is built; ``DRA_TARSCAN=numpy`` forces the numpy code
COMPILED = _ctarscan is not None and os.environ.get("DRA_TARSCAN", "c") != "numpy"

#: extension headers larger than this are left to the exact reader
MAX_EXT = 1 << 20
#: kinds by code; the code of a typeflag comes from :data:`_FLAG_CODE`
KIND_NAMES = (FILE, HARDLINK, SYMLINK, CHAR, BLOCK, DIR, FIFO)
K_FILE, K_HARDLINK, K_SYMLINK, K_CHAR, K_BLOCK, K_DIR, K_FIFO = range(7)
_FLAG_CODE = np.full(256, -1, np.int8)
for _flag, _code in ((b"0", K_FILE), (b"\x00", K_FILE), (b"7", K_FILE), (b"1", K_HARDLINK),
                     (b"2", K_SYMLINK), (b"3", K_CHAR), (b"4", K_BLOCK), (b"5", K_DIR),
                     (b"6", K_FIFO)):
    _FLAG_CODE[_flag[0]] = _code
#: typeflags of members the walk accepts
_FAST_FLAGS = frozenset(b"01234567\x00")
_X, _L, _K = ord("x"), ord("L"), ord("K")

#: pax keys the fast path understands (others — xattrs, sparse, size, ... — are exact-path)
PAX_KEYS = {b"path": 0, b"linkpath": 1, b"mtime": 2, b"atime": 3, b"ctime": 4, b"uid": 5,
            b"gid": 6, b"uname": 7, b"gname": 8}
P_PATH, P_LINK, P_MTIME, P_ATIME, P_CTIME, P_UID, P_GID = range(7)
#: one pax record whose value holds no newline (a value with one fails the length check)
_PAX_RE = re.compile(rb"([0-9]+) ([^=\n]*)=([^\n]*)\n")
_AR = np.arange(512, dtype=np.int64)
#: a cleaned path is rejected if it is empty, absolute, has ``//`` or a ``.``/``..`` part
_BAD_PATH = r"^$|^/|//|(?:^|/)\.\.?(?:/|$)"


@dataclass
class Walk:
    """Header positions of a run of complete member chains in one buffer."""

    chains: list[int]  # offset of the first header of each member's chain
    headers: list[int]  # offset of each member's own header
    sizes: list[int]  # stored size of each member (from its header)
    all_headers: list[int]  # every header (extension headers too), in order
    owner: list[int]  # member index of each entry of all_headers
    ext: list[tuple[int, int, int, int]]  # (member, typeflag, data offset, size) of x/L/K
    stop: int  # where the walk stopped: the chain start of the first member not walked


def walk(buf: bytes, pos: int, end: int, limit: int = 1 << 16) -> Walk:
    """Follow headers from ``pos`` while they look ordinary and fit before ``end``.

    The minimum of Python per header: typeflag, size field, offset arithmetic. Stops
    (without consuming it) at the chain of the first member that is not a plain
    ustar/pax/GNU-long-name member, whose number field is not plain octal, or
    whose data does not fit in the buffer. Checksums are verified later, in bulk.
    """
    chains: list[int] = []
    headers: list[int] = []
    sizes: list[int] = []
    allh: list[int] = []
    owner: list[int] = []
    ext: list[tuple[int, int, int, int]] = []
    fast = _FAST_FLAGS
    n = 0
    start = o = pos
    while n < limit and o + 512 <= end:
        tf = buf[o + 156]
        f = buf[o + 124:o + 136]
        if f[11] != 0 and f[11] != 32:
            break
        try:
            size = int(f[:11], 8)
        except ValueError:  # base-256, a NUL inside, a zero block (end of archive)
            break
        if size < 0:
            break
        nxt = o + 512 + ((size + 511) & -512)
        if nxt > end:
            break
        if tf == _X or tf == _L or tf == _K:
            if size > MAX_EXT:
                break
            allh.append(o)
            owner.append(n)
            ext.append((n, tf, o + 512, size))
            o = nxt
            continue
        if tf not in fast:
            break
        allh.append(o)
        owner.append(n)
        chains.append(start)
        headers.append(o)
        sizes.append(size)
        n += 1
        o = start = nxt
    if len(owner) > len(headers):  # drop the extension headers of an unfinished chain
        while owner and owner[-1] == n:
            owner.pop()
            allh.pop()
        while ext and ext[-1][0] == n:
            ext.pop()
    return Walk(chains, headers, sizes, allh, owner, ext, start)


_POW8 = {w: (8 ** np.arange(w - 1, -1, -1, dtype=np.int64)) for w in range(1, 13)}


def _octal(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(N, w)`` numeric fields; ``ok`` only where the text is plain octal.

    Matches :func:`analyzer.formats.tarheader.num` wherever ``ok``: the text up to
    the first NUL, spaces stripped, octal digits only (empty means 0). The usual
    ``%0*o`` + NUL/space layout is decoded with one product; other rows in detail.
    """
    n, w = f.shape
    digits = f[:, :w - 1]
    term = f[:, w - 1]
    simple = ((digits >= 48) & (digits <= 55)).all(1) & ((term == 0) | (term == 32))
    vals = (digits.astype(np.int64) - 48) @ _POW8[w - 1]
    if simple.all():
        return vals, simple
    rest = ~simple
    v2, ok2 = _octal_slow(f[rest])
    vals[rest] = v2
    simple[rest] = ok2
    return vals, simple


def _octal_slow(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_octal` for rows in any layout."""
    n, w = f.shape
    col = _AR[:w]
    nul = f == 0
    first_nul = np.where(nul.any(1), nul.argmax(1), w)
    inr = col < first_nul[:, None]
    dig = (f >= 48) & (f <= 55) & inr
    sp = (f == 32) & inr
    ok = ~(inr & ~dig & ~sp).any(1) & (f[:, 0] < 0x80)
    nd = dig.sum(1)
    first = dig.argmax(1)
    last = w - 1 - dig[:, ::-1].argmax(1)
    ok &= (nd == 0) | (last - first + 1 == nd)
    shift = np.clip((last[:, None] - col) * 3, 0, 62)
    vals = np.where(dig, (f.astype(np.int64) - 48) << shift, 0).sum(1)
    return vals, ok


def _decimal(a: np.ndarray, starts: np.ndarray, lens: np.ndarray, frac: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """Decode pax values ``a[start:start+len]``: digits (``frac``: ``SEC[.FRAC]`` → ns).

    ``ok`` only where the value is plain (no sign, no space) and fits in int64;
    matches :func:`~analyzer.formats.tarheader.pax_time` / ``pax_int`` there.
    """
    m = len(starts)
    if m == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    w = int(min(lens.max(initial=1), 40))
    col = _AR[:w]
    inr = col < lens[:, None]
    g = np.where(inr, a[np.minimum(starts[:, None] + col, len(a) - 1)], 0)
    isd = (g >= 48) & (g <= 57) & inr
    d = g.astype(np.int64) - 48
    ok = lens <= 40
    if frac:
        dot = (g == 46) & inr
        ndot = dot.sum(1)
        ok &= ~(inr & ~isd & ~dot).any(1) & (ndot <= 1)
        dpos = np.where(ndot == 1, dot.argmax(1), lens)
        ok &= (dpos >= 1) & (dpos <= 10)
        sec_mask = isd & (col < dpos[:, None])
        p = np.clip(dpos[:, None] - 1 - col, 0, 18)
        sec = np.where(sec_mask, d * (10 ** p), 0).sum(1)
        ok &= sec <= 9_000_000_000
        fe = col - dpos[:, None]  # 1.. for fraction digits
        fmask = isd & (fe >= 1) & (fe <= 9)
        fr = np.where(fmask, d * (10 ** np.clip(9 - fe, 0, 8)), 0).sum(1)
        return sec * 1_000_000_000 + fr, ok
    ok &= ~(inr & ~isd).any(1) & (lens >= 1) & (lens <= 18)
    p = np.clip(lens[:, None] - 1 - col, 0, 17)
    return np.where(isd, d * (10 ** p), 0).sum(1), ok


def _strings(a: np.ndarray, seg: list[tuple[np.ndarray, np.ndarray]], slash: np.ndarray
             ) -> tuple[pa.Array, np.ndarray]:
    """Build ``seg0 [+ "/" if slash] + seg1`` per row as an Arrow binary array.

    ``seg`` holds two (start, length) pairs of arrays into ``a``. Returns the array
    and whether each row is pure ASCII.
    """
    (s0, l0), (s1, l1) = seg
    sl = slash.astype(np.int64)
    lens = l0 + sl + l1
    offsets = np.zeros(len(lens) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    out = np.empty(int(offsets[-1]), np.uint8)
    o = offsets[:-1].astype(np.int64)
    out[ranges(o, l0)] = a[ranges(s0, l0)]
    out[(o + l0)[slash]] = 47
    out[ranges(o + l0 + sl, l1)] = a[ranges(s1, l1)]
    high = np.zeros(len(out) + 1, np.int64)
    np.cumsum(out >= 128, out=high[1:])
    ascii_ok = high[offsets[1:]] == high[offsets[:-1]]
    arr = pa.Array.from_buffers(pa.binary(), len(lens),
                                [None, pa.py_buffer(offsets), pa.py_buffer(out)])
    return arr, ascii_ok


def _clean(raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Cleaned paths (``./`` prefixes and trailing ``/`` dropped) and which rows are
    certainly what :func:`~analyzer.formats.tarheader.clean_path` gives."""
    s = pc.replace_substring_regex(raw, r"^(?:\./)+", "")
    s = pc.replace_substring_regex(s, r"/+$", "")
    bad = pc.match_substring_regex(s, _BAD_PATH)
    return s, ~bad.to_numpy(zero_copy_only=False)


@dataclass
class Decoded:
    """Decoded columns of the members of a :class:`Walk` (``ok`` marks the fast ones)."""

    ok: np.ndarray
    kind: np.ndarray  # codes into KIND_NAMES
    size: np.ndarray  # stored size
    data: np.ndarray  # offset of the payload in the buffer
    mode: np.ndarray
    uid: np.ndarray
    gid: np.ndarray
    mtime: np.ndarray
    atime: np.ndarray
    atime_set: np.ndarray
    ctime: np.ndarray
    ctime_set: np.ndarray
    devmajor: np.ndarray
    devminor: np.ndarray
    path: pa.Array  # binary, cleaned
    link: pa.Array  # binary (cleaned for hardlinks)
    name: pa.Array | None = None  # binary, the last component of each path (set by scan)
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # see MemberBatch.mask


def decode(buf: bytes, w: Walk) -> Decoded:
    """Decode every member of ``w`` at once; ``ok`` is False where the exact reader must."""
    a = np.frombuffer(buf, np.uint8)
    n = len(w.headers)
    hdr = np.asarray(w.headers, np.int64)
    # every header sits a multiple of 512 bytes after the first: view the buffer as
    # rows of 512 from there and take whole rows
    base = w.all_headers[0]
    rows = np.lib.stride_tricks.as_strided(a[base:], shape=((len(a) - base) // 512, 512),
                                           strides=(512, 1), writeable=False)
    blk = rows[(hdr - base) >> 9]  # (n, 512)
    # checksums of every header of every chain
    allh = np.asarray(w.all_headers, np.int64)
    every = blk if len(allh) == n else rows[(allh - base) >> 9]
    # "%06o\0 ": decode 7 bytes in the usual layout; the 8th must not change the text
    stored, cok = _octal(every[:, 148:155])
    cok &= (every[:, 154] == 0) | (every[:, 155] == 0) | (every[:, 155] == 32)
    total = every.sum(1, dtype=np.int64) - every[:, 148:156].sum(1, dtype=np.int64) + 256
    bad = ~(cok & (stored == total))
    ok = np.ones(n, bool)
    if bad.any():
        ok[np.asarray(w.owner, np.int64)[bad]] = False

    tf = blk[:, 156]
    kind = _FLAG_CODE[tf].astype(np.int64)
    size = np.asarray(w.sizes, np.int64)
    mode, ok1 = _octal(blk[:, 100:108])
    uid, ok2 = _octal(blk[:, 108:116])
    gid, ok3 = _octal(blk[:, 116:124])
    mtime, ok4 = _octal(blk[:, 136:148])
    ok &= ok1 & ok4
    posix = (blk[:, 257:263] == np.frombuffer(b"ustar\x00", np.uint8)).all(1)
    gnu = (blk[:, 257:265] == np.frombuffer(b"ustar  \x00", np.uint8)).all(1)
    dev = (kind == K_CHAR) | (kind == K_BLOCK)
    devmajor = np.zeros(n, np.int64)
    devminor = np.zeros(n, np.int64)
    if dev.any():
        mj, okj = _octal(blk[dev, 329:337])
        mn, okn = _octal(blk[dev, 337:345])
        devmajor[dev], devminor[dev] = mj, mn
        ok[dev] &= okj & okn
    atime = np.zeros(n, np.int64)
    ctime = np.zeros(n, np.int64)
    aset = np.zeros(n, bool)
    cset = np.zeros(n, bool)
    mtime = mtime * 1_000_000_000
    uid_set = np.zeros(n, bool)
    gid_set = np.zeros(n, bool)

    # string fields of the header: name, prefix (POSIX ustar only), linkname
    def cstr_len(f: np.ndarray) -> np.ndarray:
        z = f == 0
        return np.where(z.any(1), z.argmax(1), f.shape[1]).astype(np.int64)

    name_len = cstr_len(blk[:, 0:100])
    pre_len = np.where(posix, cstr_len(blk[:, 345:500]), 0)
    link_len = cstr_len(blk[:, 157:257])
    path_s0, path_l0 = hdr + 345, pre_len.copy()
    path_s1, path_l1 = hdr.copy(), name_len
    link_s, link_l = hdr + 157, link_len

    # extension headers: GNU long names/links and pax records, last one wins
    if w.ext:
        ext_m, ext_tf, ext_off, ext_size = (np.asarray(c, np.int64) for c in zip(*w.ext))
        # overrides: (member, key, value start, value length), in stream order
        o_m: list[np.ndarray] = []
        o_k: list[np.ndarray] = []
        o_s: list[np.ndarray] = []
        o_l: list[np.ndarray] = []
        o_seq: list[np.ndarray] = []
        gl = (ext_tf == _L) | (ext_tf == _K)
        if gl.any():
            idx = np.flatnonzero(gl)
            lens = np.array([buf.find(b"\x00", int(s), int(s + z)) for s, z in
                             zip(ext_off[idx], ext_size[idx])], np.int64)
            lens = np.where(lens < 0, ext_size[idx], lens - ext_off[idx])
            o_m.append(ext_m[idx])
            o_k.append(np.where(ext_tf[idx] == _L, P_PATH, P_LINK))
            o_s.append(ext_off[idx])
            o_l.append(lens)
            o_seq.append(idx * 4096)
        px = np.flatnonzero(ext_tf == _X)
        if len(px):
            r = _pax(buf, ext_off[px], ext_size[px])
            rec_e, rec_key, rec_s, rec_l, rec_i, bad_e = r
            if len(bad_e):
                ok[ext_m[px[bad_e]]] = False
            o_m.append(ext_m[px[rec_e]])
            o_k.append(rec_key)
            o_s.append(rec_s)
            o_l.append(rec_l)
            o_seq.append(px[rec_e] * 4096 + np.minimum(rec_i, 4095))
        m_all = np.concatenate(o_m)
        k_all = np.concatenate(o_k)
        s_all = np.concatenate(o_s)
        l_all = np.concatenate(o_l)
        seq = np.concatenate(o_seq)
        unknown = k_all < 0
        if unknown.any():
            ok[m_all[unknown]] = False
        order = np.argsort(seq, kind="stable")
        m_all, k_all, s_all, l_all = m_all[order], k_all[order], s_all[order], l_all[order]
        for key in (P_PATH, P_LINK, P_MTIME, P_ATIME, P_CTIME, P_UID, P_GID):
            sel = np.flatnonzero(k_all == key)
            if not len(sel):
                continue
            # the last record of each member wins
            rev = sel[::-1]
            _, first = np.unique(m_all[rev], return_index=True)
            last = rev[first]
            mm, ss, ll = m_all[last], s_all[last], l_all[last]
            if key == P_PATH:
                path_s0[mm], path_l0[mm] = ss, ll
                path_l1[mm] = 0
            elif key == P_LINK:
                link_s[mm], link_l[mm] = ss, ll
            else:
                vals, vok = _decimal(a, ss, ll, frac=key in (P_MTIME, P_ATIME, P_CTIME))
                ok[mm[~vok]] = False
                if key == P_MTIME:
                    mtime[mm] = vals
                elif key == P_ATIME:
                    atime[mm], aset[mm] = vals, True
                elif key == P_CTIME:
                    ctime[mm], cset[mm] = vals, True
                elif key == P_UID:
                    uid[mm], uid_set[mm] = vals, True
                else:
                    gid[mm], gid_set[mm] = vals, True
    ok &= (ok2 | uid_set) & (ok3 | gid_set)
    if gnu.any():  # old GNU: atime/ctime in the header override pax ones when set
        ga, oka = _octal(blk[gnu, 345:357])
        gc, okc = _octal(blk[gnu, 357:369])
        ok[gnu] &= oka & okc
        gi = np.flatnonzero(gnu)
        ai, ci = gi[ga != 0], gi[gc != 0]
        atime[ai], aset[ai] = ga[ga != 0] * 1_000_000_000, True
        ctime[ci], cset[ci] = gc[gc != 0] * 1_000_000_000, True

    slash = (path_l0 > 0) & (path_l1 > 0)
    raw_path, aok = _strings(a, [(path_s0, path_l0), (path_s1, path_l1)], slash)
    ok &= aok
    # a pre-POSIX directory: typeflag NUL and a trailing slash
    last_byte = a[np.maximum(np.where(path_l1 > 0, path_s1 + path_l1, path_s0 + path_l0) - 1, 0)]
    kind[(tf == 0) & (last_byte == 47) & ((path_l0 + path_l1) > 0)] = K_DIR
    path, pok = _clean(raw_path)
    ok &= pok
    islink = (kind == K_SYMLINK) | (kind == K_HARDLINK)
    link_l = np.where(islink, link_l, 0)
    raw_link, lok = _strings(a, [(link_s, link_l), (link_s, np.zeros(n, np.int64))],
                             np.zeros(n, bool))
    ok &= lok
    hard = kind == K_HARDLINK
    if hard.any():  # hardlink targets are cleaned like paths
        cl, clok = _clean(raw_link)
        ok &= clok | ~hard
        raw_link = pc.if_else(pa.array(hard), cl, raw_link)
    data = hdr + 512
    return Decoded(ok, kind, size, data, mode & 0o7777, uid, gid, mtime, atime, aset, ctime,
                   cset, devmajor, devminor, path, raw_link)


def scan(buf: bytes, pos: int, end: int, limit: int, compiled: bool | None = None
         ) -> "tuple[list[int], int, Decoded | None]":
    """Walk and decode the run of ordinary members at ``pos`` (see :func:`walk`).

    Returns the chain start of each member walked, where the walk stopped, and the
    decoded columns (``None`` when no member was walked). ``compiled`` picks the C
    scanner or the numpy code (default :data:`COMPILED`); both give the same answer.
    """
    if not (COMPILED if compiled is None else compiled):
        w = walk(buf, pos, end, limit)
        if not w.headers:
            return w.chains, w.stop, None
        d = decode(buf, w)
        d.name = pc.replace_substring_regex(d.path, r"(?s)^.*/", "")  # last components
        return w.chains, w.stop, d
    n, stop, ints, poff, pdata, loff, ldata, noff, ndata = _ctarscan.scan(buf, pos, end, limit)
    if n == 0:
        return [], stop, None
    c = np.frombuffer(ints, np.int64).reshape(_ctarscan.NCOL, limit)[:, :n]
    (chain, header, size, kind, ok, mode, uid, gid, mtime, atime, aset, ctime, cset,
     devmajor, devminor) = c
    path = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(poff), pa.py_buffer(pdata)])
    link = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(loff), pa.py_buffer(ldata)])
    name = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(noff), pa.py_buffer(ndata)])
    d = Decoded(ok != 0, kind, size, header + 512, mode, uid, gid, mtime, atime, aset != 0,
                ctime, cset != 0, devmajor, devminor, path, link, name)
    return chain.tolist(), stop, d


def _pax(buf: bytes, offs: np.ndarray, sizes: np.ndarray):
    """Records of many pax payloads at once, without a Python object per record.

    The payloads are gathered into one array and cut at newlines; a record is
    plain when its decimal length (digits, a space) equals the distance to its
    newline, it has a ``=``, and it does not cross a payload end. Payloads with
    anything else (a value holding a newline, junk, a bad length) are returned as
    bad: their members go to the exact reader.

    Returns per record: payload index, key code (-1: not in :data:`PAX_KEYS`), value
    start in ``buf``, value length, index of the record within its payload; then the
    indices of the bad payloads.
    """
    a = np.frombuffer(buf, np.uint8)
    npay = len(offs)
    pend = np.cumsum(sizes)
    pstart = pend - sizes
    data = a[ranges(offs, sizes)]
    nl = np.flatnonzero(data == 10)
    rend = nl + 1
    rstart = np.concatenate(([0], rend[:-1])).astype(np.int64)
    which = np.searchsorted(pstart, rstart, side="right") - 1
    # payloads that do not end on a record boundary, or records that cross one
    bad = np.zeros(npay, bool)
    isend = np.zeros(len(data) + 1, bool)
    isend[rend] = True
    isend[0] = True
    bad |= ~isend[pend]
    bad |= ~isend[pstart]  # a record of the previous payload ran into this one
    cross = rend > pend[which]
    if cross.any():
        bad[which[cross]] = True
    # the length field: digits then a space, equal to the record's length
    lim = len(data) - 1
    width = 8
    g = data[np.minimum(rstart[:, None] + _AR[:width], lim)]
    isd = (g >= 48) & (g <= 57)
    nd = np.where(isd.all(1), width, (~isd).argmax(1))
    space = rstart + nd
    rlen = rend - rstart
    digits = np.where(isd & (_AR[:width] < nd[:, None]), g.astype(np.int64) - 48, 0)
    p10 = 10 ** np.clip(nd[:, None] - 1 - _AR[:width], 0, width)
    declared = (digits * p10).sum(1)
    ok = (nd >= 1) & (nd < width) & (data[np.minimum(space, lim)] == 32) & (declared == rlen)
    # key: up to the first "=" (which must come before the newline)
    eq = np.flatnonzero(data == 61)
    ks = space + 1
    j = np.searchsorted(eq, ks)
    has = j < len(eq)
    e = np.where(has, eq[np.minimum(j, max(len(eq) - 1, 0))] if len(eq) else 0, 0)
    ok &= has & (e < rend - 1)
    bad[which[~ok]] = True
    # keys of up to 8 bytes, packed into an integer and looked up
    klen = e - ks
    kg = data[np.minimum(ks[:, None] + _AR[:8], lim)].astype(np.uint64)
    kg = np.where(_AR[:8] < klen[:, None], kg, 0)
    packed = (kg << (np.arange(8, dtype=np.uint64) * np.uint64(8))).sum(1, dtype=np.uint64)
    code = np.full(len(rstart), -1, np.int64)
    for key, c in PAX_KEYS.items():
        code[(klen == len(key)) & (packed == _PACKED[key])] = c
    keep = ~bad[which]
    which, code = which[keep], code[keep]
    vs = (e + 1)[keep]
    vl = (rend - 1)[keep] - vs
    first = np.searchsorted(which, which, side="left")
    rec_i = np.arange(len(which)) - first
    vstart = offs[which] + (vs - pstart[which])
    return which, code, vstart, vl, rec_i, np.flatnonzero(bad)


_PACKED = {k: np.uint64(int.from_bytes(k, "little")) for k in PAX_KEYS}


_KINDS = pa.array(KIND_NAMES, pa.string())


class BufPayload:
    """The content of a member held whole in the read buffer (same interface as
    :class:`~analyzer.sources.tarstream.Payload`)."""

    def __init__(self, buf: bytes, start: int, size: int) -> None:
        self._buf = buf
        self._pos = start
        self.remaining = size
        self.short = False

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.remaining:
            n = self.remaining
        data = self._buf[self._pos:self._pos + n]
        self._pos += n
        self.remaining -= n
        return data

    def chunks(self) -> "Iterator[memoryview]":
        """The rest of the content as one view of the buffer (no copy)."""
        if self.remaining:
            view = memoryview(self._buf)[self._pos:self._pos + self.remaining]
            self._pos += self.remaining
            self.remaining = 0
            yield view

    def readable(self) -> bool:
        return True


class MemberBatch:
    """A run of consecutive ordinary members, decoded at once.

    Consumers that only need the index rows use :meth:`columns`; per-member
    access (:meth:`path_list`, :meth:`payload`, :meth:`members`) is there for the few
    members whose bytes are wanted, found with :meth:`mask` over the whole batch.
    Payloads stay readable until the reader moves on.
    """

    def __init__(self, buf: bytes, d: Decoded, i0: int, i1: int) -> None:
        self.buf = buf
        self.n = i1 - i0
        sl = slice(i0, i1)
        self.kind = d.kind[sl]
        self.size = d.size[sl]
        self.data_off = d.data[sl]
        self._d = d
        self._sl = sl
        self._path = pc.cast(d.path.slice(i0, self.n), pa.string())
        self._name = pc.cast(d.name.slice(i0, self.n), pa.string())
        self._link: pa.Array | None = None

    def path_list(self, rows: np.ndarray) -> list[str]:
        """The paths of ``rows`` only."""
        return self._path.take(pa.array(rows, pa.int64())).to_pylist()

    @property
    def path_array(self) -> pa.Array:
        """The paths as an Arrow string array."""
        return self._path

    @property
    def name_array(self) -> pa.Array:
        """The paths' last components as an Arrow string array."""
        return self._name

    def mask(self, key: str, compute: "Callable[[pa.Array, pa.Array], np.ndarray]"
             ) -> np.ndarray:
        """A boolean row mask ``compute(paths, names)``, computed once over everything the
        scan decoded (binary arrays, as one call per batch costs more than the rows) and
        sliced to this batch."""
        d = self._d
        mask = d.masks.get(key)
        if mask is None:
            mask = d.masks[key] = compute(d.path, d.name)
        return mask[self._sl]

    @property
    def link(self) -> pa.Array:
        if self._link is None:
            self._link = pc.cast(self._d.link.slice(self._sl.start, self.n), pa.string())
        return self._link

    def symlink_rows(self) -> np.ndarray:
        return np.flatnonzero(self.kind == K_SYMLINK)

    def payload(self, i: int) -> BufPayload:
        return BufPayload(self.buf, int(self.data_off[i]), int(self.size[i]))

    def view(self, i: int) -> memoryview:
        """The content of row ``i`` without a copy."""
        o = int(self.data_off[i])
        return memoryview(self.buf)[o:o + int(self.size[i])]

    def columns(self) -> dict[str, pa.Array]:
        """The member-index columns of the batch (all but ``sha256``), as
        :meth:`analyzer.sources.capture.FileIndex.add` would give them."""
        d, sl, kind = self._d, self._sl, self.kind
        isfile = kind == K_FILE
        char = kind == K_CHAR
        mj, mn = d.devmajor[sl], d.devminor[sl]
        link = self.link
        names = self._name
        wh_prefix = pc.starts_with(names, ".wh.").to_numpy(zero_copy_only=False)
        wh_wh = pc.starts_with(names, ".wh..wh.").to_numpy(zero_copy_only=False)
        opq = pc.equal(names, ".wh..wh..opq").to_numpy(zero_copy_only=False)
        return {
            "path": self._path,
            "kind": _KINDS.take(pa.array(kind, pa.int64())),
            "size": pa.array(np.where(isfile, self.size, 0), pa.int64()),
            "mode": pa.array(d.mode[sl], pa.int64()),
            "uid": pa.array(d.uid[sl], pa.int64()),
            "gid": pa.array(d.gid[sl], pa.int64()),
            "mtime_ns": pa.array(d.mtime[sl], pa.int64()),
            "atime_ns": pa.array(d.atime[sl], pa.int64(), mask=~d.atime_set[sl]),
            "ctime_ns": pa.array(d.ctime[sl], pa.int64(), mask=~d.ctime_set[sl]),
            "linkname": pc.if_else(pc.equal(pc.utf8_length(link), 0),
                                   pa.scalar(None, pa.string()), link),
            "devmajor": pa.array(mj, pa.int64(), mask=~(char | (mj != 0))),
            "devminor": pa.array(mn, pa.int64(), mask=~(char | (mn != 0))),
            "xattrs_json": pa.nulls(self.n, pa.string()),
            "whiteout": pa.array((char & (mj == 0) & (mn == 0)) | (wh_prefix & ~wh_wh)),
            "opaque": pa.array(opq),
        }

    def members(self, j0: int = 0, j1: int | None = None
                ) -> list["tuple[Member, BufPayload | None]"]:
        """Rows as ``(Member, payload)`` pairs (what the exact reader yields)."""
        d, sl = self._d, self._sl
        j1 = self.n if j1 is None else j1
        links = self.link.slice(j0, j1 - j0).to_pylist()
        paths = self._path.slice(j0, j1 - j0).to_pylist()
        out = []
        for i in range(j0, j1):
            path = paths[i - j0]
            k = int(self.kind[i])
            j = sl.start + i
            m = Member(path=path, kind=KIND_NAMES[k],
                       size=int(self.size[i]) if k == K_FILE else 0,
                       mode=int(d.mode[j]), uid=int(d.uid[j]), gid=int(d.gid[j]),
                       mtime=int(d.mtime[j]),
                       atime=int(d.atime[j]) if d.atime_set[j] else None,
                       ctime=int(d.ctime[j]) if d.ctime_set[j] else None,
                       linkname=links[i - j0] if k in (K_SYMLINK, K_HARDLINK) else "",
                       devmajor=int(d.devmajor[j]), devminor=int(d.devminor[j]))
            out.append((m, self.payload(i) if k == K_FILE and self.size[i] else None))
        return out
