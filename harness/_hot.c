/* harness._hot: the worker's per-socket and per-message loops in C (issue 21).
 *
 * Optional: setup.py builds it when a C compiler is there (Extension(optional=True)), and
 * harness/wire/hot.py falls back to the pure-Python functions of the same names and the
 * same results when it is missing or HARNESS_PURE=1 is set. tests/test_hot.py runs both on
 * the same inputs (real sockets on loopback) and expects the same answers.
 *
 * What it does is what the Python loops do, nothing more: no state lives here. Each
 * function returns to Python at the first case it does not handle (a partial frame, a
 * failed call, a frame that is not good), and Python carries on exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static PyObject *str_fileno;

/* The stamp's weights and layout: harness/wire/stamp.py (seven little-endian u32 words:
 * check, conn, seq, kind | worker << 16, delay, t low, t high). */
static const uint32_t W[6] = {0x9E3779B1u, 0x85EBCA77u, 0xC2B2AE3Du, 0x27D4EB2Fu,
                              0x165667B1u, 0xD3A2646Du};

static inline uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void wr32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* time.monotonic_ns()'s clock */
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, ns: the realtime read between two monotonic
 * reads, less their midpoint (a kernel receive stamp is on CLOCK_REALTIME). A reading whose
 * monotonic reads lie over OFFSET_WIDE_NS apart (the thread lost its core between them: the
 * midpoint may be that far off) is tried again, up to OFFSET_TRIES times; failing that, the
 * last tight reading stands (the two clocks drift apart by NTP's slew alone, ppm). */
#define OFFSET_WIDE_NS 2000
#define OFFSET_TRIES 4
static int64_t last_offset;
static int have_offset;

static int64_t real_offset_ns(void) {
    int64_t best = 0, width = INT64_MAX;
    for (int k = 0; k < OFFSET_TRIES; k++) {
        struct timespec a, r, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t ma = (int64_t)a.tv_sec * 1000000000LL + a.tv_nsec;
        int64_t mb = (int64_t)b.tv_sec * 1000000000LL + b.tv_nsec;
        if (mb - ma < width) {
            width = mb - ma;
            best = (int64_t)r.tv_sec * 1000000000LL + r.tv_nsec - (ma + (mb - ma) / 2);
        }
        if (width <= OFFSET_WIDE_NS) {
            last_offset = best;
            have_offset = 1;
            return best;
        }
    }
    return have_offset ? last_offset : best;
}

/* recv with the kernel's receive stamp (SO_TIMESTAMPNS set on the socket): the bytes'
 * arrival on time.monotonic_ns()'s clock, by ``offset`` (real_offset_ns), in *t: never
 * later than the clock read just after the recv, which *t is when the read carried none.
 * A read of several segments carries the last one's arrival. */
static ssize_t recv_stamped(int fd, char *at, size_t len, int64_t offset, long long *t) {
    struct iovec iov = {at, len};
    union { char buf[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } ctl;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0)
        return n;
    int64_t now = mono_ns();
    *t = now;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            int64_t at_ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - offset;
            if (at_ns < now)
                *t = at_ns;
        }
    }
    return n;
}

/* CPython's socket object begins, after its object header, with its fd (Modules/
 * socketmodule.h: PySocketSockObject's sock_fd, a SOCKET_T, an int on Linux). When a test
 * socket's fileno() agrees with that field at import (sock_layout_check), fd_of reads it
 * there for sockets of that type or a subtype; else it calls fileno(). */
typedef struct {
    PyObject_HEAD
    int sock_fd;
} SockHead;

static PyTypeObject *sock_type;  /* _socket.socket, when its layout was checked */

/* A socket object's fd: -1 for a closed one (its fileno(): the call on it then fails with
 * EBADF, as the pure loops' do), FD_ERROR with an exception set when fileno() failed. */
#define FD_ERROR (-2)

static int fd_of(PyObject *s) {
    if (sock_type != NULL && PyObject_TypeCheck(s, sock_type))
        return ((SockHead *)s)->sock_fd;
    PyObject *r = PyObject_CallMethodNoArgs(s, str_fileno);
    if (r == NULL)
        return FD_ERROR;
    long fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd == -1 && PyErr_Occurred())
        return FD_ERROR;
    return fd < 0 ? -1 : (int)fd;
}

/* An int's value (-1 with an exception set when it is not one, or too large). CPython up
 * to 3.11 keeps an int as its sign and size and 30-bit digits, and its PyLong_AsLongLong
 * takes _PyLong_AsByteArray's general path (some 200 instructions) from two digits on: a
 * time in ns has two. Those are read here directly; anything else goes the general way. */
static inline int as_ll(PyObject *o, long long *out) {
#if PY_VERSION_HEX < 0x030C0000 && PYLONG_BITS_IN_DIGIT == 30
    if (PyLong_CheckExact(o)) {
        const digit *d = ((PyLongObject *)o)->ob_digit;
        switch (Py_SIZE(o)) {
        case 0:
            *out = 0;
            return 0;
        case 1:
            *out = (long long)d[0];
            return 0;
        case -1:
            *out = -(long long)d[0];
            return 0;
        case 2:
            *out = (long long)d[0] | (long long)d[1] << 30;
            return 0;
        case -2:
            *out = -((long long)d[0] | (long long)d[1] << 30);
            return 0;
        }
    }
#endif
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

/* PyLong_AsUnsignedLongLongMask, by as_ll where the int fits (the same bits). */
static unsigned long long mask_ll(PyObject *o) {
    long long v;
    if (as_ll(o, &v) == 0)
        return (unsigned long long)v;
    PyErr_Clear();
    return PyLong_AsUnsignedLongLongMask(o);
}

static int append_ll(PyObject *list, long long v) {
    PyObject *o = PyLong_FromLongLong(v);
    if (o == NULL)
        return -1;
    int r = PyList_Append(list, o);
    Py_DECREF(o);
    return r;
}

/* An int64 index sequence: a list of ints, or a buffer of 8-byte ints (an int64 array). */
typedef struct {
    PyObject *list;
    Py_buffer view;
    int has_view;
    int owned;
    Py_ssize_t n;
} Index;

static int index_open(PyObject *o, Index *ix) {
    ix->list = NULL;
    ix->has_view = 0;
    ix->owned = 0;
    if (PyList_Check(o)) {
        ix->list = o;
        ix->n = PyList_GET_SIZE(o);
        return 0;
    }
    if (PyObject_GetBuffer(o, &ix->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        /* not a contiguous buffer (a strided view): as a list */
        PyErr_Clear();
        PyObject *l = PyObject_CallMethod(o, "tolist", NULL);
        if (l == NULL)
            return -1;
        if (!PyList_Check(l)) {
            Py_DECREF(l);
            PyErr_SetString(PyExc_TypeError, "an index must be a list or an int64 array");
            return -1;
        }
        ix->list = l;
        ix->owned = 1;
        ix->n = PyList_GET_SIZE(l);
        return 0;
    }
    ix->has_view = 1;
    const char *f = ix->view.format ? ix->view.format : "B";
    if (ix->view.itemsize != 8 || !(strchr("qlQL", f[strlen(f) - 1]))) {
        PyBuffer_Release(&ix->view);
        ix->has_view = 0;
        PyErr_SetString(PyExc_TypeError, "an index must be a list or an int64 array");
        return -1;
    }
    ix->n = ix->view.len / 8;
    return 0;
}

static int index_get(Index *ix, Py_ssize_t k, long long *out) {
    if (ix->list)
        return as_ll(PyList_GET_ITEM(ix->list, k), out);
    *out = ((const long long *)ix->view.buf)[k];
    return 0;
}

static void index_close(Index *ix) {
    if (ix->has_view)
        PyBuffer_Release(&ix->view);
    if (ix->owned)
        Py_DECREF(ix->list);
}

static int get_ll(PyObject *list, Py_ssize_t k, long long *out) {
    return as_ll(PyList_GET_ITEM(list, k), out);
}

/* A read of copies of a protocol's template reply (recv_tmpl), and the closed loop's early
 * sends (harness.wire.rounds.templates and send_early). */
typedef struct {
    Py_buffer rep;           /* the template repeated */
    Py_ssize_t tlen;         /* its length */
    PyObject *code;          /* its code (an int) */
    PyObject *walk, *codes;  /* the round's frame starts and reply codes (lists) */
    int early;               /* sends early: the rest below are set */
    PyObject *reqs;          /* reqs[k]: k requests (bytes) */
    Py_buffer owed;          /* int64 per connection: requests awaiting a reply */
    long long until;         /* no early send at or after (ns) */
    PyObject *pend_out;      /* per connection: None, or bytes queued to send */
    PyObject *sent_conn, *sent_end, *sent_t;
} Tmpl;

/* The read rounds' statuses (harness.wire.hot: DONE, CAREFUL, FAILED, LOOK, QUEUE). */
enum { DONE = 0, CAREFUL = 1, FAILED = 2, LOOK = 3, QUEUE = 4 };

/* Connection i's read of k template replies at off: their starts and codes, then, when the
 * run sends early, its next k requests at once. Returns -1 (an exception set), 0, or the
 * bytes an early send that went out in part sent, plus one. */
static long long tmpl_take(Tmpl *tm, PyObject *socks, long long i, Py_ssize_t off,
                           long long k, long long t) {
    for (long long j = 0; j < k; j++)
        if (append_ll(tm->walk, off + j * tm->tlen) < 0 ||
            PyList_Append(tm->codes, tm->code) < 0)
            return -1;
    if (!tm->early || t >= tm->until || i >= tm->owed.len / 8 ||
        ((const long long *)tm->owed.buf)[i] < k || k >= PyList_GET_SIZE(tm->reqs) ||
        i >= PyList_GET_SIZE(tm->pend_out) || PyList_GET_ITEM(tm->pend_out, i) != Py_None)
        return 0;
    /* the send's own time, not the read's (a kernel arrival stamp is earlier): the request
     * is in the window by it, so none goes at or after ``until`` */
    long long ts = mono_ns();
    if (ts >= tm->until)
        return 0;
    PyObject *data = PyList_GET_ITEM(tm->reqs, k);
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "a request must be bytes");
        return -1;
    }
    int fd = fd_of(PyList_GET_ITEM(socks, i));
    if (fd == FD_ERROR)
        return -1;
    ssize_t n;
    for (;;) {
        n = send(fd, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data),
                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0 || errno != EINTR)
            break;
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
    if (n < 0)  /* failed or would block: nothing sent here (the round's own send goes on) */
        return 0;
    if (append_ll(tm->sent_conn, i) < 0 || append_ll(tm->sent_end, k) < 0 ||
        append_ll(tm->sent_t, ts) < 0)
        return -1;
    return n < PyBytes_GET_SIZE(data) ? (long long)n + 1 : 0;
}

/* The read round of recv_fixed and recv_tmpl (tm NULL: no template). */
static PyObject *read_round(PyObject *socks, PyObject *pend, PyObject *ready, Py_ssize_t k,
                            PyObject *bufobj, Py_ssize_t off, Py_ssize_t last,
                            Py_ssize_t chunk, Py_ssize_t fixed, PyObject *seg_conn,
                            PyObject *seg_end, PyObject *seg_t, Tmpl *tm, int stamped) {
    Py_buffer b;
    if (PyObject_GetBuffer(bufobj, &b, PyBUF_WRITABLE) < 0)
        return NULL;
    int status = DONE;
    long long nread = 0, t = 0;
    int64_t offset = stamped ? real_offset_ns() : 0;
    Py_ssize_t nready = PyList_GET_SIZE(ready), nsocks = PyList_GET_SIZE(socks);
    for (; k < nready; k++) {
        long long i;
        if (get_ll(ready, k, &i) < 0)
            goto fail;
        if (i < 0 || i >= nsocks || i >= PyList_GET_SIZE(pend)) {
            PyErr_SetString(PyExc_IndexError, "connection out of range");
            goto fail;
        }
        PyObject *s = PyList_GET_ITEM(socks, i);
        PyObject *p = PyList_GET_ITEM(pend, i);
        int pending = PyBytes_CheckExact(p) ? PyBytes_GET_SIZE(p) > 0 : PyObject_IsTrue(p);
        if (pending < 0)
            goto fail;
        if (s == Py_None || pending || off > last) {
            status = CAREFUL;
            break;
        }
        if (off + chunk > b.len) {
            PyErr_SetString(PyExc_ValueError, "the round buffer is too short");
            goto fail;
        }
        int fd = fd_of(s);
        if (fd == FD_ERROR)
            goto fail;
        ssize_t n;
        for (;;) {
            if (stamped)
                n = recv_stamped(fd, (char *)b.buf + off, (size_t)chunk, offset, &t);
            else
                n = recv(fd, (char *)b.buf + off, (size_t)chunk, MSG_DONTWAIT);
            if (n >= 0 || errno != EINTR)
                break;
            if (PyErr_CheckSignals() < 0)  /* as socket.recv_into (PEP 475) */
                goto fail;
        }
        if (n < 0) {
            status = FAILED;
            nread = errno;
            break;
        }
        if (!stamped)
            t = mono_ns();
        long long queued = 0;
        if (n && fixed > 0 && n % fixed == 0) {
            /* whole fixed-size frames */
        } else if (tm != NULL && n && tm->tlen && n % tm->tlen == 0 && n <= tm->rep.len &&
                   memcmp((char *)b.buf + off, tm->rep.buf, (size_t)n) == 0) {
            queued = tmpl_take(tm, socks, i, off, n / tm->tlen, t);
            if (queued < 0)
                goto fail;
        } else {
            status = LOOK;
            nread = n;
            break;
        }
        if (append_ll(seg_conn, i) < 0 || append_ll(seg_end, off + n) < 0 ||
            append_ll(seg_t, t) < 0)
            goto fail;
        off += n;
        if (queued) {
            status = QUEUE;
            nread = queued - 1;
            break;
        }
    }
    PyBuffer_Release(&b);
    return Py_BuildValue("(nniLL)", k, off, status, nread, t);
fail:
    PyBuffer_Release(&b);
    return NULL;
}

/* recv_fixed(socks, pend, ready, k, buf, off, last, chunk, fixed, seg_conn, seg_end, seg_t
 *            [, stamped]) -> (k, off, status, n, t)
 *
 * One read round over ready[k:], as Transport.plain_read_round: recv each connection's
 * bytes into buf at off; a read of whole frames of ``fixed`` bytes (fixed > 0) is kept
 * (its connection, end and receive time appended) and the next read goes after it. It
 * stops at the first read it does not keep, returning where: status 0, all done; 1, the
 * connection ready[k] needs the careful read (no socket, pending bytes, or off past
 * last); 2, its recv failed with errno n; 3, it read n bytes at t that are not whole
 * frames (or fixed is 0): Python looks at them. With ``stamped`` (the sockets have
 * SO_TIMESTAMPNS), a read's time is the kernel's arrival stamp of its last segment, on
 * time.monotonic_ns()'s clock (the offset read once a call), else the clock after it. */
static PyObject *recv_fixed(PyObject *self, PyObject *args) {
    PyObject *socks, *pend, *ready, *bufobj, *seg_conn, *seg_end, *seg_t;
    Py_ssize_t k, off, last, chunk, fixed;
    int stamped = 0;
    if (!PyArg_ParseTuple(args, "O!O!O!nOnnnnO!O!O!|p", &PyList_Type, &socks, &PyList_Type,
                          &pend, &PyList_Type, &ready, &k, &bufobj, &off, &last, &chunk, &fixed,
                          &PyList_Type, &seg_conn, &PyList_Type, &seg_end, &PyList_Type, &seg_t,
                          &stamped))
        return NULL;
    return read_round(socks, pend, ready, k, bufobj, off, last, chunk, fixed, seg_conn, seg_end,
                      seg_t, NULL, stamped);
}

/* recv_tmpl(socks, pend, ready, k, buf, off, last, chunk, fixed, seg_conn, seg_end, seg_t,
 *           rep, tlen, code, walk, codes, early[, stamped]) -> (k, off, status, n, t)
 *
 * As recv_fixed, and a read of copies of the protocol's template reply (rep: the template
 * repeated; tlen: its length; code: its reply code) is kept too, as
 * harness.wire.rounds.templates does: its frame starts join walk and its codes join codes,
 * and with ``early`` (None, or (reqs, owed, until, pend_out, sent_conn, sent_end, sent_t))
 * the connection's next requests go out at once, as send_early. Status 4: that early send
 * went out in part, n bytes of it (its entry is the last of sent_*): Python queues the
 * rest. */
static PyObject *recv_tmpl(PyObject *self, PyObject *args) {
    PyObject *socks, *pend, *ready, *bufobj, *seg_conn, *seg_end, *seg_t, *repobj, *early;
    PyObject *owedobj = NULL;
    Py_ssize_t k, off, last, chunk, fixed;
    Tmpl tm;
    int stamped = 0;
    memset(&tm, 0, sizeof tm);
    if (!PyArg_ParseTuple(args, "O!O!O!nOnnnnO!O!O!OnOO!O!O|p", &PyList_Type, &socks,
                          &PyList_Type, &pend, &PyList_Type, &ready, &k, &bufobj, &off, &last,
                          &chunk, &fixed, &PyList_Type, &seg_conn, &PyList_Type, &seg_end,
                          &PyList_Type, &seg_t, &repobj, &tm.tlen, &tm.code, &PyList_Type,
                          &tm.walk, &PyList_Type, &tm.codes, &early, &stamped))
        return NULL;
    if (tm.tlen < 0) {
        PyErr_SetString(PyExc_ValueError, "a template's length is not negative");
        return NULL;
    }
    if (early != Py_None) {
        if (!PyTuple_Check(early)) {
            PyErr_SetString(PyExc_TypeError, "early must be None or a tuple");
            return NULL;
        }
        if (!PyArg_ParseTuple(early, "O!OLO!O!O!O!", &PyList_Type, &tm.reqs, &owedobj,
                              &tm.until, &PyList_Type, &tm.pend_out, &PyList_Type,
                              &tm.sent_conn, &PyList_Type, &tm.sent_end, &PyList_Type,
                              &tm.sent_t))
            return NULL;
    }
    if (PyObject_GetBuffer(repobj, &tm.rep, PyBUF_SIMPLE) < 0)
        return NULL;
    if (owedobj != NULL) {
        if (PyObject_GetBuffer(owedobj, &tm.owed, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyBuffer_Release(&tm.rep);
            return NULL;
        }
        const char *f = tm.owed.format ? tm.owed.format : "B";
        if (tm.owed.itemsize != 8 || !strchr("qlQL", f[strlen(f) - 1])) {
            PyBuffer_Release(&tm.owed);
            PyBuffer_Release(&tm.rep);
            PyErr_SetString(PyExc_TypeError, "owed must be an int64 array");
            return NULL;
        }
        tm.early = 1;
    }
    PyObject *r = read_round(socks, pend, ready, k, bufobj, off, last, chunk, fixed, seg_conn,
                             seg_end, seg_t, &tm, stamped);
    if (tm.early)
        PyBuffer_Release(&tm.owed);
    PyBuffer_Release(&tm.rep);
    return r;
}

/* A stamp's delay field (µs) grows by ``lag`` µs, saturating, and its check with it (the
 * check is linear in each word, so it moves by the delay's weight times the change):
 * binary (seven u32 words) or ASCII (56 hex digits, the delay at 32, the check at 0). */
static const char HEX[] = "0123456789abcdef";

static int hex8(const unsigned char *p, uint32_t *v) {
    uint32_t x = 0;
    for (int j = 0; j < 8; j++) {
        unsigned char c = p[j];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 0;
}

static void put_hex8(unsigned char *p, uint32_t v) {
    for (int j = 7; j >= 0; j--, v >>= 4)
        p[j] = (unsigned char)HEX[v & 15];
}

static void add_delay(unsigned char *st, int ascii, uint32_t lag) {
    uint32_t old, check;
    if (ascii) {
        if (hex8(st + 32, &old) < 0 || hex8(st, &check) < 0)
            return;  /* not a stamp we built: left as it is */
    } else {
        old = rd32(st + 16);
        check = rd32(st);
    }
    uint32_t now = old + lag < old ? 0xFFFFFFFFu : old + lag;
    check += W[3] * (now - old);
    if (ascii) {
        put_hex8(st + 32, now);
        put_hex8(st, check);
    } else {
        wr32(st + 16, now);
        wr32(st, check);
    }
}

/* A binary stamp inside a masked WebSocket client frame's payload, ``at`` bytes into it
 * (``mask``: the frame's key): unmasked, restamped (add_delay), masked again. */
static void add_delay_masked(unsigned char *payload, long long at, const unsigned char *mask,
                             uint32_t lag) {
    unsigned char st[28];
    for (int j = 0; j < 28; j++)
        st[j] = payload[at + j] ^ mask[(at + j) & 3];
    add_delay(st, 0, lag);
    for (int j = 0; j < 28; j++)
        payload[at + j] = st[j] ^ mask[(at + j) & 3];
}

/* A message of data[s:e] restamped: its stamp at ``hdr`` bytes into it, or (ws) into the
 * payload of the masked client frame that starts at s, when the stamp lies wholly there. */
static void lag_one(int ascii, int ws, long long hdr, unsigned char *buf, long long s,
                    long long e, uint32_t lag) {
    if (!ws) {
        if (s + hdr + (ascii ? 56 : 28) <= e)
            add_delay(buf + s + hdr, ascii, lag);
        return;
    }
    if (s + 2 > e)
        return;
    unsigned len7 = buf[s + 1] & 0x7F;
    long long head = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
    if (!(buf[s + 1] & 0x80) || s + head + 4 + hdr + 28 > e)
        return;  /* not a masked frame holding a whole stamp */
    add_delay_masked(buf + s + head + 4, hdr, buf + s + head, lag);
}

/* What a round's sends restamp (send_bounds' ``lag``): each message's stamp at ``hdr`` bytes
 * into it (ws: into its masked frame's payload), binary or ASCII; its messages all ``size``
 * bytes, or ending at ``ends``. */
typedef struct {
    int on, ascii, varied, ws, patch;
    long long hdr, size, t0;
    Py_buffer ends;
    Py_ssize_t m;  /* varied: the next message's index in ends */
    PyObject *lags;  /* a list: each send's lag (µs) appended to it, or NULL */
} Lag;

static int lag_open(PyObject *obj, Lag *lg) {
    memset(lg, 0, sizeof *lg);
    if (obj == Py_None)
        return 0;
    PyObject *sz, *lags = Py_None;
    if (!PyArg_ParseTuple(obj, "LpLO|pO", &lg->hdr, &lg->ascii, &lg->t0, &sz, &lg->ws, &lags))
        return -1;
    if (lags != Py_None) {
        if (!PyList_Check(lags)) {
            PyErr_SetString(PyExc_TypeError, "lags must be a list");
            return -1;
        }
        lg->lags = lags;
    }
    lg->patch = lg->hdr >= 0;
    if (!lg->patch) {  /* the lags alone (a stamp offset of -1: nothing restamped) */
        if (lg->hdr != -1 || lg->lags == NULL) {
            PyErr_SetString(PyExc_ValueError, "a stamp offset must not be negative");
            return -1;
        }
        lg->on = 1;
        return 0;
    }
    if (PyLong_Check(sz)) {
        lg->size = PyLong_AsLongLong(sz);
        if (lg->size == -1 && PyErr_Occurred())
            return -1;
        if (lg->size <= 0) {
            PyErr_SetString(PyExc_ValueError, "a message size must be positive");
            return -1;
        }
    } else {
        if (PyObject_GetBuffer(sz, &lg->ends, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
            return -1;
        lg->varied = 1;
        if (lg->ends.itemsize != 8 || lg->ends.format == NULL ||
            (strcmp(lg->ends.format, "q") != 0 && strcmp(lg->ends.format, "l") != 0 &&
             strcmp(lg->ends.format, "<q") != 0 && strcmp(lg->ends.format, "<l") != 0 &&
             strcmp(lg->ends.format, "=q") != 0 && strcmp(lg->ends.format, "=l") != 0)) {
            PyBuffer_Release(&lg->ends);
            PyErr_SetString(PyExc_TypeError, "message ends must be int64");
            return -1;
        }
    }
    lg->on = 1;
    return 0;
}

static void lag_close(Lag *lg) {
    if (lg->on && lg->varied)
        PyBuffer_Release(&lg->ends);
}

/* The messages of data[a:e] (one connection's, about to be sent) carry their send's lag
 * behind the round's clock read, rounded to whole µs. A stamp that does not lie wholly in
 * data[a:e] is left as it is. */
static int lag_apply(Lag *lg, unsigned char *buf, long long a, long long e) {
    long long ns = (long long)mono_ns() - lg->t0;
    uint32_t lag = ns <= 0 ? 0 : ns >= 4294967295000LL ? 0xFFFFFFFFu
                                                       : (uint32_t)((ns + 500) / 1000);
    if (lg->lags != NULL && append_ll(lg->lags, (long long)lag) < 0)
        return -1;
    if (!lg->patch)
        return 0;
    if (!lg->varied) {
        if (lag)
            for (long long s = a; s < e; s += lg->size)
                lag_one(lg->ascii, lg->ws, lg->hdr, buf, s, e, lag);
        return 0;
    }
    const long long *ends = lg->ends.buf;
    Py_ssize_t n = lg->ends.len / 8;
    while (lg->m < n) {
        long long s = lg->m ? ends[lg->m - 1] : 0;
        if (s >= e)
            break;
        if (lag && s >= a)
            lag_one(lg->ascii, lg->ws, lg->hdr, buf, s, e, lag);
        lg->m++;
    }
    return 0;
}

/* send_bounds(socks, idx, bounds, data[, lag]) -> [(k, sent, errno), ...]
 *
 * One send per connection, as Transport.send_round: data[bounds[k-1]:bounds[k]] to
 * socks[idx[k]]. Returns the sends that did not go out whole: k, the bytes sent, and the
 * errno when it failed (EAGAIN: nothing sent); Python queues or fails those, in order.
 * With ``lag`` ((hdr, ascii, t0, size or int64 message ends[, ws[, lags]])), just before
 * each send its messages' stamps add to their delay how long after ``t0`` (the round's
 * clock read) it went out (harness.wire.restamp; ws: binary stamps in masked client
 * frames), and with a list ``lags`` each send's lag (µs) is appended to it; a ``hdr`` of
 * -1 restamps nothing (the lags alone). */
static PyObject *sends(PyObject *socks, PyObject *idxobj, PyObject *bounds, PyObject *dataobj,
                       PyObject *lagobj) {
    Index ix;
    if (index_open(idxobj, &ix) < 0)
        return NULL;
    Lag lg;
    if (lag_open(lagobj, &lg) < 0) {
        index_close(&ix);
        return NULL;
    }
    Py_buffer d;
    if (PyObject_GetBuffer(dataobj, &d, lg.patch ? PyBUF_WRITABLE : PyBUF_SIMPLE) < 0) {
        lag_close(&lg);
        index_close(&ix);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto fail;
    if (PyList_GET_SIZE(bounds) != ix.n) {
        PyErr_SetString(PyExc_ValueError, "idx and bounds differ in length");
        goto fail;
    }
    Py_ssize_t nsocks = PyList_GET_SIZE(socks);
    long long a = 0;
    for (Py_ssize_t k = 0; k < ix.n; k++) {
        long long i, e;
        if (index_get(&ix, k, &i) < 0 || get_ll(bounds, k, &e) < 0)
            goto fail;
        if (i < 0 || i >= nsocks || e < a || e > d.len) {
            PyErr_SetString(PyExc_IndexError, "a send out of range");
            goto fail;
        }
        int fd = fd_of(PyList_GET_ITEM(socks, i));
        if (fd == FD_ERROR)
            goto fail;
        if (lg.on && lag_apply(&lg, (unsigned char *)d.buf, a, e) < 0)
            goto fail;
        ssize_t n;
        for (;;) {
            n = send(fd, (const char *)d.buf + a, (size_t)(e - a), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0 || errno != EINTR)
                break;
            if (PyErr_CheckSignals() < 0)
                goto fail;
        }
        if (n < 0 || n < e - a) {
            PyObject *row = Py_BuildValue("(nLi)", k, (long long)(n < 0 ? 0 : n),
                                          n < 0 ? errno : 0);
            if (row == NULL || PyList_Append(out, row) < 0) {
                Py_XDECREF(row);
                goto fail;
            }
            Py_DECREF(row);
        }
        a = e;
    }
    PyBuffer_Release(&d);
    lag_close(&lg);
    index_close(&ix);
    return out;
fail:
    Py_XDECREF(out);
    PyBuffer_Release(&d);
    lag_close(&lg);
    index_close(&ix);
    return NULL;
}

static PyObject *send_bounds(PyObject *self, PyObject *args) {
    PyObject *socks, *idxobj, *bounds, *dataobj, *lagobj = Py_None;
    if (!PyArg_ParseTuple(args, "O!OO!O|O", &PyList_Type, &socks, &idxobj, &PyList_Type,
                          &bounds, &dataobj, &lagobj))
        return NULL;
    return sends(socks, idxobj, bounds, dataobj, lagobj);
}

/* take_few(buf, seg_conn, seg_end, seg_t, size, hdr, body, key, me, gids, most)
 *     -> (conn, t, seq, tint, delay) | None
 *
 * A small round of fixed-size frames, whole frames in each read (harness.wire.inbound.
 * take_few), at most ``most`` in all: each frame's length prefix (hdr bytes, big-endian)
 * must be ``body``, its stamp's check must hold, and it must be this worker's (``me``)
 * message on this connection (gids[conn]). Returns each frame's connection and receive
 * time (the inputs themselves when each read holds one frame), seq, intended send time
 * (ns) and delay (µs), or None when the round is not that or any frame is not good: the
 * numpy path then counts it. */
static PyObject *frames_few(PyObject *bufobj, PyObject *seg_conn, PyObject *seg_end,
                            PyObject *seg_t, Py_ssize_t size, Py_ssize_t hdr,
                            unsigned long long body, unsigned long long key, long me,
                            PyObject *gids, Py_ssize_t maxn) {
    Py_ssize_t n = PyList_GET_SIZE(seg_conn);
    if (n == 0 || PyList_GET_SIZE(seg_end) != n || PyList_GET_SIZE(seg_t) != n || hdr < 0 ||
        hdr > 8 || size < hdr + 28)
        Py_RETURN_NONE;
    long long e;
    if (get_ll(seg_end, n - 1, &e) < 0)
        return NULL;
    if (e < n * size || e % size != 0 || e / size > maxn)
        Py_RETURN_NONE;
    Py_ssize_t m = (Py_ssize_t)(e / size), f = 0;  /* frames */
    int multi = m != n;
    Py_buffer b;
    if (PyObject_GetBuffer(bufobj, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *conn = NULL, *tt = NULL, *seq = NULL, *tint = NULL, *delay = NULL;
    Py_ssize_t ngids = PyList_GET_SIZE(gids);
    uint32_t k32 = (uint32_t)key;
    seq = PyList_New(m);
    tint = PyList_New(m);
    delay = PyList_New(m);
    if (seq == NULL || tint == NULL || delay == NULL)
        goto fail;
    if (multi) {
        conn = PyList_New(m);
        tt = PyList_New(m);
        if (conn == NULL || tt == NULL)
            goto fail;
    } else {
        conn = seg_conn;
        tt = seg_t;
        Py_INCREF(conn);
        Py_INCREF(tt);
    }
    long long prev = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        long long end, c, g;
        if (get_ll(seg_end, j, &end) < 0 || get_ll(seg_conn, j, &c) < 0)
            goto fail;
        if (end <= prev || (end - prev) % size != 0 || end > b.len || c < 0 || c >= ngids)
            goto none;
        if (get_ll(gids, c, &g) < 0)
            goto fail;
        for (long long at = prev; at < end; at += size, f++) {
            if (f >= m)
                goto none;
            const unsigned char *p = (const unsigned char *)b.buf + at;
            unsigned long long h = 0;
            for (Py_ssize_t q = 0; q < hdr; q++)
                h = h << 8 | p[q];
            if (h != body)
                goto none;
            p += hdr;
            uint32_t w[7];
            for (int q = 0; q < 7; q++)
                w[q] = rd32(p + 4 * q);
            uint32_t chk = w[1] * W[0] + w[2] * W[1] + w[3] * W[2] + w[4] * W[3] +
                           w[5] * W[4] + w[6] * W[5] + k32;
            if (chk != w[0] || (long)(w[3] >> 16) != me || g != (long long)w[1])
                goto none;
            PyObject *a = PyLong_FromUnsignedLong(w[2]);
            PyObject *ti = PyLong_FromUnsignedLongLong((unsigned long long)w[5] |
                                                       (unsigned long long)w[6] << 32);
            PyObject *dd = PyLong_FromUnsignedLong(w[4]);
            if (a == NULL || ti == NULL || dd == NULL) {
                Py_XDECREF(a);
                Py_XDECREF(ti);
                Py_XDECREF(dd);
                goto fail;
            }
            PyList_SET_ITEM(seq, f, a);
            PyList_SET_ITEM(tint, f, ti);
            PyList_SET_ITEM(delay, f, dd);
            if (multi) {
                PyObject *co = PyList_GET_ITEM(seg_conn, j), *to = PyList_GET_ITEM(seg_t, j);
                Py_INCREF(co);
                Py_INCREF(to);
                PyList_SET_ITEM(conn, f, co);
                PyList_SET_ITEM(tt, f, to);
            }
        }
        prev = end;
    }
    PyBuffer_Release(&b);
    return Py_BuildValue("(NNNNN)", conn, tt, seq, tint, delay);
none:
    PyBuffer_Release(&b);
    Py_XDECREF(conn);
    Py_XDECREF(tt);
    Py_XDECREF(seq);
    Py_XDECREF(tint);
    Py_XDECREF(delay);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&b);
    Py_XDECREF(conn);
    Py_XDECREF(tt);
    Py_XDECREF(seq);
    Py_XDECREF(tint);
    Py_XDECREF(delay);
    return NULL;
}

static PyObject *take_few(PyObject *self, PyObject *args) {
    PyObject *bufobj, *seg_conn, *seg_end, *seg_t, *gids;
    Py_ssize_t size, hdr, maxn;
    unsigned long long body, key;
    long me;
    if (!PyArg_ParseTuple(args, "OO!O!O!nnKKlO!n", &bufobj, &PyList_Type, &seg_conn,
                          &PyList_Type, &seg_end, &PyList_Type, &seg_t, &size, &hdr, &body,
                          &key, &me, &PyList_Type, &gids, &maxn))
        return NULL;
    return frames_few(bufobj, seg_conn, seg_end, seg_t, size, hdr, body, key, me, gids, maxn);
}

/* build_few(out, hdr, size, gids, counts, seq0, t, kw, key) -> bounds
 * build_few_at(out, hdr, size, gids, counts, seq0, tints, delays, kw, key) -> bounds
 *
 * Write the stamps of a small round into ``out`` (frames of ``size`` bytes whose prefix
 * and filler are already there, harness.wire.batch.Outbound): counts[k] messages for
 * gids[k], seqs from seq0, intended at t (ns) with no delay, or each at tints[j] with
 * delays[j] (µs). Returns where each connection's messages end. */
static PyObject *build(PyObject *out, Py_ssize_t hdr, Py_ssize_t size, PyObject *gids,
                       PyObject *counts, unsigned long long seq0, unsigned long long t,
                       PyObject *tints, PyObject *delays, uint32_t kw, uint32_t key) {
    Py_ssize_t m = PyList_GET_SIZE(gids);
    if (PyList_GET_SIZE(counts) != m) {
        PyErr_SetString(PyExc_ValueError, "gids and counts differ in length");
        return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(out, &b, PyBUF_WRITABLE) < 0)
        return NULL;
    PyObject *bounds = PyList_New(m);
    if (bounds == NULL)
        goto fail;
    Py_ssize_t at = hdr, j = 0, ntimes = tints ? PyList_GET_SIZE(tints) : 0;
    unsigned long long seq = seq0;
    for (Py_ssize_t k = 0; k < m; k++) {
        long long g, c;
        if (get_ll(gids, k, &g) < 0 || get_ll(counts, k, &c) < 0)
            goto fail;
        for (long long q = 0; q < c; q++) {
            if (at - hdr + size > b.len) {
                PyErr_SetString(PyExc_ValueError, "the send buffer is too short");
                goto fail;
            }
            uint32_t lo, hi, d = 0;
            if (tints) {
                if (j >= ntimes || PyList_GET_SIZE(delays) != ntimes) {
                    PyErr_SetString(PyExc_ValueError, "too few intended times");
                    goto fail;
                }
                unsigned long long tj = mask_ll(PyList_GET_ITEM(tints, j));
                if (tj == (unsigned long long)-1 && PyErr_Occurred())
                    goto fail;
                unsigned long long dj = mask_ll(PyList_GET_ITEM(delays, j));
                if (dj == (unsigned long long)-1 && PyErr_Occurred())
                    goto fail;
                lo = (uint32_t)tj;
                hi = (uint32_t)(tj >> 32);
                d = (uint32_t)dj;
            } else {
                lo = (uint32_t)t;
                hi = (uint32_t)(t >> 32);
            }
            uint32_t gg = (uint32_t)g, s = (uint32_t)seq;
            unsigned char *p = (unsigned char *)b.buf + at;
            wr32(p, gg * W[0] + s * W[1] + kw * W[2] + d * W[3] + lo * W[4] + hi * W[5] + key);
            wr32(p + 4, gg);
            wr32(p + 8, s);
            wr32(p + 12, kw);
            wr32(p + 16, d);
            wr32(p + 20, lo);
            wr32(p + 24, hi);
            at += size;
            seq++;
            j++;
        }
        PyObject *e = PyLong_FromSsize_t(at - hdr);
        if (e == NULL)
            goto fail;
        PyList_SET_ITEM(bounds, k, e);
    }
    PyBuffer_Release(&b);
    return bounds;
fail:
    Py_XDECREF(bounds);
    PyBuffer_Release(&b);
    return NULL;
}

static PyObject *build_few(PyObject *self, PyObject *args) {
    PyObject *out, *gids, *counts, *seqo, *to;
    Py_ssize_t hdr, size;
    unsigned long kw, key;
    if (!PyArg_ParseTuple(args, "OnnO!O!OOkk", &out, &hdr, &size, &PyList_Type, &gids,
                          &PyList_Type, &counts, &seqo, &to, &kw, &key))
        return NULL;
    unsigned long long seq0 = PyLong_AsUnsignedLongLongMask(seqo);
    if (seq0 == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned long long t = PyLong_AsUnsignedLongLongMask(to);
    if (t == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return build(out, hdr, size, gids, counts, seq0, t, NULL, NULL, (uint32_t)kw, (uint32_t)key);
}

static PyObject *build_few_at(PyObject *self, PyObject *args) {
    PyObject *out, *gids, *counts, *seqo, *tints, *delays;
    Py_ssize_t hdr, size;
    unsigned long kw, key;
    if (!PyArg_ParseTuple(args, "OnnO!O!OO!O!kk", &out, &hdr, &size, &PyList_Type, &gids,
                          &PyList_Type, &counts, &seqo, &PyList_Type, &tints, &PyList_Type,
                          &delays, &kw, &key))
        return NULL;
    unsigned long long seq0 = PyLong_AsUnsignedLongLongMask(seqo);
    if (seq0 == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return build(out, hdr, size, gids, counts, seq0, 0, tints, delays, (uint32_t)kw,
                 (uint32_t)key);
}


/* A writable one-dimensional array of ``itemsize``-byte items (numpy's int64 or bool). */
static int array_open(PyObject *o, Py_buffer *v, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(o, v, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (v->itemsize != itemsize) {
        PyBuffer_Release(v);
        PyErr_Format(PyExc_TypeError, "%s: an array of %zd-byte items", what, itemsize);
        return -1;
    }
    return 0;
}

/* Open arrays objs[0..k) (item sizes ``sizes``, named ``names`` in errors) into v, and check
 * that each holds at least as many items as the first: the count of arrays opened (release
 * them), with an exception set when it is not k or the lengths differ. */
static int arrays_open(PyObject **objs, const Py_ssize_t *sizes, const char **names, int k,
                       Py_buffer *v, Py_ssize_t *n) {
    int opened = 0;
    for (; opened < k; opened++)
        if (array_open(objs[opened], &v[opened], sizes[opened], names[opened]) < 0)
            return opened;
    *n = v[0].len / sizes[0];
    for (int j = 1; j < k; j++)
        if (v[j].len / sizes[j] < *n) {
            PyErr_SetString(PyExc_ValueError, "the arrays differ in length");
            break;
        }
    return opened;
}

/* The numbers (data[fd]) of n epoll events' files: the readable (*rd, anything but
 * "writable" alone: EOF, errors) and the writable (*wr, anything but "readable" alone), as
 * selectors. New lists; -1 with an exception set (the lists then NULL). */
static int events_lists(struct epoll_event *ev, int n, PyObject *data, PyObject **rd,
                        PyObject **wr) {
    *rd = PyList_New(0);
    *wr = PyList_New(0);
    if (*rd == NULL || *wr == NULL)
        goto fail;
    for (int k = 0; k < n; k++) {
        PyObject *fd = PyLong_FromLong(ev[k].data.fd);
        if (fd == NULL)
            goto fail;
        PyObject *num = PyDict_GetItemWithError(data, fd);  /* borrowed */
        Py_DECREF(fd);
        if (num == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_KeyError, "fd %d is not registered", ev[k].data.fd);
            goto fail;
        }
        uint32_t e = ev[k].events;
        if ((e & ~(uint32_t)EPOLLOUT) && PyList_Append(*rd, num) < 0)
            goto fail;
        if ((e & ~(uint32_t)EPOLLIN) && PyList_Append(*wr, num) < 0)
            goto fail;
    }
    return 0;
fail:
    Py_CLEAR(*rd);
    Py_CLEAR(*wr);
    return -1;
}

/* epoll_ready(epfd, timeout_s, maxevents, data) -> (readable, writable)
 *
 * harness.wire.poller.Poller.ready: wait up to timeout_s (rounded up to whole ms, as
 * select.epoll.poll; negative: no limit), then each event's number (data[fd]): readable
 * on anything but "writable" alone (EOF, errors), writable on anything but "readable"
 * alone, as selectors. A signal ends the wait with no events (after its handler). */
static PyObject *epoll_ready(PyObject *self, PyObject *args) {
    int epfd, maxevents;
    double timeout;
    PyObject *data;
    if (!PyArg_ParseTuple(args, "idiO!", &epfd, &timeout, &maxevents, &PyDict_Type, &data))
        return NULL;
    if (maxevents < 1) {
        PyErr_SetString(PyExc_ValueError, "maxevents must be positive");
        return NULL;
    }
    int ms = timeout < 0 ? -1 : (timeout * 1e3 > 2e9 ? 2000000000 : (int)ceil(timeout * 1e3));
    struct epoll_event *ev = PyMem_Malloc(sizeof(struct epoll_event) * (size_t)maxevents);
    if (ev == NULL)
        return PyErr_NoMemory();
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = epoll_wait(epfd, ev, maxevents, ms);
    Py_END_ALLOW_THREADS
    PyObject *rd = NULL, *wr = NULL;
    if (n < 0) {
        int err = errno;
        if (err != EINTR) {
            errno = err;
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        if (PyErr_CheckSignals() < 0)
            goto fail;
        n = 0;
    }
    if (events_lists(ev, n, data, &rd, &wr) < 0)
        goto fail;
    PyMem_Free(ev);
    return Py_BuildValue("(NN)", rd, wr);
fail:
    PyMem_Free(ev);
    Py_XDECREF(rd);
    Py_XDECREF(wr);
    return NULL;
}

/* credit_few(own, now, outstanding, credits, progress, refills)
 *
 * harness.worker.pacing.Pacer.credit_few's loop: a reply on each connection of ``own``
 * (one entry per reply) frees an outstanding message (and, ``refills``, a credit), and
 * marks progress at ``now``. The arrays are int64, one entry per connection. */
static PyObject *credits_few(PyObject *own, long long now, PyObject *oo, PyObject *co,
                             PyObject *po, int refills) {
    Py_buffer ob, cb, pb;
    if (array_open(oo, &ob, 8, "outstanding") < 0)
        return NULL;
    if (array_open(co, &cb, 8, "credits") < 0) {
        PyBuffer_Release(&ob);
        return NULL;
    }
    if (array_open(po, &pb, 8, "progress") < 0) {
        PyBuffer_Release(&ob);
        PyBuffer_Release(&cb);
        return NULL;
    }
    long long *out = ob.buf, *cr = cb.buf, *pr = pb.buf;
    Py_ssize_t n = ob.len / 8;
    PyObject *ret = Py_None;
    if (cb.len / 8 < n || pb.len / 8 < n) {
        PyErr_SetString(PyExc_ValueError, "the arrays differ in length");
        ret = NULL;
    }
    for (Py_ssize_t k = 0; ret && k < PyList_GET_SIZE(own); k++) {
        long long i;
        if (get_ll(own, k, &i) < 0) {
            ret = NULL;
            break;
        }
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_IndexError, "connection out of range");
            ret = NULL;
            break;
        }
        if (out[i] > 0) {
            out[i]--;
            if (refills)
                cr[i]++;
        }
        pr[i] = now;
    }
    PyBuffer_Release(&ob);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&pb);
    Py_XINCREF(ret);
    return ret;
}

static PyObject *credit_few(PyObject *self, PyObject *args) {
    PyObject *own, *oo, *co, *po;
    long long now;
    int refills;
    if (!PyArg_ParseTuple(args, "O!LOOOp", &PyList_Type, &own, &now, &oo, &co, &po, &refills))
        return NULL;
    return credits_few(own, now, oo, co, po, refills);
}

/* mark_few(seqs, seen, lo) -> int
 *
 * harness.core.ledger.EchoLedger.record_few: mark each seq at or above ``lo`` (the measure
 * window's first) in the bool array ``seen``; returns how many (receipts), or -1, with
 * nothing marked, when a seq is past the array's end (Python grows it). */
static long long marks_few(PyObject *seqs, PyObject *so, long long lo) {  /* -2: an error */
    Py_buffer sb;
    if (array_open(so, &sb, 1, "seen") < 0)
        return -2;
    unsigned char *seen = sb.buf;
    Py_ssize_t m = PyList_GET_SIZE(seqs);
    long long got = 0;
    for (int pass = 0; pass < 2; pass++) {  /* look first, then mark: all or nothing */
        for (Py_ssize_t k = 0; k < m; k++) {
            long long s;
            if (get_ll(seqs, k, &s) < 0) {
                PyBuffer_Release(&sb);
                return -2;
            }
            if (s < lo)
                continue;
            if (pass == 0) {
                if (s >= sb.len) {
                    PyBuffer_Release(&sb);
                    return -1;
                }
                continue;
            }
            seen[s] = 1;
            got++;
        }
    }
    PyBuffer_Release(&sb);
    return got;
}

static PyObject *mark_few(PyObject *self, PyObject *args) {
    PyObject *seqs, *so;
    long long lo;
    if (!PyArg_ParseTuple(args, "O!OL", &PyList_Type, &seqs, &so, &lo))
        return NULL;
    long long got = marks_few(seqs, so, lo);
    return got < -1 ? NULL : PyLong_FromLongLong(got);
}

/* The in-order ring (harness.wire.protocol.InOrder): ``ring`` an (n, cap) array of 28-byte
 * stamps (harness/wire/stamp.py's BIN_DTYPE), ``head`` and ``tail`` int64 arrays of the
 * requests answered and sent per connection. */
typedef struct {
    Py_buffer v[3];
    int opened;
    unsigned char *st;
    long long *head, *tail;
    Py_ssize_t n, cap;
} Ring;

static void ring_close(Ring *r) {
    for (int j = 0; j < r->opened; j++)
        PyBuffer_Release(&r->v[j]);
}

static int ring_open(PyObject *ro, PyObject *ho, PyObject *to, Ring *r) {
    PyObject *objs[3] = {ho, to, ro};
    const Py_ssize_t sizes[3] = {8, 8, 28};
    const char *names[3] = {"head", "tail", "ring"};
    r->opened = arrays_open(objs, sizes, names, 3, r->v, &r->n);
    if (r->opened < 3 || PyErr_Occurred()) {
        ring_close(r);
        return -1;
    }
    r->head = r->v[0].buf;
    r->tail = r->v[1].buf;
    r->st = r->v[2].buf;
    r->cap = r->n ? r->v[2].len / 28 / r->n : 0;
    if (r->n && (r->cap < 1 || r->v[2].len != r->n * r->cap * 28)) {
        PyErr_SetString(PyExc_ValueError, "ring: an (n, cap) array of stamps");
        ring_close(r);
        return -1;
    }
    return 0;
}

static int conn_at(PyObject *conns, Py_ssize_t k, Py_ssize_t n, long long *i) {
    if (get_ll(conns, k, i) < 0)
        return -1;
    if (*i < 0 || *i >= n) {
        PyErr_SetString(PyExc_IndexError, "connection out of range");
        return -1;
    }
    return 0;
}

/* ring_pop(ring, head, tail, conns) -> (seqs, tints, delays) | None
 *
 * InOrder.pop_few: each reply of ``conns`` (its connection, one entry per reply, in read
 * order) answers the oldest request its connection has waiting: that stamp's seq,
 * intended time (ns) and delay (µs), and the head moves on. None, with nothing popped, when
 * a connection got more replies than it has requests waiting (numpy's path counts them). */
static PyObject *ring_pop(PyObject *self, PyObject *args) {
    PyObject *ro, *ho, *to, *conns;
    if (!PyArg_ParseTuple(args, "OOOO!", &ro, &ho, &to, &PyList_Type, &conns))
        return NULL;
    Ring r;
    if (ring_open(ro, ho, to, &r) < 0)
        return NULL;
    Py_ssize_t m = PyList_GET_SIZE(conns), k = 0;
    long long i = 0;
    PyObject *ret = NULL, *seqs = NULL, *tints = NULL, *delays = NULL;
    int short_ = 0;
    for (; k < m; k++) {  /* look first (heads move, then move back): all or nothing */
        if (conn_at(conns, k, r.n, &i) < 0)
            break;
        if (r.head[i] >= r.tail[i]) {
            short_ = 1;
            break;
        }
        r.head[i]++;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        get_ll(conns, j, &i);
        r.head[i]--;
    }
    if (PyErr_Occurred())
        goto done;
    if (short_) {
        ret = Py_NewRef(Py_None);
        goto done;
    }
    seqs = PyList_New(m);
    tints = PyList_New(m);
    delays = PyList_New(m);
    if (!seqs || !tints || !delays)
        goto done;
    for (k = 0; k < m; k++) {
        get_ll(conns, k, &i);
        const unsigned char *p = r.st + (i * r.cap + r.head[i] % r.cap) * 28;
        r.head[i]++;
        unsigned long long t = (unsigned long long)rd32(p + 20) |
                               (unsigned long long)rd32(p + 24) << 32;
        PyObject *a = PyLong_FromUnsignedLong(rd32(p + 8));
        PyObject *b = PyLong_FromUnsignedLongLong(t);
        PyObject *c = PyLong_FromUnsignedLong(rd32(p + 16));
        if (a)
            PyList_SET_ITEM(seqs, k, a);
        if (b)
            PyList_SET_ITEM(tints, k, b);
        if (c)
            PyList_SET_ITEM(delays, k, c);
        if (!a || !b || !c)
            goto done;  /* (heads moved: an out-of-memory run is over anyway) */
    }
    ret = PyTuple_Pack(3, seqs, tints, delays);
  done:
    Py_XDECREF(seqs);
    Py_XDECREF(tints);
    Py_XDECREF(delays);
    ring_close(&r);
    return ret;
}

/* ring_push(ring, head, tail, conns, counts, times, gids, seq0, worker, key) -> int
 *
 * InOrder._push of stamp.make's stamps, for the closed loop's early sends: connection
 * conns[k] sent counts[k] requests at times[k] (ns). Each gets a stamp (the next seq from
 * ``seq0``, connection gids[i], kind 0, no delay, intended time times[k], its check with
 * ``key``) queued at its connection's tail (a connection listed twice: after the first).
 * Returns how many were queued, or -1, with nothing queued, when a queue would outgrow the
 * ring (numpy's path grows it). */
static PyObject *ring_push(PyObject *self, PyObject *args) {
    PyObject *ro, *ho, *to, *conns, *counts, *times, *gids;
    long long seq0, worker, key;
    if (!PyArg_ParseTuple(args, "OOOO!O!O!O!LLL", &ro, &ho, &to, &PyList_Type, &conns,
                          &PyList_Type, &counts, &PyList_Type, &times, &PyList_Type, &gids,
                          &seq0, &worker, &key))
        return NULL;
    Py_ssize_t m = PyList_GET_SIZE(conns);
    if (PyList_GET_SIZE(counts) != m || PyList_GET_SIZE(times) != m) {
        PyErr_SetString(PyExc_ValueError, "conns, counts and times differ in length");
        return NULL;
    }
    Ring r;
    if (ring_open(ro, ho, to, &r) < 0)
        return NULL;
    if (PyList_GET_SIZE(gids) < r.n) {
        PyErr_SetString(PyExc_ValueError, "gids: one per connection");
        ring_close(&r);
        return NULL;
    }
    long long i = 0, c = 0, t = 0, g = 0, total = 0;
    Py_ssize_t k = 0;
    int full = 0;
    for (; k < m; k++) {  /* room for all first (tails move, then move back) */
        if (conn_at(conns, k, r.n, &i) < 0 || get_ll(counts, k, &c) < 0 ||
            get_ll(times, k, &t) < 0 || get_ll(gids, i, &g) < 0)
            break;
        if (c < 0) {
            PyErr_SetString(PyExc_ValueError, "a negative count");
            break;
        }
        if (r.tail[i] - r.head[i] + c > r.cap) {
            full = 1;
            break;
        }
        r.tail[i] += c;
        total += c;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        get_ll(conns, j, &i);
        get_ll(counts, j, &c);
        r.tail[i] -= c;
    }
    if (PyErr_Occurred())
        goto fail;
    if (full) {
        ring_close(&r);
        return PyLong_FromLong(-1);
    }
    uint32_t kw = (uint32_t)worker << 16, k32 = (uint32_t)key;
    long long seq = seq0;
    for (k = 0; k < m; k++) {
        get_ll(conns, k, &i);
        get_ll(counts, k, &c);
        get_ll(times, k, &t);
        get_ll(gids, i, &g);
        uint32_t lo = (uint32_t)t, hi = (uint32_t)((unsigned long long)t >> 32);
        for (long long j = 0; j < c; j++, seq++) {
            unsigned char *p = r.st + (i * r.cap + (r.tail[i] + j) % r.cap) * 28;
            uint32_t gg = (uint32_t)g, s = (uint32_t)seq;
            wr32(p, gg * W[0] + s * W[1] + kw * W[2] + lo * W[4] + hi * W[5] + k32);
            wr32(p + 4, gg);
            wr32(p + 8, s);
            wr32(p + 12, kw);
            wr32(p + 16, 0);
            wr32(p + 20, lo);
            wr32(p + 24, hi);
        }
        r.tail[i] += c;
    }
    ring_close(&r);
    return PyLong_FromLongLong(total);
  fail:
    ring_close(&r);
    return NULL;
}

/* commit_closed(conns, counts, now, credits, outstanding, progress, early, measuring) -> int
 *
 * harness.worker.loops.ClosedLoop.commit and Pacer.commit for the early sends of a closed
 * loop with no budget or reopened connection: conns[k] sent counts[k] messages (its
 * credits), now. They go to outstanding (progress at ``now`` when it was idle), and outside
 * the window to ``early``. int64 arrays, one entry per connection. Returns the total. */
static PyObject *commit_closed(PyObject *self, PyObject *args) {
    PyObject *conns, *counts, *objs[4];
    long long now;
    int measuring;
    if (!PyArg_ParseTuple(args, "O!O!LOOOOp", &PyList_Type, &conns, &PyList_Type, &counts,
                          &now, &objs[0], &objs[1], &objs[2], &objs[3], &measuring))
        return NULL;
    Py_ssize_t m = PyList_GET_SIZE(conns), n;
    if (PyList_GET_SIZE(counts) != m) {
        PyErr_SetString(PyExc_ValueError, "conns and counts differ in length");
        return NULL;
    }
    Py_buffer v[4];
    const Py_ssize_t sizes[4] = {8, 8, 8, 8};
    const char *names[4] = {"credits", "outstanding", "progress", "early"};
    int opened = arrays_open(objs, sizes, names, 4, v, &n);
    long long *cr = v[0].buf, *out = v[1].buf, *pr = v[2].buf, *ea = v[3].buf;
    long long i, c, total = 0;
    PyObject *ret = NULL;
    if (opened == 4 && !PyErr_Occurred()) {
        Py_ssize_t k = 0;
        for (; k < m; k++) {
            if (conn_at(conns, k, n, &i) < 0 || get_ll(counts, k, &c) < 0)
                break;
            cr[i] -= c;
            if (out[i] == 0)
                pr[i] = now;
            out[i] += c;
            if (!measuring)
                ea[i] += c;
            total += c;
        }
        if (k == m)
            ret = PyLong_FromLongLong(total);
    }
    for (int j = 0; j < opened; j++)
        PyBuffer_Release(&v[j]);
    return ret;
}

/* closed_take(credits, blocked, outstanding, progress, early, now, measuring)
 *     -> (idx, counts, total) | None
 *
 * A plain closed loop's pick and commit (harness.worker.loops.ClosedLoop, Pacer.commit;
 * no stages, think times, budgets or reopened connections): every connection with
 * credits and not blocked sends them all now. Its credits go to outstanding (progress
 * at ``now`` when it was idle), and, outside the window, to ``early``. int64 arrays
 * (``blocked``: bool), one entry per connection. None when none sends. */
static PyObject *take_closed(PyObject *co, PyObject *bo, PyObject *oo, PyObject *po,
                             PyObject *eo, long long now, int measuring) {
    Py_buffer v[5];
    PyObject *objs[5] = {co, bo, oo, po, eo};
    const Py_ssize_t sizes[5] = {8, 1, 8, 8, 8};
    const char *names[5] = {"credits", "blocked", "outstanding", "progress", "early"};
    PyObject *idx = NULL, *cnt = NULL, *ret = NULL;
    Py_ssize_t n = 0;
    int opened = arrays_open(objs, sizes, names, 5, v, &n);
    if (PyErr_Occurred())
        goto done;
    long long *cr = v[0].buf, *out = v[2].buf, *pr = v[3].buf, *early = v[4].buf;
    unsigned char *blocked = v[1].buf;
    idx = PyList_New(0);
    cnt = PyList_New(0);
    if (idx == NULL || cnt == NULL)
        goto done;
    long long total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long c = cr[i];
        if (c <= 0 || blocked[i])
            continue;
        if (append_ll(idx, i) < 0 || append_ll(cnt, c) < 0)
            goto done;
        cr[i] = 0;
        if (out[i] == 0)
            pr[i] = now;  /* idle until now */
        out[i] += c;
        if (!measuring)
            early[i] += c;
        total += c;
    }
    if (total == 0) {
        ret = Py_None;
        Py_INCREF(ret);
    } else {
        ret = Py_BuildValue("(OOL)", idx, cnt, total);
    }
done:
    for (int k = 0; k < opened; k++)
        PyBuffer_Release(&v[k]);
    Py_XDECREF(idx);
    Py_XDECREF(cnt);
    return ret;
}

static PyObject *closed_take(PyObject *self, PyObject *args) {
    PyObject *co, *bo, *oo, *po, *eo;
    long long now;
    int measuring;
    if (!PyArg_ParseTuple(args, "OOOOOLp", &co, &bo, &oo, &po, &eo, &now, &measuring))
        return NULL;
    return take_closed(co, bo, oo, po, eo, now, measuring);
}

/* open_commit(idx, counts, now, base, period, phase, sched, outstanding, progress, backlog,
 *             clear_under) -> (tint, delay, worst)
 *
 * harness.worker.pacing.Pacer.commit_few's loop: connection idx[k] sends counts[k] messages
 * now, the next ones of its schedule (base + phase[i] + sched[i] * period, then a period
 * apart). Returns each message's intended time (ns), its delay (µs, never negative) and
 * the largest delay. The schedule moves on, outstanding grows, and a connection that was
 * idle has progress at ``now``. When ``clear_under`` is not negative and no delay is over
 * it, the connections are off backlog. int64 arrays (backlog: bool), one per connection. */
static PyObject *commit_open(PyObject *io, PyObject *ko, long long now, long long base,
                             long long period, PyObject *ph, PyObject *sc, PyObject *oo,
                             PyObject *po, PyObject *bo, long long clear_under) {
    Py_buffer v[5];
    PyObject *objs[5] = {ph, sc, oo, po, bo};
    const Py_ssize_t sizes[5] = {8, 8, 8, 8, 1};
    const char *names[5] = {"phase", "sched", "outstanding", "progress", "backlog"};
    PyObject *tint = NULL, *delay = NULL, *ret = NULL;
    Py_ssize_t m = PyList_GET_SIZE(io), n = 0;
    int opened = arrays_open(objs, sizes, names, 5, v, &n);
    if (PyErr_Occurred())
        goto done;
    long long *phase = v[0].buf, *sched = v[1].buf, *out = v[2].buf, *pr = v[3].buf;
    unsigned char *backlog = v[4].buf;
    if (PyList_GET_SIZE(ko) != m) {
        PyErr_SetString(PyExc_ValueError, "idx and counts differ in length");
        goto done;
    }
    tint = PyList_New(0);
    delay = PyList_New(0);
    if (tint == NULL || delay == NULL)
        goto done;
    long long worst = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        long long i, c;
        if (get_ll(io, k, &i) < 0 || get_ll(ko, k, &c) < 0)
            goto done;
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_IndexError, "connection out of range");
            goto done;
        }
        long long t = base + phase[i] + sched[i] * period;
        for (long long j = 0; j < c; j++, t += period) {
            long long d = now > t ? (now - t) / 1000 : 0;
            if (d > worst)
                worst = d;
            if (append_ll(tint, t) < 0 || append_ll(delay, d) < 0)
                goto done;
        }
        sched[i] += c;
        if (out[i] == 0)
            pr[i] = now;  /* idle until now */
        out[i] += c;
    }
    if (clear_under >= 0 && worst <= clear_under)
        for (Py_ssize_t k = 0; k < m; k++)
            backlog[PyLong_AsLongLong(PyList_GET_ITEM(io, k))] = 0;  /* (checked above) */
    ret = Py_BuildValue("(OOL)", tint, delay, worst);
done:
    for (int k = 0; k < opened; k++)
        PyBuffer_Release(&v[k]);
    Py_XDECREF(tint);
    Py_XDECREF(delay);
    return ret;
}

static PyObject *open_commit(PyObject *self, PyObject *args) {
    PyObject *io, *ko, *ph, *sc, *oo, *po, *bo;
    long long now, base, period, clear_under;
    if (!PyArg_ParseTuple(args, "O!O!LLLOOOOOL", &PyList_Type, &io, &PyList_Type, &ko, &now,
                          &base, &period, &ph, &sc, &oo, &po, &bo, &clear_under))
        return NULL;
    return commit_open(io, ko, now, base, period, ph, sc, oo, po, bo, clear_under);
}

/* open_pick(cand, base, period, phase, sched, alive, sends, blocked, budget, burst)
 *     -> (idx, want, lag)
 *
 * harness.worker.loops.OpenLoop.pick's loop over its candidates (a list or an int64 array):
 * candidate i owes (base - phase[i]) // period + 1 - sched[i] messages (floored; at most
 * budget[i] when ``budget`` is an array, None: no budget). One that owes some, alive and a
 * sender, sends min(owed, burst), none when ``blocked``; one that still owes after that is
 * a laggard. Returns the senders and their counts, and the laggards, in candidate order.
 * phase, sched, budget: int64 arrays; alive, sends, blocked: bool arrays. */
static PyObject *pick_open(PyObject *co, long long base, long long period, PyObject *ph,
                           PyObject *sc, PyObject *al, PyObject *se, PyObject *bl, PyObject *bu,
                           long long burst) {
    if (period <= 0) {
        PyErr_SetString(PyExc_ValueError, "the period must be positive");
        return NULL;
    }
    int budgeted = bu != Py_None;
    Py_buffer v[6];
    PyObject *objs[6] = {ph, sc, al, se, bl, budgeted ? bu : ph};
    const Py_ssize_t sizes[6] = {8, 8, 1, 1, 1, 8};
    const char *names[6] = {"phase", "sched", "alive", "sends", "blocked", "budget"};
    PyObject *idx = NULL, *want = NULL, *lag = NULL, *ret = NULL;
    Index ix;
    int has_ix = 0;
    Py_ssize_t n = 0;
    int opened = arrays_open(objs, sizes, names, 6, v, &n);
    if (PyErr_Occurred())
        goto done;
    if (index_open(co, &ix) < 0)
        goto done;
    has_ix = 1;
    const long long *phase = v[0].buf, *sched = v[1].buf, *budget = v[5].buf;
    const unsigned char *alive = v[2].buf, *sends = v[3].buf, *blocked = v[4].buf;
    idx = PyList_New(0);
    want = PyList_New(0);
    lag = PyList_New(0);
    if (idx == NULL || want == NULL || lag == NULL)
        goto done;
    for (Py_ssize_t k = 0; k < ix.n; k++) {
        long long i;
        if (index_get(&ix, k, &i) < 0)
            goto done;
        if (i < 0 || i >= n) {
            PyErr_SetString(PyExc_IndexError, "connection out of range");
            goto done;
        }
        long long num = base - phase[i];
        long long q = num / period;
        if (num % period != 0 && num < 0)
            q -= 1;  /* floored, as Python's // */
        long long due = q + 1 - sched[i];
        if (budgeted && budget[i] < due)
            due = budget[i];
        if (due <= 0 || !(alive[i] && sends[i]))
            continue;
        long long w = blocked[i] ? 0 : (due < burst ? due : burst);
        if (w && (append_ll(idx, i) < 0 || append_ll(want, w) < 0))
            goto done;
        if (due > w && append_ll(lag, i) < 0)
            goto done;
    }
    ret = PyTuple_Pack(3, idx, want, lag);
done:
    if (has_ix)
        index_close(&ix);
    for (int k = 0; k < opened; k++)
        PyBuffer_Release(&v[k]);
    Py_XDECREF(idx);
    Py_XDECREF(want);
    Py_XDECREF(lag);
    return ret;
}

static PyObject *open_pick(PyObject *self, PyObject *args) {
    PyObject *co, *ph, *sc, *al, *se, *bl, *bu;
    long long base, period, burst;
    if (!PyArg_ParseTuple(args, "OLLOOOOOOL", &co, &base, &period, &ph, &sc, &al, &se, &bl,
                          &bu, &burst))
        return NULL;
    return pick_open(co, base, period, ph, sc, al, se, bl, bu, burst);
}

/* Item k of a new list: x, and the least and greatest so far (k == 0 sets both). */
static int put_bounded(PyObject *list, Py_ssize_t k, long long x, long long *lo,
                       long long *hi) {
    PyObject *o = PyLong_FromLongLong(x);
    if (o == NULL)
        return -1;
    PyList_SET_ITEM(list, k, o);
    if (k == 0 || x < *lo)
        *lo = x;
    if (k == 0 || x > *hi)
        *hi = x;
    return 0;
}

/* lat_few(t, tint, delay, open_loop, begin) -> (lat, lo, hi, service, slo, shi) | None
 *
 * A small round's latencies (harness.worker.recording.Recorder.received_few): receive time
 * t[k] less intended time tint[k] (ns), and in a closed loop less the send's lag delay[k]
 * (µs); with each list its least and greatest value. An open loop also gets the service
 * times (latency less the delay); a closed loop gets None for them (and 0, 0). None when a
 * message was intended before ``begin`` (the caller then keeps the window's ones). */
static PyObject *lats_few(PyObject *to, PyObject *io, PyObject *dob, int open_loop,
                          long long begin) {
    Py_ssize_t n = PyList_GET_SIZE(to);
    if (n == 0 || PyList_GET_SIZE(io) != n || PyList_GET_SIZE(dob) != n) {
        PyErr_SetString(PyExc_ValueError, "t, tint and delay: one non-empty length");
        return NULL;
    }
    PyObject *lat = PyList_New(n), *svc = open_loop ? PyList_New(n) : NULL;
    if (lat == NULL || (open_loop && svc == NULL))
        goto fail;
    long long lo = 0, hi = 0, slo = 0, shi = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        long long t, ti, d;
        if (get_ll(to, k, &t) < 0 || get_ll(io, k, &ti) < 0 || get_ll(dob, k, &d) < 0)
            goto fail;
        if (ti < begin) {
            Py_DECREF(lat);
            Py_XDECREF(svc);
            Py_RETURN_NONE;
        }
        long long x = t - ti - (open_loop ? 0 : d * 1000);
        if (put_bounded(lat, k, x, &lo, &hi) < 0 ||
            (open_loop && put_bounded(svc, k, x - d * 1000, &slo, &shi) < 0))
            goto fail;
    }
    if (!open_loop) {
        svc = Py_None;
        Py_INCREF(svc);
    }
    return Py_BuildValue("(NLLNLL)", lat, lo, hi, svc, slo, shi);
fail:
    Py_XDECREF(lat);
    Py_XDECREF(svc);
    return NULL;
}

static PyObject *lat_few(PyObject *self, PyObject *args) {
    PyObject *to, *io, *dob;
    int open_loop;
    long long begin;
    if (!PyArg_ParseTuple(args, "O!O!O!pL", &PyList_Type, &to, &PyList_Type, &io, &PyList_Type,
                          &dob, &open_loop, &begin))
        return NULL;
    return lats_few(to, io, dob, open_loop, begin);
}

/* The fused rounds (harness.wire.fused): a plain closed loop's small echo round in one call
 * (echo_round), and rounds one after another until a time (echo_loop), step for step what
 * fused.py_echo_round and py_echo_loop do (their docstrings say what each argument is and
 * what comes back): the read round, take_few, lat_few, mark_few, credit_few, then the
 * clock, closed_take, build_few and send_bounds, each the function above. A round returns
 * at the first case one of them does not handle, before changing anything that case's own
 * path would change. */
enum { F_ROUND = 0, F_READ = 1, F_PARSE = 2, F_ACCOUNT = 3, F_POLLED = 4 };
enum { S_NONE = 0, S_EDGE = 1, S_BIG = 2, S_SENT = 3 };

typedef struct {  /* the step's context (fused.context), parsed */
    PyObject *socks, *pend, *gids, *oo, *co, *po, *bo, *eo, *restamp;
    Py_ssize_t chunk, fixed, hdr, most, size, send_most;
    int stamped, refills;
    unsigned long long body, key;
    long me;
    unsigned long kw, skey;
} Fuse;

typedef struct {  /* a round's own arguments (hist: echo_loop's, else NULL) */
    PyObject *buf, *out, *seen, *hist;
    long long lo, begin, measure, end, timeout, since, stop_at;
    unsigned long long seq0;
    int measuring, sending;
} Turn;

typedef struct {  /* what a whole round did (new references, or NULL) */
    Py_ssize_t m, got;
    long long t_last, marked, now, total;
    long long bsum, blo, bhi, blate;  /* binned: its latencies' sum, bounds, and those late */
    int send, binned;
    PyObject *lats, *conns, *counts, *bounds, *failed;
} Done;

static void done_clear(Done *d) {
    Py_CLEAR(d->lats);
    Py_CLEAR(d->conns);
    Py_CLEAR(d->counts);
    Py_CLEAR(d->bounds);
    Py_CLEAR(d->failed);
}

static int fuse_parse(PyObject *ctx, Fuse *f) {
    if (!PyTuple_Check(ctx)) {
        PyErr_SetString(PyExc_TypeError, "ctx must be a tuple (fused.context)");
        return -1;
    }
    return PyArg_ParseTuple(ctx, "O!O!nnpnKKlO!nOOOpOOnkkOn", &PyList_Type, &f->socks,
                            &PyList_Type, &f->pend, &f->chunk, &f->fixed, &f->stamped, &f->hdr,
                            &f->body, &f->key, &f->me, &PyList_Type, &f->gids, &f->most, &f->oo,
                            &f->co, &f->po, &f->refills, &f->bo, &f->eo, &f->size, &f->kw,
                            &f->skey, &f->restamp, &f->send_most) ? 0 : -1;
}

/* [gids[i] for i in conns]: a new list, or NULL with an exception set. */
static PyObject *gids_of(PyObject *gids, PyObject *conns) {
    Py_ssize_t m = PyList_GET_SIZE(conns), ng = PyList_GET_SIZE(gids);
    PyObject *g = PyList_New(m);
    for (Py_ssize_t j = 0; g != NULL && j < m; j++) {
        long long i;
        if (get_ll(conns, j, &i) < 0 || i < 0 || i >= ng) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_IndexError, "connection out of range");
            Py_CLEAR(g);
            break;
        }
        PyObject *gi = PyList_GET_ITEM(gids, i);
        Py_INCREF(gi);
        PyList_SET_ITEM(g, j, gi);
    }
    return g;
}

/* send_bounds' lag for a round at ``now`` from the step's restamp ((hdr, ascii, size, ws)
 * or None): a new reference, or NULL with an exception set. */
static PyObject *lag_of(PyObject *r, long long now) {
    if (r == Py_None) {
        Py_INCREF(r);
        return r;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 4) {
        PyErr_SetString(PyExc_TypeError, "restamp: (hdr, ascii, size, ws)");
        return NULL;
    }
    return Py_BuildValue("(OOLOO)", PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 1), now,
                         PyTuple_GET_ITEM(r, 2), PyTuple_GET_ITEM(r, 3));
}

/* The round's sends, from the clock read on (d->now): closed_take, build_few, send_bounds. */
static int round_send(Fuse *f, Turn *u, Done *d) {
    PyObject *took = NULL, *g = NULL, *lag = NULL;
    int rc = -1;
    d->now = mono_ns();
    if (!u->sending || d->now < u->begin || d->now >= u->end)
        return 0;
    if (!u->measuring && d->now >= u->measure) {
        d->send = S_EDGE;
        return 0;
    }
    took = take_closed(f->co, f->bo, f->oo, f->po, f->eo, d->now, u->measuring);
    if (took == NULL)
        return -1;
    if (took == Py_None) {
        Py_DECREF(took);
        return 0;
    }
    d->conns = PyTuple_GET_ITEM(took, 0);
    d->counts = PyTuple_GET_ITEM(took, 1);
    Py_INCREF(d->conns);
    Py_INCREF(d->counts);
    d->total = PyLong_AsLongLong(PyTuple_GET_ITEM(took, 2));
    if (d->total == -1 && PyErr_Occurred())
        goto out;
    d->send = S_BIG;
    Py_ssize_t nc = PyList_GET_SIZE(d->conns);
    Py_ssize_t outlen = PyObject_Size(u->out);
    if (outlen < 0)
        goto out;
    if (nc > f->send_most || d->total * f->size > outlen) {
        rc = 0;
        goto out;
    }
    d->send = S_SENT;
    g = gids_of(f->gids, d->conns);
    if (g == NULL)
        goto out;
    d->bounds = build(u->out, f->hdr, f->size, g, d->counts, u->seq0,
                      (unsigned long long)d->now, NULL, NULL, (uint32_t)f->kw, (uint32_t)f->skey);
    if (d->bounds == NULL || (lag = lag_of(f->restamp, d->now)) == NULL)
        goto out;
    d->failed = sends(f->socks, d->conns, d->bounds, u->out, lag);
    if (d->failed != NULL)
        rc = 0;
out:
    Py_XDECREF(took);
    Py_XDECREF(g);
    Py_XDECREF(lag);
    return rc;
}

/* Histogram bucket of a value in [0, 2**43) (harness.core.histogram.index_of: 128 linear
 * sub-buckets a power of two, values below 256 exact). */
static inline Py_ssize_t hist_index(long long v) {
    int bits = v ? 64 - __builtin_clzll((unsigned long long)v) : 0;
    int shift = bits > 8 ? bits - 8 : 0;
    return ((Py_ssize_t)shift << 7) + (Py_ssize_t)(v >> shift);
}

#define HIST_LIMIT (1LL << 43)  /* harness.core.histogram.LIMIT */

/* One pass over a round's frames (bin_read): 0 checks every frame and sums what
 * the round would book into d (nothing changed); 1 books it (the histogram's counts, the
 * ledger's marks, the credits; v: buf, seen, hist, outstanding, credits, progress). -1:
 * a frame it does not take (nothing changed), -2: an error. */
static int bin_pass(Fuse *f, Turn *u, PyObject *seg_conn, PyObject *seg_end, PyObject *seg_t,
                    Py_buffer *v, Py_ssize_t narr, long long t_last, int apply, Done *d) {
    const unsigned char *buf = v[0].buf;
    unsigned char *seen = v[1].buf;
    long long *hist = v[2].buf, *out = v[3].buf, *cr = v[4].buf, *pr = v[5].buf;
    Py_ssize_t n = PyList_GET_SIZE(seg_conn), size = f->fixed, hdr = f->hdr;
    Py_ssize_t ngids = PyList_GET_SIZE(f->gids), nbins = v[2].len / 8;
    uint32_t k32 = (uint32_t)f->key;
    long long prev = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        long long end, c, t, g;
        if (get_ll(seg_end, j, &end) < 0 || get_ll(seg_conn, j, &c) < 0 ||
            get_ll(seg_t, j, &t) < 0)
            return -2;
        if (end <= prev || (end - prev) % size != 0 || end > v[0].len || c < 0 || c >= ngids ||
            c >= narr)
            return -1;
        if (get_ll(f->gids, c, &g) < 0)
            return -2;
        for (long long at = prev; at < end; at += size) {
            const unsigned char *p = buf + at;
            uint32_t w[7];
            for (int q = 0; q < 7; q++)
                w[q] = rd32(p + hdr + 4 * q);
            unsigned long long tint = (unsigned long long)w[5] | (unsigned long long)w[6] << 32;
            long long lat = t - (long long)tint - (long long)w[4] * 1000, s = w[2];
            if (apply) {
                hist[hist_index(lat)]++;
                if (s >= u->lo) {
                    seen[s] = 1;
                    d->marked++;
                }
                if (out[c] > 0) {
                    out[c]--;
                    if (f->refills)
                        cr[c]++;
                }
                pr[c] = t_last;
                continue;
            }
            unsigned long long h = 0;
            for (Py_ssize_t q = 0; q < hdr; q++)
                h = h << 8 | p[q];
            uint32_t chk = w[1] * W[0] + w[2] * W[1] + w[3] * W[2] + w[4] * W[3] +
                           w[5] * W[4] + w[6] * W[5] + k32;
            if (h != f->body || chk != w[0] || (long)(w[3] >> 16) != f->me ||
                g != (long long)w[1] || tint > (unsigned long long)LLONG_MAX ||
                (long long)tint < u->measure || lat < 0 || lat >= HIST_LIMIT ||
                hist_index(lat) >= nbins || (s >= u->lo && s >= v[1].len))
                return -1;
            d->bsum += lat;
            d->blo = d->m == 0 || lat < d->blo ? lat : d->blo;
            d->bhi = d->m == 0 || lat > d->bhi ? lat : d->bhi;
            d->blate += lat > u->timeout;
            d->got += u->measure <= t && t < u->end;
            d->m++;
        }
        prev = end;
    }
    return 0;
}

/* A read round of whole frames in echo_loop, given the latency histogram's counts, in C
 * arrays (frames_few's lists cost a few Python objects a frame; numpy's parse, 118 calls a
 * round): frames_few's checks, then, all or nothing and with no Python object a frame,
 * the latencies bucketed straight into the counts, the ledger's marks and the credits. 1: booked (d filled in, d->binned set); 0: not taken, nothing changed (a frame not
 * good, a latency from before the window or outside the histogram, a seq past the
 * ledger's bitmap, or the round's time outside [since, stop_at): its second is the usual
 * path's): numpy's parse takes it; -1: an error. */
static int bin_read(Fuse *f, Turn *u, PyObject *seg_conn, PyObject *seg_end, PyObject *seg_t,
                    Done *d) {
    Py_ssize_t n = PyList_GET_SIZE(seg_t);
    if (n == 0 || f->hdr < 0 || f->hdr > 8 || f->fixed < f->hdr + 28)
        return 0;
    long long t_last = 0, x;
    for (Py_ssize_t j = f->stamped ? 0 : n - 1; j < n; j++) {  /* the latest */
        if (get_ll(seg_t, j, &x) < 0)
            return -1;
        t_last = j == 0 || x > t_last || !f->stamped ? x : t_last;
    }
    if (t_last < u->since || t_last >= u->stop_at)
        return 0;
    Py_buffer v[6];
    PyObject *objs[3] = {f->oo, f->co, f->po};
    const Py_ssize_t sizes[3] = {8, 8, 8};
    const char *names[3] = {"outstanding", "credits", "progress"};
    Py_ssize_t narr = 0;
    int held = 0, opened = 0, rc = -1;
    if (PyObject_GetBuffer(u->buf, &v[0], PyBUF_SIMPLE) < 0)
        return -1;
    held = 1;
    if (array_open(u->seen, &v[1], 1, "seen") < 0)
        goto out;
    held = 2;
    if (array_open(u->hist, &v[2], 8, "hist") < 0)
        goto out;
    held = 3;
    opened = arrays_open(objs, sizes, names, 3, v + 3, &narr);
    if (opened == 3 && !PyErr_Occurred()) {
        rc = bin_pass(f, u, seg_conn, seg_end, seg_t, v, narr, t_last, 0, d);
        if (rc == 0)
            rc = bin_pass(f, u, seg_conn, seg_end, seg_t, v, narr, t_last, 1, d);
        rc = rc == 0 ? 1 : rc == -1 ? 0 : -1;
    }
    if (rc == 0) {  /* (nothing booked: the sums go too) */
        d->m = d->got = 0;
        d->bsum = d->blo = d->bhi = d->blate = 0;
    }
    if (rc == 1) {
        d->binned = 1;
        d->t_last = t_last;
    }
out:
    for (int j = 0; j < opened; j++)
        PyBuffer_Release(&v[3 + j]);
    for (int j = 0; j < held; j++)
        PyBuffer_Release(&v[j]);
    return rc;
}

/* A round's reads over ``ready``, up to the credits (open_loop: latencies with service
 * times): NULL (an exception set), Py_None when it went all the way (d filled in), else the
 * tuple of the case it stopped at (READ, PARSE, ACCOUNT). */
static PyObject *round_read(Fuse *f, Turn *u, PyObject *ready, Done *d, int open_loop) {
    memset(d, 0, sizeof *d);
    PyObject *seg_conn = PyList_New(0), *seg_end = PyList_New(0), *seg_t = PyList_New(0);
    PyObject *rd = NULL, *few = NULL, *cr = NULL, *ret = NULL;
    if (seg_conn == NULL || seg_end == NULL || seg_t == NULL)
        goto done;
    Py_ssize_t buflen = PyObject_Size(u->buf);
    if (buflen < 0)
        goto done;
    rd = read_round(f->socks, f->pend, ready, 0, u->buf, 0, buflen - f->chunk, f->chunk,
                    f->fixed, seg_conn, seg_end, seg_t, NULL, f->stamped);
    if (rd == NULL)
        goto done;
    if (PyLong_AsLong(PyTuple_GET_ITEM(rd, 2)) != DONE) {
        ret = Py_BuildValue("(iOOOOOOOOO)", F_READ, PyTuple_GET_ITEM(rd, 0),
                            PyTuple_GET_ITEM(rd, 1), PyTuple_GET_ITEM(rd, 2),
                            PyTuple_GET_ITEM(rd, 3), PyTuple_GET_ITEM(rd, 4), seg_conn, seg_end,
                            seg_t, ready);
        goto done;
    }
    Py_ssize_t nseg = PyList_GET_SIZE(seg_t);
    long long x;
    if (u->hist != NULL && !open_loop && nseg && f->fixed > 0) {  /* (echo_loop's) */
        if (get_ll(seg_end, nseg - 1, &x) < 0)
            goto done;
        int bin = x % f->fixed == 0 ? bin_read(f, u, seg_conn, seg_end, seg_t, d) : 2;
        if (bin < 0)
            goto done;
        if (bin == 1) {
            ret = Py_None;
            Py_INCREF(ret);
        }
        if (bin == 0)
            ret = Py_BuildValue("(iOOO)", F_PARSE, seg_conn, seg_end, seg_t);
        if (bin < 2)
            goto done;
    }
    few = frames_few(u->buf, seg_conn, seg_end, seg_t, f->fixed, f->hdr, f->body, f->key, f->me,
                     f->gids, f->most);
    if (few == NULL)
        goto done;
    if (few == Py_None) {
        ret = Py_BuildValue("(iOOO)", F_PARSE, seg_conn, seg_end, seg_t);
        goto done;
    }
    PyObject *conn = PyTuple_GET_ITEM(few, 0), *ts = PyTuple_GET_ITEM(few, 1);
    PyObject *seqs = PyTuple_GET_ITEM(few, 2), *tint = PyTuple_GET_ITEM(few, 3);
    PyObject *delay = PyTuple_GET_ITEM(few, 4);
    d->m = PyList_GET_SIZE(ts);
    for (Py_ssize_t j = f->stamped ? 0 : nseg - 1; j < nseg; j++) {  /* the latest */
        if (get_ll(seg_t, j, &x) < 0)
            goto done;
        if (j == 0 || x > d->t_last || !f->stamped)
            d->t_last = x;
    }
    if (u->measuring) {
        d->lats = lats_few(ts, tint, delay, open_loop, u->measure);
        if (d->lats == NULL)
            goto done;
        if (d->lats == Py_None) {
            ret = Py_BuildValue("(iLOOOOO)", F_ACCOUNT, d->t_last, conn, ts, seqs, tint, delay);
            goto done;
        }
        for (Py_ssize_t j = 0; j < d->m; j++) {
            if (get_ll(ts, j, &x) < 0)
                goto done;
            d->got += u->measure <= x && x < u->end;
        }
    }
    d->marked = marks_few(seqs, u->seen, u->lo);
    if (d->marked < -1)
        goto done;
    if (d->marked < 0) {
        ret = Py_BuildValue("(iLOOOOO)", F_ACCOUNT, d->t_last, conn, ts, seqs, tint, delay);
        goto done;
    }
    cr = credits_few(conn, d->t_last, f->oo, f->co, f->po, f->refills);
    if (cr == NULL)
        goto done;
    ret = Py_None;
    Py_INCREF(ret);
done:
    if (ret != Py_None)
        done_clear(d);
    Py_XDECREF(seg_conn);
    Py_XDECREF(seg_end);
    Py_XDECREF(seg_t);
    Py_XDECREF(rd);
    Py_XDECREF(few);
    Py_XDECREF(cr);
    return ret;
}

/* One closed-loop round over ``ready``: round_read, then round_send. */
static PyObject *round_once(Fuse *f, Turn *u, PyObject *ready, Done *d) {
    PyObject *r = round_read(f, u, ready, d, 0);
    if (r == Py_None && round_send(f, u, d) < 0) {
        done_clear(d);
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* A whole round as fused.py_echo_round returns it. */
static PyObject *round_tuple(Done *d) {
    PyObject *none = Py_None;
    return Py_BuildValue("(inLnOLiLOOLOO)", F_ROUND, d->m, d->t_last, d->got,
                         d->lats ? d->lats : none, d->marked, d->send, d->now,
                         d->conns ? d->conns : none, d->counts ? d->counts : none, d->total,
                         d->bounds ? d->bounds : none, d->failed ? d->failed : none);
}

static PyObject *echo_round(PyObject *self, PyObject *args) {
    PyObject *ctx, *ready;
    Turn u = {0};  /* (hist NULL: no rounds binned unless echo_loop is given one) */
    Fuse f;
    if (!PyArg_ParseTuple(args, "OO!OOOLKppLLL", &ctx, &PyList_Type, &ready, &u.buf, &u.out,
                          &u.seen, &u.lo, &u.seq0, &u.measuring, &u.sending, &u.begin,
                          &u.measure, &u.end) || fuse_parse(ctx, &f) < 0)
        return NULL;
    Done d;
    PyObject *r = round_once(&f, &u, ready, &d);
    if (r != Py_None)
        return r;
    Py_DECREF(r);
    r = round_tuple(&d);
    done_clear(&d);
    return r;
}

/* A fused loop's poll: epoll_wait for ``ms``, and its events' numbers (events_lists) in *rd
 * and *wr. 0: only connections are readable, or none; 1: the loop stops here, *last set to
 * (POLLED, readable, writable) when a file is writable or the timer readable, left NULL on
 * a signal (its handler runs once the loop returns); -1: an error. */
static int loop_poll(int epfd, struct epoll_event *ev, int maxevents, int ms, PyObject *data,
                     PyObject **rd, PyObject **wr, PyObject **last) {
    int n;
    Py_BEGIN_ALLOW_THREADS
    n = epoll_wait(epfd, ev, maxevents, ms);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return 1;
    }
    if (events_lists(ev, n, data, rd, wr) < 0)
        return -1;
    int odd = PyList_GET_SIZE(*wr) > 0;
    for (Py_ssize_t j = 0; !odd && j < PyList_GET_SIZE(*rd); j++) {
        long long x;
        if (get_ll(*rd, j, &x) < 0)
            return -1;
        odd = x < 0;  /* the timer */
    }
    if (odd)
        *last = Py_BuildValue("(iOO)", F_POLLED, *rd, *wr);
    return odd ? (*last == NULL ? -1 : 1) : 0;
}

/* A fused loop's round over ``rd`` (round_once; open_loop: round_read, with service
 * times): 0 when it went all the way (d filled in), 1 when it stopped (*last: where), -1
 * on an error. */
static int loop_round(Fuse *f, Turn *u, PyObject *rd, Done *d, int open_loop,
                      PyObject **last) {
    PyObject *r = open_loop ? round_read(f, u, rd, d, 1) : round_once(f, u, rd, d);
    if (r == NULL)
        return -1;
    if (r != Py_None) {
        *last = r;
        return 1;
    }
    Py_DECREF(r);
    return 0;
}

/* A fused loop's poll (``ms`` at most; counted in *polls) and, when something is readable,
 * its round (loop_round): -1 on an error, 1 when the loop stops (*last: where), 0 when
 * nothing was readable, 2 when a round went all the way (d filled in). */
static int poll_round(int epfd, struct epoll_event *ev, int maxevents, int ms, PyObject *data,
                      Fuse *f, Turn *u, int open_loop, PyObject **rd, PyObject **wr,
                      PyObject **last, Done *d, long long *polls) {
    int stop = loop_poll(epfd, ev, maxevents, ms, data, rd, wr, last);
    (*polls)++;
    if (stop)
        return stop < 0 ? -1 : 1;
    if (!PyList_GET_SIZE(*rd))
        return 0;
    stop = loop_round(f, u, *rd, d, open_loop, last);
    return stop < 0 ? -1 : stop ? 1 : 2;
}

/* A whole round's replies into a fused loop's totals (booked together on return). */
static void count_round(const Done *d, long long *replies, long long *got, long long *marked,
                        long long *t_last) {
    *replies += d->m;
    *got += d->got;
    *marked += d->marked;
    *t_last = d->t_last;
}

/* A round's values (lat_few's list at lats[3q], with its bounds after it) onto ``to``, and
 * the bounds onto *lo and *hi (set by the first). -1 on an error. */
static int gather(PyObject *to, PyObject *lats, int q, long long *lo, long long *hi) {
    long long a = PyLong_AsLongLong(PyTuple_GET_ITEM(lats, 3 * q + 1));
    long long b = PyLong_AsLongLong(PyTuple_GET_ITEM(lats, 3 * q + 2));
    int empty = PyList_GET_SIZE(to) == 0;
    if (PyErr_Occurred() ||
        PyList_SetSlice(to, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, PyTuple_GET_ITEM(lats, 3 * q)) < 0)
        return -1;
    *lo = empty || a < *lo ? a : *lo;
    *hi = empty || b > *hi ? b : *hi;
    return 0;
}

/* A binned round's latencies (bin_read's) into a fused loop's totals. */
static void count_bins(const Done *d, long long *bn, long long *bsum, long long *blo,
                      long long *bhi, long long *blate) {
    *blo = *bn == 0 || d->blo < *blo ? d->blo : *blo;
    *bhi = *bn == 0 || d->bhi > *bhi ? d->bhi : *bhi;
    *bn += d->m;
    *bsum += d->bsum;
    *blate += d->blate;
}

/* echo_loop(ctx, epfd, data, maxevents, since, stop_at, buf, out, seen, lo, seq0, begin,
 *           measure, end[, hist, timeout]) -> (acc, last)
 *
 * fused.py_echo_loop: in the window, sending, rounds one after another (each poll as
 * epoll_ready, each round as echo_round) until the clock passes ``stop_at``; given the
 * latency histogram's counts, each round's reads are booked in C arrays, of any size
 * (bin_read). */
static PyObject *echo_loop(PyObject *self, PyObject *args) {
    PyObject *ctx, *data, *hist = Py_None;
    int epfd, maxevents;
    long long since, stop_at;
    Turn u = {0};  /* (hist NULL: no rounds binned unless echo_loop is given one) */
    Fuse f;
    u.timeout = LLONG_MAX;
    if (!PyArg_ParseTuple(args, "OiO!iLLOOOLKLLL|OL", &ctx, &epfd, &PyDict_Type, &data,
                          &maxevents, &since, &stop_at, &u.buf, &u.out, &u.seen, &u.lo, &u.seq0,
                          &u.begin, &u.measure, &u.end, &hist, &u.timeout) ||
        fuse_parse(ctx, &f) < 0)
        return NULL;
    u.hist = hist == Py_None ? NULL : hist;
    u.since = since;
    u.stop_at = stop_at;
    if (maxevents < 1) {
        PyErr_SetString(PyExc_ValueError, "maxevents must be positive");
        return NULL;
    }
    u.measuring = u.sending = 1;
    struct epoll_event *ev = PyMem_Malloc(sizeof(struct epoll_event) * (size_t)maxevents);
    PyObject *lats = PyList_New(0), *last = NULL, *rd = NULL, *wr = NULL, *ret = NULL;
    if (ev == NULL || lats == NULL) {
        if (ev == NULL)
            PyErr_NoMemory();
        goto done;
    }
    long long polls = 0, replies = 0, got = 0, marked = 0, sent = 0, nbytes = 0, t_last = 0;
    long long first = 0, last_now = 0, lat_lo = 0, lat_hi = 0;
    long long bn = 0, bsum = 0, blo = 0, bhi = 0, blate = 0;
    for (;;) {
        long long wait = stop_at - mono_ns();
        wait = wait < 0 ? 0 : wait > 50000000LL ? 50000000LL : wait;  /* (the loop's 0.05 s) */
        Done d;
        int got_round = poll_round(epfd, ev, maxevents, (int)((wait + 999999) / 1000000), data,
                                   &f, &u, 0, &rd, &wr, &last, &d, &polls);
        if (got_round < 0)
            goto done;
        if (got_round == 1)
            break;
        if (got_round) {
            if (d.binned) {  /* its reads are the loop's (bin_read took them in [since, stop_at)) */
                count_round(&d, &replies, &got, &marked, &t_last);
                count_bins(&d, &bn, &bsum, &blo, &bhi, &blate);
                d.m = d.got = 0;  /* (counted: a send that ends the loop is booked alone) */
                d.marked = 0;
            }
            if (d.send == S_EDGE || d.send == S_BIG || (d.failed && PyList_GET_SIZE(d.failed)) ||
                (!d.binned && (d.t_last < since || d.t_last >= stop_at)) || d.now >= stop_at) {
                last = round_tuple(&d);  /* booked alone (its times may be another second's) */
                done_clear(&d);
                break;
            }
            count_round(&d, &replies, &got, &marked, &t_last);  /* (binned: nothing more) */
            if (d.lats != NULL && d.lats != Py_None && gather(lats, d.lats, 0, &lat_lo,
                                                                 &lat_hi) < 0) {
                done_clear(&d);
                goto done;
            }
            if (d.send == S_SENT) {
                first = sent ? first : d.now;
                sent += d.total;
                nbytes += d.total * f.size;
                last_now = d.now;
                u.seq0 += (unsigned long long)d.total;
            }
            done_clear(&d);  /* (its clock was before stop_at) */
        } else if (mono_ns() >= stop_at) {
            break;
        }
        Py_CLEAR(rd);
        Py_CLEAR(wr);
    }
    PyObject *acc = Py_BuildValue("(LLLLOLLLLLLL(LLLLL))", polls, replies, t_last, got,
                                  PyList_GET_SIZE(lats) ? lats : Py_None, lat_lo, lat_hi, marked,
                                  sent, nbytes, first, last_now, bn, bsum, blo, bhi, blate);
    if (acc != NULL)
        ret = Py_BuildValue("(NO)", acc, last ? last : Py_None);
done:
    PyMem_Free(ev);
    Py_XDECREF(lats);
    Py_XDECREF(last);
    Py_XDECREF(rd);
    Py_XDECREF(wr);
    return ret;
}

/* The open loop's due wheel (harness.worker.schedule.DueWheel; the pure twins there):
 * connections ``order`` sorted by their offsets in the period ``offs``. */
typedef struct {
    const long long *order, *offs;
    Py_ssize_t n;
    long long period, base;
} Wheel;

static long long floor_mod(long long a, long long m) {
    long long r = a % m;
    return r < 0 ? r + m : r;
}

static Py_ssize_t right_of(const long long *a, Py_ssize_t n, long long x) {
    Py_ssize_t lo = 0, hi = n;  /* searchsorted(x, side="right") */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* DueWheel.candidates(now) from ``seen`` (*seen moves to now when now is past it): a new
 * sorted list without repeats, the laggards among them. */
static PyObject *wheel_candidates(Wheel *w, long long *seen, long long now, PyObject *lag) {
    long long a = *seen - w->base, b = now - w->base;
    Py_ssize_t nl = PyList_GET_SIZE(lag), m = 0;
    long long *c = PyMem_Malloc(sizeof(long long) * (size_t)(w->n + nl + 1));
    PyObject *out = NULL;
    if (c == NULL)
        return PyErr_NoMemory();
    if (b > a) {
        *seen = now;
        if (b - a >= w->period) {
            for (Py_ssize_t j = 0; j < w->n; j++)
                c[m++] = j;
        } else {
            long long pa = floor_mod(a, w->period), pb = floor_mod(b, w->period);
            Py_ssize_t lo = right_of(w->offs, w->n, pa), hi = right_of(w->offs, w->n, pb);
            if (pa < pb) {
                for (Py_ssize_t j = lo; j < hi; j++)
                    c[m++] = w->order[j];
            } else {
                for (Py_ssize_t j = lo; j < w->n; j++)
                    c[m++] = w->order[j];
                for (Py_ssize_t j = 0; j < hi; j++)
                    c[m++] = w->order[j];
            }
        }
    }
    for (Py_ssize_t j = 0; j < nl; j++)
        if (get_ll(lag, j, &c[m++]) < 0)
            goto done;
    qsort(c, (size_t)m, sizeof *c, cmp_ll);
    out = PyList_New(0);
    for (Py_ssize_t j = 0; out != NULL && j < m; j++)
        if ((j == 0 || c[j] != c[j - 1]) && append_ll(out, c[j]) < 0)
            Py_CLEAR(out);
done:
    PyMem_Free(c);
    return out;
}

/* DueWheel.next_instant: the first instant after ``seen``. */
static long long wheel_next(Wheel *w, long long seen) {
    long long ps = floor_mod(seen - w->base, w->period);
    Py_ssize_t j = right_of(w->offs, w->n, ps);
    return seen + (j < w->n ? w->offs[j] - ps : w->period - ps + w->offs[0]);
}

typedef struct {  /* an open loop's wheel and pacing (fused.py_open_loop's wheel, pace) */
    Fuse f;
    Wheel w;
    PyObject *phase, *sched, *alive, *sends, *backlog;
    long long sched_base, period, burst, behind, pick_most, open_most;
    Py_buffer v[7];
    int opened;
} Open;

static void open_close(Open *o) {
    for (int k = 0; k < o->opened; k++)
        PyBuffer_Release(&o->v[k]);
    o->opened = 0;
}

static int open_parse(PyObject *fctx, PyObject *wheel, PyObject *pace, Open *o,
                      long long *wseen, PyObject **lag) {
    PyObject *order, *offs;
    o->opened = 0;
    if (!PyArg_ParseTuple(wheel, "OOLLLO!", &order, &offs, &o->w.period, &o->w.base, wseen,
                          &PyList_Type, lag) ||
        !PyArg_ParseTuple(pace, "LLOOOOOLLLL", &o->sched_base, &o->period, &o->phase, &o->sched,
                          &o->alive, &o->sends, &o->backlog, &o->burst, &o->behind,
                          &o->pick_most, &o->open_most) || fuse_parse(fctx, &o->f) < 0)
        return -1;
    if (o->w.period <= 0 || o->period <= 0) {
        PyErr_SetString(PyExc_ValueError, "the period must be positive");
        return -1;
    }
    PyObject *objs[7] = {order, offs, o->phase, o->sched, o->alive, o->sends, o->backlog};
    const Py_ssize_t sizes[7] = {8, 8, 8, 8, 1, 1, 1};
    const char *names[7] = {"order", "offs", "phase", "sched", "alive", "sends", "backlog"};
    Py_ssize_t n;
    o->opened = arrays_open(objs, sizes, names, 2, o->v, &n);
    if (PyErr_Occurred() || n < 1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "an empty wheel");
        open_close(o);
        return -1;
    }
    o->w.order = o->v[0].buf;
    o->w.offs = o->v[1].buf;
    o->w.n = n;
    for (int k = 2; k < 7; k++, o->opened++)
        if (array_open(objs[k], &o->v[k], sizes[k], names[k]) < 0) {
            open_close(o);
            return -1;
        }
    return 0;
}

/* OpenLoop.next_send: (the next instant due, the next the client's own schedule owes). */
static void open_next(Open *o, long long seen, PyObject *lag, long long *nxt, long long *own) {
    const long long *phase = o->v[2].buf, *sched = o->v[3].buf;
    const unsigned char *alive = o->v[4].buf, *sends = o->v[5].buf, *backlog = o->v[6].buf;
    const unsigned char *blocked = NULL;
    Py_buffer bb;
    int has_b = PyObject_GetBuffer(o->f.bo, &bb, PyBUF_SIMPLE) == 0;
    if (has_b)
        blocked = bb.buf;
    else
        PyErr_Clear();
    *nxt = *own = wheel_next(&o->w, seen);
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(lag); j++) {
        long long i;
        if (get_ll(lag, j, &i) < 0 || i < 0 || i >= o->w.n) {
            PyErr_Clear();
            continue;
        }
        if (!alive[i] || !sends[i] || (blocked && blocked[i]))
            continue;
        long long due = o->sched_base + phase[i] + sched[i] * o->period;
        if (due < *nxt)
            *nxt = due;
        if (!backlog[i] && due < *own)
            *own = due;
    }
    if (has_b)
        PyBuffer_Release(&bb);
}

enum { F_BEHIND = 5, F_UNSENT = 6 };

/* An instant's sends: pick, commit, build, send. 1: sent or none due (*last set when the
 * caller must stop after it); 0: not taken (too many candidates or senders: nothing
 * changed); -1: an error. */
static int open_send(Open *o, Turn *u, long long now, long long *seen, PyObject **lag,
                     Done *d, PyObject **last) {
    Fuse *f = &o->f;
    long long s2 = *seen;
    PyObject *cand = wheel_candidates(&o->w, &s2, now, *lag), *pk = NULL, *cm = NULL;
    PyObject *g = NULL, *lg = NULL;
    int rc = -1;
    if (cand == NULL)
        return -1;
    if (PyList_GET_SIZE(cand) > o->pick_most) {
        rc = 0;
        goto out;
    }
    pk = pick_open(cand, now - o->sched_base, o->period, o->phase, o->sched, o->alive,
                   o->sends, f->bo, Py_None, o->burst);
    if (pk == NULL)
        goto out;
    PyObject *idx = PyTuple_GET_ITEM(pk, 0), *want = PyTuple_GET_ITEM(pk, 1);
    Py_ssize_t m = PyList_GET_SIZE(idx);
    long long total = 0, x;
    for (Py_ssize_t j = 0; j < m; j++) {
        if (get_ll(want, j, &x) < 0)
            goto out;
        total += x;
    }
    Py_ssize_t outlen = PyObject_Size(u->out);
    if (outlen < 0)
        goto out;
    if (m > o->open_most || total * f->size > outlen) {
        rc = 0;
        goto out;
    }
    *seen = s2;
    Py_SETREF(*lag, PyTuple_GET_ITEM(pk, 2));
    Py_INCREF(*lag);
    rc = 1;
    if (m == 0)
        goto out;
    rc = -1;
    cm = commit_open(idx, want, now, o->sched_base, o->period, o->phase, o->sched, f->oo, f->po,
                     o->backlog, o->behind);
    if (cm == NULL)
        goto out;
    PyObject *tint = PyTuple_GET_ITEM(cm, 0), *delay = PyTuple_GET_ITEM(cm, 1);
    long long worst = PyLong_AsLongLong(PyTuple_GET_ITEM(cm, 2));
    g = gids_of(f->gids, idx);
    if (g == NULL)
        goto out;
    d->bounds = build(u->out, f->hdr, f->size, g, want, u->seq0, 0, tint, delay,
                      (uint32_t)f->kw, (uint32_t)f->skey);
    if (d->bounds == NULL || (lg = lag_of(f->restamp, now)) == NULL)
        goto out;
    d->failed = sends(f->socks, idx, d->bounds, u->out, lg);
    if (d->failed == NULL)
        goto out;
    d->send = S_SENT;
    d->now = now;
    d->total = total;
    if (PyList_GET_SIZE(d->failed))
        *last = Py_BuildValue("(iOOO)", F_UNSENT, idx, d->bounds, d->failed);
    else if (worst > o->behind)
        *last = Py_BuildValue("(iOOOL)", F_BEHIND, idx, want, delay, now);
    rc = *last == NULL && PyErr_Occurred() ? -1 : 1;
out:
    Py_XDECREF(cand);
    Py_XDECREF(pk);
    Py_XDECREF(cm);
    Py_XDECREF(g);
    Py_XDECREF(lg);
    return rc;
}

enum { F_BOOK = 7 };

/* open_loop(ctx, epfd, data, maxevents, since, stop_at, wheel, pace, buf, out, seen, lo, seq0,
 *           begin, measure, end) -> (acc, wseen, laggards, wake_at, last)
 *
 * fused.py_open_loop: in the window, sending, deferring its reads, an open loop's instants
 * one after another until the clock passes ``stop_at``: sleep to the next one (as
 * Timer.sleep_until), send what is due (as Sends._send_few_open), then read what came
 * (as a round of echo_round, the latencies with their service times). */
static PyObject *open_loop(PyObject *self, PyObject *args) {
    PyObject *ctx, *data, *lag, *wheel, *pace;
    int epfd, maxevents;
    long long since, stop_at, wseen;
    Turn u = {0};  /* (hist NULL: no rounds binned unless echo_loop is given one) */
    Open o;
    if (!PyArg_ParseTuple(args, "OiO!iLLO!O!OOOLKLLL", &ctx, &epfd, &PyDict_Type, &data,
                          &maxevents, &since, &stop_at, &PyTuple_Type, &wheel, &PyTuple_Type,
                          &pace, &u.buf, &u.out, &u.seen, &u.lo, &u.seq0, &u.begin, &u.measure,
                          &u.end))
        return NULL;
    if (maxevents < 1) {
        PyErr_SetString(PyExc_ValueError, "maxevents must be positive");
        return NULL;
    }
    if (open_parse(ctx, wheel, pace, &o, &wseen, &lag) < 0)
        return NULL;
    u.measuring = u.sending = 1;
    Py_INCREF(lag);
    struct epoll_event *ev = PyMem_Malloc(sizeof(struct epoll_event) * (size_t)maxevents);
    PyObject *lats = PyList_New(0), *svc = PyList_New(0), *last = NULL, *rd = NULL, *wr = NULL;
    PyObject *ret = NULL;
    if (ev == NULL || lats == NULL || svc == NULL) {
        if (ev == NULL)
            PyErr_NoMemory();
        goto done;
    }
    long long polls = 0, replies = 0, got = 0, marked = 0, sent = 0, nbytes = 0, t_last = 0;
    long long first = 0, last_now = 0, lo[2] = {0, 0}, hi[2] = {0, 0}, wake_at = 0;
    for (;;) {
        long long now = mono_ns(), nxt;
        open_next(&o, wseen, lag, &nxt, &wake_at);
        if (nxt > now) {  /* sleep to the next instant (the loop's 0.05 s at most) */
            long long to = nxt < now + 50000000LL ? nxt : now + 50000000LL;
            to = to < stop_at ? to : stop_at;
            struct timespec ts = {(time_t)(to / 1000000000LL), (long)(to % 1000000000LL)};
            int err;
            Py_BEGIN_ALLOW_THREADS
            err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            Py_END_ALLOW_THREADS
            if (err == EINTR)
                break;  /* a signal: its handler runs once this returns */
            now = mono_ns();
        }
        if (now >= stop_at)
            break;
        Done sd;
        memset(&sd, 0, sizeof sd);
        int r = open_send(&o, &u, now, &wseen, &lag, &sd, &last);
        if (r < 0) {
            done_clear(&sd);
            goto done;
        }
        if (r == 0)
            break;  /* not one for this call: the worker's own send round takes it */
        if (sd.send == S_SENT) {
            first = sent ? first : now;
            sent += sd.total;
            nbytes += sd.total * o.f.size;
            last_now = now;
            u.seq0 += (unsigned long long)sd.total;
        }
        done_clear(&sd);
        if (last != NULL)
            break;
        Done d;
        int got_round = poll_round(epfd, ev, maxevents, 0, data, &o.f, &u, 1, &rd, &wr, &last,
                                   &d, &polls);
        if (got_round < 0)
            goto done;
        if (got_round == 1)
            break;
        if (got_round) {
            if (d.t_last < since || d.t_last >= stop_at) {  /* booked alone */
                last = Py_BuildValue("(inLnOL)", F_BOOK, d.m, d.t_last, d.got,
                                     d.lats ? d.lats : Py_None, d.marked);
                done_clear(&d);
                break;
            }
            count_round(&d, &replies, &got, &marked, &t_last);
            for (int q = 0; d.lats != NULL && d.lats != Py_None && q < 2; q++)
                if (gather(q ? svc : lats, d.lats, q, &lo[q], &hi[q]) < 0) {
                    done_clear(&d);
                    goto done;
                }
            done_clear(&d);
        }
        Py_CLEAR(rd);
        Py_CLEAR(wr);
        if (mono_ns() >= stop_at)
            break;
    }
    PyObject *lt = PyList_GET_SIZE(lats)
        ? Py_BuildValue("(OLLOLL)", lats, lo[0], hi[0], svc, lo[1], hi[1]) : (Py_INCREF(Py_None), Py_None);
    if (lt == NULL)
        goto done;
    PyObject *acc = Py_BuildValue("(LLLLNLLLLL)", polls, replies, t_last, got, lt, marked, sent,
                                  nbytes, first, last_now);
    if (acc != NULL)
        ret = Py_BuildValue("(NLOLO)", acc, wseen, lag, wake_at, last ? last : Py_None);
done:
    open_close(&o);
    PyMem_Free(ev);
    Py_XDECREF(lag);
    Py_XDECREF(lats);
    Py_XDECREF(svc);
    Py_XDECREF(last);
    Py_XDECREF(rd);
    Py_XDECREF(wr);
    return ret;
}

/* timer_arm(fd, at_ns): harness.wire.timer.Timer.arm's timerfd_settime (absolute, on
 * CLOCK_MONOTONIC; at_ns below 1 fires at once). OSError when the call fails. */
static PyObject *timer_arm(PyObject *self, PyObject *args) {
    int fd;
    long long at;
    if (!PyArg_ParseTuple(args, "iL", &fd, &at))
        return NULL;
    if (at < 1)
        at = 1;
    struct itimerspec spec = {{0, 0}, {(time_t)(at / 1000000000LL), (long)(at % 1000000000LL)}};
    if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* timer_clear(fd): consume a timerfd's expiry (nothing to read: nothing happens). */
static PyObject *timer_clear(PyObject *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd))
        return NULL;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"recv_fixed", recv_fixed, METH_VARARGS, "A read round of whole fixed-size frames."},
    {"recv_tmpl", recv_tmpl, METH_VARARGS, "As recv_fixed, and reads of template replies."},
    {"send_bounds", send_bounds, METH_VARARGS, "One send per connection."},
    {"take_few", take_few, METH_VARARGS, "A small round of good echo frames."},
    {"build_few", build_few, METH_VARARGS, "A small closed-loop round's stamps."},
    {"build_few_at", build_few_at, METH_VARARGS, "A small open-loop round's stamps."},
    {"epoll_ready", epoll_ready, METH_VARARGS, "The readable and the writable numbers."},
    {"credit_few", credit_few, METH_VARARGS, "Replies free their connections' slots."},
    {"mark_few", mark_few, METH_VARARGS, "Mark replies' seqs in the echo ledger."},
    {"closed_take", closed_take, METH_VARARGS, "A plain closed loop's pick and commit."},
    {"ring_pop", ring_pop, METH_VARARGS, "A small round's replies' stamps off the ring."},
    {"ring_push", ring_push, METH_VARARGS, "Early sends' stamps onto the ring."},
    {"commit_closed", commit_closed, METH_VARARGS, "A closed loop's early sends' commit."},
    {"open_commit", open_commit, METH_VARARGS, "A small open-loop round's commit."},
    {"open_pick", open_pick, METH_VARARGS, "An open-loop round's pick of its candidates."},
    {"lat_few", lat_few, METH_VARARGS, "A small round's latencies and service times."},
    {"echo_round", echo_round, METH_VARARGS, "A plain closed loop's small echo round."},
    {"echo_loop", echo_loop, METH_VARARGS, "A plain closed loop's echo rounds until a time."},
    {"open_loop", open_loop, METH_VARARGS, "An open loop's echo instants until a time."},
    {"timer_arm", timer_arm, METH_VARARGS, "Arm a timerfd at an absolute ns time."},
    {"timer_clear", timer_clear, METH_VARARGS, "Consume a timerfd's expiry."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "harness._hot",
                                    "The worker's per-socket and per-message loops in C.", -1,
                                    methods, NULL, NULL, NULL, NULL};

/* Set sock_type when a fresh socket's fd field (SockHead) is its fileno(), for two
 * sockets (so an fd that happens to sit there is not taken for the layout); any failure
 * leaves it NULL: fd_of then calls fileno(). */
static void sock_layout_check(void) {
    PyObject *mod = PyImport_ImportModule("_socket");
    PyObject *type = mod ? PyObject_GetAttrString(mod, "socket") : NULL;
    int ok = type != NULL && PyType_Check(type) &&
             ((PyTypeObject *)type)->tp_basicsize >= (Py_ssize_t)sizeof(SockHead);
    for (int k = 0; ok && k < 2; k++) {
        PyObject *sk = PyObject_CallNoArgs(type);
        PyObject *r = sk ? PyObject_CallMethodNoArgs(sk, str_fileno) : NULL;
        long fd = r ? PyLong_AsLong(r) : -1;
        ok = r != NULL && fd >= 0 && ((SockHead *)sk)->sock_fd == (int)fd;
        Py_XDECREF(r);
        if (sk != NULL) {
            PyObject *c = PyObject_CallMethod(sk, "close", NULL);
            Py_XDECREF(c);
            Py_DECREF(sk);
        }
    }
    PyErr_Clear();
    if (ok) {
        sock_type = (PyTypeObject *)type;  /* (kept: a reference for the module's life) */
        Py_INCREF(sock_type);
    }
    Py_XDECREF(type);
    Py_XDECREF(mod);
}

PyMODINIT_FUNC PyInit__hot(void) {
    str_fileno = PyUnicode_InternFromString("fileno");
    if (str_fileno == NULL)
        return NULL;
    sock_layout_check();
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "fast_fd", sock_type != NULL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
