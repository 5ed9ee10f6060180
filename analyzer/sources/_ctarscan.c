/* Compiled twin of the tar fast path's walk + decode (analyzer/sources/tarscan.py).
 *
 * Why C: after vectorising the header decode with numpy, the fast path still cost
 * ~3.5 us/member for the sequential header walk and ~15 us/member for the numpy
 * decode (dozens of array passes per buffer), against ~10 us/member for all of GNU
 * `tar -tvf` (benchmarks/README.md). No maintained library lists tar headers into
 * columns: tarfile and libarchive-c build one Python object (and several calls) per
 * member. This module does the same walk and decode in one sequential pass over the
 * buffer and returns columns; its rules are exactly those of tarscan.walk/decode,
 * and tests/sources/test_tarscan.py runs every archive through both.
 *
 * It only *accepts*: a member is "ok" when it is plainly ordinary; every other one
 * is handed to the exact per-member reader in tarstream.py, as the numpy code does.
 *
 * scan(buf, pos, end, limit)
 *   -> (n, stop, ints, path_off, path_data, link_off, link_data, name_off, name_data)
 *   ints: NCOL int64 columns of `limit` slots each (column k at [k*limit, k*limit+n)).
 *   *_off: n+1 int32 offsets into *_data (Arrow binary layout) of the cleaned paths,
 *   the link targets and the paths' last components.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { C_CHAIN, C_HEADER, C_SIZE, C_KIND, C_OK, C_MODE, C_UID, C_GID, C_MTIME, C_ATIME,
       C_ASET, C_CTIME, C_CSET, C_DEVMAJOR, C_DEVMINOR, NCOL };

enum { K_FILE, K_HARDLINK, K_SYMLINK, K_CHAR, K_BLOCK, K_DIR, K_FIFO };

#define MAX_EXT (1 << 20)

/* pax keys of the fast path (others send the member to the exact reader) */
enum { P_PATH, P_LINK, P_MTIME, P_ATIME, P_CTIME, P_UID, P_GID, P_UNAME, P_GNAME, NKEY };
static const char *PAX_KEYS[NKEY] = {"path", "linkpath", "mtime", "atime", "ctime", "uid",
                                     "gid", "uname", "gname"};

static int kind_of(unsigned char tf) {
    switch (tf) {
    case '0': case '\0': case '7': return K_FILE;
    case '1': return K_HARDLINK;
    case '2': return K_SYMLINK;
    case '3': return K_CHAR;
    case '4': return K_BLOCK;
    case '5': return K_DIR;
    case '6': return K_FIFO;
    default: return -1;
    }
}

/* A numeric header field as tarscan._octal reads it: the text up to the first NUL,
 * octal digits with only spaces around them (empty means 0), first byte < 0x80. */
static int octal(const unsigned char *p, int w, int64_t *out) {
    int len = 0;
    while (len < w && p[len] != 0) len++;
    if (w > 0 && p[0] >= 0x80) return 0;
    int i = 0;
    while (i < len && p[i] == ' ') i++;
    int64_t v = 0;
    int nd = 0;
    while (i < len && p[i] >= '0' && p[i] <= '7') {
        if (nd < 21) v = (v << 3) | (p[i] - '0');
        nd++;
        i++;
    }
    while (i < len && p[i] == ' ') i++;
    if (i != len || nd > 21) return 0;
    *out = v;
    return 1;
}

/* The walk's size field: bytes 124..135, the last a NUL or space, the first eleven
 * spaces around at least one octal digit (what both int(f, 8) and tarheader.num read
 * the same way; anything else, a zero block included, stops the walk). */
static int size_field(const unsigned char *f, int64_t *out) {
    if (f[11] != 0 && f[11] != ' ') return 0;
    int i = 0;
    while (i < 11 && f[i] == ' ') i++;
    int64_t v = 0;
    int nd = 0;
    while (i < 11 && f[i] >= '0' && f[i] <= '7') { v = (v << 3) | (f[i] - '0'); nd++; i++; }
    while (i < 11 && f[i] == ' ') i++;
    if (i != 11 || nd == 0) return 0;
    *out = v;
    return 1;
}

static int checksum_ok(const unsigned char *h) {
    int64_t stored;
    if (!octal(h + 148, 7, &stored)) return 0;
    if (!(h[154] == 0 || h[155] == 0 || h[155] == ' ')) return 0;
    int64_t total = 256;
    for (int i = 0; i < 148; i++) total += h[i];
    for (int i = 156; i < 512; i++) total += h[i];
    return stored == total;
}

static int cstr_len(const unsigned char *p, int w) {
    const unsigned char *z = memchr(p, 0, w);
    return z ? (int)(z - p) : w;
}

/* pax decimal values, as tarscan._decimal: SEC[.FRAC] -> ns, or a plain integer */
static int pax_time(const unsigned char *p, Py_ssize_t len, int64_t *out) {
    if (len < 1 || len > 40) return 0;
    Py_ssize_t dpos = len;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (p[i] == '.') {
            if (dpos != len) return 0;
            dpos = i;
        } else if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }
    if (dpos < 1 || dpos > 10) return 0;
    int64_t sec = 0;
    for (Py_ssize_t i = 0; i < dpos; i++) sec = sec * 10 + (p[i] - '0');
    if (sec > 9000000000LL) return 0;
    int64_t frac = 0;
    for (int k = 1; k <= 9; k++) {
        frac *= 10;
        if (dpos + k < len) frac += p[dpos + k] - '0';
    }
    *out = sec * 1000000000LL + frac;
    return 1;
}

static int pax_int(const unsigned char *p, Py_ssize_t len, int64_t *out) {
    if (len < 1 || len > 18) return 0;
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* extension-header state of the chain being walked: last value of each key wins */
typedef struct {
    const unsigned char *val[NKEY];
    Py_ssize_t len[NKEY];
    int bad;
} Pending;

/* The pax value of ``key``, when the chain has one, parsed into ``*out`` (``*present``
 * set); 0 when it is malformed. */
static int pax_value(const Pending *st, int key,
                     int (*parse)(const unsigned char *, Py_ssize_t, int64_t *),
                     int64_t *out, int *present) {
    if (!st->val[key]) return 1;
    *present = 1;
    return parse(st->val[key], st->len[key], out);
}

/* Records "LEN KEY=VALUE\n" of one pax payload (tarscan._pax's rules). */
static void pax_records(const unsigned char *p, Py_ssize_t size, Pending *st) {
    Py_ssize_t q = 0;
    while (q < size) {
        const unsigned char *nl = memchr(p + q, '\n', size - q);
        if (!nl) { st->bad = 1; return; }  /* the payload does not end on a record */
        Py_ssize_t rend = (nl - p) + 1, rlen = rend - q;
        int nd = 0;
        int64_t declared = 0;
        while (nd < 8 && q + nd < size && p[q + nd] >= '0' && p[q + nd] <= '9') {
            declared = declared * 10 + (p[q + nd] - '0');
            nd++;
        }
        if (nd < 1 || nd >= 8 || p[q + nd] != ' ' || declared != rlen) { st->bad = 1; return; }
        Py_ssize_t ks = q + nd + 1;
        const unsigned char *eq = memchr(p + ks, '=', rend - 1 - ks > 0 ? rend - 1 - ks : 0);
        if (!eq) { st->bad = 1; return; }
        Py_ssize_t e = eq - p, klen = e - ks;
        int key = -1;
        for (int k = 0; k < NKEY; k++) {
            if ((Py_ssize_t)strlen(PAX_KEYS[k]) == klen && memcmp(p + ks, PAX_KEYS[k], klen) == 0) {
                key = k;
                break;
            }
        }
        if (key < 0) { st->bad = 1; return; }  /* xattrs, sparse, size...: exact reader */
        st->val[key] = p + e + 1;
        st->len[key] = rend - 1 - (e + 1);
        q = rend;
    }
}

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Bytes;

static int bytes_put(Bytes *b, const unsigned char *p, Py_ssize_t n) {
    if (n == 0) return 0;
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* tarscan._clean: drop leading "./" runs and trailing "/"; False when the result is
 * empty, absolute, holds "//" or a "." / ".." component. Returns the kept range. */
static int clean(const unsigned char *p, Py_ssize_t len, Py_ssize_t *start, Py_ssize_t *n) {
    Py_ssize_t s = 0;
    while (len - s >= 2 && p[s] == '.' && p[s + 1] == '/') s += 2;
    Py_ssize_t e = len;
    while (e > s && p[e - 1] == '/') e--;
    *start = s;
    *n = e - s;
    if (e == s || p[s] == '/') return 0;
    Py_ssize_t c = s;  /* start of the current component */
    for (Py_ssize_t i = s; i <= e; i++) {
        if (i == e || p[i] == '/') {
            Py_ssize_t cl = i - c;
            if (cl == 0) return 0;  /* "//" */
            if (cl == 1 && p[c] == '.') return 0;
            if (cl == 2 && p[c] == '.' && p[c + 1] == '.') return 0;
            c = i + 1;
        }
    }
    return 1;
}

static int ascii(const unsigned char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] >= 0x80) return 0;
    return 1;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos, end, limit;
    if (!PyArg_ParseTuple(args, "y*nnn", &view, &pos, &end, &limit)) return NULL;
    const unsigned char *buf = view.buf;
    if (end > view.len) end = view.len;
    if (pos < 0) pos = 0;
    if (limit < 0) limit = 0;
    PyObject *ints = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)NCOL * limit * 8);
    PyObject *poff = PyBytes_FromStringAndSize(NULL, (limit + 1) * 4);
    PyObject *loff = PyBytes_FromStringAndSize(NULL, (limit + 1) * 4);
    PyObject *noff = PyBytes_FromStringAndSize(NULL, (limit + 1) * 4);
    Bytes pdata = {0}, ldata = {0}, ndata = {0};
    if (!ints || !poff || !loff || !noff) goto fail;
    int64_t *col = (int64_t *)PyBytes_AS_STRING(ints);
    int32_t *po = (int32_t *)PyBytes_AS_STRING(poff);
    int32_t *lo = (int32_t *)PyBytes_AS_STRING(loff);
    int32_t *no = (int32_t *)PyBytes_AS_STRING(noff);
#define COL(k) (col + (Py_ssize_t)(k) * limit)
    po[0] = lo[0] = no[0] = 0;

    Py_ssize_t n = 0, start = pos, o = pos;
    Pending st;
    memset(&st, 0, sizeof st);
    int chain_ok = 1;
    Py_BEGIN_ALLOW_THREADS
    while (n < limit && o + 512 <= end) {
        const unsigned char *h = buf + o;
        unsigned char tf = h[156];
        int64_t size;
        if (!size_field(h + 124, &size)) break;
        Py_ssize_t nxt = o + 512 + ((size + 511) & ~(int64_t)511);
        if (nxt > end) break;
        if (tf == 'x' || tf == 'L' || tf == 'K') {
            if (size > MAX_EXT) break;
            if (!checksum_ok(h)) chain_ok = 0;
            const unsigned char *p = h + 512;
            if (tf == 'x') {
                pax_records(p, size, &st);
            } else {
                int key = tf == 'L' ? P_PATH : P_LINK;
                const unsigned char *z = memchr(p, 0, size);
                st.val[key] = p;
                st.len[key] = z ? z - p : size;
            }
            o = nxt;
            continue;
        }
        int kind = kind_of(tf);
        if (kind < 0) break;
        /* one member: its own header after the chain's extension headers */
        int ok = chain_ok && !st.bad && checksum_ok(h);
        int64_t mode = 0, uid = 0, gid = 0, mtime = 0, atime = 0, ctime = 0, dmaj = 0, dmin = 0;
        int aset = 0, cset = 0;
        ok &= octal(h + 100, 8, &mode) & octal(h + 136, 12, &mtime);
        mtime *= 1000000000LL;
        int uid_ok = octal(h + 108, 8, &uid), gid_ok = octal(h + 116, 8, &gid);
        int posix = memcmp(h + 257, "ustar\0", 6) == 0;
        int gnu = memcmp(h + 257, "ustar  \0", 8) == 0;
        if (kind == K_CHAR || kind == K_BLOCK)
            ok &= octal(h + 329, 8, &dmaj) & octal(h + 337, 8, &dmin);
        /* path: pax/GNU long name, else prefix "/" name */
        const unsigned char *s0 = h + 345, *s1 = h;
        Py_ssize_t l0 = posix ? cstr_len(h + 345, 155) : 0, l1 = cstr_len(h, 100);
        if (st.val[P_PATH]) {
            s0 = st.val[P_PATH];
            l0 = st.len[P_PATH];
            l1 = 0;
        }
        const unsigned char *ls = h + 157;
        Py_ssize_t ll = cstr_len(h + 157, 100);
        if (st.val[P_LINK]) {
            ls = st.val[P_LINK];
            ll = st.len[P_LINK];
        }
        int mset = 0;
        ok &= pax_value(&st, P_MTIME, pax_time, &mtime, &mset);
        ok &= pax_value(&st, P_ATIME, pax_time, &atime, &aset);
        ok &= pax_value(&st, P_CTIME, pax_time, &ctime, &cset);
        ok &= pax_value(&st, P_UID, pax_int, &uid, &uid_ok);
        ok &= pax_value(&st, P_GID, pax_int, &gid, &gid_ok);
        ok &= uid_ok & gid_ok;
        if (gnu) {  /* old GNU: atime/ctime in the header override pax ones when set */
            int64_t ga = 0, gc = 0;
            ok &= octal(h + 345, 12, &ga) & octal(h + 357, 12, &gc);
            if (ga) { atime = ga * 1000000000LL; aset = 1; }
            if (gc) { ctime = gc * 1000000000LL; cset = 1; }
        }
        /* the raw path, joined, and its last byte (a pre-POSIX directory ends in "/") */
        unsigned char small[512];
        const unsigned char *raw;
        Py_ssize_t rlen;
        unsigned char *joined = NULL;
        if (l0 > 0 && l1 > 0) {
            rlen = l0 + 1 + l1;
            joined = rlen <= (Py_ssize_t)sizeof small ? small : malloc(rlen);
            if (!joined) { ok = 0; rlen = 0; raw = s1; }
            else {
                memcpy(joined, s0, l0);
                joined[l0] = '/';
                memcpy(joined + l0 + 1, s1, l1);
                raw = joined;
            }
        } else if (l0 > 0) {
            raw = s0;
            rlen = l0;
        } else {
            raw = s1;
            rlen = l1;
        }
        if (tf == 0 && rlen > 0 && raw[rlen - 1] == '/') kind = K_DIR;
        Py_ssize_t cs, cn;
        ok &= ascii(raw, rlen) & clean(raw, rlen, &cs, &cn);
        int perr = bytes_put(&pdata, raw + cs, cn);
        Py_ssize_t ns = cn;  /* the last component */
        while (ns > 0 && raw[cs + ns - 1] != '/') ns--;
        perr |= bytes_put(&ndata, raw + cs + ns, cn - ns);
        if (joined && joined != small) free(joined);
        int lerr = 0;
        if (kind == K_SYMLINK) {
            ok &= ascii(ls, ll);
            lerr = bytes_put(&ldata, ls, ll);
        } else if (kind == K_HARDLINK) {
            Py_ssize_t ks, kn;
            ok &= ascii(ls, ll) & clean(ls, ll, &ks, &kn);
            lerr = bytes_put(&ldata, ls + ks, kn);
        }
        if (perr || lerr || pdata.len > INT32_MAX || ldata.len > INT32_MAX) break;  /* no memory */
        COL(C_CHAIN)[n] = start;
        COL(C_HEADER)[n] = o;
        COL(C_SIZE)[n] = size;
        COL(C_KIND)[n] = kind;
        COL(C_OK)[n] = ok;
        COL(C_MODE)[n] = mode & 07777;
        COL(C_UID)[n] = uid;
        COL(C_GID)[n] = gid;
        COL(C_MTIME)[n] = mtime;
        COL(C_ATIME)[n] = atime;
        COL(C_ASET)[n] = aset;
        COL(C_CTIME)[n] = ctime;
        COL(C_CSET)[n] = cset;
        COL(C_DEVMAJOR)[n] = dmaj;
        COL(C_DEVMINOR)[n] = dmin;
        n++;
        po[n] = (int32_t)pdata.len;
        lo[n] = (int32_t)ldata.len;
        no[n] = (int32_t)ndata.len;
        o = start = nxt;
        memset(&st, 0, sizeof st);
        chain_ok = 1;
    }
    Py_END_ALLOW_THREADS
#undef COL
    PyBuffer_Release(&view);
    PyObject *pd = PyBytes_FromStringAndSize(pdata.data ? pdata.data : "", pdata.len);
    PyObject *ld = PyBytes_FromStringAndSize(ldata.data ? ldata.data : "", ldata.len);
    PyObject *nd = PyBytes_FromStringAndSize(ndata.data ? ndata.data : "", ndata.len);
    free(pdata.data);
    free(ldata.data);
    free(ndata.data);
    if (!pd || !ld || !nd) {
        Py_XDECREF(pd);
        Py_XDECREF(ld);
        Py_XDECREF(nd);
        Py_DECREF(ints);
        Py_DECREF(poff);
        Py_DECREF(loff);
        Py_DECREF(noff);
        return NULL;
    }
    return Py_BuildValue("(nnNNNNNNN)", n, start, ints, poff, pd, loff, ld, noff, nd);
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(ints);
    Py_XDECREF(poff);
    Py_XDECREF(loff);
    Py_XDECREF(noff);
    return PyErr_NoMemory();
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(buf, pos, end, limit) -> (n, stop, ints, path_off, path_data, link_off, "
     "link_data, name_off, name_data)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctarscan",
                                    "Compiled walk + decode of tar headers.", -1, methods};

PyMODINIT_FUNC PyInit__ctarscan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "NCOL", NCOL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
