/*
 * poisson-load: a strict, single-threaded, open-loop HTTP/1.1 load generator for the anubis
 * bench (loopback only).
 *
 *   poisson-load -c CONNECTIONS -r RATE_PER_S -d DURATION_S [-t TIMEOUT_S] [-s SEED]
 *                [-w WARMUP_S] [-S SPIN_US] [-o FILE] http://127.0.0.1:PORT/path
 *
 * Why it exists: wrk's Lua delay() is in whole milliseconds and wrk's event loop fires its
 * timers on millisecond ticks, so "random" pauses make the connections whose pauses end in
 * the same tick send together: measured at ≈ 4,900 req/s over 50 connections, 59% of the
 * gaps between arrivals were under 10 µs (Poisson: 4.8%), in clumps of up to 15–20.
 *
 * Rules:
 * - Arrivals are one Poisson process: exponential gaps of mean 1/RATE from a seeded PRNG
 *   (xoshiro256**), scheduled to the nanosecond with a timerfd (CLOCK_MONOTONIC, absolute
 *   times) in the epoll set, timer slack 1 ns. A timer wake-up is late by its own latency
 *   (≈ 20–60 µs on the bench's VM); -S SPIN_US arms the timer that much early and polls
 *   (epoll_wait 0, sched_yield between polls) until the arrival is due: on time, for more
 *   CPU, on a CPU of its own only (next to a busy process the poller loses its turn for
 *   milliseconds and the arrivals clump). Default 0 (timer only).
 * - Open loop: an arrival does not wait for earlier responses. It takes the idle keep-alive
 *   connection that has been idle longest (FIFO) and writes the request in one write; with
 *   no idle connection it waits in a FIFO backlog (counted: backlog.waited, backlog.max).
 * - Latency = response complete - SCHEDULED arrival time (coordinated-omission correct: a
 *   backlog wait or a late timer is part of it). lateUs is how late the generator wrote the
 *   requests that found an idle connection (its own timer and loop), a self-check.
 * - gapsBelow10Us: fraction of consecutive measured writes less than 10 µs apart (Poisson
 *   at rate r: 1 - exp(-r × 10 µs)), another self-check: far above that means clumps. Two
 *   writes cannot be closer than one write() call (≈ 10 µs in the bench's VM), so when
 *   on time (with -S) it comes out below the Poisson figure.
 * - Responses: status line, headers up to CRLFCRLF, Content-Length framing (204 and 304
 *   have no body). No Content-Length, Transfer-Encoding (chunked), a 1xx or a malformed head
 *   is a read error and the connection is reopened; `Connection: close` (or HTTP/1.0 without
 *   keep-alive) reopens it after the response. Status >= 400 counts as a `status` error, as
 *   in wrk. A request outstanding (backlog included) longer than TIMEOUT_S is a timeout and
 *   its connection is reopened. Errors are counted over the whole run (warm-up included);
 *   requests, bytes and latencies only for arrivals of the measured window.
 * - Bounded: WARMUP_S of unmeasured arrivals, then exactly DURATION_S of measured ones, then
 *   at most TIMEOUT_S for the outstanding responses. Too many consecutive failed connects:
 *   exits 2 with a message.
 *
 * Output: one line on stdout, the format of bench/lib/report.lua with prefix POISSON_JSON
 * and three more fields (lateUs, backlog, gapsBelow10Us). With -o FILE, also one line per
 * measured response in FILE, written after the run: its scheduled arrival time in ns of
 * CLOCK_MONOTONIC (the clock of `perf record -k CLOCK_MONOTONIC`, to line slow requests up
 * with what ran on the CPUs) and its latency in ns, in completion order.
 *
 * Build: gcc -std=c11 -O2 -Wall -Wextra -o poisson-load poisson-load.c -lm (bench/lib/poisson.ts
 * does it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define READ_BUF 65536
#define MAX_EVENTS 256
#define TIMER_TAG UINT64_MAX
#define NS_PER_S 1000000000LL
#define GAP_NS 10000LL

/* S_DONE: a response just completed, the connection is in no list yet. */
enum conn_state { S_CLOSED, S_CONNECTING, S_IDLE, S_BUSY, S_DONE };

struct conn {
  int fd;
  uint32_t gen; /* bumped on every close: epoll events of an old socket are ignored */
  enum conn_state st;
  int64_t since; /* connect start (S_CONNECTING) */
  int64_t retry_at; /* S_CLOSED: when to reconnect */
  int fails; /* consecutive failed connects of this slot (backoff) */
  /* the request in flight (S_BUSY) */
  int64_t sched;
  int measured;
  size_t written;
  /* its response */
  int in_body;
  size_t head_len;
  uint64_t body_left;
  uint64_t resp_bytes;
  int status;
  int resp_close;
  char head[HEAD_MAX];
  /* FIFO of idle connections (doubly linked, -1 = none) */
  int prev, next;
};

struct arrival {
  int64_t sched;
  int measured;
};

struct i64s {
  int64_t *v;
  size_t n, cap;
};

static void die(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("poisson-load: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

static void push(struct i64s *a, int64_t x) {
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 4096;
    a->v = realloc(a->v, a->cap * sizeof *a->v);
    if (a->v == NULL) die(3, "out of memory");
  }
  a->v[a->n++] = x;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* ---- PRNG: xoshiro256** seeded by splitmix64 ---- */
static uint64_t rng_s[4];
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static uint64_t rng_next(void) {
  uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
  rng_s[2] ^= rng_s[0];
  rng_s[3] ^= rng_s[1];
  rng_s[1] ^= rng_s[2];
  rng_s[0] ^= rng_s[3];
  rng_s[2] ^= t;
  rng_s[3] = rotl(rng_s[3], 45);
  return r;
}
/* An exponential gap of mean 1/rate seconds, in ns. */
static double exp_gap_ns(double rate) {
  double u = (double)(rng_next() >> 11) * 0x1.0p-53; /* [0, 1) */
  return -log1p(-u) / rate * 1e9;
}

/* ---- configuration and state ---- */
static int nconn = 0;
static double rate = 0, duration_s = 0, timeout_s = 5, warmup_s = 0;
static int64_t spin_ns = 0;
static uint64_t seed = 1;
static struct sockaddr_storage addr;
static socklen_t addr_len;
static char request[4096];
static size_t request_len;

static struct conn *conns;
static int epfd, tfd;
static int idle_head = -1, idle_tail = -1;
static int busy = 0, open_conns = 0;
static int consecutive_connect_failures = 0, max_connect_failures;
static int64_t timeout_ns;

static struct arrival *backlog;
static size_t bl_cap, bl_head, bl_len, bl_max;
static uint64_t bl_waited;

static struct i64s latencies, lateness;
/* -o: the scheduled arrival time of each measured response, beside latencies (same order). */
static struct i64s arrivals_out;
static const char *dump_path;
static uint64_t resp_bytes_total, gaps_below, gaps_total;
static int64_t last_send = -1;
static uint64_t err_connect, err_read, err_write, err_status, err_timeout;

enum phase { P_CONNECTING, P_RUNNING, P_DRAINING };
static enum phase phase = P_CONNECTING;
static int64_t t0, measure_from, end_at;
static double next_off; /* next arrival, ns after t0 */

static void start_connect(int i, int64_t now);
static void conn_ready(int i, int64_t now);

/* ---- idle FIFO ---- */
static void idle_push(int i) {
  struct conn *c = &conns[i];
  c->prev = idle_tail;
  c->next = -1;
  if (idle_tail >= 0)
    conns[idle_tail].next = i;
  else
    idle_head = i;
  idle_tail = i;
}
static void idle_remove(int i) {
  struct conn *c = &conns[i];
  if (c->prev >= 0)
    conns[c->prev].next = c->next;
  else
    idle_head = c->next;
  if (c->next >= 0)
    conns[c->next].prev = c->prev;
  else
    idle_tail = c->prev;
  c->prev = c->next = -1;
}
static int idle_pop(void) {
  int i = idle_head;
  if (i >= 0) idle_remove(i);
  return i;
}

/* ---- backlog FIFO (ring, grows) ---- */
static void backlog_push(int64_t sched, int measured) {
  if (bl_len == bl_cap) {
    size_t cap = bl_cap ? bl_cap * 2 : 1024;
    struct arrival *b = malloc(cap * sizeof *b);
    if (b == NULL) die(3, "out of memory");
    for (size_t k = 0; k < bl_len; k++) b[k] = backlog[(bl_head + k) % bl_cap];
    free(backlog);
    backlog = b;
    bl_cap = cap;
    bl_head = 0;
  }
  backlog[(bl_head + bl_len) % bl_cap] = (struct arrival){sched, measured};
  bl_len++;
  if (measured) bl_waited++;
  if (bl_len > bl_max) bl_max = bl_len;
}
static struct arrival backlog_pop(void) {
  struct arrival a = backlog[bl_head];
  bl_head = (bl_head + 1) % bl_cap;
  bl_len--;
  return a;
}
/* Arrivals that waited longer than the timeout are timeouts, never sent. */
static void backlog_expire(int64_t now) {
  while (bl_len > 0 && now - backlog[bl_head].sched >= timeout_ns) {
    backlog_pop();
    err_timeout++;
  }
}

/* ---- connections ---- */
static uint64_t tag(int i) { return ((uint64_t)conns[i].gen << 32) | (uint32_t)i; }

static void close_conn(int i, int64_t retry_at) {
  struct conn *c = &conns[i];
  if (c->st == S_CLOSED) return;
  if (c->st == S_BUSY) busy--;
  if (c->st == S_IDLE) idle_remove(i);
  if (c->st != S_CONNECTING) open_conns--;
  close(c->fd);
  c->fd = -1;
  c->gen++;
  c->st = S_CLOSED;
  c->retry_at = retry_at;
}

/* Closes and reconnects at once (an error or close on an established connection). */
static void reopen(int i, int64_t now) {
  close_conn(i, now);
  start_connect(i, now);
}

static void connect_failed(int i, int64_t now) {
  struct conn *c = &conns[i];
  err_connect++;
  if (++consecutive_connect_failures >= max_connect_failures)
    die(2, "giving up: %d consecutive failed connects (last: %s)", consecutive_connect_failures,
        strerror(errno ? errno : ECONNREFUSED));
  c->fails++;
  int shift = c->fails - 1 < 5 ? c->fails - 1 : 5;
  close_conn(i, now + (5LL * 1000000LL << shift)); /* 5 ms, doubling up to 160 ms */
}

static void start_connect(int i, int64_t now) {
  struct conn *c = &conns[i];
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die(3, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->st = S_CONNECTING;
  c->since = now;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = tag(i)};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die(3, "epoll_ctl: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0 && errno != EINPROGRESS)
    connect_failed(i, now);
  /* otherwise EPOLLOUT reports the outcome (also for an immediate success) */
}

static void connected(int i, int64_t now) {
  struct conn *c = &conns[i];
  consecutive_connect_failures = 0;
  c->fails = 0;
  open_conns++;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(i)};
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die(3, "epoll_ctl: %s", strerror(errno));
  conn_ready(i, now);
}

/* Writes the (rest of the) request; 0 on success or EAGAIN, -1 after a write error. */
static int write_request(int i) {
  struct conn *c = &conns[i];
  while (c->written < request_len) {
    ssize_t n = send(c->fd, request + c->written, request_len - c->written, MSG_NOSIGNAL);
    if (n > 0) {
      c->written += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = tag(i)};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
      return 0;
    }
    return -1;
  }
  return 0;
}

static void send_request(int i, struct arrival a, int immediate) {
  struct conn *c = &conns[i];
  c->st = S_BUSY;
  busy++;
  c->sched = a.sched;
  c->measured = a.measured;
  c->written = 0;
  c->in_body = 0;
  c->head_len = 0;
  c->body_left = 0;
  c->resp_bytes = 0;
  int64_t t = now_ns();
  if (a.measured) {
    if (immediate) push(&lateness, t - a.sched);
    if (last_send >= 0) {
      gaps_total++;
      if (t - last_send < GAP_NS) gaps_below++;
    }
    last_send = t;
  }
  if (write_request(i) < 0) {
    err_write++;
    reopen(i, t);
  }
}

/* A connection is free: it serves the oldest waiting arrival, or joins the idle FIFO. */
static void conn_ready(int i, int64_t now) {
  conns[i].st = S_IDLE;
  if (phase != P_CONNECTING) {
    backlog_expire(now);
    if (bl_len > 0) {
      send_request(i, backlog_pop(), 0);
      return;
    }
  }
  idle_push(i);
}

/* ---- response parsing ---- */
static int name_is(const char *p, size_t len, const char *name) {
  return len == strlen(name) && strncasecmp(p, name, len) == 0;
}

static int has_token(const char *p, size_t len, const char *token) {
  size_t tl = strlen(token);
  size_t k = 0;
  while (k < len) {
    while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == ',')) k++;
    size_t s = k;
    while (k < len && p[k] != ',') k++;
    size_t e = k;
    while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t')) e--;
    if (e - s == tl && strncasecmp(p + s, token, tl) == 0) return 1;
  }
  return 0;
}

/* Parses c->head (head_len bytes, ending in CRLFCRLF); 0 if usable, -1 if not. */
static int parse_head(struct conn *c) {
  const char *h = c->head;
  size_t len = c->head_len;
  if (len < 16 || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' ')
    return -1;
  for (int k = 9; k < 12; k++)
    if (h[k] < '0' || h[k] > '9') return -1;
  if (h[12] != ' ' && h[12] != '\r') return -1;
  int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
  if (status < 200) return -1; /* 1xx: never asked for (no Expect, no Upgrade) */
  int http10 = h[7] == '0';
  int keep_alive = 0, close = 0, have_length = 0;
  uint64_t length = 0;
  const char *p = memchr(h, '\n', len);
  if (p == NULL || p[-1] != '\r') return -1;
  p++;
  const char *end = h + len - 2; /* the final CRLF */
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p + 1));
    if (eol == NULL || eol == p || eol[-1] != '\r') return -1;
    const char *line_end = eol - 1;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon == NULL || colon == p) return -1;
    for (const char *q = p; q < colon; q++)
      if (*q <= ' ' || *q >= 127) return -1; /* no space in a name, no obs-fold */
    const char *v = colon + 1, *ve = line_end;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    size_t nlen = (size_t)(colon - p), vlen = (size_t)(ve - v);
    if (name_is(p, nlen, "content-length")) {
      if (vlen == 0 || vlen > 18) return -1;
      uint64_t n = 0;
      for (size_t k = 0; k < vlen; k++) {
        if (v[k] < '0' || v[k] > '9') return -1;
        n = n * 10 + (uint64_t)(v[k] - '0');
      }
      if (have_length && n != length) return -1;
      have_length = 1;
      length = n;
    } else if (name_is(p, nlen, "transfer-encoding")) {
      return -1; /* chunked (or any coding): not supported, on purpose */
    } else if (name_is(p, nlen, "connection")) {
      if (has_token(v, vlen, "close")) close = 1;
      if (has_token(v, vlen, "keep-alive")) keep_alive = 1;
    }
    p = eol + 1;
  }
  c->status = status;
  c->resp_close = close || (http10 && !keep_alive);
  if (status == 204 || status == 304) {
    c->body_left = 0;
  } else {
    if (!have_length) return -1;
    c->body_left = length;
  }
  return 0;
}

/* Feeds bytes read from connection i (read at time now) to its response parser. */
static void on_data(int i, const char *data, size_t n, int64_t now) {
  struct conn *c = &conns[i];
  while (n > 0) {
    if (c->st != S_BUSY) { /* bytes with no request outstanding: we never pipeline */
      err_read++;
      reopen(i, now);
      return;
    }
    if (!c->in_body) {
      size_t old = c->head_len, take = n < HEAD_MAX - old ? n : HEAD_MAX - old;
      memcpy(c->head + old, data, take);
      size_t from = old >= 3 ? old - 3 : 0, total = old + take;
      const char *found = NULL;
      for (size_t k = from; k + 4 <= total; k++) {
        if (c->head[k] == '\r' && memcmp(c->head + k, "\r\n\r\n", 4) == 0) {
          found = c->head + k;
          break;
        }
      }
      if (found == NULL) {
        c->head_len = total;
        c->resp_bytes += take;
        data += take;
        n -= take;
        if (total == HEAD_MAX) {
          err_read++;
          reopen(i, now);
          return;
        }
        continue;
      }
      size_t head_len = (size_t)(found - c->head) + 4, used = head_len - old;
      c->head_len = head_len;
      c->resp_bytes += used;
      data += used;
      n -= used;
      if (parse_head(c) < 0) {
        err_read++;
        reopen(i, now);
        return;
      }
      c->in_body = 1;
    } else {
      size_t take = (uint64_t)n < c->body_left ? n : (size_t)c->body_left;
      c->body_left -= take;
      c->resp_bytes += take;
      data += take;
      n -= take;
    }
    if (c->in_body && c->body_left == 0) {
      /* complete */
      busy--;
      c->st = S_DONE;
      if (c->measured) {
        push(&latencies, now - c->sched);
        if (dump_path != NULL) push(&arrivals_out, c->sched);
        resp_bytes_total += c->resp_bytes;
      }
      if (c->status >= 400) err_status++;
      if (n > 0) { /* more bytes than the response: not HTTP as we speak it */
        err_read++;
        reopen(i, now);
        return;
      }
      if (c->resp_close)
        reopen(i, now);
      else
        conn_ready(i, now);
      return;
    }
  }
}

static void on_event(int i, uint32_t events, int64_t now) {
  struct conn *c = &conns[i];
  static char buf[READ_BUF];
  if (c->st == S_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) {
      errno = err;
      connect_failed(i, now);
    } else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      connected(i, now);
    }
    return;
  }
  if ((events & EPOLLOUT) && c->st == S_BUSY && c->written < request_len) {
    if (write_request(i) < 0) {
      err_write++;
      reopen(i, now);
      return;
    }
    if (c->written == request_len) {
      struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag(i)};
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
  }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
      on_data(i, buf, (size_t)n, now_ns());
    } else if (n == 0) {
      /* The server closed the connection: an error if a response was awaited. */
      if (c->st == S_BUSY) err_read++;
      reopen(i, now);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      err_read++;
      reopen(i, now);
    }
  }
}

/* Timeouts of requests and connects, reconnects after a backoff, expired backlog. */
static void housekeeping(int64_t now) {
  for (int i = 0; i < nconn; i++) {
    struct conn *c = &conns[i];
    if (c->st == S_BUSY && now - c->sched >= timeout_ns) {
      err_timeout++;
      reopen(i, now);
    } else if (c->st == S_CONNECTING && now - c->since >= timeout_ns) {
      errno = ETIMEDOUT;
      connect_failed(i, now);
    } else if (c->st == S_CLOSED && now >= c->retry_at) {
      start_connect(i, now);
    }
  }
  if (phase != P_CONNECTING) backlog_expire(now);
}

/* ---- arrivals ---- */
static void arm_timer(int64_t at) {
  struct itimerspec its = {0};
  its.it_value.tv_sec = at / NS_PER_S;
  its.it_value.tv_nsec = at % NS_PER_S;
  if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
    die(3, "timerfd_settime: %s", strerror(errno));
}

static int64_t next_sched(void) { return t0 + (int64_t)llround(next_off); }

/* Sends every arrival due by now, then arms the timer for the next one (spin_ns early). */
static void arrivals_due(void) {
  int64_t now = now_ns();
  for (;;) {
    int64_t sched = next_sched();
    if (sched >= end_at) {
      phase = P_DRAINING;
      struct itimerspec off = {0};
      timerfd_settime(tfd, 0, &off, NULL);
      return;
    }
    if (sched > now) {
      arm_timer(sched - spin_ns);
      return;
    }
    struct arrival a = {sched, sched >= measure_from};
    int i = idle_pop();
    if (i >= 0)
      send_request(i, a, 1);
    else
      backlog_push(sched, a.measured);
    next_off += exp_gap_ns(rate);
    now = now_ns();
  }
}

/* ---- output ---- */
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}
/* Nearest rank: the smallest value with at least q% of the samples at or below it. */
static int64_t pct_us(const struct i64s *a, double q) {
  if (a->n == 0) return 0;
  double r = ceil(q / 100.0 * (double)a->n - 1e-9);
  size_t rank = r < 1 ? 1 : (size_t)r;
  if (rank > a->n) rank = a->n;
  return (a->v[rank - 1] + 500) / 1000;
}

/* Before report(), which sorts the latencies. */
static void dump_requests(void) {
  FILE *f = fopen(dump_path, "w");
  if (f == NULL) die(3, "-o %s: %s", dump_path, strerror(errno));
  for (size_t k = 0; k < latencies.n; k++)
    fprintf(f, "%" PRId64 " %" PRId64 "\n", arrivals_out.v[k], latencies.v[k]);
  if (fclose(f) != 0) die(3, "-o %s: %s", dump_path, strerror(errno));
}

static void report(void) {
  qsort(latencies.v, latencies.n, sizeof *latencies.v, cmp_i64);
  qsort(lateness.v, lateness.n, sizeof *lateness.v, cmp_i64);
  double sum = 0;
  for (size_t k = 0; k < latencies.n; k++) sum += (double)latencies.v[k];
  double mean = latencies.n ? sum / (double)latencies.n / 1000.0 : 0;
  int64_t lmin = latencies.n ? (latencies.v[0] + 500) / 1000 : 0;
  int64_t lmax = latencies.n ? (latencies.v[latencies.n - 1] + 500) / 1000 : 0;
  int64_t late_max = lateness.n ? (lateness.v[lateness.n - 1] + 500) / 1000 : 0;
  printf("POISSON_JSON {\"requests\":%zu,\"durationUs\":%" PRId64 ",\"bytes\":%" PRIu64 ","
         "\"errors\":{\"connect\":%" PRIu64 ",\"read\":%" PRIu64 ",\"write\":%" PRIu64
         ",\"status\":%" PRIu64 ",\"timeout\":%" PRIu64 "},"
         "\"latencyUs\":{\"min\":%" PRId64 ",\"mean\":%.1f,\"max\":%" PRId64 ",\"p50\":%" PRId64
         ",\"p90\":%" PRId64 ",\"p99\":%" PRId64 ",\"p999\":%" PRId64 "},"
         "\"lateUs\":{\"p99\":%" PRId64 ",\"max\":%" PRId64 "},"
         "\"backlog\":{\"waited\":%" PRIu64 ",\"max\":%zu},\"gapsBelow10Us\":%.4f}\n",
         latencies.n, (int64_t)llround(duration_s * 1e6), resp_bytes_total, err_connect, err_read,
         err_write, err_status, err_timeout, lmin, mean, lmax, pct_us(&latencies, 50),
         pct_us(&latencies, 90), pct_us(&latencies, 99), pct_us(&latencies, 99.9),
         pct_us(&lateness, 99), late_max, bl_waited, bl_max,
         gaps_total ? (double)gaps_below / (double)gaps_total : 0.0);
  fflush(stdout);
}

/* ---- arguments ---- */
static void usage(void) {
  fputs("usage: poisson-load -c CONNECTIONS -r RATE_PER_S -d DURATION_S [-t TIMEOUT_S]\n"
        "                    [-s SEED] [-w WARMUP_S] [-S SPIN_US] [-o FILE]\n"
        "                    http://127.0.0.1:PORT/path\n"
        "  (loopback only: 127.0.0.1, [::1] or localhost)\n",
        stderr);
  exit(1);
}

static double number(const char *opt, const char *s, double min, double max) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
    die(1, "%s: expected a number in [%g, %g], got \"%s\"", opt, min, max, s);
  return v;
}

static void parse_url(const char *url) {
  if (strncmp(url, "http://", 7) != 0) die(1, "only http:// URLs: \"%s\"", url);
  const char *h = url + 7;
  const char *slash = strchr(h, '/');
  const char *authority_end = slash ? slash : h + strlen(h);
  const char *path = slash ? slash : "/";
  char host[256];
  const char *port_s = NULL;
  size_t hl;
  if (*h == '[') {
    const char *rb = memchr(h, ']', (size_t)(authority_end - h));
    if (rb == NULL) die(1, "bad URL \"%s\"", url);
    hl = (size_t)(rb - h - 1);
    if (hl >= sizeof host) die(1, "bad URL \"%s\"", url);
    memcpy(host, h + 1, hl);
    host[hl] = '\0';
    if (rb + 1 < authority_end) {
      if (rb[1] != ':') die(1, "bad URL \"%s\"", url);
      port_s = rb + 2;
    }
  } else {
    const char *colon = memchr(h, ':', (size_t)(authority_end - h));
    const char *he = colon ? colon : authority_end;
    hl = (size_t)(he - h);
    if (hl >= sizeof host) die(1, "bad URL \"%s\"", url);
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon) port_s = colon + 1;
  }
  long port = 80;
  if (port_s != NULL) {
    char *e;
    port = strtol(port_s, &e, 10);
    if (e != authority_end || port < 1 || port > 65535) die(1, "bad port in \"%s\"", url);
  }
  memset(&addr, 0, sizeof addr);
  if (strcmp(host, "127.0.0.1") == 0 || strcasecmp(host, "localhost") == 0) {
    struct sockaddr_in *a = (struct sockaddr_in *)&addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr_len = sizeof *a;
  } else if (strcmp(host, "::1") == 0) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    a->sin6_addr = in6addr_loopback;
    addr_len = sizeof *a;
  } else {
    die(1, "refusing host \"%s\": the bench only loads loopback (127.0.0.1, [::1], localhost)",
        host);
  }
  for (const char *q = path; *q; q++)
    if (*q <= ' ' || *q == 127) die(1, "bad character in the path of \"%s\"", url);
  int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %.*s\r\n\r\n", path,
                   (int)(authority_end - h), h);
  if (n < 0 || (size_t)n >= sizeof request) die(1, "URL too long");
  request_len = (size_t)n;
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "c:r:d:t:s:w:S:o:h")) != -1) {
    switch (opt) {
      case 'c': nconn = (int)number("-c", optarg, 1, 100000); break;
      case 'r': rate = number("-r", optarg, 1e-3, 1e7); break;
      case 'd': duration_s = number("-d", optarg, 1e-3, 86400); break;
      case 't': timeout_s = number("-t", optarg, 1e-3, 3600); break;
      case 's': seed = (uint64_t)number("-s", optarg, 0, 9007199254740992.0); break;
      case 'w': warmup_s = number("-w", optarg, 0, 86400); break;
      case 'S': spin_ns = (int64_t)number("-S", optarg, 0, 1000) * 1000; break;
      case 'o': dump_path = optarg; break;
      default: usage();
    }
  }
  if (optind != argc - 1 || nconn <= 0 || rate <= 0 || duration_s <= 0) usage();
  parse_url(argv[optind]);

  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* default slack is 50 µs: wake on the ns asked */
  uint64_t sm = seed;
  for (int k = 0; k < 4; k++) rng_s[k] = splitmix64(&sm);
  timeout_ns = (int64_t)llround(timeout_s * 1e9);
  max_connect_failures = nconn * 2 > 20 ? nconn * 2 : 20;
  size_t expected = (size_t)(rate * duration_s * 1.3) + 1024;
  latencies.v = malloc(expected * sizeof *latencies.v);
  lateness.v = malloc(expected * sizeof *lateness.v);
  if (latencies.v == NULL || lateness.v == NULL) die(3, "out of memory");
  latencies.cap = lateness.cap = expected;

  epfd = epoll_create1(EPOLL_CLOEXEC);
  tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd < 0 || tfd < 0) die(3, "epoll/timerfd: %s", strerror(errno));
  struct epoll_event tev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) < 0) die(3, "epoll_ctl: %s", strerror(errno));

  conns = calloc((size_t)nconn, sizeof *conns);
  if (conns == NULL) die(3, "out of memory");
  int64_t now = now_ns();
  for (int i = 0; i < nconn; i++) {
    conns[i].fd = -1;
    conns[i].st = S_CLOSED;
    conns[i].prev = conns[i].next = -1;
  }
  for (int i = 0; i < nconn; i++)
    if (conns[i].st == S_CLOSED) start_connect(i, now);

  /* Every connection open (or the timeout passed with at least one), then the clock starts. */
  int64_t connect_deadline = now + timeout_ns, drain_deadline = 0, last_scan = now;
  struct epoll_event evs[MAX_EVENTS];
  for (;;) {
    now = now_ns();
    if (phase == P_CONNECTING && (open_conns == nconn || now >= connect_deadline)) {
      if (open_conns == 0) die(2, "no connection could be opened within %gs", timeout_s);
      phase = P_RUNNING;
      t0 = now;
      measure_from = t0 + (int64_t)llround(warmup_s * 1e9);
      end_at = measure_from + (int64_t)llround(duration_s * 1e9);
      next_off = exp_gap_ns(rate);
      arm_timer(next_sched() - spin_ns);
    }
    if (phase == P_DRAINING) {
      if (drain_deadline == 0) drain_deadline = (now > end_at ? now : end_at) + timeout_ns;
      if ((busy == 0 && bl_len == 0) || now >= drain_deadline) break;
    }
    /* Within spin_ns of the next arrival: poll (yielding the CPU to whoever needs it). */
    int spinning = phase == P_RUNNING && spin_ns > 0 && next_sched() - now <= spin_ns;
    if (spinning) sched_yield();
    int n = epoll_wait(epfd, evs, MAX_EVENTS, spinning ? 0 : 10);
    if (n < 0 && errno != EINTR) die(3, "epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      uint64_t d = evs[k].data.u64;
      if (d == TIMER_TAG) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
          die(3, "read timerfd: %s", strerror(errno));
        if (phase == P_RUNNING && next_sched() <= now_ns()) arrivals_due();
        continue;
      }
      int i = (int)(uint32_t)d;
      if (i < 0 || i >= nconn || conns[i].gen != (uint32_t)(d >> 32) || conns[i].st == S_CLOSED)
        continue; /* an event of a socket closed earlier in this batch */
      on_event(i, evs[k].events, now_ns());
    }
    now = now_ns();
    if (phase == P_RUNNING && next_sched() <= now) arrivals_due();
    if (now - last_scan >= 1000000) { /* once per ms at most */
      housekeeping(now);
      last_scan = now;
    }
  }
  /* Whatever is still outstanding at the drain deadline has timed out. */
  err_timeout += (uint64_t)busy + bl_len;
  if (dump_path != NULL) dump_requests();
  report();
  return 0;
}
