/*
 * The bench's bulk receivers in C (bench/sink.py builds and drives it): on
 * a 2-core machine the Python generator's receivers take most of a core,
 * which the servers under test then lack.  This holds COUNT chat
 * connections, logs each in (/nick bN, N from FIRST on, answered by
 * " is now known as bN"), then only counts what arrives: newlines and
 * bench messages (" T", which only a message's timestamp has).
 *
 *   sink HOST PORT COUNT FIRST WINDOW TIMEOUT_S
 *
 * stdout: "ready LOGGED_IN\n" once every connection is logged in (or the
 * timeout passed); then one line per command read on stdin:
 *   count  -> "LINES MESSAGES LAST_RX_NS LOST\n" (CLOCK_MONOTONIC ns)
 *   reset  -> "ok\n", the counts zeroed
 *   quit   -> exits, closing everything
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

enum { CONNECTING, GREETED, LOGGED_IN, CLOSED };

struct conn {
    int fd, state;
    char last;          /* the last byte read: a " T" may be split */
    char tail[64];      /* while logging in: the end of what came */
    int tail_len;
};

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long lines, messages, last_rx, lost;

static int open_one(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: sink HOST PORT COUNT FIRST WINDOW TIMEOUT_S\n");
        return 2;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    int count = atoi(argv[3]), first = atoi(argv[4]), window = atoi(argv[5]);
    long long deadline = now_ns() + atoll(argv[6]) * 1000000000LL;
    struct conn *conns = calloc(count, sizeof *conns);
    int ep = epoll_create1(0), opened = 0, waiting = 0, logged = 0, ready = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (unsigned long long)-1};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    static char buf[1 << 16];
    char cmd[64];
    int cmd_len = 0;
    struct epoll_event events[256];
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        while (opened < count && waiting < window) {  /* at most WINDOW unanswered */
            struct conn *c = &conns[opened];
            c->fd = open_one(&addr);
            c->state = c->fd < 0 ? CLOSED : CONNECTING;
            if (c->fd >= 0) {
                struct epoll_event e = {.events = EPOLLIN, .data.u64 = opened};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
                waiting++;
            } else {
                lost++;
            }
            opened++;
        }
        if (!ready && (logged + lost >= count || now_ns() > deadline)) {
            printf("ready %d\n", logged);
            ready = 1;
        }
        int n = epoll_wait(ep, events, 256, ready ? -1 : 100);
        for (int i = 0; i < n; i++) {
            unsigned long long id = events[i].data.u64;
            if (id == (unsigned long long)-1) {  /* a command */
                ssize_t got = read(0, cmd + cmd_len, sizeof cmd - cmd_len - 1);
                if (got <= 0) return 0;
                cmd_len += got;
                cmd[cmd_len] = 0;
                char *nl;
                while ((nl = strchr(cmd, '\n'))) {
                    *nl = 0;
                    if (!strcmp(cmd, "count"))
                        printf("%lld %lld %lld %lld\n", lines, messages, last_rx, lost);
                    else if (!strcmp(cmd, "reset")) {
                        lines = messages = 0;
                        printf("ok\n");
                    } else if (!strcmp(cmd, "quit"))
                        return 0;
                    cmd_len -= nl + 1 - cmd;
                    memmove(cmd, nl + 1, cmd_len + 1);
                }
                continue;
            }
            struct conn *c = &conns[id];
            ssize_t got = read(c->fd, buf, sizeof buf);
            if (got <= 0) {
                if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (c->state == CONNECTING) waiting--;
                lost++;
                c->state = CLOSED;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                continue;
            }
            last_rx = now_ns();
            for (char *p = buf; (p = memchr(p, '\n', buf + got - p)); p++) lines++;
            if (c->last == ' ' && buf[0] == 'T') messages++;
            for (char *p = buf; (p = memmem(p, buf + got - p, " T", 2)); p += 2) messages++;
            c->last = buf[got - 1];
            if (c->state == CONNECTING) {  /* the greeting: now log in */
                char line[48];
                int len = snprintf(line, sizeof line, "/nick b%d\r\n", first + (int)id);
                if (write(c->fd, line, len) != len) lost++;
                c->state = GREETED;
                waiting--;
                c->tail_len = 0;
                continue;
            }
            if (c->state == GREETED) {  /* waiting for our rename */
                char marker[48], edge[96];
                int mlen = snprintf(marker, sizeof marker, " is now known as b%d\r\n",
                                    first + (int)id);
                int head = got < mlen ? (int)got : mlen;
                memcpy(edge, c->tail, c->tail_len);
                memcpy(edge + c->tail_len, buf, head);
                int elen = c->tail_len + head;
                if (memmem(edge, elen, marker, mlen) || memmem(buf, got, marker, mlen)) {
                    c->state = LOGGED_IN;
                    logged++;
                } else if (got >= mlen - 1) {
                    memcpy(c->tail, buf + got - (mlen - 1), mlen - 1);
                    c->tail_len = mlen - 1;
                } else {  /* a short read: the end of tail + it */
                    int t = elen < mlen - 1 ? elen : mlen - 1;
                    memmove(c->tail, edge + elen - t, t);
                    c->tail_len = t;
                }
            }
        }
    }
}
