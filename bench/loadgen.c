/*
 * loadgen.c - single-threaded epoll WebSocket load generator for pledge-ws.
 *
 * Why C: a Python client saturates a core long before 10,000 sockets at
 * 10 frames/s each, and then it measures itself instead of the server.
 * One thread, one epoll set, level-triggered, no external libraries.
 *
 * Build:  gcc -O2 -o bench/.build/loadgen bench/loadgen.c
 * Usage:  loadgen --url ws://127.0.0.1:PORT/ws --clients N [--ramp-per-sec R]
 *                 [--warmup S] [--duration S] [--stalled-fraction F]
 *                 [--ping-interval S] [--drain S] [--connect-timeout S]
 *                 [--max-pending K] [--ramp-grace S] [--origin O] [--stalled-pings]
 *                 [--busy-poll] [--reconnect] [--json]
 *
 * --reconnect (rolling restarts): a client the server closes after the ramp
 * connects again, at a moment drawn uniformly from the close reason's
 * "reconnect_window_ms=W" hint (0 without one), as the reference client does,
 * retrying every 200-400 ms while refused. It counts as back at its first price
 * newer than the last one it had; the result's "reconnect" object gives how
 * long that took, from its own close and from the first close of the run.
 *
 * Client model: by default the loop sleeps in epoll_wait, so on loopback every
 * frame the server sends also pays for waking this process (the wake-up is
 * charged to the sender's CPU). --busy-poll never sleeps (epoll_wait timeout 0),
 * which models remote clients whose receive work is not on the server's CPU.
 * The JSON result names the model used ("client_model").
 *
 * Timeline (all phases bounded):
 *   ramp    open N connections at R/s with at most --max-pending (200)
 *           handshakes in flight; ends when every attempt has opened or failed.
 *           An attempt not open after --connect-timeout (10 s) fails; attempts
 *           not started by N/R + --ramp-grace (30 s) are not made.
 *   warmup  S seconds; nothing is measured.
 *   window  `duration` seconds; a tick (seq) belongs to the window when the
 *           first client to receive it does so inside the window, so every
 *           client is judged on the same set of ticks.
 *   drain   `drain` seconds (default 2): late receipts of window ticks still
 *           count; stalled clients start reading so that a server-side close
 *           (FIN queued behind unread data) becomes visible -> evictions.
 * A hard deadline of N/R + ramp-grace + connect-timeout + warmup + duration + 10 s ends
 * the run whatever happens (SIGALRM backstop 5 s later).
 *
 * Stalled clients (every 1/F-th client) get a tiny SO_RCVBUF, never read after
 * the handshake and never ping, so a server may drop them by heartbeat before
 * its send path ever blocks. --stalled-pings keeps them pinging (still never
 * reading): that isolates slow-consumer handling from the heartbeat.
 *
 * Progress events go to stderr as "EVENT <name> <json>" lines so that the
 * harness can sample server CPU/RSS at the right moments; the result is one
 * JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ utils */

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Wall clock with microsecond precision: the frames' ts is epoch ms. */
static double real_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* No libm: the brief's build line has no -lm. Arguments are >= 0 here. */
static double floor_pos(double x) { return (double)(uint64_t)x; }
static double ceil_pos(double x) {
    double f = floor_pos(x);
    return f < x ? f + 1 : f;
}

static double cpu_user_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64*: keys and jitter, not crypto */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static double rng01(void) { return (rng() >> 11) * (1.0 / 9007199254740992.0); }

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void event(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "EVENT %s ", name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    va_end(ap);
}

/* ------------------------------------------------------ SHA-1 and base64 */
/* Only to check Sec-WebSocket-Accept: a server that answers 101 with a wrong
 * accept value is not speaking WebSocket, and we count it as a failure. */

typedef struct {
    uint32_t h[5];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} sha1_t;

#define ROL(x, c) (((x) << (c)) | ((x) >> (32 - (c))))

static void sha1_block(sha1_t *s, const uint8_t *p) {
    uint32_t w[80], a, b, c, d, e, t;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else f = b ^ c ^ d, k = 0xCA62C1D6;
        t = ROL(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL(b, 30), b = a, a = t;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e;
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
    sha1_t s = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, 0, {0}, 0};
    s.len = len;
    while (len >= 64) sha1_block(&s, data), data += 64, len -= 64;
    memcpy(s.buf, data, len);
    s.n = len;
    s.buf[s.n++] = 0x80;
    if (s.n > 56) {
        memset(s.buf + s.n, 0, 64 - s.n);
        sha1_block(&s, s.buf);
        s.n = 0;
    }
    memset(s.buf + s.n, 0, 56 - s.n);
    uint64_t bits = s.len * 8;
    for (int i = 0; i < 8; i++) s.buf[63 - i] = (uint8_t)(bits >> (8 * i));
    sha1_block(&s, s.buf);
    for (int i = 0; i < 5; i++)
        out[4 * i] = s.h[i] >> 24, out[4 * i + 1] = s.h[i] >> 16, out[4 * i + 2] = s.h[i] >> 8,
                out[4 * i + 3] = s.h[i];
}

static void b64(const uint8_t *in, size_t n, char *out) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
        out[o++] = T[v >> 18], out[o++] = T[(v >> 12) & 63], out[o++] = T[(v >> 6) & 63],
        out[o++] = T[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = in[i] << 16;
        out[o++] = T[v >> 18], out[o++] = T[(v >> 12) & 63], out[o++] = '=', out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = in[i] << 16 | in[i + 1] << 8;
        out[o++] = T[v >> 18], out[o++] = T[(v >> 12) & 63], out[o++] = T[(v >> 6) & 63],
        out[o++] = '=';
    }
    out[o] = 0;
}

/* ------------------------------------------------- latency histogram (us) */
/* Log-linear: exact below 2048 us, then 1024 sub-buckets per power of two
 * (<0.1% relative error). Fixed memory whatever the client count. */

#define H_SUB 1024
#define H_SIZE (2048 + 40 * H_SUB)
static uint64_t hist[H_SIZE];
static uint64_t hist_n;
static double lat_max_ms, lat_sum_ms;
static uint64_t lat_negative;

static int h_index(uint64_t v) {
    if (v < 2048) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 10;
    int idx = 2048 + (shift - 1) * H_SUB + (int)((v >> shift) - H_SUB);
    return idx < H_SIZE ? idx : H_SIZE - 1;
}

static double h_value_us(int idx) {
    if (idx < 2048) return idx;
    int shift = (idx - 2048) / H_SUB + 1;
    uint64_t m = (uint64_t)((idx - 2048) % H_SUB + H_SUB);
    return (double)(m << shift) + (double)(1ULL << shift) / 2.0;
}

/* Per second of the window: worst latency, to see *when* a spike happened. */
#define TL_MAX 3600
static double tl_max[TL_MAX];
static double t_window0; /* mono ms at window start */

static void h_record(double ms) {
    if (t_window0 > 0) {
        long sec = (long)((mono_ms() - t_window0) / 1000.0);
        if (sec >= 0 && sec < TL_MAX && ms > tl_max[sec]) tl_max[sec] = ms;
    }
    if (ms < 0) lat_negative++, ms = 0;
    if (ms > lat_max_ms) lat_max_ms = ms;
    lat_sum_ms += ms;
    hist[h_index((uint64_t)(ms * 1000.0 + 0.5))]++;
    hist_n++;
}

/* Receipts during the ramp (clients already connected while others still connect): their own
 * histogram, so the storm's effect on connected clients is reported apart from the window. */
static uint64_t ramp_hist[H_SIZE], ramp_n;
static double ramp_max_ms;

static void h_record_ramp(double ms) {
    if (ms < 0) ms = 0;
    if (ms > ramp_max_ms) ramp_max_ms = ms;
    ramp_hist[h_index((uint64_t)(ms * 1000.0 + 0.5))]++;
    ramp_n++;
}

static double ramp_quantile_ms(double q) {
    if (!ramp_n) return NAN;
    uint64_t rank = (uint64_t)ceil_pos(q * ramp_n), acc = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < H_SIZE; i++) {
        acc += ramp_hist[i];
        if (acc >= rank) {
            double v = h_value_us(i) / 1000.0;
            return v > ramp_max_ms ? ramp_max_ms : v;
        }
    }
    return ramp_max_ms;
}

static double h_quantile_ms(double q) {
    if (!hist_n) return NAN;
    uint64_t rank = (uint64_t)ceil_pos(q * hist_n);
    if (rank < 1) rank = 1;
    uint64_t acc = 0;
    for (int i = 0; i < H_SIZE; i++) {
        acc += hist[i];
        if (acc >= rank) {
            double v = h_value_us(i) / 1000.0;
            return v > lat_max_ms ? lat_max_ms : v;
        }
    }
    return lat_max_ms;
}

/* ------------------------------------------- global set of seqs (ticks) */

typedef struct {
    uint64_t seq;
    uint8_t used, in_window;
} seq_ent;
static seq_ent *seqtab;
static size_t seq_cap, seq_used;

static seq_ent *seq_lookup(uint64_t seq, int *created) {
    if ((seq_used + 1) * 2 > seq_cap) {
        size_t ncap = seq_cap ? seq_cap * 2 : 4096;
        seq_ent *n = calloc(ncap, sizeof *n);
        if (!n) die("out of memory");
        for (size_t i = 0; i < seq_cap; i++) {
            if (!seqtab[i].used) continue;
            size_t j = (seqtab[i].seq * 0x9E3779B97F4A7C15ULL) & (ncap - 1);
            while (n[j].used) j = (j + 1) & (ncap - 1);
            n[j] = seqtab[i];
        }
        free(seqtab);
        seqtab = n, seq_cap = ncap;
    }
    size_t j = (seq * 0x9E3779B97F4A7C15ULL) & (seq_cap - 1);
    while (seqtab[j].used) {
        if (seqtab[j].seq == seq) return *created = 0, &seqtab[j];
        j = (j + 1) & (seq_cap - 1);
    }
    seqtab[j].used = 1, seqtab[j].seq = seq, seq_used++;
    *created = 1;
    return &seqtab[j];
}

/* ---------------------------------------------------------- connections */

enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DONE, ST_WAIT };
enum { PH_RAMP, PH_WARMUP, PH_WINDOW, PH_DRAIN, PH_END };

typedef struct {
    int fd;
    uint8_t state, stalled, got_code0, closed_by_server, have_seq, we_closed, reading;
    uint8_t frag_op;
    uint8_t returning; /* --reconnect: closed by the server, not yet back with a new price */
    char key[32];
    char *rbuf;
    uint32_t rlen, rcap;
    char *wbuf;
    uint32_t wlen, wcap;
    char *frag;
    uint32_t fraglen, fragcap;
    double t_start, t_open, next_ping;
    double t_closed, t_retry; /* --reconnect: when the server closed it; next attempt */
    uint64_t last_seq;
    uint32_t in_window; /* distinct window seqs received */
} conn_t;

static conn_t *conns;
static int nconns, epfd, phase = PH_RAMP;
static struct sockaddr_in dst;
static char host_hdr[300], path[1024], origin[512];

/* options */
static int opt_clients = 100, opt_json = 0, opt_stalled_pings = 0, opt_max_pending = 200, opt_busy_poll = 0,
           opt_reconnect = 0;
static double opt_ramp = 1000, opt_warmup = 5, opt_duration = 15, opt_stalled = 0,
              opt_ping = 5, opt_drain = 2, opt_connect_timeout = 10, opt_ramp_grace = 30;

/* counters */
static long n_fail_not_started, n_connected, n_failed, n_fail_refused, n_fail_timeout, n_fail_status,
    n_fail_reset, n_fail_other, n_snapshot, n_well_connected, n_stalled_connected;
static long n_closed_well, n_closed_stalled, n_closed_well_window;
static long n_ooo, n_dup, n_ooo_all, n_dup_all, n_pongs, n_pings_sent, n_err_frames, n_binary, n_ws_pings,
    n_proto_err, n_code0_total;
static long n_close_frames;
/* --reconnect */
static long n_rc_closed, n_rc_back, n_rc_attempts, n_rc_failures, n_rc_hinted;
static double t_first_close, t_last_back, rc_window_ms_seen = -1;
static double *rc_downtime_ms; /* per client that came back: close -> first new price */
static char first_error[160];
static double stalled_close_s[4096]; /* seconds after open; RST-style closes seen live */
static int n_stalled_close_seen;

/* A stalled client, once open, asks for no input until the drain. */
static uint32_t want_in(const conn_t *c) {
    return c->stalled && c->state == ST_OPEN && !c->reading ? 0 : EPOLLIN;
}

static void ep_set(conn_t *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.u32 = (uint32_t)(c - conns)};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl mod: %s", strerror(errno));
}

static void conn_close(conn_t *c, int by_server) {
    if (c->state == ST_DONE || c->fd < 0) return;
    int was_open = c->state == ST_OPEN;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    /* RST instead of FIN: no TIME_WAIT pile-up across a 10k sweep. */
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    c->fd = -1;
    c->state = ST_DONE;
    if (was_open && by_server) {
        c->closed_by_server = 1;
        if (c->stalled) {
            n_closed_stalled++;
            if (!c->reading && n_stalled_close_seen < 4096)
                stalled_close_s[n_stalled_close_seen++] = (mono_ms() - c->t_open) / 1000.0;
        }
        else {
            n_closed_well++;
            if (phase == PH_WINDOW) n_closed_well_window++;
        }
    }
    free(c->rbuf), free(c->wbuf), free(c->frag);
    c->rbuf = c->wbuf = c->frag = NULL;
    c->rcap = c->rlen = c->wcap = c->wlen = c->fragcap = c->fraglen = 0;
    if (opt_reconnect && !c->stalled && phase >= PH_WARMUP && phase <= PH_WINDOW &&
        ((was_open && by_server) || c->returning)) {
        double now = mono_ms();
        if (!c->returning) {
            c->returning = 1, c->t_closed = now, n_rc_closed++;
            if (t_first_close == 0) t_first_close = now;
        }
        c->state = ST_WAIT;
        c->t_retry = now + 200.0 + 200.0 * rng01(); /* a close frame's hint overrides this */
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The spread a closing server asked for: "reconnect_window_ms=W" in its reason. */
static double hinted_window_ms(const char *reason, size_t n) {
    static const char key[] = "reconnect_window_ms=";
    const char *p = memmem(reason, n, key, sizeof key - 1);
    if (!p) return 0;
    double w = 0;
    for (p += sizeof key - 1; p < reason + n && *p >= '0' && *p <= '9'; p++) w = w * 10 + (*p - '0');
    return w > 60000 ? 60000 : w;
}

static void conn_fail(conn_t *c, long *reason) {
    if (c->returning) { /* a reconnect attempt: conn_close schedules the next one */
        n_rc_failures++;
        c->t_retry = 0;
        conn_close(c, 0);
        return;
    }
    (*reason)++;
    n_failed++;
    conn_close(c, 0);
}

/* Queue bytes; try to send right away; leftovers wait for EPOLLOUT. */
static void conn_write(conn_t *c, const char *p, size_t n) {
    if (c->wlen == 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)n) return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_close(c, 1);
                return;
            }
            w = 0;
        }
        p += w, n -= (size_t)w;
    }
    if (c->wlen + n > c->wcap) {
        uint32_t nc = c->wcap ? c->wcap : 256;
        while (nc < c->wlen + n) nc *= 2;
        c->wbuf = realloc(c->wbuf, nc);
        if (!c->wbuf) die("out of memory");
        c->wcap = nc;
    }
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += (uint32_t)n;
    ep_set(c, want_in(c) | EPOLLOUT);
}

/* Client frames must be masked (RFC 6455 5.3). */
static void send_frame(conn_t *c, int op, const char *payload, size_t n) {
    char f[14 + 125];
    if (n > 125) n = 125;
    uint32_t mask = (uint32_t)rng();
    f[0] = (char)(0x80 | op);
    f[1] = (char)(0x80 | n);
    memcpy(f + 2, &mask, 4);
    for (size_t i = 0; i < n; i++) f[6 + i] = payload[i] ^ ((char *)&mask)[i & 3];
    conn_write(c, f, 6 + n);
}

static void start_connect(conn_t *c, int idx) {
    c->t_start = mono_ms();
    c->stalled = 0;
    if (opt_stalled > 0) {
        /* spread evenly: client i is stalled when floor((i+1)F) > floor(iF) */
        c->stalled = floor_pos((idx + 1) * opt_stalled) > floor_pos(idx * opt_stalled);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        if (!first_error[0]) snprintf(first_error, sizeof first_error, "socket: %s", strerror(errno));
        c->fd = -1;
        c->state = ST_DONE;
        n_fail_other++, n_failed++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->stalled) {
        int tiny = 1; /* the kernel rounds up to its minimum (~2 KB) */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tiny, sizeof tiny);
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)idx};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl add: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        if (!first_error[0]) snprintf(first_error, sizeof first_error, "connect: %s", strerror(errno));
        conn_fail(c, errno == ECONNREFUSED ? &n_fail_refused : &n_fail_other);
    }
}

static void send_handshake(conn_t *c) {
    uint8_t raw[16];
    for (int i = 0; i < 16; i++) raw[i] = (uint8_t)rng();
    b64(raw, 16, c->key);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s"
                     "User-Agent: pledge-ws-loadgen\r\n\r\n",
                     path, host_hdr, c->key, origin[0] ? "Origin: " : "", origin,
                     origin[0] ? "\r\n" : "");
    c->state = ST_HANDSHAKE;
    ep_set(c, EPOLLIN);
    conn_write(c, req, (size_t)n);
}

static int ensure_rcap(conn_t *c, uint32_t need) {
    if (need <= c->rcap) return 1;
    if (need > (16u << 20)) return 0;
    uint32_t nc = c->rcap ? c->rcap : 2048;
    while (nc < need) nc *= 2;
    char *p = realloc(c->rbuf, nc);
    if (!p) die("out of memory");
    c->rbuf = p, c->rcap = nc;
    return 1;
}

/* "key" <ws> : <ws>  -> pointer just after the colon and whitespace. */
static const char *find_key(const char *s, size_t n, const char *key) {
    size_t kl = strlen(key);
    const char *end = s + n, *p = s;
    while ((p = memmem(p, (size_t)(end - p), key, kl))) {
        const char *q = p + kl;
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && (*q == ' ' || *q == '\t')) q++;
            return q;
        }
        p += kl;
    }
    return NULL;
}

static void on_text(conn_t *c, const char *s, size_t n) {
    const char *end = s + n;
    const char *p = find_key(s, n, "\"code\"");
    if (!p) return;
    long code = strtol(p, NULL, 10); /* frames are small and end in '}' */
    if (code == 1) {
        n_pongs++;
        return;
    }
    if (code != 0) {
        n_err_frames++;
        if (!first_error[0]) snprintf(first_error, sizeof first_error, "frame: %.*s", (int)(n > 120 ? 120 : n), s);
        return;
    }
    double now_real = real_ms(), now = mono_ms();
    n_code0_total++;
    if (!c->got_code0) {
        c->got_code0 = 1;
        if (!c->stalled && now - c->t_open <= 1000.0) n_snapshot++;
    }
    const char *q = find_key(s, n, "\"seq\"");
    if (!q || q >= end || *q != '"') return;
    uint64_t seq = 0;
    for (q++; q < end && *q >= '0' && *q <= '9'; q++) seq = seq * 10 + (uint64_t)(*q - '0');
    const char *t = find_key(s, n, "\"ts\"");
    double ts = t ? strtod(t, NULL) : NAN;

    int created;
    seq_ent *e = seq_lookup(seq, &created);
    if (created) e->in_window = phase == PH_WINDOW;
    int fresh = !c->have_seq || seq > c->last_seq;
    if (!fresh && !c->stalled) { /* stalled clients read only in the drain */
        if (seq == c->last_seq) n_dup_all++, n_dup += phase == PH_WINDOW;
        else n_ooo_all++, n_ooo += phase == PH_WINDOW;
    }
    if (fresh && c->returning && c->have_seq) {
        c->returning = 0, n_rc_back++, t_last_back = now;
        rc_downtime_ms[n_rc_back - 1] = now - c->t_closed;
    }
    if (fresh) c->last_seq = seq, c->have_seq = 1;
    /* a live price (not the connect snapshot) to a client connected during the ramp */
    if (fresh && phase == PH_RAMP && !c->stalled && !isnan(ts) && now - c->t_open > 200.0)
        h_record_ramp(now_real - ts);
    if (fresh && e->in_window && !c->stalled) {
        c->in_window++;
        if (!isnan(ts)) h_record(now_real - ts);
    }
}

/* Parse every complete frame in rbuf; keep the partial tail. */
static void parse_frames(conn_t *c) {
    uint32_t off = 0;
    while (c->state == ST_OPEN) {
        uint32_t avail = c->rlen - off;
        if (avail < 2) break;
        uint8_t *p = (uint8_t *)c->rbuf + off;
        int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        uint32_t hdr = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)p[2] << 8 | p[3];
            hdr = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
            hdr = 10;
        }
        if (masked) hdr += 4;
        if (len > (8u << 20)) {
            n_proto_err++;
            conn_close(c, 0);
            return;
        }
        if (avail < hdr + len) {
            if (!ensure_rcap(c, (uint32_t)(hdr + len))) {
                n_proto_err++;
                conn_close(c, 0);
                return;
            }
            break;
        }
        char *pl = (char *)p + hdr;
        if (masked) {
            uint8_t *m = p + hdr - 4;
            for (uint64_t i = 0; i < len; i++) pl[i] ^= m[i & 3];
        }
        off += hdr + (uint32_t)len;
        switch (op) {
        case 0x8: /* close: the server ended it */
            n_close_frames++;
            if (!c->we_closed) send_frame(c, 0x8, pl, len >= 2 ? 2 : 0);
            if (opt_reconnect) {
                double w = len > 2 ? hinted_window_ms(pl + 2, (size_t)len - 2) : 0;
                if (w > 0) n_rc_hinted++, rc_window_ms_seen = w;
                conn_close(c, 1);
                if (c->state == ST_WAIT) c->t_retry = c->t_closed + rng01() * w;
                return;
            }
            conn_close(c, 1);
            return;
        case 0x9:
            n_ws_pings++;
            if (!c->stalled || c->reading) send_frame(c, 0xA, pl, (size_t)len);
            break;
        case 0xA:
            break;
        case 0x1:
        case 0x2:
        case 0x0:
            if (op == 0x2 || (op == 0 && c->frag_op == 0x2)) n_binary++;
            if (op != 0 && fin) {
                if (op == 0x1) on_text(c, pl, (size_t)len);
                break;
            }
            if (op != 0) c->frag_op = (uint8_t)op, c->fraglen = 0;
            if (c->fraglen + len > c->fragcap) {
                uint32_t nc = c->fragcap ? c->fragcap : 1024;
                while (nc < c->fraglen + len) nc *= 2;
                c->frag = realloc(c->frag, nc);
                if (!c->frag) die("out of memory");
                c->fragcap = nc;
            }
            memcpy(c->frag + c->fraglen, pl, len);
            c->fraglen += (uint32_t)len;
            if (fin) {
                if (c->frag_op == 0x1) on_text(c, c->frag, c->fraglen);
                c->fraglen = 0;
            }
            break;
        default:
            n_proto_err++;
            conn_close(c, 0);
            return;
        }
    }
    if (c->state == ST_DONE) return;
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static int check_handshake(conn_t *c, uint32_t hdr_len) {
    c->rbuf[hdr_len - 1] = 0; /* last '\n' of the blank line */
    if (strncmp(c->rbuf, "HTTP/1.1 101", 12) != 0) return 0;
    char acc_src[128], expect[32];
    uint8_t dig[20];
    snprintf(acc_src, sizeof acc_src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
    sha1((uint8_t *)acc_src, strlen(acc_src), dig);
    b64(dig, 20, expect);
    const char *a = strcasestr(c->rbuf, "\nSec-WebSocket-Accept:");
    if (!a) return 0;
    a += 22;
    while (*a == ' ' || *a == '\t') a++;
    return strncmp(a, expect, strlen(expect)) == 0;
}

static void on_readable(conn_t *c) {
    if (!ensure_rcap(c, c->rlen + 1024)) {
        n_proto_err++;
        conn_close(c, 0);
        return;
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        if (c->state == ST_HANDSHAKE) conn_fail(c, &n_fail_reset);
        else conn_close(c, 1);
        return;
    }
    if (r < 0) return;
    c->rlen += (uint32_t)r;
    if (c->state == ST_HANDSHAKE) {
        char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!e) {
            if (c->rlen > 16384) conn_fail(c, &n_fail_status);
            return;
        }
        uint32_t hl = (uint32_t)(e - c->rbuf) + 4;
        if (!check_handshake(c, hl)) {
            if (!first_error[0])
                snprintf(first_error, sizeof first_error, "handshake: %.100s", c->rbuf);
            conn_fail(c, &n_fail_status);
            return;
        }
        c->state = ST_OPEN;
        c->t_open = mono_ms();
        c->t_retry = 0;
        if (!c->returning) n_connected++;
        memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
        c->rlen -= hl;
        if (c->stalled) {
            /* Never read again (until the drain) and never ping. Keep the fd
             * in the set with no events so an RST still shows as EPOLLERR. */
            n_stalled_connected++;
            c->rlen = 0;
            c->next_ping = c->t_open + rng01() * opt_ping * 1000.0;
            ep_set(c, c->wlen ? EPOLLOUT : 0);
            return;
        }
        if (!c->returning) n_well_connected++;
        c->next_ping = c->t_open + rng01() * opt_ping * 1000.0;
    }
    parse_frames(c);
}

static void on_writable(conn_t *c) {
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            if (!first_error[0]) snprintf(first_error, sizeof first_error, "connect: %s", strerror(err));
            conn_fail(c, err == ECONNREFUSED ? &n_fail_refused
                         : err == ETIMEDOUT  ? &n_fail_timeout
                                             : &n_fail_other);
            return;
        }
        send_handshake(c);
        return;
    }
    if (c->wlen) {
        ssize_t w = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c, 1);
            return;
        }
        memmove(c->wbuf, c->wbuf + w, c->wlen - (uint32_t)w);
        c->wlen -= (uint32_t)w;
    }
    if (!c->wlen) ep_set(c, want_in(c));
}

/* ------------------------------------------------------------- main */

static void on_alarm(int sig) {
    (void)sig;
    static const char m[] = "loadgen: hard deadline passed, aborting\n";
    if (write(2, m, sizeof m - 1) < 0) _exit(3);
    _exit(3);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --url ws://127.0.0.1:PORT/ws --clients N [--ramp-per-sec R] "
            "[--warmup S] [--duration S] [--stalled-fraction F] [--ping-interval S] "
            "[--drain S] [--connect-timeout S] [--max-pending K] [--ramp-grace S] [--origin O] "
            "[--stalled-pings] [--busy-poll] [--reconnect] [--json]\n");
    exit(2);
}

static void parse_url(const char *url) {
    if (strncmp(url, "ws://", 5) != 0) die("only ws:// URLs are supported");
    const char *h = url + 5, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof host_hdr) die("bad url host");
    memcpy(host_hdr, h, hl);
    host_hdr[hl] = 0;
    snprintf(path, sizeof path, "%s", slash ? slash : "/");
    char host[sizeof host_hdr];
    int port = 80;
    char *colon = strrchr(host_hdr, ':');
    if (colon) {
        snprintf(host, sizeof host, "%.*s", (int)(colon - host_hdr), host_hdr);
        port = atoi(colon + 1);
    } else snprintf(host, sizeof host, "%s", host_hdr);
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    memset(&dst, 0, sizeof dst);
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) die("host must be an IPv4 literal: %s", host);
    /* Load only ever goes to this machine. */
    if ((ntohl(dst.sin_addr.s_addr) >> 24) != 127) die("refusing non-loopback target %s", host);
}

static void jnum(FILE *f, const char *k, double v, int last) {
    if (isnan(v) || isinf(v)) fprintf(f, "\"%s\":null%s", k, last ? "" : ",");
    else fprintf(f, "\"%s\":%.6g%s", k, v, last ? "" : ",");
}

int main(int argc, char **argv) {
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { opt_json = 1; continue; }
        if (!strcmp(a, "--stalled-pings")) { opt_stalled_pings = 1; continue; }
        if (!strcmp(a, "--busy-poll")) { opt_busy_poll = 1; continue; }
        if (!strcmp(a, "--reconnect")) { opt_reconnect = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--clients")) opt_clients = atoi(v);
        else if (!strcmp(a, "--ramp-per-sec")) opt_ramp = atof(v);
        else if (!strcmp(a, "--warmup")) opt_warmup = atof(v);
        else if (!strcmp(a, "--duration")) opt_duration = atof(v);
        else if (!strcmp(a, "--stalled-fraction")) opt_stalled = atof(v);
        else if (!strcmp(a, "--ping-interval")) opt_ping = atof(v);
        else if (!strcmp(a, "--drain")) opt_drain = atof(v);
        else if (!strcmp(a, "--connect-timeout")) opt_connect_timeout = atof(v);
        else if (!strcmp(a, "--max-pending")) opt_max_pending = atoi(v);
        else if (!strcmp(a, "--ramp-grace")) opt_ramp_grace = atof(v);
        else if (!strcmp(a, "--origin")) snprintf(origin, sizeof origin, "%s", v);
        else usage();
        i++;
    }
    if (!url || opt_clients < 1 || opt_ramp <= 0 || opt_duration <= 0 || opt_ping <= 0 ||
        opt_stalled < 0 || opt_stalled >= 1 || opt_warmup < 0 || opt_drain < 0 || opt_drain > 8 ||
        opt_connect_timeout <= 0 || opt_max_pending < 1 || opt_ramp_grace < 0)
        usage();
    parse_url(url);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)opt_clients + 16 > rl.rlim_cur)
        die("--clients %d exceeds the fd limit %ld", opt_clients, (long)rl.rlim_cur);
    signal(SIGPIPE, SIG_IGN);
    if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || !rng_state)
        rng_state = (uint64_t)real_ms() ^ 0x9E3779B97F4A7C15ULL;

    double ramp_s = opt_clients / opt_ramp;
    double hard_s = ramp_s + opt_ramp_grace + opt_connect_timeout + opt_warmup + opt_duration + 10.0;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)ceil_pos(hard_s) + 5);

    nconns = opt_clients;
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) die("out of memory");
    for (int i = 0; i < nconns; i++) conns[i].fd = -1;
    rc_downtime_ms = calloc((size_t)nconns, sizeof *rc_downtime_ms);
    if (!rc_downtime_ms) die("out of memory");
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event *evs = calloc(4096, sizeof *evs);

    double t_begin = mono_ms(), t_hard = t_begin + hard_s * 1000.0;
    double last_timeout_scan = 0, t_ramp_end = t_begin + (ramp_s + opt_ramp_grace) * 1000.0;
    double t_warm_end = 0, t_win_start = 0, t_win_end = 0, t_drain_end = 0;
    double cpu_win_start = 0, cpu_win_end = 0, last_ping_scan = 0, last_rc_scan = 0;
    int started = 0, truncated = 0;
    double ramp_seconds = NAN;
    event("start", "{\"clients\":%d,\"ramp_s\":%.3f}", opt_clients, ramp_s);

    while (phase != PH_END) {
        double now = mono_ms();
        if (now >= t_hard) {
            truncated = 1;
            break;
        }
        /* ramp: start the connections due by now, but never more than
         * --max-pending handshakes in flight: a server slower to accept than
         * R/s slows the ramp down instead of collecting timed-out attempts
         * in its backlog (and then burning CPU on their dead handshakes). */
        if (started < nconns && phase == PH_RAMP) {
            if (now >= t_ramp_end) {
                for (; started < nconns; started++) {
                    conns[started].state = ST_DONE;
                    conns[started].stalled = opt_stalled > 0 && floor_pos((started + 1) * opt_stalled) >
                                                                    floor_pos(started * opt_stalled);
                    n_failed++, n_fail_not_started++;
                }
            } else {
                double want = floor_pos((now - t_begin) / 1000.0 * opt_ramp) + 1;
                int due = want > nconns ? nconns : (int)want;
                long in_flight = started - n_connected - n_failed;
                while (started < due && in_flight < opt_max_pending)
                    start_connect(&conns[started], started), started++, in_flight++;
            }
        }
        if (phase == PH_RAMP) {
            /* every attempt has its own handshake deadline */
            int pending = started < nconns || n_connected + n_failed < started;
            if (pending && now - last_timeout_scan >= 100.0) {
                last_timeout_scan = now;
                for (int i = 0; i < started; i++) {
                    conn_t *c = &conns[i];
                    if ((c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) &&
                        now - c->t_start >= opt_connect_timeout * 1000.0) {
                        if (!first_error[0]) snprintf(first_error, sizeof first_error, "handshake timeout");
                        conn_fail(c, &n_fail_timeout);
                    }
                }
                pending = started < nconns || n_connected + n_failed < started;
            }
            if (!pending) {
                phase = PH_WARMUP;
                t_warm_end = now + opt_warmup * 1000.0;
                ramp_seconds = (now - t_begin) / 1000.0;
                event("connected", "{\"connected\":%ld,\"failed\":%ld,\"elapsed_s\":%.3f}",
                      n_connected, n_failed, (now - t_begin) / 1000.0);
            }
        }
        if (phase == PH_WARMUP && now >= t_warm_end) {
            phase = PH_WINDOW;
            t_win_start = now;
            t_win_end = now + opt_duration * 1000.0;
            cpu_win_start = cpu_seconds();
            t_window0 = now;
            event("window_start", "{\"elapsed_s\":%.3f}", (now - t_begin) / 1000.0);
        }
        if (phase == PH_WINDOW && now >= t_win_end) {
            phase = PH_DRAIN;
            cpu_win_end = cpu_seconds();
            t_drain_end = now + opt_drain * 1000.0;
            event("window_end", "{\"elapsed_s\":%.3f}", (now - t_begin) / 1000.0);
            /* stalled clients now read, to see whether the server let them go */
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (c->stalled && c->state == ST_OPEN) {
                    c->reading = 1;
                    ep_set(c, EPOLLIN | (c->wlen ? EPOLLOUT : 0));
                }
            }
        }
        if (phase == PH_DRAIN && now >= t_drain_end) {
            phase = PH_END;
            break;
        }
        /* --reconnect: start the attempts that are due; time out stuck ones */
        if (opt_reconnect && n_rc_back < n_rc_closed && now - last_rc_scan >= 5.0) {
            last_rc_scan = now;
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state == ST_WAIT && now >= c->t_retry && phase <= PH_WINDOW) {
                    c->t_retry = 0;
                    n_rc_attempts++;
                    start_connect(c, i);
                } else if (c->returning && (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) &&
                           now - c->t_start >= opt_connect_timeout * 1000.0)
                    conn_fail(c, &n_fail_timeout);
            }
        }
        /* pings: scan every 50 ms, jittered per client */
        if (now - last_ping_scan >= 50.0) {
            last_ping_scan = now;
            for (int i = 0; i < nconns; i++) {
                conn_t *c = &conns[i];
                if (c->state != ST_OPEN || (c->stalled && !opt_stalled_pings) || now < c->next_ping) continue;
                send_frame(c, 0x1, "ping", 4);
                n_pings_sent++;
                c->next_ping = now + opt_ping * 1000.0 * (0.9 + 0.2 * rng01());
            }
        }
        int timeout = 50;
        if (started < nconns) timeout = 5;
        if (opt_busy_poll) timeout = 0;
        int n = epoll_wait(epfd, evs, 4096, timeout);
        if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            conn_t *c = &conns[evs[k].data.u32];
            uint32_t ev = evs[k].events;
            if (c->state == ST_DONE) continue;
            if (ev & (EPOLLERR | EPOLLHUP) && !(ev & EPOLLIN)) {
                if (c->state == ST_OPEN) conn_close(c, 1);
                else {
                    int err = 0;
                    socklen_t el = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    if (!first_error[0] && err)
                        snprintf(first_error, sizeof first_error, "connect: %s", strerror(err));
                    conn_fail(c, err == ECONNREFUSED ? &n_fail_refused : &n_fail_reset);
                }
                continue;
            }
            if (ev & EPOLLOUT) on_writable(c);
            if (c->state != ST_DONE && ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
    }

    double t_end = mono_ms();
    if (phase <= PH_WINDOW && t_win_start) cpu_win_end = cpu_seconds(), t_win_end = t_end;
    double win_s = t_win_start ? (t_win_end - t_win_start) / 1000.0 : NAN;
    long ticks_seen = 0;
    for (size_t i = 0; i < seq_cap; i++) ticks_seen += seqtab && seqtab[i].used && seqtab[i].in_window;
    double delivered_sum = 0, worst = NAN;
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->stalled || c->t_open == 0) continue; /* only well-behaved clients that opened */
        delivered_sum += c->in_window;
        if (ticks_seen) {
            double f = (double)c->in_window / ticks_seen;
            if (isnan(worst) || f < worst) worst = f;
        }
    }
    double delivered = ticks_seen && n_well_connected
                           ? delivered_sum / ((double)ticks_seen * n_well_connected)
                           : NAN;
    long stalled_total = 0;
    for (int i = 0; i < nconns; i++) stalled_total += conns[i].stalled;
    double cpu_total = cpu_seconds();

    FILE *f = stdout;
    const char *sep = opt_json ? "" : "\n  ";
    fprintf(f, "{%s", sep);
#define NUM(k, v) (jnum(f, k, (double)(v), 0), fputs(sep, f))
    NUM("clients_requested", opt_clients);
    NUM("clients_connected", n_connected);
    NUM("connect_failures", n_failed);
    fprintf(f, "\"connect_failure_reasons\":{\"refused\":%ld,\"timeout\":%ld,\"reset\":%ld,\"bad_handshake\":%ld,\"other\":%ld,\"not_started\":%ld},%s",
            n_fail_refused, n_fail_timeout, n_fail_reset, n_fail_status, n_fail_other, n_fail_not_started, sep);
    NUM("ramp_seconds", ramp_seconds);
    NUM("well_behaved_connected", n_well_connected);
    NUM("stalled_requested", stalled_total);
    NUM("stalled_connected", n_stalled_connected);
    NUM("snapshot_received", n_snapshot);
    NUM("ticks_seen", ticks_seen);
    NUM("delivered_fraction", delivered);
    NUM("worst_client_delivered_fraction", worst);
    NUM("receipts", hist_n);
    NUM("latency_p50_ms", h_quantile_ms(0.50));
    NUM("latency_p90_ms", h_quantile_ms(0.90));
    NUM("latency_p99_ms", h_quantile_ms(0.99));
    NUM("latency_p999_ms", h_quantile_ms(0.999));
    NUM("latency_max_ms", hist_n ? lat_max_ms : NAN);
    NUM("latency_mean_ms", hist_n ? lat_sum_ms / hist_n : NAN);
    NUM("ramp_receipts", ramp_n);
    NUM("ramp_latency_p50_ms", ramp_quantile_ms(0.50));
    NUM("ramp_latency_p99_ms", ramp_quantile_ms(0.99));
    NUM("ramp_latency_max_ms", ramp_n ? ramp_max_ms : NAN);
    NUM("latency_negative", lat_negative);
    NUM("out_of_order", n_ooo);
    NUM("duplicates", n_dup);
    NUM("out_of_order_whole_run", n_ooo_all);
    NUM("duplicates_whole_run", n_dup_all);
    fprintf(f, "\"closed_by_server\":{\"well_behaved\":%ld,\"well_behaved_in_window\":%ld,\"stalled\":%ld},%s",
            n_closed_well, n_closed_well_window, n_closed_stalled, sep);
    {
        double mn = NAN, mx = NAN, sum = 0;
        for (int i = 0; i < n_stalled_close_seen; i++) {
            double v = stalled_close_s[i];
            if (isnan(mn) || v < mn) mn = v;
            if (isnan(mx) || v > mx) mx = v;
            sum += v;
        }
        fprintf(f, "\"stalled_closed_live\":{\"count\":%d,", n_stalled_close_seen);
        jnum(f, "min_s", mn, 0);
        jnum(f, "mean_s", n_stalled_close_seen ? sum / n_stalled_close_seen : NAN, 0);
        jnum(f, "max_s", mx, 1);
        fprintf(f, "},%s", sep);
    }
    {
        long secs = win_s > 0 ? (long)ceil_pos(win_s) : 0;
        if (secs > TL_MAX) secs = TL_MAX;
        fprintf(f, "\"window_max_latency_ms_per_s\":[");
        for (long i = 0; i < secs; i++) fprintf(f, "%s%.1f", i ? "," : "", tl_max[i]);
        fprintf(f, "],%s", sep);
    }
    if (opt_reconnect) {
        qsort(rc_downtime_ms, (size_t)n_rc_back, sizeof *rc_downtime_ms, cmp_double);
#define RCQ(q) (n_rc_back ? rc_downtime_ms[(size_t)((n_rc_back - 1) * (q))] : NAN)
        fprintf(f, "\"reconnect\":{\"closed\":%ld,\"back\":%ld,\"not_back\":%ld,\"attempts\":%ld,"
                   "\"failed_attempts\":%ld,\"hinted_closes\":%ld,",
                n_rc_closed, n_rc_back, n_rc_closed - n_rc_back, n_rc_attempts, n_rc_failures, n_rc_hinted);
        jnum(f, "hint_window_ms", rc_window_ms_seen, 0);
        jnum(f, "downtime_p50_ms", RCQ(0.5), 0);
        jnum(f, "downtime_p99_ms", RCQ(0.99), 0);
        jnum(f, "downtime_max_ms", RCQ(1.0), 0);
        jnum(f, "all_back_after_first_close_s", n_rc_back ? (t_last_back - t_first_close) / 1000.0 : NAN, 1);
        fprintf(f, "},%s", sep);
    }
    NUM("close_frames", n_close_frames);
    NUM("error_frames", n_err_frames);
    NUM("binary_frames", n_binary);
    NUM("protocol_errors", n_proto_err);
    NUM("code0_frames_total", n_code0_total);
    NUM("pings_sent", n_pings_sent);
    NUM("pongs_received", n_pongs);
    NUM("ws_pings_received", n_ws_pings);
    NUM("window_seconds", win_s);
    NUM("loadgen_cpu_seconds", cpu_total);
    NUM("loadgen_cpu_user_seconds", cpu_user_seconds());
    NUM("loadgen_cpu_seconds_window", t_win_start ? cpu_win_end - cpu_win_start : NAN);
    NUM("loadgen_cpu_fraction", t_win_start && win_s > 0 ? (cpu_win_end - cpu_win_start) / win_s : NAN);
    NUM("elapsed_seconds", (t_end - t_begin) / 1000.0);
    fprintf(f, "\"client_model\":\"%s\",%s", opt_busy_poll ? "busy-poll" : "epoll-sleep", sep);
    fprintf(f, "\"truncated\":%s,%s", truncated ? "true" : "false", sep);
    fprintf(f, "\"first_error\":\"");
    for (const char *p = first_error; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f), fputc(*p, f);
        else if ((unsigned char)*p < 0x20) fputc(' ', f);
        else fputc(*p, f);
    }
    fprintf(f, "\"%s}\n", opt_json ? "" : "\n");
    fflush(f);

    for (int i = 0; i < nconns; i++) conn_close(&conns[i], 0);
    return 0;
}
