/*
 * connect-burst: opens N connections to a loopback HTTP/1.1 server at once, sends one GET on
 * each as soon as it is connected, and reports how long each waited for its response (the
 * anubis bench: a burst of new connections, e.g. a client pool reconnecting, usually while
 * the server is already busy with other load).
 *
 *   connect-burst -n CONNECTIONS [-t TIMEOUT_S] http://127.0.0.1:PORT/path
 *
 * - Every connect() is issued first (non-blocking), then one epoll loop writes each request
 *   when its socket is writable and reads its response. A loopback connect completes in the
 *   kernel before the server accepts it, so what is measured is mostly the server's accept
 *   (and its first read): a server that accepts one connection per event-loop iteration
 *   shows it here.
 * - Latency of a connection = first bytes of its response - its own connect() call. A
 *   response counts as ok when it starts with "HTTP/1.1 2" or "HTTP/1.0 2" (else `bad`); a
 *   reset, refused connect or a read before any byte is an `error`; no response within
 *   TIMEOUT_S (default 10) is a `timeout`.
 * - Output: one JSON line {"n","ok","errors","bad","timeouts","p50Ms","p90Ms","p99Ms","maxMs"}
 *   (latencies over the ok connections). Loopback only: any other host exits 2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { WAITING_CONNECT, WAITING_RESPONSE, DONE };

struct conn {
  int fd;
  int state;
  double started;
  double latency;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double quantile(const double *sorted, int count, double q) {
  if (count == 0) return 0;
  int index = (int)(q * count);
  if (index >= count) index = count - 1;
  return sorted[index];
}

static void usage(void) {
  fprintf(stderr, "usage: connect-burst -n CONNECTIONS [-t TIMEOUT_S] http://127.0.0.1:PORT/path\n");
  exit(2);
}

int main(int argc, char **argv) {
  int n = 0;
  double timeout_s = 10;
  int opt;
  while ((opt = getopt(argc, argv, "n:t:")) != -1) {
    if (opt == 'n') n = atoi(optarg);
    else if (opt == 't') timeout_s = atof(optarg);
    else usage();
  }
  if (n <= 0 || optind != argc - 1) usage();
  char host[64];
  int port = 0;
  char path[1024] = "/";
  if (sscanf(argv[optind], "http://%63[^:/]:%d%1023s", host, &port, path) < 2) usage();
  if (strcmp(host, "127.0.0.1") != 0) {
    fprintf(stderr, "connect-burst: loopback only (127.0.0.1), not %s\n", host);
    return 2;
  }
  char request[1200];
  int request_len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                             path, host, port);

  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, host, &addr.sin_addr);
  struct conn *conns = calloc((size_t)n, sizeof *conns);
  double *latencies = calloc((size_t)n, sizeof *latencies);
  int epoll = epoll_create1(0);
  if (conns == NULL || latencies == NULL || epoll < 0) {
    perror("connect-burst");
    return 2;
  }
  int errors = 0, bad = 0, ok = 0, pending = n;
  for (int i = 0; i < n; i++) {
    struct conn *c = &conns[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
      perror("connect-burst: socket");
      return 2;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->started = now_s();
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
      errors++;
      pending--;
      c->state = DONE;
      close(c->fd);
      continue;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(epoll, EPOLL_CTL_ADD, c->fd, &ev);
  }
  double deadline = now_s() + timeout_s;
  struct epoll_event events[256];
  char buffer[4096];
  while (pending > 0) {
    int wait_ms = (int)((deadline - now_s()) * 1000);
    if (wait_ms <= 0) break;
    int ready = epoll_wait(epoll, events, 256, wait_ms);
    if (ready < 0 && errno != EINTR) {
      perror("connect-burst: epoll_wait");
      return 2;
    }
    for (int e = 0; e < ready; e++) {
      struct conn *c = &conns[events[e].data.u32];
      if (c->state == WAITING_CONNECT) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr != 0 || write(c->fd, request, (size_t)request_len) != request_len) {
          errors++;
          pending--;
          c->state = DONE;
          close(c->fd);
          continue;
        }
        c->state = WAITING_RESPONSE;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[e].data.u32};
        epoll_ctl(epoll, EPOLL_CTL_MOD, c->fd, &ev);
      } else if (c->state == WAITING_RESPONSE) {
        ssize_t got = read(c->fd, buffer, sizeof buffer);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got <= 0) {
          errors++;
        } else if (got >= 10 && (memcmp(buffer, "HTTP/1.1 2", 10) == 0 ||
                                 memcmp(buffer, "HTTP/1.0 2", 10) == 0)) {
          latencies[ok++] = now_s() - c->started;
        } else {
          bad++;
        }
        pending--;
        c->state = DONE;
        close(c->fd);
      }
    }
  }
  int timeouts = pending;
  for (int i = 0; i < n; i++)
    if (conns[i].state != DONE) close(conns[i].fd);
  qsort(latencies, (size_t)ok, sizeof *latencies, compare_double);
  printf("{\"n\":%d,\"ok\":%d,\"errors\":%d,\"bad\":%d,\"timeouts\":%d,\"p50Ms\":%.3f,"
         "\"p90Ms\":%.3f,\"p99Ms\":%.3f,\"maxMs\":%.3f}\n",
         n, ok, errors, bad, timeouts, quantile(latencies, ok, 0.5) * 1e3,
         quantile(latencies, ok, 0.9) * 1e3, quantile(latencies, ok, 0.99) * 1e3,
         ok > 0 ? latencies[ok - 1] * 1e3 : 0);
  return 0;
}
